// The x86 kernels, written once with 256-bit intrinsics and compiled three times: into
// KernelsAVX2 (-target-cpu haswell), KernelsAVXVNNI (alderlake, QWEN_DOT_AVXVNNI) and
// KernelsAVX512 (cascadelake, QWEN_DOT_AVX512VNNI); each of those targets holds a
// symlink to this file. Only the byte dot product (`dotCodes`) and `fifthBits` differ
// between them: AVX2 multiplies bytes with vpmaddubsw + vpmaddwd, the VNNI targets with
// one vpdpbusd.
//
// Everything here is self-contained: raw pointers in, raw pointers out, no Swift code
// shared with another module, entry points (`X86Kernels`) reached only through the
// kernel table in `Kernels`. Decode reads quantized weights in the interleaved layout
// (Kernels/Interleave.swift) against int8 activations in the same order (`qe_vector`'s
// lane records: one scale per 32 values), and a batch of vectors at once: each group of
// codes is decoded once and used for every vector. ggml's layouts (ggml-common.h) are
// only dequantized (embedding rows); the scalar references in Kernels/Formats say what
// each kernel computes.
#if arch(x86_64)
import KernelABI
import _Builtin_intrinsics.intel

// MARK: Helpers (internal to each compiled copy)

@inline(__always) func load256(_ p: UnsafeRawPointer, _ offset: Int) -> __m256i {
    _mm256_loadu_si256((p + offset).assumingMemoryBound(to: __m256i.self))
}

@inline(__always) func load128(_ p: UnsafeRawPointer, _ offset: Int) -> __m128i {
    _mm_loadu_si128((p + offset).assumingMemoryBound(to: __m128i.self))
}

@inline(__always) func loadFloat8(_ p: UnsafePointer<Float>, _ offset: Int) -> __m256 {
    _mm256_loadu_ps(p + offset)
}

@inline(__always) func storeFloat8(_ p: UnsafeMutablePointer<Float>, _ offset: Int, _ v: __m256) {
    _mm256_storeu_ps(p + offset, v)
}

@inline(__always) func loadU32(_ p: UnsafeRawPointer, _ offset: Int) -> UInt32 {
    p.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
}

/// The f16 at p + offset, converted with F16C.
@inline(__always) func loadHalf(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
    let bits = p.loadUnaligned(fromByteOffset: offset, as: UInt16.self)
    return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(Int32(bits))))
}

/// Sum of the 8 lanes.
@inline(__always) func hsum(_ v: __m256) -> Float {
    let high = _mm256_castps256_ps128(_mm256_permutevar8x32_ps(v, _mm256_setr_epi32(4, 5, 6, 7, 4, 5, 6, 7)))
    var s = _mm_add_ps(_mm256_castps256_ps128(v), high)
    s = _mm_add_ps(s, _mm_movehl_ps(s, s))
    s = _mm_add_ss(s, _mm_movehdup_ps(s))
    return _mm_cvtss_f32(s)
}

/// Sum of the 8 int32 lanes.
@inline(__always) func hsum(_ v: __m256i) -> Int32 {
    let high = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(4, 5, 6, 7, 4, 5, 6, 7)))
    var s = _mm_add_epi32(_mm256_castsi256_si128(v), high)
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s))
    s = _mm_add_epi32(s, _mm_shuffle_epi32_1(s))
    return _mm_cvtsi128_si32(s)
}

/// Lanes (1, 0, 3, 2) of v (_mm_shuffle_epi32 takes an immediate, which Swift cannot pass).
@inline(__always) func _mm_shuffle_epi32_1(_ v: __m128i) -> __m128i {
    _mm_shuffle_epi8(v, _mm_setr_epi8(4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11))
}

/// Largest of the 8 lanes.
@inline(__always) func hmax(_ v: __m256) -> Float {
    let high = _mm256_castps256_ps128(_mm256_permutevar8x32_ps(v, _mm256_setr_epi32(4, 5, 6, 7, 4, 5, 6, 7)))
    var s = _mm_max_ps(_mm256_castps256_ps128(v), high)
    s = _mm_max_ps(s, _mm_movehl_ps(s, s))
    s = _mm_max_ss(s, _mm_movehdup_ps(s))
    return _mm_cvtss_f32(s)
}

/// 16 packed nibble bytes at p + offset -> 32 bytes: the low nibbles, then the high ones
/// (the bytes loaded into both halves, the upper half shifted right by 4, one mask).
@inline(__always) func unpackNibbles(_ p: UnsafeRawPointer, _ offset: Int) -> __m256i {
    let both = _mm256_broadcastsi128_si256(load128(p, offset))
    return _mm256_and_si256(_mm256_srlv_epi32(both, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4)), _mm256_set1_epi8(0x0F))
}

/// 0x10 in byte j where bit j of the 32-bit word at p + offset is set (Q5 fifth bits): an
/// opmask move on AVX-512, a shuffle-and-compare elsewhere.
@inline(__always) func fifthBits(_ p: UnsafeRawPointer, _ offset: Int) -> __m256i {
    #if QWEN_DOT_AVX512VNNI
    return _mm256_maskz_mov_epi8(loadU32(p, offset), _mm256_set1_epi8(0x10))
    #else
    return _mm256_and_si256(bytesFromBits(p, offset), _mm256_set1_epi8(0x10))
    #endif
}

/// Byte j of the result is 0xFF where bit j of the 32-bit word at p + offset is set.
@inline(__always) func bytesFromBits(_ p: UnsafeRawPointer, _ offset: Int) -> __m256i {
    let word = _mm256_set1_epi32(Int32(bitPattern: loadU32(p, offset)))
    let spread = _mm256_shuffle_epi8(word, _mm256_set_epi64x(0x0303_0303_0303_0303, 0x0202_0202_0202_0202,
                                                             0x0101_0101_0101_0101, 0))
    let withOtherBits = _mm256_or_si256(spread, _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe))
    return _mm256_cmpeq_epi8(withOtherBits, _mm256_set1_epi64x(-1))
}

