import KernelABI
#if canImport(Glibc)
import Glibc
#endif

// The portable kernels: Swift SIMD types and loops the compiler vectorises, no
// architecture-specific import, so they compile for every Swift target (aarch64
// included). They compute what the x86 kernels compute (the same int8 activations and
// integer dot products), from the per-format decoders in Formats/.

enum GenericKernels {
    static let table = KernelTable(
        isa: .generic, rowKernels: GGMLType.allCases.map(rows), dequantizeKernels: GGMLType.allCases.map(dequantize),
        interleavedRowKernels: GGMLType.allCases.map(interleavedRows),
        interleavedDequantizeKernels: GGMLType.allCases.map(interleavedDequantize),
        quantizeQ8: quantizeQ8, attend: headByHead(attendHead), attendQ8: headByHead(attendHeadQ8), attendBlock: attendBlock, swiGLU: swiGLU,
        rmsNorm: { Kernels.rmsNorm($0, $1, $2, n: $3, eps: $4) }, gemm: nil)

    /// The decode kernel for `type`: one vector at a time (the generic path is the
    /// portable reference, not tuned for batches).
    static func rows(_ type: GGMLType) -> RowsKernel {
        let single = singleRows(type)
        return { w, rowBytes, cols, rows, v, count, y, yStride in
            for b in 0..<count { single(w, rowBytes, cols, rows, v + b, y + b &* yStride) }
        }
    }

    /// y[r] = dot(row r, x) for one input vector: (first row, rowBytes, cols, rows, x, y).
    typealias SingleRowsKernel = (UnsafeRawPointer, Int, Int, Int, UnsafePointer<qe_vector>, UnsafeMutablePointer<Float>) -> Void

    static func singleRows(_ type: GGMLType) -> SingleRowsKernel {
        switch type {
        case .f32: return { rowsFloat($0, $1, $2, $3, $4, $5, F32Format.value) }
        case .f16: return { rowsFloat($0, $1, $2, $3, $4, $5, F16Format.value) }
        case .bf16: return { rowsFloat($0, $1, $2, $3, $4, $5, BF16Format.value) }
        case .q8_0: return { rows32(Q8_0Format.self, $0, $1, $2, $3, $4, $5) }
        case .q4_0: return { rows32(Q4_0Format.self, $0, $1, $2, $3, $4, $5) }
        case .q4_1: return { rows32(Q4_1Format.self, $0, $1, $2, $3, $4, $5) }
        case .q5_0: return { rows32(Q5_0Format.self, $0, $1, $2, $3, $4, $5) }
        case .q5_1: return { rows32(Q5_1Format.self, $0, $1, $2, $3, $4, $5) }
        case .q4_Z: return { rows32(Q4_ZFormat.self, $0, $1, $2, $3, $4, $5) }
        case .q8_Z: return { rows32(Q8_ZFormat.self, $0, $1, $2, $3, $4, $5) }
        case .q4_K: return { rows256(Q4_KFormat.self, $0, $1, $2, $3, $4, $5) }
        case .q5_K: return { rows256(Q5_KFormat.self, $0, $1, $2, $3, $4, $5) }
        case .q6_K: return { rows256(Q6_KFormat.self, $0, $1, $2, $3, $4, $5) }
        }
    }

    static func dequantize(_ type: GGMLType) -> DequantizeKernel {
        switch type {
        case .f32: return { row, cols, out in for i in 0..<cols { out[i] = F32Format.value(row, i) } }
        case .f16: return { row, cols, out in for i in 0..<cols { out[i] = F16Format.value(row, i) } }
        case .bf16: return { row, cols, out in for i in 0..<cols { out[i] = BF16Format.value(row, i) } }
        case .q8_0: return { dequantize32(Q8_0Format.self, $0, $1, $2) }
        case .q4_0: return { dequantize32(Q4_0Format.self, $0, $1, $2) }
        case .q4_1: return { dequantize32(Q4_1Format.self, $0, $1, $2) }
        case .q5_0: return { dequantize32(Q5_0Format.self, $0, $1, $2) }
        case .q5_1: return { dequantize32(Q5_1Format.self, $0, $1, $2) }
        case .q4_Z: return { dequantize32(Q4_ZFormat.self, $0, $1, $2) }
        case .q8_Z: return { dequantize32(Q8_ZFormat.self, $0, $1, $2) }
        case .q4_K: return { dequantize256(Q4_KFormat.self, $0, $1, $2) }
        case .q5_K: return { dequantize256(Q5_KFormat.self, $0, $1, $2) }
        case .q6_K: return { dequantize256(Q6_KFormat.self, $0, $1, $2) }
        }
    }

