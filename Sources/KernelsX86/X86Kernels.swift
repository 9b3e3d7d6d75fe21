// The x86 kernels, written once with 256-bit intrinsics and compiled three times: into
// KernelsAVX2 (-target-cpu haswell), KernelsAVXVNNI (alderlake, QWEN_DOT_AVXVNNI) and
// KernelsAVX512 (cascadelake, QWEN_DOT_AVX512VNNI); each of those targets holds a
// symlink to this file. Only `dotBytes` differs between them: AVX2 multiplies bytes with
// vpmaddubsw + vpmaddwd, the VNNI targets with one vpdpbusd.
//
// Everything here is self-contained: raw pointers in, raw pointers out, no Swift code
// shared with another module, entry points (`X86Kernels`) reached only through the
// kernel table in `Kernels`. Block layouts are ggml's (ggml-common.h); the scalar
// references in Kernels/Formats say what each kernel computes.
//
// Decode (matrix-vector) multiplies int8 codes with int8 activations (`qe_vector`: one
// scale per 32 values), the way llama.cpp does; the K-quants apply their 6-bit (Q6_K:
// 8-bit) sub-block scales inside the integer pipeline (vpmaddwd) and need one float FMA
// per 32 values, for the activation scale. (llama.cpp's Q8_K activations, one scale per
// 256 values, would save those FMAs; measured here they cost precision that broke the
// prefill-equals-decode test, see BENCHMARKS.md.)
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

/// The f16 at p + offset, for a block whose next 2 bytes are readable too: one 32-bit
/// load (a load-port uop, where the 16-bit insert costs an ALU uop as well) and F16C.
@inline(__always) func loadBlockHalf(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(Int32(bitPattern: loadU32(p, offset)))))
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

/// acc + Σ over each 4 consecutive bytes of u8 `u` times s8 `s` (8 int32 lanes). The
/// AVX2 form requires |u * s + u' * s'| < 32768 for adjacent byte pairs (true for every
/// caller: u <= 127 with |s| <= 127, or u <= 63).
@inline(__always) func dotBytes(_ acc: __m256i, _ u: __m256i, _ s: __m256i) -> __m256i {
    #if QWEN_DOT_AVX512VNNI
    return _mm256_maskz_dpbusd_epi32(0xFF, acc, u, s)   // (_mm256_dpbusd_epi32 is a macro Swift cannot import)
    #elseif QWEN_DOT_AVXVNNI
    return _mm256_dpbusd_avx_epi32(acc, u, s)
    #else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)))
    #endif
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

// MARK: 32-value block formats (against q8)

/// A format of 32-value blocks: how to get its 32 codes as bytes and what they mean.
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

/// One row's running sums: the block products (8 lanes), the min terms, and Σ d x s8
/// for the code offset (multiplied by it once at the end: one FMA per block).
struct Row32Sums<F: Block32> {
    var products = _mm256_setzero_ps()
    var minTerms: Float = 0
    var offsetTerms: Float = 0

    @inline(__always) mutating func add(_: F.Type, _ q: UnsafeRawPointer, _ x: __m256i, _ xScale: Float, _ xSum: Float) {
        let c = F.codes(q)
        let p = F.signedCodes
            ? dotBytes(_mm256_setzero_si256(), _mm256_sign_epi8(c, c), _mm256_sign_epi8(x, c))
            : dotBytes(_mm256_setzero_si256(), c, x)
        let d = loadBlockHalf(q, 0)
        products = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(d * xScale), products)
        if F.hasMin {
            minTerms += minTerm(F.self, d: d, loadBlockHalf(q, 2)) * xSum
        } else if F.offset != 0 {
            offsetTerms += d * xSum
        }
    }

    @inline(__always) var total: Float { hsum(products) + minTerms - F.offset * offsetTerms }
}