/// The upper 128 bits of v.
@inline(__always) func upperHalf(_ v: __m256i) -> __m128i {
    _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(4, 5, 6, 7, 4, 5, 6, 7)))
}

/// Writes scale * (bytes - offset) for 8 consecutive u8 (or s8 when `signed`) bytes.
@inline(__always) func storeScaled8(_ bytes: __m128i, signed: Bool, _ scale: __m256, _ bias: __m256,
                                     _ out: UnsafeMutablePointer<Float>, _ offset: Int) {
    let wide = signed ? _mm256_cvtepi8_epi32(bytes) : _mm256_cvtepu8_epi32(bytes)
    storeFloat8(out, offset, _mm256_fmadd_ps(_mm256_cvtepi32_ps(wide), scale, bias))
}

/// Writes scale * codes + bias for 16 bytes (u8, or s8 when `signed`).
@inline(__always) func storeScaled16(_ bytes: __m128i, signed: Bool, _ scale: Float, _ bias: Float,
                                      _ out: UnsafeMutablePointer<Float>, _ offset: Int) {
    let s = _mm256_set1_ps(scale), b = _mm256_set1_ps(bias)
    storeScaled8(bytes, signed: signed, s, b, out, offset)
    storeScaled8(_mm_unpackhi_epi64(bytes, bytes), signed: signed, s, b, out, offset &+ 8)
}

// MARK: Interleaved layout: decode (rows times a batch of q8 vectors)
//
// The layout and the activations' records are defined in Kernels/Interleave.swift and
// kernel_abi.h. Per group of G blocks (G = 8, 4, 1; a K-quant block is a group of 8
// sub-blocks) the codes are decoded once into up to 8 code vectors (32 u8 codes each,
// lane l holding 4 codes of block l % G) and then, for every input vector, multiplied
// with that vector's interleaved int8 values into one int32 register whose lanes are the
// blocks, converted once and scaled once by d_w[lane] * d8[lane] (an FMA into the
// vector's f32 accumulator; the lanes are summed at the end of the row). Code offsets
// (Q4_0: 8, Q5_0: 16, 8-bit codes stored as c + 128, Q6_K: 32) start the int32 register
// at -offset * (the lane's activation sum); mins and zero points take one more FMA with
// the lanes' d8 * sums. Integer sums are exact in any order, and each vector's float
// operations are the same whatever the batch, so a vector's result never depends on the
// others (count = 1 or 9 gives the same bits).

/// Whether this build multiplies bytes with vpdpbusd (no saturation).
#if QWEN_DOT_AVX512VNNI || QWEN_DOT_AVXVNNI
let hasVNNI = true
#else
let hasVNNI = false
#endif

/// Up to 8 code vectors of a group (those past the group's size are zero).
typealias CodeVectors = (__m256i, __m256i, __m256i, __m256i, __m256i, __m256i, __m256i, __m256i)

/// Code vector k of c (k a constant once inlined).
@inline(__always) func codeVector(_ c: CodeVectors, _ k: Int) -> __m256i {
    switch k {
    case 0: return c.0
    case 1: return c.1
    case 2: return c.2
    case 3: return c.3
    case 4: return c.4
    case 5: return c.5
    case 6: return c.6
    default: return c.7
    }
}

/// Code vectors 2p and 2p + 1 from the 32 packed bytes at p + offset (low, high nibbles).
@inline(__always) func nibblePair(_ p: UnsafeRawPointer, _ offset: Int) -> (__m256i, __m256i) {
    let packed = load256(p, offset), mask = _mm256_set1_epi8(0x0F)
    return (_mm256_and_si256(packed, mask), _mm256_and_si256(_mm256_srli_epi16(packed, 4), mask))
}

/// h shifted so that bit `from` of each byte lands on bit `to` (16-bit shifts: bits that
/// cross into a neighbouring byte land elsewhere than bit `to` and are masked by callers).
@inline(__always) func moveBit(_ h: __m256i, from: Int, to: Int) -> __m256i {
    if from < to { return _mm256_slli_epi16(h, Int32(to &- from)) }
    if from > to { return _mm256_srli_epi16(h, Int32(from &- to)) }
    return h
}

/// nib | (the bits of `mask` of h moved by `moveBit`): high code bits from a bit plane (on
/// AVX-512 the and-or is one vpternlogd).
@inline(__always) func withHighBits(_ nib: __m256i, _ h: __m256i, from: Int, to: Int, mask: Int8) -> __m256i {
    _mm256_or_si256(nib, _mm256_and_si256(moveBit(h, from: from, to: to), _mm256_set1_epi8(mask)))
}

