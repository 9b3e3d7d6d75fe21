// The x86 kernels that work on activations: the int8 quantizer of decode and prefill
// inputs, attention over an f16 cache, SwiGLU, and dot helpers of the AVX-512 GEMM;
// X86Kernels.swift says how these sources are compiled.
#if arch(x86_64)
import KernelABI
import _Builtin_intrinsics.intel

// MARK: Activation quantizers

/// 32 floats at x -> int8 at q = x * inverse rounded to nearest even; returns Σ q over the
/// 32 values and over the first 16.
@inline(__always) func quantize32(_ x: UnsafePointer<Float>, inverse: Float, _ q: UnsafeMutablePointer<Int8>) -> (sum: Int32, low: Int32) {
    let s = _mm256_set1_ps(inverse)
    let i0 = _mm256_cvtps_epi32(_mm256_mul_ps(loadFloat8(x, 0), s))
    let i1 = _mm256_cvtps_epi32(_mm256_mul_ps(loadFloat8(x, 8), s))
    let i2 = _mm256_cvtps_epi32(_mm256_mul_ps(loadFloat8(x, 16), s))
    let i3 = _mm256_cvtps_epi32(_mm256_mul_ps(loadFloat8(x, 24), s))
    let low = hsum(_mm256_add_epi32(i0, i1)), high = hsum(_mm256_add_epi32(i2, i3))
    let words = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3))
    let ordered = _mm256_permutevar8x32_epi32(words, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
    _mm256_storeu_si256(UnsafeMutableRawPointer(q).assumingMemoryBound(to: __m256i.self), ordered)
    return (low &+ high, low)
}

@inline(__always) func absMax(_ x: UnsafePointer<Float>, _ count: Int) -> Float {
    let signBit = _mm256_set1_ps(-0.0)
    var m = _mm256_setzero_ps()
    var i = 0
    while i < count { m = _mm256_max_ps(m, _mm256_andnot_ps(signBit, loadFloat8(x, i))); i &+= 8 }
    return hmax(m)
}

/// A record's seven lane fields (kernel_abi.h) for its eight lanes, one 32-byte store
/// each: the lanes' scales, their sums `sum` (Σ q over a lane's values) and `low` (Σ q
/// over the first 16 of them, for the formats whose codes split a block in halves).
@inline(__always) func storeLaneFields(_ record: UnsafeMutableRawPointer, scale: __m256, sum: __m256i, low: __m256i) {
    @inline(__always) func store(_ offset: Int, _ value: __m256i) {
        _mm256_storeu_si256((record + offset).assumingMemoryBound(to: __m256i.self), value)
    }
    @inline(__always) func negatedTimes(_ shift: Int32, _ value: __m256i) -> __m256i {   // -(2^shift) * value, wrapping
        _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(value, shift))
    }
    _mm256_storeu_ps((record + Record.d8).assumingMemoryBound(to: Float.self), scale)
    _mm256_storeu_ps((record + Record.s8).assumingMemoryBound(to: Float.self), _mm256_mul_ps(scale, _mm256_cvtepi32_ps(sum)))
    store(Record.offset8, negatedTimes(3, sum))
    store(Record.offset16, negatedTimes(4, sum))
    store(Record.offset128, negatedTimes(7, sum))
    store(Record.offset32Low, negatedTimes(5, low))
    store(Record.offset32High, negatedTimes(5, _mm256_sub_epi32(sum, low)))
}

