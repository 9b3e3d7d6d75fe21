/// The Qwen architectures this engine runs. Differences between them live here and in
/// the weight mapping, never in copies of the forward pass.
public enum Architecture: String, Sendable {
    /// Qwen (v1): fused QKV with bias, no GQA, untied head, dynamic NTK + logN scaling.
    case qwen
    /// Qwen2 / Qwen2.5: separate q/k/v with bias, GQA, rope theta from the file.
    case qwen2
    /// Qwen3: as Qwen2 without the q/k/v biases, with an RMSNorm over each head of q and k
    /// before RoPE, and a head width of its own (heads x headDim need not be the hidden size).
    case qwen3

    /// Qwen2 and Qwen3 keep Qwen2's names, layout and chat format (the file's own template).
    var isQwen2Family: Bool { self != .qwen }
}

/// Typed hyper-parameters of a Qwen model, decoded from config.json or GGUF metadata.
/// Names are ours; the checkpoint's names appear only in the decoders below.
public struct ModelConfig: Sendable, Equatable {
    public var architecture: Architecture
    public var vocabSize: Int
    public var hiddenSize: Int
    /// Width of each FFN branch (gate/up). Qwen v1's config states twice this value.
    public var intermediateSize: Int
    public var layerCount: Int
    public var headCount: Int
    public var kvHeadCount: Int
    public var headDim: Int
    /// Context length the model was trained for (n_ctx_train).
    public var contextLength: Int
    public var rmsNormEps: Float
    public var ropeTheta: Float
    /// Rotated dimensions per head (rotary_pct x headDim for Qwen v1).
    public var ropeDim: Int
    public var tiedEmbeddings: Bool
    /// Qwen v1: extend RoPE by dynamic NTK when a sequence exceeds `contextLength`.
    public var useDynamicNTK: Bool
    /// Qwen v1: scale queries by log_{contextLength}(position) beyond `contextLength`.
    public var useLogNAttention: Bool

    public init(architecture: Architecture, vocabSize: Int, hiddenSize: Int, intermediateSize: Int,
                layerCount: Int, headCount: Int, kvHeadCount: Int, headDim: Int, contextLength: Int,
                rmsNormEps: Float, ropeTheta: Float, ropeDim: Int, tiedEmbeddings: Bool,
                useDynamicNTK: Bool = false, useLogNAttention: Bool = false) {
        self.architecture = architecture
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.layerCount = layerCount
        self.headCount = headCount
        self.kvHeadCount = kvHeadCount
        self.headDim = headDim
        self.contextLength = contextLength
        self.rmsNormEps = rmsNormEps
        self.ropeTheta = ropeTheta
        self.ropeDim = ropeDim
        self.tiedEmbeddings = tiedEmbeddings
        self.useDynamicNTK = useDynamicNTK
        self.useLogNAttention = useLogNAttention
    }

    /// Longest context a session may have: for dynamic-NTK checkpoints (Qwen v1) 32,768
    /// positions, the span of modeling_qwen.py's logN table (the Qwen-7B card shows
    /// perplexity flat to 16,384 with a 2,048 `seq_length`); otherwise no limit beyond
    /// memory (a larger window than trained is the caller's choice, as in llama.cpp).
    public var maximumContextSize: Int? { useDynamicNTK ? max(contextLength, Self.dynamicNTKContextLimit) : nil }
    public static let dynamicNTKContextLimit = 32768

    /// The context a session gets when it asks for none: the trained length capped at
    /// `cap`, and for dynamic-NTK checkpoints `cap` itself (they extrapolate past their
    /// trained length; the cap bounds the KV cache's memory).
    public func defaultContextSize(cap: Int) -> Int {
        useDynamicNTK ? min(cap, maximumContextSize ?? cap) : min(contextLength, cap)
    }