/// The code vectors of a group of g blocks whose packed codes (`bits` per code, layout of
/// Interleave.swift) start at p: u8 codes below 2^bits (8 bits: the stored c + 128).
@inline(__always) func decodeCodes(bits: Int, _ p: UnsafeRawPointer, size g: Int) -> CodeVectors {
    let z = _mm256_setzero_si256()
    switch bits {
    case 8:
        if g == 8 {
            return (load256(p, 0), load256(p, 32), load256(p, 64), load256(p, 96),
                    load256(p, 128), load256(p, 160), load256(p, 192), load256(p, 224))
        }
        if g == 4 { return (load256(p, 0), load256(p, 32), load256(p, 64), load256(p, 96), z, z, z, z) }
        return (load256(p, 0), z, z, z, z, z, z, z)
    case 4:
        if g == 1 { return (unpackNibbles(p, 0), z, z, z, z, z, z, z) }
        let (c0, c1) = nibblePair(p, 0), (c2, c3) = nibblePair(p, 32)
        if g == 4 { return (c0, c1, c2, c3, z, z, z, z) }
        let (c4, c5) = nibblePair(p, 64), (c6, c7) = nibblePair(p, 96)
        return (c0, c1, c2, c3, c4, c5, c6, c7)
    case 5:
        if g == 1 { return (_mm256_or_si256(unpackNibbles(p, 4), fifthBits(p, 0)), z, z, z, z, z, z, z) }
        if g == 4 {
            // 16 bytes of fifth bits: both halves, the upper one shifted so that bit 4 + k
            // (byte j + 16 of code vector k) lands on bit k.
            let h = _mm256_srlv_epi32(_mm256_broadcastsi128_si256(load128(p, 0)), _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4))
            let (n0, n1) = nibblePair(p, 16), (n2, n3) = nibblePair(p, 48)
            return (withHighBits(n0, h, from: 0, to: 4, mask: 0x10), withHighBits(n1, h, from: 1, to: 4, mask: 0x10),
                    withHighBits(n2, h, from: 2, to: 4, mask: 0x10), withHighBits(n3, h, from: 3, to: 4, mask: 0x10), z, z, z, z)
        }
        let h = load256(p, 0)
        let (n0, n1) = nibblePair(p, 32), (n2, n3) = nibblePair(p, 64), (n4, n5) = nibblePair(p, 96), (n6, n7) = nibblePair(p, 128)
        return (withHighBits(n0, h, from: 0, to: 4, mask: 0x10), withHighBits(n1, h, from: 1, to: 4, mask: 0x10),
                withHighBits(n2, h, from: 2, to: 4, mask: 0x10), withHighBits(n3, h, from: 3, to: 4, mask: 0x10),
                withHighBits(n4, h, from: 4, to: 4, mask: 0x10), withHighBits(n5, h, from: 5, to: 4, mask: 0x10),
                withHighBits(n6, h, from: 6, to: 4, mask: 0x10), withHighBits(n7, h, from: 7, to: 4, mask: 0x10))
    default:                                                  // 6 (Q6_K, g = 8)
        let (n0, n1) = nibblePair(p, 0), (n2, n3) = nibblePair(p, 32), (n4, n5) = nibblePair(p, 64), (n6, n7) = nibblePair(p, 96)
        let h0 = load256(p, 128), h1 = load256(p, 160)
        return (withHighBits(n0, h0, from: 0, to: 4, mask: 0x30), withHighBits(n1, h0, from: 2, to: 4, mask: 0x30),
                withHighBits(n2, h0, from: 4, to: 4, mask: 0x30), withHighBits(n3, h0, from: 6, to: 4, mask: 0x30),
                withHighBits(n4, h1, from: 0, to: 4, mask: 0x30), withHighBits(n5, h1, from: 2, to: 4, mask: 0x30),
                withHighBits(n6, h1, from: 4, to: 4, mask: 0x30), withHighBits(n7, h1, from: 6, to: 4, mask: 0x30))
    }
}

/// 8-bit codes for the AVX2 dot: (|c|, c) from the stored c + 128 (vpmaddubsw saturates
/// on 255 x 127, so AVX2 multiplies |c| by sign(x, c) instead).
@inline(__always) func signedCodes(_ u: CodeVectors) -> (magnitudes: CodeVectors, signs: CodeVectors) {
    let flip = _mm256_set1_epi8(-128)
    @inline(__always) func s(_ v: __m256i) -> __m256i { _mm256_xor_si256(v, flip) }
    @inline(__always) func a(_ v: __m256i) -> __m256i { _mm256_sign_epi8(v, v) }
    let c = (s(u.0), s(u.1), s(u.2), s(u.3), s(u.4), s(u.5), s(u.6), s(u.7))
    return ((a(c.0), a(c.1), a(c.2), a(c.3), a(c.4), a(c.5), a(c.6), a(c.7)), c)
}

/// acc + Σ_{k < n} (code vector k) · (the 32 int8 at x + 32 k) in int32 lanes, for u8
/// codes below 2^bits. 8-bit codes on AVX2: `c` holds |c| and `signs` c.
@inline(__always) func dotCodes(_ acc: __m256i, _ c: CodeVectors, _ x: UnsafeRawPointer, count n: Int, bits: Int,
                                signs: CodeVectors) -> __m256i {
    var a = acc
    #if QWEN_DOT_AVX512VNNI || QWEN_DOT_AVXVNNI
    @inline(__always) func dp(_ acc: __m256i, _ k: Int) -> __m256i {
        #if QWEN_DOT_AVX512VNNI
        return _mm256_maskz_dpbusd_epi32(0xFF, acc, codeVector(c, k), load256(x, 32 &* k))  // (_mm256_dpbusd_epi32 is a macro)
        #else
        return _mm256_dpbusd_avx_epi32(acc, codeVector(c, k), load256(x, 32 &* k))
        #endif
    }
    // Two chains of at most 4 (a vpdpbusd's latency is ~5 cycles: one chain of 8 per
    // vector would bound the loop).
    if n == 1 { return dp(a, 0) }
    var b = dp(_mm256_setzero_si256(), 1)
    a = dp(a, 0)
    if n >= 4 { a = dp(a, 2); b = dp(b, 3) }
    if n == 8 { a = dp(a, 4); b = dp(b, 5); a = dp(a, 6); b = dp(b, 7) }
    return _mm256_add_epi32(a, b)
    #else
    let ones = _mm256_set1_epi16(1)
    if bits == 8 {
        for k in 0..<n {
            let s = codeVector(signs, k)
            a = _mm256_add_epi32(a, _mm256_madd_epi16(_mm256_maddubs_epi16(codeVector(c, k), _mm256_sign_epi8(load256(x, 32 &* k), s)), ones))
        }
        return a
    }
    // Adjacent-pair products of vpmaddubsw are at most 2 * 127 * (2^bits - 1): 8 of them
    // (4 bits), 4 (5 bits) or 2 (6 bits) fit int16 before widening.
    let chunk = bits == 4 ? 8 : bits == 5 ? 4 : 2
    var k = 0
    while k < n {
        var s = _mm256_maddubs_epi16(codeVector(c, k), load256(x, 32 &* k))
        var j = 1
        while j < chunk && k &+ j < n {
            s = _mm256_add_epi16(s, _mm256_maddubs_epi16(codeVector(c, k &+ j), load256(x, 32 &* (k &+ j))))
            j &+= 1
        }
        a = _mm256_add_epi32(a, _mm256_madd_epi16(s, ones))
        k &+= chunk
    }
    #endif
    return a
}

