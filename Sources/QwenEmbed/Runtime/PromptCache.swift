/// The KV caches of released sessions, kept for the prompts they hold, so a host that
/// re-sends a whole conversation each turn (an OpenAI-style server) only pays for what is
/// new (like mlx-swift-lm's LRUPromptCache and llama-server's slot selection by longest
/// common prefix). `Model.acquireSession` hands out a session on the cache that shares
/// the longest prefix with the prompt a conversation renders to, or a fresh one;
/// `Model.releaseSession` puts its cache back; beyond `capacity` caches the least
/// recently used is freed. Holds caches, not sessions, so it never keeps its model
/// alive. Thread-safe.
public final class PromptCache: @unchecked Sendable {
    private let lock = Mutex()
    private var idle: [KVCache] = []   // least recently used first
    private var limit: Int

    /// Caches kept (each holds a conversation's keys and values: `KVCache.bytesPerToken`,
    /// 12 KiB per token for Qwen2.5-0.5B in f16, 6.4 KiB in q8).
    public var capacity: Int {
        get { lock.locked { limit } }
        set {
            let dropped: [KVCache] = lock.locked {
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

    /// Caches kept now.
    public var count: Int { lock.locked { idle.count } }

    /// The cache of `capacity` positions and `type` that shares the longest prefix with `prompt`,
    /// taken out, if that prefix is over half of the prompt (as llama-server's slot
    /// similarity) and over half of what the cache holds (a short shared start, such as
    /// the system prompt of a new chat, does not take over a long cached conversation);
    /// nil otherwise.
    func take(bestFor prompt: [Int32], capacity: Int, type: KVCacheType) -> KVCache? {
        lock.locked {
            var best: (index: Int, common: Int)? = nil
            for (index, cache) in idle.enumerated() where cache.capacity == capacity && cache.type == type {
                let cached = cache.tokens
                var common = 0
                while common < min(cached.count, prompt.count) && cached[common] == prompt[common] { common += 1 }
                guard common * 2 > prompt.count, common * 2 > cached.count else { continue }
                // Ties go to the most recently used (later in the list).
                if common >= (best?.common ?? 0) { best = (index, common) }
            }
            return best.map { idle.remove(at: $0.index) }
        }
    }

    /// Copies into `target` the longest prefix of `prompt` (at most `limit` tokens) that a
    /// cached cache with `target`'s type and NTK alpha holds as prompt rows, beyond what `target`
    /// holds; returns its length, or nil when no cache holds more than `target`.
    func copyLongestPrefix(of prompt: [Int32], limit: Int, into target: KVCache) throws -> Int? {
        try lock.locked {
            var best: (cache: KVCache, common: Int)? = nil
            for cache in idle where cache.type == target.type && cache.ntkAlpha == target.ntkAlpha {
                let bound = min(cache.promptRowPrefix, limit)
                var common = 0
                while common < bound && cache.tokens[common] == prompt[common] { common += 1 }
                if common > max(best?.common ?? 0, target.tokens.count) { best = (cache, common) }
            }
            guard let best else { return nil }
            try target.copy(upTo: best.common, from: best.cache)
            return best.common
        }
    }

    /// Keeps `cache` as the most recently used; frees the least recently used beyond
    /// `capacity`.
    func put(_ cache: KVCache) {
        let dropped: [KVCache] = lock.locked {
            idle.removeAll { $0 === cache }
            idle.append(cache)
            return trim()
        }
        if !dropped.isEmpty { Log.write(.debug, "prompt cache: \(dropped.count) least recently used cache(s) freed") }
    }

    /// Frees every cache.
    func removeAll() {
        let dropped: [KVCache] = lock.locked {
            defer { idle.removeAll() }
            return idle
        }
        _ = dropped
    }

    /// Removes the caches beyond the limit, least recently used first. Under the lock.
    private func trim() -> [KVCache] {
        guard idle.count > limit else { return [] }
        let dropped = Array(idle.prefix(idle.count - limit))
        idle.removeFirst(idle.count - limit)
        return dropped
    }
}

extension Model {
    /// A session holding `conversation` (a chat so far: user, assistant and tool messages,
    /// oldest first; a system message in it sets the system prompt), ready for the next
    /// message through `chat`: on the cached KV cache that shares the longest prefix with
    /// the prompt that conversation renders to (system prompt and tools included), or a
    /// fresh one. Hand it back with `releaseSession` (or just drop it).
    /// `systemPrompt` nil: `options.systemPrompt`.
    public func acquireSession(conversation: [ChatMessage], systemPrompt: String? = nil, tools: [ToolDefinition] = [],
                               options: SessionOptions = SessionOptions()) throws -> Session {
        var system = systemPrompt ?? options.systemPrompt
        var history: [ChatMessage] = []
        for message in conversation {
            if message.role == .system { system = message.content } else { history.append(message) }
        }
        let session = try Session(model: self, options: options)   // cheap: its cache holds no memory yet
        try session.restore(systemPrompt: system, tools: tools, history: history)
        // The prompt of this conversation's next turn, up to where the next message goes.
        let prompt = (try? session.render(system: system, conversation: history + [ChatMessage(role: .user, content: "")]).ids) ?? []
        if let cache = promptCache.take(bestFor: prompt, capacity: session.contextSize, type: session.kvType) {
            Log.write(.debug, "prompt cache: a cache of \(cache.tokens.count) tokens for a conversation of \(history.count) messages")
            session.adopt(cache)
        } else {
            Log.write(.debug, "prompt cache: a fresh cache for a conversation of \(history.count) messages")
        }
        return session
    }

    /// A session for a raw continuation of `promptTokens` (`Session.generate`): on the
    /// cached KV cache that shares the longest prefix with them, or a fresh one; its
    /// history empty.
    public func acquireSession(promptTokens: [Int32], options: SessionOptions = SessionOptions()) throws -> Session {
        let session = try Session(model: self, options: options)
        if let cache = promptCache.take(bestFor: promptTokens, capacity: session.contextSize, type: session.kvType) { session.adopt(cache) }
        return session
    }

    /// Hands `session`'s KV cache back to the prompt cache for a later `acquireSession`;
    /// the session is unusable afterwards (its calls throw WRONG_STATE). Any session of
    /// this model may be released; one with a call in progress is not (its cache stays).
    public func releaseSession(_ session: Session) {
        guard session.model === self else {
            return Log.write(.warn, "prompt cache: a session of another model was released here; it is left alone")
        }
        guard let cache = session.detachCache() else {
            return Log.write(.warn, "prompt cache: a session was released during a call, or twice; its cache is not kept")
        }
        promptCache.put(cache)
    }
}
