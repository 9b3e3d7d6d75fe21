import ArgumentParser
import Kernels
import QwenEmbed
#if canImport(Glibc)
import Glibc
#endif

struct LogitsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logits", abstract: "Print the top logits and their log-sum-exp at every position of a token sequence (JSON lines).")
    @OptionGroup var options: ModelOptions
    @Option(help: "Comma-separated token ids.") var ids: String
    @Option(help: "How many top logits per position.") var top: Int = 10
    @Option(name: .customShort("c"), help: "Context window (0 = the sequence length).") var context: Int = 0
    @Option(help: "Tokens per forward pass (1 = token by token).") var batch: Int = 128
    @OptionGroup var kv: KVTypeOption
    @Option(help: "Comma-separated vocabulary ids whose logits to print at every position too (\"at\").")
    var at: String = ""
    @Option(name: .customLong("as-generated"), help: ArgumentHelp(
        "Treat the first N ids as a prompt and the rest as a reply: print the logits of positions N-1 on as generation computes them (prompt prefilled, each reply token decoded alone); 0 = off.",
        valueName: "N"))
    var asGenerated: Int = 0

    static func parseIDs(_ text: String) throws -> [Int32] {
        try text.split(separator: ",").map { part in
            guard let id = Int32(part.trimmingCharacters(in: " ")) else { throw ValidationError("not a token id: \(part)") }
            return id
        }
    }

    func run() throws {
        let tokens = try Self.parseIDs(ids), watched = try Self.parseIDs(at)
        guard !tokens.isEmpty else { throw ValidationError("--ids is empty") }
        guard top >= 1 else { throw ValidationError("--top must be at least 1") }
        let model = try options.load()
        if let bad = watched.first(where: { $0 < 0 || Int($0) >= model.config.vocabSize }) {
            throw ValidationError("--at id \(bad) is outside the vocabulary (0..<\(model.config.vocabSize))")
        }
        let top = self.top, vocab = model.config.vocabSize
        let printRow: @Sendable (Int, UnsafePointer<Float>) -> Void = { position, logits in
            var best: [(Int, Float)] = []
            for i in 0..<vocab {
                let l = logits[i]
                if best.count < top || l > best[best.count - 1].1 {
                    best.append((i, l))
                    best.sort { $0.1 > $1.1 }
                    if best.count > top { best.removeLast() }
                }
            }
            // log(sum(exp(logits))): a token's log probability is its logit minus this.
            var maximum = -Float.infinity
            for i in 0..<vocab { maximum = max(maximum, logits[i]) }
            var sum = 0.0
            for i in 0..<vocab { sum += Double(expf(logits[i] - maximum)) }
            let logSumExp = Double(maximum) + log(sum)
            let items = best.map { "[\($0.0), \(String(format6: $0.1))]" }.joined(separator: ", ")
            let atItems = watched.map { "[\($0), \(String(format6: logits[Int($0)]))]" }.joined(separator: ", ")
            print("{\"pos\": \(position), \"logsumexp\": \(logSumExp), \"top\": [\(items)]"
                  + (watched.isEmpty ? "}" : ", \"at\": [\(atItems)]}"))
        }
        if asGenerated > 0 {
            guard asGenerated < tokens.count else { throw ValidationError("--as-generated must be below the number of ids") }
            var options = SessionOptions()
            options.contextSize = max(context, tokens.count + 1)
            options.kvType = kv.kvType
            let session = try Session(model: model, options: options)
            let prompt = Array(tokens[..<asGenerated])
            try session.replayLogits(prompt: prompt, continuation: Array(tokens[asGenerated...])) { step, logits in
                printRow(prompt.count - 1 + step, logits)
            }
        } else {
            let scorer = try SequenceScorer(model: model, contextSize: max(context, tokens.count), batch: batch, kvType: kv.kvType)
            try scorer.run(tokens, printRow)
        }
    }
}

struct PerplexityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "perplexity",
        abstract: "Perplexity of a text file, computed as llama.cpp's perplexity tool does.")
    @OptionGroup var options: ModelOptions
    @Option(name: .short, help: "A UTF-8 text file.") var file: String
    @Option(name: .customShort("c"), help: "Window size in tokens.") var context: Int = 512
    @OptionGroup var kv: KVTypeOption

    func run() throws {
        guard context >= 16 else { throw ValidationError("-c must be at least 16") }
        let model = try options.load()
        let bytes = try MappedFile.readAll(path: file)
        let tokens = try bytes.withUnsafeBytes { try model.tokenizer.encode(utf8: $0, parseSpecial: false) }
        let windows = tokens.count / context
        guard windows >= 1 else { throw QwenError.invalidArgument("\(file) has \(tokens.count) tokens, fewer than one window of \(context)") }
        let scorer = try SequenceScorer(model: model, contextSize: context, kvType: kv.kvType)
        // Each window runs from an empty cache; only its second half is scored
        // (positions first..<context-1 predicting their successors), as llama.cpp does.
        let first = context / 2
        var nll = 0.0
        var count = 0
        let start = monotonicMilliseconds()
        for w in 0..<windows {
            let window = Array(tokens[(w * context)..<((w + 1) * context)])
            try scorer.run(window) { position, logits in
                guard position >= first, position < context - 1 else { return }
                nll -= logSoftmax(logits, vocab: model.config.vocabSize, at: Int(window[position + 1]))
                count += 1
            }
            fputs("[\(w + 1)/\(windows)] ppl so far \(String(format6: Float(exp(nll / Double(count)))))\n", stderr)
        }
        fputs("\(count) tokens scored in \(Int(monotonicMilliseconds() - start)) ms\n", stderr)
        print("ppl = \(String(format6: Float(exp(nll / Double(count)))))")
    }
}

