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

extension X86Kernels {
    /// Causal attention of query heads sharing a KV head over a Q8_0 KV cache, one head
    /// after another (see Kernels' `AttendKernel`).
    @inline(never) public static func attendHeadsQ8(_ q: UnsafePointer<Float>, _ heads: Int, _ keys: UnsafeRawPointer,
                                                    _ values: UnsafeRawPointer, _ rowBytes: Int, _ length: Int, _ headDim: Int,
                                                    _ scores: UnsafeMutablePointer<Float>, _ out: UnsafeMutablePointer<Float>) {
        for h in 0..<heads {
            attendQ8(q + h &* headDim, keys, values, rowBytes, length, headDim, scores + h &* length, out + h &* headDim)
        }
    }
}
#endif
