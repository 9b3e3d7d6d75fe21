import CQwenHeader
import QwenEmbed
#if canImport(Glibc)
import Glibc
#endif

/// What a `qwen_session *` points at: the Swift session, the model handle it keeps
/// alive, and the C strings it hands out (valid until the session's next call).
final class SessionHandle {
    let session: Session
    let modelHandle: ModelHandle
    /// History messages as C strings (content, reasoning, each tool call's name and
    /// arguments); rebuilt after the history changes.
    private var messageStrings: [MessageStrings] = []
    private var messageStringsFor: Int = -1
    /// The last result's text (qwen_result.text), the last pulled piece, the system prompt
    /// last handed out.
    private var resultText: UnsafeMutablePointer<CChar>? = nil
    private var pieceText: UnsafeMutablePointer<CChar>? = nil
    private var systemPromptText: UnsafeMutablePointer<CChar>? = nil
    /// The last pulled tool call's name and arguments (qwen_chat_next_part).
    private var partCall: (name: UnsafeMutablePointer<CChar>, arguments: UnsafeMutablePointer<CChar>)? = nil
    /// [tools]: the offered tools as C strings (description / parameters nil where the
    /// caller gave none), for the tools in `toolStringsFor`; rebuilt when they change.
    private var toolStrings: [(name: UnsafeMutablePointer<CChar>?, description: UnsafeMutablePointer<CChar>?,
                               parameters: UnsafeMutablePointer<CChar>?)] = []
    private var toolStringsFor: [ToolDefinition] = []

    init(session: Session, modelHandle: ModelHandle) {
        self.session = session
        self.modelHandle = modelHandle
    }

    deinit {
        free(resultText)
        free(pieceText)
        free(systemPromptText)
        _ = keepPartCall(nil)
        freeToolStrings()
    }

    /// Tool i the session offers, its strings owned by the handle; nil when out of range.
    func tool(_ i: Int) -> qwen_tool? {
        let tools = session.tools
        guard i >= 0, i < tools.count else { return nil }
        if toolStringsFor != tools || toolStrings.count != tools.count {
            freeToolStrings()
            toolStrings = tools.map { ($0.name.withCString { strdup($0) },
                                       $0.hasDescription ? $0.description.withCString { strdup($0) } : nil,
                                       $0.hasParameters ? $0.parametersJSON.withCString { strdup($0) } : nil) }
            toolStringsFor = tools
        }
        let t = toolStrings[i]
        return qwen_tool(name: UnsafePointer(t.name), description: UnsafePointer(t.description), parameters: UnsafePointer(t.parameters))
    }

    private func freeToolStrings() {
        for t in toolStrings { free(t.name); free(t.description); free(t.parameters) }
        toolStrings = []
        toolStringsFor = []
    }

    /// The system prompt as a C string owned by the handle (until the next call); nil for
    /// the model's own default.
    func systemPrompt() -> UnsafePointer<CChar>? {
        free(systemPromptText)
        systemPromptText = session.systemPrompt.map { strdup($0) } ?? nil
        return UnsafePointer(systemPromptText)
    }

    /// Keeps a pulled tool call's strings alive until the next call.
    func keepPartCall(_ call: ToolCall?) -> (name: UnsafePointer<CChar>, arguments: UnsafePointer<CChar>)? {
        if let (name, arguments) = partCall { free(name); free(arguments) }
        partCall = call.flatMap { call in strdup(call.name).flatMap { name in strdup(call.arguments).map { (name, $0) } } }
        return partCall.map { (UnsafePointer($0.name), UnsafePointer($0.arguments)) }
    }

    var pointer: OpaquePointer { OpaquePointer(Unmanaged.passRetained(self).toOpaque()) }

    static func from(_ pointer: OpaquePointer?) throws -> SessionHandle {
        let p = try required(pointer, "session")
        return Unmanaged<SessionHandle>.fromOpaque(UnsafeRawPointer(p)).takeUnretainedValue()
    }

