import Kernels

/// Weights of one transformer block, read in place from the mapped file.
/// Matrices are row-major [out, in]; vectors are copied to f32 at load (they are tiny).
public struct LayerWeights: @unchecked Sendable {
    public var attentionNorm: [Float]        // [hidden]
    public var query: WeightMatrix           // [heads * headDim, hidden]
    public var key: WeightMatrix             // [kvHeads * headDim, hidden]
    public var value: WeightMatrix           // [kvHeads * headDim, hidden]
    public var queryBias: [Float]            // [heads * headDim], or [] (Qwen3: none)
    public var keyBias: [Float]              // [kvHeads * headDim], or []
    public var valueBias: [Float]            // [kvHeads * headDim], or []
    public var queryNorm: [Float]            // [headDim] RMSNorm weight of each query head (Qwen3), or []
    public var keyNorm: [Float]              // [headDim] RMSNorm weight of each key head (Qwen3), or []
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
    public var layers: LayerStore
    public var outputNorm: [Float]           // [hidden]
    public var output: WeightMatrix          // [vocab, hidden] (the embedding when tied)
}

/// The blocks of a model: ready at load (GGUF, float checkpoints), or built on first use
/// (GPTQ: each block's layers are repacked the first time a forward pass reaches it, so a
/// checkpoint loads and opens sessions without reading its weights, and its packed pages
/// are released block by block). Safe to share between threads.
public final class LayerStore: @unchecked Sendable {
    public let count: Int
    private let ready: [LayerWeights]                        // [count] when built at load
    private let build: ((Int) throws -> LayerWeights)?
    private var built: [LayerWeights?]                       // [count] when built on first use
    private let lock = Mutex()                                // guards `built`

    init(_ layers: [LayerWeights]) {
        count = layers.count
        ready = layers
        build = nil
        built = []
    }

    init(count: Int, buildingEachOnFirstUse build: @escaping (Int) throws -> LayerWeights) {
        self.count = count
        ready = []
        self.build = build
        built = Array(repeating: nil, count: count)
    }

    /// Block i (0..<count), built now if this is its first use; throws what building it
    /// found wrong (e.g. a GPTQ g_idx out of range).
    public func layer(_ i: Int) throws -> LayerWeights {
        guard let build else { return ready[i] }
        return try lock.locked {
            if let layer = built[i] { return layer }
            let start = monotonicMilliseconds()
            let layer = try build(i)
            built[i] = layer
            Log.write(i == count - 1 ? .info : .debug,
                      "block \(i + 1) of \(count) repacked on first use in \(Int(monotonicMilliseconds() - start)) ms")
            return layer
        }
    }

    /// Every block, building those not built yet.
    public func all() throws -> [LayerWeights] { try (0..<count).map(layer) }

    /// Every block when they were all built at load; nil when they are built on first use.
    var builtAtLoad: [LayerWeights]? { build == nil ? ready : nil }
}

extension TransformerWeights {
    /// Whether every matrix's prefill product is its decode arithmetic, each token's row
    /// whatever the batch (`WeightMatrix.prefillsThroughDecodeKernels`: GGUF-quantized
    /// weights); false while blocks are built on first use (GPTQ, whose prefill is refined).
    var everyMatrixPrefillsThroughDecodeKernels: Bool {
        guard let blocks = layers.builtAtLoad, output.prefillsThroughDecodeKernels else { return false }
        return blocks.allSatisfy { block in
            [block.query, block.key, block.value, block.attentionOutput, block.gate, block.up, block.down]
                .allSatisfy(\.prefillsThroughDecodeKernels)
        }
    }
}

