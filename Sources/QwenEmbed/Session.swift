import Kernels
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Options of a session (mirrors qwen_session_params).
public struct SessionOptions: Sendable {
    /// Context window in tokens; 0 = `ModelConfig.defaultContextSize(cap: defaultContextCap)`
    /// (the trained length capped; dynamic-NTK checkpoints get the cap).
    public var contextSize: Int = 0
    /// 0 = the model's thread count.
    public var threads: Int = 0
    /// Sampler seed; 0 = from the clock.
    public var seed: UInt64 = 0
    public var systemPrompt: String = Model.defaultSystemPrompt
    /// Token budget for system prompt + history (Qwen's max_window_size); 0 = the model's.
    public var maxWindowSize: Int = 0
    public init() {}

    /// Default window when the caller does not choose one: the KV cache of a 32k-context
    /// model would otherwise take gigabytes for a typical short chat.
    public static let defaultContextCap = 8192
}

/// Per-call generation settings (mirrors qwen_gen_params).
public struct GenerationParameters: Sendable {
    public var maxTokens: Int = 512
    public var sampling = SamplingParameters()
    /// nil = continue the session's random stream.
    public var seed: UInt64? = nil
    /// Extra stop strings; the reply ends before the first one and never contains it.
    public var stop: [String] = []
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
    public var prefillMilliseconds = 0.0
    public var decodeMilliseconds = 0.0
    public var text = ""
}

/// Holds back text that could still become a stop string, and ends the reply before a
/// stop string. Works on Unicode scalars, so pieces are always whole characters.
struct StopStringFilter {
    let stops: [[Unicode.Scalar]]
    private var pending: [Unicode.Scalar] = []

    init(stops: [String]) {
        self.stops = stops.filter { !$0.isEmpty }.map { Array($0.unicodeScalars) }
    }

    /// Adds text; returns what is safe to emit, and whether a stop string was reached
    /// (everything from it on is discarded).
    mutating func push(_ text: String) -> (emit: String, stopped: Bool) {
        pending.append(contentsOf: text.unicodeScalars)
        var earliest: Int? = nil
        for stop in stops {
            if let at = StopStringFilter.find(stop, in: pending), at < (earliest ?? Int.max) { earliest = at }
        }
        if let earliest {
            let emit = String(String.UnicodeScalarView(pending[..<earliest]))
            pending.removeAll()
            return (emit, true)
        }
        // Longest suffix of pending that is a proper prefix of some stop string.
        var hold = 0
        for stop in stops {
            var length = min(stop.count - 1, pending.count)
            while length > hold {
                if pending[(pending.count - length)...].elementsEqual(stop[..<length]) { hold = length; break }
                length -= 1
            }
        }
        let emit = String(String.UnicodeScalarView(pending[..<(pending.count - hold)]))
        pending.removeFirst(pending.count - hold)
        return (emit, false)
    }

    /// The held-back text, at the end of a reply that hit no stop string.
    mutating func finish() -> String {
        defer { pending.removeAll() }
        return String(String.UnicodeScalarView(pending))
    }

    static func find(_ needle: [Unicode.Scalar], in haystack: [Unicode.Scalar]) -> Int? {
        guard !needle.isEmpty, haystack.count >= needle.count else { return nil }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            if haystack[start..<(start + needle.count)].elementsEqual(needle) { return start }
        }
        return nil
    }
}

/// Milliseconds from a monotonic clock.
public func monotonicMilliseconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) * 1000 + Double(t.tv_nsec) / 1e6
}

/// One conversation: history, KV cache, sampler state. Used by one thread at a time
/// (a concurrent call throws `.busy`); `cancel()` may be called from any thread.
public final class Session: @unchecked Sendable {
    public let model: Model
    public let contextSize: Int
    /// Token budget for system prompt + history when rendering a chat prompt.
    public let maxWindowSize: Int
    let transformer: Transformer
    let cache: KVCache
    let template: ChatTemplate?
    public private(set) var systemPrompt: String
    public private(set) var history: [ChatMessage] = []
    /// Tools offered to the model on every chat call (function calling); empty = none.
    public private(set) var tools: [ToolDefinition] = []
    private var random: RandomSource
    private let cancelRequested = Atomic<Bool>(false)
    private let busy = Atomic<Bool>(false)
    let logits: FloatBuffer              // [vocab] of the last position run
    /// The pull-form reply in progress (between beginChat and endChat).
    private var pull: Run? = nil

