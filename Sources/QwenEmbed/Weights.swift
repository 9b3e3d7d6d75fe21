import Kernels

/// Weights of one transformer block, read in place from the mapped file.
/// Matrices are row-major [out, in]; vectors are copied to f32 at load (they are tiny).
public struct LayerWeights: @unchecked Sendable {
    public var attentionNorm: [Float]        // [hidden]
    public var query: WeightMatrix           // [heads * headDim, hidden]
    public var key: WeightMatrix             // [kvHeads * headDim, hidden]
    public var value: WeightMatrix           // [kvHeads * headDim, hidden]
    public var queryBias: [Float]            // [heads * headDim]
    public var keyBias: [Float]              // [kvHeads * headDim]
    public var valueBias: [Float]            // [kvHeads * headDim]
    public var attentionOutput: WeightMatrix // [hidden, heads * headDim]
    public var ffnNorm: [Float]              // [hidden]
    public var gate: WeightMatrix            // [ffn, hidden], SiLU applied to its output
    public var up: WeightMatrix              // [ffn, hidden]
    public var down: WeightMatrix            // [hidden, ffn]
}

/// All weights of a model. Architecture differences (fused QKV, names, tied head) are
/// resolved here, so the forward pass sees one layout.
public struct TransformerWeights: @unchecked Sendable {
    public var tokenEmbedding: WeightMatrix  // [vocab, hidden]
    public var layers: [LayerWeights]
    public var outputNorm: [Float]           // [hidden]
    public var output: WeightMatrix          // [vocab, hidden] (the embedding when tied)
}

extension TransformerWeights {
    /// Every matrix the decode kernels read faster in another layout (the 32-value block
    /// formats: split scales, `RepackedMatrix`) replaced by its repacked copy; also the
    /// embedding when it is the same matrix as the output head. `release` gets each
    /// original's bytes as soon as they are copied (so peak memory grows by one matrix).
    /// Returns the copies' owners.
    func repackedForKernels(release: (UnsafeRawBufferPointer) -> Void) -> (weights: TransformerWeights, owners: [RepackedMatrix]) {
        var owners: [RepackedMatrix] = []
        func pack(_ w: WeightMatrix) -> WeightMatrix {
            guard let copy = RepackedMatrix.splittingScales(w) else { return w }
            owners.append(copy)
            release(UnsafeRawBufferPointer(start: w.data, count: w.rows * w.rowBytes))
            return copy.matrix
        }
        var out = self
        out.layers = layers.map { l in
            var l = l
            l.query = pack(l.query); l.key = pack(l.key); l.value = pack(l.value)
            l.attentionOutput = pack(l.attentionOutput)
            l.gate = pack(l.gate); l.up = pack(l.up); l.down = pack(l.down)
            return l
        }
        let tied = output.data == tokenEmbedding.data
        out.output = pack(output)
        if tied { out.tokenEmbedding = out.output }
        return (out, owners)
    }
}

/// A tensor as the weight mapper sees it, whatever file it came from.
struct RawTensor {
    let name: String
    /// Outermost first: a matrix is [rows, cols].
    let shape: [Int]
    let type: GGMLType
    let data: UnsafeRawBufferPointer
}

/// Where a GPTQ checkpoint's quantized layers come from, and what their conversion keeps.
final class GPTQSource {
    let settings: GPTQSettings
    let tensors: [String: SafetensorsTensor]
    /// Gets each packed layer's bytes once converted (madvise on the mapped shard).
    let release: (UnsafeRawBufferPointer) -> Void
    /// The converted matrices' owners.
    private(set) var owners: [RepackedMatrix] = []
    /// Converted layers by name prefix (a fused QKV is sliced three times).
    private var converted: [String: WeightMatrix] = [:]

    init(settings: GPTQSettings, tensors: [String: SafetensorsTensor], release: @escaping (UnsafeRawBufferPointer) -> Void) {
        self.settings = settings
        self.tensors = tensors
        self.release = release
    }

