// What a weight format tells the kernel layer. Each format has one file here with its
// block layout (as in ggml-common.h), its scalar reference (written from ggml's
// `dequantize_row_*`, the definition every fast path is tested against), the decoder
// the portable (generic) kernels use, and how its blocks split into the codes and fields
// of the interleaved layout the decode kernels read (`WeightLayout.interleaved`,
// Interleave.swift). The per-instruction-set kernels (Sources/KernelsX86) decode that
// layout with SIMD instructions.

/// A format of 32-value blocks; its int8 kernels read q8 activations (one scale per 32).
protocol Block32Format {
    static var blockBytes: Int { get }
    /// Scalar reference: y[32] = the block's values.
    static func reference(_ block: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>)
    /// Generic path: codes[32] and (d, m) with value_i = d * codes_i + m.
    static func decode(_ block: UnsafeRawPointer, _ codes: UnsafeMutablePointer<Int8>) -> (d: Float, m: Float)

    /// Interleaved layout: the block's f16 fields (1: d; 2: d and m or a zero point).
    static var fields: Int { get }
    /// Interleaved layout: bits of each stored code (4, 5 or 8).
    static var codeBits: Int { get }
    /// The block as the interleaved layout stores it: codes[32] in column order (u8, below
    /// 2^codeBits; 8-bit formats store int8 c as c ^ 0x80 = c + 128) and its f16 fields
    /// (the second is 0 when `fields` is 1).
    static func split(_ block: UnsafeRawPointer, _ codes: UnsafeMutablePointer<UInt8>) -> (UInt16, UInt16)
    /// The inverse of `split`: writes the ggml block.
    static func join(_ codes: UnsafePointer<UInt8>, _ fields: (UInt16, UInt16), into block: UnsafeMutableRawPointer)
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

    /// Interleaved layout: bytes of the block's header (scales) before its codes.
    static var headerBytes: Int { get }
    /// Interleaved layout: bits of each stored code (4, 5 or 6).
    static var codeBits: Int { get }
    /// The block as the interleaved layout stores it: codes[256] in column order (u8, below
    /// 2^codeBits) and header[headerBytes].
    static func split(_ block: UnsafeRawPointer, _ codes: UnsafeMutablePointer<UInt8>, _ header: UnsafeMutableRawPointer)
    /// The inverse of `split`: writes the ggml block.
    static func join(_ codes: UnsafePointer<UInt8>, _ header: UnsafeRawPointer, into block: UnsafeMutableRawPointer)
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

// Shared by the 32-value formats' split/join: the ggml payloads.

/// f16 fields at the start of a block (`count` of them).
@inline(__always)
func blockFields(_ block: UnsafeRawPointer, _ count: Int) -> (UInt16, UInt16) {
    (block.loadUnaligned(as: UInt16.self), count == 2 ? block.loadUnaligned(fromByteOffset: 2, as: UInt16.self) : 0)
}

@inline(__always)
func storeFields(_ fields: (UInt16, UInt16), _ count: Int, _ block: UnsafeMutableRawPointer) {
    block.storeBytes(of: fields.0, as: UInt16.self)
    if count == 2 { block.storeBytes(of: fields.1, toByteOffset: 2, as: UInt16.self) }
}

/// Byte j of spreadBits[b] is bit j of b (0 or 1).
let spreadBits: [UInt64] = (0..<256).map { b in (0..<8).reduce(UInt64(0)) { $0 | UInt64((b >> $1) & 1) << (8 * $1) } }

/// 16 bytes of nibbles at `nibbles` (byte j: value j low, value j + 16 high) and, when
/// `fifth` is given, the u32 of fifth bits there (bit j: value j) -> codes[32].
@inline(__always)
func splitNibbles(_ nibbles: UnsafeRawPointer, fifth: UnsafeRawPointer?, _ codes: UnsafeMutablePointer<UInt8>) {
    let low: UInt64 = 0x0F0F_0F0F_0F0F_0F0F
    let out = UnsafeMutableRawPointer(codes)
    for half in 0..<2 {
        let v = nibbles.loadUnaligned(fromByteOffset: 8 &* half, as: UInt64.self)
        var lo = v & low, hi = (v >> 4) & low
        if let fifth {
            let high = fifth.loadUnaligned(as: UInt32.self)
            lo |= spreadBits[Int((high >> UInt32(8 &* half)) & 0xFF)] << 4
            hi |= spreadBits[Int((high >> UInt32(16 &+ 8 &* half)) & 0xFF)] << 4
        }
        out.storeBytes(of: lo, toByteOffset: 8 &* half, as: UInt64.self)
        out.storeBytes(of: hi, toByteOffset: 16 &+ 8 &* half, as: UInt64.self)
    }
}

/// The inverse of `splitNibbles`.
@inline(__always)
func joinNibbles(_ codes: UnsafePointer<UInt8>, _ nibbles: UnsafeMutableRawPointer, fifth: UnsafeMutableRawPointer?) {
    var high: UInt32 = 0
    for j in 0..<16 {
        nibbles.storeBytes(of: (codes[j] & 0xF) | (codes[j &+ 16] & 0xF) << 4, toByteOffset: j, as: UInt8.self)
        high |= UInt32(codes[j] >> 4) << UInt32(j) | UInt32(codes[j &+ 16] >> 4) << UInt32(j &+ 16)
    }
    fifth?.storeBytes(of: high, as: UInt32.self)
}

/// 32 int8 codes at `source` -> codes[32] stored as c ^ 0x80 (8-bit formats' split).
@inline(__always)
func splitBytes(_ source: UnsafeRawPointer, _ codes: UnsafeMutablePointer<UInt8>) {
    for i in 0..<4 {
        UnsafeMutableRawPointer(codes).storeBytes(of: source.loadUnaligned(fromByteOffset: 8 &* i, as: UInt64.self) ^ 0x8080_8080_8080_8080,
                                                  toByteOffset: 8 &* i, as: UInt64.self)
    }
}