/// y[r] = row r · x for `rows` rows of a 32-block format. One row at a time (two rows
/// interleaved halved the hardware prefetcher's throughput from memory), two blocks per
/// step into separate sums so the FMA latency of one chain does not bound the loop.
@inline(__always) func rows32<F: Block32>(_: F.Type, _ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int,
                                         _ v: UnsafePointer<qe_vector>, _ y: UnsafeMutablePointer<Float>) {
    let xq = UnsafeRawPointer(v.pointee.q8!), d8 = v.pointee.d8!, s8 = v.pointee.s8!
    let blocks = cols / 32
    for r in 0..<rows {
        let row = w + r &* rowBytes
        var even = Row32Sums<F>(), odd = Row32Sums<F>()
        var i = 0
        while i &+ 2 <= blocks {
            even.add(F.self, row + i &* F.bytes, load256(xq, i &* 32), d8[i], s8[i])
            odd.add(F.self, row + (i &+ 1) &* F.bytes, load256(xq, (i &+ 1) &* 32), d8[i &+ 1], s8[i &+ 1])
            i &+= 2
        }
        if i < blocks { even.add(F.self, row + i &* F.bytes, load256(xq, i &* 32), d8[i], s8[i]) }
        y[r] = even.total + odd.total
    }
}

/// rows32 for the split-scale layout (`WeightLayout.splitScales`: a row's f16 d of every
/// block, then for Q4_1/Q5_1 every f16 m (Q4_Z/Q8_Z: zero point), then the blocks without them): 8 blocks' scales
/// are converted and multiplied with the activation scales at once, and each block takes
/// its lane with one permute, instead of a convert, a multiply and a broadcast per block.
@inline(__always) func rows32Split<F: Block32>(_: F.Type, _ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int,
                                              _ v: UnsafePointer<qe_vector>, _ y: UnsafeMutablePointer<Float>) {
    let xq = UnsafeRawPointer(v.pointee.q8!), d8 = v.pointee.d8!, s8 = v.pointee.s8!
    let blocks = cols / 32, header = F.hasMin ? 4 : 2, payloadBytes = F.bytes &- header
    for r in 0..<rows {
        let row = w + r &* rowBytes
        let payload = row + (header &* blocks &- header)     // F.codes(payload + i * payloadBytes) reads block i
        var acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps()
        var terms = _mm256_setzero_ps()                      // Σ m s8 (Q4_1, Q5_1, Q4_Z, Q8_Z) or Σ d s8 (code offsets)
        @inline(__always) func product(_ i: Int) -> __m256 {
            let c = F.codes(payload + i &* payloadBytes)
            let x = load256(xq, i &* 32)
            let p = F.signedCodes
                ? dotBytes(_mm256_setzero_si256(), _mm256_sign_epi8(c, c), _mm256_sign_epi8(x, c))
                : dotBytes(_mm256_setzero_si256(), c, x)
            return _mm256_cvtepi32_ps(p)
        }
        var i = 0
        while i &+ 8 <= blocks {
            let d = _mm256_cvtph_ps(load128(row, 2 &* i))
            let scales = _mm256_mul_ps(d, loadFloat8(d8, i))
            if F.hasMin {
                let stored = _mm256_cvtph_ps(load128(row, 2 &* blocks &+ 2 &* i))
                let m = F.minIsZeroPoint ? _mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(d, stored)) : stored
                terms = _mm256_fmadd_ps(m, loadFloat8(s8, i), terms)
            } else if F.offset != 0 {
                terms = _mm256_fmadd_ps(d, loadFloat8(s8, i), terms)
            }
            // Written out so each lane index is a constant (a loop kept them in registers
            // and rebuilt the index vector for every block).
            @inline(__always) func lane(_ k: Int32) -> __m256 { _mm256_permutevar8x32_ps(scales, _mm256_set1_epi32(k)) }
            acc0 = _mm256_fmadd_ps(product(i), lane(0), acc0)
            acc1 = _mm256_fmadd_ps(product(i &+ 1), lane(1), acc1)
            acc0 = _mm256_fmadd_ps(product(i &+ 2), lane(2), acc0)
            acc1 = _mm256_fmadd_ps(product(i &+ 3), lane(3), acc1)
            acc0 = _mm256_fmadd_ps(product(i &+ 4), lane(4), acc0)
            acc1 = _mm256_fmadd_ps(product(i &+ 5), lane(5), acc1)
            acc0 = _mm256_fmadd_ps(product(i &+ 6), lane(6), acc0)
            acc1 = _mm256_fmadd_ps(product(i &+ 7), lane(7), acc1)
            i &+= 8
        }
        var tail: Float = 0
        while i < blocks {
            let d = loadHalf(row, 2 &* i)
            acc0 = _mm256_fmadd_ps(product(i), _mm256_set1_ps(d * d8[i]), acc0)
            if F.hasMin {
                tail += minTerm(F.self, d: d, loadHalf(row, 2 &* blocks &+ 2 &* i)) * s8[i]
            } else {
                tail -= F.offset * d * s8[i]
            }
            i &+= 1
        }
        let extra = F.hasMin ? hsum(terms) : -F.offset * hsum(terms)
        y[r] = hsum(_mm256_add_ps(acc0, acc1)) + extra + tail
    }
}

