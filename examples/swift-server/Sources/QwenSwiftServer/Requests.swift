import QwenEmbed

/// A request the server refuses: HTTP status and an OpenAI-style error object
/// (`{"error": {"message", "type", "param", "code"}}`), as the Python server's RequestError.
struct RequestError: Error, CustomStringConvertible {
    var status: Int
    var message: String
    var code: String? = nil
    var param: String? = nil
    var kind = "invalid_request_error"
    var headers: [(name: String, value: String)] = []

    static func bad(_ message: String, param: String? = nil) -> RequestError {
        RequestError(status: 400, message: message, param: param)
    }

    var body: JSON {
        .object([("error", .object([
            ("message", .string(message)), ("type", .string(kind)),
            ("param", param.map(JSON.string) ?? .null), ("code", code.map(JSON.string) ?? .null),
        ]))])
    }

    var description: String { "\(status) \(message)" }

    /// Any failure as a RequestError; the engine's errors keep their message.
    static func from(_ error: any Error) -> RequestError {
        if let error = error as? RequestError { return error }
        if let error = error as? QwenError {
            switch error {
            case .invalidArgument(let m): return .bad(m)
            case .contextFull(let m): return RequestError(status: 400, message: m, code: "context_length_exceeded")
            case .busy(let m): return RequestError(status: 503, message: m, kind: "server_error")
            case .notImplemented(let m): return RequestError(status: 501, message: m, kind: "server_error")
            default: return RequestError(status: 500, message: error.message, kind: "server_error")
            }
        }
        return RequestError(status: 500, message: "internal error: \(error)", kind: "server_error")
    }
}

/// A parsed /v1/chat/completions body: what the engine is asked to do.
struct ChatRequest: Sendable {
    /// nil: the model's own default.
    var system: String?
    /// The conversation without system messages; its last message is the one to answer
    /// (the user's, or a tool result).
    var conversation: [ChatMessage]
    var generation: GenerationParameters
    var stream = false
    var includeUsage = false
    var tools: [ToolDefinition] = []
    /// Answered with function_call instead of tool_calls (the request used `functions`).
    var legacyFunctions = false
}

/// A parsed /v1/completions body.
struct CompletionRequest: Sendable {
    var prompt: String
    var generation: GenerationParameters
    var stream = false
    var includeUsage = false
}

/// Request parsing, field by field as bindings/python/qwen_embed/server.py does it: every
/// refusal is a 400 whose message and `param` name the field.
enum RequestParser {
    static let roles: [String: Role] = [
        "system": .system, "developer": .system, "user": .user, "assistant": .assistant,
        "tool": .tool, "function": .tool,
    ]

