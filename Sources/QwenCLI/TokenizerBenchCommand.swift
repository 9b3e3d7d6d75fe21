import ArgumentParser
import QwenEmbed
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `qwen bench-tokenizer -m VOCAB --file F [--json]`: vocabulary load time and
/// single-threaded encode throughput (best of a few repetitions).
struct TokenizerBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-tokenizer",
        abstract: "Measure tokenizer load time and single-threaded encode throughput.")

    @Option(name: .shortAndLong, help: "A qwen.tiktoken file, or a model (.gguf or checkpoint directory).")
    var model: String

    @Option(help: "A UTF-8 text file to encode.")
    var file: String

    @Option(help: "Encode repetitions; the best one is reported.")
    var reps: Int = 5

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func validate() throws {
        guard reps >= 1 else { throw ValidationError("--reps must be at least 1") }
    }

    func run() throws {
        // Load: best of three (the first also warms the page cache and Unicode tables).
        var loadBest = Double.infinity
        var tokenizer: Tokenizer?
        for _ in 0..<3 {
            let t0 = benchClock()
            let t = try loadBenchTokenizer(model)
            loadBest = min(loadBest, benchClock() - t0)
            tokenizer = t
        }
        guard let tok = tokenizer else { return }

        let bytes = try readBenchFile(file)
        let text = String(decoding: bytes, as: UTF8.self)
        var encodeBest = Double.infinity
        var tokens = 0
        for _ in 0..<reps {
            let t0 = benchClock()
            let ids = tok.encode(text)
            encodeBest = min(encodeBest, benchClock() - t0)
            tokens = ids.count
        }
        let mbPerSecond = Double(bytes.count) / max(encodeBest, 1e-9) / 1e6
        let loadMS = loadBest * 1000
        if json {
            print("{\"load_ms\": \(fixed(loadMS, 3)), \"encode_mb_per_s\": \(fixed(mbPerSecond, 3)), "
                + "\"bytes\": \(bytes.count), \"tokens\": \(tokens), \"reps\": \(reps), \"ids\": \(tok.count)}")
        } else {
            print("vocabulary: \(model) (\(tok.count) ids)")
            print("load:   \(fixed(loadMS, 2)) ms (best of 3)")
            print("encode: \(fixed(Double(bytes.count) / 1e6, 2)) MB -> \(tokens) tokens, "
                + "\(fixed(mbPerSecond, 2)) MB/s single-threaded (best of \(reps))")
        }
    }
}

private func loadBenchTokenizer(_ path: String) throws -> Tokenizer {
    if path.hasSuffix(".tiktoken") { return try Tokenizer(tiktokenFile: path) }
    return try Model.load(path: path).tokenizer
}

private func benchClock() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

private func fixed(_ v: Double, _ digits: Int) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let r = (v * scale).rounded() / scale
    var s = "\(r)"
    if s.contains("e") { return s }
    if let dot = s.firstIndex(of: ".") {
        let decimals = s.distance(from: dot, to: s.endIndex) - 1
        if decimals < digits { s += String(repeating: "0", count: digits - decimals) }
    }
    return s
}

private func readBenchFile(_ path: String) throws -> [UInt8] {
    guard let f = fopen(path, "rb") else { throw QwenError.io("cannot open \(path)") }
    defer { fclose(f) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, f) }
        if n == 0 { break }
        out.append(contentsOf: chunk[0..<n])
    }
    if ferror(f) != 0 { throw QwenError.io("cannot read \(path)") }
    return out
}
