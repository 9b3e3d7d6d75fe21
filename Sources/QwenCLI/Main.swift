import ArgumentParser
import Kernels
import QwenEmbed
#if canImport(Glibc)
import Glibc
#endif

/// The `qwen` command-line tool, built on the Swift API (QwenEmbed).
struct Qwen: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qwen",
        abstract: "Run Qwen chat models in-process: chat, generate, tokenize, inspect, benchmark.",
        subcommands: [
            ChatCommand.self, GenerateCommand.self, InfoCommand.self, TokenizeCommand.self, DetokenizeCommand.self,
            LogitsCommand.self, RenderCommand.self, PerplexityCommand.self, BenchCommand.self, BatchedBenchCommand.self, TokenizerBenchCommand.self,
            KernelBenchCommand.self, GrammarCommand.self,
        ])
}

@main
enum Main {
    static func main() {
        do {
            var command = try Qwen.parseAsRoot()
            try command.run()
        } catch let error as QwenError {
            printError(error.message)
            exit(1)
        } catch {
            let code = Qwen.exitCode(for: error)
            if code == .success {
                Qwen.exit(withError: error)   // --help, --version: prints and exits 0
            }
            // Usage errors (unknown flag, missing option) exit 2, as API.md states.
            let message = Qwen.fullMessage(for: error)
            if !message.isEmpty { printError(message) }
            exit(code == .validationFailure ? 2 : code.rawValue)
        }
    }
}

func printError(_ message: String) {
    fputs("qwen: \(message)\n", stderr)
}

/// Options shared by every command that loads a model.
struct ModelOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "A .gguf file or a Hugging Face checkpoint directory.")
    var model: String

    @Option(name: .customShort("t"), help: "Compute threads (0 = all cores).")
    var threads: Int = 0

    @Option(help: "Kernel instruction set: generic, avx2, avxvnni or avx512 (default: the best this CPU runs; same as QWEN_ISA).")
    var isa: String?

    @Flag(name: .shortAndLong, help: "Log the engine's events on stderr (-v: info, -vv: debug).")
    var verbose: Int

    func load() throws -> Model {
        if verbose > 0 {
            Log.set(sink: { level, message in fputs("qwen [\(level)] \(message)\n", stderr) }, minimum: verbose > 1 ? .debug : .info)
        }
        var options = ModelLoadOptions()
        if let isa {
            guard let set = InstructionSet(rawValue: isa), KernelTable.available.contains(set) else {
                throw ValidationError("--isa \(isa): this CPU and build run \(KernelTable.available.map(\.rawValue).joined(separator: ", "))")
            }
            options.instructionSet = set
        }
        options.threads = threads
        return try Model.load(path: model, options: options)
    }
}

/// JSON text of a string, escaped per RFC 8259 (as Python's json.dumps writes it).
func jsonString(_ s: String) -> String { JSONValue.quoted(s) }

extension KVCacheType: ExpressibleByArgument {}

/// The KV cache type of the commands that make a session or a scorer.
struct KVTypeOption: ParsableArguments {
    @Option(name: .customLong("kv-type"), help: "KV cache type: f16 or q8 (Q8_0, 53% of f16's memory).")
    var kvType: KVCacheType = .f16
}

struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "info", abstract: "Print the model's info as JSON.")
    @OptionGroup var options: ModelOptions

    func run() throws {
        let model = try options.load()
        let info = model.info
        let fields: [(String, String)] = [
            ("arch", jsonString(info.architecture)), ("name", jsonString(info.name)),
            ("n_vocab", "\(info.vocabSize)"), ("n_ctx_train", "\(info.contextLengthTrain)"),
            ("n_layer", "\(info.layerCount)"), ("n_embd", "\(info.hiddenSize)"),
            ("n_head", "\(info.headCount)"), ("n_head_kv", "\(info.kvHeadCount)"),
            ("n_params", "\(info.parameterCount)"), ("weight_type", jsonString(info.weightType)),
            ("file_bytes", "\(info.fileBytes)"), ("chat_template", jsonString(info.chatTemplate)),
            ("isa", jsonString(model.kernels.isa.rawValue)),
            ("isa_available", "[" + KernelTable.available.map { jsonString($0.rawValue) }.joined(separator: ", ") + "]"),
            ("kv_bytes_per_token", "{" + KVCacheType.allCases.map {
                "\(jsonString($0.rawValue)): \($0.bytesPerToken(model.config).map(String.init) ?? "null")"
            }.joined(separator: ", ") + "}"),
        ]
        print("{" + fields.map { "\(jsonString($0.0)): \($0.1)" }.joined(separator: ", ") + "}")
    }
}

/// A tokenizer from a model path, or from a bare qwen.tiktoken file.
func loadTokenizer(_ path: String) throws -> Tokenizer {
    if path.hasSuffix(".tiktoken") { return try Tokenizer(tiktokenFile: path) }
    return try Model.load(path: path).tokenizer
}

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tokenize", abstract: "Print the token ids of a text as a JSON array.")
    @Option(name: .shortAndLong, help: "A model (.gguf or checkpoint directory) or a qwen.tiktoken file.")
    var model: String
    @Flag(help: "Parse special-token strings such as <|im_start|> as special tokens.")
    var special = false
    @Option(help: "The text to tokenize.") var text: String?
    @Option(help: "A UTF-8 file to tokenize.") var file: String?

    func validate() throws {
        guard (text == nil) != (file == nil) else { throw ValidationError("give exactly one of --text and --file") }
    }

    func run() throws {
        let tokenizer = try loadTokenizer(model)
        let ids: [Int32]
        if let text {
            ids = tokenizer.encode(text, parseSpecial: special)
        } else {
            let bytes = try MappedFile.readAll(path: file ?? "")
            ids = try bytes.withUnsafeBytes { try tokenizer.encode(utf8: $0, parseSpecial: special) }
        }
        print("[" + ids.map(String.init).joined(separator: ", ") + "]")
    }
}

struct DetokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "detokenize", abstract: "Print the text of comma-separated token ids.")
    @Option(name: .shortAndLong, help: "A model (.gguf or checkpoint directory) or a qwen.tiktoken file.")
    var model: String
    @Option(help: "Comma-separated token ids, e.g. 1,2,3.") var ids: String
    @Flag(help: "Drop special tokens.") var skipSpecial = false

    func run() throws {
        var parsed: [Int32] = []
        for part in ids.split(separator: ",", omittingEmptySubsequences: true) {
            guard let id = Int32(part.trimmingCharacters(in: " ")) else { throw ValidationError("not a token id: \(part)") }
            parsed.append(id)
        }
        let tokenizer = try loadTokenizer(model)
        let bytes = try tokenizer.decode(parsed, skipSpecial: skipSpecial)
        fwrite(bytes, 1, bytes.count, stdout)
        print()
    }
}

extension Substring {
    func trimmingCharacters(in set: Character) -> Substring {
        var s = self
        while s.first == set { s = s.dropFirst() }
        while s.last == set { s = s.dropLast() }
        return s
    }
}
