// Decode of quantized rows in the interleaved layout times a batch of int8 vectors, the
// 256-bit kernels of every x86 target (X86Kernels.swift says how these sources are
// compiled; the AVX-512 target's wider kernels build on these in Decode512.swift and
// Prefill512.swift).
#if arch(x86_64)
import KernelABI
import _Builtin_intrinsics.intel

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

/// Vectors from which a batched decode kernel asks for its weights `batchPrefetchDistance`
/// bytes ahead of the group it is computing (`prefetchAhead`). One vector's products are
/// bound by the memory's bandwidth and the hardware prefetcher keeps up with them; a batch
/// of several spends long enough on each group that the loads of the next ones start late
/// and the core waits for memory between bursts of arithmetic instead of overlapping the
/// two. Zen 4, default model, decode step over the model's matrices, 2 threads (noisy
/// host, three to five rounds): AVX-512 target B=8 28.1-32.4 -> 24.6-27.3 ms (ffn_down
/// 7.7-9.2 -> 5.7-6.7, output head 7.8-8.4 -> 6.5-6.9), B=4 17.9-20.3 -> 17.4-19.9; AVX2
/// target B=4 22.8-24.1 -> 21.9-23.5 (ffn_down 7.1-7.4 -> 5.1-5.5), B=8 37.7-40.4 ->
/// 36.4-37.8; B=2 alike within the noise, so from 4 (BENCHMARKS.md).
let batchPrefetchMinimumBatch = 4
/// 4, 8 and 16 KB measured alike (B=8 step 26.1, 27.3, 26.6 ms); 2 KB 28.7.
let batchPrefetchDistance = 8192

/// Asks for the `bytes` bytes `batchPrefetchDistance` past p (ahead in p's row stream)
/// when `far`, a cache line at a time.
@inline(__always) func prefetchAhead(_ p: UnsafeRawPointer, bytes: Int, far: Bool) {
    guard far else { return }
    var offset = 0
    while offset < bytes {
        qe_prefetch(p + (batchPrefetchDistance &+ offset))
        offset &+= 64
    }
}

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

/// A group of g blocks of a 32-value row, its codes decoded (`Group32`).
struct Group32 {
    let d: __m256, m: __m256
    let codes: CodeVectors, signs: CodeVectors
    let offset: Int
}

/// Decodes the group of g blocks at q: scales, offsets and codes, shared by every vector.
@inline(__always) func decodeGroup32<F: Lane32>(_: F.Type, _ q: UnsafeRawPointer, size g: Int) -> Group32 {
    let d = laneHalves(q, 0, g)
    var m = _mm256_setzero_ps()
    if F.fields == 2 {
        let second = laneHalves(q, 2 &* g, g)
        m = F.zeroPoint ? _mm256_fnmadd_ps(d, second, _mm256_setzero_ps()) : second   // -d z is exact
    }
    let stored = decodeCodes(bits: F.bits, q + 2 &* F.fields &* g, size: g)
    let signed = !hasVNNI && F.bits == 8
    let (codes, signs) = signed ? signedCodes(stored) : (stored, stored)
    return Group32(d: d, m: m, codes: codes, signs: signs, offset: signed ? 0 : F.offset)
}

/// sum + the group against one vector's records at x (this group's, `size` g blocks).
@inline(__always) func dotGroup32<F: Lane32>(_: F.Type, _ group: Group32, size g: Int, _ x: UnsafeRawPointer, _ sum: __m256) -> __m256 {
    let lanes = x + 32 &* g
    var acc = group.offset != 0 ? load256(lanes, Record.offsetTerm(group.offset)) : _mm256_setzero_si256()
    acc = dotCodes(acc, group.codes, x, count: g, bits: F.bits, signs: group.signs)
    var result = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), _mm256_mul_ps(group.d, loadFloat8(lanes.assumingMemoryBound(to: Float.self), 0)), sum)
    if F.fields == 2 { result = _mm256_fmadd_ps(group.m, loadFloat8((lanes + Record.s8).assumingMemoryBound(to: Float.self), 0), result) }
    return result
}

/// One group of g blocks of a 32-value row at q against every vector of the batch, whose
/// records for this group start `record` bytes into their lanes.
@inline(__always) func group32<F: Lane32>(_: F.Type, _ q: UnsafeRawPointer, size g: Int, _ batch: Batch, _ record: Int) {
    let group = decodeGroup32(F.self, q, size: g)
    for b in 0..<batch.count {
        batch.sums[b] = dotGroup32(F.self, group, size: g, batch.records[b] + record, batch.sums[b])
    }
}

