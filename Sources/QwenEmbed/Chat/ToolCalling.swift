/// Function calling of Qwen (v1), the way Qwen's own OpenAI-compatible server does it (QwenLM/Qwen
/// `openai_api.py`): tool definitions become a ReAct instruction in front of the last
/// user question, assistant tool calls and tool results become "Thought / Action /
/// Action Input / Observation" text, and the reply is parsed back into a tool call or
/// plain content. Each function here names the piece of `openai_api.py` it follows.

/// A tool the model may call (one entry of OpenAI `tools` / legacy `functions`).
public struct ToolDefinition: Sendable, Equatable {
    /// The name the model writes after "Action:" (`name_for_model`).
    public var name: String
    /// What the tool is useful for (`description_for_model`).
    public var description: String
    /// The parameters' JSON schema, written as Python's `json.dumps(..., ensure_ascii=False)`.
    public var parametersJSON: String
    /// Whether the caller gave a description / parameters: a chat template sees the tool as
    /// the caller's OpenAI-style object, without the fields it lacked.
    public let hasDescription: Bool, hasParameters: Bool

    /// `parameters` is JSON text (NULL/nil = `{}`); it is re-serialized as Qwen's
    /// server writes it, so any spacing the caller used gives the same prompt.
    public init(name: String, description: String? = nil, parameters: String? = nil) throws {
        guard !name.isEmpty else { throw QwenError.invalidArgument("a tool has an empty name") }
        self.name = name
        self.description = description ?? ""
        hasDescription = description != nil
        hasParameters = parameters != nil
        do {
            parametersJSON = try JSONValue.pythonDumps(parameters ?? "{}", context: "tool \(name)")
        } catch QwenError.badModel(let message) {
            throw QwenError.invalidArgument("the parameters of \(message)")
        }
    }

    /// A definition as a saved session holds it (`SessionFile`): every field as the
    /// original had it. Nil unless the name is set and `parametersJSON` is JSON in the form
    /// `init` writes (re-serializing it gives it back).
    init?(saved name: String, description: String, parametersJSON: String, hasDescription: Bool, hasParameters: Bool) {
        guard !name.isEmpty, (try? JSONValue.pythonDumps(parametersJSON, context: "tool \(name)")) == parametersJSON else { return nil }
        self.name = name
        self.description = description
        self.parametersJSON = parametersJSON
        self.hasDescription = hasDescription
        self.hasParameters = hasParameters
    }
}

/// A call the assistant made: the tool's name and its arguments as the model wrote
/// them (JSON text as a rule; not validated, as Qwen's server does not).
public struct ToolCall: Sendable, Equatable {
    public var name: String
    public var arguments: String
    public init(name: String, arguments: String) {
        self.name = name
        self.arguments = arguments
    }
}

/// The stop string Qwen's server adds when tools are offered: the model is to stop
/// before writing the tool's result itself.
let observationStop = "Observation:"

/// The ReAct prompt of `parse_messages`, as the (query, history) it hands to Qwen's
/// `model.chat` — or, when the conversation ends with a tool result, the history whose
/// last assistant turn the model continues (`text_complete_last_message`).
struct ReActConversation: Equatable {
    /// (user, assistant) pairs, oldest first, as Qwen's history.
    var history: [(user: String, assistant: String)]
    /// The question to answer; nil = continue the last assistant turn of `history`.
    var query: String?

    static func == (a: ReActConversation, b: ReActConversation) -> Bool {
        a.query == b.query && a.history.elementsEqual(b.history) { $0.user == $1.user && $0.assistant == $1.assistant }
    }

    private static let toolDescription = "{name_for_model}: Call this tool to interact with the {name_for_human} API. What is the {name_for_human} API useful for? {description_for_model} Parameters: {parameters}"

    private static let instructionTemplate = """
        Answer the following questions as best you can. You have access to the following APIs:

        {tools_text}

        Use the following format:

        Question: the input question you must answer
        Thought: you should always think about what to do
        Action: the action to take, should be one of [{tools_name_text}]
        Action Input: the input to the action
        Observation: the result of the action
        ... (this Thought/Action/Action Input/Observation can be repeated zero or more times)
        Thought: I now know the final answer
        Final Answer: the final answer to the original input question

        Begin!
        """