    /// The [rows, cols] matrix of the GPTQ layer `prefix` (prefix.qweight, .qzeros,
    /// .scales, optional .g_idx), converted once; nil when the checkpoint has no prefix.qweight.
    func matrix(_ prefix: String, rows: Int, cols: Int, source: String) throws -> WeightMatrix? {
        if let done = converted[prefix] { return done }
        guard let qweight = tensors[prefix + ".qweight"] else { return nil }
        let bits = settings.bits, groupSize = settings.groupSize ?? cols
        let groups = (cols + groupSize - 1) / groupSize
        func require(_ suffix: String, _ dtype: SafetensorsDType, _ shape: [Int]) throws -> SafetensorsTensor {
            let name = prefix + suffix
            guard let t = tensors[name] else { throw QwenError.badModel("\(source): missing tensor \(name)") }
            guard t.dtype == dtype else {
                throw QwenError.badModel("\(source): tensor \(name) is \(t.dtype.rawValue), expected \(dtype.rawValue)")
            }
            guard t.shape == shape else {
                throw QwenError.badModel("\(source): tensor \(name) has shape \(t.shape), expected \(shape) (\(bits)-bit GPTQ of a [\(rows), \(cols)] layer, group size \(groupSize))")
            }
            return t
        }
        guard cols % 32 == 0, rows % (32 / bits) == 0 else {
            throw QwenError.badModel("\(source): GPTQ layer \(prefix) is [\(rows), \(cols)]; inputs must be a multiple of 32")
        }
        _ = try require(".qweight", .i32, [cols * bits / 32, rows])
        let qzeros = try require(".qzeros", .i32, [groups, rows * bits / 32])
        let scales = try require(".scales", .f16, [groups, rows])
        let groupIndex = tensors[prefix + ".g_idx"] != nil ? try require(".g_idx", .i32, [cols]) : nil
        let layer = GPTQTensors(bits: bits, inFeatures: cols, outFeatures: rows, groupSize: groupSize, groups: groups,
                                  qweight: qweight.data.baseAddress!, qzeros: qzeros.data.baseAddress!,
                                  scales: scales.data.baseAddress!, groupIndex: groupIndex?.data.baseAddress)
        let repacked: RepackedMatrix
        do { repacked = try RepackedMatrix.fromGPTQ(layer) } catch KernelError.invalidShape(let why) {
            throw QwenError.badModel("\(source): GPTQ layer \(prefix): \(why)")
        }
        release(qweight.data)
        owners.append(repacked)
        converted[prefix] = repacked.matrix
        return repacked.matrix
    }
}

/// Looks tensors up by checkpoint name and turns them into the engine's layout.
struct WeightMapper {
    let source: String
    /// The tensor of that name, nil when the checkpoint has none; throws when it has one
    /// the engine cannot read (an unsupported dtype).
    let lookup: (String) throws -> RawTensor?
    /// The quantized layers of a GPTQ checkpoint.
    var gptq: GPTQSource? = nil

    /// The weight of linear layer `prefix` as a [rows, cols] matrix: prefix.weight, or the
    /// GPTQ tensors prefix.qweight etc. `hasBias`: whether the forward pass adds a bias
    /// for this layer (a bias tensor it would ignore is refused).
    func linear(_ prefix: String, rows: Int, cols: Int, hasBias: Bool) throws -> WeightMatrix {
        if !hasBias, try lookup(prefix + ".bias") != nil {
            throw QwenError.unsupportedModel("\(source): tensor \(prefix).bias: this layer has no bias in the architecture")
        }
        if try lookup(prefix + ".weight") == nil, let gptq, let m = try gptq.matrix(prefix, rows: rows, cols: cols, source: source) {
            return m
        }
        return try matrix(prefix + ".weight", rows: rows, cols: cols)
    }

    func tensor(_ name: String) throws -> RawTensor {
        guard let t = try lookup(name) else { throw QwenError.badModel("\(source): missing tensor \(name)") }
        return t
    }

    func matrix(_ name: String, rows: Int, cols: Int) throws -> WeightMatrix {
        let t = try tensor(name)
        guard t.shape == [rows, cols] else {
            throw QwenError.badModel("\(source): tensor \(name) has shape \(t.shape), expected [\(rows), \(cols)]")
        }
        guard let base = t.data.baseAddress else { throw QwenError.badModel("\(source): tensor \(name) is empty") }
        return try checked(name) { try WeightMatrix(type: t.type, rows: rows, cols: cols, data: base) }
    }