extension TransformerWeights {
    /// Every quantized matrix replaced by its copy in the interleaved layout the decode
    /// kernels read (`RepackedMatrix.interleaving`); also the
    /// embedding when it is the same matrix as the output head. `release` gets each
    /// original's bytes as they are copied, a few MB at a time (so peak memory barely
    /// grows). Returns the copies' owners.
    func repackedForKernels(release: (UnsafeRawBufferPointer) -> Void) throws -> (weights: TransformerWeights, owners: [RepackedMatrix]) {
        var owners: [RepackedMatrix] = []
        func pack(_ w: WeightMatrix) -> WeightMatrix {
            guard let copy = withoutActuallyEscaping(release, do: { RepackedMatrix.interleaving(w, release: $0) }) else { return w }
            owners.append(copy)
            return copy.matrix
        }
        var out = self
        out.layers = LayerStore(try layers.all().map { l in
            var l = l
            l.query = pack(l.query); l.key = pack(l.key); l.value = pack(l.value)
            l.attentionOutput = pack(l.attentionOutput)
            l.gate = pack(l.gate); l.up = pack(l.up); l.down = pack(l.down)
            return l
        })
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
final class GPTQSource: @unchecked Sendable {
    let settings: GPTQSettings
    let tensors: [String: SafetensorsTensor]
    /// Gets each packed layer's bytes once converted (madvise on the mapped shard).
    let release: (UnsafeRawBufferPointer) -> Void
    /// The repacked matrices' owners (appended as blocks are built, from any thread).
    private var owners: [RepackedMatrix] = []
    private let lock = Mutex()               // guards `owners`

    init(settings: GPTQSettings, tensors: [String: SafetensorsTensor], release: @escaping (UnsafeRawBufferPointer) -> Void) {
        self.settings = settings
        self.tensors = tensors
        self.release = release
    }

    /// The GPTQ tensors of layer `prefix` as a [rows, cols] matrix, their dtypes and shapes
    /// checked (data not read); nil when the checkpoint has no prefix.qweight. AWQ layers
    /// come in GPTQ's packing, converted (`AWQLayer`, which owns the converted words), only
    /// when `convertingAWQ`; otherwise their shapes are checked and nil is returned.
    func tensors(_ prefix: String, rows: Int, cols: Int, source: String, convertingAWQ: Bool = false) throws -> (GPTQTensors, AWQLayer?)? {
        guard let qweight = tensors[prefix + ".qweight"] else { return nil }
        let bits = settings.bits, groupSize = settings.groupSize ?? cols
        let groups = (cols + groupSize - 1) / groupSize
        func require(_ suffix: String, _ dtype: SafetensorsDType, _ shape: [Int]) throws -> SafetensorsTensor {
            let name = prefix + suffix
            guard let t = tensors[name] else { throw QwenError.badModel("\(source): missing tensor \(name)") }
            guard t.dtype == dtype else {
                throw QwenError.badModel("\(source): tensor \(name) is \(t.dtype.rawValue), expected \(dtype.rawValue)")
            }
            guard t.shape == shape, t.data.baseAddress != nil else {
                throw QwenError.badModel("\(source): tensor \(name) has shape \(t.shape), expected \(shape) (\(bits)-bit \(settings.packing.rawValue.uppercased()) of a [\(rows), \(cols)] layer, group size \(groupSize))")
            }
            return t
        }
        guard cols % 32 == 0, rows % (32 / bits) == 0 else {
            throw QwenError.badModel("\(source): GPTQ layer \(prefix) is [\(rows), \(cols)]; inputs must be a multiple of 32")
        }
        if settings.packing == .awq {
            _ = try require(".qweight", .i32, [cols, rows / 8])
            let qzeros = try require(".qzeros", .i32, [groups, rows / 8])
            let scales = try require(".scales", .f16, [groups, rows])
            guard convertingAWQ else { return nil }
            let layer = AWQLayer(inFeatures: cols, outFeatures: rows, groupSize: groupSize, groups: groups,
                                 qweight: qweight.data.baseAddress!, qzeros: qzeros.data.baseAddress!, scales: scales.data.baseAddress!)
            return (layer.tensors, layer)
        }
        _ = try require(".qweight", .i32, [cols * bits / 32, rows])
        let qzeros = try require(".qzeros", .i32, [groups, rows * bits / 32])
        let scales = try require(".scales", .f16, [groups, rows])
        let groupIndex = tensors[prefix + ".g_idx"] != nil ? try require(".g_idx", .i32, [cols]) : nil
        return (GPTQTensors(bits: bits, inFeatures: cols, outFeatures: rows, groupSize: groupSize, groups: groups,
                            qweight: qweight.data.baseAddress!, qzeros: qzeros.data.baseAddress!,
                            scales: scales.data.baseAddress!, groupIndex: groupIndex?.data.baseAddress), nil)
    }

    /// Whether the checkpoint has layer `prefix` quantized, its tensors' shapes checked.
    func hasLayer(_ prefix: String, rows: Int, cols: Int, source: String) throws -> Bool {
        guard tensors[prefix + ".qweight"] != nil else { return false }
        _ = try tensors(prefix, rows: rows, cols: cols, source: source)
        return true
    }

    /// The [rows, cols] matrix of GPTQ layer `prefix`, repacked (`RepackedMatrix.fromGPTQ`);
    /// nil when the checkpoint has no prefix.qweight. The packed weights' pages are released
    /// once copied.
    func matrix(_ prefix: String, rows: Int, cols: Int, source: String) throws -> WeightMatrix? {
        guard let (layer, awq) = try tensors(prefix, rows: rows, cols: cols, source: source, convertingAWQ: true) else { return nil }
        let repacked: RepackedMatrix
        do { repacked = try withExtendedLifetime(awq) { try RepackedMatrix.fromGPTQ(layer) } } catch KernelError.invalidShape(let why) {
            throw QwenError.badModel("\(source): GPTQ layer \(prefix): \(why)")
        }
        if let qweight = tensors[prefix + ".qweight"] { release(qweight.data) }
        lock.locked { owners.append(repacked) }
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
                let hasBias = c.architecture == .qwen2
                qb = hasBias ? try vector(p + "attn_q.bias", count: qDim) : []
                kb = hasBias ? try vector(p + "attn_k.bias", count: kvDim) : []
                vb = hasBias ? try vector(p + "attn_v.bias", count: kvDim) : []
            }
            let qkNorm = c.architecture == .qwen3
            layers.append(LayerWeights(
                attentionNorm: try vector(p + "attn_norm.weight", count: h),
                query: q, key: k, value: v, queryBias: qb, keyBias: kb, valueBias: vb,
                queryNorm: qkNorm ? try vector(p + "attn_q_norm.weight", count: c.headDim) : [],
                keyNorm: qkNorm ? try vector(p + "attn_k_norm.weight", count: c.headDim) : [],
                attentionOutput: try matrix(p + "attn_output.weight", rows: h, cols: qDim),
                ffnNorm: try vector(p + "ffn_norm.weight", count: h),
                gate: try matrix(p + "ffn_gate.weight", rows: ffn, cols: h),
                up: try matrix(p + "ffn_up.weight", rows: ffn, cols: h),
                down: try matrix(p + "ffn_down.weight", rows: h, cols: ffn)))
        }
        let output = try lookup("output.weight") == nil ? embedding : try matrix("output.weight", rows: c.vocabSize, cols: h)
        return TransformerWeights(tokenEmbedding: embedding, layers: LayerStore(layers),
                                  outputNorm: try vector("output_norm.weight", count: h), output: output)
    }