    /// Checks the values describe a model the forward pass can run.
    func validated(_ source: String) throws -> ModelConfig {
        func check(_ ok: Bool, _ what: String) throws {
            if !ok { throw QwenError.badModel("\(source): \(what)") }
        }
        try check(vocabSize > 0 && vocabSize <= 1 << 22, "vocabulary size \(vocabSize) is out of range")
        try check(hiddenSize > 0 && hiddenSize <= 1 << 16, "hidden size \(hiddenSize) is out of range")
        try check(intermediateSize > 0 && intermediateSize <= 1 << 18, "intermediate size \(intermediateSize) is out of range")
        try check(layerCount > 0 && layerCount <= 1024, "layer count \(layerCount) is out of range")
        try check(headCount > 0 && headCount <= 1024, "head count \(headCount) is out of range")
        try check(kvHeadCount > 0 && headCount % kvHeadCount == 0, "kv head count \(kvHeadCount) does not divide head count \(headCount)")
        try check(headDim > 0 && headDim % 2 == 0 && headDim <= 1024, "head dimension \(headDim) is invalid")
        try check(ropeDim > 0 && ropeDim <= headDim && ropeDim % 2 == 0, "rotary dimension \(ropeDim) is invalid")
        try check(contextLength > 0 && contextLength <= 1 << 24, "context length \(contextLength) is out of range")
        try check(rmsNormEps > 0 && rmsNormEps < 1, "rms norm epsilon \(rmsNormEps) is out of range")
        try check(ropeTheta > 1 && ropeTheta.isFinite, "rope theta \(ropeTheta) is out of range")
        return self
    }

    // MARK: config.json

    /// Decodes a Hugging Face config.json for `QWenLMHeadModel` (Qwen v1, including the
    /// early key names n_embd / n_head / n_layer), `Qwen2ForCausalLM` or `Qwen3ForCausalLM`.
    public static func fromHuggingFace(json: JSONValue, source: String = "config.json") throws -> ModelConfig {
        guard json.object != nil else { throw QwenError.badModel("\(source): not a JSON object") }
        func int(_ keys: String...) -> Int? {
            for key in keys { if let v = json[key]?.int { return v } }
            return nil
        }
        func number(_ keys: String...) -> Double? {
            for key in keys { if let v = json[key]?.double { return v } }
            return nil
        }
        func require(_ value: Int?, _ name: String) throws -> Int {
            guard let value else { throw QwenError.badModel("\(source): missing \(name)") }
            return value
        }
        let architectures = json["architectures"]?.array?.compactMap(\.string) ?? []
        let modelType = json["model_type"]?.string ?? ""
        let architecture: Architecture
        if architectures.contains("QWenLMHeadModel") || modelType == "qwen" {
            architecture = .qwen
        } else if architectures.contains("Qwen2ForCausalLM") || modelType == "qwen2" {
            architecture = .qwen2
        } else if architectures.contains("Qwen3ForCausalLM") || modelType == "qwen3" {
            architecture = .qwen3
        } else {
            let named = architectures.first ?? (modelType.isEmpty ? "none" : modelType)
            throw QwenError.unsupportedModel("\(source): architecture \(named) is not supported (QWenLMHeadModel, Qwen2ForCausalLM and Qwen3ForCausalLM are)")
        }
        let hidden = try require(int("hidden_size", "n_embd"), "hidden_size")
        let heads = try require(int("num_attention_heads", "n_head"), "num_attention_heads")
        let layers = try require(int("num_hidden_layers", "n_layer"), "num_hidden_layers")
        let vocab = try require(int("vocab_size", "padded_vocab_size"), "vocab_size")
        switch architecture {
        case .qwen:
            // Qwen v1 states the sum of both FFN branches; each branch is half of it.
            let ffn = try require(int("intermediate_size", "ffn_hidden_size"), "intermediate_size")
            let headDim = int("kv_channels") ?? hidden / max(heads, 1)
            let ropePct = number("rotary_pct") ?? 1.0
            guard ropePct > 0, ropePct <= 1 else { throw QwenError.badModel("\(source): rotary_pct \(ropePct) is out of range (0, 1]") }
            return try ModelConfig(
                architecture: .qwen, vocabSize: vocab, hiddenSize: hidden, intermediateSize: ffn / 2,
                layerCount: layers, headCount: heads, kvHeadCount: heads, headDim: headDim,
                contextLength: int("seq_length", "n_positions", "max_position_embeddings") ?? 2048,
                rmsNormEps: Float(number("layer_norm_epsilon", "rms_norm_eps") ?? 1e-6),
                ropeTheta: Float(number("rotary_emb_base", "rope_theta") ?? 10000),
                ropeDim: Int((Double(headDim) * ropePct).rounded()),
                tiedEmbeddings: json["tie_word_embeddings"]?.bool ?? false,
                useDynamicNTK: json["use_dynamic_ntk"]?.bool ?? false,
                useLogNAttention: json["use_logn_attn"]?.bool ?? false
            ).validated(source)
        case .qwen2, .qwen3:
            if architecture == .qwen3, json["attention_bias"]?.bool == true {
                throw QwenError.unsupportedModel("\(source): attention_bias true is not supported for qwen3 (its releases have none)")
            }
            if let rope = json["rope_scaling"], rope.object != nil, let kind = rope["rope_type"]?.string ?? rope["type"]?.string, kind != "default" {
                throw QwenError.unsupportedModel("\(source): rope_scaling \(kind) is not supported (the trained RoPE is)")
            }
            let headDim = int("head_dim") ?? hidden / max(heads, 1)
            return try ModelConfig(
                architecture: architecture, vocabSize: vocab, hiddenSize: hidden,
                intermediateSize: try require(int("intermediate_size"), "intermediate_size"),
                layerCount: layers, headCount: heads, kvHeadCount: int("num_key_value_heads") ?? heads,
                headDim: headDim, contextLength: int("max_position_embeddings") ?? 32768,
                rmsNormEps: Float(number("rms_norm_eps") ?? 1e-6),
                ropeTheta: Float(number("rope_theta") ?? 10000), ropeDim: headDim,
                tiedEmbeddings: json["tie_word_embeddings"]?.bool ?? false
            ).validated(source)
        }
    }