/// dequantize32 for the split-scale layout.
@inline(__always) func dequantize32Split<F: Block32>(_: F.Type, _ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) {
    let blocks = cols / 32, header = F.hasMin ? 4 : 2, payloadBytes = F.bytes &- header
    let payload = row + (header &* blocks &- header)
    for i in 0..<blocks {
        let c = F.codes(payload + i &* payloadBytes)
        let d = loadHalf(row, 2 &* i)
        let bias = F.hasMin ? minTerm(F.self, d: d, loadHalf(row, 2 &* blocks &+ 2 &* i)) : -F.offset * d
        storeScaled16(_mm256_castsi256_si128(c), signed: F.signedCodes, d, bias, out, i &* 32)
        storeScaled16(upperHalf(c), signed: F.signedCodes, d, bias, out, i &* 32 &+ 16)
    }
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

// MARK: K-quants (against q8)

/// A pshufb mask that broadcasts int16 element i of each 128-bit lane to all 8 of its
/// int16 positions.
@inline(__always) func broadcastInt16Mask(_ i: Int) -> __m256i {
    let lo = Int8(truncatingIfNeeded: 2 &* i), hi = Int8(truncatingIfNeeded: 2 &* i &+ 1)
    let pair = Int16(truncatingIfNeeded: Int(UInt8(bitPattern: lo)) | Int(UInt8(bitPattern: hi)) << 8)
    return _mm256_set1_epi16(pair)
}

/// A pshufb mask that puts byte 2i in the low 8 bytes and byte 2i + 1 in the high 8.
@inline(__always) func scalePairMask(_ i: Int) -> __m128i {
    let lo = Int64(2 &* i) &* 0x0101_0101_0101_0101, hi = Int64(2 &* i &+ 1) &* 0x0101_0101_0101_0101
    return _mm_set_epi64x(hi, lo)
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

/// One Q4_K (or Q5_K, with its fifth bits) block against 256 q8 activations: each
/// 32-value sub-block's codes times activations summed in int32 with its 6-bit scale
/// applied in the integer pipeline (vpmaddubsw, then vpmaddwd with the scale), then
/// scaled by d x the sub-block's activation scale into `acc` (four accumulators, so FMA
/// latency does not bound the loop); the mins term m_j * s8_j into `minAcc`.
@inline(__always) func blockK4(_ q: UnsafeRawPointer, isQ5: Bool, _ x: UnsafeRawPointer, _ d8: UnsafePointer<Float>,
                               _ s8: UnsafePointer<Float>, _ acc: inout (__m256, __m256, __m256, __m256), _ minAcc: inout __m256) {
    let (scales16, mins16) = scalesAndMinsK4(q + 4)
    let d = loadHalf(q, 0), dmin = loadHalf(q, 2)
    let mins = _mm256_mul_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(mins16)))
    minAcc = _mm256_fmadd_ps(mins, loadFloat8(s8, 0), minAcc)
    let scales = _mm256_set_m128i(scales16, scales16)
    let mask = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1)
    let high = isQ5 ? load256(q, 16) : _mm256_setzero_si256()
    let qs = q + (isQ5 ? 48 : 16)
    @inline(__always) func group(_ j: Int) -> (__m256, __m256) {
        let packed = load256(qs, j &* 32)
        var lo = _mm256_and_si256(packed, mask)
        var hi = _mm256_and_si256(_mm256_srli_epi16(packed, 4), mask)
        if isQ5 {
            lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(high, Int32(2 &* j)), one), 4))
            hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(high, Int32(2 &* j &+ 1)), one), 4))
        }
        let pl = _mm256_madd_epi16(_mm256_shuffle_epi8(scales, broadcastInt16Mask(2 &* j)),
                                   _mm256_maddubs_epi16(lo, load256(x, j &* 64)))
        let ph = _mm256_madd_epi16(_mm256_shuffle_epi8(scales, broadcastInt16Mask(2 &* j &+ 1)),
                                   _mm256_maddubs_epi16(hi, load256(x, j &* 64 &+ 32)))
        return (_mm256_cvtepi32_ps(pl), _mm256_cvtepi32_ps(ph))
    }
    var (l, h) = group(0)
    acc.0 = _mm256_fmadd_ps(l, _mm256_set1_ps(d * d8[0]), acc.0); acc.1 = _mm256_fmadd_ps(h, _mm256_set1_ps(d * d8[1]), acc.1)
    (l, h) = group(1)
    acc.2 = _mm256_fmadd_ps(l, _mm256_set1_ps(d * d8[2]), acc.2); acc.3 = _mm256_fmadd_ps(h, _mm256_set1_ps(d * d8[3]), acc.3)
    (l, h) = group(2)
    acc.0 = _mm256_fmadd_ps(l, _mm256_set1_ps(d * d8[4]), acc.0); acc.1 = _mm256_fmadd_ps(h, _mm256_set1_ps(d * d8[5]), acc.1)
    (l, h) = group(3)
    acc.2 = _mm256_fmadd_ps(l, _mm256_set1_ps(d * d8[6]), acc.2); acc.3 = _mm256_fmadd_ps(h, _mm256_set1_ps(d * d8[7]), acc.3)
}

