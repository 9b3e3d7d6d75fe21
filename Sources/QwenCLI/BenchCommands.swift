import ArgumentParser
import QwenEmbed
#if canImport(Glibc)
import Glibc
#endif

/// A deterministic prompt of ordinary tokens (the same in every benchmark); `offset`
/// varies it per sequence.
func benchPrompt(_ count: Int, offset: Int = 0) -> [Int32] {
    (0..<count).map { Int32(1000 + (($0 + offset * 7) * 7919) % 30000) }
}

/// Greedy generation of exactly `tokens` tokens (end-of-turn tokens do not stop it).
func benchParameters(tokens: Int) -> GenerationParameters {
    var p = GenerationParameters()
    p.maxTokens = tokens
    p.sampling = .greedy
    p.stopsAtEndOfTurn = false
    return p
}

/// Weight bytes one decoded token reads: every layer matrix and the output head.
func decodeBytesPerToken(_ model: Model) throws -> Int {
    let w = model.weights
    return try w.layers.all().reduce(w.output.rows * w.output.rowBytes) { total, l in
        [l.query, l.key, l.value, l.attentionOutput, l.gate, l.up, l.down].reduce(total) { $0 + $1.rows * $1.rowBytes }
    }
}

/// Peak resident memory of this process in MB.
func peakResidentMegabytes() -> Double {
    var usage = rusage()
    getrusage(Int32(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_maxrss) / 1024
}

/// Runs body(0..<n) on n threads of its own at once (not a shared pool: each call blocks
/// its thread on the engine, like a server's request threads), returning when all are done.
func onThreads(_ n: Int, _ body: @escaping @Sendable (Int) -> Void) {
    final class Box: @unchecked Sendable {
        let body: @Sendable (Int) -> Void
        let index: Int
        init(_ body: @escaping @Sendable (Int) -> Void, _ index: Int) { self.body = body; self.index = index }
    }
    var threads: [pthread_t] = []
    for i in 0..<n {
        var thread = pthread_t()
        let box = Unmanaged.passRetained(Box(body, i)).toOpaque()
        if pthread_create(&thread, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.body(box.index)
            return nil
        }, box) == 0 {
            threads.append(thread)
        } else {
            Unmanaged<Box>.fromOpaque(box).release()
            body(i)
        }
    }
    for thread in threads { pthread_join(thread, nil) }
}

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Prefill and decode throughput, load time and peak memory.")
    @OptionGroup var options: ModelOptions
    @Option(name: .short, help: "Prompt tokens.") var p: Int = 512
    @Option(name: .short, help: "Generated tokens.") var n: Int = 128
    @Option(name: .short, help: "Repetitions (the best is reported).") var r: Int = 3
    @Option(name: .customShort("c"), help: "Context window (0 = p + n).") var context: Int = 0
    @Option(name: .short, help: "Decode after this many cached tokens (llama-bench's -d; 0 = from an empty cache).")
    var depth: Int = 0
    @OptionGroup var kv: KVTypeOption
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        guard p >= 1, n >= 2, r >= 1, depth >= 0 else { throw ValidationError("-p and -r must be at least 1, -n at least 2, -d not negative") }
        let loadStart = monotonicMilliseconds()
        let model = try options.load()
        _ = try model.weights.layers.all()   // GPTQ blocks are repacked on first use: count it as loading
        let loadMs = monotonicMilliseconds() - loadStart
        var sessionOptions = SessionOptions()
        sessionOptions.contextSize = max(context, p + n + 1, depth + n + 1)
        sessionOptions.kvType = kv.kvType
        let prompt = benchPrompt(p)
        var prefill = 0.0, decode = 0.0, kvBytesPerToken = 0
        for _ in 0..<r {
            // Prefill from an empty cache (a fresh session); then, from an empty cache again
            // (as llama-bench's tg test does, so the figures compare), n greedy tokens: the
            // first runs the prompt's first token, each later one the token before it. With
            // a depth (llama-bench -d), a prompt of that many tokens first, not counted.
            let prefilled = try Session(model: model, options: sessionOptions)
                .generate(promptTokens: prompt, parameters: benchParameters(tokens: 0))
            prefill = max(prefill, Double(p) / (prefilled.prefillMilliseconds / 1000))
            let session = try Session(model: model, options: sessionOptions)
            kvBytesPerToken = session.kvCacheBytes.perToken
            let decoded = try session.generate(promptTokens: depth > 0 ? benchPrompt(depth) : [prompt[0]],
                                               parameters: benchParameters(tokens: n))
            decode = max(decode, Double(decoded.generatedTokens - 1) / (decoded.decodeMilliseconds / 1000))
        }
        let peakMB = peakResidentMegabytes()
        let bytesPerToken = try decodeBytesPerToken(model)
        let threads = model.engine.threads
        if json {
            print("{\"prefill_tok_s\": \(String(format6: Float(prefill))), \"decode_tok_s\": \(String(format6: Float(decode))), "
                + "\"load_ms\": \(String(format6: Float(loadMs))), \"peak_rss_mb\": \(String(format6: Float(peakMB))), "
                + "\"threads\": \(threads), \"n_prompt\": \(p), \"n_gen\": \(n), \"n_depth\": \(depth), \"reps\": \(r), "
                + "\"kv_type\": \(jsonString(kv.kvType.rawValue)), \"kv_bytes_per_token\": \(kvBytesPerToken), "
                + "\"model\": \(jsonString(model.info.name)), \"weight_type\": \(jsonString(model.info.weightType)), "
                + "\"isa\": \(jsonString(model.kernels.isa.rawValue)), \"decode_bytes_per_token\": \(bytesPerToken)}")
        } else {
            print("model: \(model.info.name) (\(model.info.weightType)), threads: \(threads), kernels: \(model.kernels.isa.rawValue)")
            print("load: \(Int(loadMs)) ms, peak RSS: \(Int(peakMB)) MB")
            print("prefill: \(String(format6: Float(prefill))) tok/s (\(p) tokens)")
            print("decode:  \(String(format6: Float(decode))) tok/s (\(n) tokens after \(depth), KV cache \(kv.kvType.rawValue): \(kvBytesPerToken) bytes per token)")
        }
    }
}

