// The AVX-512 target's own prefill GEMM (this file is compiled only there). Measured on
// AMD EPYC (Zen 5), 2 threads: it beats Debian's OpenBLAS 0.3.21, whose sgemm runs its
// Haswell (256-bit) kernel on this CPU. The AVX2 and AVX-VNNI targets have a 256-bit
// version (Sources/KernelsX86/GEMM256.swift; BENCHMARKS.md).
#if arch(x86_64)
import _Builtin_intrinsics.intel

/// The lane sums of four vectors, (Σ a, Σ b, Σ c, Σ d), by interleaving adds instead of
/// four separate reductions.
@inline(__always) func sum4(_ a: __m512, _ b: __m512, _ c: __m512, _ d: __m512) -> SIMD4<Float> {
    let ab = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b))   // per 128-bit lane: a a b b (partial)
    let cd = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d))
    let abcd = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(ab), _mm512_castps_pd(cd))),
                             _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(ab), _mm512_castps_pd(cd))))  // per lane: a b c d
    let half = _mm512_add_ps(abcd, _mm512_permutexvar_ps(_mm512_set_epi32(7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8), abcd))
    let quarter = _mm512_add_ps(half, _mm512_permutexvar_ps(_mm512_set_epi32(3, 2, 1, 0, 7, 6, 5, 4, 3, 2, 1, 0, 7, 6, 5, 4), half))
    return unsafeBitCast(_mm512_castps512_ps128(quarter), to: SIMD4<Float>.self)
}

@inline(__always) func load16(_ p: UnsafePointer<Float>, _ offset: Int) -> __m512 { _mm512_loadu_ps(p + offset) }

extension X86Kernels {
    /// y[t * yStride + r] = Σ_k x[t * cols + k] * w[r * cols + k] (f32 weight tile [rows,
    /// cols] times the token batch x [n, cols]).
    @inline(never) public static func gemmF32(_ w: UnsafePointer<Float>, _ rows: Int, _ x: UnsafePointer<Float>, _ n: Int, _ cols: Int,
                                              _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        gemm512(w, rows, x, n, cols, y, yStride)
    }
}

/// 4 rows x 4 tokens per pass (16 zmm accumulators, 4 weight and 1 activation register),
/// tokens in the outer loop so the 4 activation rows stay in L1 while the tile streams
/// from L2. A last group of fewer than 4 tokens runs the same 4-token pass (its missing
/// tokens repeat the group's first, their results dropped), so every token's result is
/// computed the same way wherever it sits in the batch and however large the batch is:
/// prefill chunks of several sequences can share one call, and a token's keys and values
/// do not depend on what it was batched with.
@inline(__always) func gemm512(_ w: UnsafePointer<Float>, _ rows: Int, _ x: UnsafePointer<Float>, _ n: Int, _ cols: Int,
                               _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
    let vectorCols = cols & ~15
    var t = 0
    while t < n {
        let tokens = min(4, n &- t)
        let x0 = x + t &* cols
        let x1 = tokens > 1 ? x0 + cols : x0, x2 = tokens > 2 ? x0 + 2 &* cols : x0, x3 = tokens > 3 ? x0 + 3 &* cols : x0
        var r = 0
        while r &+ 4 <= rows {
            let w0 = w + r &* cols, w1 = w0 + cols, w2 = w1 + cols, w3 = w2 + cols
            var a00 = _mm512_setzero_ps(), a01 = _mm512_setzero_ps(), a02 = _mm512_setzero_ps(), a03 = _mm512_setzero_ps()
            var a10 = _mm512_setzero_ps(), a11 = _mm512_setzero_ps(), a12 = _mm512_setzero_ps(), a13 = _mm512_setzero_ps()
            var a20 = _mm512_setzero_ps(), a21 = _mm512_setzero_ps(), a22 = _mm512_setzero_ps(), a23 = _mm512_setzero_ps()
            var a30 = _mm512_setzero_ps(), a31 = _mm512_setzero_ps(), a32 = _mm512_setzero_ps(), a33 = _mm512_setzero_ps()
            var k = 0
            while k < vectorCols {
                let v0 = load16(w0, k), v1 = load16(w1, k), v2 = load16(w2, k), v3 = load16(w3, k)
                var xv = load16(x0, k)
                a00 = _mm512_fmadd_ps(v0, xv, a00); a10 = _mm512_fmadd_ps(v1, xv, a10)
                a20 = _mm512_fmadd_ps(v2, xv, a20); a30 = _mm512_fmadd_ps(v3, xv, a30)
                xv = load16(x1, k)
                a01 = _mm512_fmadd_ps(v0, xv, a01); a11 = _mm512_fmadd_ps(v1, xv, a11)
                a21 = _mm512_fmadd_ps(v2, xv, a21); a31 = _mm512_fmadd_ps(v3, xv, a31)
                xv = load16(x2, k)
                a02 = _mm512_fmadd_ps(v0, xv, a02); a12 = _mm512_fmadd_ps(v1, xv, a12)
                a22 = _mm512_fmadd_ps(v2, xv, a22); a32 = _mm512_fmadd_ps(v3, xv, a32)
                xv = load16(x3, k)
                a03 = _mm512_fmadd_ps(v0, xv, a03); a13 = _mm512_fmadd_ps(v1, xv, a13)
                a23 = _mm512_fmadd_ps(v2, xv, a23); a33 = _mm512_fmadd_ps(v3, xv, a33)
                k &+= 16
            }
            let tail = vectorCols < cols
            @inline(__always) func put(_ i: Int, _ wr: UnsafePointer<Float>, _ a0: __m512, _ a1: __m512, _ a2: __m512, _ a3: __m512) {
                let sums = sum4(a0, a1, a2, a3)
                for j in 0..<tokens {
                    let extra = tail ? tailDot(wr, x + (t &+ j) &* cols, vectorCols, cols) : 0
                    y[(t &+ j) &* yStride &+ r &+ i] = sums[j] + extra
                }
            }
            put(0, w0, a00, a01, a02, a03); put(1, w1, a10, a11, a12, a13)
            put(2, w2, a20, a21, a22, a23); put(3, w3, a30, a31, a32, a33)
            r &+= 4
        }
        while r < rows {
            for j in 0..<tokens { y[(t &+ j) &* yStride &+ r] = dotF32(w + r &* cols, x + (t &+ j) &* cols, cols) }
            r &+= 1
        }
        t &+= 4
    }
}
#endif
