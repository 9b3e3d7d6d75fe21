import Synchronization

/// Options of a session (mirrors qwen_session_params).
public struct SessionOptions: Sendable {
    /// Context window in tokens; 0 = `ModelConfig.defaultContextSize(cap: defaultContextCap)`
    /// (the trained length capped; dynamic-NTK checkpoints get the cap).
    public var contextSize: Int = 0
    /// Ignored: every session computes on its model's one pool (`ModelLoadOptions.threads`).
    /// Kept so existing callers compile; must not be negative.
    public var threads: Int = 0
    /// Sampler seed; 0 = from the clock.
    public var seed: UInt64 = 0
    /// nil = the model's own default: its chat template's (Qwen2.5: "You are Qwen, created
    /// by Alibaba Cloud. You are a helpful assistant."; Qwen3: none), Qwen v1's
    /// `Model.defaultSystemPrompt`.
    public var systemPrompt: String? = nil
    /// Token budget for system prompt + history (Qwen's max_window_size); 0 = the model's.
    public var maxWindowSize: Int = 0
    /// How the KV cache stores keys and values: f16, or q8 (Q8_0, 53% of f16's memory;
    /// needs a head size that is a multiple of 32). Prompt prefixes are only shared
    /// between sessions of one type.
    public var kvType: KVCacheType = .f16
    public init() {}

    /// Default window when the caller does not choose one: the KV cache of a 32k-context
    /// model could otherwise grow to gigabytes.
    public static let defaultContextCap = 8192
}