    static func chat(_ body: JSON) throws(RequestError) -> ChatRequest {
        guard body.isObject else { throw .bad("the request body must be a JSON object") }
        guard let messages = body["messages"]?.array, !messages.isEmpty else {
            throw .bad("messages must be a non-empty list", param: "messages")
        }
        try unsupported(body, [
            ("n", { !$0.isNumber(1) }),
            ("logprobs", { if case .bool(false) = $0 { return false }; return true }),
            ("top_logprobs", { !$0.isNumber(0) }),
            ("presence_penalty", { !$0.isNumber(0) }),
            ("frequency_penalty", { !$0.isNumber(0) }),
            ("logit_bias", { !$0.isEmptyObject }),
            ("response_format", { $0["type"]?.string != "text" }),
        ])
        let (tools, legacy) = try toolDefinitions(body)
        var systems: [String] = []
        var conversation: [ChatMessage] = []
        for (i, m) in messages.enumerated() {
            let at = "messages[\(i)]"
            guard m.isObject else { throw .bad("\(at) must be an object", param: at) }
            guard let roleName = m["role"]?.string, let role = roles[roleName] else {
                throw .bad("\(at).role \(m["role"].map { $0.text } ?? "None") is not supported "
                           + "(system, developer, user, assistant, tool, function)", param: "\(at).role")
            }
            let text = try textOf(m["content"], at: "\(at).content")
            if role == .system {
                systems.append(text)
                continue
            }
            var calls: [ToolCall] = []
            if role == .assistant {
                if let toolCalls = m["tool_calls"], !toolCalls.isNull {
                    guard let list = toolCalls.array else {
                        throw .bad("\(at).tool_calls must be a list", param: "\(at).tool_calls")
                    }
                    for (j, call) in list.enumerated() {
                        guard let function = call["function"], function.isObject,
                              let name = function["name"]?.string, !name.isEmpty else {
                            throw .bad("\(at).tool_calls[\(j)].function.name must be a non-empty string",
                                       param: "\(at).tool_calls")
                        }
                        calls.append(ToolCall(name: name, arguments: try argumentsText(function["arguments"],
                                                                                       at: "\(at).tool_calls[\(j)]")))
                    }
                }
                if let legacyCall = m["function_call"], !legacyCall.isNull {
                    guard let name = legacyCall["name"]?.string, !name.isEmpty else {
                        throw .bad("\(at).function_call.name must be a non-empty string", param: "\(at).function_call")
                    }
                    calls.append(ToolCall(name: name, arguments: try argumentsText(legacyCall["arguments"],
                                                                                   at: "\(at).function_call")))
                }
            }
            let reasoning = role == .assistant ? m["reasoning_content"]?.string : nil
            conversation.append(ChatMessage(role: role, content: text, toolCalls: calls, reasoning: reasoning))
        }
        guard let last = conversation.last else {
            throw .bad("messages holds no user, assistant or tool message", param: "messages")
        }
        guard last.toolCalls.isEmpty else {
            throw .bad("the last message must be the user's or a tool result", param: "messages")
        }
        var request = ChatRequest(system: systems.isEmpty ? nil : systems.joined(separator: "\n\n"),
                                  conversation: conversation, generation: try sampling(body))
        (request.stream, request.includeUsage) = try streamFlags(body)
        request.tools = tools
        request.legacyFunctions = legacy
        return request
    }

    static func completion(_ body: JSON) throws(RequestError) -> CompletionRequest {
        guard body.isObject else { throw .bad("the request body must be a JSON object") }
        var prompt = body["prompt"]
        if let list = prompt?.array, list.count == 1, list[0].string != nil { prompt = list[0] }
        guard let text = prompt?.string, !text.isEmpty else {
            throw .bad("prompt must be a non-empty string (one prompt per request)", param: "prompt")
        }
        try unsupported(body, [
            ("n", { !$0.isNumber(1) }),
            ("best_of", { !$0.isNumber(1) }),
            ("logprobs", { if case .bool(false) = $0 { return false }; return !$0.isNumber(0) }),
            ("echo", { if case .bool(false) = $0 { return false }; return true }),
            ("suffix", { $0.string != "" }),
            ("presence_penalty", { !$0.isNumber(0) }),
            ("frequency_penalty", { !$0.isNumber(0) }),
            ("logit_bias", { !$0.isEmptyObject }),
        ])
        var request = CompletionRequest(prompt: text, generation: try sampling(body, defaultMaxTokens: 16))
        (request.stream, request.includeUsage) = try streamFlags(body)
        return request
    }

    // MARK: fields

    /// 400 naming the fields the engine cannot honour (present, not null, and `isBad`).
    static func unsupported(_ body: JSON, _ fields: [(String, (JSON) -> Bool)]) throws(RequestError) {
        let bad = fields.filter { name, isBad in
            guard let value = body[name], !value.isNull else { return false }
            return isBad(value)
        }.map(\.0)
        if let first = bad.first {
            throw .bad("unsupported: \(bad.joined(separator: ", ")) (this server generates one choice of text, "
                       + "without log probabilities, penalties other than repetition_penalty, or logit bias)",
                       param: first)
        }
    }

