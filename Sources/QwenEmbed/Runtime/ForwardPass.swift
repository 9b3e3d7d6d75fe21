import Kernels
import KernelABI
#if canImport(Glibc)
import Glibc
#endif

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

/// Which logits a chunk wants from a step.
enum LogitsWanted {
    case none
    /// The last token's (the next token is sampled from them).
    case last
    /// Every token's (scoring: perplexity, `qwen logits`), written to [tokens, vocab].
    case all(into: UnsafeMutablePointer<Float>)
}

/// How a chunk's tokens go through the matrices.
enum RowKind {
    /// Prompt tokens: through matmul, several tokens per decoded weight group (quantized
    /// weights: the decode kernels' int8 arithmetic, so a row's results are those it would
    /// have decoded alone; float weights: f32 products).
    case prompt
    /// One token through the decode kernels (int8 activations), batched with every other
    /// such row of the step: a sequence's generated tokens, or scoring token by token.
    case decode
}

/// One sequence's part of a step: `tokens` run at positions cache.tokens.count ..<
/// +tokens.count, their keys/values appended to `cache`.
struct Chunk {
    let tokens: ArraySlice<Int32>
    let cache: KVCache
    let logits: LogitsWanted
    /// `.decode` chunks hold one token.
    let kind: RowKind
}

/// A row's cached keys and values in one layer, for the attention kernels.
struct CachedRows {
    let keys: UnsafeRawPointer     // [positions, rowBytes] from position 0
    let values: UnsafeRawPointer   // [positions, rowBytes]
    let rowBytes: Int
    /// Bytes of one head's slice of a row (head h starts h * headBytes into it).
    let headBytes: Int
    let type: KVCacheType
    /// Q8_0 rows (`KernelTable.attendQ8`), else f16.
    var q8: Bool { type == .q8 }

    /// Writes position `position`'s keys and values (f32 [count] each) in the rows' type.
    func store(position: Int, keys k: UnsafePointer<Float>, values v: UnsafePointer<Float>, count: Int) {
        type.store(k, count: count, into: UnsafeMutableRawPointer(mutating: keys + position * rowBytes))
        type.store(v, count: count, into: UnsafeMutableRawPointer(mutating: values + position * rowBytes))
    }
}

/// body(buffers): an UnsafeBufferPointer of each array, valid during the call (for loops on
/// the pool's threads, which should not touch the arrays themselves).
func withUnsafeBuffers<R>(_ arrays: [[Float]], _ body: ([UnsafeBufferPointer<Float>]) -> R) -> R {
    var buffers: [UnsafeBufferPointer<Float>] = []
    func nest(_ i: Int) -> R {
        guard i < arrays.count else { return body(buffers) }
        return arrays[i].withUnsafeBufferPointer { buffer in
            buffers.append(buffer)
            return nest(i + 1)
        }
    }
    return nest(0)
}

/// The forward pass of one Qwen transformer over the rows of a step, parameterised by
/// `ModelConfig`: one implementation serves Qwen (v1), Qwen2 and Qwen3. A step holds chunks of
/// several sequences, each with its own KV cache, positions and NTK alpha. Decode rows go
/// through every matrix together: one multi-vector matvec whose int8 arithmetic per row is
/// the same as for that row alone. Prompt chunks go through matmul: all of them in one
/// call where the model's prefill rows are independent of their batch
/// (`Engine.prefillRowsAreIndependent`), else one call per chunk, whose boundaries
/// are the sequence's own. Either way a row's results never depend on what else is in the
/// step. Used by the engine's step thread only; its scratch grows with the largest step.
final class ForwardPass {
    let config: ModelConfig
    let weights: TransformerWeights
    let kernels: KernelTable
    let pool: ThreadPool
    /// Prompt chunks in one matmul (`Engine.prefillRowsAreIndependent`).
    let prefillRowsAreIndependent: Bool

