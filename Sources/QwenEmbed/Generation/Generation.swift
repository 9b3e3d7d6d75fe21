#if canImport(Glibc)
import Glibc
#endif

/// Per-call generation settings (mirrors qwen_gen_params).
public struct GenerationParameters: Sendable {
    public var maxTokens: Int = 512
    public var sampling = SamplingParameters()
    /// nil = continue the session's random stream.
    public var seed: UInt64? = nil
    /// Extra stop strings; the reply ends before the first one and never contains it.
    public var stop: [String] = []
    /// End the reply at an end-of-turn token (<|im_end|>, <|endoftext|>, <|im_start|>).
    /// false generates exactly `maxTokens` tokens whatever they are (benchmarks).
    public var stopsAtEndOfTurn = true
    /// A chat template's `enable_thinking` (Qwen3's thinking mode); nil = the template's
    /// default (the variable left undefined, as transformers leaves it).
    public var enableThinking: Bool? = nil
    /// GBNF text (llama.cpp's grammar format) the reply must match; nil = none.
    public var grammar: String? = nil
    /// JSON Schema text the reply must be an instance of (compiled to a grammar,
    /// `JSONSchemaGrammar`); nil = none. Not together with `grammar`.
    public var jsonSchema: String? = nil
    /// Record each generated token's log probability and this many most likely
    /// alternatives (0...`TokenLogprob.maxTop`); nil = off.
    public var logprobs: Int? = nil
    /// Whether the reply must call a tool (chat with tools only).
    public var toolChoice: ToolChoice = .auto
    /// Sees each step's logits [vocab] before sampling (step = tokens generated so far),
    /// on the engine's step thread. For tests.
    var observeLogits: (@Sendable (Int, UnsafePointer<Float>) -> Void)? = nil
    /// The reply's tokens, given instead of sampled (teacher forcing, `Session.replayLogits`).
    var forcedTokens: [Int32]? = nil
    public init() {}
}

/// OpenAI's `tool_choice`: whether a chat reply may, must, or must not call the tools
/// offered, or must call one of them.
public enum ToolChoice: Sendable, Equatable {
    /// The model decides.
    case auto
    /// The tools are not offered for this reply.
    case none
    /// The reply is one call of one of the tools (forced through a grammar).
    case required
    /// The reply is one call of the tool of this name.
    case named(String)
}

/// A generated token's log probability and the most likely tokens at its step, over
/// the logits after the repetition penalty and the grammar's mask (refused tokens have
/// none), before temperature, top-k and top-p: the distribution the model and the
/// constraints give, whatever the sampling settings.
public struct TokenLogprob: Sendable, Equatable {
    public var token: Int32
    public var logprob: Float
    /// Most likely first (ties: lower id first); at most the count asked for.
    public var top: [(token: Int32, logprob: Float)]
    public static let maxTop = 20

    public static func == (a: TokenLogprob, b: TokenLogprob) -> Bool {
        a.token == b.token && a.logprob == b.logprob && a.top.elementsEqual(b.top) { $0.token == $1.token && $0.logprob == $1.logprob }
    }

    /// The entry for `token` from `logits` [vocab] with the `count` most likely tokens.
    init(token: Int32, logits: UnsafePointer<Float>, vocab: Int, count: Int) {
        var maximum = -Float.infinity
        for i in 0..<vocab where logits[i] > maximum { maximum = logits[i] }
        var sum = 0.0
        for i in 0..<vocab { sum += Double(expf(logits[i] - maximum)) }
        let logTotal = maximum + Float(log(sum))
        self.token = token
        logprob = logits[Int(token)] - logTotal
        var best: [(token: Int32, logprob: Float)] = []   // sorted, most likely first
        if count > 0 {
            for i in 0..<vocab where logits[i] > -Float.infinity {
                let l = logits[i]
                if best.count == count, let last = best.last, l <= last.logprob { continue }
                var at = best.count
                while at > 0 && best[at - 1].logprob < l { at -= 1 }
                best.insert((Int32(i), l), at: at)
                if best.count > count { best.removeLast() }
            }
        }
        top = best.map { ($0.token, $0.logprob - logTotal) }
    }
}

public enum FinishReason: Int32, Sendable {
    case stop = 0, length = 1, cancelled = 2, callback = 3
}

public struct GenerationResult: Sendable {
    public var finishReason: FinishReason = .stop
    public var promptTokens = 0
    public var generatedTokens = 0
    /// Prompt tokens whose keys/values were reused from the session's cache.
    public var cachedTokens = 0
    /// From the call's start to its first token (waiting for the engine included).
    public var prefillMilliseconds = 0.0
    /// From the first token to the end of the reply.
    public var decodeMilliseconds = 0.0
    public var text = ""
    /// Each generated token's `TokenLogprob` when asked for (`GenerationParameters.logprobs`).
    public var logprobs: [TokenLogprob] = []
}