    /// One linear layer of a block in a Hugging Face checkpoint: its name prefix (weights
    /// at prefix.weight, or GPTQ's prefix.qweight etc.), [rows, cols] and whether the
    /// forward pass adds its bias (prefix.bias).
    struct Linear {
        let prefix: String
        let rows: Int
        let cols: Int
        let hasBias: Bool
    }

    /// The linear layers of block i, in the order `huggingFaceLayer` reads them: Qwen v1's
    /// fused c_attn, c_proj, w2 (gate), w1 (up), mlp.c_proj; Qwen2's and Qwen3's q, k, v, o,
    /// gate, up, down projections (Qwen2's q, k, v with biases).
    static func huggingFaceLinears(_ c: ModelConfig, layer i: Int) -> [Linear] {
        let h = c.hiddenSize, qDim = c.headCount * c.headDim, kvDim = c.kvHeadCount * c.headDim, ffn = c.intermediateSize
        switch c.architecture {
        case .qwen:
            let p = "transformer.h.\(i)."
            // Qwen v1 computes w1(x) * silu(w2(x)): w2 is the gate, w1 the up branch.
            return [Linear(prefix: p + "attn.c_attn", rows: qDim + 2 * kvDim, cols: h, hasBias: true),
                    Linear(prefix: p + "attn.c_proj", rows: h, cols: qDim, hasBias: false),
                    Linear(prefix: p + "mlp.w2", rows: ffn, cols: h, hasBias: false),
                    Linear(prefix: p + "mlp.w1", rows: ffn, cols: h, hasBias: false),
                    Linear(prefix: p + "mlp.c_proj", rows: h, cols: ffn, hasBias: false)]
        case .qwen2, .qwen3:
            let p = "model.layers.\(i).", qkvBias = c.architecture == .qwen2
            return [Linear(prefix: p + "self_attn.q_proj", rows: qDim, cols: h, hasBias: qkvBias),
                    Linear(prefix: p + "self_attn.k_proj", rows: kvDim, cols: h, hasBias: qkvBias),
                    Linear(prefix: p + "self_attn.v_proj", rows: kvDim, cols: h, hasBias: qkvBias),
                    Linear(prefix: p + "self_attn.o_proj", rows: h, cols: qDim, hasBias: false),
                    Linear(prefix: p + "mlp.gate_proj", rows: ffn, cols: h, hasBias: false),
                    Linear(prefix: p + "mlp.up_proj", rows: ffn, cols: h, hasBias: false),
                    Linear(prefix: p + "mlp.down_proj", rows: h, cols: ffn, hasBias: false)]
        }
    }

