/// Q5_K: 256 values in 176 bytes: f16 d, f16 dmin, 12 bytes of scales and mins (as Q4_K),
/// 32 bytes of fifth bits (bit j of byte l belongs to value 32 j + l), 128 bytes of
/// nibbles (as Q4_K). value = d * scale_s * (nibble | fifth bit << 4) - dmin * min_s.
/// Interleaved (Interleave.swift), each block a group of 8 (lane l = sub-block l): its first 16
/// bytes as they are, then the codes as 5-bit code vectors (32 + 128 bytes).
enum Q5_KFormat: Block256Format {
    static var blockBytes: Int { 176 }

    static func reference(_ q: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        referenceK4(q, y, isQ5: true)
    }

    static func decode(_ q: UnsafeRawPointer, _ codes: UnsafeMutablePointer<Int8>,
                       _ scales: UnsafeMutablePointer<Int32>, _ mins: UnsafeMutablePointer<Int32>) -> (d: Float, dmin: Float) {
        decodeK4(q, codes, scales, mins, isQ5: true)
    }

    static var headerBytes: Int { 16 }
    static var codeBits: Int { 5 }

    /// Header: the block's first 16 bytes as they are (d, dmin, 12 bytes of scales and mins).
    static func split(_ q: UnsafeRawPointer, _ codes: UnsafeMutablePointer<UInt8>, _ header: UnsafeMutableRawPointer) {
        splitK4(q, codes, header, isQ5: true)
    }

    static func join(_ codes: UnsafePointer<UInt8>, _ header: UnsafeRawPointer, into block: UnsafeMutableRawPointer) {
        joinK4(codes, header, block, isQ5: true)
    }
}