/// x[cols] -> q8, d8, s8 (per 32 values d = max|x| / 127, q = round-to-nearest-even(x / d),
/// s = d * Σ q) and the lane records of kernel_abi.h.
@inline(__always) func quantizeWithLanes(_ x: UnsafePointer<Float>, _ cols: Int, _ q8: UnsafeMutablePointer<Int8>,
                                         _ d8: UnsafeMutablePointer<Float>, _ s8: UnsafeMutablePointer<Float>,
                                         _ lanes: UnsafeMutableRawPointer) {
    withUnsafeTemporaryAllocation(of: Int32.self, capacity: 24) { scratch in
        // [8] each: the group's blocks' sums and first-half sums; a record's lanes' sums
        // where lanes are not blocks.
        let sums = scratch.baseAddress!, lows = sums + 8, laneSums = sums + 16
        @inline(__always) func eight(_ p: UnsafeMutablePointer<Int32>) -> __m256i {
            _mm256_loadu_si256(UnsafeRawPointer(p).assumingMemoryBound(to: __m256i.self))
        }
        var record = lanes, block = 0
        let blocks = cols / 32
        while block < blocks {
            let g = blocks &- block >= 8 ? 8 : blocks &- block >= 4 ? 4 : 1
            for i in 0..<g {
                let b = block &+ i
                let d = absMax(x + b &* 32, 32) / 127
                (sums[i], lows[i]) = quantize32(x + b &* 32, inverse: d > 0 ? 1 / d : 0, q8 + b &* 32)
                d8[b] = d
                s8[b] = d * Float(sums[i])
            }
            let values = UnsafeRawPointer(q8 + block &* 32), laneData = record + 32 &* g
            switch g {
            case 8:
                let t = transpose8((load256(values, 0), load256(values, 32), load256(values, 64), load256(values, 96),
                                    load256(values, 128), load256(values, 160), load256(values, 192), load256(values, 224)))
                let out = record.assumingMemoryBound(to: __m256i.self)
                _mm256_storeu_si256(out, t.0); _mm256_storeu_si256(out + 1, t.1)
                _mm256_storeu_si256(out + 2, t.2); _mm256_storeu_si256(out + 3, t.3)
                _mm256_storeu_si256(out + 4, t.4); _mm256_storeu_si256(out + 5, t.5)
                _mm256_storeu_si256(out + 6, t.6); _mm256_storeu_si256(out + 7, t.7)
                storeLaneFields(laneData, scale: _mm256_loadu_ps(d8 + block), sum: eight(sums), low: eight(lows))
            case 4:
                for k in 0..<4 {
                    for l in 0..<8 {
                        let from = 32 &* (l & 3) &+ (l >> 2) &* 16 &+ 4 &* k
                        record.storeBytes(of: loadU32(values, from), toByteOffset: 32 &* k &+ 4 &* l, as: UInt32.self)
                    }
                }
                for l in 0..<8 {   // lane l: block l % 4's first (l < 4) or second half
                    laneSums[l] = l < 4 ? lows[l] : sums[l &- 4] &- lows[l &- 4]
                }
                let scales = _mm_loadu_ps(d8 + block)                      // lanes 0-3 and 4-7: blocks 0-3
                storeLaneFields(laneData, scale: _mm256_set_m128(scales, scales), sum: eight(laneSums), low: eight(laneSums))
            default:
                (record).copyMemory(from: values, byteCount: 32)
                for l in 0..<8 {   // lane l: the block's values 4l..<4l + 4
                    var s: Int32 = 0
                    for j in 0..<4 { s &+= Int32(values.load(fromByteOffset: 4 &* l &+ j, as: Int8.self)) }
                    laneSums[l] = s
                }
                storeLaneFields(laneData, scale: _mm256_set1_ps(d8[block]), sum: eight(laneSums), low: eight(laneSums))
            }
            record = laneData + Record.lanes
            block &+= g
        }
    }
}

// MARK: Attention and SwiGLU

/// e^x for 8 lanes, x clamped to [-87, 88] (ggml's ggml_v_expf without its overflow path:
/// 2^n by exponent arithmetic, a degree-5 polynomial on the rest; ~1.5 ulp).
@inline(__always) func exp8(_ input: __m256) -> __m256 {
    let x = _mm256_min_ps(_mm256_max_ps(input, _mm256_set1_ps(-87)), _mm256_set1_ps(88))
    let r = _mm256_set1_ps(0x1.8p23)
    let z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0), r)
    let n = _mm256_sub_ps(z, r)
    let b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20), _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1), x))
    let e = _mm256_slli_epi32(_mm256_castps_si256(z), 23)
    let k = _mm256_castsi256_ps(_mm256_add_epi32(e, _mm256_castps_si256(_mm256_set1_ps(1))))
    let u = _mm256_mul_ps(b, b)
    let j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7), b, _mm256_set1_ps(0x1.573e2ep-5)), u,
                        _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3), b, _mm256_set1_ps(0x1.fffdb6p-2))),
        u, _mm256_mul_ps(_mm256_set1_ps(0x1.ffffecp-1), b))
    return _mm256_fmadd_ps(j, k, k)
}

