// Integer dot products for decode, the way llama.cpp computes them: x is quantized
// once per matrix-vector product to int8 in blocks of 32 (a scale per block), and
// each weight block is multiplied with it by AVX-512 VNNI `vpdpbusd` (32 u8 x s8
// products summed into 8 int32 lanes per instruction) instead of widening every
// weight to f32. This costs ~8-bit activation precision (as in llama.cpp) and is
// about twice as fast; KernelsTests hold it to the f32 reference within that bound.
// Every quantized format has this path; f32/f16/bf16, and builds without
// QWEN_AVX512, use the f32 SIMD path.

/// x[cols] as int8 blocks of 32 (Q8_0-style): values, one f32 scale per block, and
/// per block scale x sum of its int8 values (for weight formats with a min, Q4_K).
public final class QuantizedActivations {
    public private(set) var capacity: Int
    var values: UnsafeMutablePointer<Int8>     // [capacity]
    var scales: UnsafeMutablePointer<Float>    // [capacity / 32]
    var scaledSums: UnsafeMutablePointer<Float> // [capacity / 32]

    public init(capacity: Int) {
        self.capacity = max(32, capacity)
        values = .allocate(capacity: self.capacity)
        scales = .allocate(capacity: self.capacity / 32)
        scaledSums = .allocate(capacity: self.capacity / 32)
    }

    deinit {
        values.deallocate()
        scales.deallocate()
        scaledSums.deallocate()
    }

    /// The buffers as a plain value, for the workers (no reference counting in the loop).
    var view: QuantizedView { QuantizedView(values: values, scales: scales, scaledSums: scaledSums) }

    /// Quantizes x[count] (count a multiple of 32): scale = max|x| / 127, round to nearest.
    public func quantize(_ x: UnsafePointer<Float>, count: Int) {
        if count > capacity {
            values.deallocate(); scales.deallocate(); scaledSums.deallocate()
            capacity = count
            values = .allocate(capacity: count)
            scales = .allocate(capacity: count / 32)
            scaledSums = .allocate(capacity: count / 32)
        }
        for b in 0..<(count / 32) {
            let lo = loadFloats(x, b &* 32), hi = loadFloats(x, b &* 32 &+ 16)
            let maximum = absMax(lo, hi)
            let scale = maximum / 127
            scales[b] = scale
            let inverse = F16x(repeating: maximum > 0 ? 1 / scale : 0)
            let qlo = roundToInt32(lo * inverse)
            let qhi = roundToInt32(hi * inverse)
            scaledSums[b] = scale * Float(laneSum(qlo &+ qhi))
            UnsafeMutableRawPointer(values + (b &* 32)).storeBytes(of: narrowToInt8(qlo), as: SIMD16<Int8>.self)
            UnsafeMutableRawPointer(values + (b &* 32 &+ 16)).storeBytes(of: narrowToInt8(qhi), as: SIMD16<Int8>.self)
        }
    }
}

/// Pointers into a `QuantizedActivations` (valid while it lives).
struct QuantizedView {
    let values: UnsafeMutablePointer<Int8>
    let scales: UnsafeMutablePointer<Float>
    let scaledSums: UnsafeMutablePointer<Float>
}

extension GGMLType {
    /// Whether `int8Dot` serves this format in this build.
    public var hasInt8Path: Bool {
        #if QWEN_AVX512
        switch self {
        case .q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q4_K, .q5_K, .q6_K: return true
        case .f32, .f16, .bf16: return false
        }
        #else
        return false
        #endif
    }
}

#if QWEN_AVX512
import _Builtin_intrinsics.intel

@inline(__always)
func load256(_ p: UnsafeRawPointer, _ offset: Int) -> __m256i {
    p.loadUnaligned(fromByteOffset: offset, as: __m256i.self)
}

/// Σ over 32 bytes of u8 weights x s8 activations, as 8 int32 lanes (4 products each).
@inline(__always)
func dotBytes(_ weights: __m256i, _ activations: __m256i) -> __m256 {
    // (_mm256_dpbusd_epi32 is a C macro Swift cannot import; the all-lanes masked form is the same instruction.)
    _mm256_cvtepi32_ps(_mm256_maskz_dpbusd_epi32(0xFF, _mm256_setzero_si256(), weights, activations))
}

