// Row dequantizers of the x86 kernels, interleaved layout (prefill tiles) and ggml's
// (embedding rows); X86Kernels.swift says how these sources are compiled.
#if arch(x86_64)
import KernelABI
import _Builtin_intrinsics.intel

// MARK: Interleaved layout: dequantization (prefill tiles)

/// The 8 x 8 transpose of 32-bit elements: element l of result k is element k of input l.
@inline(__always) func transpose8(_ c: CodeVectors) -> CodeVectors {
    let t0 = _mm256_unpacklo_epi32(c.0, c.1), t1 = _mm256_unpackhi_epi32(c.0, c.1)
    let t2 = _mm256_unpacklo_epi32(c.2, c.3), t3 = _mm256_unpackhi_epi32(c.2, c.3)
    let t4 = _mm256_unpacklo_epi32(c.4, c.5), t5 = _mm256_unpackhi_epi32(c.4, c.5)
    let t6 = _mm256_unpacklo_epi32(c.6, c.7), t7 = _mm256_unpackhi_epi32(c.6, c.7)
    let u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2)
    let u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3)
    let u4 = _mm256_unpacklo_epi64(t4, t6), u5 = _mm256_unpackhi_epi64(t4, t6)
    let u6 = _mm256_unpacklo_epi64(t5, t7), u7 = _mm256_unpackhi_epi64(t5, t7)
    @inline(__always) func low(_ a: __m256i, _ b: __m256i) -> __m256i { _mm256_set_m128i(_mm256_castsi256_si128(b), _mm256_castsi256_si128(a)) }
    @inline(__always) func high(_ a: __m256i, _ b: __m256i) -> __m256i { _mm256_set_m128i(upperHalf(b), upperHalf(a)) }
    return (low(u0, u4), low(u1, u5), low(u2, u6), low(u3, u7), high(u0, u4), high(u1, u5), high(u2, u6), high(u3, u7))
}

/// The blocks of a group in column order: for g = 8, block l's 32 codes in vector l; for
/// g = 4, block l's first 16 codes in the low half of vector l and its last 16 in the low
/// half of vector l + 4; for g = 1, vector 0.
@inline(__always) func naturalOrder(_ c: CodeVectors, size g: Int) -> CodeVectors {
    g == 1 ? c : transpose8(c)
}

/// Writes scale * code + bias for the 32 codes of block i of a group in `naturalOrder`.
@inline(__always) func storeBlock(_ natural: CodeVectors, size g: Int, _ i: Int, _ scale: Float, _ bias: Float,
                                  _ out: UnsafeMutablePointer<Float>, _ offset: Int) {
    let v = codeVector(natural, i)
    storeScaled16(_mm256_castsi256_si128(v), signed: false, scale, bias, out, offset)
    let second = g == 4 ? _mm256_castsi256_si128(codeVector(natural, i &+ 4)) : upperHalf(v)
    storeScaled16(second, signed: false, scale, bias, out, offset &+ 16)
}

@inline(__always) func dequantizeLanes32<F: Lane32>(_: F.Type, _ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) {
    let offset = Float(F.offset)
    forEachLaneGroup(blocks: cols / 32, blockBytes: F.blockBytes) { start, g, _ in
        let q = row + start
        let natural = naturalOrder(decodeCodes(bits: F.bits, q + 2 &* F.fields &* g, size: g), size: g)
        for i in 0..<g {
            let d = loadHalf(q, 2 &* i)
            var bias = -offset * d
            if F.fields == 2 {
                let second = loadHalf(q, 2 &* g &+ 2 &* i)
                bias = F.zeroPoint ? -d * (second + offset) : second        // d (z + 128) is exact
            }
            storeBlock(natural, size: g, i, d, bias, out, (start / F.blockBytes &+ i) &* 32)
        }
    }
}

@inline(__always) func dequantizeLanesK4(isQ5: Bool, _ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) {
    let bytes = isQ5 ? 176 : 144
    withUnsafeTemporaryAllocation(of: Float.self, capacity: 16) { scratch in
        let factors = scratch.baseAddress!                             // [2, 8] d * scale, -dmin * min
        for i in 0..<(cols / 256) {
            let q = row + i &* bytes
            let (scales, mins) = factorsK4(q)
            storeFloat8(factors, 0, scales)
            storeFloat8(factors, 8, mins)
            let natural = transpose8(decodeCodes(bits: isQ5 ? 5 : 4, q + 16, size: 8))
            for l in 0..<8 { storeBlock(natural, size: 8, l, factors[l], factors[8 &+ l], out, i &* 256 &+ 32 &* l) }
        }
    }
}