/// g f16 values at p + offset as lanes: g = 8: lane l = value l; 4: [f0..f3, f0..f3];
/// 1: broadcast (the lane's block's value in every layout).
@inline(__always) func laneHalves(_ p: UnsafeRawPointer, _ offset: Int, _ g: Int) -> __m256 {
    switch g {
    case 8: return _mm256_cvtph_ps(load128(p, offset))
    case 4: return _mm256_cvtph_ps(_mm_set1_epi64x(Int64(bitPattern: p.loadUnaligned(fromByteOffset: offset, as: UInt64.self))))
    default: return _mm256_set1_ps(loadHalf(p, offset))
    }
}

/// Offsets in a group's activation record (kernel_abi.h) past its 32 G bytes of values.
enum Record {
    static let d8 = 0, s8 = 32, offset8 = 64, offset16 = 96, offset128 = 128, offset32Low = 160, offset32High = 192
    static let lanes = 224

    /// The field holding -offset * (the lanes' sums) for a code offset of 8, 16 or 128.
    @inline(__always) static func offsetTerm(_ offset: Int) -> Int { offset == 8 ? offset8 : offset == 16 ? offset16 : offset128 }
}

/// A 32-value format in the interleaved layout: per group of G blocks, f16 d[G],
/// (`fields` 2) f16 m[G] or zero points, then the packed codes.
protocol Lane32 {
    static var blockBytes: Int { get }
    static var fields: Int { get }
    /// Bits per stored code: 4, 5 or 8 (8: int8 c stored as c + 128).
    static var bits: Int { get }
    /// value = d * (code - offset) (+ m): 0, or 8, 16, 128 (`Record.offsetTerm`).
    static var offset: Int { get }
    /// The second field is an integer zero point z, m = -d * z (Q4_Z, Q8_Z).
    static var zeroPoint: Bool { get }
}

enum Q4_0Lanes: Lane32 {
    static var blockBytes: Int { 18 }
    static var fields: Int { 1 }
    static var bits: Int { 4 }
    static var offset: Int { 8 }
    static var zeroPoint: Bool { false }
}

enum Q4_1Lanes: Lane32 {
    static var blockBytes: Int { 20 }
    static var fields: Int { 2 }
    static var bits: Int { 4 }
    static var offset: Int { 0 }
    static var zeroPoint: Bool { false }
}

enum Q4_ZLanes: Lane32 {
    static var blockBytes: Int { 20 }
    static var fields: Int { 2 }
    static var bits: Int { 4 }
    static var offset: Int { 0 }
    static var zeroPoint: Bool { true }
}

enum Q5_0Lanes: Lane32 {
    static var blockBytes: Int { 22 }
    static var fields: Int { 1 }
    static var bits: Int { 5 }
    static var offset: Int { 16 }
    static var zeroPoint: Bool { false }
}

enum Q5_1Lanes: Lane32 {
    static var blockBytes: Int { 24 }
    static var fields: Int { 2 }
    static var bits: Int { 5 }
    static var offset: Int { 0 }
    static var zeroPoint: Bool { false }
}

enum Q8_0Lanes: Lane32 {
    static var blockBytes: Int { 34 }
    static var fields: Int { 1 }
    static var bits: Int { 8 }
    static var offset: Int { 128 }
    static var zeroPoint: Bool { false }
}

enum Q8_ZLanes: Lane32 {
    static var blockBytes: Int { 36 }
    static var fields: Int { 2 }
    static var bits: Int { 8 }
    static var offset: Int { 128 }
    static var zeroPoint: Bool { true }
}

/// The per-vector state of a batched decode kernel: each vector's lane records and f32
/// accumulator, in scratch owned by the call.
struct Batch {
    let records: UnsafeMutablePointer<UnsafeRawPointer>   // [count]
    let sums: UnsafeMutablePointer<__m256>                // [count]
    let count: Int
}

/// Runs body with a `Batch` for the vectors v[0..<count], its sums zero.
@inline(__always) func withBatch(_ v: UnsafePointer<qe_vector>, _ count: Int, _ body: (Batch) -> Void) {
    withUnsafeTemporaryAllocation(of: UnsafeRawPointer.self, capacity: count) { records in
        withUnsafeTemporaryAllocation(of: __m256.self, capacity: count) { sums in
            for b in 0..<count {
                records[b] = UnsafeRawPointer(v[b].lanes!)
                sums[b] = _mm256_setzero_ps()
            }
            body(Batch(records: records.baseAddress!, sums: sums.baseAddress!, count: count))
        }
    }
}

