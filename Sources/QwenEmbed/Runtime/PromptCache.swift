/// Idle sessions of one model, kept for the prompts their KV caches hold, so a host that
/// re-sends a whole conversation each turn (an OpenAI-style server) only pays for what is
/// new (like mlx-swift-lm's LRUPromptCache and llama-server's slot selection by longest
/// common prefix). `Model.acquireSession` hands out the idle session whose cache shares
/// the longest prefix with the prompt a conversation renders to, or a fresh one;
/// `Model.releaseSession` puts it back; beyond `capacity` idle sessions the least
/// recently used is freed. Thread-safe.
public final class PromptCache: @unchecked Sendable {
    private let lock = Mutex()
    private var idle: [Session] = []   // least recently used first
    private var limit: Int

    /// Idle sessions kept (each holds its conversation's keys and values: about
    /// layers x kv width x 4 bytes per token, 12 KiB for Qwen2.5-0.5B).
    public var capacity: Int {
        get { lock.locked { limit } }
        set {
            let dropped: [Session] = lock.locked {
                limit = max(0, newValue)
                return trim()
            }
            _ = dropped   // freed here, outside the lock
        }
    }

    public static let defaultCapacity = 16

    init(capacity: Int = PromptCache.defaultCapacity) {
        limit = max(0, capacity)
    }

    /// Idle sessions now.
    public var count: Int { lock.locked { idle.count } }

    /// The idle session (one `isCompatible` accepts) whose cache shares the longest prefix
    /// with `prompt`, taken out of the cache, if that prefix is over half of the prompt (as
    /// llama-server's slot similarity) and over half of what the session holds (a short
    /// shared start, such as the system prompt of a new chat, does not take over a long
    /// cached conversation); nil otherwise.
    func take(bestFor prompt: [Int32], _ isCompatible: (Session) -> Bool) -> Session? {
        lock.locked {
            var best: (index: Int, common: Int)? = nil
            for (index, session) in idle.enumerated() where isCompatible(session) {
                let cached = session.cachedTokens
                var common = 0
                while common < min(cached.count, prompt.count) && cached[common] == prompt[common] { common += 1 }
                guard common * 2 > prompt.count, common * 2 > cached.count else { continue }
                // Ties go to the most recently used (later in the list).
                if common >= (best?.common ?? 0) { best = (index, common) }
            }
            return best.map { idle.remove(at: $0.index) }
        }
    }

    /// Keeps `session` as the most recently used; frees the least recently used beyond
    /// `capacity`.
    func put(_ session: Session) {
        let dropped: [Session] = lock.locked {
            idle.removeAll { $0 === session }
            idle.append(session)
            return trim()
        }
        if !dropped.isEmpty { Log.write(.debug, "prompt cache: \(dropped.count) least recently used session(s) freed") }
    }

    /// Frees every idle session.
    func removeAll() {
        let dropped: [Session] = lock.locked {
            defer { idle.removeAll() }
            return idle
        }
        _ = dropped
    }

    /// Removes the sessions beyond the limit, least recently used first. Under the lock.
    private func trim() -> [Session] {
        guard idle.count > limit else { return [] }
        let dropped = Array(idle.prefix(idle.count - limit))
        idle.removeFirst(idle.count - limit)
        return dropped
    }
}

extension Model {
    /// A session holding `conversation` (a chat so far: user, assistant and tool messages,
    /// oldest first; a system message in it sets the system prompt), ready for the next
    /// message through `chat`: the idle session whose KV cache shares the longest prefix
    /// with the prompt that conversation renders to (system prompt and tools included),
    /// or a fresh one. Hand it back with `releaseSession` (or just drop it).
    /// `systemPrompt` nil: `options.systemPrompt`.
    public func acquireSession(conversation: [ChatMessage], systemPrompt: String? = nil, tools: [ToolDefinition] = [],
                               options: SessionOptions = SessionOptions()) throws -> Session {
        var system = systemPrompt ?? options.systemPrompt
        var history: [ChatMessage] = []
        for message in conversation {
            if message.role == .system { system = message.content } else { history.append(message) }
        }
        let fresh = try Session(model: self, options: options)   // validates the options; cheap (no cache memory yet)
        try fresh.restore(systemPrompt: system, tools: tools, history: history)
        // The prompt of this conversation's next turn, up to where the next message goes.
        let prompt = (try? fresh.render(system: system, conversation: history + [ChatMessage(role: .user, content: "")])) ?? []
        guard let session = promptCache.take(bestFor: prompt, { $0.contextSize == fresh.contextSize && $0.maxWindowSize == fresh.maxWindowSize })
        else {
            Log.write(.debug, "prompt cache: a fresh session for a conversation of \(history.count) messages")
            return fresh
        }
        try session.restore(systemPrompt: system, tools: tools, history: history)
        if options.seed != 0 { session.reseed(options.seed) }
        Log.write(.debug, "prompt cache: a session holding \(session.cachedTokens.count) tokens for a conversation of \(history.count) messages")
        return session
    }

    /// A session for a raw continuation of `promptTokens` (`Session.generate`): the idle
    /// session whose cache shares the longest prefix with them, or a fresh one; its
    /// history empty.
    public func acquireSession(promptTokens: [Int32], options: SessionOptions = SessionOptions()) throws -> Session {
        let fresh = try Session(model: self, options: options)
        guard let session = promptCache.take(bestFor: promptTokens, { $0.contextSize == fresh.contextSize && $0.maxWindowSize == fresh.maxWindowSize })
        else { return fresh }
        try session.restore(systemPrompt: options.systemPrompt, tools: [], history: [])
        if options.seed != 0 { session.reseed(options.seed) }
        return session
    }

    /// Hands `session` back to the prompt cache, keeping its KV cache for a later
    /// `acquireSession`; the caller must not use it afterwards. A session with a call in
    /// progress is not kept.
    public func releaseSession(_ session: Session) {
        guard session.model === self else {
            return Log.write(.warn, "prompt cache: a session of another model was released here; it is freed instead")
        }
        guard !session.isBusy else {
            return Log.write(.warn, "prompt cache: a session was released with a call in progress; it is freed when the call ends")
        }
        promptCache.put(session)
    }
}