    /// Message i of the history as C strings owned by the handle; INVALID_ARGUMENT naming
    /// the history's length when out of range.
    func requireMessage(_ i: Int) throws -> (role: Role, strings: MessageStrings) {
        guard let message = message(i) else {
            throw QwenError.invalidArgument("message index \(i) is out of range (the history has \(session.history.count))")
        }
        return message
    }

    /// Message i of the history as C strings owned by the handle, nil when out of range.
    func message(_ i: Int) -> (role: Role, strings: MessageStrings)? {
        let history = session.history
        guard i >= 0, i < history.count else { return nil }
        if messageStringsFor != history.count || messageStrings.count != history.count {
            messageStrings = history.map(MessageStrings.init)
            messageStringsFor = history.count
        }
        return (history[i].role, messageStrings[i])
    }

    func invalidateMessages() { messageStringsFor = -1 }

    /// Fills a caller's qwen_result, keeping the text alive in the handle.
    func store(_ result: GenerationResult, into out: UnsafeMutablePointer<qwen_result>?) {
        invalidateMessages()
        free(resultText)
        resultText = strdup(result.text)
        guard let out else { return }
        out.pointee = qwen_result(
            finish_reason: qwen_finish_reason(rawValue: UInt32(result.finishReason.rawValue)),
            n_prompt_tokens: Int32(result.promptTokens), n_generated_tokens: Int32(result.generatedTokens),
            n_cached_tokens: Int32(result.cachedTokens), prefill_ms: result.prefillMilliseconds,
            decode_ms: result.decodeMilliseconds, text: UnsafePointer(resultText))
    }

    /// Keeps a pulled piece alive until the next call (in memory the handle owns, the way
    /// the result text and history strings are kept); returns its bytes and length.
    func keepPiece(_ piece: String) throws -> (UnsafePointer<CChar>, Int) {
        free(pieceText)
        pieceText = nil
        let bytes = Array(piece.utf8)
        guard let raw = malloc(bytes.count + 1) else { throw QwenError.outOfMemory("cannot keep a piece of \(bytes.count) bytes") }
        let copy = raw.bindMemory(to: CChar.self, capacity: bytes.count + 1)   // [len + 1], NUL-terminated
        bytes.withUnsafeBytes { source in
            if let base = source.baseAddress { raw.copyMemory(from: base, byteCount: bytes.count) }
        }
        copy[bytes.count] = 0
        pieceText = copy
        return (UnsafePointer(copy), bytes.count)
    }
}

/// One history message's C strings, freed with it.
final class MessageStrings {
    let content: UnsafeMutablePointer<CChar>?
    let reasoning: UnsafeMutablePointer<CChar>?
    let toolCalls: [(name: UnsafeMutablePointer<CChar>?, arguments: UnsafeMutablePointer<CChar>?)]

    init(_ message: ChatMessage) {
        content = strdup(message.content)
        reasoning = message.reasoning.map { strdup($0) } ?? nil
        toolCalls = message.toolCalls.map { (strdup($0.name), strdup($0.arguments)) }
    }

    deinit {
        free(content)
        free(reasoning)
        toolCalls.forEach { free($0.name); free($0.arguments) }
    }
}

/// Reads a caller's params struct of `struct_size` bytes over the defaults, so a
/// program built against an older (shorter) header still works.
func readParams<T>(_ pointer: UnsafePointer<T>?, defaults: T, name: String) throws -> T {
    var value = defaults
    guard let pointer else { return value }
    let size = try declaredSize(UnsafeRawPointer(pointer).load(as: UInt32.self), name)
    withUnsafeMutableBytes(of: &value) { dst in
        let count = min(size, dst.count)
        dst.baseAddress!.copyMemory(from: UnsafeRawPointer(pointer), byteCount: count)
        // struct_size itself stays what we read; the rest beyond `count` keeps defaults.
    }
    return value
}

func defaultSessionParams() -> qwen_session_params {
    qwen_session_params(struct_size: UInt32(MemoryLayout<qwen_session_params>.size), n_ctx: 0, n_threads: 0,
                        seed: 0, system_prompt: nil, max_window_size: 0, tools: nil, n_tools: 0,
                        kv_type: Int32(QWEN_KV_F16.rawValue))
}