    /// Maps Hugging Face names: Qwen v1 (transformer.wte, transformer.h.N...) or Qwen2
    /// (model.embed_tokens, model.layers.N...). Float checkpoints get their blocks now;
    /// GPTQ ones get every tensor's name, dtype and shape checked now and their blocks
    /// repacked on first use (`LayerStore`).
    func huggingFaceWeights(_ c: ModelConfig) throws -> TransformerWeights {
        let h = c.hiddenSize
        let (embeddingName, normName) = c.architecture == .qwen
            ? ("transformer.wte.weight", "transformer.ln_f.weight") : ("model.embed_tokens.weight", "model.norm.weight")
        let embedding = try matrix(embeddingName, rows: c.vocabSize, cols: h)
        // Qwen v1 always ships lm_head unless tied; a Qwen2 checkpoint without one ties it.
        let untiedHead = try !c.tiedEmbeddings && (c.architecture == .qwen || lookup("lm_head.weight") != nil)
        let output = untiedHead ? try matrix("lm_head.weight", rows: c.vocabSize, cols: h) : embedding
        let layers: LayerStore
        if gptq != nil {
            for i in 0..<c.layerCount {
                for l in Self.huggingFaceLinears(c, layer: i) { try checkLinear(l) }
                _ = try layerVectors(c, layer: i)
            }
            layers = LayerStore(count: c.layerCount) { i in try self.huggingFaceLayer(c, layer: i) }
        } else {
            layers = LayerStore(try (0..<c.layerCount).map { try huggingFaceLayer(c, layer: $0) })
        }
        return TransformerWeights(tokenEmbedding: embedding, layers: layers,
                                  outputNorm: try vector(normName, count: h), output: output)
    }

    /// Checks a linear layer's tensors exist with the dtypes and shapes it needs, without
    /// reading their data. A bias on a layer the architecture gives none must be zero
    /// (AutoGPTQ writes zero biases for every quantized layer).
    func checkLinear(_ l: Linear) throws {
        if !l.hasBias, try lookup(l.prefix + ".bias") != nil,
           try vector(l.prefix + ".bias", count: l.rows).contains(where: { $0 != 0 }) {
            throw QwenError.unsupportedModel("\(source): tensor \(l.prefix).bias: this layer has no bias in the architecture")
        }
        if try lookup(l.prefix + ".weight") == nil, let gptq, try gptq.hasLayer(l.prefix, rows: l.rows, cols: l.cols, source: source) {
            return
        }
        _ = try matrix(l.prefix + ".weight", rows: l.rows, cols: l.cols)
    }