/// scores[t] = e^(scores[t] - maximum) for t in 0..<length (the softmax's numerators);
/// returns their sum.
@inline(__always) func exponentiate(_ scores: UnsafeMutablePointer<Float>, _ length: Int, maximum: Float) -> Float {
    let shift = _mm256_set1_ps(maximum)
    var sums = _mm256_setzero_ps()
    var t = 0
    while t &+ 8 <= length {
        let e = exp8(_mm256_sub_ps(loadFloat8(scores, t), shift))
        storeFloat8(scores, t, e)
        sums = _mm256_add_ps(sums, e)
        t &+= 8
    }
    var total = hsum(sums)
    while t < length {
        let e = _mm_cvtss_f32(_mm256_castps256_ps128(exp8(_mm256_set1_ps(scores[t] - maximum))))
        scores[t] = e
        total += e
        t &+= 1
    }
    return total
}

/// Softmax of scores[length], then out[headDim] = Σ_t scores[t] * values[t] (f16 rows
/// `rowBytes` apart), after scores[t] = q · keys[t].
@inline(__always) func attend(_ q: UnsafePointer<Float>, _ keys: UnsafeRawPointer, _ values: UnsafeRawPointer,
                              _ rowBytes: Int, _ length: Int, _ headDim: Int,
                              _ scores: UnsafeMutablePointer<Float>, _ out: UnsafeMutablePointer<Float>) {
    let vectorDim = headDim & ~7
    var maximum = -Float.infinity
    for t in 0..<length {
        let key = keys + t &* rowBytes
        var acc = _mm256_setzero_ps()
        var i = 0
        while i < vectorDim { acc = _mm256_fmadd_ps(loadFloat8(q, i), F16.load8(key, i), acc); i &+= 8 }
        var score = hsum(acc)
        while i < headDim { score += q[i] * F16.load1(key, i); i &+= 1 }
        scores[t] = score
        maximum = max(maximum, score)
    }
    let inverse = 1 / exponentiate(scores, length, maximum: maximum)
    var i = 0
    while i < headDim { out[i] = 0; i &+= 1 }
    for t in 0..<length {
        let weight = scores[t] * inverse
        let value = values + t &* rowBytes
        let w8 = _mm256_set1_ps(weight)
        var i = 0
        while i < vectorDim { storeFloat8(out, i, _mm256_fmadd_ps(w8, F16.load8(value, i), loadFloat8(out, i))); i &+= 8 }
        while i < headDim { out[i] += weight * F16.load1(value, i); i &+= 1 }
    }
}

/// A KV cache row type's decode attention: one head (`one`), and H.n heads side by side
/// with each head's results bit for bit `one`'s (`sideBySide`), where `groups(headDim)`.
protocol CachedRowsAttention {
    static func groups(headDim: Int) -> Bool
    static func one(_ q: UnsafePointer<Float>, _ keys: UnsafeRawPointer, _ values: UnsafeRawPointer, _ rowBytes: Int,
                    _ length: Int, _ headDim: Int, _ scores: UnsafeMutablePointer<Float>, _ out: UnsafeMutablePointer<Float>)
    static func sideBySide<H: SideBySideHeads>(_: H.Type, _ q: UnsafePointer<Float>, _ keys: UnsafeRawPointer,
                                               _ values: UnsafeRawPointer, _ rowBytes: Int, _ length: Int, _ headDim: Int,
                                               _ scores: UnsafeMutablePointer<Float>, _ out: UnsafeMutablePointer<Float>)
}

