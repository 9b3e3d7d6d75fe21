// Attention over a Q8_0 KV cache (rows of ggml's Q8_0 blocks: Kernels/KVRows.swift),
// compiled into each x86 kernel target like X86Kernels.swift (each holds a symlink to
// this file). The loop structure of the f16 kernel (`attend`): a dot of q with every
// key, the softmax, a weighted sum of the values; each block of 32 int8 is widened to
// f32 and its f16 scale applied once per block. Kernels' `GenericKernels.attendHeadQ8`
// is the scalar reference.
#if arch(x86_64)
import KernelABI
import _Builtin_intrinsics.intel

/// The 8 int8 at p + offset, as f32.
@inline(__always) func loadInt8AsFloat8(_ p: UnsafeRawPointer, _ offset: Int) -> __m256 {
    _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((p + offset).assumingMemoryBound(to: __m128i.self))))
}

/// acc + weight * (the 32 int8 of the Q8_0 block at p), four registers of 8 lanes.
@inline(__always) func accumulateBlock(_ acc: (__m256, __m256, __m256, __m256), _ weight: __m256,
                                       _ p: UnsafeRawPointer) -> (__m256, __m256, __m256, __m256) {
    (_mm256_fmadd_ps(weight, loadInt8AsFloat8(p, 2), acc.0), _mm256_fmadd_ps(weight, loadInt8AsFloat8(p, 10), acc.1),
     _mm256_fmadd_ps(weight, loadInt8AsFloat8(p, 18), acc.2), _mm256_fmadd_ps(weight, loadInt8AsFloat8(p, 26), acc.3))
}

/// out[32] = scale * acc.
@inline(__always) func storeBlock(_ out: UnsafeMutablePointer<Float>, _ acc: (__m256, __m256, __m256, __m256), _ scale: __m256) {
    storeFloat8(out, 0, _mm256_mul_ps(scale, acc.0))
    storeFloat8(out, 8, _mm256_mul_ps(scale, acc.1))
    storeFloat8(out, 16, _mm256_mul_ps(scale, acc.2))
    storeFloat8(out, 24, _mm256_mul_ps(scale, acc.3))
}

/// scores[t] = q · keys[t], softmax, out[headDim] = Σ_t scores[t] * values[t], for Q8_0
/// rows `rowBytes` apart (headDim a multiple of 32). The weighted sum keeps the output
/// in registers: two blocks (64 values) per pass over the positions, then an odd one.
@inline(__always) func attendQ8(_ q: UnsafePointer<Float>, _ keys: UnsafeRawPointer, _ values: UnsafeRawPointer,
                                _ rowBytes: Int, _ length: Int, _ headDim: Int,
                                _ scores: UnsafeMutablePointer<Float>, _ out: UnsafeMutablePointer<Float>) {
    let blocks = headDim / 32, blockBytes = 34
    var maximum = -Float.infinity
    for t in 0..<length {
        let key = keys + t &* rowBytes
        var acc = _mm256_setzero_ps()
        for b in 0..<blocks {
            let block = key + b &* blockBytes, x = q + b &* 32
            var dot = _mm256_mul_ps(loadFloat8(x, 0), loadInt8AsFloat8(block, 2))
            dot = _mm256_fmadd_ps(loadFloat8(x, 8), loadInt8AsFloat8(block, 10), dot)
            dot = _mm256_fmadd_ps(loadFloat8(x, 16), loadInt8AsFloat8(block, 18), dot)
            dot = _mm256_fmadd_ps(loadFloat8(x, 24), loadInt8AsFloat8(block, 26), dot)
            acc = _mm256_fmadd_ps(_mm256_set1_ps(loadHalf(block, 0)), dot, acc)
        }
        let score = hsum(acc)
        scores[t] = score
        maximum = max(maximum, score)
    }
    let inverse = _mm256_set1_ps(1 / exponentiate(scores, length, maximum: maximum))
    let zero = _mm256_setzero_ps()
    var b = 0
    while b &+ 2 <= blocks {
        var low = (zero, zero, zero, zero), high = (zero, zero, zero, zero)
        for t in 0..<length {
            let block = values + (t &* rowBytes &+ b &* blockBytes)
            low = accumulateBlock(low, _mm256_set1_ps(scores[t] * loadHalf(block, 0)), block)
            high = accumulateBlock(high, _mm256_set1_ps(scores[t] * loadHalf(block, blockBytes)), block + blockBytes)
        }
        storeBlock(out + b &* 32, low, inverse)
        storeBlock(out + (b &* 32 &+ 32), high, inverse)
        b &+= 2
    }
    if b < blocks {
        var acc = (zero, zero, zero, zero)
        for t in 0..<length {
            let block = values + (t &* rowBytes &+ b &* blockBytes)
            acc = accumulateBlock(acc, _mm256_set1_ps(scores[t] * loadHalf(block, 0)), block)
        }
        storeBlock(out + b &* 32, acc, inverse)
    }
}