    // MARK: GGUF

    /// Builds the config from GGUF metadata (`general.architecture` = qwen2, qwen3 or qwen and
    /// the `<arch>.*` keys llama.cpp writes). Vocabulary size comes from the token list.
    public static func fromGGUF(_ gguf: GGUFFile) throws -> ModelConfig {
        let source = FileSystem.lastComponent(gguf.file.path)
        guard let archName = gguf.string("general.architecture") else {
            throw QwenError.badModel("\(source): missing general.architecture")
        }
        guard let architecture = Architecture(rawValue: archName) else {
            throw QwenError.unsupportedModel("\(source): architecture \(archName) is not supported (qwen2, qwen3 and qwen are)")
        }
        let p = archName + "."
        let hidden = try gguf.requireInt(p + "embedding_length")
        let heads = try gguf.requireInt(p + "attention.head_count")
        // Qwen3 states its head width (q is heads x key_length wide, not the hidden size).
        let headDim = gguf.int(p + "attention.key_length") ?? hidden / max(heads, 1)
        if let valueWidth = gguf.int(p + "attention.value_length"), valueWidth != headDim {
            throw QwenError.unsupportedModel("\(source): value heads \(valueWidth) wide and key heads \(headDim) wide are not supported")
        }
        let vocab: Int
        if case .array(let tokens)? = gguf.metadata["tokenizer.ggml.tokens"] {
            vocab = tokens.count
        } else if let embedding = gguf.tensor("token_embd.weight"), embedding.dims.count == 2 {
            vocab = embedding.dims[1]
        } else {
            throw QwenError.badModel("\(source): missing tokenizer.ggml.tokens")
        }
        return try ModelConfig(
            architecture: architecture, vocabSize: vocab, hiddenSize: hidden,
            // llama.cpp's qwen export states Qwen v1's config value, both FFN branches
            // together (its loader uses n_ff / 2 per branch, as we do).
            intermediateSize: try gguf.requireInt(p + "feed_forward_length") / (architecture == .qwen ? 2 : 1),
            layerCount: try gguf.requireInt(p + "block_count"),
            headCount: heads, kvHeadCount: gguf.int(p + "attention.head_count_kv") ?? heads,
            headDim: headDim, contextLength: try gguf.requireInt(p + "context_length"),
            rmsNormEps: Float(gguf.float(p + "attention.layer_norm_rms_epsilon") ?? 1e-6),
            ropeTheta: Float(gguf.float(p + "rope.freq_base") ?? 10000),
            ropeDim: gguf.int(p + "rope.dimension_count") ?? headDim,
            tiedEmbeddings: gguf.tensor("output.weight") == nil,
            useDynamicNTK: architecture == .qwen, useLogNAttention: architecture == .qwen
        ).validated(source)
    }
}