    /// The weight of linear layer `l` as a [rows, cols] matrix: prefix.weight, or its GPTQ
    /// tensors repacked.
    func linear(_ l: Linear) throws -> WeightMatrix {
        try checkLinear(l)
        if try lookup(l.prefix + ".weight") == nil, let gptq, let m = try gptq.matrix(l.prefix, rows: l.rows, cols: l.cols, source: source) {
            return m
        }
        return try matrix(l.prefix + ".weight", rows: l.rows, cols: l.cols)
    }

    /// Block i's norms and biases, copied to f32 ([] where the architecture has none).
    struct LayerVectors {
        var attentionNorm: [Float], ffnNorm: [Float]
        var queryBias: [Float] = [], keyBias: [Float] = [], valueBias: [Float] = []
        var queryNorm: [Float] = [], keyNorm: [Float] = []
    }

    func layerVectors(_ c: ModelConfig, layer i: Int) throws -> LayerVectors {
        let h = c.hiddenSize, qDim = c.headCount * c.headDim, kvDim = c.kvHeadCount * c.headDim
        switch c.architecture {
        case .qwen:
            let p = "transformer.h.\(i)."
            let bias = try vector(p + "attn.c_attn.bias", count: qDim + 2 * kvDim)
            return LayerVectors(attentionNorm: try vector(p + "ln_1.weight", count: h), ffnNorm: try vector(p + "ln_2.weight", count: h),
                                queryBias: Array(bias[0..<qDim]), keyBias: Array(bias[qDim..<qDim + kvDim]),
                                valueBias: Array(bias[(qDim + kvDim)...]))
        case .qwen2:
            let p = "model.layers.\(i)."
            return LayerVectors(attentionNorm: try vector(p + "input_layernorm.weight", count: h),
                                ffnNorm: try vector(p + "post_attention_layernorm.weight", count: h),
                                queryBias: try vector(p + "self_attn.q_proj.bias", count: qDim),
                                keyBias: try vector(p + "self_attn.k_proj.bias", count: kvDim),
                                valueBias: try vector(p + "self_attn.v_proj.bias", count: kvDim))
        case .qwen3:
            let p = "model.layers.\(i)."
            return LayerVectors(attentionNorm: try vector(p + "input_layernorm.weight", count: h),
                                ffnNorm: try vector(p + "post_attention_layernorm.weight", count: h),
                                queryNorm: try vector(p + "self_attn.q_norm.weight", count: c.headDim),
                                keyNorm: try vector(p + "self_attn.k_norm.weight", count: c.headDim))
        }
    }

    /// Block i of a Hugging Face checkpoint (Qwen v1's fused c_attn split into q, k, v).
    func huggingFaceLayer(_ c: ModelConfig, layer i: Int) throws -> LayerWeights {
        let qDim = c.headCount * c.headDim, kvDim = c.kvHeadCount * c.headDim
        let linears = try Self.huggingFaceLinears(c, layer: i).map(linear)
        let vectors = try layerVectors(c, layer: i)
        let projections: [WeightMatrix]                    // q, k, v, o, gate, up, down
        if c.architecture == .qwen {
            let name = Self.huggingFaceLinears(c, layer: i)[0].prefix
            let qkv = linears[0]
            projections = [try checked(name) { try qkv.rows(0, count: qDim) },
                           try checked(name) { try qkv.rows(qDim, count: kvDim) },
                           try checked(name) { try qkv.rows(qDim + kvDim, count: kvDim) }] + linears[1...]
        } else {
            projections = linears
        }
        return LayerWeights(attentionNorm: vectors.attentionNorm, query: projections[0], key: projections[1], value: projections[2],
                            queryBias: vectors.queryBias, keyBias: vectors.keyBias, valueBias: vectors.valueBias,
                            queryNorm: vectors.queryNorm, keyNorm: vectors.keyNorm,
                            attentionOutput: projections[3], ffnNorm: vectors.ffnNorm,
                            gate: projections[4], up: projections[5], down: projections[6])
    }
}
