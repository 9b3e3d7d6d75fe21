/// Q4_K: 256 values in 144 bytes: f16 d, f16 dmin, 12 bytes of 6-bit scales and mins for
/// 8 sub-blocks of 32 (`scaleMinK4`), 128 bytes of nibbles: for each 64 values j, 32 bytes
/// holding sub-block 2j in the low nibbles and 2j + 1 in the high ones.
/// value = d * scale_s * nibble - dmin * min_s.
/// Interleaved (Interleave.swift), each block a group of 8 (lane l = sub-block l): its first 16
/// bytes as they are, then the nibbles as 4-bit code vectors (128 bytes).
enum Q4_KFormat: Block256Format {
    static var blockBytes: Int { 144 }

    static func reference(_ q: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        referenceK4(q, y, isQ5: false)
    }

    static func decode(_ q: UnsafeRawPointer, _ codes: UnsafeMutablePointer<Int8>,
                       _ scales: UnsafeMutablePointer<Int32>, _ mins: UnsafeMutablePointer<Int32>) -> (d: Float, dmin: Float) {
        decodeK4(q, codes, scales, mins, isQ5: false)
    }

    static var headerBytes: Int { 16 }
    static var codeBits: Int { 4 }

    /// Header: the block's first 16 bytes as they are (d, dmin, 12 bytes of scales and mins).
    static func split(_ q: UnsafeRawPointer, _ codes: UnsafeMutablePointer<UInt8>, _ header: UnsafeMutableRawPointer) {
        splitK4(q, codes, header, isQ5: false)
    }

    static func join(_ codes: UnsafePointer<UInt8>, _ header: UnsafeRawPointer, into block: UnsafeMutableRawPointer) {
        joinK4(codes, header, block, isQ5: false)
    }
}

/// Q4_K and Q5_K (which adds 32 bytes of fifth bits before the nibbles; bit j of byte l
/// belongs to value 32 j + l), from ggml's dequantize_row_q4_K / q5_K.
func referenceK4(_ q: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, isQ5: Bool) {
    let d = loadHalf(q, 0), dmin = loadHalf(q, 2)
    let scales = q + 4, qh = q + 16, ql = q + (isQ5 ? 48 : 16)
    for group in 0..<4 {
        let (s1, m1) = scaleMinK4(2 * group, scales)
        let (s2, m2) = scaleMinK4(2 * group + 1, scales)
        for l in 0..<32 {
            let v = byte(ql, group * 32 + l)
            var lo = v & 0xF, hi = v >> 4
            if isQ5 {
                let h = byte(qh, l)
                lo += (h >> (2 * group)) & 1 == 1 ? 16 : 0
                hi += (h >> (2 * group + 1)) & 1 == 1 ? 16 : 0
            }
            y[group * 64 + l] = d * Float(s1) * Float(lo) - dmin * Float(m1)
            y[group * 64 + 32 + l] = d * Float(s2) * Float(hi) - dmin * Float(m2)
        }
    }
}

func decodeK4(_ q: UnsafeRawPointer, _ codes: UnsafeMutablePointer<Int8>, _ scales: UnsafeMutablePointer<Int32>,
              _ mins: UnsafeMutablePointer<Int32>, isQ5: Bool) -> (d: Float, dmin: Float) {
    let ql = q + (isQ5 ? 48 : 16)
    for s in 0..<8 {
        let (scale, minimum) = scaleMinK4(s, q + 4)
        scales[2 &* s] = Int32(scale); scales[2 &* s &+ 1] = Int32(scale)
        mins[2 &* s] = Int32(minimum); mins[2 &* s &+ 1] = Int32(minimum)
    }
    for group in 0..<4 {
        for l in 0..<32 {
            let v = q.load(fromByteOffset: (ql - q) &+ group &* 32 &+ l, as: UInt8.self)
            var lo = v & 0xF, hi = v >> 4
            if isQ5 {
                let h = q.load(fromByteOffset: 16 &+ l, as: UInt8.self)
                lo |= ((h >> UInt8(2 &* group)) & 1) << 4
                hi |= ((h >> UInt8(2 &* group &+ 1)) & 1) << 4
            }
            codes[group &* 64 &+ l] = Int8(truncatingIfNeeded: lo)
            codes[group &* 64 &+ 32 &+ l] = Int8(truncatingIfNeeded: hi)
        }
    }
    return (loadHalf(q, 0), loadHalf(q, 2))
}

/// Q4_K and Q5_K blocks -> codes[256] in column order (0...15, Q5_K 0...31) and the
/// 16-byte header (d, dmin, scales and mins as in the block).
func splitK4(_ q: UnsafeRawPointer, _ codes: UnsafeMutablePointer<UInt8>, _ header: UnsafeMutableRawPointer, isQ5: Bool) {
    header.copyMemory(from: q, byteCount: 16)
    let ql = q + (isQ5 ? 48 : 16)
    for group in 0..<4 {
        for l in 0..<32 {
            let v = ql.load(fromByteOffset: group &* 32 &+ l, as: UInt8.self)
            var lo = v & 0xF, hi = v >> 4
            if isQ5 {
                let h = q.load(fromByteOffset: 16 &+ l, as: UInt8.self)
                lo |= ((h >> UInt8(2 &* group)) & 1) << 4
                hi |= ((h >> UInt8(2 &* group &+ 1)) & 1) << 4
            }
            codes[group &* 64 &+ l] = lo
            codes[group &* 64 &+ 32 &+ l] = hi
        }
    }
}

/// The inverse of `splitK4`.
func joinK4(_ codes: UnsafePointer<UInt8>, _ header: UnsafeRawPointer, _ block: UnsafeMutableRawPointer, isQ5: Bool) {
    block.copyMemory(from: header, byteCount: 16)
    let ql = block + (isQ5 ? 48 : 16)
    for l in 0..<32 {
        var h: UInt8 = 0
        for group in 0..<4 {
            let lo = codes[group &* 64 &+ l], hi = codes[group &* 64 &+ 32 &+ l]
            ql.storeBytes(of: (lo & 0xF) | (hi & 0xF) << 4, toByteOffset: group &* 32 &+ l, as: UInt8.self)
            h |= (lo >> 4) << UInt8(2 &* group) | (hi >> 4) << UInt8(2 &* group &+ 1)
        }
        if isQ5 { block.storeBytes(of: h, toByteOffset: 16 &+ l, as: UInt8.self) }
    }
}
