import Foundation
import XCTest
@testable import Kernels

/// Random GPTQ layers (AutoGPTQ's v1 packing, built here bit by bit) and the values
/// GPTQ's definition gives them, w[o, i] = scale[g_idx[i], o] * (q[i, o] - (stored zero + 1)):
/// the source of the Q4_Z / Q8_Z fixtures of KernelsTests and of the repacking tests.
struct GPTQLayer {
    let bits: Int, inFeatures: Int, outFeatures: Int, groupSize: Int, groups: Int
    var qweight: [UInt32]    // [in * bits / 32, out]
    var qzeros: [UInt32]     // [groups, out * bits / 32]
    var scales: [Float16]    // [groups, out]
    var groupIndex: [Int32]  // [in]

    init(bits: Int, inFeatures: Int, outFeatures: Int, groupSize: Int, symmetric: Bool, actOrder: Bool) {
        var random = SystemRandomNumberGenerator()
        self.bits = bits; self.inFeatures = inFeatures; self.outFeatures = outFeatures; self.groupSize = groupSize
        groups = inFeatures / groupSize
        let perWord = 32 / bits, maxq = UInt32((1 << bits) - 1)
        let order = actOrder ? Array(0..<inFeatures).shuffled(using: &random) : Array(0..<inFeatures)
        groupIndex = [Int32](repeating: 0, count: inFeatures)
        for (rank, column) in order.enumerated() { groupIndex[column] = Int32(rank / groupSize) }
        qweight = [UInt32](repeating: 0, count: inFeatures / perWord * outFeatures)
        for i in 0..<inFeatures {
            for o in 0..<outFeatures {
                qweight[(i / perWord) * outFeatures + o] |= UInt32.random(in: 0...maxq, using: &random) << UInt32(bits * (i % perWord))
            }
        }
        qzeros = [UInt32](repeating: 0, count: groups * outFeatures / perWord)
        scales = []
        for g in 0..<groups {
            for o in 0..<outFeatures {
                // Stored zero - 1, as v1 packs it: 2^(bits-1) - 1 when symmetric; anything otherwise.
                let stored = symmetric ? UInt32(1 << (bits - 1)) - 1 : UInt32.random(in: 0...maxq, using: &random)
                qzeros[g * (outFeatures / perWord) + o / perWord] |= stored << UInt32(bits * (o % perWord))
                scales.append(Float16(Float.random(in: 0.001...0.05, using: &random)))
            }
        }
    }

    /// GPTQ's value of weight [o, i], straight from the packed tensors.
    func value(_ o: Int, _ i: Int) -> Float {
        let perWord = 32 / bits, mask = UInt32((1 << bits) - 1), g = Int(groupIndex[i])
        let q = (qweight[(i / perWord) * outFeatures + o] >> UInt32(bits * (i % perWord))) & mask
        let zero = ((qzeros[g * (outFeatures / perWord) + o / perWord] >> UInt32(bits * (o % perWord))) & mask) + 1
        return Float(scales[g * outFeatures + o]) * Float(Int(q) - Int(zero))
    }

    /// The repacked matrix (its arrays must outlive the call: `fromGPTQ` copies them).
    func repacked(withGroupIndex: Bool = true) throws -> RepackedMatrix {
        try qweight.withUnsafeBytes { w in
            try qzeros.withUnsafeBytes { z in
                try scales.withUnsafeBytes { s in
                    try groupIndex.withUnsafeBytes { g in
                        try RepackedMatrix.fromGPTQ(GPTQTensors(
                            bits: bits, inFeatures: inFeatures, outFeatures: outFeatures, groupSize: groupSize, groups: groups,
                            qweight: w.baseAddress!, qzeros: z.baseAddress!, scales: s.baseAddress!,
                            groupIndex: withGroupIndex ? g.baseAddress! : nil))
                    }
                }
            }
        }
    }
}