/// A GPTQ or AWQ checkpoint's quantization settings (config.json's `quantization_config`,
/// or `quantize_config.json`), as AutoGPTQ writes them for Qwen's Int4/Int8 releases and
/// AutoAWQ for Qwen2.5's AWQ releases.
public struct GPTQSettings: Sendable, Equatable {
    /// How the quantized layers are packed.
    public enum Packing: String, Sendable {
        /// AutoGPTQ's checkpoint format v1: qweight [in * bits / 32, out], zeros stored minus 1, g_idx.
        case gptq
        /// AutoAWQ's GEMM layout: qweight [in, out / 8] in AWQ's nibble order, zeros as they are.
        case awq
    }
    public var packing: Packing = .gptq
    /// 4 or 8.
    public var bits: Int
    /// Input columns per group; nil for -1 (one group per output column).
    public var groupSize: Int?
    /// Act-order quantization (a g_idx that is not column / group_size); informational:
    /// the loader reads g_idx and regroups whenever it is not trivial.
    public var descAct: Bool
    /// Informational: the loader reads the zeros and picks a symmetric format only when
    /// every zero is 2^(bits-1).
    public var sym: Bool

    /// Decodes the settings; variants the engine cannot run are UNSUPPORTED_MODEL naming
    /// the field (bits 2/3, checkpoint format v2, Marlin or other packings, a group size
    /// that does not fill whole 32-column blocks).
    public static func decode(_ json: JSONValue, source: String) throws -> GPTQSettings {
        guard json.object != nil else { throw QwenError.badModel("\(source): not a JSON object") }
        func unsupported(_ what: String) -> QwenError { .unsupportedModel("\(source): \(what)") }
        if let method = json["quant_method"]?.string, method.lowercased() == "awq" {
            return try decodeAWQ(json, unsupported)
        }
        if let method = json["quant_method"]?.string, method.lowercased() != "gptq" {
            throw unsupported("quant_method \"\(method)\" is not supported (gptq and awq are)")
        }
        if let format = json["checkpoint_format"]?.string, format.lowercased() != "gptq" {
            throw unsupported("checkpoint_format \"\(format)\" is not supported (gptq, AutoGPTQ's v1 packing, is)")
        }
        if json["is_marlin_format"]?.bool == true {
            throw unsupported("is_marlin_format: Marlin-packed GPTQ weights are not supported (AutoGPTQ's v1 packing is)")
        }
        guard let bits = json["bits"]?.int else { throw QwenError.badModel("\(source): missing bits") }
        guard bits == 4 || bits == 8 else { throw unsupported("bits \(bits) is not supported (4 and 8 are)") }
        guard let group = json["group_size"]?.int else { throw QwenError.badModel("\(source): missing group_size") }
        guard group == -1 || (group > 0 && group % 32 == 0) else {
            throw unsupported("group_size \(group) is not supported (-1 or a multiple of 32)")
        }
        return GPTQSettings(bits: bits, groupSize: group == -1 ? nil : group,
                            descAct: json["desc_act"]?.bool ?? false, sym: json["sym"]?.bool ?? true)
    }

    /// AutoAWQ's settings: 4 bits, GEMM packing (`version` "gemm"), with zero points.
    private static func decodeAWQ(_ json: JSONValue, _ unsupported: (String) -> QwenError) throws -> GPTQSettings {
        let version = (json["version"]?.string ?? "gemm").lowercased()
        guard version == "gemm" else { throw unsupported("AWQ version \"\(version)\" is not supported (gemm is)") }
        guard let bits = json["bits"]?.int ?? json["w_bit"]?.int else { throw unsupported("AWQ settings without bits") }
        guard bits == 4 else { throw unsupported("AWQ bits \(bits) is not supported (4 is)") }
        guard json["zero_point"]?.bool ?? true else { throw unsupported("AWQ without zero points is not supported") }
        if let skipped = json["modules_to_not_convert"]?.array, !skipped.isEmpty {
            throw unsupported("AWQ modules_to_not_convert is not supported")
        }
        guard let group = json["group_size"]?.int ?? json["q_group_size"]?.int, group > 0, group % 32 == 0 else {
            throw unsupported("AWQ group_size must be a positive multiple of 32")
        }
        return GPTQSettings(packing: .awq, bits: 4, groupSize: group, descAct: false, sym: false)
    }
}
