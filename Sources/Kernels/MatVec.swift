import COpenBLAS

// Fast paths: every format decodes a row into 16-lane chunks of f32 values
// (`forEachChunk`), which the dot product multiplies with x and the dequantizer
// stores. Swift SIMD types compile to AVX-512 with -target-cpu native; the tests
// hold each format to `Reference` on random blocks.

public typealias F16x = SIMD16<Float>

@inline(__always)
func load16(_ p: UnsafeRawPointer, _ offset: Int) -> SIMD16<UInt8> {
    p.loadUnaligned(fromByteOffset: offset, as: SIMD16<UInt8>.self)
}

@inline(__always)
func loadFloats(_ p: UnsafePointer<Float>, _ offset: Int) -> F16x {
    UnsafeRawPointer(p + offset).loadUnaligned(as: F16x.self)
}

/// Lane i holds i (and i + 16 for `laneIndexHigh`): the bit positions of Q5 high bits.
let laneIndex = SIMD16<Int32>(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
let laneIndexHigh = laneIndex &+ 16

/// Calls `emit(offset, values)` for each 16 consecutive dequantized values of a row of
/// `cols` elements (offset = index of values[0] within the row); for f32/f16/bf16 rows
/// whose length is not a multiple of 16, `tail(i, value)` gets the last elements.
@inline(__always)
func forEachChunk(_ type: GGMLType, _ row: UnsafeRawPointer, cols: Int,
                  _ emit: (Int, F16x) -> Void, tail: (Int, Float) -> Void) {
    let blocks = cols / type.blockSize
    switch type {
    case .f32:
        var i = 0
        while i + 16 <= cols { emit(i, row.loadUnaligned(fromByteOffset: 4 * i, as: F16x.self)); i += 16 }
        while i < cols { tail(i, row.loadUnaligned(fromByteOffset: 4 * i, as: Float.self)); i += 1 }
    case .f16:
        var i = 0
        while i + 16 <= cols { emit(i, halfToFloat(row.loadUnaligned(fromByteOffset: 2 * i, as: SIMD16<UInt16>.self))); i += 16 }
        while i < cols { tail(i, loadHalf(row, 2 * i)); i += 1 }
    case .bf16:
        var i = 0
        while i + 16 <= cols {
            let bits = widen(row.loadUnaligned(fromByteOffset: 2 * i, as: SIMD16<UInt16>.self)) &<< 16
            emit(i, unsafeBitCast(bits, to: F16x.self))
            i += 16
        }
        while i < cols { tail(i, Float(bitPattern: UInt32(row.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16)); i += 1 }
    case .q8_0:
        for b in 0..<blocks {
            let q = row + b &* 34
            let d = F16x(repeating: loadHalf(q, 0))
            let lo = q.loadUnaligned(fromByteOffset: 2, as: SIMD16<Int8>.self)
            let hi = q.loadUnaligned(fromByteOffset: 18, as: SIMD16<Int8>.self)
            emit(b &* 32, d * toFloat(widen(lo)))
            emit(b &* 32 &+ 16, d * toFloat(widen(hi)))
        }
    case .q4_0:
        let eight = F16x(repeating: 8)
        for b in 0..<blocks {
            let q = row + b &* 18
            let d = F16x(repeating: loadHalf(q, 0))
            let v = load16(q, 2)
            emit(b &* 32, d * (toFloat(v & 0x0F) - eight))
            emit(b &* 32 &+ 16, d * (toFloat(v &>> 4) - eight))
        }
    case .q4_1:
        for b in 0..<blocks {
            let q = row + b &* 20
            let d = F16x(repeating: loadHalf(q, 0)), m = F16x(repeating: loadHalf(q, 2))
            let v = load16(q, 4)
            emit(b &* 32, d * toFloat(v & 0x0F) + m)
            emit(b &* 32 &+ 16, d * toFloat(v &>> 4) + m)
        }
    case .q5_0, .q5_1:
        let hasMin = type == .q5_1
        let bytes = type.blockBytes
        let hOffset = hasMin ? 4 : 2
        let sixteen = F16x(repeating: 16)
        for b in 0..<blocks {
            let q = row + b &* bytes
            let d = F16x(repeating: loadHalf(q, 0))
            let m = hasMin ? F16x(repeating: loadHalf(q, 2)) : -d * sixteen
            let qh = SIMD16<Int32>(repeating: q.loadUnaligned(fromByteOffset: hOffset, as: Int32.self))
            let highLo = ((qh &>> laneIndex) & 1) &<< 4
            let highHi = ((qh &>> laneIndexHigh) & 1) &<< 4
            let v = widen(load16(q, hOffset &+ 4))
            emit(b &* 32, d * toFloat((v & 0x0F) | highLo) + m)
            emit(b &* 32 &+ 16, d * toFloat((v &>> 4) | highHi) + m)
        }
    case .q4_K, .q5_K:
        let isQ5 = type == .q5_K
        let bytes = type.blockBytes
        for b in 0..<blocks {
            let q = row + b &* bytes
            let d = loadHalf(q, 0), dmin = loadHalf(q, 2)
            let scales = q + 4
            let qh = q + 16
            let ql = q + (isQ5 ? 48 : 16)
            let h0 = load16(qh, 0), h1 = load16(qh, 16)
            for group in 0..<4 {
                let (s1, m1) = Reference.scaleMinK4(2 * group, scales)
                let (s2, m2) = Reference.scaleMinK4(2 * group + 1, scales)
                let d1 = F16x(repeating: d * s1), min1 = F16x(repeating: dmin * m1)
                let d2 = F16x(repeating: d * s2), min2 = F16x(repeating: dmin * m2)
                let v0 = load16(ql, group &* 32), v1 = load16(ql, group &* 32 &+ 16)
                var lo0 = v0 & 0x0F, lo1 = v1 & 0x0F, hi0 = v0 &>> 4, hi1 = v1 &>> 4
                if isQ5 {
                    let bitLo = UInt8(2 * group), bitHi = UInt8(2 * group + 1)
                    lo0 |= ((h0 &>> bitLo) & 1) &<< 4
                    lo1 |= ((h1 &>> bitLo) & 1) &<< 4
                    hi0 |= ((h0 &>> bitHi) & 1) &<< 4
                    hi1 |= ((h1 &>> bitHi) & 1) &<< 4
                }
                let base = b &* 256 &+ group &* 64
                emit(base, d1 * toFloat(lo0) - min1)
                emit(base &+ 16, d1 * toFloat(lo1) - min1)
                emit(base &+ 32, d2 * toFloat(hi0) - min2)
                emit(base &+ 48, d2 * toFloat(hi1) - min2)
            }
        }
    case .q6_K:
        let thirtyTwo = SIMD16<Int32>(repeating: 32)
        for b in 0..<blocks {
            let q = row + b &* 210
            let d = loadHalf(q, 208)
            for half in 0..<2 {
                let ql = q + 64 * half, qh = q + 128 + 32 * half, sc = q + 192 + 8 * half
                for part in 0..<2 {          // lanes l = 16 * part ..< 16 * part + 16, scale index = part
                    let l = 16 * part
                    let a = widen(load16(ql, l))
                    let c = widen(load16(ql, l &+ 32))
                    let h = widen(load16(qh, l))
                    let q1 = ((a & 0xF) | ((h & 3) &<< 4)) &- thirtyTwo
                    let q2 = ((c & 0xF) | (((h &>> 2) & 3) &<< 4)) &- thirtyTwo
                    let q3 = ((a &>> 4) | (((h &>> 4) & 3) &<< 4)) &- thirtyTwo
                    let q4 = ((c &>> 4) | (((h &>> 6) & 3) &<< 4)) &- thirtyTwo
                    func scale(_ i: Int) -> F16x { F16x(repeating: d * Float(sc.load(fromByteOffset: i, as: Int8.self))) }
                    let base = b &* 256 &+ 128 * half + l
                    emit(base, scale(part) * toFloat(q1))
                    emit(base &+ 32, scale(part + 2) * toFloat(q2))
                    emit(base &+ 64, scale(part + 4) * toFloat(q3))
                    emit(base &+ 96, scale(part + 6) * toFloat(q4))
                }
            }
        }
    }
}

/// Dot product of row `r` of `w` with x[cols] (SIMD fast path).
@inline(__always)
public func dot(_ w: WeightMatrix, row r: Int, _ x: UnsafePointer<Float>) -> Float {
    var acc = F16x()
    var tailSum: Float = 0
    forEachChunk(w.type, w.row(r), cols: w.cols, { offset, values in
        acc.addProduct(values, loadFloats(x, offset))
    }, tail: { i, value in tailSum += value * x[i] })
    return acc.sum() + tailSum
}

/// Dequantizes row `r` of `w` into out[cols] (SIMD fast path); also the embedding lookup.
public func dequantizeRow(_ w: WeightMatrix, row r: Int, into out: UnsafeMutablePointer<Float>) {
    forEachChunk(w.type, w.row(r), cols: w.cols, { offset, values in
        UnsafeMutableRawPointer(out + offset).storeBytes(of: values, as: F16x.self)
    }, tail: { i, value in out[i] = value })
}

/// y[rows] = W x[cols], output rows split over the pool. Formats with an int8 path
/// (`GGMLType.hasInt8Path`) quantize x once and use integer dot products.
public func matvec(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, pool: ThreadPool) {
    matvec([w], x, [y], pool: pool)
}

/// y_i = W_i x for several matrices sharing the input x (q/k/v, gate/up): one job on
/// the pool and one quantization of x instead of one per matrix.
public func matvec(_ ws: [WeightMatrix], _ x: UnsafePointer<Float>, _ ys: [UnsafeMutablePointer<Float>], pool: ThreadPool) {
    guard let cols = ws.first?.cols else { return }
    var quantized: QuantizedActivations? = nil
    if ws.contains(where: { $0.type.hasInt8Path }) {
        let a = QuantizedActivations(capacity: cols)
        a.quantize(x, count: cols)
        quantized = a
    }
    let activations = quantized?.view
    // About 8 chunks per thread (multiples of 16 rows) over all matrices, as (matrix,
    // first row) pairs: enough to balance, few enough that the shared work counter is
    // not a point of contention. The workers read plain buffers: touching the Swift
    // arrays from both threads would make them contend on the arrays' reference counts.
    let totalRows = ws.reduce(0) { $0 + $1.rows }
    let chunk = max(16, (totalRows / (pool.threads * 8) + 15) / 16 * 16)
    var starts: [(Int, Int)] = []
    for (i, w) in ws.enumerated() {
        for first in stride(from: 0, to: w.rows, by: chunk) { starts.append((i, first)) }
    }
    starts.withUnsafeBufferPointer { starts in
        ws.withUnsafeBufferPointer { ws in
            ys.withUnsafeBufferPointer { ys in
                pool.parallelFor(starts.count) { c in
                    let (i, first) = starts[c]
                    let w = ws[i], y = ys[i]
                    let a = w.type.hasInt8Path ? activations : nil
                    for r in first..<min(first &+ chunk, w.rows) { y[r] = fastDot(w, row: r, x, a) }
                }
            }
        }
    }
    withExtendedLifetime(quantized) {}
}

/// Rows of W dequantized per sgemm call in `matmul`.
let matmulTileRows = 64

/// Y[n, rows] = X[n, cols] W^T for a batch of n tokens (prefill). Tiles of W are
/// dequantized to f32 and multiplied with OpenBLAS sgemm; tiles are split over the
/// pool and OpenBLAS runs single-threaded inside each, so the two never oversubscribe.
public func matmul(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, n: Int, pool: ThreadPool) {
    if n == 1 { return matvec(w, x, y, pool: pool) }
    OpenBLAS.useOneThread()
    let tiles = (w.rows + matmulTileRows - 1) / matmulTileRows
    pool.parallelFor(tiles) { tile in
        let first = tile * matmulTileRows
        let count = min(matmulTileRows, w.rows - first)
        let weights: UnsafePointer<Float>
        var scratch: UnsafeMutablePointer<Float>? = nil
        if w.type == .f32 {
            weights = w.row(first).assumingMemoryBound(to: Float.self)
        } else {
            let buffer = UnsafeMutablePointer<Float>.allocate(capacity: count * w.cols)  // [count, cols]
            for r in 0..<count { dequantizeRow(w, row: first + r, into: buffer + r * w.cols) }
            scratch = buffer
            weights = UnsafePointer(buffer)
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(count), Int32(w.cols),
                    1, x, Int32(w.cols), weights, Int32(w.cols), 0, y + first, Int32(w.rows))
        scratch?.deallocate()
    }
}

/// OpenBLAS keeps its own thread pool; ours splits the work, so it runs one thread.
enum OpenBLAS {
    static let configured: Bool = {
        openblas_set_num_threads(1)
        return true
    }()
    static func useOneThread() { _ = configured }
}
