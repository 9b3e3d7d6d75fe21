/// How a model's conversations become prompt tokens and its replies come back, chosen at
/// load from the architecture and the file:
/// - Qwen (v1): `make_context` and Qwen's ReAct function calling, exactly as Qwen's code.
/// - Qwen2 / 2.5 / 3: the chat template the file carries (rendered as transformers'
///   `apply_chat_template` renders it), replies in the native format (`NativeReplyParser`).
///   A file without a template, or with one outside the supported Jinja subset, gets the
///   built-in Qwen2.5 template (ChatML with Qwen's <tools> / <tool_call> format); the
///   reason is logged and shown in `ModelInfo.chatTemplate`.
enum ChatFormat {
    case makeContext(MakeContext)
    case template(FileChatTemplate)
    /// A vocabulary without ChatML tokens: raw generation only.
    case unavailable

    static func forModel(architecture: Architecture, tokenizer: Tokenizer, templateSource: String?,
                         templateTokens: [String: String]) -> (format: ChatFormat, description: String) {
        guard let makeContext = try? MakeContext(tokenizer: tokenizer) else { return (.unavailable, "none (no ChatML tokens)") }
        guard architecture.isQwen2Family else { return (.makeContext(makeContext), "make_context (Qwen v1)") }
        var reason = "the file has none"
        if let templateSource {
            do {
                return (.template(try FileChatTemplate(source: templateSource, tokenizer: tokenizer, tokens: templateTokens)), "the file's")
            } catch {
                reason = "the file's was refused: \(error)"
                Log.write(.warn, "chat template: \(reason); using the built-in Qwen2.5 template (ChatML)")
            }
        }
        guard let builtin = try? FileChatTemplate(source: FileChatTemplate.builtinQwen25, tokenizer: tokenizer, tokens: templateTokens) else {
            return (.makeContext(makeContext), "make_context (\(reason))")
        }
        return (.template(builtin), "built-in Qwen2.5 (\(reason))")
    }
}

/// A prompt ready to run, and how to read the reply to it.
struct ChatPrompt {
    let ids: [Int32]
    /// Stop strings the format adds (ReAct: "Observation:").
    let stop: [String]
    let replyFormat: ReplyFormat
}

/// How a reply is read back into content, thought and tool calls.
enum ReplyFormat {
    /// Qwen (v1): `ToolReply(parsing:)` when tools were offered, else plain text.
    case react(toolsOffered: Bool)
    /// Qwen2/2.5/3: `NativeReplyParser`.
    case native(toolsOffered: Bool, startsInReasoning: Bool)

    /// The whole reply as the history keeps it.
    func message(parsing text: String) -> ChatMessage {
        switch self {
        case .react(let toolsOffered):
            guard toolsOffered else { return ChatMessage(role: .assistant, content: text) }
            let parsed = ToolReply(parsing: text)
            return ChatMessage(role: .assistant, content: parsed.content, toolCall: parsed.toolCall)
        case .native(let toolsOffered, let startsInReasoning):
            var parser = NativeReplyParser(toolsOffered: toolsOffered, startsInReasoning: startsInReasoning)
            var message = ChatMessage(role: .assistant, content: "")
            for part in parser.feed(text) + parser.finish() {
                switch part {
                case .content(let text): message.content += text
                case .reasoning(let text): message.reasoning = (message.reasoning ?? "") + text
                case .toolCall(let call): message.toolCalls.append(call)
                }
            }
            return message
        }
    }
}

extension ChatFormat {
    /// The prompt for the reply to `conversation` (ending with a user message or a tool
    /// result) under `system` (nil: the model's own default) with `tools` offered.
    /// Oldest turns are dropped to fit `contextLimit` (Qwen v1: also `maxWindow`, as
    /// make_context); CONTEXT_FULL when even the last turn does not fit.
    func prompt(system: String?, conversation: [ChatMessage], tools: [ToolDefinition], enableThinking: Bool?,
                maxWindow: Int, contextLimit: Int) throws -> ChatPrompt {
        switch self {
        case .unavailable:
            throw QwenError.unsupportedModel("this model's vocabulary has no ChatML tokens; use generate")
        case .makeContext(let makeContext):
            let system = system ?? Model.defaultSystemPrompt
            // ReAct makes one call per turn: a turn with several becomes consecutive turns (the
            // thought goes with the first), merged by the prompt as Qwen's server merges them.
            let conversation = conversation.flatMap { message -> [ChatMessage] in
                guard message.toolCalls.count > 1 else { return [message] }
                return message.toolCalls.enumerated().map { i, call in
                    ChatMessage(role: message.role, content: i == 0 ? message.content : "", toolCall: call)
                }
            }
            if ReActConversation.isNeeded(messages: conversation, tools: tools) {
                let react = try ReActConversation(messages: conversation, tools: tools)
                let ids = try makeContext.render(system: pythonMessageStrip(system), react: react, maxWindow: maxWindow, contextLimit: contextLimit)
                return ChatPrompt(ids: ids, stop: tools.isEmpty ? [] : [observationStop], replyFormat: .react(toolsOffered: !tools.isEmpty))
            }
            let ids = try makeContext.render(system: system, messages: conversation, maxWindow: maxWindow, contextLimit: contextLimit).ids
            return ChatPrompt(ids: ids, stop: [], replyFormat: .react(toolsOffered: false))
        case .template(let template):
            guard let last = conversation.last, last.role == .user || last.role == .tool else {
                throw QwenError.invalidArgument("the last message must be the user's or a tool result")
            }
            for (index, message) in conversation.enumerated() where message.role == .tool {
                let previous = index > 0 ? conversation[index - 1] : nil
                guard previous?.role == .tool || !(previous?.toolCalls.isEmpty ?? true) else {
                    throw QwenError.invalidArgument("message \(index): a tool result must follow an assistant turn that called a tool")
                }
            }
            // Whole turns (a user message and what follows it) go, oldest first, until it fits.
            var first = 0
            while true {
                let (ids, opensThinking) = try template.promptIDs(system: system, conversation: Array(conversation[first...]),
                                                                   tools: tools, enableThinking: enableThinking)
                guard !ids.isEmpty else { throw QwenError.invalidArgument("the chat template rendered an empty prompt") }
                if ids.count <= contextLimit {
                    return ChatPrompt(ids: ids, stop: [], replyFormat: .native(toolsOffered: !tools.isEmpty, startsInReasoning: opensThinking))
                }
                guard let next = conversation[(first + 1)...].firstIndex(where: { $0.role == .user }) else {
                    throw QwenError.contextFull("the prompt needs \(ids.count) tokens with only its last turn; the context window allows \(contextLimit)")
                }
                first = next
            }
        }
    }
}