@inline(__always) func dequantizeLanesQ6K(_ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) {
    withUnsafeTemporaryAllocation(of: Float.self, capacity: 16) { scratch in
        let factors = scratch.baseAddress!                             // [2, 8] d * scale of each 16
        for i in 0..<(cols / 256) {
            let q = row + i &* 210
            let (first, second) = factorsQ6K(q)
            storeFloat8(factors, 0, first)
            storeFloat8(factors, 8, second)
            let natural = transpose8(decodeCodes(bits: 6, q + 18, size: 8))
            for l in 0..<8 {
                let v = codeVector(natural, l), base = i &* 256 &+ 32 &* l
                storeScaled16(_mm256_castsi256_si128(v), signed: false, factors[l], -32 * factors[l], out, base)
                storeScaled16(upperHalf(v), signed: false, factors[8 &+ l], -32 * factors[8 &+ l], out, base &+ 16)
            }
        }
    }
}

// MARK: ggml layout: dequantization
//
// Matrices in ggml's layout are only dequantized here (embedding rows; decode reads the
// interleaved layout below).

/// A format of 32-value blocks in ggml's layout: how to get its 32 codes as bytes and what
/// they mean.
protocol Block32 {
    static var bytes: Int { get }
    /// Codes as bytes: s8 values when `signedCodes`, else u8 0...31.
    static func codes(_ block: UnsafeRawPointer) -> __m256i
    static var signedCodes: Bool { get }
    /// value = d * (code - offset) (+ m when `hasMin`, the f16 at byte 2).
    static var offset: Float { get }
    static var hasMin: Bool { get }
    /// The f16 at byte 2 is an integer zero point z, and m = -d * z (Q4_Z, Q8_Z).
    static var minIsZeroPoint: Bool { get }
}

extension Block32 {
    static var minIsZeroPoint: Bool { false }
}

/// The additive term m of a block from its d and the f16 at byte 2 (m itself, or a zero
/// point); d * z is exact in f32.
@inline(__always) func minTerm<F: Block32>(_: F.Type, d: Float, _ stored: Float) -> Float {
    F.minIsZeroPoint ? -d * stored : stored
}

enum Q8_0: Block32 {
    static var bytes: Int { 34 }
    static func codes(_ q: UnsafeRawPointer) -> __m256i { load256(q, 2) }
    static var signedCodes: Bool { true }
    static var offset: Float { 0 }
    static var hasMin: Bool { false }
}

enum Q4_0: Block32 {
    static var bytes: Int { 18 }
    static func codes(_ q: UnsafeRawPointer) -> __m256i { unpackNibbles(q, 2) }
    static var signedCodes: Bool { false }
    static var offset: Float { 8 }
    static var hasMin: Bool { false }
}

enum Q4_1: Block32 {
    static var bytes: Int { 20 }
    static func codes(_ q: UnsafeRawPointer) -> __m256i { unpackNibbles(q, 4) }
    static var signedCodes: Bool { false }
    static var offset: Float { 0 }
    static var hasMin: Bool { true }
}

enum Q4_Z: Block32 {
    static var bytes: Int { 20 }
    static func codes(_ q: UnsafeRawPointer) -> __m256i { unpackNibbles(q, 4) }
    static var signedCodes: Bool { false }
    static var offset: Float { 0 }
    static var hasMin: Bool { true }
    static var minIsZeroPoint: Bool { true }
}

enum Q8_Z: Block32 {
    static var bytes: Int { 36 }
    static func codes(_ q: UnsafeRawPointer) -> __m256i { load256(q, 4) }
    static var signedCodes: Bool { true }
    static var offset: Float { 0 }
    static var hasMin: Bool { true }
    static var minIsZeroPoint: Bool { true }
}

enum Q5_0: Block32 {
    static var bytes: Int { 22 }
    static func codes(_ q: UnsafeRawPointer) -> __m256i {
        _mm256_or_si256(unpackNibbles(q, 6), fifthBits(q, 2))
    }
    static var signedCodes: Bool { false }
    static var offset: Float { 16 }
    static var hasMin: Bool { false }
}

enum Q5_1: Block32 {
    static var bytes: Int { 24 }
    static func codes(_ q: UnsafeRawPointer) -> __m256i {
        _mm256_or_si256(unpackNibbles(q, 8), fifthBits(q, 4))
    }
    static var signedCodes: Bool { false }
    static var offset: Float { 0 }
    static var hasMin: Bool { true }
}

