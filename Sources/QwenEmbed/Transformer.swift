import Kernels
#if canImport(Glibc)
import Glibc
#endif

/// The KV cache of one session: f16 keys and values for every layer and position.
/// f16 halves the memory of f32 (Qwen-7B: 256 KiB per token instead of 512) at no
/// measurable perplexity cost; it is also what llama.cpp uses by default.
public final class KVCache: @unchecked Sendable {
    public let layerCount: Int
    /// Positions the cache holds (the session's n_ctx).
    public let capacity: Int
    /// kvHeads * headDim
    public let kvDim: Int
    let keys: UnsafeMutablePointer<Float16>    // [layers, capacity, kvDim]
    let values: UnsafeMutablePointer<Float16>  // [layers, capacity, kvDim]
    /// Token ids whose keys/values are stored at positions 0..<tokens.count.
    public internal(set) var tokens: [Int32] = []
    /// The dynamic-NTK alpha the cached keys were rotated with and the next positions
    /// will be (1 = plain RoPE); set per call by `Transformer.beginSequence`.
    public internal(set) var ntkAlpha: Double = 1

    public init(config: ModelConfig, capacity: Int) throws {
        layerCount = config.layerCount
        self.capacity = capacity
        kvDim = config.kvHeadCount * config.headDim
        let (count, overflow) = layerCount.multipliedReportingOverflow(by: capacity * kvDim)
        guard !overflow, count > 0 else { throw QwenError.outOfMemory("KV cache of \(capacity) positions is too large") }
        guard let k = malloc(count * 2), let v = malloc(count * 2) else {
            throw QwenError.outOfMemory("cannot allocate a KV cache of \(capacity) positions (\(count * 4 >> 20) MiB)")
        }
        keys = k.bindMemory(to: Float16.self, capacity: count)
        values = v.bindMemory(to: Float16.self, capacity: count)
    }

    deinit {
        free(keys)
        free(values)
    }

    /// Drops cached positions from `count` on.
    public func truncate(to count: Int) {
        if count < tokens.count { tokens.removeSubrange(count...) }
    }

    func keyPointer(layer: Int, position: Int) -> UnsafeMutablePointer<Float16> {
        keys + (layer * capacity + position) * kvDim
    }

    func valuePointer(layer: Int, position: Int) -> UnsafeMutablePointer<Float16> {
        values + (layer * capacity + position) * kvDim
    }
}

/// A zero-initialised f32 buffer owned by the forward pass.
final class FloatBuffer {
    let pointer: UnsafeMutablePointer<Float>
    let count: Int
    init(_ count: Int) {
        self.count = max(count, 1)
        pointer = .allocate(capacity: self.count)
        pointer.initialize(repeating: 0, count: self.count)
    }
    deinit { pointer.deallocate() }
}

/// The forward pass of one Qwen transformer, parameterised by `ModelConfig`: one
/// implementation serves Qwen (v1) and Qwen2. It owns the scratch buffers of a batch
/// of up to `maxBatch` tokens, so one instance serves one session at a time.
public final class Transformer: @unchecked Sendable {
    public let config: ModelConfig
    let weights: TransformerWeights
    public let pool: ThreadPool
    let kernels: KernelTable
    /// Tokens per prefill chunk (matrix-matrix products); decode is a batch of 1.
    public let maxBatch: Int

    // Scratch, batch-major. B = maxBatch.
    private let x: FloatBuffer          // [B, hidden] residual stream
    private let normed: FloatBuffer     // [B, hidden]
    private let q: FloatBuffer          // [B, heads * headDim]
    private let k: FloatBuffer          // [B, kvHeads * headDim]
    private let v: FloatBuffer          // [B, kvHeads * headDim]
    private let attention: FloatBuffer  // [B, heads * headDim]
    private let projected: FloatBuffer  // [B, hidden]
    private let gate: FloatBuffer       // [B, ffn]
    private let up: FloatBuffer         // [B, ffn]
    private let cosines: FloatBuffer    // [B, ropeDim / 2] RoPE angles of the batch's positions
    private let sines: FloatBuffer      // [B, ropeDim / 2]
    private var scores: FloatBuffer     // [heads, scoreCapacity] attention weights
    private var scoreCapacity: Int
    /// The decode input vector quantized for the int8 kernels (reused by every matvec).
    private let activations = QuantizedActivations()

