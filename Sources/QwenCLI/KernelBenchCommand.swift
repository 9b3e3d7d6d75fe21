import ArgumentParser
import Kernels
import QwenEmbed

/// `qwen bench-kernels`: matrix-vector throughput per weight format on a synthetic
/// matrix, to compare against memory bandwidth (decode is bound by it).
struct KernelBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-kernels", abstract: "Matrix-vector throughput (GB/s of weights) per weight format.")
    @Option(name: .customShort("t"), help: "Threads.") var threads: Int = 2
    @Option(help: "Matrix rows.") var rows: Int = 4864
    @Option(help: "Matrix columns.") var cols: Int = 896
    @Option(help: "Iterations per format.") var iterations: Int = 200
    @Option(help: "Kernel instruction set: generic, avx2, avxvnni or avx512 (default: the best this CPU runs).") var isa: String?

    func run() throws {
        let pool = ThreadPool(threads: threads)
        let kernels = KernelTable.selected(override: isa)
        var random = RandomSource(seed: 1)
        let x = (0..<cols).map { _ in Float(random.nextUnit()) - 0.5 }                 // [cols]
        var y = [Float](repeating: 0, count: rows)                                      // [rows]
        print("format  GB/s   Gweights/s  (\(rows)x\(cols), \(threads) threads)")
        for type in GGMLType.allCases {
            guard let rowBytes = type.rowSize(cols) else { continue }
            // Random bytes with small f16 scales at every 2-byte position keep values finite.
            var bytes = [UInt8](repeating: 0, count: rows * rowBytes)
            for i in stride(from: 0, to: bytes.count, by: 2) {
                let half = Float16(Float(random.nextUnit()) * 0.01).bitPattern
                bytes[i] = UInt8(half & 0xff); bytes[i + 1] = UInt8(half >> 8) & 0x3f
            }
            let seconds = try bytes.withUnsafeBytes { raw -> Double in
                let w = try WeightMatrix(type: type, rows: rows, cols: cols, data: raw.baseAddress!)
                return x.withUnsafeBufferPointer { xp in
                    y.withUnsafeMutableBufferPointer { yp in
                        matvec(w, xp.baseAddress!, yp.baseAddress!, pool: pool, kernels: kernels)
                        let start = monotonicMilliseconds()
                        for _ in 0..<iterations { matvec(w, xp.baseAddress!, yp.baseAddress!, pool: pool, kernels: kernels) }
                        return (monotonicMilliseconds() - start) / 1000
                    }
                }
            }
            let gb = Double(bytes.count * iterations) / seconds / 1e9
            let gw = Double(rows * cols * iterations) / seconds / 1e9
            print("\(type.name.padding(6))  \(String(format6: Float(gb)))  \(String(format6: Float(gw)))")
        }
    }
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