    // Scratch, row-major over the step's rows R (decode rows first, then each chunk's).
    private var rowCapacity = 0
    private var x = FloatBuffer(1)          // [R, hidden] residual stream
    private var normed = FloatBuffer(1)     // [R, hidden]
    private var q = FloatBuffer(1)          // [R, heads * headDim]
    private var k = FloatBuffer(1)          // [R, kvHeads * headDim]
    private var v = FloatBuffer(1)          // [R, kvHeads * headDim]
    private var attention = FloatBuffer(1)  // [R, heads * headDim]
    private var projected = FloatBuffer(1)  // [R, hidden]
    private var gate = FloatBuffer(1)       // [R, ffn]
    private var up = FloatBuffer(1)         // [R, ffn]
    private var cosines = FloatBuffer(1)    // [R, ropeDim / 2] RoPE angles of each row's position
    private var sines = FloatBuffer(1)      // [R, ropeDim / 2]
    private var scores = FloatBuffer(1)     // [pool.threads, group, scoreCapacity] attention weights of a decode item's heads
    private var scoreCapacity = 0
    /// Rows of a prompt chunk per prefill attention block: about 64 queries (rows x the
    /// query heads of a KV head), whose outputs and the tile's keys and values stay in L2.
    private let attentionBlockRows: Int
    /// Rows a piece of the per-row steps has at least (`forEachRowRange`): a step of up to
    /// this many rows runs them on the caller alone.
    static let rowsPerPieceMinimum = 16
    private let blockScratchFloats: Int       // qe_attend_block_scratch(attentionBlockRows x group, headDim)
    private let blockScratch: FloatBuffer     // [pool.threads, blockScratchFloats]
    private var headInput = FloatBuffer(1)  // [L, hidden] rows whose logits the decode kernels compute
    private var logitRows = FloatBuffer(1)  // [L, vocab]
    /// The decode rows' input vectors quantized for the int8 kernels (reused by every matvec).
    private let activations = QuantizedActivations()
    /// The prompt rows' input vectors quantized for matmul's int8 path (reused by every matmul).
    private let promptActivations = QuantizedActivations()

    init(config: ModelConfig, weights: TransformerWeights, kernels: KernelTable, pool: ThreadPool,
         prefillRowsAreIndependent: Bool) {
        self.config = config
        self.prefillRowsAreIndependent = prefillRowsAreIndependent
        self.weights = weights
        self.kernels = kernels
        self.pool = pool
        let group = max(1, config.headCount / max(config.kvHeadCount, 1))
        attentionBlockRows = max(1, 64 / group)
        blockScratchFloats = Int(qe_attend_block_scratch(attentionBlockRows * group, config.headDim))
        blockScratch = FloatBuffer(pool.threads * blockScratchFloats)
    }

    private func reserveRows(_ rows: Int) {
        guard rows > rowCapacity else { return }
        let c = config, n = max(rows, 2 * rowCapacity)
        x = FloatBuffer(n * c.hiddenSize)
        normed = FloatBuffer(n * c.hiddenSize)
        q = FloatBuffer(n * c.headCount * c.headDim)
        k = FloatBuffer(n * c.kvHeadCount * c.headDim)
        v = FloatBuffer(n * c.kvHeadCount * c.headDim)
        attention = FloatBuffer(n * c.headCount * c.headDim)
        projected = FloatBuffer(n * c.hiddenSize)
        gate = FloatBuffer(n * c.intermediateSize)
        up = FloatBuffer(n * c.intermediateSize)
        cosines = FloatBuffer(n * c.ropeDim / 2)
        sines = FloatBuffer(n * c.ropeDim / 2)
        rowCapacity = n
    }

