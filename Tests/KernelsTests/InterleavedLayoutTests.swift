import XCTest
@testable import Kernels

/// The interleaved layout (Interleave.swift) on every group shape against the scalar
/// references, and decode of a batch of vectors: bit for bit what each vector gives alone.
final class InterleavedLayoutTests: XCTestCase {
    typealias Random = KernelsBenchmark.SplitMix64

    static let quantized: [GGMLType] = [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_Z, .q8_Z, .q4_K, .q5_K, .q6_K]
    static let floats: [GGMLType] = [.f32, .f16, .bf16]

    /// Column counts: 32-value blocks in groups of 8 only (4096, 4864 = 152 blocks), with a
    /// group of 4 (128, 896 = 28 blocks), with groups of 1 (96 = 3), with all three (416 =
    /// 13, 480 = 15); K-quants: 1, 5 and 19 blocks of 256.
    static func columnCounts(_ type: GGMLType) -> [Int] {
        switch type.blockSize {
        case 256: return [256, 1280, 4864]
        case 32: return [96, 128, 416, 480, 896, 4096, 4864]
        default: return [100, 896, 4864]
        }
    }

    /// A random [rows, cols] matrix of `type` in ggml's layout: random bytes, with every f16
    /// field a small finite value (zero points: integers in the format's range).
    static func randomMatrix(_ type: GGMLType, rows: Int, cols: Int, _ random: inout Random) -> [UInt8] {
        let rowBytes = type.rowSize(cols)!
        var bytes = (0..<(rows * rowBytes)).map { _ in UInt8.random(in: 0...255, using: &random) }
        func half(_ at: Int, _ value: Float) {
            let bits = Float16(value).bitPattern
            bytes[at] = UInt8(bits & 0xFF); bytes[at + 1] = UInt8(bits >> 8)
        }
        switch type {
        case .f32:
            for i in 0..<(rows * cols) {
                withUnsafeBytes(of: Float.random(in: -1...1, using: &random)) { for j in 0..<4 { bytes[4 * i + j] = $0[j] } }
            }
        case .f16:
            for i in 0..<(rows * cols) { half(2 * i, .random(in: -1...1, using: &random)) }
        case .bf16:
            for i in 0..<(rows * cols) {
                let bits = Float.random(in: -1...1, using: &random).bitPattern >> 16
                bytes[2 * i] = UInt8(bits & 0xFF); bytes[2 * i + 1] = UInt8(bits >> 8)
            }
        default:
            for block in 0..<(rows * cols / type.blockSize) {
                let at = block * type.blockBytes
                switch type {
                case .q4_K, .q5_K:
                    half(at, .random(in: 0.001...0.01, using: &random)); half(at + 2, .random(in: 0.001...0.01, using: &random))
                case .q6_K: half(at + 208, .random(in: 0.001...0.01, using: &random))
                case .q4_Z: half(at, .random(in: 0.001...0.05, using: &random)); half(at + 2, Float(Int.random(in: 1...16, using: &random)))
                case .q8_Z: half(at, .random(in: 0.001...0.05, using: &random)); half(at + 2, Float(Int.random(in: -127...128, using: &random)))
                case .q4_1, .q5_1:
                    half(at, .random(in: 0.001...0.05, using: &random)); half(at + 2, .random(in: -0.2...0.2, using: &random))
                default: half(at, .random(in: -0.05...0.05, using: &random))
                }
            }
        }
        return bytes
    }

    /// Runs the decode kernel of `table` on all rows of m for the vectors x[count, cols]:
    /// y[count, rows].
    static func decode(_ table: KernelTable, _ m: WeightMatrix, _ x: [Float], count: Int) -> [Float] {
        let activations = QuantizedActivations(capacity: count * m.cols)
        var y = [Float](repeating: .nan, count: count * m.rows)
        x.withUnsafeBufferPointer { xp in
            activations.prepare(xp.baseAddress!, count: count, cols: m.cols, forms: [m.type.activationForm], kernels: table)
            y.withUnsafeMutableBufferPointer {
                table.rows(for: m)(m.data, m.rowBytes, m.cols, m.rows, activations.vectors, count, $0.baseAddress!, m.rows)
            }
        }
        return y
    }

