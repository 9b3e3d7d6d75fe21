/// Q8_0: 32 values in 34 bytes: f16 d, then 32 int8 q. value = d * q.
/// Interleaved (Interleave.swift), a group of G blocks: f16 d[G], then the codes q + 128 as
/// 8-bit code vectors (32 G bytes).
enum Q8_0Format: Block32Format {
    static var blockBytes: Int { 34 }

    static func reference(_ q: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = loadHalf(q, 0)
        for j in 0..<32 { y[j] = d * Float(q.load(fromByteOffset: 2 + j, as: Int8.self)) }
    }

    static func decode(_ q: UnsafeRawPointer, _ codes: UnsafeMutablePointer<Int8>) -> (d: Float, m: Float) {
        for j in 0..<32 { codes[j] = q.load(fromByteOffset: 2 &+ j, as: Int8.self) }
        return (loadHalf(q, 0), 0)
    }

    static var fields: Int { 1 }
    static var codeBits: Int { 8 }

    static func split(_ q: UnsafeRawPointer, _ codes: UnsafeMutablePointer<UInt8>) -> (UInt16, UInt16) {
        splitBytes(q + 2, codes)
        return blockFields(q, 1)
    }

    static func join(_ codes: UnsafePointer<UInt8>, _ fields: (UInt16, UInt16), into block: UnsafeMutableRawPointer) {
        storeFields(fields, 1, block)
        for j in 0..<32 { block.storeBytes(of: codes[j] ^ 0x80, toByteOffset: 2 &+ j, as: UInt8.self) }
    }
}