    /// REACT_INSTRUCTION filled in with `tools` (empty: no instruction).
    static func instruction(_ tools: [ToolDefinition]) -> String {
        guard !tools.isEmpty else { return "" }
        let descriptions = tools.map { tool in
            pythonFormat(toolDescription, ["name_for_model": tool.name, "name_for_human": tool.name,
                                           "description_for_model": tool.description, "parameters": tool.parametersJSON])
        }
        return pythonMessageStrip(pythonFormat(instructionTemplate, ["tools_text": descriptions.joined(separator: "\n\n"),
                                                                    "tools_name_text": tools.map(\.name).joined(separator: ", ")]))
    }

    /// `template.format(**values)` for templates whose only braces are `{key}` fields:
    /// one pass, so a value holding "{x}" stays as it is.
    static func pythonFormat(_ template: String, _ values: [String: String]) -> String {
        var out = ""
        var rest = Substring(template)
        while let open = rest.firstIndex(of: "{"), let close = rest[open...].firstIndex(of: "}") {
            let key = String(rest[rest.index(after: open)..<close])
            out += rest[..<open]
            out += values[key] ?? String(rest[open...close])
            rest = rest[rest.index(after: close)...]
        }
        return out + rest
    }

    /// `parse_messages(messages, functions)`: `messages` without the system prompt.
    init(messages: [ChatMessage], tools: [ToolDefinition]) throws {
        var instruction = ReActConversation.instruction(tools)
        var merged: [(role: Role, content: String)] = []
        for (index, message) in messages.enumerated() {
            var content = pythonMessageStrip(message.content)
            switch message.role {
            case .tool:
                guard let last = merged.last, last.role == .assistant else {
                    throw QwenError.invalidArgument("message \(index): a tool result must follow an assistant turn")
                }
                merged[merged.count - 1].content += "\nObservation: \(content)"
                if index == messages.count - 1 { merged[merged.count - 1].content += "\nThought:" }
            case .assistant:
                guard let last = merged.last else {
                    throw QwenError.invalidArgument("message \(index): an assistant turn must follow a user message")
                }
                if let call = message.toolCall {
                    if !content.hasPrefix("Thought:") { content = "Thought: \(content)" }
                    content = "\(content)\nAction: \(call.name)\nAction Input: \(call.arguments)"
                } else if !tools.isEmpty {
                    content = "Thought: I now know the final answer.\nFinal Answer: \(content)"
                }
                if last.role == .user {
                    merged.append((.assistant, pythonMessageStrip(content)))
                } else {
                    merged[merged.count - 1].content += "\n" + content
                }
            case .user:
                merged.append((.user, content))
            case .system:
                throw QwenError.invalidArgument("message \(index): a system message inside the conversation")
            }
        }
        guard merged.contains(where: { $0.role == .user }) else {
            throw QwenError.invalidArgument("the conversation has no user message")
        }
        if merged.last?.role == .user {
            query = merged.removeLast().content
        } else if messages.last?.role == .tool {
            query = nil
        } else {
            throw QwenError.invalidArgument("the last message must be the user's or a tool result")
        }
        guard merged.count % 2 == 0 else {
            throw QwenError.invalidArgument("expected exactly one user (or tool) message before every assistant turn")
        }
        history = []
        for i in stride(from: 0, to: merged.count, by: 2) {
            guard merged[i].role == .user, merged[i + 1].role == .assistant else {
                throw QwenError.invalidArgument("expected exactly one user (or tool) message before every assistant turn")
            }
            var user = pythonMessageStrip(merged[i].content)
            if !instruction.isEmpty && i == merged.count - 2 {
                user = "\(instruction)\n\nQuestion: \(user)"
                instruction = ""
            }
            history.append((user, pythonMessageStrip(merged[i + 1].content)))
        }
        if !instruction.isEmpty, let question = query {
            query = "\(instruction)\n\nQuestion: \(question)"
        }
    }

