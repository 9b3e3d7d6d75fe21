import Foundation
import XCTest
@testable import QwenEmbed

/// GGUF, safetensors and config.json readers: well-formed files parse, and every kind
/// of malformed file gives a QwenError naming the problem, never a crash.
final class FormatTests: XCTestCase {
    /// A small valid qwen2 GGUF: metadata for the config, 3 tokens, one 32x2 F32 tensor.
    func smallGGUF() -> GGUFBuilder {
        var b = GGUFBuilder()
        b.header(tensors: 1, kv: 10)
        b.kvString("general.architecture", "qwen2")
        b.kvU32("qwen2.context_length", 4096)
        b.kvU32("qwen2.embedding_length", 64)
        b.kvU32("qwen2.feed_forward_length", 128)
        b.kvU32("qwen2.block_count", 2)
        b.kvU32("qwen2.attention.head_count", 4)
        b.kvU32("qwen2.attention.head_count_kv", 2)
        b.kvF32("qwen2.rope.freq_base", 1_000_000)
        b.kvF32("qwen2.attention.layer_norm_rms_epsilon", 1e-6)
        b.kvStrings("tokenizer.ggml.tokens", ["a", "b", "c"])
        b.tensorInfo("token_embd.weight", dims: [32, 2], type: 0, offset: 0)
        b.align()
        for i in 0..<64 { b.f32(Float(i)) }
        return b
    }

    func parse(_ bytes: [UInt8]) throws -> GGUFFile {
        let url = try TestPaths.temporaryDirectory().appendingPathComponent("m.gguf")
        try Data(bytes).write(to: url)
        return try GGUFFile(path: url.path)
    }

