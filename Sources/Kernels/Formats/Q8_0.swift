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

    /// ggml's quantize_row_q8_0_ref for the 32 values at x: d = max|x| / 127 stored as
    /// f16, q = round-half-away-from-zero(x * (1 / d)) in f32 (0 where d is 0). A NaN or
    /// infinite x (a broken model's activations) gives q = 0 instead of trapping.
    static func quantize(_ x: UnsafePointer<Float>, into block: UnsafeMutableRawPointer) {
        var maximum: Float = 0
        for j in 0..<32 { maximum = max(maximum, abs(x[j])) }
        let d = maximum / 127
        let inverse: Float = d != 0 ? 1 / d : 0
        block.storeBytes(of: Float16(d).bitPattern, toByteOffset: 0, as: UInt16.self)
        for j in 0..<32 {
            let q = (x[j] * inverse).rounded(.toNearestOrAwayFromZero)
            block.storeBytes(of: q.isFinite ? Int8(max(-127, min(127, q))) : 0, toByteOffset: 2 &+ j, as: Int8.self)
        }
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
