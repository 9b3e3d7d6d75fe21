/// Runs a token sequence from an empty cache and hands out the logits of every
/// position: the engine behind `qwen logits` and `qwen perplexity`.
public final class SequenceScorer {
    public let model: Model
    let transformer: Transformer
    let cache: KVCache
    private let logits: FloatBuffer  // [maxBatch, vocab]

    /// `batch`: tokens per forward pass (1 = token by token, as decode runs).
    public init(model: Model, threads: Int = 0, contextSize: Int, batch: Int = 128) throws {
        guard contextSize >= 1 else { throw QwenError.invalidArgument("context size must be at least 1") }
        guard batch >= 1, batch <= 4096 else { throw QwenError.invalidArgument("batch must be in 1...4096 (got \(batch))") }
        self.model = model
        transformer = try Transformer(model: model, threads: threads > 0 ? threads : model.threads, maxBatch: batch)
        cache = try KVCache(config: model.config, capacity: contextSize)
        logits = FloatBuffer(transformer.maxBatch * model.config.vocabSize)
    }

    /// Calls `each(position, logits[vocab])` for every position of `tokens`, in order.
    public func run(_ tokens: [Int32], _ each: (Int, UnsafePointer<Float>) throws -> Void) throws {
        guard tokens.count <= cache.capacity else {
            throw QwenError.contextFull("\(tokens.count) tokens do not fit a context of \(cache.capacity)")
        }
        cache.truncate(to: 0)
        transformer.beginSequence(length: tokens.count, cache: cache)
        let vocab = model.config.vocabSize
        var position = 0
        while position < tokens.count {
            let end = min(position + transformer.maxBatch, tokens.count)
            try transformer.forward(tokens: Array(tokens[position..<end]), cache: cache, logits: nil, allLogits: logits.pointer)
            for t in 0..<(end - position) { try each(position + t, logits.pointer + t * vocab) }
            position = end
        }
    }
}

/// Prefill and decode throughput on the real forward pass (`qwen bench`).
public final class ThroughputBench {
    let model: Model
    let transformer: Transformer
    let cache: KVCache
    private let logits: FloatBuffer  // [vocab]
    public var threads: Int { transformer.pool.threads }

    public init(model: Model, threads: Int = 0, contextSize: Int) throws {
        self.model = model
        transformer = try Transformer(model: model, threads: threads > 0 ? threads : model.threads)
        cache = try KVCache(config: model.config, capacity: contextSize)
        logits = FloatBuffer(model.config.vocabSize)
    }

    public struct Figures: Sendable {
        public var prefillTokensPerSecond: Double
        public var decodeTokensPerSecond: Double
    }

    /// Prefills `promptTokens` tokens from an empty cache; then, from an empty cache again
    /// (as llama-bench's tg test does, so the figures compare), decodes `generatedTokens`
    /// greedily, one forward pass per token.
    public func run(promptTokens: Int, generatedTokens: Int) throws -> Figures {
        guard promptTokens + generatedTokens <= cache.capacity else {
            throw QwenError.contextFull("bench needs \(promptTokens + generatedTokens) positions; the context is \(cache.capacity)")
        }
        cache.truncate(to: 0)
        // A deterministic prompt of ordinary tokens.
        let prompt = (0..<promptTokens).map { Int32(1000 + ($0 * 7919) % 30000) }
        transformer.beginSequence(length: prompt.count, cache: cache)
        let vocab = model.config.vocabSize
        let prefillStart = monotonicMilliseconds()
        var position = 0
        while position < prompt.count {
            let end = min(position + transformer.maxBatch, prompt.count)
            try transformer.forward(tokens: Array(prompt[position..<end]), cache: cache,
                                    logits: end == prompt.count ? logits.pointer : nil)
            position = end
        }
        let prefillMs = monotonicMilliseconds() - prefillStart
        cache.truncate(to: 0)
        transformer.beginSequence(length: 1, cache: cache)
        let decodeStart = monotonicMilliseconds()
        if generatedTokens > 0 { try transformer.forward(tokens: [prompt.first ?? 1000], cache: cache, logits: logits.pointer) }
        for _ in 1..<max(generatedTokens, 1) {
            var best = 0
            for i in 1..<vocab where logits.pointer[i] > logits.pointer[best] { best = i }
            try transformer.forward(tokens: [Int32(best)], cache: cache, logits: logits.pointer)
        }
        let decodeMs = monotonicMilliseconds() - decodeStart
        return Figures(prefillTokensPerSecond: Double(promptTokens) / (prefillMs / 1000),
                       decodeTokensPerSecond: Double(generatedTokens) / (decodeMs / 1000))
    }
}