final class GPTQTests: XCTestCase {
    /// Every variant repacks to the format its zeros call for, and every weight keeps GPTQ's
    /// value exactly, in the order `inputOrder` says.
    func testRepackingKeepsEveryWeightExactly() throws {
        for bits in [4, 8] {
            for symmetric in [true, false] {
                // 256 inputs: groups of 8 blocks; 416: one of 8, one of 4, one of 1 (Interleave.swift).
                for (inFeatures, groupSize, actOrder) in [(256, 32, false), (256, 64, false), (256, 128, true), (256, 256, false), (256, 64, true),
                                                          (416, 32, false), (416, 416, false), (416, 32, true)] {
                    let layer = GPTQLayer(bits: bits, inFeatures: inFeatures, outFeatures: 24, groupSize: groupSize, symmetric: symmetric, actOrder: actOrder)
                    let what = "\(bits)-bit \(symmetric ? "sym" : "asym") \(inFeatures) inputs, group \(groupSize)\(actOrder ? " act-order" : "")"
                    let owner = try layer.repacked()
                    let m = owner.matrix
                    defer { withExtendedLifetime(owner) {} }
                    XCTAssertEqual(m.type, bits == 4 ? (symmetric ? .q4_0 : .q4_Z) : (symmetric ? .q8_0 : .q8_Z), what)
                    XCTAssertEqual(m.layout, .interleaved)
                    XCTAssertEqual(m.inputOrder == nil, !actOrder, what)
                    var row = [Float](repeating: .nan, count: m.cols)
                    for o in 0..<m.rows {
                        row.withUnsafeMutableBufferPointer { Reference.dequantizeRow(m, row: o, into: $0.baseAddress!) }
                        for j in 0..<m.cols {
                            let i = m.inputOrder.map { Int($0[j]) } ?? j
                            XCTAssertEqual(row[j], layer.value(o, i), "\(what) [\(o), \(i)]")
                        }
                    }
                }
            }
        }
    }

    /// AutoAWQ GEMM layers (packed here as its `WQLinear_GEMM.from_linear` packs them:
    /// eight output columns per int32 in the order [0, 2, 4, 6, 1, 3, 5, 7], zeros as they
    /// are, zero points 0 and 15 included) keep w = scale * (q - zero) exactly.
    func testAWQLayersKeepEveryWeightExactly() throws {
        var random = SystemRandomNumberGenerator()
        let order = [0, 2, 4, 6, 1, 3, 5, 7]
        for (inFeatures, outFeatures, groupSize) in [(128, 16, 64), (256, 24, 128), (96, 8, 32)] {
            let groups = inFeatures / groupSize
            let q = (0..<(inFeatures * outFeatures)).map { _ in Int.random(in: 0...15, using: &random) }   // [in, out]
            var z = (0..<(groups * outFeatures)).map { _ in Int.random(in: 0...15, using: &random) }      // [groups, out]
            z[0] = 0; z[z.count - 1] = 15
            let scales = (0..<(groups * outFeatures)).map { _ in Float16(Float.random(in: 0.001...0.05, using: &random)) }
            func pack(_ values: [Int], rows: Int) -> [UInt32] {
                var packed = [UInt32](repeating: 0, count: rows * outFeatures / 8)
                for r in 0..<rows {
                    for word in 0..<(outFeatures / 8) {
                        for i in 0..<8 { packed[r * outFeatures / 8 + word] |= UInt32(values[r * outFeatures + word * 8 + order[i]]) << UInt32(4 * i) }
                    }
                }
                return packed
            }
            let qweight = pack(q, rows: inFeatures), qzeros = pack(z, rows: groups)
            let layer = qweight.withUnsafeBytes { w in
                qzeros.withUnsafeBytes { zb in
                    scales.withUnsafeBytes { s in
                        AWQLayer(inFeatures: inFeatures, outFeatures: outFeatures, groupSize: groupSize, groups: groups,
                                 qweight: w.baseAddress!, qzeros: zb.baseAddress!, scales: s.baseAddress!)
                    }
                }
            }
            let owner = try scales.withUnsafeBytes { s -> RepackedMatrix in
                var t = layer.tensors
                t.scales = s.baseAddress!
                return try RepackedMatrix.fromGPTQ(t)
            }
            let m = owner.matrix
            defer { withExtendedLifetime(owner) {} }
            XCTAssertEqual(m.type, .q4_Z)
            var row = [Float](repeating: .nan, count: m.cols)
            for o in 0..<outFeatures {
                row.withUnsafeMutableBufferPointer { Reference.dequantizeRow(m, row: o, into: $0.baseAddress!) }
                for i in 0..<inFeatures {
                    let g = i / groupSize
                    let expected = Float(scales[g * outFeatures + o]) * Float(q[i * outFeatures + o] - z[g * outFeatures + o])
                    XCTAssertEqual(row[i], expected, "AWQ \(inFeatures)x\(outFeatures) g\(groupSize) [\(o), \(i)]")
                }
            }
        }
    }

