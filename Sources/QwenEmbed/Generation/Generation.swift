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
    /// Sees each step's logits [vocab] before sampling (step = tokens generated so far),
    /// on the engine's step thread. For tests.
    var observeLogits: (@Sendable (Int, UnsafePointer<Float>) -> Void)? = nil
    public init() {}
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
    /// Prompt and reply ids, each once: what the repetition penalty applies to.
    private var penalized: Set<Int32>
    private(set) var generated: [Int32] = []

    init(prompt: [Int32], parameters: GenerationParameters, sampling: SamplingParameters, seed: UInt64,
         tokenizer: Tokenizer, vocab: Int) {
        self.vocab = vocab
        maxTokens = parameters.maxTokens
        stopTokens = parameters.stopsAtEndOfTurn
            ? Set(["<|im_end|>", "<|endoftext|>", "<|im_start|>"].compactMap { tokenizer.specialTokenID($0) }) : []
        sampler = Sampler(parameters: sampling, seed: seed)
        detokenizer = StreamingDetokenizer(tokenizer: tokenizer, skipSpecial: true)
        filter = StopStringFilter(stops: parameters.stop)
        penalized = Set(prompt)
        observeLogits = parameters.observeLogits
    }

    enum Step {
        /// Run `token` next; `emit` is the text it completed (possibly "").
        case next(token: Int32, emit: String)
        /// The reply is over; `emit` is its last text.
        case finished(FinishReason, emit: String)
    }

    /// The step after the logits [vocab] of the sequence's last position (modified: the
    /// penalty and temperature are applied in place).
    mutating func advance(logits: UnsafeMutablePointer<Float>) throws -> Step {
        if generated.count >= maxTokens { return .finished(.length, emit: flush()) }
        observeLogits?(generated.count, logits)
        guard let id = sampler.sample(logits, vocab: vocab, penalizing: penalized) else {
            throw QwenError.badModel("the model computed non-finite logits (NaN or infinite weights in the checkpoint?)")
        }
        if stopTokens.contains(id) { return .finished(.stop, emit: flush()) }
        generated.append(id)
        penalized.insert(id)
        let (emit, stopped) = filter.push(detokenizer.push(id))
        if stopped { return .finished(.stop, emit: emit) }
        if generated.count >= maxTokens { return .finished(.length, emit: emit + flush()) }
        return .next(token: id, emit: emit)
    }

    /// Ends the reply: the text held back (an incomplete character, a possible start of
    /// a stop string), cut at a stop string if it completes one.
    mutating func flush() -> String {
        let (emit, stopped) = filter.push(detokenizer.finish())
        return stopped ? emit : emit + filter.finish()
    }
}
