/// Scalar reference kernels, written from ggml's `dequantize_row_*` (ggml-quants.c).
/// The fast paths are tested against these; nothing on the hot path calls them.
public enum Reference {
    /// Dequantizes row `r` of `w` into out[cols].
    public static func dequantizeRow(_ w: WeightMatrix, row r: Int, into out: UnsafeMutablePointer<Float>) {
        dequantize(w.type, w.row(r), count: w.cols, into: out)
    }

    /// Dequantizes `count` elements (whole blocks) of `type` starting at `p`.
    public static func dequantize(_ type: GGMLType, _ p: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        let blocks = count / type.blockSize
        func byte(_ q: UnsafeRawPointer, _ i: Int) -> Int { Int(q.load(fromByteOffset: i, as: UInt8.self)) }
        switch type {
        case .f32:
            for i in 0..<count { y[i] = p.loadUnaligned(fromByteOffset: 4 * i, as: Float.self) }
        case .f16:
            for i in 0..<count { y[i] = loadHalf(p, 2 * i) }
        case .bf16:
            for i in 0..<count { y[i] = Float(bitPattern: UInt32(p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16) }
        case .q8_0:
            for b in 0..<blocks {
                let q = p + b * 34
                let d = loadHalf(q, 0)
                for j in 0..<32 { y[b * 32 + j] = d * Float(q.load(fromByteOffset: 2 + j, as: Int8.self)) }
            }
        case .q4_0, .q4_1:
            let bytes = type.blockBytes
            for b in 0..<blocks {
                let q = p + b * bytes
                let d = loadHalf(q, 0)
                let m: Float = type == .q4_1 ? loadHalf(q, 2) : 0
                let qs = type == .q4_1 ? 4 : 2
                let offset = type == .q4_1 ? 0 : 8
                for j in 0..<16 {
                    let v = byte(q, qs + j)
                    y[b * 32 + j] = Float((v & 0xF) - offset) * d + m
                    y[b * 32 + j + 16] = Float((v >> 4) - offset) * d + m
                }
            }
        case .q5_0, .q5_1:
            let bytes = type.blockBytes
            for b in 0..<blocks {
                let q = p + b * bytes
                let d = loadHalf(q, 0)
                let m: Float = type == .q5_1 ? loadHalf(q, 2) : 0
                let hOffset = type == .q5_1 ? 4 : 2
                let qh = Int(q.loadUnaligned(fromByteOffset: hOffset, as: UInt32.self))
                let offset = type == .q5_1 ? 0 : 16
                for j in 0..<16 {
                    let v = byte(q, hOffset + 4 + j)
                    let h0 = ((qh >> j) << 4) & 0x10
                    let h1 = (qh >> (j + 12)) & 0x10
                    y[b * 32 + j] = Float(((v & 0xF) | h0) - offset) * d + m
                    y[b * 32 + j + 16] = Float(((v >> 4) | h1) - offset) * d + m
                }
            }
        case .q4_K, .q5_K:
            let bytes = type.blockBytes
            for b in 0..<blocks {
                let q = p + b * bytes
                let d = loadHalf(q, 0), dmin = loadHalf(q, 2)
                let scales = q + 4
                let qh = q + 16                           // Q5_K only
                let ql = q + (type == .q5_K ? 48 : 16)
                var out = y + b * 256
                for group in 0..<4 {                      // 64 elements per group
                    let (s1, m1) = scaleMinK4(2 * group, scales)
                    let (s2, m2) = scaleMinK4(2 * group + 1, scales)
                    for l in 0..<32 {
                        let v = byte(ql, group * 32 + l)
                        var lo = v & 0xF, hi = v >> 4
                        if type == .q5_K {
                            let h = byte(qh, l)
                            lo += (h >> (2 * group)) & 1 == 1 ? 16 : 0
                            hi += (h >> (2 * group + 1)) & 1 == 1 ? 16 : 0
                        }
                        out[l] = d * s1 * Float(lo) - dmin * m1
                        out[32 + l] = d * s2 * Float(hi) - dmin * m2
                    }
                    out += 64
                }
            }
        case .q6_K:
            for b in 0..<blocks {
                let q = p + b * 210
                let d = loadHalf(q, 208)
                var out = y + b * 256
                for half in 0..<2 {                        // 128 elements per half
                    let ql = q + 64 * half, qh = q + 128 + 32 * half, sc = q + 192 + 8 * half
                    func scale(_ i: Int) -> Float { Float(sc.load(fromByteOffset: i, as: Int8.self)) }
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
                    out += 128
                }
            }
        }
    }

    /// ggml's get_scale_min_k4: the 6-bit scale and min of sub-block j of a K block.
    @inline(__always)
    static func scaleMinK4(_ j: Int, _ q: UnsafeRawPointer) -> (Float, Float) {
        func b(_ i: Int) -> Int { Int(q.load(fromByteOffset: i, as: UInt8.self)) }
        if j < 4 { return (Float(b(j) & 63), Float(b(j + 4) & 63)) }
        return (Float((b(j + 4) & 0xF) | ((b(j - 4) >> 6) << 4)), Float((b(j + 4) >> 4) | ((b(j) >> 6) << 4)))
    }

    /// Dot product of row r of `w` with x[cols], in f64 to serve as the reference.
    public static func dot(_ w: WeightMatrix, row r: Int, _ x: UnsafePointer<Float>) -> Double {
        let values = UnsafeMutablePointer<Float>.allocate(capacity: w.cols)
        defer { values.deallocate() }
        dequantizeRow(w, row: r, into: values)
        var sum = 0.0
        for i in 0..<w.cols { sum += Double(values[i]) * Double(x[i]) }
        return sum
    }

    /// y[rows] = W x, one row at a time.
    public static func matvec(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        for r in 0..<w.rows { y[r] = Float(dot(w, row: r, x)) }
    }
}