/// out[cols] = the dequantized values of one row of a 32-block format.
@inline(__always) func dequantize32<F: Block32>(_: F.Type, _ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) {
    for i in 0..<(cols / 32) {
        let q = row + i &* F.bytes
        let c = F.codes(q)
        let d = loadHalf(q, 0)
        let bias = F.hasMin ? minTerm(F.self, d: d, loadHalf(q, 2)) : -F.offset * d
        storeScaled16(_mm256_castsi256_si128(c), signed: F.signedCodes, d, bias, out, i &* 32)
        storeScaled16(upperHalf(c), signed: F.signedCodes, d, bias, out, i &* 32 &+ 16)
    }
}

// MARK: ggml layout: K-quant dequantization

@inline(__always) func dequantizeK4(isQ5: Bool, _ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) {
    let bytes = isQ5 ? 176 : 144
    let mask = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1)
    for i in 0..<(cols / 256) {
        let q = row + i &* bytes
        let d = loadHalf(q, 0), dmin = loadHalf(q, 2)
        let high = isQ5 ? load256(q, 16) : _mm256_setzero_si256()
        let qs = q + (isQ5 ? 48 : 16)
        for j in 0..<4 {
            let packed = load256(qs, j &* 32)
            var lo = _mm256_and_si256(packed, mask)
            var hi = _mm256_and_si256(_mm256_srli_epi16(packed, 4), mask)
            if isQ5 {
                lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(high, Int32(2 &* j)), one), 4))
                hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(high, Int32(2 &* j &+ 1)), one), 4))
            }
            let (sLo, mLo) = scaleMinK4(2 &* j, q + 4)
            let (sHi, mHi) = scaleMinK4(2 &* j &+ 1, q + 4)
            let base = i &* 256 &+ j &* 64
            storeScaled16(_mm256_castsi256_si128(lo), signed: false, d * sLo, -dmin * mLo, out, base)
            storeScaled16(upperHalf(lo), signed: false, d * sLo, -dmin * mLo, out, base &+ 16)
            storeScaled16(_mm256_castsi256_si128(hi), signed: false, d * sHi, -dmin * mHi, out, base &+ 32)
            storeScaled16(upperHalf(hi), signed: false, d * sHi, -dmin * mHi, out, base &+ 48)
        }
    }
}

/// ggml's get_scale_min_k4: the 6-bit scale and min of sub-block j of a K block.
@inline(__always) func scaleMinK4(_ j: Int, _ q: UnsafeRawPointer) -> (Float, Float) {
    @inline(__always) func b(_ i: Int) -> Int { Int(q.load(fromByteOffset: i, as: UInt8.self)) }
    if j < 4 { return (Float(b(j) & 63), Float(b(j &+ 4) & 63)) }
    return (Float((b(j &+ 4) & 0xF) | ((b(j &- 4) >> 6) << 4)), Float((b(j &+ 4) >> 4) | ((b(j) >> 6) << 4)))
}

/// The four 32-code groups of one Q6_K half (128 values): codes 0...63 as bytes.
@inline(__always) func codesQ6K(_ q: UnsafeRawPointer, half: Int) -> (__m256i, __m256i, __m256i, __m256i) {
    let low4 = _mm256_set1_epi8(0x0F), low2 = _mm256_set1_epi8(0x03)
    let l0 = load256(q, 64 &* half), l1 = load256(q, 64 &* half &+ 32), h = load256(q, 128 &+ 32 &* half)
    let c0 = _mm256_or_si256(_mm256_and_si256(l0, low4), _mm256_slli_epi16(_mm256_and_si256(h, low2), 4))
    let c1 = _mm256_or_si256(_mm256_and_si256(l1, low4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), low2), 4))
    let c2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), low2), 4))
    let c3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), low2), 4))
    return (c0, c1, c2, c3)
}

@inline(__always) func dequantizeQ6K(_ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) {
    let offset = _mm256_set1_epi8(32)
    for i in 0..<(cols / 256) {
        let q = row + i &* 210
        let d = loadHalf(q, 208)
        for half in 0..<2 {
            let (c0, c1, c2, c3) = codesQ6K(q, half: half)
            @inline(__always) func group(_ c: __m256i, _ k: Int) {
                let signed = _mm256_sub_epi8(c, offset)
                let s0 = d * Float(q.load(fromByteOffset: 192 &+ 8 &* half &+ 2 &* k, as: Int8.self))
                let s1 = d * Float(q.load(fromByteOffset: 192 &+ 8 &* half &+ 2 &* k &+ 1, as: Int8.self))
                let base = i &* 256 &+ 128 &* half &+ 32 &* k
                storeScaled16(_mm256_castsi256_si128(signed), signed: true, s0, 0, out, base)
                storeScaled16(upperHalf(signed), signed: true, s1, 0, out, base &+ 16)
            }
            group(c0, 0); group(c1, 1); group(c2, 2); group(c3, 3)
        }
    }
}
#endif