    func assertBadModel(_ bytes: [UInt8], mentions: String, file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try parse(bytes)
            XCTFail("parsed a malformed file", file: file, line: line)
        } catch let error as QwenError {
            guard case .badModel(let message) = error else { return XCTFail("\(error)", file: file, line: line) }
            XCTAssertTrue(message.contains(mentions), "\(message) should mention \(mentions)", file: file, line: line)
        } catch {
            XCTFail("\(error)", file: file, line: line)
        }
    }

    func testGGUFParsesMetadataTensorsAndConfig() throws {
        let gguf = try parse(smallGGUF().bytes)
        XCTAssertEqual(gguf.version, 3)
        XCTAssertEqual(gguf.string("general.architecture"), "qwen2")
        XCTAssertEqual(try gguf.stringArray("tokenizer.ggml.tokens"), ["a", "b", "c"])
        let t = try XCTUnwrap(gguf.tensor("token_embd.weight"))
        XCTAssertEqual(t.dims, [32, 2])
        XCTAssertEqual(t.data.count, 256)
        XCTAssertEqual(t.data.load(fromByteOffset: 4 * 33, as: Float.self), 33)
        let config = try ModelConfig.fromGGUF(gguf)
        XCTAssertEqual(config.architecture, .qwen2)
        XCTAssertEqual(config.hiddenSize, 64)
        XCTAssertEqual(config.kvHeadCount, 2)
        XCTAssertEqual(config.headDim, 16)
        XCTAssertEqual(config.ropeTheta, 1_000_000)
        XCTAssertEqual(config.vocabSize, 3)
        XCTAssertTrue(config.tiedEmbeddings)
    }

    func testEveryTruncationOfAGGUFIsABadModel() throws {
        let whole = smallGGUF().bytes
        for length in stride(from: 0, to: whole.count, by: 1) {
            XCTAssertThrowsError(try parse(Array(whole[..<length])), "prefix of \(length) bytes") { error in
                XCTAssertTrue(error is QwenError)
            }
        }
    }

    func testGarbledGGUFNeverCrashes() throws {
        let whole = smallGGUF().bytes
        var random = RandomSource(seed: 7)
        for _ in 0..<400 {
            var bytes = whole
            for _ in 0..<3 {
                let at = Int(random.next() % UInt64(bytes.count))
                bytes[at] = UInt8(truncatingIfNeeded: random.next())
            }
            do { _ = try parse(bytes) } catch { XCTAssertTrue(error is QwenError, "\(error)") }
        }
    }

    func testGGUFAbsurdValues() throws {
        var b = GGUFBuilder()
        b.header(tensors: UInt64.max, kv: 0)
        assertBadModel(b.bytes, mentions: "tensor count")

        b = GGUFBuilder()
        b.header(tensors: 0, kv: 1)
        b.string("key"); b.u32(8); b.u64(1 << 40)  // string length far past the end
        assertBadModel(b.bytes, mentions: "key")

        b = GGUFBuilder()
        b.header(tensors: 0, kv: 1)
        b.string("arr"); b.u32(9); b.u32(4); b.u64(1 << 50)  // array count past the end
        assertBadModel(b.bytes, mentions: "arr")

        b = GGUFBuilder()
        b.header(tensors: 1, kv: 0)
        b.tensorInfo("w", dims: [32, 2], type: 0, offset: 1 << 20)  // data past the end
        b.align()
        assertBadModel(b.bytes, mentions: "outside")

        b = GGUFBuilder()
        b.header(tensors: 1, kv: 0)
        b.tensorInfo("w", dims: [33], type: 2, offset: 0)  // 33 is not a whole Q4_0 block
        b.align()
        b.bytes += [UInt8](repeating: 0, count: 64)
        assertBadModel(b.bytes, mentions: "block")

        b = GGUFBuilder()
        b.header(tensors: 1, kv: 0)
        b.tensorInfo("w", dims: [32], type: 999, offset: 0)
        b.align()
        XCTAssertThrowsError(try parse(b.bytes)) { error in
            guard case QwenError.unsupportedModel(let m) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(m.contains("999"), m)
        }

        b = GGUFBuilder()
        b.header(version: 1, tensors: 0, kv: 0)
        XCTAssertThrowsError(try parse(b.bytes)) { error in
            guard case QwenError.unsupportedModel = error else { return XCTFail("\(error)") }
        }
    }

    // MARK: safetensors

    func temp(_ name: String) throws -> URL { try TestPaths.temporaryDirectory().appendingPathComponent(name) }

    func testSafetensorsReadsTensorsInPlace() throws {
        let url = try temp("m.safetensors")
        let raw: [UInt8] = (0..<24).map { UInt8($0) }
        try writeSafetensors(url, [("a", "F32", [2, 3], raw), ("b", "BF16", [4], Array(raw[0..<8]))])
        let file = try SafetensorsFile(path: url.path)
        XCTAssertEqual(file.tensors["a"]?.shape, [2, 3])
        XCTAssertEqual(file.tensors["a"]?.dtype, .f32)
        XCTAssertEqual(Array(file.tensors["b"]!.data), Array(raw[0..<8]))
        XCTAssertEqual(file.metadata["format"], "pt")
    }

    func assertSafetensorsError(_ url: URL, mentions: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try SafetensorsFile(path: url.path), file: file, line: line) { error in
            guard let q = error as? QwenError else { return XCTFail("\(error)", file: file, line: line) }
            XCTAssertTrue(q.message.contains(mentions), "\(q.message) should mention \(mentions)", file: file, line: line)
        }
    }

    func testMalformedSafetensors() throws {
        // Header length past the end of the file.
        let url = try temp("bad.safetensors")
        var bytes: [UInt8] = []
        withUnsafeBytes(of: UInt64(1000).littleEndian) { bytes += $0 }
        bytes += Array("{}".utf8)
        try Data(bytes).write(to: url)
        assertSafetensorsError(url, mentions: "header length")

        // Offsets outside the data section.
        try writeSafetensors(url, [], headerOverride: "{\"w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}")
        assertSafetensorsError(url, mentions: "outside")

        // Byte count that does not match the shape.
        try writeSafetensors(url, [("w", "F32", [4], [UInt8](repeating: 0, count: 12))])
        assertSafetensorsError(url, mentions: "needs 16")

        // Unknown dtype.
        try writeSafetensors(url, [("w", "Q9", [4], [UInt8](repeating: 0, count: 4))])
        assertSafetensorsError(url, mentions: "Q9")

        // Absurd shape.
        try writeSafetensors(url, [], headerOverride: "{\"w\": {\"dtype\": \"F32\", \"shape\": [99999999999, 99999999999], \"data_offsets\": [0, 0]}}")
        assertSafetensorsError(url, mentions: "w")

        // Invalid JSON.
        try writeSafetensors(url, [], headerOverride: "{\"w\": [1, 2,")
        assertSafetensorsError(url, mentions: "JSON")

        // Truncated before the header length.
        try Data([1, 2, 3]).write(to: url)
        assertSafetensorsError(url, mentions: "header length")
    }

    func testShardedCheckpointFollowsTheIndex() throws {
        let dir = try TestPaths.temporaryDirectory()
        try writeSafetensors(dir.appendingPathComponent("model-00001-of-00002.safetensors"), [("a", "F32", [2], [UInt8](repeating: 1, count: 8))])
        try writeSafetensors(dir.appendingPathComponent("model-00002-of-00002.safetensors"), [("b", "F32", [1], [UInt8](repeating: 2, count: 4))])
        let index = "{\"metadata\": {}, \"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\", \"b\": \"model-00002-of-00002.safetensors\"}}"
        try index.write(to: dir.appendingPathComponent("model.safetensors.index.json"), atomically: true, encoding: .utf8)
        let checkpoint = try SafetensorsCheckpoint(directory: dir.path)
        XCTAssertEqual(Set(checkpoint.tensors.keys), ["a", "b"])
        XCTAssertEqual(checkpoint.shards.count, 2)

        let missing = "{\"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\", \"c\": \"model-00002-of-00002.safetensors\"}}"
        try missing.write(to: dir.appendingPathComponent("model.safetensors.index.json"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try SafetensorsCheckpoint(directory: dir.path)) { error in
            XCTAssertTrue((error as? QwenError)?.message.contains("c should be in") ?? false, "\(error)")
        }
    }

    // MARK: config.json

    func testQwenV1ConfigIncludingEarlyKeyNames() throws {
        let modern = try JSONValue.parse(Array("""
        {"architectures": ["QWenLMHeadModel"], "hidden_size": 4096, "num_attention_heads": 32, "num_hidden_layers": 32,
         "intermediate_size": 22016, "vocab_size": 151936, "seq_length": 8192, "kv_channels": 128, "rotary_pct": 1.0,
         "rotary_emb_base": 10000, "layer_norm_epsilon": 1e-06, "use_dynamic_ntk": true, "use_logn_attn": true,
         "max_position_embeddings": 32768, "tie_word_embeddings": false}
        """.utf8), context: "config.json")
        let c = try ModelConfig.fromHuggingFace(json: modern)
        XCTAssertEqual(c.architecture, .qwen)
        XCTAssertEqual(c.intermediateSize, 11008)
        XCTAssertEqual(c.contextLength, 8192)
        XCTAssertEqual(c.kvHeadCount, 32)
        XCTAssertTrue(c.useDynamicNTK && c.useLogNAttention)

        let early = try JSONValue.parse(Array("""
        {"architectures": ["QWenLMHeadModel"], "n_embd": 4096, "n_head": 32, "n_layer": 32, "intermediate_size": 22016,
         "vocab_size": 151936, "seq_length": 2048, "layer_norm_epsilon": 1e-05}
        """.utf8), context: "config.json")
        let e = try ModelConfig.fromHuggingFace(json: early)
        XCTAssertEqual(e.hiddenSize, 4096)
        XCTAssertEqual(e.layerCount, 32)
        XCTAssertEqual(e.headDim, 128)
        XCTAssertEqual(e.contextLength, 2048)
    }

    func testQwen2ConfigAndErrors() throws {
        let qwen2 = try JSONValue.parse(Array("""
        {"architectures": ["Qwen2ForCausalLM"], "hidden_size": 896, "num_attention_heads": 14, "num_key_value_heads": 2,
         "num_hidden_layers": 24, "intermediate_size": 4864, "vocab_size": 151936, "rope_theta": 1000000.0,
         "rms_norm_eps": 1e-06, "max_position_embeddings": 32768, "tie_word_embeddings": true}
        """.utf8), context: "config.json")
        let c = try ModelConfig.fromHuggingFace(json: qwen2)
        XCTAssertEqual(c.architecture, .qwen2)
        XCTAssertEqual(c.kvHeadCount, 2)
        XCTAssertEqual(c.headDim, 64)
        XCTAssertTrue(c.tiedEmbeddings)

        let missing = try JSONValue.parse(Array("{\"architectures\": [\"Qwen2ForCausalLM\"], \"hidden_size\": 896}".utf8), context: "config.json")
        XCTAssertThrowsError(try ModelConfig.fromHuggingFace(json: missing)) { error in
            XCTAssertEqual((error as? QwenError)?.message, "config.json: missing num_attention_heads")
        }
        let llama = try JSONValue.parse(Array("{\"architectures\": [\"LlamaForCausalLM\"]}".utf8), context: "config.json")
        XCTAssertThrowsError(try ModelConfig.fromHuggingFace(json: llama)) { error in
            guard case QwenError.unsupportedModel(let m) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(m.contains("LlamaForCausalLM"))
        }
    }

    // MARK: a Qwen (v1) checkpoint directory generated here

    /// Writes a tiny deterministic Qwen v1 checkpoint (bf16, 2 layers, hidden 32) with
    /// the real qwen.tiktoken, optionally split into two shards with an index;
    /// `dtypeOf(name)` may label a tensor with another 2-byte dtype.
    static func writeTinyQwenV1(to dir: URL, sharded: Bool, dtypeOf: (String) -> String = { _ in "BF16" }) throws {
        let hidden = 32, layers = 2, heads = 4, ffn = 48, vocab = 151936
        let config = """
        {"architectures": ["QWenLMHeadModel"], "model_type": "qwen", "hidden_size": \(hidden), "num_attention_heads": \(heads),
         "num_hidden_layers": \(layers), "intermediate_size": \(2 * ffn), "vocab_size": \(vocab), "seq_length": 2048,
         "kv_channels": \(hidden / heads), "rotary_pct": 1.0, "rotary_emb_base": 10000, "layer_norm_epsilon": 1e-06,
         "use_dynamic_ntk": true, "use_logn_attn": true, "no_bias": true, "bf16": true}
        """
        try config.write(to: dir.appendingPathComponent("config.json"), atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(atPath: TestPaths.requireFile(TestPaths.tiktoken),
                                         toPath: dir.appendingPathComponent("qwen.tiktoken").path)
        var tensors: [(String, String, [Int], [UInt8])] = []
        var seed: UInt64 = 1
        func add(_ name: String, _ shape: [Int]) {
            seed += 1
            tensors.append((name, dtypeOf(name), shape, bf16Bytes(count: shape.reduce(1, *), seed: seed)))
        }
        add("transformer.wte.weight", [vocab, hidden])
        for i in 0..<layers {
            let p = "transformer.h.\(i)."
            add(p + "ln_1.weight", [hidden])
            add(p + "attn.c_attn.weight", [3 * hidden, hidden])
            add(p + "attn.c_attn.bias", [3 * hidden])
            add(p + "attn.c_proj.weight", [hidden, hidden])
            add(p + "ln_2.weight", [hidden])
            add(p + "mlp.w1.weight", [ffn, hidden])
            add(p + "mlp.w2.weight", [ffn, hidden])
            add(p + "mlp.c_proj.weight", [hidden, ffn])
        }
        add("transformer.ln_f.weight", [hidden])
        add("lm_head.weight", [vocab, hidden])
        if sharded {
            let half = tensors.count / 2
            let names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
            try writeSafetensors(dir.appendingPathComponent(names[0]), Array(tensors[..<half]))
            try writeSafetensors(dir.appendingPathComponent(names[1]), Array(tensors[half...]))
            let map = tensors.enumerated().map { "\"\($0.element.0)\": \"\(names[$0.offset < half ? 0 : 1])\"" }
            try ("{\"weight_map\": {" + map.joined(separator: ", ") + "}}")
                .write(to: dir.appendingPathComponent("model.safetensors.index.json"), atomically: true, encoding: .utf8)
        } else {
            try writeSafetensors(dir.appendingPathComponent("model.safetensors"), tensors)
        }
    }

    /// A tensor of a dtype the engine cannot compute with is named as such, not "missing".
    func testUnsupportedTensorDTypeIsNamed() throws {
        let dir = try TestPaths.temporaryDirectory()
        let odd = "transformer.h.1.mlp.w1.weight"
        try FormatTests.writeTinyQwenV1(to: dir, sharded: false) { $0 == odd ? "I16" : "BF16" }
        XCTAssertThrowsError(try Model.load(path: dir.path)) { error in
            guard case QwenError.unsupportedModel(let message) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(message.contains(odd) && message.contains("I16"), message)
        }
    }

    func testTinyQwenV1CheckpointLoads() throws {
        for sharded in [false, true] {
            let dir = try TestPaths.temporaryDirectory()
            try FormatTests.writeTinyQwenV1(to: dir, sharded: sharded)
            let model = try Model.load(path: dir.path)
            XCTAssertEqual(model.info.architecture, "qwen")
            XCTAssertEqual(model.info.weightType, "bf16")
            XCTAssertEqual(model.info.layerCount, 2)
            XCTAssertEqual(model.config.intermediateSize, 48)
            XCTAssertEqual(model.tokenizer.encode("Hello, world!"), [9707, 11, 1879, 0])
            XCTAssertEqual(try model.weights.layers.layer(1).key.rows, 32)
            let perLayer: Int = 32 + 96 * 32 + 96 + 32 * 32 + 32 + 3 * 48 * 32
            let expected: Int = 2 * 151936 * 32 + 2 * perLayer + 32
            XCTAssertEqual(model.info.parameterCount, Int64(expected))
        }
    }
}

/// The Qwen (v1) path of the forward pass (fused QKV split at load, bf16 weights read
/// in place) on the generated tiny checkpoint: batched prefill equals token by token.
final class QwenV1ForwardTests: XCTestCase {
    func testBatchedEqualsTokenByToken() throws {
        let dir = try TestPaths.temporaryDirectory()
        try FormatTests.writeTinyQwenV1(to: dir, sharded: false)
        let model = try Model.load(path: dir.path, options: { var o = ModelLoadOptions(); o.threads = 2; return o }())
        let tokens: [Int32] = model.tokenizer.encode("def add(a, b):\n    return a + b")
        XCTAssertGreaterThan(tokens.count, 8)
        func logits(batch: Int) throws -> [[Float]] {
            var rows: [[Float]] = []
            let scorer = try SequenceScorer(model: model, contextSize: tokens.count, batch: batch)
            try scorer.run(tokens) { _, l in rows.append(Array(UnsafeBufferPointer(start: l, count: model.config.vocabSize))) }
            return rows
        }
        let batched = try logits(batch: 8), single = try logits(batch: 1)
        XCTAssertEqual(batched.count, tokens.count)
        for (b, s) in zip(batched, single) {
            XCTAssertTrue(b.allSatisfy(\.isFinite))
            let scale = s.map(abs).max() ?? 1
            // Decode quantizes activations to int8 for quantized formats only; bf16 stays
            // f32, so both paths agree to f32 rounding.
            for i in stride(from: 0, to: b.count, by: 97) {
                XCTAssertEqual(b[i], s[i], accuracy: scale * 1e-4 + 1e-5)
            }
        }
    }
}