/// y[r] = the lane sum of rowSum(r, x) for r in 0..<rows, for a batch of one vector
/// (records at x): each row's sum stays in a register, where the batch's scratch would put
/// a store and a reload on every group's dependency chain.
@inline(__always) func rowsOneVector(_ v: UnsafePointer<qe_vector>, rows: Int, _ y: UnsafeMutablePointer<Float>,
                                     _ rowSum: (_ r: Int, _ x: UnsafeRawPointer) -> __m256) {
    let x = UnsafeRawPointer(v[0].lanes!)
    for r in 0..<rows { y[r] = hsum(rowSum(r, x)) }
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
    if count == 1 {
        return rowsOneVector(v, rows: rows, y) { r, x in
            var sum = _mm256_setzero_ps()
            forEachLaneGroup(blocks: cols / 32, blockBytes: F.blockBytes) { offset, g, record in
                sum = dotGroup32(F.self, decodeGroup32(F.self, w + (r &* rowBytes &+ offset), size: g), size: g, x + record, sum)
            }
            return sum
        }
    }
    withBatch(v, count) { batch in
        let far = count >= batchPrefetchMinimumBatch
        for r in 0..<rows {
            let row = w + r &* rowBytes
            forEachLaneGroup(blocks: cols / 32, blockBytes: F.blockBytes) { offset, g, record in
                prefetchAhead(row + offset, bytes: g &* F.blockBytes, far: far)
                group32(F.self, row + offset, size: g, batch, record)
            }
            batch.finishRow(y + r, yStride)
        }
    }
}

/// A Q4_K/Q5_K block's per-lane (sub-block) factors: d * scale and -dmin * min. The
/// block starts with d, dmin (f16) and twelve bytes of 6-bit scales and mins (ggml's
/// get_scale_min_k4): with u0, u1, u2 its three 32-bit words, scales 0-3 = u0 & 0x3f..,
/// mins 0-3 = u1 & 0x3f.., scales 4-7 = (u2 & 0x0f..) | ((u0 >> 6) & 0x03..) << 4, mins 4-7
/// = ((u2 >> 4) & 0x0f..) | ((u1 >> 6) & 0x03..) << 4. All from one 16-byte load (its last
/// four bytes are the block's first codes, unused).
@inline(__always) func factorsK4(_ q: UnsafeRawPointer) -> (scales: __m256, mins: __m256) {
    let head = load128(q, 0)                                               // [d|dmin, u0, u1, u2]
    let words = _mm_shuffle_epi8(head, _mm_setr_epi8(4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, -1, -1, -1, -1))   // [u0, u1, u2, 0]
    let low = _mm_and_si128(words, _mm_set1_epi8(0x3F))                     // [scales 0-3, mins 0-3, ...]
    let top = _mm_slli_epi32(_mm_and_si128(_mm_srli_epi32(words, 6), _mm_set1_epi8(0x03)), 4)
    let u2 = _mm_shuffle_epi8(head, _mm_setr_epi8(12, 13, 14, 15, 12, 13, 14, 15, -1, -1, -1, -1, -1, -1, -1, -1))
    let nibbles = _mm_and_si128(_mm_srlv_epi32(u2, _mm_setr_epi32(0, 4, 0, 0)), _mm_set1_epi8(0x0F))
    let high = _mm_or_si128(nibbles, top)                                  // [scales 4-7, mins 4-7, ...]
    let both = _mm_unpacklo_epi32(low, high)                               // [scales 0-3, 4-7, mins 0-3, 4-7]
    let factors = _mm_cvtph_ps(head)                                       // [d, dmin, ...]
    let d = _mm256_broadcastss_ps(factors)
    let dmin = _mm256_broadcastss_ps(_mm_movehdup_ps(factors))
    let scales = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(both)))
    let mins = _mm256_mul_ps(_mm256_xor_ps(dmin, _mm256_set1_ps(-0.0)), _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_unpackhi_epi64(both, both))))
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

/// sum + a Q4_K/Q5_K block (its factors and codes) against one vector's records at x.
@inline(__always) func dotBlockK4(_ scales: __m256, _ mins: __m256, _ codes: CodeVectors, bits: Int, _ x: UnsafeRawPointer,
                                  _ sum: __m256) -> __m256 {
    let lanes = (x + 256).assumingMemoryBound(to: Float.self)
    let acc = dotCodes(_mm256_setzero_si256(), codes, x, count: 8, bits: bits, signs: codes)
    let result = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), _mm256_mul_ps(scales, loadFloat8(lanes, 0)), sum)
    return _mm256_fmadd_ps(mins, loadFloat8(lanes, Record.s8 / 4), result)
}