    /// A trivial g_idx and none at all give the same matrix.
    func testMissingGroupIndexMeansColumnOverGroupSize() throws {
        let layer = GPTQLayer(bits: 4, inFeatures: 128, outFeatures: 8, groupSize: 64, symmetric: true, actOrder: false)
        let a = try layer.repacked(), b = try layer.repacked(withGroupIndex: false)
        XCTAssertEqual(Data(bytes: a.matrix.data, count: a.matrix.rows * a.matrix.rowBytes),
                       Data(bytes: b.matrix.data, count: b.matrix.rows * b.matrix.rowBytes))
    }

    /// Act-order matrices through matvec and matmul on every instruction set, with a plain
    /// matrix sharing the input (one job, two input orders): equal to the reference.
    func testActOrderMatvecAndMatmulEqualReference() throws {
        let pool = ThreadPool(threads: 2)
        var random = SystemRandomNumberGenerator()
        let layers = [GPTQLayer(bits: 4, inFeatures: 256, outFeatures: 40, groupSize: 64, symmetric: false, actOrder: true),
                      GPTQLayer(bits: 8, inFeatures: 256, outFeatures: 24, groupSize: 128, symmetric: true, actOrder: false)]
        let owners = try layers.map { try $0.repacked() }
        let ws = owners.map(\.matrix)
        let n = 9, cols = 256   // refined prefill: 18 int8 vectors, enough for the AVX-512 four-row kernels
        let x = (0..<(n * cols)).map { _ in Float.random(in: -1...1, using: &random) }   // [n, cols]
        for table in KernelsTests.tables {
            for tokens in [1, n] {
                var ys = ws.map { [Float](repeating: .nan, count: tokens * $0.rows) }         // [tokens, rows] each
                let outputs = ys.indices.map { i in ys[i].withUnsafeMutableBufferPointer { $0.baseAddress! } }
                x.withUnsafeBufferPointer { xp in
                    if tokens == 1 {
                        matvec(ws, xp.baseAddress!, outputs, pool: pool, kernels: table)
                    } else {
                        matmul(ws, xp.baseAddress!, outputs, n: tokens, pool: pool, kernels: table)
                    }
                }
                for (k, w) in ws.enumerated() {
                    ys[k] = Array(UnsafeBufferPointer(start: outputs[k], count: tokens * w.rows))
                    for t in 0..<tokens {
                        // Decode sees int8 activations in the matrix's own column order.
                        let input = Array(x[(t * cols)..<((t + 1) * cols)])
                        for o in 0..<w.rows {
                            let exact = (0..<cols).reduce(0.0) { $0 + Double(layers[k].value(o, $1)) * Double(input[$1]) }
                            let magnitude = (0..<cols).reduce(0.0) { $0 + abs(Double(layers[k].value(o, $1)) * Double(input[$1])) }
                            // matvec: int8 activations, each off by at most max|x| / 254 (|x| <= 1
                            // here); matmul: int8 activations and their remainders
                            // (`refinedPrefill`), each off by at most max|x| / 254 / 254.
                            let weightSum = (0..<cols).reduce(0.0) { $0 + abs(Double(layers[k].value(o, $1))) }
                            let tolerance = weightSum / (tokens == 1 ? 254 : 254 * 254) + magnitude * 1e-5 + 1e-6
                            XCTAssertEqual(Double(ys[k][t * w.rows + o]), exact, accuracy: tolerance, "\(table.isa) matrix \(k) token \(t) row \(o)")
                        }
                    }
                }
            }
        }
        withExtendedLifetime(owners) {}
    }

    func testBadGroupIndexIsRefused() throws {
        var layer = GPTQLayer(bits: 4, inFeatures: 64, outFeatures: 8, groupSize: 32, symmetric: true, actOrder: false)
        layer.groupIndex[5] = 9
        XCTAssertThrowsError(try layer.repacked()) { XCTAssertTrue("\($0)".contains("g_idx[5]"), "\($0)") }
        layer.groupIndex[5] = 1      // group 1 now has 33 columns: no 32-column block of one group
        XCTAssertThrowsError(try layer.repacked()) { XCTAssertTrue("\($0)".contains("32-column"), "\($0)") }
        layer.groupIndex[5] = 0
        layer.scales[3] = .infinity
        XCTAssertThrowsError(try layer.repacked()) { XCTAssertTrue("\($0)".contains("not finite"), "\($0)") }
    }
}