func defaultGenParams() -> qwen_gen_params {
    qwen_gen_params(struct_size: UInt32(MemoryLayout<qwen_gen_params>.size), max_tokens: 512, temperature: 1.0,
                    top_k: 0, top_p: 0.8, repetition_penalty: 1.1, seed: 0, stop: nil, n_stop: 0, enable_thinking: -1,
                    grammar: nil, json_schema: nil, logprobs: -1, tool_choice: nil)
}

/// Converts qwen_gen_params into the engine's parameters, validating every field.
func generationParameters(_ pointer: UnsafePointer<qwen_gen_params>?) throws -> GenerationParameters {
    let p = try readParams(pointer, defaults: defaultGenParams(), name: "qwen_gen_params")
    var g = GenerationParameters()
    guard p.max_tokens >= 0 else { throw QwenError.invalidArgument("max_tokens is negative (\(p.max_tokens))") }
    g.maxTokens = Int(p.max_tokens)
    g.sampling.temperature = p.temperature
    g.sampling.topK = Int(p.top_k)
    g.sampling.topP = p.top_p
    g.sampling.repetitionPenalty = p.repetition_penalty
    g.seed = p.seed == 0 ? nil : p.seed
    if try sizeArgument(p.n_stop, "n_stop") > 0 {
        guard p.n_stop <= 1024 else { throw QwenError.invalidArgument("n_stop is \(p.n_stop); at most 1024 stop strings") }
        let stops = try required(p.stop, "stop")
        for i in 0..<p.n_stop { g.stop.append(try utf8Argument(stops[i], "stop[\(i)]")) }
    }
    switch p.enable_thinking {
    case -1: g.enableThinking = nil
    case 0, 1: g.enableThinking = p.enable_thinking == 1
    default: throw QwenError.invalidArgument("enable_thinking is \(p.enable_thinking); -1 (the template's default), 0 or 1")
    }
    if let grammar = p.grammar { g.grammar = try utf8Argument(grammar, "grammar") }
    if let schema = p.json_schema { g.jsonSchema = try utf8Argument(schema, "json_schema") }
    switch p.logprobs {
    case -1: g.logprobs = nil
    case 0...Int32(TokenLogprob.maxTop): g.logprobs = Int(p.logprobs)
    default: throw QwenError.invalidArgument("logprobs is \(p.logprobs); -1 (off) or 0...\(TokenLogprob.maxTop) alternatives")
    }
    if let choice = p.tool_choice {
        switch try utf8Argument(choice, "tool_choice") {
        case "auto": g.toolChoice = .auto
        case "none": g.toolChoice = .none
        case "required": g.toolChoice = .required
        case "": throw QwenError.invalidArgument("tool_choice is empty; NULL, \"auto\", \"none\", \"required\" or a tool's name")
        case let name: g.toolChoice = .named(name)
        }
    }
    return g
}

func chatMessages(_ messages: UnsafePointer<qwen_message>?, _ n: Int, allowingNone: Bool = false) throws -> [ChatMessage] {
    let n = try sizeArgument(n, "n_messages")
    guard n > 0 || allowingNone else { throw QwenError.invalidArgument("no messages (n_messages is 0)") }
    if n == 0 { return [] }
    guard n <= 1 << 20 else { throw QwenError.invalidArgument("n_messages is absurd (\(n))") }
    let list = try required(messages, "messages")
    return try (0..<n).map { i in
        guard let role = Role(rawValue: Int32(bitPattern: list[i].role.rawValue)) else {
            throw QwenError.invalidArgument("messages[\(i)].role is \(list[i].role.rawValue), not a qwen_role")
        }
        return ChatMessage(role: role, content: try utf8Argument(list[i].content, "messages[\(i)].content"))
    }
}

/// Wraps a C stream callback as the engine's piece handler.
func pieceHandler(_ cb: qwen_stream_fn?, _ userData: UnsafeMutableRawPointer?) -> ((String) -> Bool)? {
    guard let cb else { return nil }
    return { piece in
        var bytes = Array(piece.utf8CString)
        let length = bytes.count - 1
        return bytes.withUnsafeMutableBufferPointer { cb($0.baseAddress, length, userData) }
    }
}