    public init(model: Model, threads: Int? = nil, maxBatch: Int = 128) throws {
        config = model.config
        weights = model.weights
        self.maxBatch = maxBatch
        pool = ThreadPool(threads: max(1, threads ?? model.threads))
        kernels = model.kernels
        let c = config
        x = FloatBuffer(maxBatch * c.hiddenSize)
        normed = FloatBuffer(maxBatch * c.hiddenSize)
        q = FloatBuffer(maxBatch * c.headCount * c.headDim)
        k = FloatBuffer(maxBatch * c.kvHeadCount * c.headDim)
        v = FloatBuffer(maxBatch * c.kvHeadCount * c.headDim)
        attention = FloatBuffer(maxBatch * c.headCount * c.headDim)
        projected = FloatBuffer(maxBatch * c.hiddenSize)
        gate = FloatBuffer(maxBatch * c.intermediateSize)
        up = FloatBuffer(maxBatch * c.intermediateSize)
        cosines = FloatBuffer(maxBatch * c.ropeDim / 2)
        sines = FloatBuffer(maxBatch * c.ropeDim / 2)
        scoreCapacity = 0
        scores = FloatBuffer(1)
    }

    /// y[n, rows] = x[n, cols] * W^T, by matvec for one token and matmul for a batch.
    private func linear(_ w: WeightMatrix, _ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, n: Int) {
        linear([w], input, [output], n: n)
    }

    /// Several matrices applied to the same input: one pool job for all of them.
    private func linear(_ ws: [WeightMatrix], _ input: UnsafePointer<Float>, _ outputs: [UnsafeMutablePointer<Float>], n: Int) {
        if n == 1 {
            matvec(ws, input, outputs, pool: pool, kernels: kernels, activations: activations)
        } else {
            matmul(ws, input, outputs, n: n, pool: pool, kernels: kernels)
        }
    }

    private func addBias(_ y: UnsafeMutablePointer<Float>, _ bias: [Float], n: Int) {
        bias.withUnsafeBufferPointer { b in
            for t in 0..<n { addInPlace(y + t * b.count, b.baseAddress!, n: b.count) }
        }
    }

    /// Runs `tokens` at positions cache.tokens.count ..< +tokens.count, appending their
    /// keys/values to `cache`. Writes logits for the last token into `logits` [vocab], or
    /// for every token into `allLogits` [tokens.count, vocab] when given.
    /// `tokens.count` must be in 1...maxBatch and fit the cache.
    public func forward(tokens: [Int32], cache: KVCache, logits: UnsafeMutablePointer<Float>?,
                        allLogits: UnsafeMutablePointer<Float>? = nil) throws {
        let c = config
        let n = tokens.count
        let start = cache.tokens.count
        guard n >= 1, n <= maxBatch else { throw QwenError.internalError("forward: batch of \(n) tokens (1...\(maxBatch))") }
        guard start + n <= cache.capacity else {
            throw QwenError.contextFull("the context window of \(cache.capacity) tokens is full")
        }
        for id in tokens where id < 0 || Int(id) >= c.vocabSize {
            throw QwenError.invalidArgument("token id \(id) is outside the vocabulary (0..<\(c.vocabSize))")
        }
        let hidden = c.hiddenSize, headDim = c.headDim
        let qDim = c.headCount * headDim, kvDim = c.kvHeadCount * headDim, ffn = c.intermediateSize
        let length = start + n
        if length > scoreCapacity {
            scoreCapacity = min(cache.capacity, max(length, 2 * scoreCapacity, 256))
            scores = FloatBuffer(c.headCount * scoreCapacity)
        }

        // Embedding rows.
        for (t, id) in tokens.enumerated() {
            dequantizeRow(weights.tokenEmbedding, row: Int(id), into: x.pointer + t * hidden, kernels: kernels)
        }

        let ropeTheta = ropeTheta(ntkAlpha: cache.ntkAlpha)
        let half = c.ropeDim / 2
        for t in 0..<n {
            ropeAngles(position: start + t, ropeDim: c.ropeDim, theta: ropeTheta,
                       cosines: cosines.pointer + t * half, sines: sines.pointer + t * half)
        }
        let attentionScale = 1 / Float(headDim).squareRoot()
        let groupSize = c.headCount / c.kvHeadCount

        for layerIndex in 0..<weights.layers.count {
            let layer = try weights.layers.layer(layerIndex)   // GPTQ: repacked on its first use
            layer.attentionNorm.withUnsafeBufferPointer { w in
                for t in 0..<n {
                    rmsNorm(x.pointer + t * hidden, w.baseAddress!, normed.pointer + t * hidden, n: hidden, eps: c.rmsNormEps)
                }
            }
            linear([layer.query, layer.key, layer.value], normed.pointer, [q.pointer, k.pointer, v.pointer], n: n)
            addBias(q.pointer, layer.queryBias, n: n)
            addBias(k.pointer, layer.keyBias, n: n)
            addBias(v.pointer, layer.valueBias, n: n)

            for t in 0..<n {
                let position = start + t
                let cos = cosines.pointer + t * half, sin = sines.pointer + t * half
                ropeNeoX(q.pointer + t * qDim, heads: c.headCount, headDim: headDim, ropeDim: c.ropeDim, cosines: cos, sines: sin)
                ropeNeoX(k.pointer + t * kvDim, heads: c.kvHeadCount, headDim: headDim, ropeDim: c.ropeDim, cosines: cos, sines: sin)
                let queryScale = attentionScale * logNScale(position: position)
                for i in 0..<qDim { q.pointer[t * qDim + i] *= queryScale }
                let kDst = cache.keyPointer(layer: layerIndex, position: position)
                let vDst = cache.valuePointer(layer: layerIndex, position: position)
                for i in 0..<kvDim {
                    kDst[i] = Float16(k.pointer[t * kvDim + i])
                    vDst[i] = Float16(v.pointer[t * kvDim + i])
                }
            }

            // Causal attention, heads split over the pool.
            let qp = q.pointer, out = attention.pointer, scoreBase = scores.pointer, stride = scoreCapacity
            let attend = kernels.attend
            let keys = cache.keyPointer(layer: layerIndex, position: 0)
            let values = cache.valuePointer(layer: layerIndex, position: 0)
            pool.parallelFor(c.headCount) { h in
                let kvHead = h / groupSize
                for t in 0..<n {
                    attend(qp + t * qDim + h * headDim, keys + kvHead * headDim, values + kvHead * headDim,
                           kvDim, start + t + 1, headDim, scoreBase + h * stride, out + t * qDim + h * headDim)
                }
            }
            linear(layer.attentionOutput, attention.pointer, projected.pointer, n: n)
            addInPlace(x.pointer, projected.pointer, n: n * hidden)

            layer.ffnNorm.withUnsafeBufferPointer { w in
                for t in 0..<n {
                    rmsNorm(x.pointer + t * hidden, w.baseAddress!, normed.pointer + t * hidden, n: hidden, eps: c.rmsNormEps)
                }
            }
            linear([layer.gate, layer.up], normed.pointer, [gate.pointer, up.pointer], n: n)
            kernels.swiGLU(gate.pointer, up.pointer, n * ffn)
            linear(layer.down, gate.pointer, projected.pointer, n: n)
            addInPlace(x.pointer, projected.pointer, n: n * hidden)
        }
        cache.tokens.append(contentsOf: tokens)

        weights.outputNorm.withUnsafeBufferPointer { w in
            for t in 0..<n {
                rmsNorm(x.pointer + t * hidden, w.baseAddress!, normed.pointer + t * hidden, n: hidden, eps: c.rmsNormEps)
            }
        }
        if let allLogits {
            linear(weights.output, normed.pointer, allLogits, n: n)
        }
        if let logits {
            matvec(weights.output, normed.pointer + (n - 1) * hidden, logits, pool: pool, kernels: kernels, activations: activations)
        }
    }

