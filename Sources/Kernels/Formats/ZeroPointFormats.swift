// The engine's own formats for asymmetric GPTQ weights (AutoGPTQ's `sym: false`), made
// at load from a checkpoint's qweight / qzeros / scales (GPTQ.swift): one f16 scale and one
// integer zero point per 32 values, exactly GPTQ's w = scale * (q - zero). Symmetric GPTQ
// needs none of this: its zero is always 2^(bits-1), which is Q4_0 and Q8_0 exactly.
// They never appear in a GGUF file (their type ids are outside ggml's).

/// Q4_Z: 32 values in 20 bytes: f16 d, f16 z (an integer, 1...16), 16 bytes of nibbles laid
/// out as Q4_0's. value = d * (nibble - z).
/// Interleaved (Interleave.swift), a group of G blocks: f16 d[G], f16 z[G], then the nibbles
/// as 4-bit code vectors (16 G bytes).
enum Q4_ZFormat: Block32Format {
    static var blockBytes: Int { 20 }

    static func reference(_ q: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = loadHalf(q, 0), z = Int(loadHalf(q, 2))
        for j in 0..<16 {
            let v = byte(q, 4 + j)
            y[j] = Float((v & 0xF) - z) * d
            y[j + 16] = Float((v >> 4) - z) * d
        }
    }

    static func decode(_ q: UnsafeRawPointer, _ codes: UnsafeMutablePointer<Int8>) -> (d: Float, m: Float) {
        for j in 0..<16 {
            let v = q.load(fromByteOffset: 4 &+ j, as: UInt8.self)
            codes[j] = Int8(truncatingIfNeeded: v & 0xF)
            codes[j &+ 16] = Int8(truncatingIfNeeded: v >> 4)
        }
        let d = loadHalf(q, 0)
        return (d, -d * loadHalf(q, 2))     // d * z is exact in f32 (11-bit d times a 5-bit z)
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

/// Q8_Z: 32 values in 36 bytes: f16 d, f16 z (an integer, -127...128), 32 int8 codes.
/// value = d * (code - z). (GPTQ's 8-bit q and zero, both shifted down by 128.)
/// Interleaved (Interleave.swift), a group of G blocks: f16 d[G], f16 z[G], then the codes
/// + 128 as 8-bit code vectors (32 G bytes).
enum Q8_ZFormat: Block32Format {
    static var blockBytes: Int { 36 }

    static func reference(_ q: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = loadHalf(q, 0), z = Int(loadHalf(q, 2))
        for j in 0..<32 { y[j] = Float(Int(q.load(fromByteOffset: 4 + j, as: Int8.self)) - z) * d }
    }

    static func decode(_ q: UnsafeRawPointer, _ codes: UnsafeMutablePointer<Int8>) -> (d: Float, m: Float) {
        for j in 0..<32 { codes[j] = q.load(fromByteOffset: 4 &+ j, as: Int8.self) }
        let d = loadHalf(q, 0)
        return (d, -d * loadHalf(q, 2))     // exact in f32 (11-bit d times an 8-bit z)
    }

    static var fields: Int { 2 }
    static var codeBits: Int { 8 }

    static func split(_ q: UnsafeRawPointer, _ codes: UnsafeMutablePointer<UInt8>) -> (UInt16, UInt16) {
        splitBytes(q + 4, codes)
        return blockFields(q, 2)
    }

    static func join(_ codes: UnsafePointer<UInt8>, _ fields: (UInt16, UInt16), into block: UnsafeMutableRawPointer) {
        storeFields(fields, 2, block)
        for j in 0..<32 { block.storeBytes(of: codes[j] ^ 0x80, toByteOffset: 4 &+ j, as: UInt8.self) }
    }
}
