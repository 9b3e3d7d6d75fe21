import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import Kernels
import QwenEmbed

/// `qwen bench-kernels`: decode (matrix times a batch of vectors) throughput per weight
/// format on a synthetic matrix, or over a real model's matrices grouped like one decode
/// step (`--model`), for each batch size of `--vectors`. Batches and instruction sets are
/// interleaved in every repetition (the machine may be shared), and ratios to one vector
/// are taken within a repetition.
struct KernelBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-kernels", abstract: "Decode (matrix x batch of vectors) throughput per weight format or over a model's matrices.")
    @Option(name: .customShort("t"), help: "Threads.") var threads: Int = 2
    @Option(help: "Matrix rows (synthetic matrices).") var rows: Int = 4864
    @Option(help: "Matrix columns (synthetic matrices).") var cols: Int = 896
    @Option(help: "Matrix-vector products per format and measurement (synthetic), or decode steps (--model).") var iterations: Int = 200
    @Option(help: "Kernel instruction sets, comma-separated (default: every one but generic this CPU runs).") var isa: String?
    @Option(help: "Batch sizes (vectors per product), comma-separated.") var vectors: String = "1"
    @Option(help: "Repetitions (medians are reported).") var reps: Int = 3
    @Option(help: "Weight formats, comma-separated (synthetic; default: all).") var formats: String?
    @Option(name: .shortAndLong, help: "A model: its matrices, grouped like one decode step (q/k/v, o, gate/up, down per layer, then the output head).")
    var model: String?
    @Flag(help: "Measure the process's CPU time instead of wall time (with -t 1: the kernels' own time on a shared machine).")
    var cpuTime = false
    @Flag(help: "Synthetic: time each product and report the fastest (compute cost with the matrix in cache, robust to other load).")
    var fastest = false
    @Flag(help: "Synthetic: cycle through 256 MB of copies of the matrix (weights from memory, as in decode).")
    var cold = false

    /// Milliseconds of the chosen clock.
    func now() -> Double {
        guard cpuTime else { return monotonicMilliseconds() }
        var t = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
        return Double(t.tv_sec) * 1000 + Double(t.tv_nsec) / 1e6
    }

    func run() throws {
        let pool = ThreadPool(threads: threads)
        let batches = vectors.split(separator: ",").compactMap { Int($0) }.filter { $0 > 0 }
        let sets = try isa.map { try $0.split(separator: ",").map { name -> InstructionSet in
            guard let set = InstructionSet(rawValue: String(name)), KernelTable.available.contains(set) else {
                throw ValidationError("--isa \(name): this CPU and build run \(KernelTable.available.map(\.rawValue).joined(separator: ", "))")
            }
            return set
        } } ?? KernelTable.available.filter { $0 != .generic }
        let tables = sets.compactMap { KernelTable.forInstructionSet($0) }
        guard !batches.isEmpty, !tables.isEmpty else { throw ValidationError("nothing to measure") }
        if let model { return try runModel(model, tables: tables, batches: batches, pool: pool) }

        var random = RandomSource(seed: 1)
        let maxBatch = batches.max()!
        let x = (0..<(maxBatch * cols)).map { _ in Float(random.nextUnit()) - 0.5 }        // [maxBatch, cols]
        var y = [Float](repeating: 0, count: maxBatch * rows)                             // [maxBatch, rows]
        let chosen = formats.map { $0.split(separator: ",").compactMap { n in GGMLType.allCases.first { $0.name == n } } } ?? GGMLType.allCases
        print("\(rows)x\(cols), \(threads) threads, ms per product (\(fastest ? "fastest of \(iterations), " : "")median of \(reps)); x: ratio to 1 vector; GB/s of weights at 1 vector")
        for type in chosen {
            guard let rowBytes = type.rowSize(cols) else { continue }
            // Random bytes with small f16 scales at every 2-byte position keep values finite.
            var bytes = [UInt8](repeating: 0, count: rows * rowBytes)
            for i in stride(from: 0, to: bytes.count, by: 2) {
                let half = Float16(Float(random.nextUnit()) * 0.01).bitPattern
                bytes[i] = UInt8(half & 0xff); bytes[i + 1] = UInt8(half >> 8) & 0x3f
            }
            let copies = cold ? max(2, (256 << 20) / bytes.count) : 1
            try bytes.withUnsafeBytes { raw in
                let original = try WeightMatrix(type: type, rows: rows, cols: cols, data: raw.baseAddress!)
                let repacked = (0..<copies).map { _ in RepackedMatrix.interleaving(original) }
                let matrices = repacked.map { $0?.matrix ?? original }
                var next = 0
                var w: WeightMatrix { next = (next + 1) % copies; return matrices[next] }
                let activations = QuantizedActivations()
                var times = [[Double]](repeating: [], count: tables.count * batches.count)   // [table, batch] -> per rep
                for _ in 0..<reps {
                    for (t, table) in tables.enumerated() {
                        for (i, count) in batches.enumerated() {
                            times[t * batches.count + i].append(x.withUnsafeBufferPointer { xp in
                                y.withUnsafeMutableBufferPointer { yp in
                                    let outputs = [yp.baseAddress!]
                                    matvec([w], xp.baseAddress!, count: count, outputs, pool: pool, kernels: table, activations: activations)
                                    if fastest {
                                        var best = Double.infinity
                                        for _ in 0..<iterations {
                                            let start = now()
                                            matvec([w], xp.baseAddress!, count: count, outputs, pool: pool, kernels: table, activations: activations)
                                            best = min(best, now() - start)
                                        }
                                        return best
                                    }
                                    let start = now()
                                    for _ in 0..<iterations {
                                        matvec([w], xp.baseAddress!, count: count, outputs, pool: pool, kernels: table, activations: activations)
                                    }
                                    return (now() - start) / Double(iterations)
                                }
                            })
                        }
                    }
                }
                for (t, table) in tables.enumerated() {
                    let row = times[(t * batches.count)..<((t + 1) * batches.count)].map { $0 }
                    report("\(type.name.padding(5)) \(table.isa.rawValue.padding(7))", row, batches: batches,
                           gigabytes: Double(bytes.count) / 1e9)
                }
                withExtendedLifetime(repacked) {}
            }
        }
    }

    /// Prints "label  B=1 t ms (GB/s)  B=2 t ms (x r) ..." from times[batch][rep].
    func report(_ label: String, _ times: [[Double]], batches: [Int], gigabytes: Double) {
        func median(_ v: [Double]) -> Double { let s = v.sorted(); return s[s.count / 2] }
        var line = label
        let base = batches.firstIndex(of: 1)
        for (i, count) in batches.enumerated() {
            line += "  B=\(count) \(String(format6: Float(median(times[i])))) ms"
            if let base {
                if i == base {
                    line += " (\(String(format6: Float(gigabytes / median(times[i]) * 1000))) GB/s)"
                } else {
                    let ratios = zip(times[i], times[base]).map { $0 / $1 }
                    line += " (x\(String(format6: Float(median(ratios)))))"
                }
            }
        }
        print(line)
    }

    /// One decode step's matrix products over the model's weights, per instruction set and
    /// batch size, with the time per group of matrices.
    func runModel(_ path: String, tables: [KernelTable], batches: [Int], pool: ThreadPool) throws {
        let loaded = try Model.load(path: path)
        let layers = try loaded.weights.layers.all()
        let output = loaded.weights.output
        let hidden = output.cols, ffn = layers[0].gate.rows
        let maxBatch = batches.max()!
        var random = RandomSource(seed: 2)
        let xh = (0..<(maxBatch * hidden)).map { _ in Float(random.nextUnit()) - 0.5 }   // [maxBatch, hidden]
        let xf = (0..<(maxBatch * ffn)).map { _ in Float(random.nextUnit()) - 0.5 }      // [maxBatch, ffn]
        let widest = max(output.rows, ffn)
        var ys = (0..<3).map { _ in [Float](repeating: 0, count: maxBatch * widest) }     // [maxBatch, rows] each
        let activations = QuantizedActivations()
        let groups = ["q/k/v", "o", "gate/up", "down", "head"]
        func size(_ ws: [WeightMatrix]) -> Int { ws.reduce(0) { $0 + $1.rows * $1.rowBytes } }
        let groupMatrices: [[WeightMatrix]] = [layers.flatMap { [$0.query, $0.key, $0.value] }, layers.map(\.attentionOutput),
                                               layers.flatMap { [$0.gate, $0.up] }, layers.map(\.down), [output]]
        let bytes = groupMatrices.map(size)
        var valuesPerFormat: [String: Int] = [:]
        for w in groupMatrices.joined() { valuesPerFormat["\(w.type.name) \(w.layout)", default: 0] += w.rows * w.cols }
        let formats = valuesPerFormat.keys.sorted().map { "\($0): \(String(format6: Float(valuesPerFormat[$0]!) / 1e6)) M values" }
        print("\(path): \(layers.count) layers, \(String(format6: Float(bytes.reduce(0, +)) / 1e6)) MB of matrices per step (\(formats.joined(separator: ", "))), \(threads) threads")
        print("ms per decode step (median of \(reps) x \(iterations) steps); x: ratio to 1 vector in the same repetition")
        // times[table][batch][group] -> per rep
        var times = [[[[Double]]]](repeating: [[[Double]]](repeating: [[Double]](repeating: [], count: groups.count + 1), count: batches.count),
                                   count: tables.count)
        func step(_ table: KernelTable, _ count: Int, _ spent: inout [Double]) {
            xh.withUnsafeBufferPointer { xhp in
                xf.withUnsafeBufferPointer { xfp in
                    let y = ys.indices.map { i in ys[i].withUnsafeMutableBufferPointer { $0.baseAddress! } }
                    func timed(_ g: Int, _ body: () -> Void) {
                        let start = now()
                        body()
                        spent[g] += now() - start
                    }
                    for l in layers {
                        timed(0) { matvec([l.query, l.key, l.value], xhp.baseAddress!, count: count, y, pool: pool, kernels: table, activations: activations) }
                        timed(1) { matvec([l.attentionOutput], xhp.baseAddress!, count: count, [y[0]], pool: pool, kernels: table, activations: activations) }
                        timed(2) { matvec([l.gate, l.up], xhp.baseAddress!, count: count, [y[0], y[1]], pool: pool, kernels: table, activations: activations) }
                        timed(3) { matvec([l.down], xfp.baseAddress!, count: count, [y[0]], pool: pool, kernels: table, activations: activations) }
                    }
                    timed(4) { matvec([output], xhp.baseAddress!, count: count, [y[0]], pool: pool, kernels: table, activations: activations) }
                }
            }
        }
        for _ in 0..<reps {
            for (t, table) in tables.enumerated() {
                for (i, count) in batches.enumerated() {
                    var warm = [Double](repeating: 0, count: groups.count)
                    step(table, count, &warm)
                    var spent = [Double](repeating: 0, count: groups.count)
                    for _ in 0..<iterations { step(table, count, &spent) }
                    for g in 0..<groups.count { times[t][i][g].append(spent[g] / Double(iterations)) }
                    times[t][i][groups.count].append(spent.reduce(0, +) / Double(iterations))
                }
            }
        }
        for (t, table) in tables.enumerated() {
            for g in 0...groups.count {
                let label = g < groups.count ? groups[g] : "step"
                let gigabytes = Double(g < groups.count ? bytes[g] : bytes.reduce(0, +)) / 1e9
                report("\(table.isa.rawValue.padding(7)) \(label.padding(7))", times[t].map { $0[g] }, batches: batches, gigabytes: gigabytes)
            }
        }
    }
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
