// The 256-bit targets' own prefill GEMM (linked into KernelsAVX2 and KernelsAVXVNNI; the
// AVX-512 target has GEMM512.swift). OpenBLAS's sgemm reads a long single prompt up to
// ~10% faster (BENCHMARKS.md), but a row of its result depends on the batch's size and
// the row's place in it; this one computes every token the same way wherever it sits, so
// the engine puts the prompt rows of all sequences of a step through one product and
// copies a prompt prefix one sequence computed into another, as on AVX-512.
#if arch(x86_64)
import _Builtin_intrinsics.intel

/// The lane sums of four vectors, (Σ a, Σ b, Σ c, Σ d), each summed in the same order.
@inline(__always) func sum4(_ a: __m256, _ b: __m256, _ c: __m256, _ d: __m256) -> SIMD4<Float> {
    let abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d))   // per 128-bit half: a b c d (partial)
    let high = _mm256_castps256_ps128(_mm256_permutevar8x32_ps(abcd, _mm256_setr_epi32(4, 5, 6, 7, 4, 5, 6, 7)))
    return unsafeBitCast(_mm_add_ps(_mm256_castps256_ps128(abcd), high), to: SIMD4<Float>.self)
}

extension X86Kernels {
    /// y[t * yStride + r] = Σ_k x[t * cols + k] * w[r * cols + k] (f32 weight tile [rows,
    /// cols] times the token batch x [n, cols]).
    @inline(never) public static func gemmF32(_ w: UnsafePointer<Float>, _ rows: Int, _ x: UnsafePointer<Float>, _ n: Int, _ cols: Int,
                                              _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        gemm256(w, rows, x, n, cols, y, yStride)
    }
}

/// 2 rows x 4 tokens per pass (8 ymm accumulators, 2 weight and 1 activation register),
/// tokens in the outer loop so the 4 activation rows stay in L1 while the tile streams
/// from L2. A last group of fewer than 4 tokens runs the same 4-token pass (its missing
/// tokens repeat the group's first, their results dropped), so a token's result does not
/// depend on the batch it is in.
@inline(__always) func gemm256(_ w: UnsafePointer<Float>, _ rows: Int, _ x: UnsafePointer<Float>, _ n: Int, _ cols: Int,
                               _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
    let vectorCols = cols & ~7
    var t = 0
    while t < n {
        let tokens = min(4, n &- t)
        let x0 = x + t &* cols
        let x1 = tokens > 1 ? x0 + cols : x0, x2 = tokens > 2 ? x0 + 2 &* cols : x0, x3 = tokens > 3 ? x0 + 3 &* cols : x0
        var r = 0
        while r &+ 2 <= rows {
            let w0 = w + r &* cols, w1 = w0 + cols
            var a00 = _mm256_setzero_ps(), a01 = _mm256_setzero_ps(), a02 = _mm256_setzero_ps(), a03 = _mm256_setzero_ps()
            var a10 = _mm256_setzero_ps(), a11 = _mm256_setzero_ps(), a12 = _mm256_setzero_ps(), a13 = _mm256_setzero_ps()
            var k = 0
            while k < vectorCols {
                let v0 = loadFloat8(w0, k), v1 = loadFloat8(w1, k)
                var xv = loadFloat8(x0, k)
                a00 = _mm256_fmadd_ps(v0, xv, a00); a10 = _mm256_fmadd_ps(v1, xv, a10)
                xv = loadFloat8(x1, k)
                a01 = _mm256_fmadd_ps(v0, xv, a01); a11 = _mm256_fmadd_ps(v1, xv, a11)
                xv = loadFloat8(x2, k)
                a02 = _mm256_fmadd_ps(v0, xv, a02); a12 = _mm256_fmadd_ps(v1, xv, a12)
                xv = loadFloat8(x3, k)
                a03 = _mm256_fmadd_ps(v0, xv, a03); a13 = _mm256_fmadd_ps(v1, xv, a13)
                k &+= 8
            }
            let tail = vectorCols < cols
            @inline(__always) func put(_ i: Int, _ wr: UnsafePointer<Float>, _ a0: __m256, _ a1: __m256, _ a2: __m256, _ a3: __m256) {
                let sums = sum4(a0, a1, a2, a3)
                for j in 0..<tokens {
                    let extra = tail ? tailDot(wr, x + (t &+ j) &* cols, vectorCols, cols) : 0
                    y[(t &+ j) &* yStride &+ r &+ i] = sums[j] + extra
                }
            }
            put(0, w0, a00, a01, a02, a03); put(1, w1, a10, a11, a12, a13)
            r &+= 2
        }
        while r < rows {
            for j in 0..<tokens { y[(t &+ j) &* yStride &+ r] = dotF32(w + r &* cols, x + (t &+ j) &* cols, cols) }
            r &+= 1
        }
        t &+= 4
    }
}
#endif