    /// Ids that end an assistant turn.
    let stopTokens: Set<Int32>

    public init(model: Model, options: SessionOptions = SessionOptions()) throws {
        guard options.contextSize >= 0 else { throw QwenError.invalidArgument("n_ctx is negative (\(options.contextSize))") }
        guard options.maxWindowSize >= 0 else { throw QwenError.invalidArgument("max_window_size is negative (\(options.maxWindowSize))") }
        guard options.threads >= 0 else { throw QwenError.invalidArgument("n_threads is negative (\(options.threads))") }
        self.model = model
        contextSize = options.contextSize > 0 ? options.contextSize : model.config.defaultContextSize(cap: SessionOptions.defaultContextCap)
        if let limit = model.config.maximumContextSize, contextSize > limit {
            throw QwenError.invalidArgument("n_ctx \(contextSize) is above this model's limit of \(limit) positions")
        }
        maxWindowSize = options.maxWindowSize > 0 ? options.maxWindowSize : model.maxWindowSize
        transformer = try Transformer(model: model, threads: options.threads > 0 ? options.threads : model.threads)
        cache = try KVCache(config: model.config, capacity: contextSize)
        template = try? ChatTemplate(tokenizer: model.tokenizer)
        systemPrompt = options.systemPrompt
        random = RandomSource(seed: options.seed != 0 ? options.seed : UInt64(monotonicMilliseconds() * 1000))
        logits = FloatBuffer(model.config.vocabSize)
        let t = model.tokenizer
        stopTokens = Set(["<|im_end|>", "<|endoftext|>", "<|im_start|>"].compactMap { t.specialTokenID($0) })
    }

    /// Ask the running call to stop; safe from any thread.
    public func cancel() { cancelRequested.store(true, ordering: .relaxed) }

    /// Forget the history; keeps the system prompt. Cached keys/values stay: they are
    /// only ever reused for an identical prompt prefix, so a conversation re-sent after
    /// a reset (OpenAI style) still skips the prefill it already did.
    public func reset() throws {
        try exclusive {
            pull = nil
            history.removeAll()
        }
    }

    public func setSystemPrompt(_ prompt: String) throws {
        try exclusive { systemPrompt = prompt }
    }

    /// Offer `tools` on the following chat calls (empty: none). With tools, the prompt is
    /// Qwen's ReAct prompt, "Observation:" ends the reply, and the reply joins the history
    /// parsed into content and a tool call (`ToolReply`). Reset keeps them, as the system prompt.
    public func setTools(_ tools: [ToolDefinition]) throws {
        try exclusive { self.tools = tools }
    }

    /// Append `message` to the history without generating (restoring a conversation,
    /// an assistant turn that called a tool). System messages go through `setSystemPrompt`.
    public func addMessage(_ message: ChatMessage) throws {
        try exclusive {
            guard pull == nil else { throw QwenError.wrongState("a pull-form reply is in progress; end it first") }
            guard message.role != .system else { throw QwenError.invalidArgument("a system message is the system prompt; set it instead") }
            guard message.toolCall == nil || message.role == .assistant else {
                throw QwenError.invalidArgument("only an assistant turn can carry a tool call")
            }
            if let call = message.toolCall, call.name.isEmpty { throw QwenError.invalidArgument("the tool call has an empty name") }
            history.append(message)
        }
    }