    static func textOf(_ content: JSON?, at: String) throws(RequestError) -> String {
        guard let content, !content.isNull else { return "" }
        if let s = content.string { return s }
        if let parts = content.array {   // [{"type": "text", "text": ...}, ...]
            var text = ""
            for part in parts {
                guard part["type"]?.string == "text", let piece = part["text"]?.string else {
                    throw .bad("\(at): only text parts are supported", param: at)
                }
                text += piece
            }
            return text
        }
        throw .bad("\(at) must be a string or a list of text parts", param: at)
    }

    /// A tool call's arguments as text: a string as it is, an object or list as Python's
    /// json.dumps(ensure_ascii=False) writes it (what Qwen's server puts in the prompt).
    static func argumentsText(_ arguments: JSON?, at: String) throws(RequestError) -> String {
        guard let arguments else { return "" }
        switch arguments {
        case .string(let s): return s
        case .object, .array:
            do {
                return try JSONValue.pythonDumps(arguments.text, context: at)
            } catch {
                throw .bad("\(at).arguments: \(error)", param: at)
            }
        default:
            throw .bad("\(at) must be a JSON string", param: at)
        }
    }

    /// (tools for the session, legacy functions?) from tools/functions and tool_choice.
    static func toolDefinitions(_ body: JSON) throws(RequestError) -> ([ToolDefinition], Bool) {
        let tools = body["tools"].flatMap { $0.isNull ? nil : $0 }
        let functions = body["functions"].flatMap { $0.isNull ? nil : $0 }
        if tools != nil && functions != nil { throw .bad("give tools or functions, not both", param: "functions") }
        let legacy = functions != nil
        let field = legacy ? "functions" : "tools"
        var entries: [JSON] = []
        if let given = functions ?? tools {
            guard let list = given.array else { throw .bad("\(field) must be a list", param: "tools") }
            entries = list
        }
        var definitions: [ToolDefinition] = []
        for (i, original) in entries.enumerated() {
            let at = "\(field)[\(i)]"
            guard original.isObject else { throw .bad("\(at) must be an object", param: at) }
            var entry = original
            if !legacy {
                let kind = original["type"].flatMap { $0.isNull ? nil : $0 } ?? .string("function")
                guard kind.string == "function", let function = original["function"], function.isObject else {
                    throw .bad("\(at): only {\"type\": \"function\", \"function\": {...}} tools exist", param: at)
                }
                entry = function
            }
            guard let name = entry["name"]?.string, !name.isEmpty else {
                throw .bad("\(at).name must be a non-empty string", param: at)
            }
            var description = ""
            if let d = entry["description"], !d.isNull {
                guard let s = d.string else { throw .bad("\(at).description must be a string", param: at) }
                description = s
            }
            let parameters = entry["parameters"] ?? .object([])
            guard parameters.isObject else { throw .bad("\(at).parameters must be a JSON schema object", param: at) }
            do {
                definitions.append(try ToolDefinition(name: name, description: description, parameters: parameters.text))
            } catch {
                throw .bad("\(at): \(error)", param: at)
            }
        }

        // tool_choice (or the legacy function_call) when present, even as null.
        let choice = body["tool_choice"] ?? body["function_call"] ?? .null
        switch choice {
        case .null, .string("auto"):
            return (definitions, legacy)
        case .string("none"):
            return ([], legacy)
        case .string("required"):
            throw .bad("tool_choice \"required\" is not supported: Qwen's ReAct prompt cannot force a call",
                       param: "tool_choice")
        case .object:
            let wanted = choice["function"].flatMap { $0.isObject ? $0 : nil } ?? choice
            let name = wanted["name"]?.string
            let named = definitions.filter { $0.name == name }
            guard !named.isEmpty else {
                throw .bad("tool_choice names \(name.map { "'\($0)'" } ?? "None"), which is not among the tools",
                           param: "tool_choice")
            }
            return (named, legacy)   // only that tool is offered (the prompt cannot force the call)
        default:
            throw .bad("tool_choice must be \"auto\", \"none\" or {\"type\": \"function\", ...}", param: "tool_choice")
        }
    }