extension Batch {
    /// y[b * yStride] = the lane sum of vector b's accumulator, which is zeroed for the next
    /// row (here rather than in a loop of its own, which would become a memset call).
    @inline(__always) func finishRow(_ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        for b in 0..<count {
            y[b &* yStride] = hsum(sums[b])
            sums[b] = _mm256_setzero_ps()
        }
    }
}

/// One group of g blocks of a 32-value row at q against every vector of the batch, whose
/// records for this group start `record` bytes into their lanes.
@inline(__always) func group32<F: Lane32>(_: F.Type, _ q: UnsafeRawPointer, size g: Int, _ batch: Batch, _ record: Int) {
    let d = laneHalves(q, 0, g)
    var m = _mm256_setzero_ps()
    if F.fields == 2 {
        let second = laneHalves(q, 2 &* g, g)
        m = F.zeroPoint ? _mm256_fnmadd_ps(d, second, _mm256_setzero_ps()) : second   // -d z is exact
    }
    let stored = decodeCodes(bits: F.bits, q + 2 &* F.fields &* g, size: g)
    let signed = !hasVNNI && F.bits == 8
    let (codes, signs) = signed ? signedCodes(stored) : (stored, stored)
    let offset = signed ? 0 : F.offset
    for b in 0..<batch.count {
        let x = batch.records[b] + record, lanes = x + 32 &* g
        var acc = offset != 0 ? load256(lanes, Record.offsetTerm(offset)) : _mm256_setzero_si256()
        acc = dotCodes(acc, codes, x, count: g, bits: F.bits, signs: signs)
        var sum = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), _mm256_mul_ps(d, loadFloat8(lanes.assumingMemoryBound(to: Float.self), 0)),
                                  batch.sums[b])
        if F.fields == 2 { sum = _mm256_fmadd_ps(m, loadFloat8((lanes + Record.s8).assumingMemoryBound(to: Float.self), 0), sum) }
        batch.sums[b] = sum
    }
}

/// Calls body(first byte of the group in the row, group size, record offset) for every
/// group of a row of `blocks` 32-value blocks of `blockBytes` bytes each.
@inline(__always) func forEachLaneGroup(blocks: Int, blockBytes: Int, _ body: (Int, Int, Int) -> Void) {
    var block = 0, record = 0
    while blocks &- block >= 8 { body(block &* blockBytes, 8, record); block &+= 8; record &+= 256 &+ Record.lanes }
    if blocks &- block >= 4 { body(block &* blockBytes, 4, record); block &+= 4; record &+= 128 &+ Record.lanes }
    while block < blocks { body(block &* blockBytes, 1, record); block &+= 1; record &+= 32 &+ Record.lanes }
}

/// y[b * yStride + r] = row r · x_b for `rows` interleaved rows of a 32-value format and
/// the `count` vectors v: one row at a time (two rows interleaved halved the hardware
/// prefetcher's throughput from memory), each group decoded once for all vectors.
@inline(__always) func rowsLanes32<F: Lane32>(_: F.Type, _ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int,
                                             _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
    withBatch(v, count) { batch in
        for r in 0..<rows {
            let row = w + r &* rowBytes
            forEachLaneGroup(blocks: cols / 32, blockBytes: F.blockBytes) { offset, g, record in
                group32(F.self, row + offset, size: g, batch, record)
            }
            batch.finishRow(y + r, yStride)
        }
    }
}

/// The 8 6-bit scales and the 8 6-bit mins of a Q4_K/Q5_K block (12 bytes at p) as two
/// vectors of 8 int16 (ggml's get_scale_min_k4 for all j at once).
@inline(__always) func scalesAndMinsK4(_ p: UnsafeRawPointer) -> (scales: __m128i, mins: __m128i) {
    let kmask1: UInt32 = 0x3f3f_3f3f, kmask2: UInt32 = 0x0f0f_0f0f, kmask3: UInt32 = 0x0303_0303
    let u0 = loadU32(p, 0), u1 = loadU32(p, 4), u2 = loadU32(p, 8)
    let scales0 = u0 & kmask1
    let scales1 = (u2 & kmask2) | (((u0 >> 6) & kmask3) << 4)
    let mins0 = u1 & kmask1
    let mins1 = ((u2 >> 4) & kmask2) | (((u1 >> 6) & kmask3) << 4)
    func pack(_ a: UInt32, _ b: UInt32) -> __m128i {
        _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, Int32(bitPattern: b), Int32(bitPattern: a)))
    }
    return (pack(scales0, scales1), pack(mins0, mins1))
}

/// A Q4_K/Q5_K block's per-lane (sub-block) factors: d * scale and -dmin * min.
@inline(__always) func factorsK4(_ q: UnsafeRawPointer) -> (scales: __m256, mins: __m256) {
    let (scales16, mins16) = scalesAndMinsK4(q + 4)
    let scales = _mm256_mul_ps(_mm256_set1_ps(loadHalf(q, 0)), _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(scales16)))
    let mins = _mm256_mul_ps(_mm256_set1_ps(-loadHalf(q, 2)), _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(mins16)))
    return (scales, mins)
}

/// A Q6_K block's per-lane factors: d * the scale of the first and of the second 16
/// values of each 32.
@inline(__always) func factorsQ6K(_ q: UnsafeRawPointer) -> (first: __m256, second: __m256) {
    let d = _mm256_set1_ps(loadHalf(q, 0))
    @inline(__always) func scales(_ offset: Int) -> __m256 {
        let bytes = _mm_set_epi64x(0, Int64(bitPattern: q.loadUnaligned(fromByteOffset: offset, as: UInt64.self)))
        return _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes)))
    }
    return (scales(2), scales(10))
}