    /// Runs one step. Every chunk needs at least one token and room in its cache (the
    /// cache grows here; CONTEXT_FULL past its capacity, before anything runs). Returns,
    /// per chunk, its `.last` logits [vocab] (valid until the next run), else nil;
    /// `.all` logits go where the chunk said.
    func run(_ chunks: [Chunk]) throws -> [UnsafeMutablePointer<Float>?] {
        let c = config
        for chunk in chunks {
            guard !chunk.tokens.isEmpty else { throw QwenError.internalError("forward: an empty chunk") }
            for id in chunk.tokens where id < 0 || Int(id) >= c.vocabSize {
                throw QwenError.invalidArgument("token id \(id) is outside the vocabulary (0..<\(c.vocabSize))")
            }
            try chunk.cache.reserve(chunk.cache.tokens.count + chunk.tokens.count)
        }
        // Rows: the decode rows first (together through the decode kernels), then each
        // prompt chunk's tokens, contiguous.
        guard chunks.allSatisfy({ $0.kind == .prompt || $0.tokens.count == 1 }) else {
            throw QwenError.internalError("forward: a decode chunk of more than one token")
        }
        let order = chunks.indices.filter { chunks[$0].kind == .decode } + chunks.indices.filter { chunks[$0].kind == .prompt }
        let decodeRows = chunks.reduce(0) { $0 + ($1.kind == .decode ? 1 : 0) }
        var firstRow = [Int](repeating: 0, count: chunks.count)   // [chunks] first row of each chunk
        var rowCount = 0
        for i in order {
            firstRow[i] = rowCount
            rowCount += chunks[i].tokens.count
        }
        let promptRows = rowCount - decodeRows
        let prefillRanges = prefillRowsAreIndependent
            ? (promptRows > 0 ? [(decodeRows, promptRows)] : [])
            : order.dropFirst(decodeRows).map { (firstRow[$0], chunks[$0].tokens.count) }
        reserveRows(rowCount)

        let hidden = c.hiddenSize, headDim = c.headDim, half = c.ropeDim / 2
        let qDim = c.headCount * headDim, kvDim = c.kvHeadCount * headDim, ffn = c.intermediateSize
        // Per row: its position and its cache (as an index into `chunks`).
        var rowPosition = [Int](repeating: 0, count: rowCount)     // [R]
        var rowChunk = [Int](repeating: 0, count: rowCount)        // [R]
        var rowToken = [Int](repeating: 0, count: rowCount)        // [R] token id
        var longest = 0
        for (i, chunk) in chunks.enumerated() {
            let start = chunk.cache.tokens.count
            for (t, id) in chunk.tokens.enumerated() {
                let row = firstRow[i] + t
                rowPosition[row] = start + t
                rowChunk[row] = i
                rowToken[row] = Int(id)
            }
            longest = max(longest, start + chunk.tokens.count)
        }
        let ropeThetas = chunks.map { ropeTheta(ntkAlpha: $0.cache.ntkAlpha) }   // [chunks]

        /// Calls body(rows) for consecutive pieces of the step's rows spread over the pool:
        /// the per-row steps (embedding, norms, RoPE, cache writes, residual adds, SwiGLU),
        /// each row's arithmetic the same wherever it runs. A step of at most
        /// `rowsPerPieceMinimum` rows (decode) stays on the caller: waking the pool would
        /// cost more than the work.
        func forEachRowRange(_ body: (Range<Int>) -> Void) {
            let piece = max(ForwardPass.rowsPerPieceMinimum, (rowCount + 2 * pool.threads - 1) / (2 * pool.threads))
            pool.parallelFor((rowCount + piece - 1) / piece) { p in body((p * piece)..<min(rowCount, (p + 1) * piece)) }
        }

        let xp = x.pointer, normedp = normed.pointer, qp = q.pointer, kp = k.pointer, vp = v.pointer
        let embedding = weights.tokenEmbedding, embeddingRow = kernels.dequantize(for: embedding)
        let cosinesp = cosines.pointer, sinesp = sines.pointer
        rowPosition.withUnsafeBufferPointer { positions in
            rowToken.withUnsafeBufferPointer { tokens in
                rowChunk.withUnsafeBufferPointer { rowChunk in
                    ropeThetas.withUnsafeBufferPointer { thetas in
                        forEachRowRange { rows in
                            for row in rows {
                                embeddingRow(embedding.row(tokens[row]), hidden, xp + row * hidden)
                                ropeAngles(position: positions[row], ropeDim: c.ropeDim, theta: thetas[rowChunk[row]],
                                           cosines: cosinesp + row * half, sines: sinesp + row * half)
                            }
                        }
                    }
                }
            }
        }
        let groupSize = c.headCount / c.kvHeadCount
        if longest > scoreCapacity {
            scoreCapacity = max(longest, 2 * scoreCapacity, 256)
            scores = FloatBuffer(pool.threads * groupSize * scoreCapacity)
        }
        let attentionScale = 1 / Float(headDim).squareRoot()
        let queryScales = rowPosition.map { attentionScale * logNScale(position: $0) }   // [R] incl. Qwen v1's logN

        /// Y_i = X W_i^T over all rows: the decode rows together, the prompt rows by matmul.
        func linear(_ ws: [WeightMatrix], _ input: UnsafeMutablePointer<Float>, _ outputs: [UnsafeMutablePointer<Float>]) {
            let cols = ws[0].cols
            if decodeRows > 0 {
                matvec(ws, input, count: decodeRows, outputs, pool: pool, kernels: kernels, activations: activations)
            }
            for (first, count) in prefillRanges {
                matmul(ws, input + first * cols, zip(ws, outputs).map { $1 + first * $0.rows }, n: count, pool: pool, kernels: kernels,
                       activations: promptActivations)
            }
        }
        let rmsNormRow = kernels.rmsNorm
        /// normed[row] = RMSNorm(x[row]) * weight[hidden] for each row (a buffer, not the
        /// array: pool threads call it, and should not touch arrays themselves).
        func normalize(_ weight: UnsafeBufferPointer<Float>, rows: some Sequence<Int>) {
            guard let w = weight.baseAddress else { return }
            for row in rows { rmsNormRow(xp + row * hidden, w, normedp + row * hidden, hidden, c.rmsNormEps) }
        }
        /// Qwen3's RMSNorm over each head of q or k (`heads` consecutive headDim-wide
        /// vectors, in place); nothing for an architecture without it (empty weight).
        func normalizeHeads(_ y: UnsafeMutablePointer<Float>, heads: Int, _ weight: UnsafeBufferPointer<Float>) {
            guard !weight.isEmpty, let w = weight.baseAddress else { return }
            for head in 0..<heads { rmsNormRow(y + head * headDim, w, y + head * headDim, headDim, c.rmsNormEps) }
        }
        /// y[row, 0..<bias.count] += bias for the row; nothing for an empty bias.
        func addBias(_ y: UnsafeMutablePointer<Float>, row: Int, _ bias: UnsafeBufferPointer<Float>) {
            guard !bias.isEmpty, let b = bias.baseAddress else { return }
            addInPlace(y + row * bias.count, b, n: bias.count)
        }

        // Prompt rows' attention blocks: `attentionBlockRows` rows of a chunk per KV head,
        // those ending at the latest position first.
        let blockedAttention = headDim % 32 == 0
        var attentionBlocks: [(row: Int, rows: Int, kvHead: Int)] = []   // [blocks] (first row, rows, KV head)
        if blockedAttention {
            for i in order where chunks[i].kind == .prompt {
                let count = chunks[i].tokens.count
                for start in stride(from: 0, to: count, by: attentionBlockRows) {
                    for kvHead in 0..<c.kvHeadCount {
                        attentionBlocks.append((firstRow[i] + start, min(attentionBlockRows, count - start), kvHead))
                    }
                }
            }
            attentionBlocks.sort { rowPosition[$0.row + $0.rows - 1] > rowPosition[$1.row + $1.rows - 1] }
        }

        // Per layer, each row's cached keys/values, read by the pool's workers (a plain
        // buffer: Swift arrays of class references would contend on reference counts).
        let rowCaches = UnsafeMutablePointer<CachedRows>.allocate(capacity: rowCount)   // [R]
        defer { rowCaches.deallocate() }
        let projectedp = projected.pointer, gatep = gate.pointer, upp = up.pointer, swiGLU = kernels.swiGLU

        for layerIndex in 0..<weights.layers.count {
            let layer = try weights.layers.layer(layerIndex)   // GPTQ: repacked on its first use
            layer.attentionNorm.withUnsafeBufferPointer { norm in forEachRowRange { rows in normalize(norm, rows: rows) } }
            linear([layer.query, layer.key, layer.value], normedp, [qp, kp, vp])

            for row in 0..<rowCount {
                let cache = chunks[rowChunk[row]].cache
                rowCaches[row] = CachedRows(keys: cache.keyPointer(layer: layerIndex, position: 0),
                                            values: cache.valuePointer(layer: layerIndex, position: 0),
                                            rowBytes: cache.rowBytes, headBytes: cache.type.bytes(values: headDim),
                                            type: cache.type)
            }
            // Per row: biases, Qwen3's head norms, RoPE, the query scale, then the row's keys
            // and values into its cache (each row its own position: no two rows share one).
            let keyScale = ForwardPass.q8KeyScale(layer.keyBias, kvDim: kvDim) ?? []   // [kvDim] or empty
            withUnsafeBuffers([layer.queryBias, layer.keyBias, layer.valueBias, layer.queryNorm, layer.keyNorm, keyScale,
                               queryScales]) { buffers in
                let (queryBias, keyBias, valueBias, queryNorm, keyNorm) = (buffers[0], buffers[1], buffers[2], buffers[3], buffers[4])
                let keyScale = buffers[5], queryScales = buffers[6]
                rowPosition.withUnsafeBufferPointer { positions in
                    forEachRowRange { rows in
                        for row in rows {
                            let qRow = qp + row * qDim, kRow = kp + row * kvDim, vRow = vp + row * kvDim
                            addBias(qp, row: row, queryBias)
                            addBias(kp, row: row, keyBias)
                            addBias(vp, row: row, valueBias)
                            normalizeHeads(qRow, heads: c.headCount, queryNorm)
                            normalizeHeads(kRow, heads: c.kvHeadCount, keyNorm)
                            let cos = cosinesp + row * half, sin = sinesp + row * half
                            ropeNeoX(qRow, heads: c.headCount, headDim: headDim, ropeDim: c.ropeDim, cosines: cos, sines: sin)
                            ropeNeoX(kRow, heads: c.kvHeadCount, headDim: headDim, ropeDim: c.ropeDim, cosines: cos, sines: sin)
                            let queryScale = queryScales[row]
                            for i in 0..<qDim { qRow[i] *= queryScale }
                            let cached = rowCaches[row]
                            if cached.q8, !keyScale.isEmpty {
                                // Keys stored divided by their channel's scale, queries multiplied by it:
                                // the same scores, without a bias outlier in a Q8_0 block of keys.
                                for i in 0..<kvDim { kRow[i] /= keyScale[i] }
                                for h in 0..<c.headCount {
                                    let kvBase = (h / groupSize) * headDim
                                    for i in 0..<headDim { qRow[h * headDim + i] *= keyScale[kvBase + i] }
                                }
                            }
                            cached.store(position: positions[row], keys: kRow, values: vRow, count: kvDim)
                        }
                    }
                }
            }

            // Causal attention, scratch per pool thread. Decode rows: one pool item per row
            // and part of a KV head's query heads (`decodeParts` parts, consecutive heads;
            // the kernel of the row's cache type reads each key and value once for the
            // part). Prompt rows: one item per block of a chunk's rows and KV head
            // (`attendBlock`, tiled over positions), the blocks with the latest positions
            // first so the costliest start first.
            let out = attention.pointer, scoreBase = scores.pointer, stride = groupSize * scoreCapacity
            let attendF16 = kernels.attend, attendQ8 = kernels.attendQ8, attendBlock = kernels.attendBlock
            let singleRows = blockedAttention ? decodeRows : rowCount
            let parts = decodeParts(rows: singleRows, kvHeads: c.kvHeadCount, group: groupSize), partsPerRow = c.kvHeadCount * parts
            let blockBase = blockScratch.pointer, blockStride = blockScratchFloats
            rowPosition.withUnsafeBufferPointer { positions in
                attentionBlocks.withUnsafeBufferPointer { blocks in
                    pool.parallelFor(singleRows * partsPerRow + blocks.count) { item, thread in
                        guard item >= singleRows * partsPerRow else {
                            let row = item / partsPerRow, kvHead = item % partsPerRow / parts, part = item % parts
                            let firstHead = kvHead * groupSize + part * groupSize / parts
                            let headCount = kvHead * groupSize + (part + 1) * groupSize / parts - firstHead
                            let rows = rowCaches[row], offset = kvHead * rows.headBytes
                            let query = qp + row * qDim + firstHead * headDim, result = out + row * qDim + firstHead * headDim
                            let attend = rows.q8 ? attendQ8 : attendF16
                            attend(query, headCount, rows.keys + offset, rows.values + offset, rows.rowBytes, positions[row] + 1,
                                   headDim, scoreBase + thread * stride, result)
                            return
                        }
                        let block = blocks[item - singleRows * partsPerRow], count = block.rows * groupSize
                        let rows = rowCaches[block.row], offset = block.kvHead * rows.headBytes
                        withUnsafeTemporaryAllocation(of: UnsafePointer<Float>.self, capacity: count) { queries in
                            withUnsafeTemporaryAllocation(of: UnsafeMutablePointer<Float>.self, capacity: count) { outs in
                                withUnsafeTemporaryAllocation(of: Int.self, capacity: count) { lengths in
                                    var k = 0
                                    for row in block.row..<(block.row + block.rows) {
                                        for h in (block.kvHead * groupSize)..<((block.kvHead + 1) * groupSize) {
                                            queries[k] = UnsafePointer(qp + row * qDim + h * headDim)
                                            outs[k] = out + row * qDim + h * headDim
                                            lengths[k] = positions[row] + 1
                                            k += 1
                                        }
                                    }
                                    attendBlock(queries.baseAddress!, outs.baseAddress!, lengths.baseAddress!, count,
                                                rows.keys + offset, rows.values + offset, rows.rowBytes, headDim, rows.q8,
                                                blockBase + thread * blockStride)
                                }
                            }
                        }
                    }
                }
            }
            linear([layer.attentionOutput], attention.pointer, [projectedp])
            layer.ffnNorm.withUnsafeBufferPointer { norm in
                forEachRowRange { rows in
                    addInPlace(xp + rows.lowerBound * hidden, projectedp + rows.lowerBound * hidden, n: rows.count * hidden)
                    normalize(norm, rows: rows)
                }
            }
            linear([layer.gate, layer.up], normedp, [gatep, upp])
            forEachRowRange { rows in swiGLU(gatep + rows.lowerBound * ffn, upp + rows.lowerBound * ffn, rows.count * ffn) }
            linear([layer.down], gatep, [projectedp])
            forEachRowRange { rows in
                addInPlace(xp + rows.lowerBound * hidden, projectedp + rows.lowerBound * hidden, n: rows.count * hidden)
            }
        }
        for chunk in chunks { chunk.cache.tokens.append(contentsOf: chunk.tokens) }

        // Logits. Rows scored in the decode kernels' int8 arithmetic, as a row decoded
        // alone: every `.last` row and `.all` decode rows; `.all` prompt chunks by matmul.
        var lastLogits = [UnsafeMutablePointer<Float>?](repeating: nil, count: chunks.count)
        var headRows: [(chunk: Int, row: Int, copyTo: UnsafeMutablePointer<Float>?)] = []
        var allChunks: [(first: Int, count: Int, into: UnsafeMutablePointer<Float>)] = []
        for (i, chunk) in chunks.enumerated() {
            switch chunk.logits {
            case .none: break
            case .last: headRows.append((i, firstRow[i] + chunk.tokens.count - 1, nil))
            case .all(let into) where chunk.kind == .decode: headRows.append((i, firstRow[i], into))
            case .all(let into): allChunks.append((firstRow[i], chunk.tokens.count, into))
            }
        }
        let vocab = c.vocabSize
        weights.outputNorm.withUnsafeBufferPointer { norm in
            normalize(norm, rows: headRows.map(\.row) + allChunks.flatMap { $0.first..<($0.first + $0.count) })
        }
        if !headRows.isEmpty {
            if headInput.count < headRows.count * hidden { headInput = FloatBuffer(headRows.count * hidden) }
            if logitRows.count < headRows.count * vocab { logitRows = FloatBuffer(headRows.count * vocab) }
            for (b, entry) in headRows.enumerated() {
                (headInput.pointer + b * hidden).update(from: normed.pointer + entry.row * hidden, count: hidden)
            }
            matvec([weights.output], headInput.pointer, count: headRows.count, [logitRows.pointer], pool: pool,
                   kernels: kernels, activations: activations)
            for (b, entry) in headRows.enumerated() {
                if let target = entry.copyTo {
                    target.update(from: logitRows.pointer + b * vocab, count: vocab)
                } else {
                    lastLogits[entry.chunk] = logitRows.pointer + b * vocab
                }
            }
        }
        for entry in allChunks {
            matmul(weights.output, normed.pointer + entry.first * hidden, entry.into, n: entry.count, pool: pool, kernels: kernels,
                   activations: promptActivations)
        }
        return lastLogits
    }