/// `attendQ8` for H.n heads (2...4) side by side, as `attendSideBySide` does for f16
/// rows: each key block and value block is read, widened to f32 and its scale loaded once
/// for the n heads, their dot products are n independent chains, and each head's output
/// sums stay in registers, 16 columns (half a block) per pass over the positions. Each
/// head's operations are `attendQ8`'s in the same order (per key block four products from
/// a product, then scale * dot added to the head's sum; `hsum`; `exponentiate`; per value
/// lane the weights scores[t] * scale added position by position, then times the inverse
/// of the sum), so its results are the single head's bit for bit.
@inline(__always) func attendQ8SideBySide<H: SideBySideHeads>(_: H.Type, _ q: UnsafePointer<Float>, _ keys: UnsafeRawPointer,
                                                              _ values: UnsafeRawPointer, _ rowBytes: Int, _ length: Int, _ headDim: Int,
                                                              _ scores: UnsafeMutablePointer<Float>, _ out: UnsafeMutablePointer<Float>) {
    let n = H.n, blocks = headDim / 32, blockBytes = 34
    let q1 = q + headDim, q2 = q1 + headDim, q3 = q2 + headDim                        // [headDim] each
    let s1 = scores + length, s2 = s1 + length, s3 = s2 + length                      // [length] each
    let (m0, m1, m2, m3) = sideBySideScores(H.self, keys, rowBytes, length, scores) { key in
        var a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0
        for b in 0..<blocks {
            let block = key + b &* blockBytes, i = b &* 32
            let k0 = loadInt8AsFloat8(block, 2), k1 = loadInt8AsFloat8(block, 10)
            let k2 = loadInt8AsFloat8(block, 18), k3 = loadInt8AsFloat8(block, 26)
            let scale = _mm256_set1_ps(loadHalf(block, 0))
            @inline(__always) func dot(_ x: UnsafePointer<Float>) -> __m256 {   // x[i ..< i + 32] · the block's int8
                var d = _mm256_mul_ps(loadFloat8(x, i), k0)
                d = _mm256_fmadd_ps(loadFloat8(x, i &+ 8), k1, d)
                d = _mm256_fmadd_ps(loadFloat8(x, i &+ 16), k2, d)
                return _mm256_fmadd_ps(loadFloat8(x, i &+ 24), k3, d)
            }
            a0 = _mm256_fmadd_ps(scale, dot(q), a0)
            a1 = _mm256_fmadd_ps(scale, dot(q1), a1)
            if n > 2 { a2 = _mm256_fmadd_ps(scale, dot(q2), a2) }
            if n > 3 { a3 = _mm256_fmadd_ps(scale, dot(q3), a3) }
        }
        return (a0, a1, a2, a3)
    }
    let i0 = _mm256_set1_ps(1 / exponentiate(scores, length, maximum: m0))
    let i1 = _mm256_set1_ps(1 / exponentiate(s1, length, maximum: m1))
    let i2 = n > 2 ? _mm256_set1_ps(1 / exponentiate(s2, length, maximum: m2)) : i0
    let i3 = n > 3 ? _mm256_set1_ps(1 / exponentiate(s3, length, maximum: m3)) : i0
    var i = 0
    while i < headDim {
        let within = (i / 32) &* blockBytes &+ 2 &+ i % 32                 // bytes to columns i ..< i + 16 in a row
        let scaleAt = (i / 32) &* blockBytes                                // bytes to their block's scale
        var o0 = _mm256_setzero_ps(), o1 = o0, o2 = o0, o3 = o0                       // out[h][i ..< i + 8] / inverse
        var p0 = o0, p1 = o0, p2 = o0, p3 = o0                                         // out[h][i + 8 ..< i + 16] / inverse
        for t in 0..<length {
            let row = values + t &* rowBytes, scale = loadHalf(row, scaleAt)
            let v = loadInt8AsFloat8(row, within), u = loadInt8AsFloat8(row, within &+ 8)
            let w0 = _mm256_set1_ps(scores[t] * scale), w1 = _mm256_set1_ps(s1[t] * scale)
            o0 = _mm256_fmadd_ps(w0, v, o0); p0 = _mm256_fmadd_ps(w0, u, p0)
            o1 = _mm256_fmadd_ps(w1, v, o1); p1 = _mm256_fmadd_ps(w1, u, p1)
            if n > 2 { let w2 = _mm256_set1_ps(s2[t] * scale); o2 = _mm256_fmadd_ps(w2, v, o2); p2 = _mm256_fmadd_ps(w2, u, p2) }
            if n > 3 { let w3 = _mm256_set1_ps(s3[t] * scale); o3 = _mm256_fmadd_ps(w3, v, o3); p3 = _mm256_fmadd_ps(w3, u, p3) }
        }
        @inline(__always) func store(_ h: Int, _ inverse: __m256, _ low: __m256, _ high: __m256) {
            storeFloat8(out + h &* headDim, i, _mm256_mul_ps(inverse, low))
            storeFloat8(out + h &* headDim, i &+ 8, _mm256_mul_ps(inverse, high))
        }
        store(0, i0, o0, p0)
        store(1, i1, o1, p1)
        if n > 2 { store(2, i2, o2, p2) }
        if n > 3 { store(3, i3, o3, p3) }
        i &+= 16
    }
}

