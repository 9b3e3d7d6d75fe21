#if canImport(Glibc)
import Glibc
#endif
import COpenBLAS
import Foundation
import XCTest
@testable import Kernels

/// Throughput of matvec (decode) and matmul (prefill) per weight format, against the
/// machine's read bandwidth. Skipped unless QWEN_BENCH=1, e.g.
///   QWEN_BENCH=1 swift test -c release -Xswiftc -enable-testing --filter KernelsBenchmark
final class KernelsBenchmark: XCTestCase {
    /// A fast seeded generator (SystemRandomNumberGenerator makes a syscall per value).
    struct SplitMix64: RandomNumberGenerator {
        var state: UInt64
        init(seed: UInt64) { state = seed }
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    override func setUpWithError() throws {
        try XCTSkipUnless(getenv("QWEN_BENCH").map { String(cString: $0) } == "1", "set QWEN_BENCH=1 to run")
    }

    static func seconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }

    /// `copies` random matrices of `type`, back to back: [copies * rows * rowBytes] bytes.
    /// Every 2-byte position holds a small finite f16, so all scale fields are sane.
    static func randomMatrices(_ type: GGMLType, rows: Int, cols: Int, copies: Int) throws -> (UnsafeMutableRawPointer, [WeightMatrix]) {
        let rowBytes = try XCTUnwrap(type.rowSize(cols))
        let bytes = copies * rows * rowBytes
        let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        var random = SplitMix64(seed: 1)
        let halves = raw.bindMemory(to: UInt16.self, capacity: bytes / 2)
        for i in 0..<(bytes / 2) { halves[i] = Float16(Float.random(in: -0.01...0.01, using: &random)).bitPattern }
        if type == .f32 {
            let floats = raw.bindMemory(to: Float.self, capacity: bytes / 4)
            for i in 0..<(bytes / 4) { floats[i] = .random(in: -0.01...0.01, using: &random) }
        }
        let matrices = try (0..<copies).map { try WeightMatrix(type: type, rows: rows, cols: cols, data: raw + $0 * rows * rowBytes) }
        return (raw, matrices)
    }