    /// Qwen v1's dynamic NTK alpha for a call that runs a sequence of `length` tokens, as
    /// modeling_qwen.py's get_ntk_alpha: 1 up to the trained length, beyond it
    /// 2^ceil(log2(length / trained) + 1) - 1. Always 1 without `useDynamicNTK`.
    static func ntkAlpha(_ config: ModelConfig, sequenceLength length: Int) -> Double {
        guard config.useDynamicNTK, length > config.contextLength else { return 1 }
        let contextValue = log2(Double(length) / Double(config.contextLength)) + 1
        return max(pow(2, ceil(contextValue)) - 1, 1)
    }

    /// Parts each KV head's `group` query heads are cut into for the attention of `rows`
    /// decode rows: whole groups (the kernel reads each key and value once for up to four
    /// heads, `AttendKernel`) unless that leaves the pool fewer than two items per thread,
    /// then as many parts as that takes (one head each at most).
    func decodeParts(rows: Int, kvHeads: Int, group: Int) -> Int {
        let items = max(1, rows * kvHeads), wanted = 2 * pool.threads
        return min(group, max(1, (wanted + items - 1) / items))
    }

    /// The RoPE base for an NTK alpha: base * alpha^(d / (d - 2)), d the rotated dims.
    func ropeTheta(ntkAlpha alpha: Double) -> Float {
        guard alpha != 1 else { return config.ropeTheta }
        let d = Double(config.ropeDim)
        return Float(Double(config.ropeTheta) * pow(alpha, d / (d - 2)))
    }