/// One conversation: history, system prompt, tools, its KV cache and sampler state. It
/// holds no threads and no scratch: its calls run on the model's engine, together with
/// every other session's. Used by one thread at a time (a concurrent call throws
/// `.busy`); `cancel()` may be called from any thread.
public final class Session: @unchecked Sendable {
    public let model: Model
    public let contextSize: Int
    /// Token budget for system prompt + history when rendering a chat prompt.
    public let maxWindowSize: Int
    private(set) var cache: KVCache
    /// nil = the model's own default (see `SessionOptions.systemPrompt`).
    public private(set) var systemPrompt: String?
    public private(set) var history: [ChatMessage] = []
    /// Tools offered to the model on every chat call (function calling); empty = none.
    public private(set) var tools: [ToolDefinition] = []
    /// Draws the seed of each reply that sets none; saved with the session (`SessionFile`).
    var random: RandomSource
    private let cancelFlag = CancelFlag()
    private let busy = Atomic<Bool>(false)
    /// The pull-form reply in progress (between beginChat and endChat).
    private var pull: Reply? = nil
    /// Its cache went back to the model's prompt cache (`Model.releaseSession`).
    private var released = false
    /// The last finished reply's log probabilities (when it recorded them).
    private var lastLogprobs: [TokenLogprob] = []

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
        cache = try KVCache(config: model.config, capacity: contextSize, type: options.kvType)
        systemPrompt = options.systemPrompt
        random = RandomSource(seed: options.seed != 0 ? options.seed : UInt64(monotonicMilliseconds() * 1000))
    }

    deinit {
        // A pulled reply never ended: stop it and wait until the engine lets go of the cache.
        if let pull, !pull.isFinished {
            cancelFlag.set()
            _ = try? pull.drain()
        }
    }

    /// Log probabilities of the reply in progress (pull form: so far), or else of the last
    /// reply (`GenerationParameters.logprobs`); empty when it recorded none.
    public var replyLogprobs: [TokenLogprob] { pull?.result.logprobs ?? lastLogprobs }

    /// Prompt tokens whose keys/values the session's cache holds (the prefix a next call
    /// on the same conversation reuses).
    public var cachedTokens: [Int32] { cache.tokens }

    /// How the session's KV cache stores keys and values.
    public var kvType: KVCacheType { cache.type }

    /// Bytes of KV cache one token takes (keys and values of every layer) and bytes the
    /// cache holds now (it grows with the conversation).
    public var kvCacheBytes: (perToken: Int, allocated: Int) { (cache.bytesPerToken, cache.bytes) }

    /// Ask the running call to stop; safe from any thread. The call ends within one step
    /// of the engine (one token, or one prompt chunk).
    public func cancel() { cancelFlag.set() }

    /// Forget the history; keeps the system prompt and tools. Cached keys/values stay:
    /// they are only ever reused for an identical prompt prefix, so a conversation re-sent
    /// after a reset (OpenAI style) still skips the prefill it already did.
    public func reset() throws {
        try exclusive {
            guard pull == nil else { throw QwenError.wrongState("a pull-form reply is in progress; end it first") }
            history.removeAll()
        }
    }

    /// nil = the model's own default.
    public func setSystemPrompt(_ prompt: String?) throws {
        try exclusive { systemPrompt = prompt }
    }

    /// Offer `tools` on the following chat calls (empty: none). Qwen2/2.5/3: the chat
    /// template describes them and the reply's <tool_call> blocks join the history as its
    /// tool calls; Qwen (v1): Qwen's ReAct prompt, "Observation:" ends the reply, and the
    /// reply joins the history parsed into content and a tool call (`ToolReply`). Reset
    /// keeps them, as the system prompt.
    public func setTools(_ tools: [ToolDefinition]) throws {
        try exclusive { self.tools = tools }
    }

    /// Append `message` to the history without generating (restoring a conversation,
    /// an assistant turn that called a tool). System messages go through `setSystemPrompt`.
    public func addMessage(_ message: ChatMessage) throws {
        try exclusive {
            guard pull == nil else { throw QwenError.wrongState("a pull-form reply is in progress; end it first") }
            try Session.validate(message)
            history.append(message)
        }
    }

    /// Appends `call` to the last history message, an assistant turn (parallel calls).
    public func addToolCall(_ call: ToolCall) throws {
        try exclusive {
            guard pull == nil else { throw QwenError.wrongState("a pull-form reply is in progress; end it first") }
            guard let last = history.indices.last, history[last].role == .assistant else {
                throw QwenError.invalidArgument("a tool call joins an assistant turn; the last message is not one")
            }
            guard !call.name.isEmpty else { throw QwenError.invalidArgument("the tool call has an empty name") }
            history[last].toolCalls.append(call)
        }
    }

    /// Writes the session to `path`: system prompt, tools, history, context and window
    /// sizes, sampler state and the KV cache's rows (`SessionFile` describes the format),
    /// so `Model.loadSession` in any process continues exactly where this one is. The file
    /// is written beside `path` (readable by its owner only) and renamed over it at the end,
    /// so a failed save leaves an existing file as it was. Errors: `.io` (the directory cannot be written, a full
    /// disk), `.wrongState` while a pull-form reply is in progress, `.busy`.
    public func save(to path: String) throws {
        try exclusive {
            guard pull == nil else { throw QwenError.wrongState("a pull-form reply is in progress; end it before saving") }
            try SessionFile.write(self, to: path)
        }
    }

    static func validate(_ message: ChatMessage) throws {
        guard message.role != .system else { throw QwenError.invalidArgument("a system message is the system prompt; set it instead") }
        guard (message.toolCalls.isEmpty && message.reasoning == nil) || message.role == .assistant else {
            throw QwenError.invalidArgument("only an assistant turn can carry tool calls or reasoning")
        }
        if message.toolCalls.contains(where: { $0.name.isEmpty }) { throw QwenError.invalidArgument("a tool call has an empty name") }
    }

    /// Sets system prompt, tools and history at once (the prompt cache hands a session out
    /// this way). Not while a pull-form reply is in progress.
    func restore(systemPrompt: String?, tools: [ToolDefinition], history: [ChatMessage]) throws {
        try exclusive {
            guard pull == nil else { throw QwenError.wrongState("a pull-form reply is in progress; end it first") }
            for message in history { try Session.validate(message) }
            self.systemPrompt = systemPrompt
            self.tools = tools
            self.history = history
        }
    }

    private func exclusive<T>(_ body: () throws -> T) throws -> T {
        guard busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            throw QwenError.busy("the session is running another call")
        }
        defer { busy.store(false, ordering: .releasing) }
        guard !released else { throw QwenError.wrongState("the session was released to the prompt cache") }
        return try body()
    }

    /// Takes over `cached` (from the prompt cache) in place of the session's own, unused
    /// cache. Only before the session's first call.
    func adopt(_ cached: KVCache) {
        cache = cached
    }

    /// Gives the session's cache up for the prompt cache; nil when a call is in progress
    /// (or it was given up already). The session is unusable afterwards.
    func detachCache() -> KVCache? {
        try? exclusive {
            guard pull == nil else { throw QwenError.wrongState("a pull-form reply is in progress") }
            released = true
            return cache
        }
    }


    // MARK: one-shot forms

    /// Appends `messages` to the history, generates the assistant's reply (each piece
    /// handed to `onPiece`, which returns false to stop) and appends it to the history.
    /// `onPiece` runs on the calling thread.
    public func chat(_ messages: [ChatMessage], parameters: GenerationParameters = GenerationParameters(),
                     onPiece: ((String) -> Bool)? = nil) throws -> GenerationResult {
        try exclusive {
            guard pull == nil else { throw QwenError.wrongState("a pull-form reply is in progress; end it first") }
            return try drive(try startChat(messages, parameters), onPiece: onPiece)
        }
    }

    /// Raw continuation of `prompt` without a chat template (for base models). The
    /// history is not used or changed.
    public func generate(prompt: String, parameters: GenerationParameters = GenerationParameters(),
                         onPiece: ((String) -> Bool)? = nil) throws -> GenerationResult {
        try generate(promptTokens: model.tokenizer.encode(prompt), parameters: parameters, onPiece: onPiece)
    }

    /// Raw continuation of the token ids `promptTokens`.
    public func generate(promptTokens: [Int32], parameters: GenerationParameters = GenerationParameters(),
                         onPiece: ((String) -> Bool)? = nil) throws -> GenerationResult {
        try exclusive {
            guard pull == nil else { throw QwenError.wrongState("a pull-form reply is in progress; end it first") }
            guard !promptTokens.isEmpty else { throw QwenError.invalidArgument("the prompt is empty") }
            guard promptTokens.count < contextSize else {
                throw QwenError.contextFull("the prompt has \(promptTokens.count) tokens; the context window allows \(contextSize - 1)")
            }
            return try drive(try start(promptTokens, parameters, grammar: Session.grammarText(parameters), newHistory: nil),
                             onPiece: onPiece)
        }
    }

    /// The logits [vocab] generation computes for each token of `continuation` after the
    /// raw prompt `prompt` (`each(i, logits)` for continuation[i], before any penalty), the
    /// continuation fed as if sampled: the prompt prefilled in chunks, every following
    /// token decoded alone, exactly as a reply runs. The history is not used or changed.
    public func replayLogits(prompt: [Int32], continuation: [Int32], each: @escaping @Sendable (Int, UnsafePointer<Float>) -> Void) throws {
        var parameters = GenerationParameters()
        parameters.sampling = .greedy
        parameters.maxTokens = continuation.count
        parameters.stopsAtEndOfTurn = false
        parameters.forcedTokens = continuation
        parameters.observeLogits = each
        _ = try generate(promptTokens: prompt, parameters: parameters)
    }

    private func drive(_ reply: Reply, onPiece: ((String) -> Bool)?) throws -> GenerationResult {
        while let piece = try reply.next() {
            if !piece.isEmpty, let onPiece, !onPiece(piece) { reply.stop(.callback) }
        }
        return try finish(reply)
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
            guard let reply = pull else { throw QwenError.wrongState("no reply in progress; call begin first") }
            do {
                while let piece = try reply.next() {
                    if !piece.isEmpty { return piece }
                }
                return nil
            } catch {
                pull = nil
                throw error
            }
        }
    }

    /// The next part of the reply, or nil when it is complete (then call `endChat`): for
    /// Qwen2/2.5/3 the reply split as it streams (text, thought, each tool call once its
    /// block closes; `NativeReplyParser`), for Qwen (v1) its raw text as content. Use this
    /// or `nextPiece` for one reply, not both.
    public func nextPart() throws -> ReplyPart? {
        try exclusive {
            guard let reply = pull else { throw QwenError.wrongState("no reply in progress; call begin first") }
            do {
                return try reply.nextPart()
            } catch {
                pull = nil
                throw error
            }
        }
    }

    public func endChat() throws -> GenerationResult {
        try exclusive {
            guard let reply = pull else { throw QwenError.wrongState("no reply in progress; call begin first") }
            pull = nil
            if !reply.isFinished {
                reply.stop(.callback)
                try reply.drain()
            }
            return try finish(reply)
        }
    }

    // MARK: internals

    /// The prompt `chat(messages)` would run, with the system prompt and history it
    /// would leave behind. A system-role message replaces the system prompt.
    private func renderChat(_ messages: [ChatMessage], enableThinking: Bool?, offeringTools: Bool = true) throws
        -> (prompt: ChatPrompt, system: String?, conversation: [ChatMessage]) {
        guard !messages.isEmpty else { throw QwenError.invalidArgument("no messages") }
        var system = systemPrompt
        var conversation = history
        for message in messages {
            if message.role == .system { system = message.content } else { conversation.append(message) }
        }
        let prompt = try render(system: system, conversation: conversation, enableThinking: enableThinking,
                                tools: offeringTools ? tools : [])
        return (prompt, system, conversation)
    }

    /// The prompt for the reply to `conversation` under `system` with `tools` (the
    /// session's when nil).
    func render(system: String?, conversation: [ChatMessage], enableThinking: Bool? = nil, tools: [ToolDefinition]? = nil) throws -> ChatPrompt {
        try model.chatFormat.prompt(system: system, conversation: conversation, tools: tools ?? self.tools, enableThinking: enableThinking,
                                    maxWindow: maxWindowSize, contextLimit: contextSize - 1)
    }

    /// The prompt ids `chat(messages)` would run, without running the model.
    public func renderPrompt(_ messages: [ChatMessage], enableThinking: Bool? = nil) throws -> [Int32] {
        try exclusive { try renderChat(messages, enableThinking: enableThinking).prompt.ids }
    }

    private func startChat(_ messages: [ChatMessage], _ parameters: GenerationParameters) throws -> Reply {
        let (prompt, system, conversation) = try renderChat(messages, enableThinking: parameters.enableThinking,
                                                            offeringTools: parameters.toolChoice != .none)
        var parameters = parameters
        for stop in prompt.stop where !parameters.stop.contains(stop) { parameters.stop.append(stop) }
        var grammar = try Session.grammarText(parameters)
        switch parameters.toolChoice {
        case .auto, .none: break
        case .required, .named:
            guard grammar == nil else { throw QwenError.invalidArgument("a forced tool call cannot take a grammar or a JSON schema too") }
            guard !tools.isEmpty else { throw QwenError.invalidArgument("tool_choice asks for a tool call, but no tools are offered") }
            var forced = tools
            if case .named(let name) = parameters.toolChoice {
                forced = tools.filter { $0.name == name }
                guard !forced.isEmpty else { throw QwenError.invalidArgument("tool_choice names '\(name)', which is not among the tools offered") }
            }
            grammar = ToolCallGrammar.gbnf(tools: forced, format: prompt.replyFormat)
        }
        // A thinking model reasons before the constrained answer: in the block the prompt
        // opened, or in one it may open itself unless thinking was turned off.
        var reasoning: ReasoningGrammar.Mode? = nil
        if case .native(_, let startsInReasoning) = prompt.replyFormat {
            if startsInReasoning {
                reasoning = .opened
            } else if parameters.enableThinking != false, model.tokenizer.specialTokenID(NativeReplyParser.thinkOpen) != nil {
                reasoning = .optional
            }
        }
        return try start(prompt.ids, parameters, grammar: grammar, reasoning: reasoning,
                         newHistory: (system, conversation, prompt.replyFormat))
    }

    /// The GBNF text of the reply's `grammar` or `jsonSchema`, nil when it has neither.
    static func grammarText(_ parameters: GenerationParameters) throws -> String? {
        switch (parameters.grammar, parameters.jsonSchema) {
        case (nil, nil): return nil
        case (let grammar?, nil): return grammar
        case (nil, let schema?): return try JSONSchemaGrammar.gbnf(schema: schema)
        default: throw QwenError.invalidArgument("give a grammar or a JSON schema, not both")
        }
    }

    /// Submits the reply to `prompt` to the engine, reusing the cached prefix; the reply
    /// is held to the GBNF `grammar` when one is given (behind a reasoning block when
    /// `reasoning` is set).
    private func start(_ prompt: [Int32], _ parameters: GenerationParameters, grammar: String? = nil,
                       reasoning: ReasoningGrammar.Mode? = nil, newHistory: Reply.NewHistory?) throws -> Reply {
        guard parameters.maxTokens >= 0 else { throw QwenError.invalidArgument("max_tokens is negative") }
        if let n = parameters.logprobs, !(0...TokenLogprob.maxTop).contains(n) {
            throw QwenError.invalidArgument("logprobs must be 0...\(TokenLogprob.maxTop) alternatives (got \(n))")
        }
        let automaton = try grammar.map { try model.grammars.automaton($0, reasoning: reasoning) }
        let trie = automaton.map { _ in model.grammars.tokenTrie(model.tokenizer, vocabSize: model.config.vocabSize) }
        let sampling = try parameters.sampling.validated()
        let seed = parameters.seed ?? random.next()
        cancelFlag.clear()
        let engine = model.engine
        let cached = engine.reuse(cache, for: prompt)
        let state = GenerationState(prompt: prompt, parameters: parameters, sampling: sampling, seed: seed,
                                    tokenizer: model.tokenizer, vocab: model.config.vocabSize, grammar: automaton, trie: trie)
        let job = Job(engine: engine, cache: cache, prompt: prompt, cachedTokens: cached, generation: state,
                      chunkSize: engine.prefillChunk, cancelFlag: cancelFlag)
        try engine.submit(job)
        return Reply(job: job, newHistory: newHistory)
    }

    private func finish(_ reply: Reply) throws -> GenerationResult {
        var result = reply.result
        if result.finishReason == .cancelled {
            // Nothing of a cancelled call stays: not its turn in the history, nor the keys
            // and values it computed, so the next call runs exactly as if it had never
            // been made (the cache keeps the prefix the call found and reused).
            cache.truncate(to: reply.job.cachedTokens)
            throw QwenError.cancelled("the call was cancelled")
        }
        result.text = reply.text
        lastLogprobs = result.logprobs
        if let (system, conversation, format) = reply.newHistory {
            systemPrompt = system
            history = conversation + [format.message(parsing: result.text)]
        }
        return result
    }
}

