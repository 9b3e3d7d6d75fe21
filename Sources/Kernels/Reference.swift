import KernelABI

/// Scalar references: the definitions every fast path (generic and per instruction set)
/// is tested against. Nothing on the hot path calls them.
public enum Reference {
    /// Dequantizes row `r` of `w` into out[cols].
    public static func dequantizeRow(_ w: WeightMatrix, row r: Int, into out: UnsafeMutablePointer<Float>) {
        guard w.layout == .interleaved else { return dequantize(w.type, w.row(r), count: w.cols, into: out) }
        let row = UnsafeMutableRawPointer.allocate(byteCount: w.rowBytes, alignment: 16)
        defer { row.deallocate() }
        ggmlRow(w.type, cols: w.cols, w.row(r), into: row)
        dequantize(w.type, row, count: w.cols, into: out)
    }

    /// Dequantizes `count` elements (whole blocks) of `type` starting at `p`.
    public static func dequantize(_ type: GGMLType, _ p: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        func blocks32<F: Block32Format>(_: F.Type) {
            for b in 0..<(count / 32) { F.reference(p + b * F.blockBytes, y + b * 32) }
        }
        func blocks256<F: Block256Format>(_: F.Type) {
            for b in 0..<(count / 256) { F.reference(p + b * F.blockBytes, y + b * 256) }
        }
        switch type {
        case .f32: for i in 0..<count { y[i] = F32Format.value(p, i) }
        case .f16: for i in 0..<count { y[i] = F16Format.value(p, i) }
        case .bf16: for i in 0..<count { y[i] = BF16Format.value(p, i) }
        case .q8_0: blocks32(Q8_0Format.self)
        case .q4_0: blocks32(Q4_0Format.self)
        case .q4_1: blocks32(Q4_1Format.self)
        case .q5_0: blocks32(Q5_0Format.self)
        case .q5_1: blocks32(Q5_1Format.self)
        case .q4_Z: blocks32(Q4_ZFormat.self)
        case .q8_Z: blocks32(Q8_ZFormat.self)
        case .q4_K: blocks256(Q4_KFormat.self)
        case .q5_K: blocks256(Q5_KFormat.self)
        case .q6_K: blocks256(Q6_KFormat.self)
        }
    }

    /// Dot product of row r of `w` with x[cols] (column j times x[inputOrder[j]]), in f64.
    public static func dot(_ w: WeightMatrix, row r: Int, _ x: UnsafePointer<Float>) -> Double {
        let values = UnsafeMutablePointer<Float>.allocate(capacity: w.cols)
        defer { values.deallocate() }
        dequantizeRow(w, row: r, into: values)
        var sum = 0.0
        for i in 0..<w.cols { sum += Double(values[i]) * Double(x[w.inputOrder.map { Int($0[i]) } ?? i]) }
        return sum
    }

    /// y[rows] = W x, one row at a time.
    public static func matvec(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        for r in 0..<w.rows { y[r] = Float(dot(w, row: r, x)) }
    }

    /// The int8 activations every kernel's quantizer must produce, per 32 values:
    /// d = max|x| / 127, q = x * (1 / d) rounded to nearest even (0 where d is 0), and
    /// s = d * Σ q.
    public static func quantize(_ x: [Float]) -> (q: [Int8], d: [Float], s: [Float]) {
        var q = [Int8](repeating: 0, count: x.count), d = [Float](), s = [Float]()
        for b in 0..<(x.count / 32) {
            let block = x[(b * 32)..<((b + 1) * 32)]
            let scale = block.map { abs($0) }.max()! / 127
            let inverse: Float = scale > 0 ? 1 / scale : 0
            for i in block.indices { q[i] = Int8((x[i] * inverse).rounded(.toNearestOrEven)) }
            d.append(scale)
            s.append(scale * Float(q[block.indices].reduce(Int32(0)) { $0 + Int32($1) }))
        }
        return (q, d, s)
    }

    /// The vector a kernel's int8 path multiplies with when given x: x quantized and
    /// dequantized again (d * q per block). Fast paths equal Reference.dot(w, row, this)
    /// up to f32 rounding.
    public static func activationsAsSeenByKernels(_ x: [Float], type: GGMLType) -> [Float] {
        switch type.activationForm {
        case .float: return x
        case .q8:
            let (q, d, _) = quantize(x)
            return q.indices.map { d[$0 / 32] * Float(q[$0]) }
        }
    }
}