    /// Every quantized format on every group shape: the repack keeps every value (reference
    /// dequantization of both layouts equal), each instruction set's dequantizer and decode
    /// kernel equal the references (the decode on the kernels' int8 activations, to f32
    /// rounding: 1e-5 of Σ |w x|).
    func testEveryGroupShapeEqualsReference() throws {
        var random = Random(seed: 11)
        let rows = 3
        for type in Self.quantized {
            for cols in Self.columnCounts(type) {
                let bytes = Self.randomMatrix(type, rows: rows, cols: cols, &random)
                let x = (0..<cols).map { _ in Float.random(in: -1...1, using: &random) }
                let seen = Reference.activationsAsSeenByKernels(x, type: type)
                try bytes.withUnsafeBytes { raw in
                    let m = try WeightMatrix(type: type, rows: rows, cols: cols, data: raw.baseAddress!)
                    let owner = try XCTUnwrap(RepackedMatrix.interleaving(m))
                    let interleaved = owner.matrix
                    XCTAssertEqual(interleaved.layout, .interleaved)
                    var want = [Float](repeating: 0, count: cols), got = [Float](repeating: 1, count: cols)
                    let ys = Self.tables.map { ($0, Self.decode($0, interleaved, x, count: 1)) }
                    for r in 0..<rows {
                        want.withUnsafeMutableBufferPointer { Reference.dequantizeRow(m, row: r, into: $0.baseAddress!) }
                        got.withUnsafeMutableBufferPointer { Reference.dequantizeRow(interleaved, row: r, into: $0.baseAddress!) }
                        XCTAssertEqual(got, want, "\(type.name) \(cols) row \(r): repack")
                        let dot = seen.withUnsafeBufferPointer { Reference.dot(m, row: r, $0.baseAddress!) }
                        let magnitude = (0..<cols).reduce(0.0) { $0 + Double(abs(want[$1] * seen[$1])) }
                        for (table, y) in ys {
                            got.withUnsafeMutableBufferPointer { dequantizeRow(interleaved, row: r, into: $0.baseAddress!, kernels: table) }
                            for c in 0..<cols where abs(got[c] - want[c]) > abs(want[c]) * 1e-6 + 1e-7 {
                                XCTFail("\(type.name) \(cols) \(table.isa) dequantized [\(r), \(c)]: \(got[c]) != \(want[c])")
                                break
                            }
                            XCTAssertEqual(Double(y[r]), dot, accuracy: magnitude * 1e-5 + 1e-6, "\(type.name) \(cols) \(table.isa) dot row \(r)")
                        }
                    }
                    withExtendedLifetime(owner) {}
                }
            }
        }
    }

    static var tables: [KernelTable] { KernelsTests.tables }

