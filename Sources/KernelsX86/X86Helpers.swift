// Small vector helpers of the x86 kernels (X86Kernels.swift says how these sources are
// compiled), internal to each compiled copy.
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
#endif