    /// Whether `messages` need this rendering even without tools (`parse_messages`
    /// renders tool calls and results whether or not functions are offered).
    static func isNeeded(messages: [ChatMessage], tools: [ToolDefinition]) -> Bool {
        !tools.isEmpty || messages.contains { $0.role == .tool || $0.toolCall != nil }
    }
}

/// A reply split as `parse_response` does: a tool call with the thought before it, or
/// the final answer.
public struct ToolReply: Sendable, Equatable {
    public var content: String
    public var toolCall: ToolCall?

    /// `parse_response(response)` of Qwen's server, on the reply already cut at its stop
    /// strings. Malformed or partial replies fall through to plain content as there:
    /// an "Action:" with no "Action Input:" after it, or an empty tool name, is content.
    public init(parsing reply: String) {
        var response = Array(reply.unicodeScalars)
        let i = Self.find("\nAction:", in: response)
        let j = Self.find("\nAction Input:", in: response)
        var k = Self.find("\nObservation:", in: response)
        var name = "", arguments = ""
        if i >= 0 && i < j {
            if k < j {   // the stop word cut "Observation:" off: put it back
                response = Array(pythonRStrip(String(String.UnicodeScalarView(response))).unicodeScalars) + Array("\nObservation:".unicodeScalars)
                k = Self.find("\nObservation:", in: response)
            }
            name = pythonStrip(Self.slice(response, i + 8, j))
            arguments = pythonStrip(Self.slice(response, j + 14, k))
        }
        if !name.isEmpty {
            var thought = Array(response[..<i])
            let t = Self.find("Thought: ", in: thought)
            if t >= 0 { thought = Array(thought[(t + 9)...]) }
            content = pythonStrip(String(String.UnicodeScalarView(thought)))
            toolCall = ToolCall(name: name, arguments: arguments)
            return
        }
        let z = Self.rfind("\nFinal Answer: ", in: response)
        content = String(String.UnicodeScalarView(z >= 0 ? response[(z + 15)...] : response[...]))
        toolCall = nil
    }

    /// Python's s[start:end] for 0 <= start: empty when end < start.
    private static func slice(_ s: [Unicode.Scalar], _ start: Int, _ end: Int) -> String {
        let from = min(start, s.count), to = min(max(end, from), s.count)
        return String(String.UnicodeScalarView(s[from..<to]))
    }

    private static func find(_ needle: String, in haystack: [Unicode.Scalar]) -> Int {
        StopStringFilter.find(Array(needle.unicodeScalars), in: haystack) ?? -1
    }

    private static func rfind(_ needle: String, in haystack: [Unicode.Scalar]) -> Int {
        let n = Array(needle.unicodeScalars)
        guard haystack.count >= n.count else { return -1 }
        for start in stride(from: haystack.count - n.count, through: 0, by: -1)
        where haystack[start..<(start + n.count)].elementsEqual(n) {
            return start
        }
        return -1
    }
}

/// Python's str.isspace for one scalar (Unicode White_Space plus the separators U+1C-1F).
private func pythonIsSpace(_ s: Unicode.Scalar) -> Bool {
    s.properties.isWhitespace || (0x1C...0x1F).contains(s.value)
}

/// Python's `s.rstrip()`.
func pythonRStrip(_ s: String) -> String {
    var scalars = Substring(s).unicodeScalars
    while let last = scalars.last, pythonIsSpace(last) { scalars.removeLast() }
    return String(scalars)
}

/// Python's `s.strip()`.
func pythonStrip(_ s: String) -> String {
    var scalars = Substring(pythonRStrip(s)).unicodeScalars
    while let first = scalars.first, pythonIsSpace(first) { scalars.removeFirst() }
    return String(scalars)
}

/// `s.lstrip('\n').rstrip()`, what Qwen's server does to every message.
func pythonMessageStrip(_ s: String) -> String {
    var scalars = Substring(pythonRStrip(s)).unicodeScalars
    while scalars.first == "\n" { scalars.removeFirst() }
    return String(scalars)
}