    /// max_tokens / max_completion_tokens, temperature, top_p, top_k, repetition_penalty,
    /// seed and stop; anything else keeps the engine's default.
    static func sampling(_ body: JSON, defaultMaxTokens: Int? = nil) throws(RequestError) -> GenerationParameters {
        var p = GenerationParameters()
        if let defaultMaxTokens { p.maxTokens = defaultMaxTokens }

        /// The field's value if present and not null, checked against [low, high].
        func number(_ name: String, integer: Bool, low: Double, high: Double) throws(RequestError) -> Double? {
            guard let value = body[name], !value.isNull else { return nil }
            guard let v = value.double else {
                throw .bad("\(name) must be \(integer ? "an integer" : "a number")", param: name)
            }
            if integer && v.rounded(.towardZero) != v && v.isFinite {
                throw .bad("\(name) must be an integer", param: name)
            }
            guard !v.isNaN, v >= low, v <= high else {
                throw .bad("\(name) must be in [\(format(low)), \(format(high))]", param: name)
            }
            return v
        }

        if let v = try number("max_tokens", integer: true, low: 0, high: 1_048_576) { p.maxTokens = Int(v) }
        if let v = try number("max_completion_tokens", integer: true, low: 0, high: 1_048_576) { p.maxTokens = Int(v) }
        if let v = try number("temperature", integer: false, low: 0, high: 2) { p.sampling.temperature = Float(v) }
        if let v = try number("top_p", integer: false, low: 0, high: 1) {
            guard v > 0 else { throw .bad("top_p must be in (0, 1]", param: "top_p") }
            p.sampling.topP = Float(v)
        }
        if let v = try number("top_k", integer: true, low: 0, high: 1_048_576) { p.sampling.topK = Int(v) }
        if let v = try number("repetition_penalty", integer: false, low: 0.01, high: 10) {
            p.sampling.repetitionPenalty = Float(v)
        }
        if let v = try number("seed", integer: true, low: 0, high: 0x1p64) {
            // The literal when it is a plain integer (exact up to 2^64 - 1), else the value.
            guard case .number(let literal)? = body["seed"], let seed = UInt64(literal) ?? UInt64(exactly: v) else {
                throw .bad("seed must be in [0, \(UInt64.max)]", param: "seed")
            }
            p.seed = seed == 0 ? nil : seed   // 0: the session's own random stream, as in the C API
        }
        if let stop = body["stop"], !stop.isNull {
            var strings: [String] = []
            if let s = stop.string {
                strings = [s]
            } else if let list = stop.array, list.count <= 16, list.allSatisfy({ $0.string != nil }) {
                strings = list.compactMap(\.string)
            } else {
                throw .bad("stop must be a string or a list of at most 16 strings", param: "stop")
            }
            p.stop = strings.filter { !$0.isEmpty }
        }
        return p
    }

    static func streamFlags(_ body: JSON) throws(RequestError) -> (stream: Bool, includeUsage: Bool) {
        var stream = false
        if let value = body["stream"], !value.isNull {
            guard case .bool(let b) = value else { throw .bad("stream must be a boolean", param: "stream") }
            stream = b
        }
        var includeUsage = false
        if let options = body["stream_options"], !options.isNull {
            guard options.isObject else { throw .bad("stream_options must be an object", param: "stream_options") }
            if let flag = options["include_usage"] {
                switch flag {
                case .bool(let b): includeUsage = b
                case .null: includeUsage = false
                default: throw .bad("stream_options.include_usage must be a boolean", param: "stream_options")
                }
            }
        }
        return (stream, includeUsage)
    }

    private static func format(_ v: Double) -> String {
        v.rounded() == v && abs(v) < 1e19 ? String(format: v) : "\(v)"
    }
}

private extension String {
    /// An integral Double without a fractional part: "1048576", not "1048576.0".
    init(format v: Double) {
        if let i = Int64(exactly: v) { self = String(i) } else if let u = UInt64(exactly: v) { self = String(u) } else { self = "\(v)" }
    }
}
