import Foundation
import XCTest
@testable import Kernels

/// The q8 KV cache's kernels: its row quantizer against gguf-py's Q8_0, and every
/// instruction set's Q8_0 attention against the scalar reference.
final class KVCacheKernelTests: XCTestCase {
    /// Tests/Fixtures/kv-q8_0.bin (scripts/gen-kv-q8-fixture.py): f32 rows and gguf-py's
    /// Q8_0 blocks of them, ties included; the row quantizer writes the same bytes.
    func testRowQuantizerEqualsGGUFPy() throws {
        let bytes = [UInt8](try Data(contentsOf: KernelsTests.fixtures.appendingPathComponent("kv-q8_0.bin")))
        func u32(_ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 | Int(bytes[at + 2]) << 16 | Int(bytes[at + 3]) << 24 }
        let rows = u32(0), cols = u32(4), rowBytes = cols / 32 * 34
        let blocksAt = 8 + 4 * rows * cols
        XCTAssertEqual(bytes.count, blocksAt + rows * rowBytes)
        let values = (0..<(rows * cols)).map { Float(bitPattern: UInt32(u32(8 + 4 * $0))) }   // [rows, cols]
        var row = [UInt8](repeating: 0, count: rowBytes)                                      // [rowBytes]
        for r in 0..<rows {
            values.withUnsafeBufferPointer { x in
                row.withUnsafeMutableBytes { quantizeRowQ8_0(x.baseAddress! + r * cols, count: cols, into: $0.baseAddress!) }
            }
            XCTAssertEqual(row, Array(bytes[(blocksAt + r * rowBytes)..<(blocksAt + (r + 1) * rowBytes)]), "row \(r)")
        }
    }

    /// The quantized rows of quant-Q8_0.bin (gguf-py's quantizer) are fixed points: their
    /// dequantized values quantize back to the same blocks.
    func testRowQuantizerKeepsGGUFPyBlocks() throws {
        // The layout of gen-quant-fixtures.py: u32 type, rows, cols; blocks; f32 values.
        let bytes = [UInt8](try Data(contentsOf: KernelsTests.fixtures.appendingPathComponent("quant-Q8_0.bin")))
        func u32(_ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 | Int(bytes[at + 2]) << 16 | Int(bytes[at + 3]) << 24 }
        let rows = u32(4), cols = u32(8), rowBytes = cols / 32 * 34, valuesAt = 12 + rows * rowBytes
        let values = (0..<(rows * cols)).map { Float(bitPattern: UInt32(u32(valuesAt + 4 * $0))) }   // [rows, cols]
        var row = [UInt8](repeating: 0, count: rowBytes)   // [rowBytes]
        XCTAssertEqual(rows, 5)
        for r in 3..<rows {                                // rows 0-2 are random bytes, not quantizer output
            values.withUnsafeBufferPointer { x in
                row.withUnsafeMutableBytes { quantizeRowQ8_0(x.baseAddress! + r * cols, count: cols, into: $0.baseAddress!) }
            }
            XCTAssertEqual(row, Array(bytes[(12 + r * rowBytes)..<(12 + (r + 1) * rowBytes)]), "row \(r)")
        }
    }

    /// A broken model's NaN or infinite activations quantize without trapping.
    func testRowQuantizerSurvivesNonFiniteValues() {
        var x = [Float](repeating: 1, count: 64)
        x[3] = .nan
        x[40] = .infinity
        var row = [UInt8](repeating: 0, count: 68)
        x.withUnsafeBufferPointer { p in row.withUnsafeMutableBytes { quantizeRowQ8_0(p.baseAddress!, count: 64, into: $0.baseAddress!) } }
        XCTAssertEqual(Int8(bitPattern: row[2]), 127)
    }