    /// Qwen v1's dynamic NTK alpha for a call that runs a sequence of `length` tokens, as
    /// modeling_qwen.py's get_ntk_alpha: 1 up to the trained length, beyond it
    /// 2^ceil(log2(length / trained) + 1) - 1. Always 1 without `useDynamicNTK`.
    public func ntkAlpha(sequenceLength length: Int) -> Double {
        guard config.useDynamicNTK, length > config.contextLength else { return 1 }
        let contextValue = log2(Double(length) / Double(config.contextLength)) + 1
        return max(pow(2, ceil(contextValue)) - 1, 1)
    }

    /// Starts a call (a prompt's prefill and the tokens decoded after it) whose prompt is
    /// `length` tokens, the cached prefix included. As Qwen's modeling code does, the NTK
    /// alpha is computed once here from the whole prompt and kept for every chunk of the
    /// prefill and every decoded token of the call; cached keys rotated with another
    /// alpha are dropped (Qwen's own generate recomputes the whole prompt each call).
    public func beginSequence(length: Int, cache: KVCache) {
        let alpha = ntkAlpha(sequenceLength: length)
        if alpha != cache.ntkAlpha {
            cache.truncate(to: 0)
            cache.ntkAlpha = alpha
        }
    }

    /// The RoPE base for an NTK alpha: base * alpha^(d / (d - 2)), d the rotated dims.
    func ropeTheta(ntkAlpha alpha: Double) -> Float {
        guard alpha != 1 else { return config.ropeTheta }
        let d = Double(config.ropeDim)
        return Float(Double(config.ropeTheta) * pow(alpha, d / (d - 2)))
    }

    /// Qwen v1's logN attention: queries at positions past the trained length are scaled
    /// by log(position + 1) / log(trained length) (modeling_qwen.py's logn_tensor).
    func logNScale(position: Int) -> Float {
        guard config.useLogNAttention, position + 1 > config.contextLength else { return 1 }
        return Float(log(Double(position + 1)) / log(Double(config.contextLength)))
    }
}