@inline(__always) func rowsK4(isQ5: Bool, _ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int,
                              _ v: UnsafePointer<qe_vector>, _ y: UnsafeMutablePointer<Float>) {
    let xq = UnsafeRawPointer(v.pointee.q8!), d8 = v.pointee.d8!, s8 = v.pointee.s8!
    let blocks = cols / 256, bytes = isQ5 ? 176 : 144
    for r in 0..<rows {
        let row = w + r &* rowBytes
        var acc = (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps())
        var minAcc = _mm256_setzero_ps()
        for i in 0..<blocks {
            blockK4(row + i &* bytes, isQ5: isQ5, xq + i &* 256, d8 + i &* 8, s8 + i &* 8, &acc, &minAcc)
        }
        y[r] = hsum(_mm256_add_ps(_mm256_add_ps(acc.0, acc.1), _mm256_add_ps(acc.2, acc.3))) - hsum(minAcc)
    }
}

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

/// Q6_K rows against q8 activations: per 32 values, |code - 32| x signed activations
/// summed in int32 with the two 16-value int8 scales applied by vpmaddwd, then one FMA
/// with d x the activation scale (four accumulators, one per 32-group of a half).
@inline(__always) func rowsQ6K(_ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int,
                               _ v: UnsafePointer<qe_vector>, _ y: UnsafeMutablePointer<Float>) {
    let xq = UnsafeRawPointer(v.pointee.q8!), d8 = v.pointee.d8!
    let offset = _mm256_set1_epi8(32)
    for r in 0..<rows {
        let row = w + r &* rowBytes
        var acc = (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps())
        for i in 0..<(cols / 256) {
            let q = row + i &* 210, x = xq + i &* 256
            let scaleBytes = load128(q, 192)                       // 16 x int8
            let d = loadHalf(q, 208)
            for half in 0..<2 {
                let (c0, c1, c2, c3) = codesQ6K(q, half: half)
                @inline(__always) func group(_ c: __m256i, _ k: Int) -> __m256 {
                    let signed = _mm256_sub_epi8(c, offset)
                    let scales = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scaleBytes, scalePairMask(4 &* half &+ k)))
                    let products = _mm256_maddubs_epi16(_mm256_sign_epi8(signed, signed),
                                                        _mm256_sign_epi8(load256(x, 128 &* half &+ 32 &* k), signed))
                    return _mm256_cvtepi32_ps(_mm256_madd_epi16(scales, products))
                }
                @inline(__always) func scale(_ k: Int) -> __m256 { _mm256_set1_ps(d * d8[i &* 8 &+ 4 &* half &+ k]) }
                acc.0 = _mm256_fmadd_ps(group(c0, 0), scale(0), acc.0)
                acc.1 = _mm256_fmadd_ps(group(c1, 1), scale(1), acc.1)
                acc.2 = _mm256_fmadd_ps(group(c2, 2), scale(2), acc.2)
                acc.3 = _mm256_fmadd_ps(group(c3, 3), scale(3), acc.3)
            }
        }
        y[r] = hsum(_mm256_add_ps(_mm256_add_ps(acc.0, acc.1), _mm256_add_ps(acc.2, acc.3)))
    }
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