    /// Sum of a 256 MB buffer over the pool: the read bandwidth matvec is bound by.
    func testReadBandwidth() {
        let pool = ThreadPool(threads: 2)
        let count = 64 << 20
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: count)   // [count] f32
        defer { buffer.deallocate() }
        buffer.initialize(repeating: 1, count: count)
        let chunks = 64
        var sink = [Float](repeating: 0, count: chunks)
        var best = 0.0
        for _ in 0..<5 {
            let start = Self.seconds()
            sink.withUnsafeMutableBufferPointer { s in
                let sums = s.baseAddress!
                pool.parallelFor(chunks) { c in
                    var acc = SIMD16<Float>()
                    let base = UnsafeRawPointer(buffer + c * (count / chunks))
                    for i in stride(from: 0, to: count / chunks, by: 16) { acc += base.load(fromByteOffset: 4 * i, as: SIMD16<Float>.self) }
                    sums[c] = acc.sum()
                }
            }
            best = max(best, Double(count * 4) / (Self.seconds() - start) / 1e9)
        }
        print(String(format: "bench read bandwidth (2 threads, 256 MB): %.1f GB/s  (checksum %.0f)", best, sink.reduce(0, +)))
    }

    /// matvec GB/s of weights on the model's two FFN shapes: "cold" cycles through
    /// ~128 MB of distinct matrices (weights come from DRAM, as in decode), "hot" repeats
    /// one matrix (L2/L3-resident).
    func testMatvecThroughput() throws {
        let pool = ThreadPool(threads: 2)
        var random = SplitMix64(seed: 2)
        let x = (0..<4864).map { _ in Float.random(in: -1...1, using: &random) }   // [cols] f32
        var y = [Float](repeating: 0, count: 4864)                  // [rows] f32
        for type in (getenv("QWEN_BENCH_TYPES").map { String(cString: $0).split(separator: ",").compactMap { n in GGMLType.allCases.first { $0.name == n } } } ?? [GGMLType.q5_0, .q8_0, .q4_K, .q6_K, .q4_0, .q4_1, .q5_1, .q5_K, .f16, .bf16, .f32]) {
            for (rows, cols) in [(4864, 896), (896, 4864)] where type.rowSize(cols) != nil {
                let matrixBytes = rows * (type.rowSize(cols) ?? 1)
                let copies = max(1, (128 << 20) / matrixBytes)
                let (raw, matrices) = try Self.randomMatrices(type, rows: rows, cols: cols, copies: copies)
                defer { raw.deallocate() }
                var line = "bench matvec \(type.name) \(rows)x\(cols):"
                for table in KernelsTests.tables {
                    for hot in [false, true] {
                        let calls = hot ? 1000 : copies * 2
                        let start = Self.seconds()
                        x.withUnsafeBufferPointer { xp in
                            y.withUnsafeMutableBufferPointer { yp in
                                for i in 0..<calls {
                                    matvec(matrices[hot ? 0 : i % copies], xp.baseAddress!, yp.baseAddress!, pool: pool, kernels: table)
                                }
                            }
                        }
                        let elapsed = Self.seconds() - start
                        line += String(format: "  %@ %@ %5.1f GB/s", table.isa.rawValue, hot ? "hot " : "cold",
                                       Double(matrixBytes * calls) / elapsed / 1e9)
                    }
                }
                print(line)
            }
        }
    }

    /// Load-time repacking into the interleaved layout, per format (MB of weights per s).
    func testRepackThroughput() throws {
        for type in [GGMLType.q5_0, .q8_0, .q4_K, .q6_K, .q4_0] {
            let (rows, cols) = type.blockSize == 256 ? (896, 4864) : (4864, 896)
            let (raw, matrices) = try Self.randomMatrices(type, rows: rows, cols: cols, copies: 1)
            defer { raw.deallocate() }
            var best = Double.infinity
            for _ in 0..<5 {
                let start = Self.seconds()
                let copy = RepackedMatrix.interleaving(matrices[0])
                best = min(best, Self.seconds() - start)
                XCTAssertNotNil(copy)
            }
            print(String(format: "bench repack %@ %dx%d: %.0f MB/s", type.name, rows, cols, Double(rows * matrices[0].rowBytes) / best / 1e6))
        }
    }

    /// GPTQ repacking of one layer at Qwen-7B's gate/up shape (4096 -> 11008, group 128,
    /// symmetric): MB of packed weights per s.
    func testGPTQRepackThroughput() throws {
        let n = 4096, out = 11008, groupSize = 128, groups = n / groupSize
        var random = SplitMix64(seed: 5)
        for bits in [4, 8] {
            let perWord = 32 / bits
            let qweight = (0..<(n / perWord * out)).map { _ in UInt32(truncatingIfNeeded: random.next()) }   // [n / perWord, out]
            let zero: UInt32 = bits == 4 ? 0x7777_7777 : 0x7F7F_7F7F                                          // stored zero - 1, symmetric
            let qzeros = [UInt32](repeating: zero, count: groups * out / perWord)                             // [groups, out / perWord]
            let scales = (0..<(groups * out)).map { _ in Float16(Float.random(in: 0.001...0.05, using: &random)) }  // [groups, out]
            var best = Double.infinity
            for _ in 0..<3 {
                let start = Self.seconds()
                let repacked = try qweight.withUnsafeBytes { w in
                    try qzeros.withUnsafeBytes { z in
                        try scales.withUnsafeBytes { s in
                            try RepackedMatrix.fromGPTQ(GPTQTensors(bits: bits, inFeatures: n, outFeatures: out, groupSize: groupSize, groups: groups,
                                                                   qweight: w.baseAddress!, qzeros: z.baseAddress!, scales: s.baseAddress!, groupIndex: nil))
                        }
                    }
                }
                best = min(best, Self.seconds() - start)
                withExtendedLifetime(repacked) {}
            }
            print(String(format: "bench GPTQ repack %d-bit %dx%d: %.0f ms, %.0f MB/s of qweight", bits, out, n, best * 1000,
                         Double(qweight.count * 4) / best / 1e6))
        }
    }

    /// Prefill: matmul of n = 128 tokens, our pool over tiles with single-threaded
    /// sgemm (what `matmul` does) against one sgemm with OpenBLAS's own 2 threads on
    /// a W dequantized up front (the best OpenBLAS can do; excludes dequantization).
    func testMatmulThroughput() throws {
        let pool = ThreadPool(threads: 2)
        let n = 128
        for type in [GGMLType.q5_0, .q4_K, .q8_0, .f32] {
            for (rows, cols) in [(4864, 896), (896, 4864)] where type.rowSize(cols) != nil {
                let (raw, matrices) = try Self.randomMatrices(type, rows: rows, cols: cols, copies: 1)
                defer { raw.deallocate() }
                let w = matrices[0]
                var random = SplitMix64(seed: 3)
                let x = (0..<(n * cols)).map { _ in Float.random(in: -1...1, using: &random) }   // [n, cols] f32
                var y = [Float](repeating: 0, count: n * rows)                    // [n, rows] f32
                let flops = 2.0 * Double(n * rows * cols)
                let iterations = 10
                var start = Self.seconds()
                x.withUnsafeBufferPointer { xp in
                    y.withUnsafeMutableBufferPointer { yp in
                        for _ in 0..<iterations { matmul(w, xp.baseAddress!, yp.baseAddress!, n: n, pool: pool, kernels: .selected(override: nil)) }
                    }
                }
                let ours = flops * Double(iterations) / (Self.seconds() - start) / 1e9
                var dense = [Float](repeating: 0, count: rows * cols)              // [rows, cols] f32
                dense.withUnsafeMutableBufferPointer { d in
                    for r in 0..<rows { dequantizeRow(w, row: r, into: d.baseAddress! + r * cols, kernels: .selected(override: nil)) }
                }
                openblas_set_num_threads(2)
                start = Self.seconds()
                for _ in 0..<iterations {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(rows), Int32(cols),
                                1, x, Int32(cols), dense, Int32(cols), 0, &y, Int32(rows))
                }
                let blas = flops * Double(iterations) / (Self.seconds() - start) / 1e9
                openblas_set_num_threads(1)
                print(String(format: "bench matmul %@ %dx%d n=%d: matmul %.1f GFLOP/s, OpenBLAS 2 threads on f32 W %.1f GFLOP/s",
                             type.name, rows, cols, n, ours, blas))
            }
        }
    }
}