/// f16 rows: `attend`, `attendSideBySide` (headDim a multiple of 8).
enum F16RowsAttention: CachedRowsAttention {
    @inline(__always) static func groups(headDim: Int) -> Bool { headDim & 7 == 0 }
    @inline(__always) static func one(_ q: UnsafePointer<Float>, _ keys: UnsafeRawPointer, _ values: UnsafeRawPointer, _ rowBytes: Int,
                                      _ length: Int, _ headDim: Int, _ scores: UnsafeMutablePointer<Float>,
                                      _ out: UnsafeMutablePointer<Float>) {
        attend(q, keys, values, rowBytes, length, headDim, scores, out)
    }
    @inline(__always) static func sideBySide<H: SideBySideHeads>(_: H.Type, _ q: UnsafePointer<Float>, _ keys: UnsafeRawPointer,
                                                                 _ values: UnsafeRawPointer, _ rowBytes: Int, _ length: Int,
                                                                 _ headDim: Int, _ scores: UnsafeMutablePointer<Float>,
                                                                 _ out: UnsafeMutablePointer<Float>) {
        attendSideBySide(H.self, q, keys, values, rowBytes, length, headDim, scores, out)
    }
}

/// `K.one` for `heads` query heads sharing one KV head: q[heads, headDim],
/// scores[heads, length], out[heads, headDim], head h's rows at h * headDim (h * length).
/// Up to four heads pass over the keys and values together (`K.sideBySide`); a last
/// single head, or a headDim the side-by-side kernel does not take, takes `K.one`.
@inline(__always) func attendGroup<K: CachedRowsAttention>(_: K.Type, _ q: UnsafePointer<Float>, _ heads: Int, _ keys: UnsafeRawPointer,
                                                           _ values: UnsafeRawPointer, _ rowBytes: Int, _ length: Int, _ headDim: Int,
                                                           _ scores: UnsafeMutablePointer<Float>, _ out: UnsafeMutablePointer<Float>) {
    var h = 0
    while K.groups(headDim: headDim), heads &- h >= 2 {
        let n = min(4, heads &- h)                                        // 7 heads: 4, then 3
        let qh = q + h &* headDim, sh = scores + h &* length, oh = out + h &* headDim
        switch n {
        case 4: K.sideBySide(FourHeads.self, qh, keys, values, rowBytes, length, headDim, sh, oh)
        case 3: K.sideBySide(ThreeHeads.self, qh, keys, values, rowBytes, length, headDim, sh, oh)
        default: K.sideBySide(TwoHeads.self, qh, keys, values, rowBytes, length, headDim, sh, oh)
        }
        h &+= n
    }
    while h < heads {
        K.one(q + h &* headDim, keys, values, rowBytes, length, headDim, scores + h &* length, out + h &* headDim)
        h &+= 1
    }
}

/// A number of heads the side-by-side kernels take (a type, so each count gets its own code).
protocol SideBySideHeads { static var n: Int { get } }
enum TwoHeads: SideBySideHeads { static var n: Int { 2 } }
enum ThreeHeads: SideBySideHeads { static var n: Int { 3 } }
enum FourHeads: SideBySideHeads { static var n: Int { 4 } }

/// The score pass of the side-by-side kernels for H.n heads: `dots(key row t)` gives each
/// head's dot accumulators with that key (8 lanes to sum; heads past H.n ignored), then
/// scores[h * length + t] = hsum of head h's; returns each head's largest score.
@inline(__always) func sideBySideScores<H: SideBySideHeads>(_: H.Type, _ keys: UnsafeRawPointer, _ rowBytes: Int, _ length: Int,
                                                            _ scores: UnsafeMutablePointer<Float>,
                                                            _ dots: (UnsafeRawPointer) -> (__m256, __m256, __m256, __m256))
    -> (Float, Float, Float, Float) {
    let n = H.n
    let s1 = scores + length, s2 = s1 + length, s3 = s2 + length                      // [length] each
    var m0 = -Float.infinity, m1 = m0, m2 = m0, m3 = m0
    for t in 0..<length {
        let (a0, a1, a2, a3) = dots(keys + t &* rowBytes)
        let x0 = hsum(a0), x1 = hsum(a1)
        scores[t] = x0; m0 = max(m0, x0)
        s1[t] = x1; m1 = max(m1, x1)
        if n > 2 { let x2 = hsum(a2); s2[t] = x2; m2 = max(m2, x2) }
        if n > 3 { let x3 = hsum(a3); s3[t] = x3; m3 = max(m3, x3) }
    }
    return (m0, m1, m2, m3)
}

