// Loads a model through the QwenEmbed product and prints the same JSON figures as
// `qwen bench --json` (prefill and decode tok/s), plus the kernel path in use.
#if canImport(Glibc)
import Glibc
#endif
import QwenEmbed

let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    print("usage: qwen-consumer MODEL [threads]")
    exit(2)
}
do {
    var options = ModelLoadOptions()
    options.threads = arguments.count > 2 ? Int(arguments[2]) ?? 0 : 0
    let model = try Model.load(path: arguments[1], options: options)
    let bench = try ThroughputBench(model: model, threads: options.threads, contextSize: 640)
    var prefill = 0.0, decode = 0.0
    for _ in 0..<2 {
        let figures = try bench.run(promptTokens: 512, generatedTokens: 128)
        prefill = max(prefill, figures.prefillTokensPerSecond)
        decode = max(decode, figures.decodeTokensPerSecond)
    }
    print("{\"prefill_tok_s\": \(prefill), \"decode_tok_s\": \(decode), \"isa\": \"\(Model.kernelInstructionSet)\"}")
} catch {
    print("qwen-consumer: \(error)")
    exit(1)
}
