import Foundation
import XCTest
@testable import Kernels
import COpenBLAS

/// Scalar references against gguf-py (an independent implementation), then every
/// fast path against the scalar references.
final class KernelsTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures")

    /// A fixture written by scripts/gen-quant-fixtures.py: the matrix, gguf-py's values,
    /// an x vector and the f64 dot products of the values with it.
    struct Fixture {
        let storage: [UInt8]
        let matrix: WeightMatrix
        let expected: [Float]    // [rows, cols]
        let x: [Float]           // [cols]
        let dots: [Double]       // [rows]
    }

    func fixture(_ type: GGMLType) throws -> Fixture {
        if !type.isGGML { return try Self.zeroPointFixture(type) }
        let data = try Data(contentsOf: Self.fixtures.appendingPathComponent("quant-\(type.name).bin"))
        let bytes = [UInt8](data)
        func u32(_ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 | Int(bytes[at + 2]) << 16 | Int(bytes[at + 3]) << 24 }
        XCTAssertEqual(u32(0), Int(type.rawValue))
        let rows = u32(4), cols = u32(8)
        let rowBytes = try XCTUnwrap(type.rowSize(cols))
        let valuesAt = 12 + rows * rowBytes, xAt = valuesAt + 4 * rows * cols, dotsAt = xAt + 4 * cols
        XCTAssertEqual(bytes.count, dotsAt + 8 * rows)
        func f32(_ at: Int) -> Float { Float(bitPattern: UInt32(u32(at))) }
        func f64(_ at: Int) -> Double { Double(bitPattern: UInt64(u32(at)) | UInt64(u32(at + 4)) << 32) }
        let storage = Array(bytes[12..<valuesAt])
        let matrix = try storage.withUnsafeBytes { try WeightMatrix(type: type, rows: rows, cols: cols, data: $0.baseAddress!) }
        return Fixture(storage: storage, matrix: matrix,
                       expected: (0..<(rows * cols)).map { f32(valuesAt + 4 * $0) },
                       x: (0..<cols).map { f32(xAt + 4 * $0) },
                       dots: (0..<rows).map { f64(dotsAt + 8 * $0) })
    }

    static let quantized: [GGMLType] = [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q5_K, .q6_K, .f16, .bf16, .q4_Z, .q8_Z]

    /// The engine's own zero-point formats have no gguf-py: their fixture is a random
    /// asymmetric GPTQ layer repacked (ggml layout rebuilt from the interleaved one), with
    /// GPTQ's own values and their f64 dots as the expectations.
    static func zeroPointFixture(_ type: GGMLType) throws -> Fixture {
        let layer = GPTQLayer(bits: type == .q4_Z ? 4 : 8, inFeatures: 512, outFeatures: 16, groupSize: 64, symmetric: false, actOrder: false)
        let owner = try layer.repacked()
        let interleaved = owner.matrix
        defer { withExtendedLifetime(owner) {} }
        XCTAssertEqual(interleaved.type, type)
        let (rows, cols) = (interleaved.rows, interleaved.cols)
        var storage = [UInt8](repeating: 0, count: rows * interleaved.rowBytes)
        storage.withUnsafeMutableBytes { out in
            for r in 0..<rows { ggmlRow(type, cols: cols, interleaved.row(r), into: out.baseAddress! + r * interleaved.rowBytes) }
        }
        var random = SystemRandomNumberGenerator()
        let x = (0..<cols).map { _ in Float.random(in: -1...1, using: &random) }
        let expected = (0..<(rows * cols)).map { layer.value($0 / cols, $0 % cols) }
        let dots = (0..<rows).map { r in (0..<cols).reduce(0.0) { $0 + Double(expected[r * cols + $1]) * Double(x[$1]) } }
        let matrix = try storage.withUnsafeBytes { try WeightMatrix(type: type, rows: rows, cols: cols, data: $0.baseAddress!) }
        return Fixture(storage: storage, matrix: matrix, expected: expected, x: x, dots: dots)
    }

    func testReferenceDequantizationEqualsGGUFPy() throws {
        for type in Self.quantized {
            let f = try fixture(type)
            try f.storage.withUnsafeBytes { raw in
                let m = try WeightMatrix(type: type, rows: f.matrix.rows, cols: f.matrix.cols, data: raw.baseAddress!)
                var out = [Float](repeating: .nan, count: m.cols)
                for r in 0..<m.rows {
                    out.withUnsafeMutableBufferPointer { Reference.dequantizeRow(m, row: r, into: $0.baseAddress!) }
                    for c in 0..<m.cols {
                        let want = f.expected[r * m.cols + c]
                        // gguf-py computes in f32 with ggml's operations in ggml's order: exactly
                        // equal (bitwise but for the sign of zero: ours adds a zero min to d * 0).
                        XCTAssertEqual(out[c], want, "\(type.name) row \(r) col \(c)")
                    }
                }
            }
        }
    }

    /// Every instruction set this build has and this CPU runs (an AVX-512 machine tests
    /// its AVX2 and AVX-VNNI paths too), with its table.
    static var tables: [KernelTable] { KernelTable.available.compactMap { KernelTable.forInstructionSet($0) } }

    /// Bound on |Σ w x - Σ w x̃| where x̃ is x quantized to int8 per `blockSize` values:
    /// each x_i moves by at most max|x in its block| / 254.
    static func quantizationBound(_ values: ArraySlice<Float>, _ x: [Float], blockSize: Int) -> Double {
        var bound = 0.0
        for (c, v) in zip(0..., values) {
            let block = x[(c / blockSize * blockSize)..<(c / blockSize * blockSize + blockSize)]
            bound += Double(abs(v) * (block.map(abs).max() ?? 0) / 254)
        }
        return bound
    }

    /// Runs the decode kernel of `table` for all rows of m with input x.
    static func kernelRows(_ table: KernelTable, _ m: WeightMatrix, _ x: [Float]) -> [Float] {
        let activations = QuantizedActivations(capacity: m.cols)
        var y = [Float](repeating: .nan, count: m.rows)
        x.withUnsafeBufferPointer { xp in
            activations.prepare(xp.baseAddress!, cols: m.cols, forms: [m.type.activationForm], kernels: table)
            y.withUnsafeMutableBufferPointer {
                table.rows(for: m)(m.data, m.rowBytes, m.cols, m.rows, activations.vectors, 1, $0.baseAddress!, m.rows)
            }
        }
        return y
    }

    /// gguf-py's dots: the f64 reference to 1e-12; the reference on the kernels' int8
    /// activations to the quantization bound; every instruction set's kernel to the
    /// reference on those activations (f32 rounding only: 1e-5 of sum |w x|).
    func testDotsEqualGGUFPy() throws {
        for type in Self.quantized {
            let f = try fixture(type)
            try f.storage.withUnsafeBytes { raw in
                let m = try WeightMatrix(type: type, rows: f.matrix.rows, cols: f.matrix.cols, data: raw.baseAddress!)
                let seen = Reference.activationsAsSeenByKernels(f.x, type: type)
                let repacked = RepackedMatrix.interleaving(m)
                let layouts = [("ggml", m)] + (repacked.map { [("interleaved", $0.matrix)] } ?? [])
                let perISA = layouts.flatMap { l in Self.tables.map { ("\($0.isa) \(l.0)", Self.kernelRows($0, l.1, f.x)) } }
                for r in 0..<m.rows {
                    let values = f.expected[(r * m.cols)..<((r + 1) * m.cols)]
                    let magnitude = zip(values, f.x).reduce(0.0) { $0 + Double(abs($1.0 * $1.1)) }
                    let bound = type.activationForm == .float ? 0 : Self.quantizationBound(values, f.x, blockSize: 32)
                    let onSeen = seen.withUnsafeBufferPointer { Reference.dot(m, row: r, $0.baseAddress!) }
                    f.x.withUnsafeBufferPointer { xp in
                        XCTAssertEqual(Reference.dot(m, row: r, xp.baseAddress!), f.dots[r], accuracy: magnitude * 1e-12, "\(type.name) reference row \(r)")
                    }
                    XCTAssertEqual(onSeen, f.dots[r], accuracy: bound * 1.001 + magnitude * 1e-12, "\(type.name) int8 activations row \(r)")
                    for (isa, y) in perISA {
                        XCTAssertEqual(Double(y[r]), onSeen, accuracy: magnitude * 1e-5 + 1e-6, "\(type.name) \(isa) row \(r)")
                    }
                }
            }
        }
    }

    /// Each instruction set's quantizer gives exactly `Reference.quantize`'s int8 values,
    /// scales and sums, on random vectors with an all-zero block and a few outliers.
    func testActivationQuantizersEqualReference() {
        var random = SystemRandomNumberGenerator()
        let cols = 1024
        var x = (0..<cols).map { _ in Float.random(in: -2...2, using: &random) }
        for i in 256..<512 { x[i] = 0 }
        x[700] = 40; x[33] = -17
        let q8 = Reference.quantize(x)
        for table in Self.tables {
            let a = QuantizedActivations(capacity: cols)
            x.withUnsafeBufferPointer { a.prepare($0.baseAddress!, cols: cols, forms: [.q8], kernels: table) }
            let v = a.vectors[0]
            XCTAssertEqual(Array(UnsafeBufferPointer(start: v.q8, count: cols)), q8.q, "\(table.isa) q8")
            XCTAssertEqual(Array(UnsafeBufferPointer(start: v.d8, count: cols / 32)), q8.d, "\(table.isa) d8")
            XCTAssertEqual(Array(UnsafeBufferPointer(start: v.s8, count: cols / 32)), q8.s, "\(table.isa) s8")
            let recordBytes = laneRecordBytes(cols: cols)
            var want = [UInt8](repeating: 0, count: recordBytes)
            q8.q.withUnsafeBufferPointer { q in
                q8.d.withUnsafeBufferPointer { d in
                    want.withUnsafeMutableBytes { writeLaneRecords(q.baseAddress!, d.baseAddress!, cols: cols, $0.baseAddress!) }
                }
            }
            XCTAssertEqual(Array(UnsafeRawBufferPointer(start: v.lanes, count: recordBytes)), want, "\(table.isa) lane records")
        }
    }

    /// Each instruction set's dequantizer against the reference, and its decode kernel on
    /// random x against the reference dot on the kernels' activations.
    func testFastDequantizationAndDotEqualReference() throws {
        var random = SystemRandomNumberGenerator()
        for type in Self.quantized + [.f32] {
            let f = try fixture(type == .f32 ? .f16 : type)
            var storage = f.storage
            if type == .f32 {
                storage = f.expected.flatMap { v in withUnsafeBytes(of: v) { Array($0) } }
            }
            try storage.withUnsafeBytes { raw in
                let m = try WeightMatrix(type: type, rows: f.matrix.rows, cols: f.matrix.cols, data: raw.baseAddress!)
                let x = (0..<m.cols).map { _ in Float.random(in: -1...1, using: &random) }
                let seen = Reference.activationsAsSeenByKernels(x, type: type)
                var fast = [Float](repeating: .nan, count: m.cols)
                var reference = [Float](repeating: .nan, count: m.cols)
                let repacked = RepackedMatrix.interleaving(m)
                XCTAssertEqual(repacked != nil, type.blockSize >= 32, "\(type.name) interleaved layout")
                if let interleaved = repacked?.matrix {   // the repack keeps every value
                    var a = [Float](repeating: 0, count: m.cols), b = [Float](repeating: 1, count: m.cols)
                    for r in 0..<m.rows {
                        a.withUnsafeMutableBufferPointer { Reference.dequantizeRow(m, row: r, into: $0.baseAddress!) }
                        b.withUnsafeMutableBufferPointer { Reference.dequantizeRow(interleaved, row: r, into: $0.baseAddress!) }
                        XCTAssertEqual(a, b, "\(type.name) interleaved row \(r)")
                    }
                }
                let layouts = [("ggml", m)] + (repacked.map { [("interleaved", $0.matrix)] } ?? [])
                for (layout, fastMatrix, table) in layouts.flatMap({ l in Self.tables.map { (l.0, l.1, $0) } }) {
                    let y = Self.kernelRows(table, fastMatrix, x)
                    for r in 0..<m.rows {
                        fast.withUnsafeMutableBufferPointer { dequantizeRow(fastMatrix, row: r, into: $0.baseAddress!, kernels: table) }
                        reference.withUnsafeMutableBufferPointer { Reference.dequantizeRow(m, row: r, into: $0.baseAddress!) }
                        for c in 0..<m.cols {
                            XCTAssertEqual(fast[c], reference[c], accuracy: abs(reference[c]) * 1e-6 + 1e-7, "\(type.name) \(layout) \(table.isa) [\(r), \(c)]")
                        }
                        let magnitude = (0..<m.cols).reduce(0.0) { $0 + Double(abs(reference[$1] * seen[$1])) }
                        let want = seen.withUnsafeBufferPointer { Reference.dot(m, row: r, $0.baseAddress!) }
                        XCTAssertEqual(Double(y[r]), want, accuracy: magnitude * 1e-5 + 1e-6, "\(type.name) \(layout) \(table.isa) dot row \(r)")
                    }
                }
            }
        }
    }

    /// Where the table says so (`prefillRowsAreIndependent`: its own GEMM), a token's
    /// prefill product depends on nothing but its row: bit for bit the same for every batch
    /// size and every place in the batch, leftover weight rows and a partial last group of
    /// tokens included. (The engine batches several sequences' prompt chunks in one call,
    /// and copies prompt prefixes between sequences, on this.)
    func testPrefillRowsDoNotDependOnTheirBatch() throws {
        var random = SystemRandomNumberGenerator()
        let pool = ThreadPool(threads: 2)
        let rows = 70, cols = 520, tokens = 23
        let weights = (0..<(rows * cols)).map { _ in Float.random(in: -1...1, using: &random) }   // [rows, cols] f32
        let x = (0..<(tokens * cols)).map { _ in Float.random(in: -1...1, using: &random) }       // [tokens, cols]
        let tables = Self.tables.filter(\.prefillRowsAreIndependent)
        try weights.withUnsafeBytes { raw in
            let w = try WeightMatrix(type: .f32, rows: rows, cols: cols, data: raw.baseAddress!)
            for table in tables {
                var alone = [Float](repeating: 0, count: tokens * rows)                       // [tokens, rows], one call per token
                x.withUnsafeBufferPointer { xp in
                    alone.withUnsafeMutableBufferPointer { yp in
                        for t in 0..<tokens {
                            matmul(w, xp.baseAddress! + t * cols, yp.baseAddress! + t * rows, n: 1, pool: pool, kernels: table)
                        }
                    }
                }
                for (first, count) in [(0, tokens), (0, 5), (3, 6), (7, 1), (2, 17), (9, 14)] {
                    var batched = [Float](repeating: .nan, count: count * rows)
                    x.withUnsafeBufferPointer { xp in
                        batched.withUnsafeMutableBufferPointer { yp in
                            matmul(w, xp.baseAddress! + first * cols, yp.baseAddress!, n: count, pool: pool, kernels: table)
                        }
                    }
                    XCTAssertEqual(batched, Array(alone[(first * rows)..<((first + count) * rows)]),
                                   "\(table.isa): tokens \(first)..<\(first + count) in one call")
                }
            }
        }
        for isa in [InstructionSet.avx2, .avxvnni, .avx512] where KernelTable.available.contains(isa) {
            XCTAssertTrue(tables.contains { $0.isa == isa }, "the \(isa) table has its own GEMM")
        }
    }

    func testMatvecAndMatmulEqualReference() throws {
        let pool = ThreadPool(threads: 2)
        let widePool = ThreadPool(threads: 16)   // small tiles balanced over many threads
        var random = SystemRandomNumberGenerator()
        for type in Self.quantized + [.f32] {
            // A larger matrix built by repeating fixture rows (f32: random values).
            let rows = 67, cols = type == .f32 ? 520 : 512   // f32: a tail past the last whole vector
            var storage: [UInt8]
            if type == .f32 {
                storage = (0..<(rows * cols)).flatMap { _ in withUnsafeBytes(of: Float.random(in: -1...1, using: &random)) { Array($0) } }
            } else {
                let f = try fixture(type)
                storage = (0..<rows).flatMap { r in Array(f.storage[(r % f.matrix.rows) * f.matrix.rowBytes..<((r % f.matrix.rows) + 1) * f.matrix.rowBytes]) }
            }
            try storage.withUnsafeBytes { raw in
                let original = try WeightMatrix(type: type, rows: rows, cols: cols, data: raw.baseAddress!)
                // More tokens than one int8 tile of matmul holds (34 at 512 columns): a full
                // tile and a partial one.
                let n = 37
                let x = (0..<(n * cols)).map { _ in Float.random(in: -1...1, using: &random) }  // [n, cols]
                var dequantized = [Float](repeating: 0, count: rows * cols)                     // [rows, cols]
                dequantized.withUnsafeMutableBufferPointer { d in
                    for r in 0..<rows { Reference.dequantizeRow(original, row: r, into: d.baseAddress! + r * cols) }
                }
                let repacked = RepackedMatrix.interleaving(original)
                let layouts = [original] + (repacked.map { [$0.matrix] } ?? [])
                var expected = [Float](repeating: 0, count: n * rows)                            // [n, rows] on the kernels' activations
                var exact = [Float](repeating: 0, count: n * rows)                               // [n, rows] on x
                for t in 0..<n {
                    let seen = Reference.activationsAsSeenByKernels(Array(x[(t * cols)..<((t + 1) * cols)]), type: type)
                    seen.withUnsafeBufferPointer { s in
                        expected.withUnsafeMutableBufferPointer { Reference.matvec(original, s.baseAddress!, $0.baseAddress! + t * rows) }
                    }
                    x.withUnsafeBufferPointer { xp in
                        exact.withUnsafeMutableBufferPointer { Reference.matvec(original, xp.baseAddress! + t * cols, $0.baseAddress! + t * rows) }
                    }
                }
                // f32 accumulation in another order: relative to sum |w x| of the row and token.
                let tolerances = (0..<(n * rows)).map { i in                                    // [n, rows]
                    let (t, r) = i.quotientAndRemainder(dividingBy: rows)
                    return (0..<cols).reduce(Float(0)) { $0 + abs(dequantized[r * cols + $1] * x[t * cols + $1]) } * 1e-5 + 1e-6
                }
                for (m, table) in layouts.flatMap({ m in Self.tables.map { (m, $0) } }) {
                    var viaMatvec = [Float](repeating: .nan, count: n * rows)
                    var viaMatmul = [Float](repeating: .nan, count: n * rows)
                    var viaWideMatmul = [Float](repeating: .nan, count: n * rows)
                    x.withUnsafeBufferPointer { xp in
                        for t in 0..<n {
                            viaMatvec.withUnsafeMutableBufferPointer { matvec(m, xp.baseAddress! + t * cols, $0.baseAddress! + t * rows, pool: pool, kernels: table) }
                        }
                    }
                    x.withUnsafeBufferPointer { xp in
                        viaMatmul.withUnsafeMutableBufferPointer { matmul(m, xp.baseAddress!, $0.baseAddress!, n: n, pool: pool, kernels: table) }
                        viaWideMatmul.withUnsafeMutableBufferPointer { matmul(m, xp.baseAddress!, $0.baseAddress!, n: n, pool: widePool, kernels: table) }
                    }
                    for i in 0..<(n * rows) {
                        let tolerance = tolerances[i]
                        XCTAssertEqual(viaMatvec[i], expected[i], accuracy: tolerance, "\(type.name) \(m.layout) \(table.isa) matvec \(i)")
                        if type.activationForm == .q8 {
                            // Prefill of quantized matrices: the decode kernels' int8 arithmetic,
                            // each token bit for bit as decoded alone.
                            XCTAssertEqual(viaMatmul[i].bitPattern, viaMatvec[i].bitPattern, "\(type.name) \(m.layout) \(table.isa) matmul \(i)")
                            XCTAssertEqual(viaWideMatmul[i].bitPattern, viaMatvec[i].bitPattern, "\(type.name) \(m.layout) \(table.isa) 16-thread matmul \(i)")
                        } else {
                            XCTAssertEqual(viaMatmul[i], exact[i], accuracy: tolerance, "\(type.name) \(m.layout) \(table.isa) matmul \(i)")
                            XCTAssertEqual(viaWideMatmul[i], exact[i], accuracy: tolerance, "\(type.name) \(m.layout) \(table.isa) 16-thread matmul \(i)")
                        }
                    }
                }
            }
        }
    }

    /// Every table's RMSNorm is the portable `rmsNorm` bit for bit (the x86 tables fuse the
    /// squares with vfmadd where the portable module calls fmaf), for rows with and
    /// without a remainder past 16 and 8, and in place (x and y the same buffer).
    func testRMSNormKernelsEqualPortableBitForBit() {
        var random = SystemRandomNumberGenerator()
        for n in [896, 128, 64, 37, 7] {
            let x = (0..<n).map { _ in Float.random(in: -40...40, using: &random) }
            let weight = (0..<n).map { _ in Float.random(in: -2...2, using: &random) }
            var expected = [Float](repeating: 0, count: n)
            rmsNorm(x, weight, &expected, n: n, eps: 1e-6)
            for table in Self.tables {
                var y = [Float](repeating: .nan, count: n), inPlace = x
                table.rmsNorm(x, weight, &y, n, 1e-6)
                inPlace.withUnsafeMutableBufferPointer { table.rmsNorm($0.baseAddress!, weight, $0.baseAddress!, n, 1e-6) }
                for (result, how) in [(y, "into y"), (inPlace, "in place")] {
                    let differing = result.indices.first { result[$0].bitPattern != expected[$0].bitPattern }
                    XCTAssertNil(differing, "\(table.isa) rmsNorm \(how), n=\(n): value \(differing ?? -1) differs")
                }
            }
        }
    }

    /// Attention and SwiGLU of every instruction set against plain scalar formulas.
    func testAttentionAndSwiGLUEqualScalar() {
        var random = SystemRandomNumberGenerator()
        let headDim = 72, length = 37, kvStride = 2 * headDim   // values between rows (2 bytes each)
        let q = (0..<headDim).map { _ in Float.random(in: -1...1, using: &random) }
        let keys = (0..<(length * kvStride)).map { _ in Float16(Float.random(in: -2...2, using: &random)) }
        let values = (0..<(length * kvStride)).map { _ in Float16(Float.random(in: -2...2, using: &random)) }
        var weights = (0..<length).map { t in (0..<headDim).reduce(0.0) { $0 + Double(q[$1]) * Double(Float(keys[t * kvStride + $1])) } }
        let top = weights.max()!
        weights = weights.map { Foundation.exp($0 - top) }
        let total = weights.reduce(0, +)
        let want = (0..<headDim).map { i in (0..<length).reduce(0.0) { $0 + weights[$1] / total * Double(Float(values[$1 * kvStride + i])) } }
        let gate = (0..<37).map { _ in Float.random(in: -30...30, using: &random) }
        let up = (0..<37).map { _ in Float.random(in: -2...2, using: &random) }
        for table in Self.tables {
            var scores = [Float](repeating: 0, count: length), out = [Float](repeating: .nan, count: headDim)
            table.attend(q, 1, keys, values, 2 * kvStride, length, headDim, &scores, &out)
            for i in 0..<headDim { XCTAssertEqual(Double(out[i]), want[i], accuracy: 1e-5, "\(table.isa) attention \(i)") }
            var g = gate
            table.swiGLU(&g, up, g.count)
            for i in 0..<g.count {
                let expected = Double(gate[i]) / (1 + Foundation.exp(-Double(gate[i]))) * Double(up[i])
                XCTAssertEqual(Double(g[i]), expected, accuracy: abs(expected) * 1e-5 + 1e-6, "\(table.isa) swiGLU \(i)")
            }
        }
    }

    /// Attention of several query heads sharing a KV head gives each head exactly what it
    /// gets alone, on every table and cache type: the x86 kernels take up to four heads side
    /// by side (f16: headDim a multiple of 8; Q8_0: 16 columns per pass), the portable ones
    /// one head at a time.
    func testGroupedAttentionEqualsOneHeadAtATimeBitForBit() {
        var random = SystemRandomNumberGenerator()
        for (headDim, q8) in [(64, false), (128, false), (72, false), (36, false), (32, true), (64, true), (128, true)] {
            // One KV head's rows in a cache of two KV heads (rowBytes covers both), f16 or Q8_0.
            let headBytes = q8 ? headDim / 32 * Q8_0Format.blockBytes : 2 * headDim, rowBytes = 2 * headBytes
            for length in [1, 7, 33, 300] {
                let cache = (0..<(2 * length * rowBytes)).map { i -> UInt8 in
                    // f16: finite halves in (-2, 2) (exponent byte 0x3C-0x3F or 0xBC-0xBF); Q8_0: any int8, small scales.
                    if q8 { return i % Q8_0Format.blockBytes == 1 ? 0x20 : UInt8.random(in: 0...255, using: &random) }
                    return i % 2 == 1 ? UInt8.random(in: 0x38...0x3F, using: &random) | (Bool.random(using: &random) ? 0x80 : 0)
                                      : UInt8.random(in: 0...255, using: &random)
                }
                for heads in 1...8 {
                    let q = (0..<(heads * headDim)).map { _ in Float.random(in: -1...1, using: &random) }
                    cache.withUnsafeBytes { c in
                        let keys = c.baseAddress! + headBytes, values = keys + length * rowBytes
                        for table in Self.tables {
                            let attend = q8 ? table.attendQ8 : table.attend
                            var scores = [Float](repeating: .nan, count: heads * length)
                            var together = [Float](repeating: .nan, count: heads * headDim)
                            attend(q, heads, keys, values, rowBytes, length, headDim, &scores, &together)
                            for h in 0..<heads {
                                var alone = [Float](repeating: .nan, count: headDim), one = [Float](repeating: .nan, count: length)
                                Array(q[(h * headDim)..<((h + 1) * headDim)]).withUnsafeBufferPointer {
                                    attend($0.baseAddress!, 1, keys, values, rowBytes, length, headDim, &one, &alone)
                                }
                                let differing = (0..<headDim).first { together[h * headDim + $0].bitPattern != alone[$0].bitPattern }
                                XCTAssertNil(differing, "\(table.isa) q8 \(q8) headDim \(headDim) length \(length): head \(h) of \(heads), value \(differing ?? -1)")
                                XCTAssertFalse(alone.contains { !$0.isFinite }, "\(table.isa): head \(h) not finite")
                            }
                        }
                    }
                }
            }
        }
    }

    /// The override picks a lower path, never one this CPU lacks; the best one otherwise.
    func testInstructionSetSelection() {
        XCTAssertEqual(KernelTable.preferred(override: "generic"), .generic)
        XCTAssertEqual(KernelTable.preferred(override: nil), KernelTable.available.last)
        XCTAssertEqual(KernelTable.preferred(override: "nonsense"), KernelTable.available.last)
        for isa in InstructionSet.allCases {
            let chosen = KernelTable.preferred(override: isa.rawValue)
            XCTAssertTrue(KernelTable.available.contains(chosen))
            if KernelTable.available.contains(isa) { XCTAssertEqual(chosen, isa) }
        }
        print("kernel instruction sets on this CPU: \(KernelTable.available.map(\.rawValue)), selected: \(KernelTable.preferred(override: nil))")
    }

    /// OpenBLAS runs prefill where a table has no GEMM of its own (generic): once configured, it uses
    /// kernels with AVX2 wherever this CPU has them, even on a CPU newer than it knows
    /// (or the core the user named in OPENBLAS_CORETYPE).
    func testOpenBLASUsesTheVectorUnitsThisCPUHas() throws {
        OpenBLAS.useOneThread()
        let core = String(cString: try XCTUnwrap(openblas_get_corename())).lowercased()
        print("OpenBLAS core: \(core)")
        guard KernelTable.available.contains(.avx2), ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil else { return }
        XCTAssertFalse(OpenBLAS.coresWithoutAVX2.contains(core), "OpenBLAS chose \(core) on a CPU with AVX2 + FMA")
    }

    func testWeightMatrixRejectsPartialBlocks() throws {
        let bytes = [UInt8](repeating: 0, count: 64)
        try bytes.withUnsafeBytes { raw in
            XCTAssertThrowsError(try WeightMatrix(type: .q4_K, rows: 1, cols: 100, data: raw.baseAddress!))
            XCTAssertThrowsError(try WeightMatrix(type: .q8_0, rows: 0, cols: 32, data: raw.baseAddress!))
        }
        XCTAssertNil(GGMLType.q5_0.rowSize(33))
        XCTAssertEqual(GGMLType.q6_K.rowSize(512), 420)
    }

    func testThreadPoolRunsEveryItemOnceAndSerialisesJobs() {
        let pool = ThreadPool(threads: 3)
        for n in [1, 2, 7, 1000] {
            var hits = [Int](repeating: 0, count: n)
            hits.withUnsafeMutableBufferPointer { h in
                let base = h.baseAddress!
                pool.parallelFor(n) { i in base[i] += 1 }
            }
            XCTAssertEqual(hits, [Int](repeating: 1, count: n))
        }
        // Per-thread scratch: each item names the pool thread running it, and no two
        // threads share a number (each thread's counter is only touched by itself).
        var perThread = [Int](repeating: 0, count: pool.threads)
        var threadOfItem = [Int](repeating: -1, count: 5000)
        perThread.withUnsafeMutableBufferPointer { counts in
            threadOfItem.withUnsafeMutableBufferPointer { owner in
                let c = counts.baseAddress!, o = owner.baseAddress!
                pool.parallelFor(5000) { i, thread in
                    c[thread] += 1
                    o[i] = thread
                }
            }
        }
        XCTAssertEqual(perThread.reduce(0, +), 5000)
        XCTAssertTrue(threadOfItem.allSatisfy { (0..<pool.threads).contains($0) })
        // Concurrent submitters from several threads.
        let group = DispatchGroup()
        let totals = UnsafeMutablePointer<Int>.allocate(capacity: 4)
        totals.initialize(repeating: 0, count: 4)
        for s in 0..<4 {
            DispatchQueue.global().async(group: group) {
                for _ in 0..<50 {
                    let counts = UnsafeMutablePointer<Int>.allocate(capacity: 64)
                    counts.initialize(repeating: 0, count: 64)
                    pool.parallelFor(64) { i in counts[i] += 1 }
                    totals[s] += (0..<64).reduce(0) { $0 + counts[$1] }
                    counts.deallocate()
                }
            }
        }
        group.wait()
        XCTAssertEqual((0..<4).map { totals[$0] }, [3200, 3200, 3200, 3200])
        totals.deallocate()
    }

    func testDroppingAPoolStopsItsWorkers() throws {
        func threadCount() throws -> Int { try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count }
        // One pool first: a runtime that starts a helper thread of its own at the first
        // pthread_create (ThreadSanitizer does) has done so before the count.
        ThreadPool(threads: 3).parallelFor(8) { _ in }
        let before = try threadCount()
        for _ in 0..<20 {
            let pool = ThreadPool(threads: 3)
            pool.parallelFor(8) { _ in }
        }
        XCTAssertEqual(try threadCount(), before, "worker threads outlived their pools")
    }

    func testTransformerElementwiseKernels() {
        // RMSNorm: unit weights give rms 1.
        var x: [Float] = (0..<37).map { Float($0) - 18 }
        let weight = [Float](repeating: 1, count: 37)
        var y = [Float](repeating: 0, count: 37)
        rmsNorm(x, weight, &y, n: 37, eps: 0)
        XCTAssertEqual((y.reduce(0) { $0 + $1 * $1 } / 37).squareRoot(), 1, accuracy: 1e-5)
        // Softmax sums to 1 and keeps order.
        softmax(&x, n: 37)
        XCTAssertEqual(x.reduce(0, +), 1, accuracy: 1e-5)
        XCTAssertEqual(x.indices.max { x[$0] < x[$1] }, 36)
        // RoPE at position 0 is the identity; a rotation preserves each pair's norm.
        var cosines = [Float](repeating: 0, count: 4), sines = [Float](repeating: 0, count: 4)
        var v: [Float] = [1, 2, 3, 4, 5, 6, 7, 8]
        ropeAngles(position: 0, ropeDim: 8, theta: 10000, cosines: &cosines, sines: &sines)
        ropeNeoX(&v, heads: 1, headDim: 8, ropeDim: 8, cosines: cosines, sines: sines)
        XCTAssertEqual(v, [1, 2, 3, 4, 5, 6, 7, 8])
        ropeAngles(position: 7, ropeDim: 8, theta: 10000, cosines: &cosines, sines: &sines)
        ropeNeoX(&v, heads: 1, headDim: 8, ropeDim: 8, cosines: cosines, sines: sines)
        XCTAssertEqual(v[0] * v[0] + v[4] * v[4], 26, accuracy: 1e-4)
        XCTAssertEqual(v[0], 1 * Float(cos(7.0)) - 5 * Float(sin(7.0)), accuracy: 1e-5)
        // Attention over one position returns that position's value.
        let keys: [Float16] = [1, 0, 0, 1], values: [Float16] = [3, 4, 5, 6]
        for table in Self.tables {
            var scores = [Float](repeating: 0, count: 2), out = [Float](repeating: 0, count: 2)
            table.attend([1, 1], 1, keys, values, 4, 1, 2, &scores, &out)
            XCTAssertEqual(out, [3, 4], "\(table.isa)")
            table.attend([0, 0], 1, keys, values, 4, 2, 2, &scores, &out)
            XCTAssertEqual(out[0], 4, accuracy: 1e-6, "\(table.isa)")   // equal weights: the mean
            XCTAssertEqual(out[1], 5, accuracy: 1e-6, "\(table.isa)")
        }
    }
}
