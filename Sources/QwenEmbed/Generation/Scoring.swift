/// Runs a token sequence from an empty cache on the model's engine and hands out the
/// logits of every position: the engine behind `qwen logits` and `qwen perplexity`. The
/// prompt goes through the engine's one chunked prefill, as a chat's does.
public final class SequenceScorer {
    public let model: Model
    let cache: KVCache
    /// Tokens per forward pass (1 = token by token, through the decode kernels).
    public let batch: Int
    private let logits: FloatBuffer  // [batch, vocab]

    /// A scorer of sequences up to `contextSize` tokens, `batch` per forward pass, on a KV
    /// cache of `kvType`.
    public init(model: Model, contextSize: Int, batch: Int = 128, kvType: KVCacheType = .f16) throws {
        guard contextSize >= 1 else { throw QwenError.invalidArgument("context size must be at least 1") }
        guard batch >= 1, batch <= 4096 else { throw QwenError.invalidArgument("batch must be in 1...4096 (got \(batch))") }
        self.model = model
        self.batch = batch
        cache = try KVCache(config: model.config, capacity: contextSize, type: kvType)
        logits = FloatBuffer(batch * model.config.vocabSize)
    }

    /// Calls `each(position, logits[vocab])` for every position of `tokens`, in order.
    public func run(_ tokens: [Int32], _ each: (Int, UnsafePointer<Float>) throws -> Void) throws {
        guard !tokens.isEmpty else { return }
        guard tokens.count <= cache.capacity else {
            throw QwenError.contextFull("\(tokens.count) tokens do not fit a context of \(cache.capacity)")
        }
        cache.truncate(to: 0)
        let engine = model.engine
        _ = engine.reuse(cache, for: tokens)   // nothing to reuse: sets the NTK alpha
        let job = Job(engine: engine, cache: cache, prompt: tokens, cachedTokens: 0, generation: nil,
                      scoreBuffer: logits.pointer, chunkSize: batch, cancelFlag: CancelFlag())
        try engine.submit(job)
        let vocab = model.config.vocabSize
        var failure: Error? = nil
        while true {
            switch job.next() {
            case .logits(let first, let count):
                if failure == nil {
                    do {
                        for t in 0..<count { try each(first + t, logits.pointer + t * vocab) }
                    } catch {
                        failure = error
                        job.stop(.callback)
                    }
                }
                job.acknowledge()
            case .token:
                continue
            case .finished:
                if let failure { throw failure }
                return
            case .failed(let error):
                throw error
            }
        }
    }
}