/// rowsLanes32 for Q4_K / Q5_K: each 256-value block is a group of 8 sub-blocks.
@inline(__always) func rowsLanesK4(isQ5: Bool, _ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int,
                                   _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
    let bytes = isQ5 ? 176 : 144, bits = isQ5 ? 5 : 4
    withBatch(v, count) { batch in
        for r in 0..<rows {
            let row = w + r &* rowBytes
            for i in 0..<(cols / 256) {
                let q = row + i &* bytes, record = i &* (256 &+ Record.lanes)
                let (scales, mins) = factorsK4(q)
                let codes = decodeCodes(bits: bits, q + 16, size: 8)
                for b in 0..<count {
                    let x = batch.records[b] + record, lanes = (x + 256).assumingMemoryBound(to: Float.self)
                    let acc = dotCodes(_mm256_setzero_si256(), codes, x, count: 8, bits: bits, signs: codes)
                    let sum = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), _mm256_mul_ps(scales, loadFloat8(lanes, 0)), batch.sums[b])
                    batch.sums[b] = _mm256_fmadd_ps(mins, loadFloat8(lanes, Record.s8 / 4), sum)
                }
            }
            batch.finishRow(y + r, yStride)
        }
    }
}

/// rowsLanes32 for Q6_K: code vectors 0-3 are the first 16 values of each sub-block of 32
/// (lane), 4-7 the second 16, each with its own scale and offset 32.
@inline(__always) func rowsLanesQ6K(_ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int,
                                    _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
    withBatch(v, count) { batch in
        for r in 0..<rows {
            let row = w + r &* rowBytes
            for i in 0..<(cols / 256) {
                let q = row + i &* 210, record = i &* (256 &+ Record.lanes)
                let (first, second) = factorsQ6K(q)
                let c = decodeCodes(bits: 6, q + 18, size: 8)
                let z = _mm256_setzero_si256()
                let low = (c.0, c.1, c.2, c.3, z, z, z, z), high = (c.4, c.5, c.6, c.7, z, z, z, z)
                for b in 0..<count {
                    let x = batch.records[b] + record, lanes = x + 256
                    let a = dotCodes(load256(lanes, Record.offset32Low), low, x, count: 4, bits: 6, signs: low)
                    let h = dotCodes(load256(lanes, Record.offset32High), high, x + 128, count: 4, bits: 6, signs: high)
                    let t = _mm256_fmadd_ps(_mm256_cvtepi32_ps(h), second, _mm256_mul_ps(_mm256_cvtepi32_ps(a), first))
                    batch.sums[b] = _mm256_fmadd_ps(t, loadFloat8(lanes.assumingMemoryBound(to: Float.self), 0), batch.sums[b])
                }
            }
            batch.finishRow(y + r, yStride)
        }
    }
}

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

