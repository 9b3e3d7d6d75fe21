/// Q4_0: 32 values in 18 bytes: f16 d, 16 bytes of nibbles (byte j: value j in the low
/// nibble, value j + 16 in the high one). value = d * (nibble - 8).
/// Interleaved (Interleave.swift), a group of G blocks: f16 d[G], then the nibbles as 4-bit
/// code vectors (16 G bytes).
enum Q4_0Format: Block32Format {
    static var blockBytes: Int { 18 }

    static func reference(_ q: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = loadHalf(q, 0)
        for j in 0..<16 {
            let v = byte(q, 2 + j)
            y[j] = Float((v & 0xF) - 8) * d
            y[j + 16] = Float((v >> 4) - 8) * d
        }
    }

    static func decode(_ q: UnsafeRawPointer, _ codes: UnsafeMutablePointer<Int8>) -> (d: Float, m: Float) {
        for j in 0..<16 {
            let v = q.load(fromByteOffset: 2 &+ j, as: UInt8.self)
            codes[j] = Int8(truncatingIfNeeded: v & 0xF) &- 8
            codes[j &+ 16] = Int8(truncatingIfNeeded: v >> 4) &- 8
        }
        return (loadHalf(q, 0), 0)
    }

    static var fields: Int { 1 }
    static var codeBits: Int { 4 }

    static func split(_ q: UnsafeRawPointer, _ codes: UnsafeMutablePointer<UInt8>) -> (UInt16, UInt16) {
        splitNibbles(q + 2, fifth: nil, codes)
        return blockFields(q, 1)
    }

    static func join(_ codes: UnsafePointer<UInt8>, _ fields: (UInt16, UInt16), into block: UnsafeMutableRawPointer) {
        storeFields(fields, 1, block)
        joinNibbles(codes, block + 2, fifth: nil)
    }
}