    /// The engine's contract: vector b's results with count = B equal, bit for bit, those
    /// for that vector alone (count = 1), for B in 1...9, on every instruction set, every
    /// format and layout the engine decodes, odd row counts and every group shape (13 rows:
    /// AVX-512's four-row kernels take rows 3 apart, then a single row).
    func testBatchEqualsEachVectorAloneBitForBit() throws {
        var random = Random(seed: 12)
        let batch = 9
        for type in Self.quantized + Self.floats {
          for rows in [7, 13] {
            for cols in Self.columnCounts(type) {
                let bytes = Self.randomMatrix(type, rows: rows, cols: cols, &random)
                var x = (0..<(batch * cols)).map { _ in Float.random(in: -1...1, using: &random) }   // [batch, cols]
                for i in 0..<32 { x[3 * cols + i] = 0 }                                               // an all-zero block
                try bytes.withUnsafeBytes { raw in
                    let ggml = try WeightMatrix(type: type, rows: rows, cols: cols, data: raw.baseAddress!)
                    let owner = RepackedMatrix.interleaving(ggml)
                    let m = owner?.matrix ?? ggml
                    XCTAssertEqual(m.layout, type.blockSize >= 32 ? .interleaved : .ggml)
                    for table in Self.tables {
                        let alone = (0..<batch).map { b in Self.decode(table, m, Array(x[(b * cols)..<((b + 1) * cols)]), count: 1) }
                        for count in 1...batch {
                            let y = Self.decode(table, m, Array(x[0..<(count * cols)]), count: count)
                            for b in 0..<count where y[(b * rows)..<((b + 1) * rows)].map(\.bitPattern) != alone[b].map(\.bitPattern) {
                                XCTFail("\(type.name) \(cols) \(table.isa) count \(count) vector \(b): \(Array(y[(b * rows)..<((b + 1) * rows)])) != \(alone[b])")
                            }
                        }
                    }
                    withExtendedLifetime(owner) {}
                }
            }
          }
        }
    }

    /// A row's bits depend neither on which rows a kernel call gets (matvec's chunks, which
    /// the AVX-512 kernels pair differently) nor on the threads: matvec over pools of 1, 2
    /// and 3 threads equals one kernel call on all rows, for a batch of 3.
    func testRowChunkingDoesNotChangeBits() throws {
        var random = Random(seed: 14)
        let rows = 75, count = 3
        let pools = [1, 2, 3].map { ThreadPool(threads: $0) }
        for type in Self.quantized + Self.floats {
            let cols = type.blockSize == 256 ? 512 : 416
            let bytes = Self.randomMatrix(type, rows: rows, cols: cols, &random)
            let x = (0..<(count * cols)).map { _ in Float.random(in: -1...1, using: &random) }   // [count, cols]
            try bytes.withUnsafeBytes { raw in
                let ggml = try WeightMatrix(type: type, rows: rows, cols: cols, data: raw.baseAddress!)
                let owner = RepackedMatrix.interleaving(ggml)
                let m = owner?.matrix ?? ggml
                for table in Self.tables {
                    let whole = Self.decode(table, m, x, count: count)
                    for pool in pools {
                        var y = [Float](repeating: .nan, count: count * rows)
                        x.withUnsafeBufferPointer { xp in
                            y.withUnsafeMutableBufferPointer { matvec([m], xp.baseAddress!, count: count, [$0.baseAddress!], pool: pool, kernels: table) }
                        }
                        XCTAssertEqual(y.map(\.bitPattern), whole.map(\.bitPattern), "\(type.name) \(table.isa) \(pool.threads) threads")
                    }
                }
                withExtendedLifetime(owner) {}
            }
        }
    }

    /// The lane records of kernel_abi.h on every group shape, from each instruction set's
    /// quantizer: equal to the portable writer on the reference's int8 values.
    func testLaneRecordsOnEveryGroupShape() {
        var random = Random(seed: 13)
        for cols in [32, 96, 128, 416, 480, 896, 4864] {
            let x = (0..<cols).map { _ in Float.random(in: -3...3, using: &random) }
            let q8 = Reference.quantize(x)
            var want = [UInt8](repeating: 0, count: laneRecordBytes(cols: cols))
            q8.q.withUnsafeBufferPointer { q in
                q8.d.withUnsafeBufferPointer { d in
                    want.withUnsafeMutableBytes { writeLaneRecords(q.baseAddress!, d.baseAddress!, cols: cols, $0.baseAddress!) }
                }
            }
            for table in Self.tables {
                let a = QuantizedActivations(capacity: cols)
                x.withUnsafeBufferPointer { a.prepare($0.baseAddress!, cols: cols, forms: [.q8], kernels: table) }
                XCTAssertEqual(Array(UnsafeRawBufferPointer(start: a.vectors[0].lanes, count: want.count)), want, "\(table.isa) \(cols)")
            }
        }
    }
}
