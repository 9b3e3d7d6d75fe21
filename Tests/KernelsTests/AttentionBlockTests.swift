import Foundation
import KernelABI
import XCTest
@testable import Kernels

/// The prefill attention kernels (`KernelTable.attendBlock`: tiles of positions, online
/// softmax) of every instruction set against an f64 softmax over the cached rows as stored,
/// and against the single-query kernels, for f16 and Q8_0 caches.
final class AttentionBlockTests: XCTestCase {
    /// Queries of one block with lengths below, at and across tile boundaries (64), one
    /// alone in the last tile, on the second head of each row (offsets and strides); head
    /// sizes 64, 96 (a last part of 32 dimensions) and 128.
    func testBlocksEqualAnF64SoftmaxAndTheSingleQueryKernels() {
        var random = SystemRandomNumberGenerator()
        let lengths = [1, 7, 63, 64, 65, 130, 200, 129, 2]
        let length = lengths.max()!
        for headDim in [64, 96, 128] {
            for q8 in [false, true] {
                let kvDim = 2 * headDim, rowBytes = q8 ? kvDim / 32 * 34 : 2 * kvDim, headBytes = q8 ? headDim / 32 * 34 : 2 * headDim
                let k = (0..<(length * kvDim)).map { _ in Float.random(in: -2...2, using: &random) }  // [length, kvDim]
                let v = (0..<(length * kvDim)).map { _ in Float.random(in: -2...2, using: &random) }  // [length, kvDim]
                let (keys, kSeen) = Self.cacheRows(k, rows: length, kvDim: kvDim, rowBytes: rowBytes, q8: q8)   // [length, rowBytes], [length, kvDim] as stored
                let (values, vSeen) = Self.cacheRows(v, rows: length, kvDim: kvDim, rowBytes: rowBytes, q8: q8)
                let count = lengths.count
                let queries = (0..<(count * headDim)).map { _ in Float.random(in: -0.5...0.5, using: &random) }  // [count, headDim]
                // The f64 softmax of each query over its positions.
                var want = [Double](repeating: 0, count: count * headDim)                              // [count, headDim]
                for i in 0..<count {
                    var weights = (0..<lengths[i]).map { t in
                        (0..<headDim).reduce(0.0) { $0 + Double(queries[i * headDim + $1]) * Double(kSeen[t * kvDim + headDim + $1]) }
                    }
                    let top = weights.max()!
                    weights = weights.map { Foundation.exp($0 - top) }
                    let total = weights.reduce(0, +)
                    for d in 0..<headDim {
                        want[i * headDim + d] = (0..<lengths[i]).reduce(0.0) { $0 + weights[$1] / total * Double(vSeen[$1 * kvDim + headDim + d]) }
                    }
                }
                for table in KernelsTests.tables {
                    var out = [Float](repeating: .nan, count: count * headDim)                        // [count, headDim]
                    var scratch = [Float](repeating: .nan, count: Int(qe_attend_block_scratch(count, headDim)))
                    queries.withUnsafeBufferPointer { qp in
                        out.withUnsafeMutableBufferPointer { op in
                            let queryPointers = (0..<count).map { qp.baseAddress! + $0 * headDim }
                            let outPointers = (0..<count).map { op.baseAddress! + $0 * headDim }
                            keys.withUnsafeBytes { kp in
                                values.withUnsafeBytes { vp in
                                    table.attendBlock(queryPointers, outPointers, lengths, count, kp.baseAddress! + headBytes,
                                                      vp.baseAddress! + headBytes, rowBytes, headDim, q8, &scratch)
                                }
                            }
                        }
                    }
                    for i in 0..<count {
                        var single = [Float](repeating: .nan, count: headDim), scores = [Float](repeating: 0, count: lengths[i])
                        keys.withUnsafeBytes { kp in
                            values.withUnsafeBytes { vp in
                                let attend = q8 ? table.attendQ8 : table.attend
                                Array(queries[(i * headDim)..<((i + 1) * headDim)]).withUnsafeBufferPointer { q in
                                    attend(q.baseAddress!, 1, kp.baseAddress! + headBytes, vp.baseAddress! + headBytes, rowBytes, lengths[i],
                                           headDim, &scores, &single)
                                }
                            }
                        }
                        for d in 0..<headDim {
                            let what = "\(table.isa) \(q8 ? "q8" : "f16") headDim \(headDim) query \(i) (length \(lengths[i])) [\(d)]"
                            XCTAssertEqual(Double(out[i * headDim + d]), want[i * headDim + d], accuracy: 1e-5, what)
                            XCTAssertEqual(out[i * headDim + d], single[d], accuracy: 1e-5, what + " vs the single-query kernel")
                        }
                    }
                }
            }
        }
    }

