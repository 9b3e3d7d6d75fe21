import ArgumentParser
import QwenEmbed
#if canImport(Glibc)
import Glibc
#endif

/// Sampling and context flags shared by chat and generate.
struct SamplingOptions: ParsableArguments {
    @Option(name: .short, help: "Most new tokens.") var n: Int = 512
    @Option(name: .customLong("temp"), help: "Temperature (0 = greedy).") var temperature: Float = 1.0
    @Option(name: .customLong("top-p"), help: "Nucleus sampling threshold (1 = off).") var topP: Float = 0.8
    @Option(name: .customLong("top-k"), help: "Keep the k most likely tokens (0 = off).") var topK: Int = 0
    @Option(name: .customLong("repeat-penalty"), help: "Repetition penalty over prompt and reply (1 = off).")
    var repeatPenalty: Float = 1.1
    @Option(help: "Sampler seed (0 = from the clock).") var seed: UInt64 = 0
    @Option(name: .customShort("c"), help: "Context window in tokens (0 = model default).") var context: Int = 0
    @OptionGroup var kv: KVTypeOption

    var generation: GenerationParameters {
        var p = GenerationParameters()
        p.maxTokens = n
        p.sampling.temperature = temperature
        p.sampling.topP = topP
        p.sampling.topK = topK
        p.sampling.repetitionPenalty = repeatPenalty
        return p
    }

    func sessionOptions(threads: Int, system: String?) -> SessionOptions {
        var o = SessionOptions()
        o.contextSize = context
        o.threads = threads
        o.seed = seed
        o.kvType = kv.kvType
        if let system { o.systemPrompt = system }
        return o
    }
}

/// Writes a streamed piece to stdout at once.
func writePiece(_ piece: String) -> Bool {
    fputs(piece, stdout)
    fflush(stdout)
    return true
}

/// The session Ctrl-C cancels in interactive chat (signal handlers cannot capture).
nonisolated(unsafe) var interruptTarget: Session? = nil

struct ChatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat",
        abstract: "Chat with the model: one answer with -p, else an interactive multi-turn chat.")
    @OptionGroup var options: ModelOptions
    @OptionGroup var sampling: SamplingOptions
    @OptionGroup var constraints: ConstraintOptions
    @Option(name: .short, help: "System prompt.") var system: String?
    @Option(name: .short, help: "Answer this prompt once and exit.") var prompt: String?

    func run() throws {
        let model = try options.load()
        let session = try Session(model: model, options: sampling.sessionOptions(threads: options.threads, system: system))
        var parameters = sampling.generation
        try constraints.apply(to: &parameters)
        if let prompt {
            _ = try session.chat([ChatMessage(role: .user, content: prompt)], parameters: parameters, onPiece: writePiece)
            print()
            return
        }
        interruptTarget = session
        signal(SIGINT) { _ in interruptTarget?.cancel() }
        let interactive = isatty(0) != 0
        if interactive {
            fputs("Chatting with \(model.info.name). /reset forgets the conversation, /exit quits, Ctrl-C stops a reply.\n", stderr)
        }
        while true {
            if interactive { fputs("\n> ", stdout); fflush(stdout) }
            guard let line = readLine() else { break }
            let text = line.trimmingWhitespace()
            if text.isEmpty { continue }
            if text == "/exit" || text == "/quit" { break }
            if text == "/reset" {
                try session.reset()
                fputs("(conversation forgotten)\n", stderr)
                continue
            }
            do {
                _ = try session.chat([ChatMessage(role: .user, content: text)], parameters: parameters, onPiece: writePiece)
                print()
            } catch QwenError.cancelled {
                print("\n(reply cancelled)")
            }
        }
    }
}

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "generate", abstract: "Continue a prompt (no chat template).")
    @OptionGroup var options: ModelOptions
    @OptionGroup var sampling: SamplingOptions
    @OptionGroup var constraints: ConstraintOptions
    @Option(name: .short, help: "The prompt to continue.") var prompt: String

    func run() throws {
        let model = try options.load()
        let session = try Session(model: model, options: sampling.sessionOptions(threads: options.threads, system: nil))
        var parameters = sampling.generation
        try constraints.apply(to: &parameters)
        _ = try session.generate(prompt: prompt, parameters: parameters, onPiece: writePiece)
        print()
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s = s.dropFirst() }
        while let l = s.last, l.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}