/// 16 packed nibble bytes -> 32 bytes: low nibbles first, then high nibbles.
@inline(__always)
func unpackNibbles(_ p: UnsafeRawPointer, _ offset: Int) -> __m256i {
    let packed = p.loadUnaligned(fromByteOffset: offset, as: __m128i.self)
    let mask = _mm_set1_epi8(0x0F)
    let lo = _mm_and_si128(packed, mask)
    let hi = _mm_and_si128(_mm_srli_epi16(packed, 4), mask)
    return _mm256_set_m128i(hi, lo)
}

/// Dot product of row `r` of `w` with activations quantized by `QuantizedActivations`.
@inline(__always)
func int8Dot(_ w: WeightMatrix, row r: Int, _ a: QuantizedView) -> Float {
    let row = w.row(r)
    let xq = UnsafeRawPointer(a.values)
    var acc = _mm256_setzero_ps()
    var correction: Float = 0     // offsets of unsigned weight codes, subtracted at the end
    switch w.type {
    case .q8_0:
        for b in 0..<(w.cols / 32) {
            let q = row + b &* 34
            let weights = load256(q, 2)
            let x = load256(xq, b &* 32)
            // vpdpbusd multiplies u8 by s8: move the weights' signs onto x.
            let products = dotBytes(_mm256_abs_epi8(weights), _mm256_sign_epi8(x, weights))
            acc = _mm256_fmadd_ps(products, _mm256_set1_ps(loadHalf(q, 0) * a.scales[b]), acc)
        }
    case .q5_0:
        // Signed codes q - 16 directly (llama.cpp's trick): nibble | 0xF0 where the
        // fifth bit is clear, nibble where it is set; then the Q8_0 sign trick.
        let clearHigh = _mm256_set1_epi8(-16)   // 0xF0
        for b in 0..<(w.cols / 32) {
            let q = row + b &* 22
            let bits = q.loadUnaligned(fromByteOffset: 2, as: UInt32.self)
            let codes = _mm256_or_si256(unpackNibbles(q, 6), _mm256_andnot_si256(_mm256_movm_epi8(bits), clearHigh))
            let x = load256(xq, b &* 32)
            let products = dotBytes(_mm256_abs_epi8(codes), _mm256_sign_epi8(x, codes))
            acc = _mm256_fmadd_ps(products, _mm256_set1_ps(loadHalf(q, 0) * a.scales[b]), acc)
        }
    case .q4_0:
        let eight = _mm256_set1_epi8(8)
        for b in 0..<(w.cols / 32) {
            let q = row + b &* 18
            let codes = _mm256_sub_epi8(unpackNibbles(q, 2), eight)     // -8...7
            let x = load256(xq, b &* 32)
            let products = dotBytes(_mm256_abs_epi8(codes), _mm256_sign_epi8(x, codes))
            acc = _mm256_fmadd_ps(products, _mm256_set1_ps(loadHalf(q, 0) * a.scales[b]), acc)
        }
    case .q4_1, .q5_1:
        // Unsigned codes (0...15, or 0...31 with the fifth bit) times d, plus the min m:
        // the min contributes m * sum(x), which the activations carry per block.
        let isQ5 = w.type == .q5_1
        let bytes = isQ5 ? 24 : 20
        let high = _mm256_set1_epi8(0x10)
        for b in 0..<(w.cols / 32) {
            let q = row + b &* bytes
            var codes = unpackNibbles(q, isQ5 ? 8 : 4)
            if isQ5 {
                let bits = q.loadUnaligned(fromByteOffset: 4, as: UInt32.self)
                codes = _mm256_or_si256(codes, _mm256_and_si256(_mm256_movm_epi8(bits), high))
            }
            acc = _mm256_fmadd_ps(dotBytes(codes, load256(xq, b &* 32)), _mm256_set1_ps(loadHalf(q, 0) * a.scales[b]), acc)
            correction -= loadHalf(q, 2) * a.scaledSums[b]
        }
    case .q4_K, .q5_K:
        let isQ5 = w.type == .q5_K
        let bytes = w.type.blockBytes
        let mask = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1)
        for b in 0..<(w.cols / 256) {
            let q = row + b &* bytes
            let d = loadHalf(q, 0), dmin = loadHalf(q, 2)
            let highBits = isQ5 ? load256(q, 16) : _mm256_setzero_si256()  // Q5_K: bit j of byte l is the fifth bit of element 32 j + l
            let ql = isQ5 ? 48 : 16
            // Sub-block `sub` (32 codes, 0...15 or 0...31) against activation block b * 8 + sub.
            @inline(__always) func accumulate(_ nibbles: __m256i, _ sub: Int) {
                let xb = b &* 8 &+ sub
                let codes = isQ5
                    ? _mm256_or_si256(nibbles, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(highBits, Int32(sub)), one), 4))
                    : nibbles
                let (sc, m) = Reference.scaleMinK4(sub, q + 4)
                acc = _mm256_fmadd_ps(dotBytes(codes, load256(xq, xb &* 32)), _mm256_set1_ps(d * sc * a.scales[xb]), acc)
                correction += dmin * m * a.scaledSums[xb]
            }
            for group in 0..<4 {
                let packed = load256(q, ql &+ group &* 32)
                accumulate(_mm256_and_si256(packed, mask), 2 &* group)
                accumulate(_mm256_and_si256(_mm256_srli_epi16(packed, 4), mask), 2 &* group &+ 1)
            }
        }
    case .q6_K:
        let low4 = _mm256_set1_epi8(0x0F), low2 = _mm256_set1_epi8(0x03), offset = _mm256_set1_epi8(32)
        for b in 0..<(w.cols / 256) {
            let q = row + b &* 210
            let d = loadHalf(q, 208)
            for half in 0..<2 {
                let ql = q + 64 &* half, qh = q + (128 &+ 32 &* half), sc = q + (192 &+ 8 &* half)
                let l0 = load256(ql, 0), l1 = load256(ql, 32), h = load256(qh, 0)
                // Group g: 32 codes (0...63, minus 32 to make them signed) at element
                // offset 32 g, activation block b * 8 + half * 4 + g, scales sc[2g]
                // (elements 0-15, lanes 0-3) and sc[2g + 1] (elements 16-31, lanes 4-7).
                @inline(__always) func accumulate(_ codes: __m256i, _ g: Int) {
                    let xb = b &* 8 &+ half &* 4 &+ g
                    let s0 = d * Float(sc.load(fromByteOffset: 2 &* g, as: Int8.self)) * a.scales[xb]
                    let s1 = d * Float(sc.load(fromByteOffset: 2 &* g &+ 1, as: Int8.self)) * a.scales[xb]
                    let signed = _mm256_sub_epi8(codes, offset)
                    let x = load256(xq, xb &* 32)
                    let products = dotBytes(_mm256_abs_epi8(signed), _mm256_sign_epi8(x, signed))
                    acc = _mm256_fmadd_ps(products, _mm256_setr_ps(s0, s0, s0, s0, s1, s1, s1, s1), acc)
                }
                accumulate(_mm256_or_si256(_mm256_and_si256(l0, low4), _mm256_slli_epi16(_mm256_and_si256(h, low2), 4)), 0)
                accumulate(_mm256_or_si256(_mm256_and_si256(l1, low4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), low2), 4)), 1)
                accumulate(_mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), low2), 4)), 2)
                accumulate(_mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), low2), 4)), 3)
            }
        }
    case .f32, .f16, .bf16:
        return 0     // no int8 path (hasInt8Path is false); fastDot never gets here
    }
    return acc.sum() - correction
}
#endif

/// Dot product through the int8 path when the format has one in this build, else f32.
@inline(__always)
func fastDot(_ w: WeightMatrix, row r: Int, _ x: UnsafePointer<Float>, _ a: QuantizedView?) -> Float {
    #if QWEN_AVX512
    if let a { return int8Dot(w, row: r, a) }
    #endif
    return dot(w, row: r, x)
}
