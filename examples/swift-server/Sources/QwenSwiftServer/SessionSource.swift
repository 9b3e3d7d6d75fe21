import QwenEmbed

// The engine's session API that is coming, implemented here on today's API. This file is
// the ONLY place the server knows how sessions are made: when the engine provides
// `Model.acquireSession` / `releaseSession` itself (a prompt cache owned by the model's
// engine, sessions without threads, calls on different sessions decoded in one batch),
// delete this file and nothing else changes.
//
// Today: a fresh Session per request, its system prompt, tools and conversation set
// with setSystemPrompt / setTools / addMessage; released sessions are dropped (their KV
// cache with them), so every request pays for its whole prompt.
extension Model {
    /// A session whose history is `conversation` (the messages before the one to answer),
    /// with `systemPrompt` (nil: the default) and `tools` set. The caller then calls
    /// `session.chat([nextMessage], ...)` and gives the session back with `releaseSession`.
    func acquireSession(conversation: [ChatMessage], systemPrompt: String?, tools: [ToolDefinition],
                        options: SessionOptions) throws -> Session {
        let session = try Session(model: self, options: options)
        try session.setSystemPrompt(systemPrompt ?? Model.defaultSystemPrompt)
        try session.setTools(tools)
        for message in conversation {
            try session.addMessage(message)
        }
        return session
    }

    /// A session for a raw continuation (`session.generate(prompt:...)`) of the prompt
    /// whose tokens are `promptTokens` (the engine's cache keys on them; unused today).
    func acquireSession(promptTokens: [Int32], options: SessionOptions) throws -> Session {
        try Session(model: self, options: options)
    }

    /// Hands `session` back (today: dropped).
    func releaseSession(_ session: Session) {}
}
