// What a weight format tells the kernel layer. Each format has one file here with its
// block layout (as in ggml-common.h), its scalar reference (written from ggml's
// `dequantize_row_*`, the definition every fast path is tested against) and the decoder
// the portable (generic) kernels use. The per-instruction-set kernels (Sources/KernelsX86)
// decode the same layouts with SIMD instructions.

/// A format of 32-value blocks; its int8 kernels read q8 activations (one scale per 32).
protocol Block32Format {
    static var blockBytes: Int { get }
    /// Scalar reference: y[32] = the block's values.
    static func reference(_ block: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>)
    /// Generic path: codes[32] and (d, m) with value_i = d * codes_i + m.
    static func decode(_ block: UnsafeRawPointer, _ codes: UnsafeMutablePointer<Int8>) -> (d: Float, m: Float)
}

/// A K-quant format of 256-value blocks; its int8 kernels read q8 activations too, with the
/// format's integer sub-block scales applied before the activation scale.
protocol Block256Format {
    static var blockBytes: Int { get }
    /// Scalar reference: y[256] = the block's values.
    static func reference(_ block: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>)
    /// Generic path: codes[256], scales[16], mins[16] (one per 16 values) and (d, dmin) with
    /// value_i = d * scales[i / 16] * codes_i - dmin * mins[i / 16].
    static func decode(_ block: UnsafeRawPointer, _ codes: UnsafeMutablePointer<Int8>,
                       _ scales: UnsafeMutablePointer<Int32>, _ mins: UnsafeMutablePointer<Int32>) -> (d: Float, dmin: Float)
}

@inline(__always)
func byte(_ p: UnsafeRawPointer, _ i: Int) -> Int { Int(p.load(fromByteOffset: i, as: UInt8.self)) }

/// ggml's get_scale_min_k4: the 6-bit scale and min of sub-block j of a Q4_K/Q5_K block
/// (12 bytes at q).
@inline(__always)
func scaleMinK4(_ j: Int, _ q: UnsafeRawPointer) -> (Int, Int) {
    if j < 4 { return (byte(q, j) & 63, byte(q, j + 4) & 63) }
    return ((byte(q, j + 4) & 0xF) | ((byte(q, j - 4) >> 6) << 4), (byte(q, j + 4) >> 4) | ((byte(q, j) >> 6) << 4))
}
