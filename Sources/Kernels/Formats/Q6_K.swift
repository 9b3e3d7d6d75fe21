/// Q6_K: 256 values in 210 bytes: 128 bytes of low nibbles, 64 bytes of high 2-bit pairs,
/// 16 int8 scales (one per 16 values), f16 d. Per half of 128 values (ql = 64 bytes,
/// qh = 32 bytes, sc = 8 scales), for l in 0..<32: value l from ql[l] low nibble and qh[l]
/// bits 0-1, value 32 + l from ql[32 + l] low and bits 2-3, value 64 + l from ql[l] high
/// and bits 4-5, value 96 + l from ql[32 + l] high and bits 6-7.
/// value = d * scale * (q - 32), q in 0...63.
/// Interleaved (Interleave.swift), each block a group of 8 (lane l = values 32 l ..< 32 l + 32:
/// code vectors 0-3 its first 16, 4-7 its second 16): f16 d, the 8 scales of the first 16
/// values of each 32, the 8 of the second 16, the low nibbles as 4-bit code vectors (128
/// bytes), then the high 2 bits as two bit planes (64 bytes).
enum Q6_KFormat: Block256Format {
    static var blockBytes: Int { 210 }

    static func reference(_ q: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = loadHalf(q, 208)
        for half in 0..<2 {
            let ql = q + 64 * half, qh = q + 128 + 32 * half, sc = q + 192 + 8 * half
            func scale(_ i: Int) -> Float { Float(sc.load(fromByteOffset: i, as: Int8.self)) }
            let out = y + 128 * half
            for l in 0..<32 {
                let s = l / 16
                let h = byte(qh, l)
                let q1 = ((byte(ql, l) & 0xF) | ((h & 3) << 4)) - 32
                let q2 = ((byte(ql, l + 32) & 0xF) | (((h >> 2) & 3) << 4)) - 32
                let q3 = ((byte(ql, l) >> 4) | (((h >> 4) & 3) << 4)) - 32
                let q4 = ((byte(ql, l + 32) >> 4) | (((h >> 6) & 3) << 4)) - 32
                out[l] = d * scale(s) * Float(q1)
                out[l + 32] = d * scale(s + 2) * Float(q2)
                out[l + 64] = d * scale(s + 4) * Float(q3)
                out[l + 96] = d * scale(s + 6) * Float(q4)
            }
        }
    }

    static func decode(_ q: UnsafeRawPointer, _ codes: UnsafeMutablePointer<Int8>,
                       _ scales: UnsafeMutablePointer<Int32>, _ mins: UnsafeMutablePointer<Int32>) -> (d: Float, dmin: Float) {
        for g in 0..<16 {
            scales[g] = Int32(q.load(fromByteOffset: 192 &+ g, as: Int8.self))
            mins[g] = 0
        }
        for half in 0..<2 {
            let ql = 64 &* half, qh = 128 &+ 32 &* half
            for l in 0..<32 {
                let a = q.load(fromByteOffset: ql &+ l, as: UInt8.self), c = q.load(fromByteOffset: ql &+ 32 &+ l, as: UInt8.self)
                let h = q.load(fromByteOffset: qh &+ l, as: UInt8.self)
                let out = codes + (128 &* half &+ l)
                out[0] = Int8(truncatingIfNeeded: (a & 0xF) | ((h & 3) << 4)) &- 32
                out[32] = Int8(truncatingIfNeeded: (c & 0xF) | (((h >> 2) & 3) << 4)) &- 32
                out[64] = Int8(truncatingIfNeeded: (a >> 4) | (((h >> 4) & 3) << 4)) &- 32
                out[96] = Int8(truncatingIfNeeded: (c >> 4) | (((h >> 6) & 3) << 4)) &- 32
            }
        }
        return (loadHalf(q, 208), 0)
    }

    static var headerBytes: Int { 18 }
    static var codeBits: Int { 6 }

    /// codes[256] = q (0...63) in column order; header: f16 d, then the int8 scales of the
    /// first 16 values of each 32 (scales 0, 2, ..., 14), then those of the second 16
    /// (1, 3, ..., 15).
    static func split(_ q: UnsafeRawPointer, _ codes: UnsafeMutablePointer<UInt8>, _ header: UnsafeMutableRawPointer) {
        header.copyMemory(from: q + 208, byteCount: 2)
        for i in 0..<8 {
            header.storeBytes(of: q.load(fromByteOffset: 192 &+ 2 &* i, as: UInt8.self), toByteOffset: 2 &+ i, as: UInt8.self)
            header.storeBytes(of: q.load(fromByteOffset: 193 &+ 2 &* i, as: UInt8.self), toByteOffset: 10 &+ i, as: UInt8.self)
        }
        for half in 0..<2 {
            let ql = 64 &* half, qh = 128 &+ 32 &* half
            for l in 0..<32 {
                let a = q.load(fromByteOffset: ql &+ l, as: UInt8.self), c = q.load(fromByteOffset: ql &+ 32 &+ l, as: UInt8.self)
                let h = q.load(fromByteOffset: qh &+ l, as: UInt8.self)
                let out = codes + (128 &* half &+ l)
                out[0] = (a & 0xF) | (h & 3) << 4
                out[32] = (c & 0xF) | ((h >> 2) & 3) << 4
                out[64] = (a >> 4) | ((h >> 4) & 3) << 4
                out[96] = (c >> 4) | ((h >> 6) & 3) << 4
            }
        }
    }

    static func join(_ codes: UnsafePointer<UInt8>, _ header: UnsafeRawPointer, into block: UnsafeMutableRawPointer) {
        (block + 208).copyMemory(from: header, byteCount: 2)
        for i in 0..<8 {
            block.storeBytes(of: header.load(fromByteOffset: 2 &+ i, as: UInt8.self), toByteOffset: 192 &+ 2 &* i, as: UInt8.self)
            block.storeBytes(of: header.load(fromByteOffset: 10 &+ i, as: UInt8.self), toByteOffset: 193 &+ 2 &* i, as: UInt8.self)
        }
        for half in 0..<2 {
            let ql = 64 &* half, qh = 128 &+ 32 &* half
            for l in 0..<32 {
                let c = codes + (128 &* half &+ l)
                block.storeBytes(of: (c[0] & 0xF) | (c[64] & 0xF) << 4, toByteOffset: ql &+ l, as: UInt8.self)
                block.storeBytes(of: (c[32] & 0xF) | (c[96] & 0xF) << 4, toByteOffset: ql &+ 32 &+ l, as: UInt8.self)
                block.storeBytes(of: (c[0] >> 4) | (c[32] >> 4) << 2 | (c[64] >> 4) << 4 | (c[96] >> 4) << 6,
                                 toByteOffset: qh &+ l, as: UInt8.self)
            }
        }
    }
}