/// `qwen batched-bench`: llama.cpp's llama-batched-bench for our engine. For each number
/// of parallel sequences B: B sessions on B threads prefill `npp` prompt tokens each at
/// once (T_PP), then each generates `ntg` tokens greedily at once (T_TG), the engine
/// batching them; throughput is all sequences' tokens over the wall time.
struct BatchedBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "batched-bench", abstract: "Prefill and decode throughput of B sequences at once (as llama-batched-bench).")
    @OptionGroup var options: ModelOptions
    @Option(help: "Prompt tokens per sequence.") var npp: Int = 128
    @Option(help: "Generated tokens per sequence.") var ntg: Int = 128
    @Option(help: "Comma-separated numbers of parallel sequences.") var npl: String = "1,2,4,8"
    @OptionGroup var kv: KVTypeOption
    @Flag(help: "One JSON object per line instead of the table.") var json = false

    func run() throws {
        let counts = try npl.split(separator: ",").map { part -> Int in
            guard let b = Int(part.trimmingCharacters(in: " ")), b >= 1, b <= 256 else { throw ValidationError("--npl: not a count in 1...256: \(part)") }
            return b
        }
        guard npp >= 1, ntg >= 2 else { throw ValidationError("--npp must be at least 1 and --ntg at least 2") }
        let model = try options.load()
        _ = try model.weights.layers.all()
        var sessionOptions = SessionOptions()
        sessionOptions.contextSize = npp + ntg + 1
        sessionOptions.kvType = kv.kvType
        if !json {
            print("model: \(model.info.name) (\(model.info.weightType)), threads: \(model.engine.threads), kernels: \(model.kernels.isa.rawValue)")
            print("|    PP |     TG |    B |   N_KV |   T_PP s | S_PP t/s |   T_TG s | S_TG t/s |      T s |    S t/s | per stream t/s |")
            print("|-------|--------|------|--------|----------|----------|----------|----------|----------|----------|----------------|")
        }
        for b in counts {
            let sessions = try (0..<b).map { _ in try Session(model: model, options: sessionOptions) }
            let failures = FailureList()
            let (npp, ntg) = (npp, ntg)
            let start = monotonicMilliseconds()
            onThreads(b) { i in
                failures.record { _ = try sessions[i].generate(promptTokens: benchPrompt(npp, offset: i), parameters: benchParameters(tokens: 0)) }
            }
            let prefilled = monotonicMilliseconds()
            onThreads(b) { i in
                failures.record { _ = try sessions[i].generate(promptTokens: benchPrompt(npp, offset: i), parameters: benchParameters(tokens: ntg)) }
            }
            let end = monotonicMilliseconds()
            if let error = failures.first { throw error }
            let tPP = (prefilled - start) / 1000, tTG = (end - prefilled) / 1000, total = tPP + tTG
            let sPP = Double(b * npp) / tPP, sTG = Double(b * ntg) / tTG, s = Double(b * (npp + ntg)) / total
            if json {
                print("{\"pp\": \(npp), \"tg\": \(ntg), \"pl\": \(b), \"n_kv\": \(b * (npp + ntg)), \"t_pp\": \(String(format6: Float(tPP))), "
                    + "\"speed_pp\": \(String(format6: Float(sPP))), \"t_tg\": \(String(format6: Float(tTG))), \"speed_tg\": \(String(format6: Float(sTG))), "
                    + "\"t\": \(String(format6: Float(total))), \"speed\": \(String(format6: Float(s))), "
                    + "\"threads\": \(model.engine.threads), \"isa\": \(jsonString(model.kernels.isa.rawValue))}")
            } else {
                func pad(_ text: String, _ width: Int) -> String { String(repeating: " ", count: max(0, width - text.count)) + text }
                func cell(_ v: Double, _ width: Int) -> String { pad(String(format6: Float(v)), width) }
                print("| \(pad("\(npp)", 5)) | \(pad("\(ntg)", 6)) | \(pad("\(b)", 4)) | \(pad("\(b * (npp + ntg))", 6)) | "
                    + "\(cell(tPP, 8)) | \(cell(sPP, 8)) | \(cell(tTG, 8)) | \(cell(sTG, 8)) | "
                    + "\(cell(total, 8)) | \(cell(s, 8)) | \(cell(sTG / Double(b), 14)) |")
            }
        }
    }
}

/// The first error thrown on any of several threads.
final class FailureList: @unchecked Sendable {
    private var errors: [Error] = []
    private var lock = pthread_mutex_t()
    init() { pthread_mutex_init(&lock, nil) }
    var first: Error? { errors.first }
    func record(_ body: () throws -> Void) {
        do { try body() } catch {
            pthread_mutex_lock(&lock)
            errors.append(error)
            pthread_mutex_unlock(&lock)
        }
    }
}
