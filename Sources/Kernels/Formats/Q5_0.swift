/// Q5_0: 32 values in 22 bytes: f16 d, u32 fifth bits (bit j belongs to value j), 16
/// bytes of nibbles (as Q4_0). value = d * ((nibble | fifth bit << 4) - 16).
/// Interleaved (Interleave.swift), a group of G blocks: f16 d[G], then the codes as 5-bit
/// code vectors (fifth bits 4 G bytes, nibbles 16 G bytes).
enum Q5_0Format: Block32Format {
    static var blockBytes: Int { 22 }

    static func reference(_ q: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = loadHalf(q, 0)
        let qh = Int(q.loadUnaligned(fromByteOffset: 2, as: UInt32.self))
        for j in 0..<16 {
            let v = byte(q, 6 + j)
            let h0 = ((qh >> j) << 4) & 0x10
            let h1 = (qh >> (j + 12)) & 0x10
            y[j] = Float(((v & 0xF) | h0) - 16) * d
            y[j + 16] = Float(((v >> 4) | h1) - 16) * d
        }
    }

    static func decode(_ q: UnsafeRawPointer, _ codes: UnsafeMutablePointer<Int8>) -> (d: Float, m: Float) {
        let qh = q.loadUnaligned(fromByteOffset: 2, as: UInt32.self)
        for j in 0..<16 {
            let v = q.load(fromByteOffset: 6 &+ j, as: UInt8.self)
            let h0 = UInt8(truncatingIfNeeded: (qh >> UInt32(j)) & 1) << 4
            let h1 = UInt8(truncatingIfNeeded: (qh >> UInt32(j &+ 16)) & 1) << 4
            codes[j] = Int8(truncatingIfNeeded: (v & 0xF) | h0) &- 16
            codes[j &+ 16] = Int8(truncatingIfNeeded: (v >> 4) | h1) &- 16
        }
        return (loadHalf(q, 0), 0)
    }

    static var fields: Int { 1 }
    static var codeBits: Int { 5 }

    static func split(_ q: UnsafeRawPointer, _ codes: UnsafeMutablePointer<UInt8>) -> (UInt16, UInt16) {
        splitNibbles(q + 6, fifth: q + 2, codes)
        return blockFields(q, 1)
    }

    static func join(_ codes: UnsafePointer<UInt8>, _ fields: (UInt16, UInt16), into block: UnsafeMutableRawPointer) {
        storeFields(fields, 1, block)
        joinNibbles(codes, block + 6, fifth: block + 2)
    }
}
