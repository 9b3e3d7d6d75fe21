import Foundation
import XCTest
@testable import Kernels

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

    static let quantized: [GGMLType] = [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q5_K, .q6_K, .f16, .bf16]

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

    /// Dot products with gguf-py's x against gguf-py's f64 dots: the f64 reference to
    /// 1e-12, the f32 SIMD `dot` to 1e-5 and the int8 path (where this build has one)
    /// to the activation quantization bound, all relative to sum |w x|.
    func testDotsEqualGGUFPy() throws {
        for type in Self.quantized {
            let f = try fixture(type)
            try f.storage.withUnsafeBytes { raw in
                let m = try WeightMatrix(type: type, rows: f.matrix.rows, cols: f.matrix.cols, data: raw.baseAddress!)
                let activations = QuantizedActivations(capacity: m.cols)
                f.x.withUnsafeBufferPointer { activations.quantize($0.baseAddress!, count: m.cols) }
                for r in 0..<m.rows {
                    let values = f.expected[(r * m.cols)..<((r + 1) * m.cols)]
                    let magnitude = zip(values, f.x).reduce(0.0) { $0 + Double(abs($1.0 * $1.1)) }
                    // x_i moves by at most max|x in its 32-block| / 254 when quantized to int8.
                    var quantizationBound = 0.0
                    for (c, v) in values.enumerated() {
                        let block = f.x[(c / 32 * 32)..<(c / 32 * 32 + 32)]
                        quantizationBound += Double(abs(v) * (block.map(abs).max() ?? 0) / 254)
                    }
                    f.x.withUnsafeBufferPointer { xp in
                        let x = xp.baseAddress!
                        XCTAssertEqual(Reference.dot(m, row: r, x), f.dots[r], accuracy: magnitude * 1e-12, "\(type.name) reference row \(r)")
                        XCTAssertEqual(Double(dot(m, row: r, x)), f.dots[r], accuracy: magnitude * 1e-5, "\(type.name) f32 row \(r)")
                        if type.hasInt8Path {
                            XCTAssertEqual(Double(fastDot(m, row: r, x, activations.view)), f.dots[r],
                                           accuracy: quantizationBound * 1.01 + magnitude * 1e-5, "\(type.name) int8 row \(r)")
                        }
                    }
                }
            }
        }
    }

    func testFastDequantizationAndDotEqualReference() throws {
        var random = SystemRandomNumberGenerator()
        for type in Self.quantized {
            let f = try fixture(type)
            try f.storage.withUnsafeBytes { raw in
                let m = try WeightMatrix(type: type, rows: f.matrix.rows, cols: f.matrix.cols, data: raw.baseAddress!)
                let x = (0..<m.cols).map { _ in Float.random(in: -1...1, using: &random) }
                var fast = [Float](repeating: .nan, count: m.cols)
                var reference = [Float](repeating: .nan, count: m.cols)
                for r in 0..<m.rows {
                    fast.withUnsafeMutableBufferPointer { dequantizeRow(m, row: r, into: $0.baseAddress!) }
                    reference.withUnsafeMutableBufferPointer { Reference.dequantizeRow(m, row: r, into: $0.baseAddress!) }
                    for c in 0..<m.cols {
                        XCTAssertEqual(fast[c], reference[c], accuracy: abs(reference[c]) * 1e-6 + 1e-7, "\(type.name) [\(r), \(c)]")
                    }
                    let magnitude = (0..<m.cols).reduce(0.0) { $0 + Double(abs(reference[$1] * x[$1])) }
                    let want = x.withUnsafeBufferPointer { Reference.dot(m, row: r, $0.baseAddress!) }
                    let got = x.withUnsafeBufferPointer { dot(m, row: r, $0.baseAddress!) }
                    // f32 accumulation in a different order: relative to sum |w x|.
                    XCTAssertEqual(Double(got), want, accuracy: magnitude * 1e-5 + 1e-6, "\(type.name) dot row \(r)")
                }
            }
        }
    }

    func testMatvecAndMatmulEqualReference() throws {
        let pool = ThreadPool(threads: 2)
        var random = SystemRandomNumberGenerator()
        for type in Self.quantized + [.f32] {
            // A larger matrix built by repeating fixture rows (f32: random values).
            let rows = 67, cols = 512
            var storage: [UInt8]
            if type == .f32 {
                storage = (0..<(rows * cols)).flatMap { _ in withUnsafeBytes(of: Float.random(in: -1...1, using: &random)) { Array($0) } }
            } else {
                let f = try fixture(type)
                storage = (0..<rows).flatMap { r in Array(f.storage[(r % f.matrix.rows) * f.matrix.rowBytes..<((r % f.matrix.rows) + 1) * f.matrix.rowBytes]) }
            }
            try storage.withUnsafeBytes { raw in
                let m = try WeightMatrix(type: type, rows: rows, cols: cols, data: raw.baseAddress!)
                let n = 5
                let x = (0..<(n * cols)).map { _ in Float.random(in: -1...1, using: &random) }  // [n, cols]
                var expected = [Float](repeating: 0, count: n * rows)                            // [n, rows]
                var viaMatvec = [Float](repeating: .nan, count: n * rows)
                var viaMatmul = [Float](repeating: .nan, count: n * rows)
                x.withUnsafeBufferPointer { xp in
                    for t in 0..<n {
                        expected.withUnsafeMutableBufferPointer { Reference.matvec(m, xp.baseAddress! + t * cols, $0.baseAddress! + t * rows) }
                        viaMatvec.withUnsafeMutableBufferPointer { matvec(m, xp.baseAddress! + t * cols, $0.baseAddress! + t * rows, pool: pool) }
                    }
                    viaMatmul.withUnsafeMutableBufferPointer { matmul(m, xp.baseAddress!, $0.baseAddress!, n: n, pool: pool) }
                }
                // The int8 path quantizes x to 8 bits per 32-block: each x_i moves by at most
                // blockmax/254, so |error| <= sum |w_i| blockmax_i / 254 (plus f32 rounding).
                var row = [Float](repeating: 0, count: cols)
                for i in 0..<(n * rows) {
                    let (t, r) = i.quotientAndRemainder(dividingBy: rows)
                    row.withUnsafeMutableBufferPointer { Reference.dequantizeRow(m, row: r, into: $0.baseAddress!) }
                    var quantizationBound: Float = 0
                    if type.hasInt8Path {
                        for c in 0..<cols {
                            let block = x[(t * cols + c / 32 * 32)..<(t * cols + c / 32 * 32 + 32)]
                            quantizationBound += abs(row[c]) * (block.map(abs).max() ?? 0) / 254
                        }
                    }
                    let tolerance = max(1e-4, abs(expected[i]) * 1e-4) + quantizationBound * 1.01
                    XCTAssertEqual(viaMatvec[i], expected[i], accuracy: tolerance, "\(type.name) matvec \(i)")
                    XCTAssertEqual(viaMatmul[i], expected[i], accuracy: max(1e-4, abs(expected[i]) * 1e-4), "\(type.name) matmul \(i)")
                }
            }
        }
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
        var scores = [Float](repeating: 0, count: 2), out = [Float](repeating: 0, count: 2)
        attendHead(q: [1, 1], keys: keys, values: values, kvStride: 2, length: 1, headDim: 2, scores: &scores, out: &out)
        XCTAssertEqual(out, [3, 4])
        attendHead(q: [0, 0], keys: keys, values: values, kvStride: 2, length: 2, headDim: 2, scores: &scores, out: &out)
        XCTAssertEqual(out, [4, 5])   // equal weights: the mean
    }
}