/// x[cols] -> q8, d8, s8 (per 32 values d = max|x| / 127, q = round-to-nearest-even(x / d),
/// s = d * Σ q) and the lane records of kernel_abi.h.
@inline(__always) func quantizeWithLanes(_ x: UnsafePointer<Float>, _ cols: Int, _ q8: UnsafeMutablePointer<Int8>,
                                         _ d8: UnsafeMutablePointer<Float>, _ s8: UnsafeMutablePointer<Float>,
                                         _ lanes: UnsafeMutableRawPointer) {
    withUnsafeTemporaryAllocation(of: Int32.self, capacity: 16) { scratch in
        let sums = scratch.baseAddress!, lows = sums + 8         // [8] each: the group's blocks
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
            @inline(__always) func lane(_ l: Int, d: Float, sum: Int32, low: Int32) {
                laneData.storeBytes(of: d, toByteOffset: Record.d8 &+ 4 &* l, as: Float.self)
                laneData.storeBytes(of: d * Float(sum), toByteOffset: Record.s8 &+ 4 &* l, as: Float.self)
                laneData.storeBytes(of: -8 &* sum, toByteOffset: Record.offset8 &+ 4 &* l, as: Int32.self)
                laneData.storeBytes(of: -16 &* sum, toByteOffset: Record.offset16 &+ 4 &* l, as: Int32.self)
                laneData.storeBytes(of: -128 &* sum, toByteOffset: Record.offset128 &+ 4 &* l, as: Int32.self)
                laneData.storeBytes(of: -32 &* low, toByteOffset: Record.offset32Low &+ 4 &* l, as: Int32.self)
                laneData.storeBytes(of: -32 &* (sum &- low), toByteOffset: Record.offset32High &+ 4 &* l, as: Int32.self)
            }
            switch g {
            case 8:
                let t = transpose8((load256(values, 0), load256(values, 32), load256(values, 64), load256(values, 96),
                                    load256(values, 128), load256(values, 160), load256(values, 192), load256(values, 224)))
                let out = record.assumingMemoryBound(to: __m256i.self)
                _mm256_storeu_si256(out, t.0); _mm256_storeu_si256(out + 1, t.1)
                _mm256_storeu_si256(out + 2, t.2); _mm256_storeu_si256(out + 3, t.3)
                _mm256_storeu_si256(out + 4, t.4); _mm256_storeu_si256(out + 5, t.5)
                _mm256_storeu_si256(out + 6, t.6); _mm256_storeu_si256(out + 7, t.7)
                for l in 0..<8 { lane(l, d: d8[block &+ l], sum: sums[l], low: lows[l]) }
            case 4:
                for k in 0..<4 {
                    for l in 0..<8 {
                        let from = 32 &* (l & 3) &+ (l >> 2) &* 16 &+ 4 &* k
                        record.storeBytes(of: loadU32(values, from), toByteOffset: 32 &* k &+ 4 &* l, as: UInt32.self)
                    }
                }
                for l in 0..<8 {
                    let s = l < 4 ? lows[l] : sums[l &- 4] &- lows[l &- 4]
                    lane(l, d: d8[block &+ (l & 3)], sum: s, low: s)
                }
            default:
                (record).copyMemory(from: values, byteCount: 32)
                for l in 0..<8 {
                    var s: Int32 = 0
                    for j in 0..<4 { s &+= Int32(values.load(fromByteOffset: 4 &* l &+ j, as: Int8.self)) }
                    lane(l, d: d8[block], sum: s, low: s)
                }
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

// MARK: Entry points (reached only through Kernels' table)

public enum X86Kernels {
    /// Decode of rows in the interleaved layout (quantized formats): y[b * yStride + r] =
    /// dot(row r of the matrix at w, x_b) for r in 0..<rows, b in 0..<count; rows are
    /// `rowBytes` apart and hold `cols` values; x_b is v[b] (its `lanes` records). The
    /// AVX-512 target does two rows per 512-bit register (Decode512.swift), and four
    /// neighbouring rows at a time for batches of `quadRowsMinimumBatch` or more vectors
    /// (prefill's token tiles, Prefill512.swift).
    @inline(never) public static func rowsQ8_0(_ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int, _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        #if QWEN_DOT_AVX512VNNI
        if count >= quadRowsMinimumBatch { rowQuads32(Q8_0Lanes.self, w, rowBytes, cols, rows, v, count, y, yStride) }
        else { rowPairs32(Q8_0Lanes.self, w, rowBytes, cols, rows, v, count, y, yStride) }
        #else
        rowsLanes32(Q8_0Lanes.self, w, rowBytes, cols, rows, v, count, y, yStride)
        #endif
    }
    @inline(never) public static func rowsQ4_0(_ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int, _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        #if QWEN_DOT_AVX512VNNI
        if count >= quadRowsMinimumBatch { rowQuads32(Q4_0Lanes.self, w, rowBytes, cols, rows, v, count, y, yStride) }
        else { rowPairs32(Q4_0Lanes.self, w, rowBytes, cols, rows, v, count, y, yStride) }
        #else
        rowsLanes32(Q4_0Lanes.self, w, rowBytes, cols, rows, v, count, y, yStride)
        #endif
    }
    @inline(never) public static func rowsQ4_1(_ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int, _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        #if QWEN_DOT_AVX512VNNI
        if count >= quadRowsMinimumBatch { rowQuads32(Q4_1Lanes.self, w, rowBytes, cols, rows, v, count, y, yStride) }
        else { rowPairs32(Q4_1Lanes.self, w, rowBytes, cols, rows, v, count, y, yStride) }
        #else
        rowsLanes32(Q4_1Lanes.self, w, rowBytes, cols, rows, v, count, y, yStride)
        #endif
    }
    @inline(never) public static func rowsQ5_0(_ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int, _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        #if QWEN_DOT_AVX512VNNI
        if count >= quadRowsMinimumBatch { rowQuads32(Q5_0Lanes.self, w, rowBytes, cols, rows, v, count, y, yStride) }
        else { rowPairs32(Q5_0Lanes.self, w, rowBytes, cols, rows, v, count, y, yStride) }
        #else
        rowsLanes32(Q5_0Lanes.self, w, rowBytes, cols, rows, v, count, y, yStride)
        #endif
    }
    @inline(never) public static func rowsQ5_1(_ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int, _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        #if QWEN_DOT_AVX512VNNI
        if count >= quadRowsMinimumBatch { rowQuads32(Q5_1Lanes.self, w, rowBytes, cols, rows, v, count, y, yStride) }
        else { rowPairs32(Q5_1Lanes.self, w, rowBytes, cols, rows, v, count, y, yStride) }
        #else
        rowsLanes32(Q5_1Lanes.self, w, rowBytes, cols, rows, v, count, y, yStride)
        #endif
    }
    @inline(never) public static func rowsQ4_Z(_ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int, _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        #if QWEN_DOT_AVX512VNNI
        if count >= quadRowsMinimumBatch { rowQuads32(Q4_ZLanes.self, w, rowBytes, cols, rows, v, count, y, yStride) }
        else { rowPairs32(Q4_ZLanes.self, w, rowBytes, cols, rows, v, count, y, yStride) }
        #else
        rowsLanes32(Q4_ZLanes.self, w, rowBytes, cols, rows, v, count, y, yStride)
        #endif
    }
    @inline(never) public static func rowsQ8_Z(_ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int, _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        #if QWEN_DOT_AVX512VNNI
        if count >= quadRowsMinimumBatch { rowQuads32(Q8_ZLanes.self, w, rowBytes, cols, rows, v, count, y, yStride) }
        else { rowPairs32(Q8_ZLanes.self, w, rowBytes, cols, rows, v, count, y, yStride) }
        #else
        rowsLanes32(Q8_ZLanes.self, w, rowBytes, cols, rows, v, count, y, yStride)
        #endif
    }
    @inline(never) public static func rowsQ4_K(_ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int, _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        #if QWEN_DOT_AVX512VNNI
        if count >= quadRowsMinimumBatch { rowQuadsK4(isQ5: false, w, rowBytes, cols, rows, v, count, y, yStride) }
        else { rowPairsK4(isQ5: false, w, rowBytes, cols, rows, v, count, y, yStride) }
        #else
        rowsLanesK4(isQ5: false, w, rowBytes, cols, rows, v, count, y, yStride)
        #endif
    }
    @inline(never) public static func rowsQ5_K(_ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int, _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        #if QWEN_DOT_AVX512VNNI
        if count >= quadRowsMinimumBatch { rowQuadsK4(isQ5: true, w, rowBytes, cols, rows, v, count, y, yStride) }
        else { rowPairsK4(isQ5: true, w, rowBytes, cols, rows, v, count, y, yStride) }
        #else
        rowsLanesK4(isQ5: true, w, rowBytes, cols, rows, v, count, y, yStride)
        #endif
    }
    @inline(never) public static func rowsQ6_K(_ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int, _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        #if QWEN_DOT_AVX512VNNI
        if count >= quadRowsMinimumBatch { rowQuadsQ6K(w, rowBytes, cols, rows, v, count, y, yStride) }
        else { rowPairsQ6K(w, rowBytes, cols, rows, v, count, y, yStride) }
        #else
        rowsLanesQ6K(w, rowBytes, cols, rows, v, count, y, yStride)
        #endif
    }
    /// The same for the float formats (ggml's layout, v[b].x).
    @inline(never) public static func rowsF32(_ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int, _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) { rowsFloat(F32.self, w, rowBytes, cols, rows, v, count, y, yStride) }
    @inline(never) public static func rowsF16(_ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int, _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) { rowsFloat(F16.self, w, rowBytes, cols, rows, v, count, y, yStride) }
    @inline(never) public static func rowsBF16(_ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int, _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) { rowsFloat(BF16.self, w, rowBytes, cols, rows, v, count, y, yStride) }

    /// out[cols] = one dequantized row in the interleaved layout.
    @inline(never) public static func interleavedDequantizeQ8_0(_ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) { dequantizeLanes32(Q8_0Lanes.self, row, cols, out) }
    @inline(never) public static func interleavedDequantizeQ4_0(_ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) { dequantizeLanes32(Q4_0Lanes.self, row, cols, out) }
    @inline(never) public static func interleavedDequantizeQ4_1(_ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) { dequantizeLanes32(Q4_1Lanes.self, row, cols, out) }
    @inline(never) public static func interleavedDequantizeQ5_0(_ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) { dequantizeLanes32(Q5_0Lanes.self, row, cols, out) }
    @inline(never) public static func interleavedDequantizeQ5_1(_ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) { dequantizeLanes32(Q5_1Lanes.self, row, cols, out) }
    @inline(never) public static func interleavedDequantizeQ4_Z(_ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) { dequantizeLanes32(Q4_ZLanes.self, row, cols, out) }
    @inline(never) public static func interleavedDequantizeQ8_Z(_ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) { dequantizeLanes32(Q8_ZLanes.self, row, cols, out) }
    @inline(never) public static func interleavedDequantizeQ4_K(_ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) { dequantizeLanesK4(isQ5: false, row, cols, out) }
    @inline(never) public static func interleavedDequantizeQ5_K(_ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) { dequantizeLanesK4(isQ5: true, row, cols, out) }
    @inline(never) public static func interleavedDequantizeQ6_K(_ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) { dequantizeLanesQ6K(row, cols, out) }
    /// out[cols] = one dequantized row in ggml's layout (embedding rows, float formats).
    @inline(never) public static func dequantizeQ8_0(_ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) { dequantize32(Q8_0.self, row, cols, out) }
    @inline(never) public static func dequantizeQ4_0(_ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) { dequantize32(Q4_0.self, row, cols, out) }
    @inline(never) public static func dequantizeQ4_1(_ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) { dequantize32(Q4_1.self, row, cols, out) }
    @inline(never) public static func dequantizeQ5_0(_ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) { dequantize32(Q5_0.self, row, cols, out) }
    @inline(never) public static func dequantizeQ5_1(_ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) { dequantize32(Q5_1.self, row, cols, out) }
    @inline(never) public static func dequantizeQ4_Z(_ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) { dequantize32(Q4_Z.self, row, cols, out) }
    @inline(never) public static func dequantizeQ8_Z(_ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) { dequantize32(Q8_Z.self, row, cols, out) }
    @inline(never) public static func dequantizeQ4_K(_ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) { dequantizeK4(isQ5: false, row, cols, out) }
    @inline(never) public static func dequantizeQ5_K(_ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) { dequantizeK4(isQ5: true, row, cols, out) }
    @inline(never) public static func dequantizeQ6_K(_ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) { dequantizeQ6K(row, cols, out) }
    @inline(never) public static func dequantizeF32(_ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) { dequantizeFloat(F32.self, row, cols, out) }
    @inline(never) public static func dequantizeF16(_ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) { dequantizeFloat(F16.self, row, cols, out) }
    @inline(never) public static func dequantizeBF16(_ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) { dequantizeFloat(BF16.self, row, cols, out) }

    /// Causal attention of one query head over an f16 KV cache (see Kernels' `AttendKernel`).
    @inline(never) public static func attendHead(_ q: UnsafePointer<Float>, _ keys: UnsafeRawPointer, _ values: UnsafeRawPointer,
                                                 _ rowBytes: Int, _ length: Int, _ headDim: Int,
                                                 _ scores: UnsafeMutablePointer<Float>, _ out: UnsafeMutablePointer<Float>) {
        attend(q, keys, values, rowBytes, length, headDim, scores, out)
    }

    /// gate[i] = silu(gate[i]) * up[i] for i in 0..<n.
    @inline(never) public static func swiGLU(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, _ n: Int) {
        swiGLU8(gate, up, n)
    }

    /// x[cols] (cols a multiple of 32) -> q8[cols], d8[cols/32], s8[cols/32]: per 32
    /// values d = max|x| / 127, q = round-to-nearest-even(x / d), s = d * Σ q; and the
    /// interleaved copy with its lane sums, lanes[qe_lane_record_bytes(cols)].
    @inline(never) public static func quantizeQ8(_ x: UnsafePointer<Float>, _ cols: Int, _ q8: UnsafeMutablePointer<Int8>,
                                                 _ d8: UnsafeMutablePointer<Float>, _ s8: UnsafeMutablePointer<Float>,
                                                 _ lanes: UnsafeMutableRawPointer) {
        quantizeWithLanes(x, cols, q8, d8, s8, lanes)
    }
}
#endif
