/// Renders ChatML at the token level exactly as Qwen's `make_context` (chat_format
/// "chatml") does: role names and contents tokenized separately with special strings
/// as plain text, <|im_start|>/<|im_end|> inserted as ids, "\n" between parts:
///
///   <|im_start|>system\n{system}<|im_end|>
///   (\n<|im_start|>{role}\n{content}<|im_end|>)*      history, oldest first
///   \n<|im_start|>user\n{query}<|im_end|>\n<|im_start|>assistant\n
///
/// History is kept newest-turn-first while len(system) + len(turn) + len(kept) <
/// maxWindow (make_context's rule; the query is always kept), then oldest turns are
/// dropped further if the whole prompt would not fit `contextLimit`.
struct MakeContext {
    let tokenizer: Tokenizer
    let imStart: Int32
    let imEnd: Int32
    let newline: [Int32]

    init(tokenizer: Tokenizer) throws {
        guard let start = tokenizer.specialTokenID("<|im_start|>"), let end = tokenizer.specialTokenID("<|im_end|>") else {
            throw QwenError.unsupportedModel("the vocabulary has no <|im_start|>/<|im_end|> tokens, so it cannot chat in ChatML")
        }
        self.tokenizer = tokenizer
        imStart = start
        imEnd = end
        newline = tokenizer.encode("\n")
    }

    /// <|im_start|>{role}\n{content}<|im_end|>
    func block(_ role: String, _ content: String) -> [Int32] {
        [imStart] + tokenizer.encode(role) + newline + tokenizer.encode(content) + [imEnd]
    }

    /// The prompt for the reply to the last message of `messages` (which must be the
    /// user's). Returns the ids and how many history messages were dropped.
    func render(system: String, messages: [ChatMessage], maxWindow: Int, contextLimit: Int) throws -> (ids: [Int32], dropped: Int) {
        guard let query = messages.last, query.role == .user else {
            throw QwenError.invalidArgument("the last message must be the user's")
        }
        let systemTokens = block("system", system)
        let queryTokens = newline + block("user", query.content) + newline + [imStart] + tokenizer.encode("assistant") + newline

        // Turns: a user message and the messages after it up to the next user message.
        var turns: [[Int32]] = []
        var turnSizes: [Int] = []   // messages per turn
        for message in messages.dropLast() {
            let tokens = newline + block(message.role.name, message.content)
            if message.role == .user || turns.isEmpty {
                turns.append(tokens)
                turnSizes.append(1)
            } else {
                turns[turns.count - 1] += tokens
                turnSizes[turnSizes.count - 1] += 1
            }
        }
        var kept = 0          // newest turns kept
        var keptTokens = 0
        for turn in turns.reversed() {
            guard systemTokens.count + turn.count + keptTokens < maxWindow else { break }
            keptTokens += turn.count
            kept += 1
        }
        while kept > 0 && systemTokens.count + keptTokens + queryTokens.count > contextLimit {
            keptTokens -= turns[turns.count - kept].count
            kept -= 1
        }
        guard systemTokens.count + keptTokens + queryTokens.count <= contextLimit else {
            throw QwenError.contextFull("the system prompt and query need \(systemTokens.count + queryTokens.count) tokens; the context window allows \(contextLimit)")
        }
        var ids = systemTokens
        for turn in turns.suffix(kept) { ids += turn }
        ids += queryTokens
        let dropped = turnSizes.dropLast(kept).reduce(0, +)
        return (ids, dropped)
    }

    /// The prompt for a ReAct conversation (`ReActConversation`): with a question, what
    /// Qwen's `model.chat(query, history, system)` runs (make_context, as `render`);
    /// without one, what `text_complete_last_message` runs: the same turns with the last
    /// assistant turn left open, each "{role}\n{content}" tokenized as one text (Qwen
    /// encodes that prompt as one string) and no max_window_size cut — only oldest turns
    /// dropped if the prompt would not fit `contextLimit`.
    func render(system: String, react: ReActConversation, maxWindow: Int, contextLimit: Int) throws -> [Int32] {
        if let query = react.query {
            var messages: [ChatMessage] = []
            for turn in react.history {
                messages.append(ChatMessage(role: .user, content: turn.user))
                messages.append(ChatMessage(role: .assistant, content: turn.assistant))
            }
            messages.append(ChatMessage(role: .user, content: query))
            return try render(system: system, messages: messages, maxWindow: maxWindow, contextLimit: contextLimit).ids
        }
        func joint(_ role: String, _ content: String) -> [Int32] { [imStart] + tokenizer.encode("\(role)\n\(content)") }
        let systemTokens = joint("system", system) + [imEnd]
        let turns = react.history.map {
            newline + joint("user", $0.user) + [imEnd] + newline + joint("assistant", $0.assistant) + [imEnd]
        }
        var first = 0
        while systemTokens.count + turns[first...].reduce(0, { $0 + $1.count }) - 1 > contextLimit {
            guard first < turns.count - 1 else {
                throw QwenError.contextFull("the system prompt and the turn to continue need \(systemTokens.count + (turns.last?.count ?? 0) - 1) tokens; the context window allows \(contextLimit)")
            }
            first += 1
        }
        return Array((systemTokens + turns[first...].joined()).dropLast())   // the last <|im_end|>: left open
    }
}

