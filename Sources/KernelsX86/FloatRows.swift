// Decode and dequantization of the float formats (F32, F16, BF16) in the x86 kernels;
// X86Kernels.swift says how these sources are compiled.
#if arch(x86_64)
import KernelABI
import _Builtin_intrinsics.intel

// MARK: Float formats

/// How one row of a float format turns 8 consecutive values into f32.
protocol FloatRow {
    static var bytesPerValue: Int { get }
    static func load8(_ p: UnsafeRawPointer, _ index: Int) -> __m256
    static func load1(_ p: UnsafeRawPointer, _ index: Int) -> Float
}

enum F32: FloatRow {
    static var bytesPerValue: Int { 4 }
    static func load8(_ p: UnsafeRawPointer, _ i: Int) -> __m256 { _mm256_loadu_ps((p + 4 &* i).assumingMemoryBound(to: Float.self)) }
    static func load1(_ p: UnsafeRawPointer, _ i: Int) -> Float { p.loadUnaligned(fromByteOffset: 4 &* i, as: Float.self) }
}

enum F16: FloatRow {
    static var bytesPerValue: Int { 2 }
    static func load8(_ p: UnsafeRawPointer, _ i: Int) -> __m256 { _mm256_cvtph_ps(load128(p, 2 &* i)) }
    static func load1(_ p: UnsafeRawPointer, _ i: Int) -> Float { loadHalf(p, 2 &* i) }
}

enum BF16: FloatRow {
    static var bytesPerValue: Int { 2 }
    static func load8(_ p: UnsafeRawPointer, _ i: Int) -> __m256 {
        _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(load128(p, 2 &* i)), 16))
    }
    static func load1(_ p: UnsafeRawPointer, _ i: Int) -> Float {
        Float(bitPattern: UInt32(p.loadUnaligned(fromByteOffset: 2 &* i, as: UInt16.self)) << 16)
    }
}

/// y[b * yStride + r] = row r · x_b for the `count` vectors v (f32 x), up to 4 vectors
/// per pass over a row. Per vector: two accumulators over steps of 16 values, their sum
/// reduced, then the values past the last 16 one by one: the same operations whatever
/// the batch.
@inline(__always) func rowsFloat<F: FloatRow>(_: F.Type, _ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int,
                                             _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
    var b = 0
    while b < count {
        switch count &- b {
        case 1: rowsFloatPass(F.self, w, rowBytes, cols, rows, v + b, 1, y + b &* yStride, yStride); b &+= 1
        case 2: rowsFloatPass(F.self, w, rowBytes, cols, rows, v + b, 2, y + b &* yStride, yStride); b &+= 2
        case 3: rowsFloatPass(F.self, w, rowBytes, cols, rows, v + b, 3, y + b &* yStride, yStride); b &+= 3
        default: rowsFloatPass(F.self, w, rowBytes, cols, rows, v + b, 4, y + b &* yStride, yStride); b &+= 4
        }
    }
}

/// rowsFloat for n (1...4, a constant once inlined) vectors.
@inline(__always) func rowsFloatPass<F: FloatRow>(_: F.Type, _ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int,
                                                 _ v: UnsafePointer<qe_vector>, _ n: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
    let x0 = v[0].x!, x1 = v[min(1, n &- 1)].x!, x2 = v[min(2, n &- 1)].x!, x3 = v[min(3, n &- 1)].x!
    @inline(__always) func x(_ j: Int) -> UnsafePointer<Float> { j == 0 ? x0 : j == 1 ? x1 : j == 2 ? x2 : x3 }
    for r in 0..<rows {
        let row = w + r &* rowBytes
        let zero = _mm256_setzero_ps()
        var a = (zero, zero, zero, zero), c = (zero, zero, zero, zero)   // per vector: the two accumulators
        var i = 0
        while i &+ 16 <= cols {
            let w0 = F.load8(row, i), w1 = F.load8(row, i &+ 8)
            a.0 = _mm256_fmadd_ps(w0, loadFloat8(x0, i), a.0); c.0 = _mm256_fmadd_ps(w1, loadFloat8(x0, i &+ 8), c.0)
            if n > 1 { a.1 = _mm256_fmadd_ps(w0, loadFloat8(x1, i), a.1); c.1 = _mm256_fmadd_ps(w1, loadFloat8(x1, i &+ 8), c.1) }
            if n > 2 { a.2 = _mm256_fmadd_ps(w0, loadFloat8(x2, i), a.2); c.2 = _mm256_fmadd_ps(w1, loadFloat8(x2, i &+ 8), c.2) }
            if n > 3 { a.3 = _mm256_fmadd_ps(w0, loadFloat8(x3, i), a.3); c.3 = _mm256_fmadd_ps(w1, loadFloat8(x3, i &+ 8), c.3) }
            i &+= 16
        }
        let sums = (_mm256_add_ps(a.0, c.0), _mm256_add_ps(a.1, c.1), _mm256_add_ps(a.2, c.2), _mm256_add_ps(a.3, c.3))
        for j in 0..<n {
            var total = hsum(j == 0 ? sums.0 : j == 1 ? sums.1 : j == 2 ? sums.2 : sums.3)
            var t = i
            while t < cols { total += F.load1(row, t) * x(j)[t]; t &+= 1 }
            y[j &* yStride &+ r] = total
        }
    }
}

@inline(__always) func dequantizeFloat<F: FloatRow>(_: F.Type, _ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) {
    var i = 0
    while i &+ 8 <= cols { storeFloat8(out, i, F.load8(row, i)); i &+= 8 }
    while i < cols { out[i] = F.load1(row, i); i &+= 1 }
}
#endif