/// log p(target) from raw logits.
func logSoftmax(_ logits: UnsafePointer<Float>, vocab: Int, at target: Int) -> Double {
    var maximum = logits[0]
    for i in 1..<vocab where logits[i] > maximum { maximum = logits[i] }
    var sum = 0.0
    for i in 0..<vocab { sum += exp(Double(logits[i] - maximum)) }
    return Double(logits[target] - maximum) - log(sum)
}

extension String {
    /// A float with up to 4 decimals, without Foundation's String(format:).
    init(format6 value: Float) {
        guard value.isFinite else { self = value.isNaN ? "NaN" : (value > 0 ? "Infinity" : "-Infinity"); return }
        let scaled = (Double(value) * 10000).rounded()
        let negative = scaled < 0
        let magnitude = abs(scaled)
        let whole = Int(magnitude / 10000)
        let fraction = Int(magnitude.truncatingRemainder(dividingBy: 10000))
        var digits = String(fraction)
        while digits.count < 4 { digits = "0" + digits }
        self = (negative ? "-" : "") + "\(whole).\(digits)"
    }
}

struct RenderCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "render",
        abstract: "Print the prompt a chat renders to (the model's chat template, or Qwen v1's make_context).")
    @OptionGroup var options: ModelOptions
    @Option(help: "A JSON file: OpenAI-style messages (role, content, tool_calls, reasoning_content); a system message sets the system prompt.")
    var messages: String
    @Option(help: "A JSON file: OpenAI-style tools ([{\"type\": \"function\", \"function\": {...}}]).") var tools: String?
    @Option(help: "The template's enable_thinking (true / false; default: the template's own).") var enableThinking: Bool?
    @Flag(help: "Print the token ids (a JSON array) instead of the text.") var ids = false

    /// JSON read in order: an object's members and an array's elements as JSON text.
    static func members(_ text: String?, _ what: String) throws -> [String: String] {
        guard let text else { return [:] }
        guard let members = JSONValue.pythonDumpsMembers(text) else { throw ValidationError("\(what) is not a JSON object") }
        return Dictionary(members.map { ($0.key, $0.json) }, uniquingKeysWith: { $1 })
    }
    static func elements(_ text: String?, _ what: String) throws -> [String] {
        guard let text else { return [] }
        guard let elements = JSONValue.pythonDumpsElements(text) else { throw ValidationError("\(what) is not a JSON array") }
        return elements
    }
    static func string(_ json: String?) -> String? {
        json.flatMap { try? JSONValue.parse(Array($0.utf8), context: "").string }
    }
    static func file(_ path: String) throws -> String { String(decoding: try MappedFile.readAll(path: path), as: UTF8.self) }

    func run() throws {
        let model = try options.load()
        let session = try Session(model: model)
        if let tools {
            try session.setTools(try Self.elements(try Self.file(tools), "--tools").enumerated().map { i, entry in
                let tool = try Self.members(entry, "tools[\(i)]")
                let function = try tool["function"].map { try Self.members($0, "tools[\(i)].function") } ?? tool
                guard let name = Self.string(function["name"]) else { throw ValidationError("tools[\(i)] has no name") }
                return try ToolDefinition(name: name, description: Self.string(function["description"]), parameters: function["parameters"])
            })
        }
        var conversation: [ChatMessage] = []
        for (i, entry) in try Self.elements(try Self.file(messages), "--messages").enumerated() {
            let message = try Self.members(entry, "messages[\(i)]")
            guard let roleName = Self.string(message["role"]),
                  let role = [Role.system, .user, .assistant, .tool].first(where: { $0.name == roleName }) else {
                throw ValidationError("messages[\(i)].role is not system, user, assistant or tool")
            }
            let calls = try Self.elements(message["tool_calls"], "messages[\(i)].tool_calls").map { entry -> ToolCall in
                let call = try Self.members(entry, "messages[\(i)].tool_calls")
                let function = try call["function"].map { try Self.members($0, "messages[\(i)].tool_calls") } ?? call
                guard let name = Self.string(function["name"]) else { throw ValidationError("messages[\(i)] has a tool call without a name") }
                return ToolCall(name: name, arguments: function["arguments"].map { Self.string($0) ?? $0 } ?? "{}")
            }
            conversation.append(ChatMessage(role: role, content: Self.string(message["content"]) ?? "", toolCalls: calls,
                                            reasoning: Self.string(message["reasoning_content"])))
        }
        let prompt = try session.renderPrompt(conversation, enableThinking: enableThinking)
        if ids {
            print("[" + prompt.map(String.init).joined(separator: ", ") + "]")
        } else {
            let bytes = try model.tokenizer.decode(prompt)
            bytes.withUnsafeBytes { _ = fwrite($0.baseAddress, 1, $0.count, stdout) }
        }
    }
}