/// Q8_0 rows: `attendQ8`, `attendQ8SideBySide` (headDim is a multiple of 32).
enum Q8RowsAttention: CachedRowsAttention {
    @inline(__always) static func groups(headDim: Int) -> Bool { true }
    @inline(__always) static func one(_ q: UnsafePointer<Float>, _ keys: UnsafeRawPointer, _ values: UnsafeRawPointer, _ rowBytes: Int,
                                      _ length: Int, _ headDim: Int, _ scores: UnsafeMutablePointer<Float>,
                                      _ out: UnsafeMutablePointer<Float>) {
        attendQ8(q, keys, values, rowBytes, length, headDim, scores, out)
    }
    @inline(__always) static func sideBySide<H: SideBySideHeads>(_: H.Type, _ q: UnsafePointer<Float>, _ keys: UnsafeRawPointer,
                                                                 _ values: UnsafeRawPointer, _ rowBytes: Int, _ length: Int,
                                                                 _ headDim: Int, _ scores: UnsafeMutablePointer<Float>,
                                                                 _ out: UnsafeMutablePointer<Float>) {
        attendQ8SideBySide(H.self, q, keys, values, rowBytes, length, headDim, scores, out)
    }
}

extension X86Kernels {
    /// Causal attention of query heads sharing a KV head over a Q8_0 KV cache, up to four
    /// heads side by side (see Kernels' `AttendKernel`).
    @inline(never) public static func attendHeadsQ8(_ q: UnsafePointer<Float>, _ heads: Int, _ keys: UnsafeRawPointer,
                                                    _ values: UnsafeRawPointer, _ rowBytes: Int, _ length: Int, _ headDim: Int,
                                                    _ scores: UnsafeMutablePointer<Float>, _ out: UnsafeMutablePointer<Float>) {
        attendGroup(Q8RowsAttention.self, q, heads, keys, values, rowBytes, length, headDim, scores, out)
    }
}
#endif