    /// Q8_0 attention of every instruction set: the scalar reference against an f64
    /// formula on the dequantized rows, each fast path against the reference (1e-5), over
    /// head sizes of 1, 2 and 3 blocks (the fast path's pairs and its odd block), lengths
    /// below and above 8 positions, on the second head of each row (offsets and strides).
    func testQ8AttentionEqualsReference() {
        var random = SystemRandomNumberGenerator()
        for (headDim, length) in [(32, 5), (64, 37), (96, 300), (128, 129)] {
            let kvDim = 2 * headDim, rowBytes = kvDim / 32 * 34, headBytes = headDim / 32 * 34
            let q = (0..<headDim).map { _ in Float.random(in: -1...1, using: &random) }           // [headDim]
            let k = (0..<(length * kvDim)).map { _ in Float.random(in: -2...2, using: &random) }  // [length, kvDim]
            let v = (0..<(length * kvDim)).map { _ in Float.random(in: -2...2, using: &random) }  // [length, kvDim]
            // [length, rowBytes] Q8_0 rows and [length, kvDim] what they hold.
            let (keys, kSeen) = AttentionBlockTests.cacheRows(k, rows: length, kvDim: kvDim, rowBytes: rowBytes, q8: true)
            let (values, vSeen) = AttentionBlockTests.cacheRows(v, rows: length, kvDim: kvDim, rowBytes: rowBytes, q8: true)
            var weights = (0..<length).map { t in (0..<headDim).reduce(0.0) { $0 + Double(q[$1]) * Double(kSeen[t * kvDim + headDim + $1]) } }
            let top = weights.max()!
            weights = weights.map { Foundation.exp($0 - top) }
            let total = weights.reduce(0, +)
            let want = (0..<headDim).map { i in (0..<length).reduce(0.0) { $0 + weights[$1] / total * Double(vSeen[$1 * kvDim + headDim + i]) } }

            func run(_ table: KernelTable) -> [Float] {
                var scores = [Float](repeating: 0, count: length), out = [Float](repeating: .nan, count: headDim)
                keys.withUnsafeBytes { kp in
                    values.withUnsafeBytes { vp in
                        table.attendQ8(q, 1, kp.baseAddress! + headBytes, vp.baseAddress! + headBytes, rowBytes, length, headDim, &scores, &out)
                    }
                }
                return out
            }
            let reference = run(GenericKernels.table)
            for i in 0..<headDim { XCTAssertEqual(Double(reference[i]), want[i], accuracy: 1e-5, "reference \(headDim) \(i)") }
            for table in KernelsTests.tables {
                let out = run(table)
                for i in 0..<headDim { XCTAssertEqual(out[i], reference[i], accuracy: 1e-5, "\(table.isa) q8 attention \(headDim) \(i)") }
            }
        }
    }

    /// Q8_0 attention stays within the quantization error of f16 attention on the same
    /// keys and values (what the q8 cache changes in the model).
    func testQ8AttentionIsCloseToF16() {
        var random = SystemRandomNumberGenerator()
        let headDim = 64, length = 200, rowBytesF16 = 2 * headDim, rowBytesQ8 = headDim / 32 * 34
        let q = (0..<headDim).map { _ in Float.random(in: -0.5...0.5, using: &random) }
        let k = (0..<(length * headDim)).map { _ in Float.random(in: -2...2, using: &random) }
        let v = (0..<(length * headDim)).map { _ in Float.random(in: -2...2, using: &random) }
        var f16 = [UInt8](repeating: 0, count: 2 * length * rowBytesF16)   // [keys, values][length, rowBytesF16]
        var q8 = [UInt8](repeating: 0, count: 2 * length * rowBytesQ8)     // [keys, values][length, rowBytesQ8]
        for t in 0..<length {
            for (side, x) in [k, v].enumerated() {
                x.withUnsafeBufferPointer { p in
                    f16.withUnsafeMutableBytes { storeRowF16(p.baseAddress! + t * headDim, count: headDim, into: $0.baseAddress! + (side * length + t) * rowBytesF16) }
                    q8.withUnsafeMutableBytes { quantizeRowQ8_0(p.baseAddress! + t * headDim, count: headDim, into: $0.baseAddress! + (side * length + t) * rowBytesQ8) }
                }
            }
        }
        for table in KernelsTests.tables {
            var scores = [Float](repeating: 0, count: length)
            var a = [Float](repeating: .nan, count: headDim), b = [Float](repeating: .nan, count: headDim)
            f16.withUnsafeBytes { table.attend(q, 1, $0.baseAddress!, $0.baseAddress! + length * rowBytesF16, rowBytesF16, length, headDim, &scores, &a) }
            q8.withUnsafeBytes { table.attendQ8(q, 1, $0.baseAddress!, $0.baseAddress! + length * rowBytesQ8, rowBytesQ8, length, headDim, &scores, &b) }
            // Each value moves by at most max|block| / 254 = 2 / 254; the output is a convex
            // combination of values, its weights moved by the keys' error.
            for i in 0..<headDim { XCTAssertEqual(a[i], b[i], accuracy: 0.02, "\(table.isa) \(i)") }
        }
    }
}