    /// Rows [first, first + count) of a [rows, cols] matrix (used to split a fused QKV).
    func rowSlice(_ name: String, totalRows: Int, cols: Int, first: Int, count: Int) throws -> WeightMatrix {
        let whole = try matrix(name, rows: totalRows, cols: cols)
        return try checked(name) { try whole.rows(first, count: count) }
    }

    /// Reports a kernel shape error as a bad model naming the tensor.
    func checked(_ name: String, _ body: () throws -> WeightMatrix) throws -> WeightMatrix {
        do { return try body() } catch KernelError.invalidShape(let why) {
            throw QwenError.badModel("\(source): tensor \(name): \(why)")
        }
    }

    func vector(_ name: String, count: Int) throws -> [Float] {
        let t = try tensor(name)
        guard t.shape.reduce(1, *) == count else {
            throw QwenError.badModel("\(source): tensor \(name) has shape \(t.shape), expected [\(count)]")
        }
        return try decodeFloats(t, name: name)
    }

    func decodeFloats(_ t: RawTensor, name: String) throws -> [Float] {
        let count = t.shape.reduce(1, *)
        switch t.type {
        case .f32:
            return (0..<count).map { t.data.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) }
        case .f16:
            return (0..<count).map { Float(Float16(bitPattern: t.data.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self))) }
        case .bf16:
            return (0..<count).map { Float(bitPattern: UInt32(t.data.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)) << 16) }
        default:
            throw QwenError.unsupportedModel("\(source): vector \(name) is stored as \(t.type.name); f32, f16 or bf16 expected")
        }
    }

    /// Maps GGUF names (llama.cpp's convention: token_embd, blk.N.attn_q, ...).
    func ggufWeights(_ c: ModelConfig) throws -> TransformerWeights {
        let h = c.hiddenSize, qDim = c.headCount * c.headDim, kvDim = c.kvHeadCount * c.headDim, ffn = c.intermediateSize
        let embedding = try matrix("token_embd.weight", rows: c.vocabSize, cols: h)
        var layers: [LayerWeights] = []
        for i in 0..<c.layerCount {
            let p = "blk.\(i)."
            let q, k, v: WeightMatrix
            let qb, kb, vb: [Float]
            if c.architecture == .qwen {
                let rows = qDim + 2 * kvDim
                q = try rowSlice(p + "attn_qkv.weight", totalRows: rows, cols: h, first: 0, count: qDim)
                k = try rowSlice(p + "attn_qkv.weight", totalRows: rows, cols: h, first: qDim, count: kvDim)
                v = try rowSlice(p + "attn_qkv.weight", totalRows: rows, cols: h, first: qDim + kvDim, count: kvDim)
                let bias = try vector(p + "attn_qkv.bias", count: rows)
                qb = Array(bias[0..<qDim]); kb = Array(bias[qDim..<qDim + kvDim]); vb = Array(bias[(qDim + kvDim)...])
            } else {
                q = try matrix(p + "attn_q.weight", rows: qDim, cols: h)
                k = try matrix(p + "attn_k.weight", rows: kvDim, cols: h)
                v = try matrix(p + "attn_v.weight", rows: kvDim, cols: h)
                qb = try vector(p + "attn_q.bias", count: qDim)
                kb = try vector(p + "attn_k.bias", count: kvDim)
                vb = try vector(p + "attn_v.bias", count: kvDim)
            }
            layers.append(LayerWeights(
                attentionNorm: try vector(p + "attn_norm.weight", count: h),
                query: q, key: k, value: v, queryBias: qb, keyBias: kb, valueBias: vb,
                attentionOutput: try matrix(p + "attn_output.weight", rows: h, cols: qDim),
                ffnNorm: try vector(p + "ffn_norm.weight", count: h),
                gate: try matrix(p + "ffn_gate.weight", rows: ffn, cols: h),
                up: try matrix(p + "ffn_up.weight", rows: ffn, cols: h),
                down: try matrix(p + "ffn_down.weight", rows: h, cols: ffn)))
        }
        let output = try lookup("output.weight") == nil ? embedding : try matrix("output.weight", rows: c.vocabSize, cols: h)
        return TransformerWeights(tokenEmbedding: embedding, layers: layers,
                                  outputNorm: try vector("output_norm.weight", count: h), output: output)
    }

    /// Maps Hugging Face names: Qwen v1 (transformer.h.N.attn.c_attn, mlp.w1/w2/c_proj)
    /// or Qwen2 (model.layers.N.self_attn.q_proj, mlp.gate_proj/up_proj/down_proj).
    func huggingFaceWeights(_ c: ModelConfig) throws -> TransformerWeights {
        let h = c.hiddenSize, qDim = c.headCount * c.headDim, kvDim = c.kvHeadCount * c.headDim, ffn = c.intermediateSize
        var layers: [LayerWeights] = []
        switch c.architecture {
        case .qwen:
            let embedding = try matrix("transformer.wte.weight", rows: c.vocabSize, cols: h)
            for i in 0..<c.layerCount {
                let p = "transformer.h.\(i)."
                let rows = qDim + 2 * kvDim
                let bias = try vector(p + "attn.c_attn.bias", count: rows)
                let qkv = try linear(p + "attn.c_attn", rows: rows, cols: h, hasBias: true)
                func slice(_ first: Int, _ count: Int) throws -> WeightMatrix {
                    try checked(p + "attn.c_attn") { try qkv.rows(first, count: count) }
                }
                layers.append(LayerWeights(
                    attentionNorm: try vector(p + "ln_1.weight", count: h),
                    query: try slice(0, qDim), key: try slice(qDim, kvDim), value: try slice(qDim + kvDim, kvDim),
                    queryBias: Array(bias[0..<qDim]), keyBias: Array(bias[qDim..<qDim + kvDim]),
                    valueBias: Array(bias[(qDim + kvDim)...]),
                    attentionOutput: try linear(p + "attn.c_proj", rows: h, cols: qDim, hasBias: false),
                    ffnNorm: try vector(p + "ln_2.weight", count: h),
                    // Qwen v1 computes w1(x) * silu(w2(x)): w2 is the gate, w1 the up branch.
                    gate: try linear(p + "mlp.w2", rows: ffn, cols: h, hasBias: false),
                    up: try linear(p + "mlp.w1", rows: ffn, cols: h, hasBias: false),
                    down: try linear(p + "mlp.c_proj", rows: h, cols: ffn, hasBias: false)))
            }
            let output = c.tiedEmbeddings ? embedding : try matrix("lm_head.weight", rows: c.vocabSize, cols: h)
            return TransformerWeights(tokenEmbedding: embedding, layers: layers,
                                      outputNorm: try vector("transformer.ln_f.weight", count: h), output: output)
        case .qwen2:
            let embedding = try matrix("model.embed_tokens.weight", rows: c.vocabSize, cols: h)
            for i in 0..<c.layerCount {
                let p = "model.layers.\(i)."
                layers.append(LayerWeights(
                    attentionNorm: try vector(p + "input_layernorm.weight", count: h),
                    query: try linear(p + "self_attn.q_proj", rows: qDim, cols: h, hasBias: true),
                    key: try linear(p + "self_attn.k_proj", rows: kvDim, cols: h, hasBias: true),
                    value: try linear(p + "self_attn.v_proj", rows: kvDim, cols: h, hasBias: true),
                    queryBias: try vector(p + "self_attn.q_proj.bias", count: qDim),
                    keyBias: try vector(p + "self_attn.k_proj.bias", count: kvDim),
                    valueBias: try vector(p + "self_attn.v_proj.bias", count: kvDim),
                    attentionOutput: try linear(p + "self_attn.o_proj", rows: h, cols: qDim, hasBias: false),
                    ffnNorm: try vector(p + "post_attention_layernorm.weight", count: h),
                    gate: try linear(p + "mlp.gate_proj", rows: ffn, cols: h, hasBias: false),
                    up: try linear(p + "mlp.up_proj", rows: ffn, cols: h, hasBias: false),
                    down: try linear(p + "mlp.down_proj", rows: h, cols: ffn, hasBias: false)))
            }
            let output = try (c.tiedEmbeddings || lookup("lm_head.weight") == nil)
                ? embedding : try matrix("lm_head.weight", rows: c.vocabSize, cols: h)
            return TransformerWeights(tokenEmbedding: embedding, layers: layers,
                                      outputNorm: try vector("model.norm.weight", count: h), output: output)
        }
    }
}