/// A reply in progress, as its caller sees it: the engine's job, and the pieces and
/// counts handed out so far.
final class Reply {
    let job: Job
    /// The system prompt and history a chat reply completes, and how to read the reply.
    typealias NewHistory = (system: String?, conversation: [ChatMessage], format: ReplyFormat)
    /// nil for raw generation.
    let newHistory: NewHistory?
    private(set) var text = ""
    private(set) var result = GenerationResult()
    private(set) var isFinished = false
    /// The caller stopped the reply: queued pieces are no longer handed out.
    private var stoppedAs: FinishReason? = nil
    /// Splits a native-format reply into parts as it streams (`nextPart`).
    private var parser: NativeReplyParser?
    /// Parts split off and not yet handed out; `partsEnded` once the parser has finished.
    private var parts: [ReplyPart] = []
    private var partsEnded = false

    init(job: Job, newHistory: NewHistory?) {
        self.job = job
        self.newHistory = newHistory
        if case .native(let toolsOffered, let startsInReasoning)? = newHistory?.format {
            parser = NativeReplyParser(toolsOffered: toolsOffered, startsInReasoning: startsInReasoning)
        }
        result.promptTokens = job.prompt.count
        result.cachedTokens = job.cachedTokens
    }

    /// The caller ends the reply (its callback returned false, or it ended a pull early).
    func stop(_ reason: FinishReason) {
        if stoppedAs == nil { stoppedAs = reason }
        job.stop(reason)
    }