    private func exclusive<T>(_ body: () throws -> T) throws -> T {
        guard busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            throw QwenError.busy("the session is running another call")
        }
        defer { busy.store(false, ordering: .releasing) }
        return try body()
    }

    // MARK: one-shot forms

    /// Appends `messages` to the history, generates the assistant's reply (each piece
    /// handed to `onPiece`, which returns false to stop) and appends it to the history.
    public func chat(_ messages: [ChatMessage], parameters: GenerationParameters = GenerationParameters(),
                     onPiece: ((String) -> Bool)? = nil) throws -> GenerationResult {
        try exclusive {
            guard pull == nil else { throw QwenError.wrongState("a pull-form reply is in progress; end it first") }
            let run = try startChat(messages, parameters)
            return try drive(run, onPiece: onPiece)
        }
    }

    /// Raw continuation of `prompt` without a chat template (for base models). The
    /// history is not used or changed.
    public func generate(prompt: String, parameters: GenerationParameters = GenerationParameters(),
                         onPiece: ((String) -> Bool)? = nil) throws -> GenerationResult {
        try exclusive {
            guard pull == nil else { throw QwenError.wrongState("a pull-form reply is in progress; end it first") }
            let ids = model.tokenizer.encode(prompt)
            guard !ids.isEmpty else { throw QwenError.invalidArgument("the prompt is empty") }
            guard ids.count < contextSize else {
                throw QwenError.contextFull("the prompt has \(ids.count) tokens; the context window allows \(contextSize - 1)")
            }
            let run = try Run(session: self, prompt: ids, parameters: parameters, newHistory: nil)
            return try drive(run, onPiece: onPiece)
        }
    }

    private func drive(_ run: Run, onPiece: ((String) -> Bool)?) throws -> GenerationResult {
        while let piece = try run.next() {
            if !piece.isEmpty, let onPiece, !onPiece(piece) {
                run.stop(.callback)
            }
        }
        return try finish(run)
    }

    // MARK: pull form

    public func beginChat(_ messages: [ChatMessage], parameters: GenerationParameters = GenerationParameters()) throws {
        try exclusive {
            guard pull == nil else { throw QwenError.wrongState("a pull-form reply is already in progress") }
            pull = try startChat(messages, parameters)
        }
    }

    /// The next piece, or nil when the reply is complete (then call `endChat`).
    public func nextPiece() throws -> String? {
        try exclusive {
            guard let run = pull else { throw QwenError.wrongState("no reply in progress; call begin first") }
            do {
                while let piece = try run.next() {
                    if !piece.isEmpty { return piece }
                }
                return nil
            } catch {
                pull = nil
                throw error
            }
        }
    }

    public func endChat() throws -> GenerationResult {
        try exclusive {
            guard let run = pull else { throw QwenError.wrongState("no reply in progress; call begin first") }
            pull = nil
            if !run.isFinished { run.stop(.callback) }
            return try finish(run)
        }
    }

    // MARK: internals

    /// The prompt ids `chat(messages)` would run, with the system prompt and history it
    /// would leave behind. A system-role message replaces the system prompt.
    private func renderChat(_ messages: [ChatMessage]) throws -> (ids: [Int32], system: String, conversation: [ChatMessage]) {
        guard let template else {
            throw QwenError.unsupportedModel("this model's vocabulary has no ChatML tokens; use generate")
        }
        guard !messages.isEmpty else { throw QwenError.invalidArgument("no messages") }
        var system = systemPrompt
        var conversation = history
        for message in messages {
            if message.role == .system { system = message.content } else { conversation.append(message) }
        }
        if ReActConversation.isNeeded(messages: conversation, tools: tools) {
            let react = try ReActConversation(messages: conversation, tools: tools)
            let ids = try template.render(system: pythonMessageStrip(system), react: react, maxWindow: maxWindowSize,
                                          contextLimit: contextSize - 1)
            return (ids, system, conversation)
        }
        let (ids, _) = try template.render(system: system, messages: conversation, maxWindow: maxWindowSize,
                                           contextLimit: contextSize - 1)
        return (ids, system, conversation)
    }

    /// The prompt ids `chat(messages)` would run, without running the model.
    public func renderPrompt(_ messages: [ChatMessage]) throws -> [Int32] {
        try exclusive { try renderChat(messages).ids }
    }

    private func startChat(_ messages: [ChatMessage], _ parameters: GenerationParameters) throws -> Run {
        let (ids, system, conversation) = try renderChat(messages)
        var parameters = parameters
        if !tools.isEmpty && !parameters.stop.contains(observationStop) { parameters.stop.append(observationStop) }
        return try Run(session: self, prompt: ids, parameters: parameters, newHistory: (system, conversation))
    }

    private func finish(_ run: Run) throws -> GenerationResult {
        var result = run.result
        if result.finishReason == .cancelled {
            // Nothing of a cancelled call stays: not its turn in the history, nor the keys
            // and values it computed, so the next call runs exactly as if it had never
            // been made (the cache keeps the prefix the call found and reused).
            cache.truncate(to: result.cachedTokens)
            throw QwenError.cancelled("the call was cancelled")
        }
        result.text = run.text
        if let (system, conversation) = run.newHistory {
            systemPrompt = system
            var reply = ChatMessage(role: .assistant, content: result.text)
            if !tools.isEmpty {
                let parsed = ToolReply(parsing: result.text)
                reply = ChatMessage(role: .assistant, content: parsed.content, toolCall: parsed.toolCall)
            }
            history = conversation + [reply]
        }
        return result
    }

    /// One reply in progress: prompt prefill, then a token per `next()`.
    final class Run {
        unowned let session: Session
        let prompt: [Int32]
        let parameters: GenerationParameters
        let newHistory: (String, [ChatMessage])?
        var sampler: Sampler
        var detokenizer: StreamingDetokenizer
        var filter: StopStringFilter
        var result = GenerationResult()
        var text = ""
        var isFinished = false
        private var prefilled = false
        private(set) var generatedIds: [Int32] = []

        init(session: Session, prompt: [Int32], parameters: GenerationParameters, newHistory: (String, [ChatMessage])?) throws {
            guard parameters.maxTokens >= 0 else { throw QwenError.invalidArgument("max_tokens is negative") }
            self.session = session
            self.prompt = prompt
            self.parameters = parameters
            self.newHistory = newHistory
            let sampling = try parameters.sampling.validated()
            let seed = parameters.seed ?? session.random.next()
            sampler = Sampler(parameters: sampling, seed: seed)
            detokenizer = StreamingDetokenizer(tokenizer: session.model.tokenizer, skipSpecial: true)
            filter = StopStringFilter(stops: parameters.stop)
            result.promptTokens = prompt.count
            session.cancelRequested.store(false, ordering: .relaxed)
        }

        func stop(_ reason: FinishReason) {
            guard !isFinished else { return }
            isFinished = true
            result.finishReason = reason
        }

        private var cancelled: Bool { session.cancelRequested.load(ordering: .relaxed) }

        /// Reuses the longest cached prefix, then runs the rest of the prompt in chunks.
        private func prefill() throws {
            let cache = session.cache
            let start = monotonicMilliseconds()
            var common = 0
            let cached = cache.tokens
            while common < min(cached.count, prompt.count) && cached[common] == prompt[common] { common += 1 }
            if common == prompt.count { common -= 1 }   // recompute the last token for its logits
            cache.truncate(to: common)
            session.transformer.beginSequence(length: prompt.count, cache: cache)
            common = cache.tokens.count
            result.cachedTokens = common
            var position = common
            let batch = session.transformer.maxBatch
            while position < prompt.count {
                if cancelled { stop(.cancelled); return }
                let end = min(position + batch, prompt.count)
                try session.transformer.forward(tokens: Array(prompt[position..<end]), cache: cache,
                                                logits: end == prompt.count ? session.logits.pointer : nil)
                position = end
            }
            result.prefillMilliseconds = monotonicMilliseconds() - start
        }

        /// The next piece of text ("" when a token completed no character), or nil when done.
        func next() throws -> String? {
            if isFinished { return nil }
            if !prefilled {
                prefilled = true
                try prefill()
                if isFinished { return nil }
            }
            let start = monotonicMilliseconds()
            defer { result.decodeMilliseconds += monotonicMilliseconds() - start }
            if cancelled { stop(.cancelled); return nil }
            if generatedIds.count >= parameters.maxTokens {
                return flush(.length)
            }
            let vocab = session.model.config.vocabSize
            guard let id = sampler.sample(session.logits.pointer, vocab: vocab, history: prompt + generatedIds) else {
                throw QwenError.badModel("the model computed non-finite logits (NaN or infinite weights in the checkpoint?)")
            }
            if session.stopTokens.contains(id) { return flush(.stop) }
            generatedIds.append(id)
            result.generatedTokens = generatedIds.count
            let (emit, stopped) = filter.push(detokenizer.push(id))
            text += emit
            if stopped {
                stop(.stop)
                return emit
            }
            if generatedIds.count < parameters.maxTokens {
                guard session.cache.tokens.count < session.contextSize else {
                    let rest = flush(.length) ?? ""
                    return emit + rest
                }
                try session.transformer.forward(tokens: [id], cache: session.cache, logits: session.logits.pointer)
            }
            return emit
        }

        /// Ends the reply, emitting held-back text.
        private func flush(_ reason: FinishReason) -> String? {
            let (emit, stopped) = filter.push(detokenizer.finish())
            var rest = emit
            if !stopped { rest += filter.finish() }
            text += rest
            stop(reason)
            return rest.isEmpty ? nil : rest
        }
    }
}