/// One sequence's generation loop, readable top to bottom: logits of its last position
/// -> sample -> end-of-turn and token-budget checks -> detokenize -> stop-string filter
/// -> the next token to run. The engine's step loop drives it (`advance` once per step
/// the sequence is in); it owns no model state, only the sequence's sampling state.
struct GenerationState {
    let vocab: Int
    let maxTokens: Int
    /// Ids that end a reply when `stopsAtEndOfTurn`.
    let stopTokens: Set<Int32>
    var sampler: Sampler
    var detokenizer: StreamingDetokenizer
    var filter: StopStringFilter
    let observeLogits: (@Sendable (Int, UnsafePointer<Float>) -> Void)?
    /// The grammar the reply must match, at the reply's place in it.
    var grammar: GrammarMatcher?
    /// Alternatives recorded per token; nil = no log probabilities.
    let logprobs: Int?
    /// Tokens taken instead of sampled (`GenerationParameters.forcedTokens`).
    let forcedTokens: [Int32]?
    /// Prompt and reply ids, each once: what the repetition penalty applies to.
    private var penalized: Set<Int32>
    private(set) var generated: [Int32] = []

    init(prompt: [Int32], parameters: GenerationParameters, sampling: SamplingParameters, seed: UInt64,
         tokenizer: Tokenizer, vocab: Int, grammar: GrammarAutomaton? = nil, trie: TokenTrie? = nil) {
        self.vocab = vocab
        maxTokens = parameters.maxTokens
        stopTokens = parameters.stopsAtEndOfTurn
            ? Set(["<|im_end|>", "<|endoftext|>", "<|im_start|>"].compactMap { tokenizer.specialTokenID($0) }) : []
        sampler = Sampler(parameters: sampling, seed: seed)
        detokenizer = StreamingDetokenizer(tokenizer: tokenizer, skipSpecial: true)
        filter = StopStringFilter(stops: parameters.stop)
        penalized = Set(prompt)
        observeLogits = parameters.observeLogits
        logprobs = parameters.logprobs
        forcedTokens = parameters.forcedTokens
        if let grammar, let trie {
            self.grammar = GrammarMatcher(automaton: grammar, trie: trie, tokenizer: tokenizer, endTokens: stopTokens)
        }
    }

    enum Step {
        /// Run `token` next; `emit` is the text it completed (possibly "").
        case next(token: Int32, emit: String, logprob: TokenLogprob?)
        /// The reply is over; `emit` is its last text; `generated` whether this step
        /// generated a token (with `logprob` when recorded).
        case finished(FinishReason, emit: String, generated: Bool, logprob: TokenLogprob?)
    }

    /// The step after the logits [vocab] of the sequence's last position (modified: the
    /// penalty and the grammar's mask are applied in place).
    mutating func advance(logits: UnsafeMutablePointer<Float>) throws -> Step {
        if generated.count >= maxTokens { return .finished(.length, emit: flush(), generated: false, logprob: nil) }
        observeLogits?(generated.count, logits)
        guard sampler.applyPenalty(logits, vocab: vocab, penalizing: penalized) else {
            throw QwenError.badModel("the model computed non-finite logits (NaN or infinite weights in the checkpoint?)")
        }
        if let grammar {
            if grammar.ending.must { return .finished(.stop, emit: flush(), generated: false, logprob: nil) }
            // Greedy without log probabilities needs the mask only when the best token is refused.
            let checkFirst = sampler.parameters.temperature == 0 && logprobs == nil
            let bestIsAllowed = checkFirst ? try grammar.allows(Sampler.argmax(logits, vocab: vocab)) : false
            if !bestIsAllowed { try grammar.mask(logits, vocab: vocab) }
        }
        let id = forcedTokens.map { generated.count < $0.count ? $0[generated.count] : stopTokens.first ?? 0 }
            ?? sampler.pick(logits, vocab: vocab)
        if let forcedTokens, generated.count >= forcedTokens.count { return .finished(.stop, emit: flush(), generated: false, logprob: nil) }
        if stopTokens.contains(id) { return .finished(.stop, emit: flush(), generated: false, logprob: nil) }
        let logprob = logprobs.map { TokenLogprob(token: id, logits: logits, vocab: vocab, count: $0) }
        try grammar?.accept(id)
        generated.append(id)
        penalized.insert(id)
        let (emit, stopped) = filter.push(detokenizer.push(id))
        if stopped { return .finished(.stop, emit: emit, generated: true, logprob: logprob) }
        if grammar?.ending.must == true { return .finished(.stop, emit: emit + flush(), generated: true, logprob: logprob) }
        if generated.count >= maxTokens { return .finished(.length, emit: emit + flush(), generated: true, logprob: logprob) }
        return .next(token: id, emit: emit, logprob: logprob)
    }

    /// Ends the reply: the text held back (an incomplete character, a possible start of
    /// a stop string), cut at a stop string if it completes one.
    mutating func flush() -> String {
        let (emit, stopped) = filter.push(detokenizer.finish())
        return stopped ? emit : emit + filter.finish()
    }
}