    /// Interleaved rows: each row rebuilt in ggml's layout, then the ggml-layout kernel
    /// for each vector.
    static func interleavedRows(_ type: GGMLType) -> RowsKernel? {
        guard type.blockSize >= 32 else { return nil }
        let kernel = singleRows(type)
        return { w, rowBytes, cols, rows, v, count, y, yStride in
            withUnsafeTemporaryAllocation(byteCount: rowBytes, alignment: 16) { row in
                for r in 0..<rows {
                    ggmlRow(type, cols: cols, w + r &* rowBytes, into: row.baseAddress!)
                    for b in 0..<count { kernel(UnsafeRawPointer(row.baseAddress!), rowBytes, cols, 1, v + b, y + b &* yStride + r) }
                }
            }
        }
    }

    static func interleavedDequantize(_ type: GGMLType) -> DequantizeKernel? {
        guard type.blockSize >= 32 else { return nil }
        let kernel = dequantize(type)
        return { source, cols, out in
            withUnsafeTemporaryAllocation(byteCount: type.rowSize(cols) ?? 0, alignment: 16) { row in
                ggmlRow(type, cols: cols, source, into: row.baseAddress!)
                kernel(UnsafeRawPointer(row.baseAddress!), cols, out)
            }
        }
    }

    static func rowsFloat(_ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int, _ v: UnsafePointer<qe_vector>,
                          _ y: UnsafeMutablePointer<Float>, _ value: (UnsafeRawPointer, Int) -> Float) {
        let x = v.pointee.x!
        for r in 0..<rows {
            let row = w + r &* rowBytes
            var acc = SIMD8<Float>()
            var i = 0
            while i &+ 8 <= cols {
                var lane = SIMD8<Float>()
                for k in 0..<8 { lane[k] = value(row, i &+ k) }
                acc.addProduct(lane, UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self))
                i &+= 8
            }
            var total = acc.sum()
            while i < cols { total += value(row, i) * x[i]; i &+= 1 }
            y[r] = total
        }
    }

    static func rows32<F: Block32Format>(_: F.Type, _ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int,
                                         _ v: UnsafePointer<qe_vector>, _ y: UnsafeMutablePointer<Float>) {
        let q8 = v.pointee.q8!, d8 = v.pointee.d8!, s8 = v.pointee.s8!
        withUnsafeTemporaryAllocation(of: Int8.self, capacity: 32) { codes in
            let c = codes.baseAddress!
            for r in 0..<rows {
                let row = w + r &* rowBytes
                var total: Float = 0
                for b in 0..<(cols / 32) {
                    let (d, m) = F.decode(row + b &* F.blockBytes, c)
                    var sum: Int32 = 0
                    for i in 0..<32 { sum &+= Int32(c[i]) &* Int32(q8[b &* 32 &+ i]) }
                    total += d * d8[b] * Float(sum) + m * s8[b]
                }
                y[r] = total
            }
        }
    }

    static func rows256<F: Block256Format>(_: F.Type, _ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int,
                                           _ v: UnsafePointer<qe_vector>, _ y: UnsafeMutablePointer<Float>) {
        let q8 = v.pointee.q8!, d8 = v.pointee.d8!
        withUnsafeTemporaryAllocation(of: Int8.self, capacity: 256) { codes in
            withUnsafeTemporaryAllocation(of: Int32.self, capacity: 32) { params in
                let c = codes.baseAddress!, scales = params.baseAddress!, mins = scales + 16
                for r in 0..<rows {
                    let row = w + r &* rowBytes
                    var total: Float = 0
                    for b in 0..<(cols / 256) {
                        let (d, dmin) = F.decode(row + b &* F.blockBytes, c, scales, mins)
                        for sub in 0..<8 {                 // 32 values: one activation scale
                            var sum: Int32 = 0, minSum: Int32 = 0
                            for g in (2 &* sub)..<(2 &* sub &+ 2) {
                                var products: Int32 = 0, activations: Int32 = 0
                                for i in 0..<16 {
                                    let a = Int32(q8[b &* 256 &+ g &* 16 &+ i])
                                    products &+= Int32(c[g &* 16 &+ i]) &* a
                                    activations &+= a
                                }
                                sum &+= scales[g] &* products
                                minSum &+= mins[g] &* activations
                            }
                            total += d8[b &* 8 &+ sub] * (d * Float(sum) - dmin * Float(minSum))
                        }
                    }
                    y[r] = total
                }
            }
        }
    }

    static func dequantize32<F: Block32Format>(_: F.Type, _ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) {
        withUnsafeTemporaryAllocation(of: Int8.self, capacity: 32) { codes in
            let c = codes.baseAddress!
            for b in 0..<(cols / 32) {
                let (d, m) = F.decode(row + b &* F.blockBytes, c)
                for i in 0..<32 { out[b &* 32 &+ i] = d * Float(c[i]) + m }
            }
        }
    }

    static func dequantize256<F: Block256Format>(_: F.Type, _ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) {
        withUnsafeTemporaryAllocation(of: Int8.self, capacity: 256) { codes in
            withUnsafeTemporaryAllocation(of: Int32.self, capacity: 32) { params in
                let c = codes.baseAddress!, scales = params.baseAddress!, mins = scales + 16
                for b in 0..<(cols / 256) {
                    let (d, dmin) = F.decode(row + b &* F.blockBytes, c, scales, mins)
                    for i in 0..<256 {
                        out[b &* 256 &+ i] = d * Float(scales[i / 16]) * Float(c[i]) - dmin * Float(mins[i / 16])
                    }
                }
            }
        }
    }

    /// Per 32 values: d = max|x| / 127, q = round-to-nearest-even(x / d), s = d * Σ q; then
    /// the lane records (`writeLaneRecords`).
    static func quantizeQ8(_ x: UnsafePointer<Float>, _ cols: Int, _ q8: UnsafeMutablePointer<Int8>,
                           _ d8: UnsafeMutablePointer<Float>, _ s8: UnsafeMutablePointer<Float>, _ lanes: UnsafeMutableRawPointer) {
        for b in 0..<(cols / 32) {
            var maximum: Float = 0
            for i in 0..<32 { maximum = max(maximum, abs(x[b &* 32 &+ i])) }
            let scale = maximum / 127
            let inverse: Float = scale > 0 ? 1 / scale : 0
            var sum: Int32 = 0
            for i in 0..<32 {
                let value = Int8((x[b &* 32 &+ i] * inverse).rounded(.toNearestOrEven))
                q8[b &* 32 &+ i] = value
                sum &+= Int32(value)
            }
            d8[b] = scale
            s8[b] = scale * Float(sum)
        }
        writeLaneRecords(q8, d8, cols: cols, lanes)
    }

    /// An `AttendKernel` that runs a one-head kernel for each head in turn.
    static func headByHead(_ attendOne: @escaping (UnsafePointer<Float>, UnsafeRawPointer, UnsafeRawPointer, Int, Int, Int,
                                                   UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> Void) -> AttendKernel {
        { q, heads, keys, values, rowBytes, length, headDim, scores, out in
            for h in 0..<heads {
                attendOne(q + h &* headDim, keys, values, rowBytes, length, headDim, scores + h &* length, out + h &* headDim)
            }
        }
    }

    /// The scalar reference of the f16 attention kernel (`AttendKernel`), one head.
    static func attendHead(_ q: UnsafePointer<Float>, _ keys: UnsafeRawPointer, _ values: UnsafeRawPointer,
                           _ rowBytes: Int, _ length: Int, _ headDim: Int,
                           _ scores: UnsafeMutablePointer<Float>, _ out: UnsafeMutablePointer<Float>) {
        for t in 0..<length {
            let key = keys + t &* rowBytes
            var sum: Float = 0
            for i in 0..<headDim { sum += q[i] * loadHalf(key, 2 &* i) }
            scores[t] = sum
        }
        softmax(scores, n: length)
        out.initialize(repeating: 0, count: headDim)
        for t in 0..<length {
            let weight = scores[t], value = values + t &* rowBytes
            for i in 0..<headDim { out[i] += weight * loadHalf(value, 2 &* i) }
        }
    }

    /// The scalar reference of the Q8_0 attention kernel: per position and block of 32,
    /// score += d_k * Σ q[i] k[i]; out += weight * d_v * v[i].
    static func attendHeadQ8(_ q: UnsafePointer<Float>, _ keys: UnsafeRawPointer, _ values: UnsafeRawPointer,
                             _ rowBytes: Int, _ length: Int, _ headDim: Int,
                             _ scores: UnsafeMutablePointer<Float>, _ out: UnsafeMutablePointer<Float>) {
        let blocks = headDim / 32, blockBytes = Q8_0Format.blockBytes
        for t in 0..<length {
            let key = keys + t &* rowBytes
            var sum: Float = 0
            for b in 0..<blocks {
                let block = key + b &* blockBytes
                var dot: Float = 0
                for i in 0..<32 { dot += q[b &* 32 &+ i] * Float(block.load(fromByteOffset: 2 &+ i, as: Int8.self)) }
                sum += loadHalf(block, 0) * dot
            }
            scores[t] = sum
        }
        softmax(scores, n: length)
        out.initialize(repeating: 0, count: headDim)
        for t in 0..<length {
            let value = values + t &* rowBytes
            for b in 0..<blocks {
                let block = value + b &* blockBytes
                let weight = scores[t] * loadHalf(block, 0)
                for i in 0..<32 { out[b &* 32 &+ i] += weight * Float(block.load(fromByteOffset: 2 &+ i, as: Int8.self)) }
            }
        }
    }

    /// The scalar reference of the prefill attention kernel (`AttendBlockKernel`): the same
    /// tiles and online softmax as the x86 kernel, one value at a time.
    static func attendBlock(_ queries: UnsafePointer<UnsafePointer<Float>>, _ outs: UnsafePointer<UnsafeMutablePointer<Float>>,
                            _ lengths: UnsafePointer<Int>, _ count: Int, _ keys: UnsafeRawPointer, _ values: UnsafeRawPointer,
                            _ rowBytes: Int, _ headDim: Int, _ q8: Bool, _ scratch: UnsafeMutablePointer<Float>) {
        let tile = Int(QE_ATTENTION_TILE)
        let keysT = scratch, tileValues = keysT + headDim &* tile              // [headDim, tile], [tile, headDim]
        let scores = tileValues + tile &* headDim                              // [tile]
        let longest = (0..<count).reduce(0) { max($0, lengths[$1]) }
        for i in 0..<count { outs[i].initialize(repeating: 0, count: headDim) }
        var maxima = [Float](repeating: -.infinity, count: count), sums = [Float](repeating: 0, count: count)
        var first = 0
        while first < longest {
            let n = min(tile, longest &- first)
            for j in 0..<n {
                // The key read into value row j first, transposed, then the value over it.
                let row = tileValues + j &* headDim
                dequantizeKVRow(keys + (first &+ j) &* rowBytes, count: headDim, q8: q8, into: row)
                for d in 0..<headDim { keysT[d &* tile &+ j] = row[d] }
                dequantizeKVRow(values + (first &+ j) &* rowBytes, count: headDim, q8: q8, into: row)
            }
            for i in 0..<count {
                let valid = min(lengths[i] &- first, n)
                guard valid > 0 else { continue }
                var tileMaximum = -Float.infinity
                for j in 0..<valid {
                    var score: Float = 0
                    for d in 0..<headDim { score += queries[i][d] * keysT[d &* tile &+ j] }
                    scores[j] = score
                    tileMaximum = max(tileMaximum, score)
                }
                let newMaximum = max(maxima[i], tileMaximum)
                let factor = maxima[i] == -.infinity ? 0 : expf(maxima[i] - newMaximum)
                var tileSum: Float = 0
                for j in 0..<valid {
                    scores[j] = expf(scores[j] - newMaximum)
                    tileSum += scores[j]
                }
                sums[i] = sums[i] * factor + tileSum
                maxima[i] = newMaximum
                for d in 0..<headDim {
                    var sum = outs[i][d] * factor
                    for j in 0..<valid { sum += scores[j] * tileValues[j &* headDim &+ d] }
                    outs[i][d] = sum
                }
            }
            first &+= n
        }
        for i in 0..<count {
            let inverse = 1 / sums[i]
            for d in 0..<headDim { outs[i][d] *= inverse }
        }
    }

    static func swiGLU(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, _ n: Int) {
        for i in 0..<n {
            let g = gate[i]
            gate[i] = g / (1 + expf(-g)) * up[i]
        }
    }
}
