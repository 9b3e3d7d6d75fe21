#if canImport(Glibc)
import Glibc
#endif

import Kernels

/// What `qwen info` and `qwen_model_get_info` report.
public struct ModelInfo: Sendable, Equatable {
    public var architecture: String
    public var name: String
    public var vocabSize: Int
    public var contextLengthTrain: Int
    public var layerCount: Int
    public var hiddenSize: Int
    public var headCount: Int
    public var kvHeadCount: Int
    public var parameterCount: Int64
    /// "Q4_K_M", "bf16", "f16", "gptq-int4", ...
    public var weightType: String
    public var fileBytes: UInt64
    /// How chats are rendered: "make_context (Qwen v1)", "the file's" (its chat template),
    /// or "built-in Qwen2.5 (...)" with the reason the file's was not used.
    public var chatTemplate: String = ""
}

/// Options for `Model.load`.
public struct ModelLoadOptions {
    /// Threads of the model's compute pool, shared by all its sessions; 0 = all cores.
    public var threads: Int = 0
    public var useMmap: Bool = true
    /// Called with the load fraction in [0, 1]; return false to cancel the load.
    public var progress: ((Float) -> Bool)? = nil
    /// The kernels' instruction set; nil = QWEN_ISA if set, else the best this CPU runs.
    /// A set this CPU cannot run is never chosen.
    public var instructionSet: InstructionSet? = nil
    public init() {}
}

/// A loaded model: config, tokenizer and weights mapped from the file(s), and the engine
/// that computes for all its sessions. Immutable after load and safe to share between
/// threads and sessions.
public final class Model: @unchecked Sendable {
    public let path: String
    public let config: ModelConfig
    public let tokenizer: Tokenizer
    public let info: ModelInfo
    /// Weights the forward pass reads.
    public let weights: TransformerWeights
    /// Compute threads of the model's pool.
    public let threads: Int
    /// The kernels every computation on this model runs, chosen at load.
    public var kernels: KernelTable { engine.kernels }
    /// The compute every session of this model runs on (one pool, batched steps).
    public let engine: Engine
    /// Released sessions' KV caches, kept for the conversations they hold (`acquireSession`).
    public var promptCache: PromptCache { engine.promptCache }
    /// Longest ChatML prompt (history is truncated to fit): generation_config.json's
    /// max_window_size when present, else 6144.
    public let maxWindowSize: Int
    /// The chat template the file carries (GGUF `tokenizer.chat_template`, or
    /// tokenizer_config.json's `chat_template` / chat_template.jinja), nil when none.
    public let chatTemplateSource: String?
    /// How conversations become prompts and replies come back (`ChatFormat`).
    let chatFormat: ChatFormat
    /// Compiled grammars and the vocabulary trie for constrained replies.
    let grammars = GrammarCache()
    /// Keeps the mapped files alive as long as `weights` point into them.
    private let storage: [AnyObject]
    /// The file's tensors as loaded (in `storage`), for `fingerprint`.
    private let sourceTensors: [SourceTensor]
    private let fingerprintLock = Mutex()
    private var computedFingerprint: UInt64? = nil   // under fingerprintLock

    /// The model's sampled fingerprint (`Model.fingerprint(config:vocabularySize:tensors:)`),
    /// computed at the first use and kept: saved sessions carry it.
    public var fingerprint: UInt64 {
        fingerprintLock.locked {
            if let computedFingerprint { return computedFingerprint }
            let value = Model.fingerprint(config: config, vocabularySize: tokenizer.count, tensors: sourceTensors)
            computedFingerprint = value
            return value
        }
    }

    public static let defaultSystemPrompt = "You are a helpful assistant."

    private init(path: String, config: ModelConfig, tokenizer: Tokenizer, info: ModelInfo,
                 weights: TransformerWeights, threads: Int, kernels: KernelTable,
                 maxWindowSize: Int, chatTemplate: (source: String?, tokens: [String: String]), storage: [AnyObject],
                 sourceTensors: [SourceTensor]) {
        self.path = path
        self.config = config
        self.tokenizer = tokenizer
        let chat = ChatFormat.forModel(architecture: config.architecture, tokenizer: tokenizer,
                                       templateSource: chatTemplate.source, templateTokens: chatTemplate.tokens)
        chatFormat = chat.format
        var info = info
        info.chatTemplate = chat.description
        self.info = info
        self.weights = weights
        self.threads = threads
        engine = Engine(config: config, weights: weights, tokenizer: tokenizer, kernels: kernels, threads: threads)
        self.maxWindowSize = maxWindowSize
        chatTemplateSource = chatTemplate.source
        self.storage = storage
        self.sourceTensors = sourceTensors
    }