@inline(__always) func rowsFloat<F: FloatRow>(_: F.Type, _ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int,
                                             _ v: UnsafePointer<qe_vector>, _ y: UnsafeMutablePointer<Float>) {
    let x = v.pointee.x!
    for r in 0..<rows {
        let row = w + r &* rowBytes
        var a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps()
        var i = 0
        while i &+ 16 <= cols {
            a0 = _mm256_fmadd_ps(F.load8(row, i), loadFloat8(x, i), a0)
            a1 = _mm256_fmadd_ps(F.load8(row, i &+ 8), loadFloat8(x, i &+ 8), a1)
            i &+= 16
        }
        var total = hsum(_mm256_add_ps(a0, a1))
        while i < cols { total += F.load1(row, i) * x[i]; i &+= 1 }
        y[r] = total
    }
}

@inline(__always) func dequantizeFloat<F: FloatRow>(_: F.Type, _ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) {
    var i = 0
    while i &+ 8 <= cols { storeFloat8(out, i, F.load8(row, i)); i &+= 8 }
    while i < cols { out[i] = F.load1(row, i); i &+= 1 }
}

// MARK: Activation quantizers

/// 32 floats at x -> int8 at q = x * inverse rounded to nearest even; returns Σ q.
@inline(__always) func quantize32(_ x: UnsafePointer<Float>, inverse: Float, _ q: UnsafeMutablePointer<Int8>) -> Int32 {
    let s = _mm256_set1_ps(inverse)
    let i0 = _mm256_cvtps_epi32(_mm256_mul_ps(loadFloat8(x, 0), s))
    let i1 = _mm256_cvtps_epi32(_mm256_mul_ps(loadFloat8(x, 8), s))
    let i2 = _mm256_cvtps_epi32(_mm256_mul_ps(loadFloat8(x, 16), s))
    let i3 = _mm256_cvtps_epi32(_mm256_mul_ps(loadFloat8(x, 24), s))
    let sum = hsum(_mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3)))
    let words = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3))
    let ordered = _mm256_permutevar8x32_epi32(words, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
    _mm256_storeu_si256(UnsafeMutableRawPointer(q).assumingMemoryBound(to: __m256i.self), ordered)
    return sum
}