/// `attend` for H.n heads (2...4; headDim a multiple of 8) side by side: each key row and
/// each value row is read and converted from f16 once for the n heads, their dot
/// products are n independent chains (one head's chain left the core waiting on its FMA
/// latency), and each head's output sums stay in registers, 16 columns per pass over the
/// positions, instead of a load and a store per position. A head's operations are
/// `attend`'s in the same order (the same FMAs from zero, `hsum`, `exponentiate`, each
/// position's weight scores[t] * inverse, the value sums position by position), so its
/// result is the single head's bit for bit.
@inline(__always) func attendSideBySide<H: SideBySideHeads>(_: H.Type, _ q: UnsafePointer<Float>, _ keys: UnsafeRawPointer,
                                                            _ values: UnsafeRawPointer, _ rowBytes: Int, _ length: Int, _ headDim: Int,
                                                            _ scores: UnsafeMutablePointer<Float>, _ out: UnsafeMutablePointer<Float>) {
    let n = H.n
    let q1 = q + headDim, q2 = q1 + headDim, q3 = q2 + headDim                        // [headDim] each
    let s1 = scores + length, s2 = s1 + length, s3 = s2 + length                      // [length] each
    let (m0, m1, m2, m3) = sideBySideScores(H.self, keys, rowBytes, length, scores) { key in
        var a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0
        var i = 0
        while i < headDim {
            let k = F16.load8(key, i)
            a0 = _mm256_fmadd_ps(loadFloat8(q, i), k, a0)
            a1 = _mm256_fmadd_ps(loadFloat8(q1, i), k, a1)
            if n > 2 { a2 = _mm256_fmadd_ps(loadFloat8(q2, i), k, a2) }
            if n > 3 { a3 = _mm256_fmadd_ps(loadFloat8(q3, i), k, a3) }
            i &+= 8
        }
        return (a0, a1, a2, a3)
    }
    @inline(__always) func weigh(_ s: UnsafeMutablePointer<Float>, _ maximum: Float) {   // s[t] = attention weight of t
        let inverse = 1 / exponentiate(s, length, maximum: maximum)
        for t in 0..<length { s[t] = s[t] * inverse }
    }
    weigh(scores, m0)
    weigh(s1, m1)
    if n > 2 { weigh(s2, m2) }
    if n > 3 { weigh(s3, m3) }
    // The value sums, 16 columns per pass over the positions (8 for a last 8).
    var i = 0
    while i < headDim {
        let wide = i &+ 16 <= headDim
        var o0 = _mm256_setzero_ps(), o1 = o0, o2 = o0, o3 = o0                       // out[h][i ..< i + 8]
        var p0 = o0, p1 = o0, p2 = o0, p3 = o0                                         // out[h][i + 8 ..< i + 16]
        for t in 0..<length {
            let row = values + t &* rowBytes, v = F16.load8(row, i)
            let w0 = _mm256_set1_ps(scores[t]), w1 = _mm256_set1_ps(s1[t])
            let w2 = n > 2 ? _mm256_set1_ps(s2[t]) : w0, w3 = n > 3 ? _mm256_set1_ps(s3[t]) : w0
            o0 = _mm256_fmadd_ps(w0, v, o0)
            o1 = _mm256_fmadd_ps(w1, v, o1)
            if n > 2 { o2 = _mm256_fmadd_ps(w2, v, o2) }
            if n > 3 { o3 = _mm256_fmadd_ps(w3, v, o3) }
            if wide {
                let u = F16.load8(row, i &+ 8)
                p0 = _mm256_fmadd_ps(w0, u, p0)
                p1 = _mm256_fmadd_ps(w1, u, p1)
                if n > 2 { p2 = _mm256_fmadd_ps(w2, u, p2) }
                if n > 3 { p3 = _mm256_fmadd_ps(w3, u, p3) }
            }
        }
        @inline(__always) func store(_ h: Int, _ low: __m256, _ high: __m256) {
            storeFloat8(out + h &* headDim, i, low)
            if wide { storeFloat8(out + h &* headDim, i &+ 8, high) }
        }
        store(0, o0, p0)
        store(1, o1, p1)
        if n > 2 { store(2, o2, p2) }
        if n > 3 { store(3, o3, p3) }
        i &+= wide ? 16 : 8
    }
}