    deinit {
        engine.shutdown()
    }

    /// Loads a `.gguf` file or a Hugging Face checkpoint directory.
    public static func load(path: String, options: ModelLoadOptions = ModelLoadOptions()) throws -> Model {
        guard !path.isEmpty else { throw QwenError.invalidArgument("model path is empty") }
        guard FileSystem.exists(path) else { throw QwenError.io("\(path): no such file or directory") }
        let threads = options.threads > 0 ? options.threads : Model.coreCount()
        func report(_ fraction: Float) throws {
            if let progress = options.progress, !progress(fraction) {
                throw QwenError.cancelled("model load cancelled by the progress callback")
            }
        }
        try report(0)
        let start = monotonicMilliseconds()
        let model = FileSystem.isDirectory(path)
            ? try loadHuggingFace(directory: path, options: options, threads: threads, report: report)
            : try loadGGUF(path: path, options: options, threads: threads, report: report)
        try report(1)
        let info = model.info
        Log.write(.info, "loaded \(FileSystem.lastComponent(path)): \(info.architecture) \(info.weightType), "
                  + "\(info.layerCount) layers, \(info.hiddenSize) wide, \(info.parameterCount) parameters, "
                  + "\(info.fileBytes >> 20) MiB in \(Int(monotonicMilliseconds() - start)) ms; kernels \(model.kernels.isa.rawValue), "
                  + "\(threads) threads; resident \(residentMegabytes()) MiB")
        return model
    }

    /// The kernel table for `options`: its instruction set, else QWEN_ISA's, else the best.
    static func kernels(_ options: ModelLoadOptions) -> KernelTable {
        if let isa = options.instructionSet {
            if let table = KernelTable.forInstructionSet(isa) { return table }
            Log.write(.warn, "kernels: \(isa.rawValue) is not available on this CPU; using \(KernelTable.preferred(override: nil).rawValue)")
        }
        let override = getenv("QWEN_ISA").map { String(cString: $0) }
        let table = KernelTable.selected(override: override)
        if let override, table.isa.rawValue != override.lowercased() {
            Log.write(.warn, "QWEN_ISA=\(override): not an instruction set this CPU and build run "
                      + "(\(KernelTable.available.map(\.rawValue).joined(separator: ", "))); using \(table.isa.rawValue)")
        }
        return table
    }