@inline(__always) func absMax(_ x: UnsafePointer<Float>, _ count: Int) -> Float {
    let signBit = _mm256_set1_ps(-0.0)
    var m = _mm256_setzero_ps()
    var i = 0
    while i < count { m = _mm256_max_ps(m, _mm256_andnot_ps(signBit, loadFloat8(x, i))); i &+= 8 }
    return hmax(m)
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

/// Softmax of scores[length], then out[headDim] = Σ_t scores[t] * values[t] (f16 rows
/// `kvStride` apart), after scores[t] = q · keys[t].
@inline(__always) func attend(_ q: UnsafePointer<Float>, _ keys: UnsafePointer<Float16>, _ values: UnsafePointer<Float16>,
                              _ kvStride: Int, _ length: Int, _ headDim: Int,
                              _ scores: UnsafeMutablePointer<Float>, _ out: UnsafeMutablePointer<Float>) {
    let vectorDim = headDim & ~7
    var maximum = -Float.infinity
    for t in 0..<length {
        let key = UnsafeRawPointer(keys + t &* kvStride)
        var acc = _mm256_setzero_ps()
        var i = 0
        while i < vectorDim { acc = _mm256_fmadd_ps(loadFloat8(q, i), F16.load8(key, i), acc); i &+= 8 }
        var score = hsum(acc)
        while i < headDim { score += q[i] * F16.load1(key, i); i &+= 1 }
        scores[t] = score
        maximum = max(maximum, score)
    }
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
    let inverse = 1 / total
    var i = 0
    while i < headDim { out[i] = 0; i &+= 1 }
    for t in 0..<length {
        let weight = scores[t] * inverse
        let value = UnsafeRawPointer(values + t &* kvStride)
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

/// Signature of every `rows*` entry: y[r] = dot(row r of the matrix at w, x) for r in
/// 0..<rows; rows are `rowBytes` apart and hold `cols` values.
public enum X86Kernels {
    @inline(never) public static func rowsQ8_0(_ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int, _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) { for b in 0..<count { rows32(Q8_0.self, w, rowBytes, cols, rows, v + b, y + b &* yStride) } }
    @inline(never) public static func rowsQ4_0(_ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int, _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) { for b in 0..<count { rows32(Q4_0.self, w, rowBytes, cols, rows, v + b, y + b &* yStride) } }
    @inline(never) public static func rowsQ4_1(_ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int, _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) { for b in 0..<count { rows32(Q4_1.self, w, rowBytes, cols, rows, v + b, y + b &* yStride) } }
    @inline(never) public static func rowsQ5_0(_ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int, _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) { for b in 0..<count { rows32(Q5_0.self, w, rowBytes, cols, rows, v + b, y + b &* yStride) } }
    @inline(never) public static func rowsQ5_1(_ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int, _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) { for b in 0..<count { rows32(Q5_1.self, w, rowBytes, cols, rows, v + b, y + b &* yStride) } }
    @inline(never) public static func rowsQ4_Z(_ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int, _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) { for b in 0..<count { rows32(Q4_Z.self, w, rowBytes, cols, rows, v + b, y + b &* yStride) } }
    @inline(never) public static func rowsQ8_Z(_ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int, _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) { for b in 0..<count { rows32(Q8_Z.self, w, rowBytes, cols, rows, v + b, y + b &* yStride) } }
    @inline(never) public static func rowsQ4_K(_ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int, _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) { for b in 0..<count { rowsK4(isQ5: false, w, rowBytes, cols, rows, v + b, y + b &* yStride) } }
    @inline(never) public static func rowsQ5_K(_ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int, _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) { for b in 0..<count { rowsK4(isQ5: true, w, rowBytes, cols, rows, v + b, y + b &* yStride) } }
    @inline(never) public static func rowsQ6_K(_ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int, _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) { for b in 0..<count { rowsQ6K(w, rowBytes, cols, rows, v + b, y + b &* yStride) } }
    @inline(never) public static func rowsF32(_ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int, _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) { for b in 0..<count { rowsFloat(F32.self, w, rowBytes, cols, rows, v + b, y + b &* yStride) } }
    @inline(never) public static func rowsF16(_ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int, _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) { for b in 0..<count { rowsFloat(F16.self, w, rowBytes, cols, rows, v + b, y + b &* yStride) } }
    @inline(never) public static func rowsBF16(_ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int, _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) { for b in 0..<count { rowsFloat(BF16.self, w, rowBytes, cols, rows, v + b, y + b &* yStride) } }

    /// The same for rows in the split-scale layout (`WeightLayout.splitScales`).
    @inline(never) public static func splitRowsQ8_0(_ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int, _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) { for b in 0..<count { rows32Split(Q8_0.self, w, rowBytes, cols, rows, v + b, y + b &* yStride) } }
    @inline(never) public static func splitRowsQ4_0(_ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int, _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) { for b in 0..<count { rows32Split(Q4_0.self, w, rowBytes, cols, rows, v + b, y + b &* yStride) } }
    @inline(never) public static func splitRowsQ4_1(_ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int, _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) { for b in 0..<count { rows32Split(Q4_1.self, w, rowBytes, cols, rows, v + b, y + b &* yStride) } }
    @inline(never) public static func splitRowsQ5_0(_ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int, _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) { for b in 0..<count { rows32Split(Q5_0.self, w, rowBytes, cols, rows, v + b, y + b &* yStride) } }
    @inline(never) public static func splitRowsQ5_1(_ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int, _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) { for b in 0..<count { rows32Split(Q5_1.self, w, rowBytes, cols, rows, v + b, y + b &* yStride) } }
    @inline(never) public static func splitRowsQ4_Z(_ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int, _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) { for b in 0..<count { rows32Split(Q4_Z.self, w, rowBytes, cols, rows, v + b, y + b &* yStride) } }
    @inline(never) public static func splitRowsQ8_Z(_ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int, _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) { for b in 0..<count { rows32Split(Q8_Z.self, w, rowBytes, cols, rows, v + b, y + b &* yStride) } }

    /// out[cols] = one dequantized row.
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
    @inline(never) public static func splitDequantizeQ8_0(_ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) { dequantize32Split(Q8_0.self, row, cols, out) }
    @inline(never) public static func splitDequantizeQ4_0(_ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) { dequantize32Split(Q4_0.self, row, cols, out) }
    @inline(never) public static func splitDequantizeQ4_1(_ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) { dequantize32Split(Q4_1.self, row, cols, out) }
    @inline(never) public static func splitDequantizeQ5_0(_ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) { dequantize32Split(Q5_0.self, row, cols, out) }
    @inline(never) public static func splitDequantizeQ5_1(_ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) { dequantize32Split(Q5_1.self, row, cols, out) }
    @inline(never) public static func splitDequantizeQ4_Z(_ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) { dequantize32Split(Q4_Z.self, row, cols, out) }
    @inline(never) public static func splitDequantizeQ8_Z(_ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) { dequantize32Split(Q8_Z.self, row, cols, out) }
    @inline(never) public static func dequantizeF32(_ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) { dequantizeFloat(F32.self, row, cols, out) }
    @inline(never) public static func dequantizeF16(_ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) { dequantizeFloat(F16.self, row, cols, out) }
    @inline(never) public static func dequantizeBF16(_ row: UnsafeRawPointer, _ cols: Int, _ out: UnsafeMutablePointer<Float>) { dequantizeFloat(BF16.self, row, cols, out) }

    /// Causal attention of one query head (see Kernels' `attendHead`).
    @inline(never) public static func attendHead(_ q: UnsafePointer<Float>, _ keys: UnsafePointer<Float16>, _ values: UnsafePointer<Float16>,
                                                 _ kvStride: Int, _ length: Int, _ headDim: Int,
                                                 _ scores: UnsafeMutablePointer<Float>, _ out: UnsafeMutablePointer<Float>) {
        attend(q, keys, values, kvStride, length, headDim, scores, out)
    }

    /// gate[i] = silu(gate[i]) * up[i] for i in 0..<n.
    @inline(never) public static func swiGLU(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, _ n: Int) {
        swiGLU8(gate, up, n)
    }

    /// x[cols] (cols a multiple of 32) -> q8[cols], d8[cols/32], s8[cols/32]: per 32
    /// values d = max|x| / 127, q = round-to-nearest-even(x / d), s = d * Σ q.
    @inline(never) public static func quantizeQ8(_ x: UnsafePointer<Float>, _ cols: Int, _ q8: UnsafeMutablePointer<Int8>,
                                                 _ d8: UnsafeMutablePointer<Float>, _ s8: UnsafeMutablePointer<Float>) {
        for b in 0..<(cols / 32) {
            let d = absMax(x + b &* 32, 32) / 127
            let sum = quantize32(x + b &* 32, inverse: d > 0 ? 1 / d : 0, q8 + b &* 32)
            d8[b] = d
            s8[b] = d * Float(sum)
        }
    }
}
#endif