    /// The next piece ("" when a token completed no character), or nil when the reply is
    /// over. Throws what failed the sequence (the cache then holds only its reused prefix).
    func next() throws -> String? {
        while !isFinished {
            switch job.next() {
            case .token(let emit, let generated, let logprob):
                guard stoppedAs == nil, !job.cancelFlag.isSet else { continue }
                text += emit
                result.generatedTokens = generated
                if let logprob { result.logprobs.append(logprob) }
                return emit
            case .finished(let reason, let generated):
                isFinished = true
                if stoppedAs == nil && !job.cancelFlag.isSet { result.generatedTokens = generated }
                result.cachedTokens = job.reusedTokens
                result.finishReason = job.cancelFlag.isSet ? .cancelled : (stoppedAs ?? reason)
                (result.prefillMilliseconds, result.decodeMilliseconds) = job.timings
            case .failed(let error):
                isFinished = true
                job.cache.truncate(to: job.cachedTokens)
                throw error
            case .logits:
                job.acknowledge()
            }
        }
        return nil
    }

    /// The next part of the reply (see `Session.nextPart`), or nil when it is over.
    func nextPart() throws -> ReplyPart? {
        while parts.isEmpty && !partsEnded {
            if let piece = try next() {
                if piece.isEmpty { continue }
                parts += parser?.feed(piece) ?? [.content(piece)]
            } else {
                parts += parser?.finish() ?? []
                partsEnded = true
            }
        }
        return parts.isEmpty ? nil : parts.removeFirst()
    }

    /// Waits for the end, handing out nothing more.
    func drain() throws {
        if stoppedAs == nil { stoppedAs = .callback }
        while try next() != nil {}
    }
}