@c @implementation public func qwen_session_params_init(_ params: UnsafeMutablePointer<qwen_session_params>?) {
    params?.pointee = defaultSessionParams()
}

@c @implementation public func qwen_gen_params_init(_ params: UnsafeMutablePointer<qwen_gen_params>?) {
    params?.pointee = defaultGenParams()
}

/// A caller's qwen_session_params as the engine's options and tools (validated).
func sessionSettings(_ params: UnsafePointer<qwen_session_params>?) throws -> (options: SessionOptions, tools: [ToolDefinition]) {
    let p = try readParams(params, defaults: defaultSessionParams(), name: "qwen_session_params")
    var options = SessionOptions()
    options.contextSize = Int(p.n_ctx)
    options.threads = try threadsArgument(p.n_threads, "n_threads")
    options.seed = p.seed
    options.maxWindowSize = Int(p.max_window_size)
    if p.system_prompt != nil { options.systemPrompt = try utf8Argument(p.system_prompt, "system_prompt") }
    switch p.kv_type {
    case Int32(QWEN_KV_F16.rawValue): options.kvType = .f16
    case Int32(QWEN_KV_Q8.rawValue): options.kvType = .q8
    default: throw QwenError.invalidArgument("kv_type \(p.kv_type) is not a qwen_kv_type (QWEN_KV_F16 = 0, QWEN_KV_Q8 = 1)")
    }
    return (options, try toolDefinitions(p.tools, p.n_tools))
}

@c @implementation public func qwen_session_create(_ model: OpaquePointer?, _ params: UnsafePointer<qwen_session_params>?,
                                                   _ out: UnsafeMutablePointer<OpaquePointer?>?) -> qwen_status {
    guarded {
        let out = try required(out, "out")
        out.pointee = nil
        let modelHandle = try ModelHandle.from(model)
        let (options, tools) = try sessionSettings(params)
        let session = try Session(model: modelHandle.model, options: options)
        if !tools.isEmpty { try session.setTools(tools) }
        out.pointee = SessionHandle(session: session, modelHandle: modelHandle).pointer
        return QWEN_OK
    }
}

@c @implementation public func qwen_session_acquire(_ model: OpaquePointer?, _ conversation: UnsafePointer<qwen_message>?,
                                                    _ n: Int, _ params: UnsafePointer<qwen_session_params>?,
                                                    _ out: UnsafeMutablePointer<OpaquePointer?>?) -> qwen_status {
    qwen_session_acquire_with_calls(model, conversation, nil, n, params, out)
}

@c @implementation public func qwen_session_acquire_with_calls(_ model: OpaquePointer?, _ conversation: UnsafePointer<qwen_message>?,
                                                               _ calls: UnsafePointer<qwen_tool_call>?, _ n: Int,
                                                               _ params: UnsafePointer<qwen_session_params>?,
                                                               _ out: UnsafeMutablePointer<OpaquePointer?>?) -> qwen_status {
    guarded {
        let out = try required(out, "out")
        out.pointee = nil
        let modelHandle = try ModelHandle.from(model)
        var messages = try chatMessages(conversation, n, allowingNone: true)
        if let calls {
            for i in messages.indices where calls[i].name != nil {
                messages[i].toolCalls = [try toolCall(calls[i], "tool_calls[\(i)]")]
            }
        }
        let (options, tools) = try sessionSettings(params)
        let session = try modelHandle.model.acquireSession(conversation: messages, tools: tools, options: options)
        out.pointee = SessionHandle(session: session, modelHandle: modelHandle).pointer
        return QWEN_OK
    }
}

@c @implementation public func qwen_session_acquire_prompt(_ model: OpaquePointer?, _ prompt: UnsafePointer<CChar>?,
                                                           _ params: UnsafePointer<qwen_session_params>?,
                                                           _ out: UnsafeMutablePointer<OpaquePointer?>?) -> qwen_status {
    guarded {
        let out = try required(out, "out")
        out.pointee = nil
        let modelHandle = try ModelHandle.from(model)
        let text = try utf8Argument(prompt, "prompt")
        let (options, tools) = try sessionSettings(params)
        let session = try modelHandle.model.acquireSession(promptTokens: modelHandle.model.tokenizer.encode(text), options: options)
        if !tools.isEmpty { try session.setTools(tools) }
        out.pointee = SessionHandle(session: session, modelHandle: modelHandle).pointer
        return QWEN_OK
    }
}

