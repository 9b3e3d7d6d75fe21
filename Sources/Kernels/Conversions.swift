// Lane conversions the kernels need on every block. The stdlib's generic SIMD
// conversions do not reliably inline into single instructions, so with AVX-512
// (QWEN_AVX512, set by the Makefile together with -target-cpu native) they map to
// vpmovzxbd / vpmovsxbd / vcvtdq2ps / vcvtph2ps; elsewhere the generic forms run.
#if QWEN_AVX512
import _Builtin_intrinsics.intel

@inline(__always)
func widen(_ v: SIMD16<UInt8>) -> SIMD16<Int32> {
    unsafeBitCast(_mm512_cvtepu8_epi32(unsafeBitCast(v, to: __m128i.self)), to: SIMD16<Int32>.self)
}

@inline(__always)
func widen(_ v: SIMD16<Int8>) -> SIMD16<Int32> {
    unsafeBitCast(_mm512_cvtepi8_epi32(unsafeBitCast(v, to: __m128i.self)), to: SIMD16<Int32>.self)
}

@inline(__always)
func widen(_ v: SIMD16<UInt16>) -> SIMD16<Int32> {
    unsafeBitCast(_mm512_cvtepu16_epi32(unsafeBitCast(v, to: __m256i.self)), to: SIMD16<Int32>.self)
}

@inline(__always)
func toFloat(_ v: SIMD16<Int32>) -> SIMD16<Float> {
    _mm512_cvtepi32_ps(unsafeBitCast(v, to: __m512i.self))
}

@inline(__always)
func halfToFloat(_ v: SIMD16<UInt16>) -> SIMD16<Float> {
    _mm512_cvtph_ps(unsafeBitCast(v, to: __m256i.self))
}

/// Round to nearest (ties to even), as vcvtps2dq does under the default rounding mode.
@inline(__always)
func roundToInt32(_ v: SIMD16<Float>) -> SIMD16<Int32> {
    unsafeBitCast(_mm512_cvtps_epi32(v), to: SIMD16<Int32>.self)
}

/// max |v_i| over both vectors.
@inline(__always)
func absMax(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> Float {
    _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(b)))
}

/// Sum of the lanes.
@inline(__always)
func laneSum(_ v: SIMD16<Int32>) -> Int32 {
    _mm512_reduce_add_epi32(unsafeBitCast(v, to: __m512i.self))
}

/// Keeps the low byte of each lane (values already in -127...127).
@inline(__always)
func narrowToInt8(_ v: SIMD16<Int32>) -> SIMD16<Int8> {
    unsafeBitCast(_mm512_cvtepi32_epi8(unsafeBitCast(v, to: __m512i.self)), to: SIMD16<Int8>.self)
}
#else
@inline(__always)
func roundToInt32(_ v: SIMD16<Float>) -> SIMD16<Int32> { SIMD16<Int32>(v.rounded(.toNearestOrEven)) }

@inline(__always)
func narrowToInt8(_ v: SIMD16<Int32>) -> SIMD16<Int8> { SIMD16<Int8>(truncatingIfNeeded: v) }

@inline(__always)
func absMax(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> Float { max(pointwiseMax(a, -a).max(), pointwiseMax(b, -b).max()) }

@inline(__always)
func laneSum(_ v: SIMD16<Int32>) -> Int32 { v.wrappedSum() }

@inline(__always)
func widen(_ v: SIMD16<UInt8>) -> SIMD16<Int32> { SIMD16<Int32>(truncatingIfNeeded: v) }

@inline(__always)
func widen(_ v: SIMD16<Int8>) -> SIMD16<Int32> { SIMD16<Int32>(truncatingIfNeeded: v) }

@inline(__always)
func widen(_ v: SIMD16<UInt16>) -> SIMD16<Int32> { SIMD16<Int32>(truncatingIfNeeded: v) }

@inline(__always)
func toFloat(_ v: SIMD16<Int32>) -> SIMD16<Float> { SIMD16<Float>(v) }

@inline(__always)
func halfToFloat(_ v: SIMD16<UInt16>) -> SIMD16<Float> {
    SIMD16<Float>(unsafeBitCast(v, to: SIMD16<Float16>.self))
}
#endif

/// Values 0...255 as floats.
@inline(__always)
func toFloat(_ v: SIMD16<UInt8>) -> SIMD16<Float> { toFloat(widen(v)) }