/// rowsLanes32 for Q4_K / Q5_K: each 256-value block is a group of 8 sub-blocks.
@inline(__always) func rowsLanesK4(isQ5: Bool, _ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int,
                                   _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
    let bytes = isQ5 ? 176 : 144, bits = isQ5 ? 5 : 4
    if count == 1 {
        return rowsOneVector(v, rows: rows, y) { r, x in
            var sum = _mm256_setzero_ps()
            for i in 0..<(cols / 256) {
                let q = w + (r &* rowBytes &+ i &* bytes)
                let (scales, mins) = factorsK4(q)
                sum = dotBlockK4(scales, mins, decodeCodes(bits: bits, q + 16, size: 8), bits: bits, x + i &* (256 &+ Record.lanes), sum)
            }
            return sum
        }
    }
    withBatch(v, count) { batch in
        let far = count >= batchPrefetchMinimumBatch
        for r in 0..<rows {
            let row = w + r &* rowBytes
            for i in 0..<(cols / 256) {
                let q = row + i &* bytes, record = i &* (256 &+ Record.lanes)
                prefetchAhead(q, bytes: bytes, far: far)
                let (scales, mins) = factorsK4(q)
                let codes = decodeCodes(bits: bits, q + 16, size: 8)
                for b in 0..<count {
                    batch.sums[b] = dotBlockK4(scales, mins, codes, bits: bits, batch.records[b] + record, batch.sums[b])
                }
            }
            batch.finishRow(y + r, yStride)
        }
    }
}

/// A Q6_K block's factors and codes: code vectors 0-3 are the first 16 values of each
/// sub-block of 32 (lane), 4-7 the second 16, each with its own scale and offset 32.
@inline(__always) func decodeBlockQ6K(_ q: UnsafeRawPointer) -> (first: __m256, second: __m256, low: CodeVectors, high: CodeVectors) {
    let (first, second) = factorsQ6K(q)
    let c = decodeCodes(bits: 6, q + 18, size: 8)
    let z = _mm256_setzero_si256()
    return (first, second, (c.0, c.1, c.2, c.3, z, z, z, z), (c.4, c.5, c.6, c.7, z, z, z, z))
}

/// sum + a decoded Q6_K block against one vector's records at x.
@inline(__always) func dotBlockQ6K(_ block: (first: __m256, second: __m256, low: CodeVectors, high: CodeVectors),
                                   _ x: UnsafeRawPointer, _ sum: __m256) -> __m256 {
    let lanes = x + 256
    let a = dotCodes(load256(lanes, Record.offset32Low), block.low, x, count: 4, bits: 6, signs: block.low)
    let h = dotCodes(load256(lanes, Record.offset32High), block.high, x + 128, count: 4, bits: 6, signs: block.high)
    let t = _mm256_fmadd_ps(_mm256_cvtepi32_ps(h), block.second, _mm256_mul_ps(_mm256_cvtepi32_ps(a), block.first))
    return _mm256_fmadd_ps(t, loadFloat8(lanes.assumingMemoryBound(to: Float.self), 0), sum)
}

/// rowsLanes32 for Q6_K (blocks of `decodeBlockQ6K`).
@inline(__always) func rowsLanesQ6K(_ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int,
                                    _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
    if count == 1 {
        return rowsOneVector(v, rows: rows, y) { r, x in
            var sum = _mm256_setzero_ps()
            for i in 0..<(cols / 256) {
                sum = dotBlockQ6K(decodeBlockQ6K(w + (r &* rowBytes &+ i &* 210)), x + i &* (256 &+ Record.lanes), sum)
            }
            return sum
        }
    }
    withBatch(v, count) { batch in
        let far = count >= batchPrefetchMinimumBatch
        for r in 0..<rows {
            let row = w + r &* rowBytes
            for i in 0..<(cols / 256) {
                let q = row + i &* 210, record = i &* (256 &+ Record.lanes)
                prefetchAhead(q, bytes: 210, far: far)
                let block = decodeBlockQ6K(q)
                for b in 0..<count { batch.sums[b] = dotBlockQ6K(block, batch.records[b] + record, batch.sums[b]) }
            }
            batch.finishRow(y + r, yStride)
        }
    }
}
#endif
