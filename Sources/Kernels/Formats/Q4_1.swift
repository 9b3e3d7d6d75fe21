/// Q4_1: 32 values in 20 bytes: f16 d, f16 m, 16 bytes of nibbles (as Q4_0).
/// value = d * nibble + m.
/// Interleaved (Interleave.swift), a group of G blocks: f16 d[G], f16 m[G], then the nibbles
/// as 4-bit code vectors (16 G bytes).
enum Q4_1Format: Block32Format {
    static var blockBytes: Int { 20 }

    static func reference(_ q: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = loadHalf(q, 0), m = loadHalf(q, 2)
        for j in 0..<16 {
            let v = byte(q, 4 + j)
            y[j] = Float(v & 0xF) * d + m
            y[j + 16] = Float(v >> 4) * d + m
        }
    }

    static func decode(_ q: UnsafeRawPointer, _ codes: UnsafeMutablePointer<Int8>) -> (d: Float, m: Float) {
        for j in 0..<16 {
            let v = q.load(fromByteOffset: 4 &+ j, as: UInt8.self)
            codes[j] = Int8(truncatingIfNeeded: v & 0xF)
            codes[j &+ 16] = Int8(truncatingIfNeeded: v >> 4)
        }
        return (loadHalf(q, 0), loadHalf(q, 2))
    }

    static var fields: Int { 2 }
    static var codeBits: Int { 4 }

    static func split(_ q: UnsafeRawPointer, _ codes: UnsafeMutablePointer<UInt8>) -> (UInt16, UInt16) {
        splitNibbles(q + 4, fifth: nil, codes)
        return blockFields(q, 2)
    }

    static func join(_ codes: UnsafePointer<UInt8>, _ fields: (UInt16, UInt16), into block: UnsafeMutableRawPointer) {
        storeFields(fields, 2, block)
        joinNibbles(codes, block + 4, fifth: nil)
    }
}