    /// Resident memory of this process in MiB (/proc/self/statm), 0 where unknown.
    static func residentMegabytes() -> Int {
        guard let file = fopen("/proc/self/statm", "r") else { return 0 }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 128)
        guard fgets(&line, Int32(line.count), file) != nil else { return 0 }
        let fields = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self).split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return (pages * Int(sysconf(Int32(_SC_PAGESIZE)))) >> 20
    }

    static func coreCount() -> Int {
        #if canImport(Glibc)
        return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        #else
        return 1
        #endif
    }

    // MARK: GGUF

    private static func loadGGUF(path: String, options: ModelLoadOptions, threads: Int,
                                 report: (Float) throws -> Void) throws -> Model {
        let gguf = try GGUFFile(path: path, useMmap: options.useMmap)
        let source = FileSystem.lastComponent(path)
        try report(0.3)
        let config = try ModelConfig.fromGGUF(gguf)
        guard let tokens = try gguf.stringArray("tokenizer.ggml.tokens") else {
            throw QwenError.badModel("\(source): missing tokenizer.ggml.tokens")
        }
        let tokenizer = try Tokenizer(ggufTokens: tokens, tokenTypes: try gguf.int32Array("tokenizer.ggml.token_type"))
        try report(0.7)
        let mapper = WeightMapper(source: source) { name in
            guard let t = gguf.tensor(name) else { return nil }
            return RawTensor(name: name, shape: t.dims.reversed(), type: t.type, data: t.data)
        }
        let repackStart = monotonicMilliseconds()
        let (weights, repacked) = try mapper.ggufWeights(config).repackedForKernels(release: gguf.file.releasePages)
        Log.write(.info, "\(source): \(repacked.count) matrices repacked for the kernels in \(Int(monotonicMilliseconds() - repackStart)) ms")
        let parameters = gguf.tensors.reduce(Int64(0)) { $0 + Int64($1.elementCount) }
        let info = ModelInfo(
            architecture: config.architecture.rawValue,
            name: gguf.string("general.name") ?? source,
            vocabSize: config.vocabSize, contextLengthTrain: config.contextLength,
            layerCount: config.layerCount, hiddenSize: config.hiddenSize,
            headCount: config.headCount, kvHeadCount: config.kvHeadCount,
            parameterCount: parameters,
            weightType: ggufWeightTypeName(gguf),
            fileBytes: UInt64(gguf.file.size))
        var templateTokens: [String: String] = [:]
        for (key, name) in [("bos_token", "bos"), ("eos_token", "eos"), ("pad_token", "padding"), ("unk_token", "unknown")] {
            if let id = gguf.int("tokenizer.ggml.\(name)_token_id"), id >= 0, id < tokens.count { templateTokens[key] = tokens[id] }
        }
        return Model(path: path, config: config, tokenizer: tokenizer, info: info, weights: weights,
                     threads: threads, kernels: kernels(options), maxWindowSize: 6144,
                     chatTemplate: (gguf.string("tokenizer.chat_template"), templateTokens), storage: [gguf] + repacked,
                     sourceTensors: gguf.tensors.map { SourceTensor(name: $0.name, type: $0.type.name, shape: $0.dims, data: $0.data) })
    }

    /// llama.cpp's `general.file_type` names; the most common matrix type otherwise.
    static func ggufWeightTypeName(_ gguf: GGUFFile) -> String {
        let names: [Int: String] = [
            0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
            10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M",
            16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 32: "BF16",
        ]
        if let fileType = gguf.int("general.file_type"), let name = names[fileType] { return name }
        var counts: [String: Int] = [:]
        for t in gguf.tensors where t.dims.count == 2 { counts[t.type.name, default: 0] += t.elementCount }
        return counts.max { $0.value < $1.value }?.key ?? "unknown"
    }

    // MARK: Hugging Face directory

    private static func loadHuggingFace(directory: String, options: ModelLoadOptions, threads: Int,
                                        report: (Float) throws -> Void) throws -> Model {
        let configPath = FileSystem.join(directory, "config.json")
        guard FileSystem.exists(configPath) else { throw QwenError.io("\(directory): no config.json") }
        let json = try JSONValue.parse(MappedFile.readAll(path: configPath), context: "config.json")
        let config = try ModelConfig.fromHuggingFace(json: json)
        // The safetensors headers before the vocabulary: a broken checkpoint is refused
        // without first reading 151k tokens.
        let checkpoint = try SafetensorsCheckpoint(directory: directory, useMmap: options.useMmap)
        try report(0.2)
        let tokenizer: Tokenizer
        var chatTemplate: (source: String?, tokens: [String: String]) = (nil, [:])
        if FileSystem.exists(FileSystem.join(directory, "qwen.tiktoken")) {
            tokenizer = try Tokenizer(tiktokenFile: FileSystem.join(directory, "qwen.tiktoken"))
        } else if FileSystem.exists(FileSystem.join(directory, "tokenizer.json")) {
            tokenizer = try Tokenizer(huggingFaceFile: FileSystem.join(directory, "tokenizer.json"), vocabSize: config.vocabSize)
            chatTemplate = try huggingFaceChatTemplate(directory: directory)
        } else {
            throw QwenError.unsupportedModel("\(directory): no tokenizer (qwen.tiktoken for Qwen v1, tokenizer.json for Qwen2/2.5/3)")
        }
        try report(0.7)

        var maxWindow = 6144
        let generationPath = FileSystem.join(directory, "generation_config.json")
        if FileSystem.exists(generationPath),
           let window = try JSONValue.parse(MappedFile.readAll(path: generationPath), context: "generation_config.json")["max_window_size"]?.int,
           window > 0 {
            maxWindow = window
        }

        let gptq = try gptqSettings(directory: directory, config: json)
        let weightType: String
        if let gptq {
            weightType = "\(gptq.packing.rawValue)-int\(gptq.bits)"
        } else {
            let dtypes = Set(checkpoint.tensors.values.filter { $0.shape.count == 2 }.map(\.dtype))
            weightType = dtypes.count == 1 ? (dtypes.first.map { $0.rawValue.lowercased() } ?? "unknown")
                : dtypes.map { $0.rawValue.lowercased() }.sorted().joined(separator: "+")
        }

        let source = FileSystem.lastComponent(directory)
        var mapper = WeightMapper(source: source) { name in
            guard let t = checkpoint.tensors[name] else { return nil }
            let type: GGMLType
            switch t.dtype {
            case .f32: type = .f32
            case .f16: type = .f16
            case .bf16: type = .bf16
            default:
                throw QwenError.unsupportedModel("\(source): tensor \(name) is \(t.dtype.rawValue); F32, F16 or BF16 expected")
            }
            return RawTensor(name: name, shape: t.shape, type: type, data: t.data)
        }
        if let gptq {
            mapper.gptq = GPTQSource(settings: gptq, tensors: checkpoint.tensors, release: checkpoint.releasePages)
        }
        let weights = try mapper.huggingFaceWeights(config)
        // Parameters as the unquantized model counts them: a packed GPTQ weight holds
        // 32 / bits values per int32; its zeros, scales and g_idx are not parameters.
        let parameters = checkpoint.tensors.reduce(Int64(0)) { total, entry in
            let (name, t) = entry
            guard let gptq else { return total + Int64(t.elementCount) }
            if name.hasSuffix(".qweight") { return total + Int64(t.elementCount) * Int64(32 / gptq.bits) }
            if name.hasSuffix(".qzeros") || name.hasSuffix(".scales") || name.hasSuffix(".g_idx") { return total }
            return total + Int64(t.elementCount)
        }
        let info = ModelInfo(
            architecture: config.architecture.rawValue, name: FileSystem.lastComponent(directory),
            vocabSize: config.vocabSize, contextLengthTrain: config.contextLength,
            layerCount: config.layerCount, hiddenSize: config.hiddenSize,
            headCount: config.headCount, kvHeadCount: config.kvHeadCount,
            parameterCount: parameters, weightType: weightType, fileBytes: checkpoint.fileBytes)
        return Model(path: directory, config: config, tokenizer: tokenizer, info: info, weights: weights,
                     threads: threads, kernels: kernels(options), maxWindowSize: maxWindow,
                     chatTemplate: chatTemplate, storage: [checkpoint] + (mapper.gptq.map { [$0] } ?? []),
                     sourceTensors: checkpoint.tensors.values.map { SourceTensor(name: $0.name, type: $0.dtype.rawValue, shape: $0.shape, data: $0.data) })
    }

    /// A Hugging Face directory's chat template (chat_template.jinja, else tokenizer_config.json's
    /// `chat_template`: a string, or a list of named templates whose "default" is taken) and
    /// the named tokens of tokenizer_config.json (a string or {"content": ...} each).
    static func huggingFaceChatTemplate(directory: String) throws -> (source: String?, tokens: [String: String]) {
        let configPath = FileSystem.join(directory, "tokenizer_config.json")
        let config = FileSystem.exists(configPath)
            ? try JSONValue.parse(MappedFile.readAll(path: configPath), context: "tokenizer_config.json") : .object([:])
        var tokens: [String: String] = [:]
        for key in ["bos_token", "eos_token", "pad_token", "unk_token"] {
            if let token = config[key]?.string ?? config[key]?["content"]?.string { tokens[key] = token }
        }
        let templatePath = FileSystem.join(directory, "chat_template.jinja")
        if FileSystem.exists(templatePath) {
            return (String(decoding: try MappedFile.readAll(path: templatePath), as: UTF8.self), tokens)
        }
        if let named = config["chat_template"]?.array {
            let template = named.first { $0["name"]?.string == "default" }?["template"]?.string
            return (template, tokens)
        }
        return (config["chat_template"]?.string, tokens)
    }

    /// The GPTQ settings of a checkpoint directory: config.json's quantization_config, else
    /// quantize_config.json; nil for an unquantized checkpoint.
    static func gptqSettings(directory: String, config: JSONValue) throws -> GPTQSettings? {
        if let embedded = config["quantization_config"] {
            return try GPTQSettings.decode(embedded, source: "config.json quantization_config")
        }
        let path = FileSystem.join(directory, "quantize_config.json")
        guard FileSystem.exists(path) else { return nil }
        return try GPTQSettings.decode(JSONValue.parse(MappedFile.readAll(path: path), context: "quantize_config.json"),
                                       source: "quantize_config.json")
    }
}