    /// The per-channel scale of a q8 cache's keys [kvDim], from the layer's key bias: a
    /// channel whose bias is far above the others (Qwen2.5-0.5B's reach 145 where most
    /// keys stay within a few units) would set its Q8_0 block's scale and round its 31
    /// neighbours coarsely (+4.7% perplexity), so every channel is stored divided by
    /// max(1, |bias| / 2) and the queries multiplied by it: scores unchanged, +0.05%
    /// perplexity on GPL-3 (BENCHMARKS.md; |bias| / 4: +1.0%, |bias|: +5.3%). nil when
    /// no channel needs it (no bias, or none above 2). Deterministic per model, so
    /// saved sessions and shared prompt prefixes agree.
    static func q8KeyScale(_ bias: [Float], kvDim: Int) -> [Float]? {
        guard bias.count == kvDim, bias.contains(where: { abs($0) > 2 }) else { return nil }
        return bias.map { max(1, abs($0) / 2) }
    }

    /// Qwen v1's logN attention: queries at positions past the trained length are scaled
    /// by log(position + 1) / log(trained length) (modeling_qwen.py's logn_tensor).
    func logNScale(position: Int) -> Float {
        guard config.useLogNAttention, position + 1 > config.contextLength else { return 1 }
        return Float(log(Double(position + 1)) / log(Double(config.contextLength)))
    }
}