@c @implementation public func qwen_session_release(_ session: OpaquePointer?) {
    guard let session else { return }
    let handle = Unmanaged<SessionHandle>.fromOpaque(UnsafeRawPointer(session))
    let swiftSession = handle.takeUnretainedValue().session
    swiftSession.model.releaseSession(swiftSession)
    handle.release()
}

@c @implementation public func qwen_session_free(_ session: OpaquePointer?) {
    guard let session else { return }
    Unmanaged<SessionHandle>.fromOpaque(UnsafeRawPointer(session)).release()
}

@c @implementation public func qwen_session_reset(_ session: OpaquePointer?) -> qwen_status {
    guarded {
        let handle = try SessionHandle.from(session)
        try handle.session.reset()
        handle.invalidateMessages()
        return QWEN_OK
    }
}

@c @implementation public func qwen_session_set_system_prompt(_ session: OpaquePointer?, _ prompt: UnsafePointer<CChar>?) -> qwen_status {
    guarded {
        let handle = try SessionHandle.from(session)
        try handle.session.setSystemPrompt(prompt == nil ? nil : try utf8Argument(prompt, "system_prompt"))
        return QWEN_OK
    }
}

@c @implementation public func qwen_session_get_system_prompt(_ session: OpaquePointer?,
                                                              _ prompt: UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> qwen_status {
    guarded {
        let handle = try SessionHandle.from(session)
        let prompt = try required(prompt, "system_prompt")
        prompt.pointee = handle.systemPrompt()
        return QWEN_OK
    }
}

@c @implementation public func qwen_session_get_kv_bytes(_ session: OpaquePointer?, _ perToken: UnsafeMutablePointer<Int>?,
                                                         _ allocated: UnsafeMutablePointer<Int>?) -> qwen_status {
    guarded {
        let bytes = try SessionHandle.from(session).session.kvCacheBytes
        perToken?.pointee = bytes.perToken
        allocated?.pointee = bytes.allocated
        return QWEN_OK
    }
}

@c @implementation public func qwen_session_n_messages(_ session: OpaquePointer?) -> Int {
    guard let handle = try? SessionHandle.from(session) else { return 0 }
    return handle.session.history.count
}

@c @implementation public func qwen_session_get_message(_ session: OpaquePointer?, _ i: Int, _ role: UnsafeMutablePointer<qwen_role>?,
                                                        _ content: UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> qwen_status {
    guarded {
        let handle = try SessionHandle.from(session)
        let message = try handle.requireMessage(i)
        role?.pointee = qwen_role(rawValue: UInt32(message.role.rawValue))
        content?.pointee = UnsafePointer(message.strings.content)
        return QWEN_OK
    }
}

@c @implementation public func qwen_session_get_tool_call(_ session: OpaquePointer?, _ i: Int,
                                                          _ name: UnsafeMutablePointer<UnsafePointer<CChar>?>?,
                                                          _ arguments: UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> qwen_status {
    guarded {
        let handle = try SessionHandle.from(session)
        let name = try required(name, "name")
        name.pointee = nil
        arguments?.pointee = nil
        let message = try handle.requireMessage(i)
        name.pointee = UnsafePointer(message.strings.toolCalls.first?.name)
        arguments?.pointee = UnsafePointer(message.strings.toolCalls.first?.arguments)
        return QWEN_OK
    }
}

/// A caller's qwen_tool_call (name required), `what` naming it in errors.
func toolCall(_ call: qwen_tool_call, _ what: String) throws -> ToolCall {
    ToolCall(name: try utf8Argument(call.name, "\(what).name"),
             arguments: call.arguments == nil ? "" : try utf8Argument(call.arguments, "\(what).arguments"))
}

/// The caller's tool list as the engine's definitions (validated).
func toolDefinitions(_ tools: UnsafePointer<qwen_tool>?, _ n: Int) throws -> [ToolDefinition] {
    let n = try sizeArgument(n, "n_tools")
    guard n <= 4096 else { throw QwenError.invalidArgument("n_tools is \(n); at most 4096 tools") }
    guard n > 0 else { return [] }
    let list = try required(tools, "tools")
    return try (0..<n).map { i in
        let tool = list[i]
        return try ToolDefinition(
            name: try utf8Argument(tool.name, "tools[\(i)].name"),
            description: tool.description == nil ? nil : try utf8Argument(tool.description, "tools[\(i)].description"),
            parameters: tool.parameters == nil ? nil : try utf8Argument(tool.parameters, "tools[\(i)].parameters"))
    }
}

@c @implementation public func qwen_session_set_tools(_ session: OpaquePointer?, _ tools: UnsafePointer<qwen_tool>?,
                                                      _ n: Int) -> qwen_status {
    guarded {
        let handle = try SessionHandle.from(session)
        try handle.session.setTools(try toolDefinitions(tools, n))
        return QWEN_OK
    }
}

@c @implementation public func qwen_session_n_tools(_ session: OpaquePointer?) -> Int {
    (try? SessionHandle.from(session).session.tools.count) ?? 0
}

@c @implementation public func qwen_session_get_tool(_ session: OpaquePointer?, _ i: Int,
                                                     _ tool: UnsafeMutablePointer<qwen_tool>?) -> qwen_status {
    guarded {
        let handle = try SessionHandle.from(session)
        let out = try required(tool, "tool")
        guard let found = handle.tool(i) else {
            throw QwenError.invalidArgument("tool index \(i) is out of range (the session offers \(handle.session.tools.count))")
        }
        out.pointee = found
        return QWEN_OK
    }
}

@c @implementation public func qwen_session_add_message(_ session: OpaquePointer?, _ role: qwen_role,
                                                        _ content: UnsafePointer<CChar>?, _ toolName: UnsafePointer<CChar>?,
                                                        _ toolArguments: UnsafePointer<CChar>?) -> qwen_status {
    guarded {
        let handle = try SessionHandle.from(session)
        guard let r = Role(rawValue: Int32(bitPattern: role.rawValue)) else {
            throw QwenError.invalidArgument("role is \(role.rawValue), not a qwen_role")
        }
        let text = content == nil ? "" : try utf8Argument(content, "content")
        var call: ToolCall? = nil
        if toolName != nil {
            call = ToolCall(name: try utf8Argument(toolName, "tool_name"),
                            arguments: toolArguments == nil ? "" : try utf8Argument(toolArguments, "tool_arguments"))
        } else if toolArguments != nil {
            throw QwenError.invalidArgument("tool_arguments without tool_name")
        }
        try handle.session.addMessage(ChatMessage(role: r, content: text, toolCall: call))
        handle.invalidateMessages()
        return QWEN_OK
    }
}

@c @implementation public func qwen_session_save(_ session: OpaquePointer?, _ path: UnsafePointer<CChar>?) -> qwen_status {
    guarded {
        let handle = try SessionHandle.from(session)
        try handle.session.save(to: try utf8Argument(path, "path"))
        return QWEN_OK
    }
}

@c @implementation public func qwen_session_load(_ model: OpaquePointer?, _ path: UnsafePointer<CChar>?,
                                                 _ params: UnsafePointer<qwen_session_params>?,
                                                 _ out: UnsafeMutablePointer<OpaquePointer?>?) -> qwen_status {
    guarded {
        let out = try required(out, "out")
        let modelHandle = try ModelHandle.from(model)
        let file = try utf8Argument(path, "path")
        // Only the sizes apply: the system prompt, tools and sampler state are the file's.
        let p = try readParams(params, defaults: defaultSessionParams(), name: "qwen_session_params")
        var options = SessionOptions()
        options.contextSize = Int(p.n_ctx)
        options.threads = try threadsArgument(p.n_threads, "n_threads")
        options.maxWindowSize = Int(p.max_window_size)
        let session = try modelHandle.model.loadSession(from: file, options: options)
        out.pointee = SessionHandle(session: session, modelHandle: modelHandle).pointer
        return QWEN_OK
    }
}

@c @implementation public func qwen_session_cancel(_ session: OpaquePointer?) {
    (try? SessionHandle.from(session))?.session.cancel()
}

@c @implementation public func qwen_chat(_ session: OpaquePointer?, _ messages: UnsafePointer<qwen_message>?, _ n: Int,
                                         _ params: UnsafePointer<qwen_gen_params>?, _ cb: qwen_stream_fn?,
                                         _ userData: UnsafeMutableRawPointer?, _ out: UnsafeMutablePointer<qwen_result>?) -> qwen_status {
    guarded {
        let handle = try SessionHandle.from(session)
        let list = try chatMessages(messages, n)
        let parameters = try generationParameters(params)
        let result = try handle.session.chat(list, parameters: parameters, onPiece: pieceHandler(cb, userData))
        handle.store(result, into: out)
        return QWEN_OK
    }
}

@c @implementation public func qwen_generate(_ session: OpaquePointer?, _ prompt: UnsafePointer<CChar>?,
                                             _ params: UnsafePointer<qwen_gen_params>?, _ cb: qwen_stream_fn?,
                                             _ userData: UnsafeMutableRawPointer?, _ out: UnsafeMutablePointer<qwen_result>?) -> qwen_status {
    guarded {
        let handle = try SessionHandle.from(session)
        let text = try utf8Argument(prompt, "prompt")
        let parameters = try generationParameters(params)
        let result = try handle.session.generate(prompt: text, parameters: parameters, onPiece: pieceHandler(cb, userData))
        handle.store(result, into: out)
        return QWEN_OK
    }
}

@c @implementation public func qwen_session_render_prompt(_ session: OpaquePointer?, _ messages: UnsafePointer<qwen_message>?,
                                                          _ n: Int, _ tokens: UnsafeMutablePointer<Int32>?, _ capacity: Int,
                                                          _ nTokens: UnsafeMutablePointer<Int>?) -> qwen_status {
    guarded {
        let handle = try SessionHandle.from(session)
        let nTokens = try required(nTokens, "n_tokens")
        nTokens.pointee = 0
        let capacity = try sizeArgument(capacity, "capacity")
        guard tokens != nil || capacity == 0 else { throw QwenError.invalidArgument("tokens is NULL but capacity is \(capacity)") }
        let ids = try handle.session.renderPrompt(try chatMessages(messages, n))
        return copyOut(ids, to: tokens, capacity: capacity, count: nTokens, what: "token")
    }
}

@c @implementation public func qwen_chat_begin(_ session: OpaquePointer?, _ messages: UnsafePointer<qwen_message>?, _ n: Int,
                                               _ params: UnsafePointer<qwen_gen_params>?) -> qwen_status {
    guarded {
        let handle = try SessionHandle.from(session)
        try handle.session.beginChat(try chatMessages(messages, n), parameters: try generationParameters(params))
        return QWEN_OK
    }
}

@c @implementation public func qwen_chat_next(_ session: OpaquePointer?, _ piece: UnsafeMutablePointer<UnsafePointer<CChar>?>?,
                                              _ len: UnsafeMutablePointer<Int>?, _ done: UnsafeMutablePointer<Bool>?) -> qwen_status {
    guarded {
        let handle = try SessionHandle.from(session)
        let piece = try required(piece, "piece")
        let len = try required(len, "len")
        let done = try required(done, "done")
        if let text = try handle.session.nextPiece() {
            (piece.pointee, len.pointee) = try handle.keepPiece(text)
            done.pointee = false
        } else {
            (piece.pointee, len.pointee) = try handle.keepPiece("")
            done.pointee = true
        }
        return QWEN_OK
    }
}

@c @implementation public func qwen_chat_end(_ session: OpaquePointer?, _ out: UnsafeMutablePointer<qwen_result>?) -> qwen_status {
    guarded {
        let handle = try SessionHandle.from(session)
        let result = try handle.session.endChat()
        handle.store(result, into: out)
        return QWEN_OK
    }
}
