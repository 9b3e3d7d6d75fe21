/// Who wrote a message (mirrors qwen_role).
public enum Role: Int32, Sendable {
    /// `tool`: a tool's result (Qwen's "function" role).
    case system = 0, user = 1, assistant = 2, tool = 3

    /// The role as chat templates and OpenAI name it ("system", "user", "assistant", "tool").
    public var name: String {
        switch self {
        case .system: return "system"
        case .user: return "user"
        case .assistant: return "assistant"
        case .tool: return "tool"
        }
    }
}

/// One message of a conversation.
public struct ChatMessage: Sendable, Equatable {
    public var role: Role
    /// The text (an assistant turn that called tools: the text before the calls).
    public var content: String
    /// The tools an assistant turn called, in order (Qwen (v1)'s ReAct format: at most one).
    public var toolCalls: [ToolCall]
    /// An assistant turn's thought (Qwen3's <think> part), nil when it wrote none.
    public var reasoning: String?

    public init(role: Role, content: String, toolCalls: [ToolCall] = [], reasoning: String? = nil) {
        self.role = role
        self.content = content
        self.toolCalls = toolCalls
        self.reasoning = reasoning
    }

    public init(role: Role, content: String, toolCall: ToolCall?) {
        self.init(role: role, content: content, toolCalls: toolCall.map { [$0] } ?? [])
    }

    /// The first tool call (the only one in Qwen (v1)'s ReAct format).
    public var toolCall: ToolCall? { toolCalls.first }
}