/// `rmsNorm` of Kernels' Elementwise.swift with the same arithmetic in the same order: the
/// squares fused into 16 lanes (lane i takes x[16 k + i]; vfmadd rounds as fmaf does), the
/// lanes summed one after another from -0 as SIMD16's `sum()`, the last n % 16 squares
/// added unfused, then (x * scale) * weight per value.
@inline(__always) func rmsNorm8(_ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                                _ n: Int, _ eps: Float) {
    var low = _mm256_setzero_ps(), high = _mm256_setzero_ps()   // lanes 0-7, 8-15
    var i = 0
    while i &+ 16 <= n {
        let a = loadFloat8(x, i), b = loadFloat8(x, i &+ 8)
        low = _mm256_fmadd_ps(a, a, low)
        high = _mm256_fmadd_ps(b, b, high)
        i &+= 16
    }
    var total: Float = withUnsafeTemporaryAllocation(of: Float.self, capacity: 16) { lanes in   // [16]
        storeFloat8(lanes.baseAddress!, 0, low)
        storeFloat8(lanes.baseAddress!, 8, high)
        var sum: Float = -0.0
        for lane in lanes { sum += lane }
        return sum
    }
    while i < n { total += x[i] * x[i]; i &+= 1 }
    let scale = 1 / (total / Float(n) + eps).squareRoot()
    let scale8 = _mm256_set1_ps(scale)
    var j = 0
    while j &+ 8 <= n { storeFloat8(y, j, _mm256_mul_ps(_mm256_mul_ps(loadFloat8(x, j), scale8), loadFloat8(weight, j))); j &+= 8 }
    while j < n { y[j] = x[j] * scale * weight[j]; j &+= 1 }
}

/// gate[i] = gate[i] / (1 + e^-gate[i]) * up[i]
@inline(__always) func swiGLU8(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, _ n: Int) {
    let one = _mm256_set1_ps(1), signBit = _mm256_set1_ps(-0.0)
    var i = 0
    while i &+ 8 <= n {
        let g = loadFloat8(gate, i)
        let silu = _mm256_div_ps(g, _mm256_add_ps(one, exp8(_mm256_xor_ps(g, signBit))))
        storeFloat8(gate, i, _mm256_mul_ps(silu, loadFloat8(up, i)))
        i &+= 8
    }
    while i < n {
        let g = gate[i]
        let e = _mm_cvtss_f32(_mm256_castps256_ps128(exp8(_mm256_set1_ps(-g))))
        gate[i] = g / (1 + e) * up[i]
        i &+= 1
    }
}

// MARK: Helpers of the AVX-512 target's prefill GEMM (GEMM512.swift)

/// Σ_{k in from..<to} a[k] * b[k] (the scalar tail past the last whole vector).
@inline(__always) func tailDot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ from: Int, _ to: Int) -> Float {
    var sum: Float = 0
    var k = from
    while k < to { sum += a[k] * b[k]; k &+= 1 }
    return sum
}

/// Σ_k a[k] * b[k] over n values.
@inline(__always) func dotF32(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = _mm256_setzero_ps()
    var k = 0
    while k &+ 8 <= n { acc = _mm256_fmadd_ps(loadFloat8(a, k), loadFloat8(b, k), acc); k &+= 8 }
    return hsum(acc) + tailDot(a, b, k, n)
}
#endif