    /// A query's result does not depend on the block it is in, bit for bit: the x86
    /// kernels take four (AVX-512) or two queries at a time over the tiles they all cover
    /// and one at a time elsewhere, and each query of a block must equal that query alone (prompt rows are
    /// independent of their batch: `Engine.prefillRowsAreIndependent`). Lengths make blocks
    /// of four with and without a shorter member, and a last odd query.
    func testQueriesOfABlockEqualEachAloneBitForBit() {
        var random = SystemRandomNumberGenerator()
        let lengths = [300, 299, 250, 64, 200, 190, 150, 140, 300, 300, 300, 129, 5]
        let length = lengths.max()!
        for headDim in [64, 96, 128] {
            for q8 in [false, true] {
                let kvDim = headDim, rowBytes = q8 ? kvDim / 32 * 34 : 2 * kvDim
                let k = (0..<(length * kvDim)).map { _ in Float.random(in: -2...2, using: &random) }  // [length, kvDim]
                let v = (0..<(length * kvDim)).map { _ in Float.random(in: -2...2, using: &random) }  // [length, kvDim]
                let keys = Self.cacheRows(k, rows: length, kvDim: kvDim, rowBytes: rowBytes, q8: q8).bytes   // [length, rowBytes]
                let values = Self.cacheRows(v, rows: length, kvDim: kvDim, rowBytes: rowBytes, q8: q8).bytes
                let queries = (0..<(lengths.count * headDim)).map { _ in Float.random(in: -0.5...0.5, using: &random) }  // [count, headDim]
                /// attendBlock over the queries `members` (indices into lengths), [members, headDim].
                func run(_ table: KernelTable, _ members: [Int]) -> [Float] {
                    let count = members.count
                    var out = [Float](repeating: .nan, count: count * headDim)                        // [count, headDim]
                    var scratch = [Float](repeating: .nan, count: Int(qe_attend_block_scratch(count, headDim)))
                    let memberLengths = members.map { lengths[$0] }
                    queries.withUnsafeBufferPointer { qp in
                        out.withUnsafeMutableBufferPointer { op in
                            let queryPointers = members.map { qp.baseAddress! + $0 * headDim }
                            let outPointers = (0..<count).map { op.baseAddress! + $0 * headDim }
                            keys.withUnsafeBytes { kp in
                                values.withUnsafeBytes { vp in
                                    table.attendBlock(queryPointers, outPointers, memberLengths, count, kp.baseAddress!, vp.baseAddress!,
                                                      rowBytes, headDim, q8, &scratch)
                                }
                            }
                        }
                    }
                    return out
                }
                for table in KernelsTests.tables {
                    let together = run(table, Array(lengths.indices))
                    for i in lengths.indices {
                        let alone = run(table, [i])
                        let differing = (0..<headDim).first { together[i * headDim + $0].bitPattern != alone[$0].bitPattern }
                        XCTAssertNil(differing, "\(table.isa) \(q8 ? "q8" : "f16") headDim \(headDim): query \(i) (length \(lengths[i]))")
                    }
                }
            }
        }
    }

    /// x[rows, kvDim] stored as cache rows (f16 or Q8_0), and the values those rows hold.
    static func cacheRows(_ x: [Float], rows: Int, kvDim: Int, rowBytes: Int, q8: Bool) -> (bytes: [UInt8], seen: [Float]) {
        var bytes = [UInt8](repeating: 0, count: rows * rowBytes)       // [rows, rowBytes]
        var seen = [Float](repeating: 0, count: rows * kvDim)           // [rows, kvDim]
        x.withUnsafeBufferPointer { p in
            bytes.withUnsafeMutableBytes { r in
                seen.withUnsafeMutableBufferPointer { s in
                    for t in 0..<rows {
                        let row = r.baseAddress! + t * rowBytes
                        if q8 {
                            quantizeRowQ8_0(p.baseAddress! + t * kvDim, count: kvDim, into: row)
                        } else {
                            storeRowF16(p.baseAddress! + t * kvDim, count: kvDim, into: row)
                        }
                        dequantizeKVRow(UnsafeRawPointer(row), count: kvDim, q8: q8, into: s.baseAddress! + t * kvDim)
                    }
                }
            }
        }
        return (bytes, seen)
    }
}
