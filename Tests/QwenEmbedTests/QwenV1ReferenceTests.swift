import Foundation
import XCTest
@testable import QwenEmbed

/// The checkpoints scripts/gen-qwen-checkpoints.py writes (bf16, fp16 sharded, GPTQ Int4 /
/// Int8 in several layouts, a long-context one), generated once per test run, against the
/// logits independent implementations computed for them (scripts/gen-qwen-expected.py:
/// transformers' Qwen2 with the v1 weights mapped onto it and the GPTQ layers dequantized
/// as auto_gptq does; Qwen's own modeling_qwen.py for long context), kept in
/// Tests/Fixtures/qwen-v1-expected.json.
///
/// Tolerances (max |Δlogit| over each position's reference top 20, logits here span about
/// ±7): batched (prefill, `qwen logits`: bf16 / fp16 in f32; GPTQ with int8 activations
/// and their int8 remainders, `WeightMatrix.refinedPrefill`) 0.02 for all, measured at
/// most 0.007 and 0.0102 (0.013 when GPTQ prefill was f32). Token by token
/// (decode), GPTQ's int8 kernels quantize the activations to int8 per 32 values, as
/// llama.cpp does: 0.35, measured 0.16-0.30 on this 128-wide model (bf16 decode stays f32:
/// 0.02). Long context (bf16, positions up to 271 in the f16 KV cache): 0.03, measured 0.0195.
/// Top-1 must be identical wherever the reference's top two are more than twice the
/// tolerance apart; at a nearer tie our top-1 must be one of the tied ones (within the
/// tolerance of the reference maximum).
final class QwenV1ReferenceTests: XCTestCase {
    struct Expected: Decodable {
        struct LongContext: Decodable {
            let prompt: [Int32]
            let generated: [Int32]
            let steps: [[[Double]]]
        }
        let prompt: [Int32]
        let variants: [String: [[[Double]]]]   // variant -> position -> top [[id, logit]]
        let long_context: LongContext
    }

    static let expected: Expected? = {
        guard let data = try? Data(contentsOf: TestPaths.fixtures.appendingPathComponent("qwen-v1-expected.json")) else { return nil }
        return try? JSONDecoder().decode(Expected.self, from: data)
    }()

    /// Every variant, written once into a temporary directory by the project's generator.
    static let checkpoints: Result<URL, Error> = Result(catching: { () throws -> URL in
        let dir = try TestPaths.temporaryDirectory()
        let script = TestPaths.fixtures.deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/gen-qwen-checkpoints.py").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, dir.path]
        var environment = ProcessInfo.processInfo.environment
        environment["QWEN_TIKTOKEN"] = TestPaths.tiktoken
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw QwenError.io("gen-qwen-checkpoints.py failed (\(process.terminationStatus))") }
        return dir
    })

    static func checkpoint(_ variant: String) throws -> String {
        _ = try TestPaths.requireFile(TestPaths.tiktoken)
        return try checkpoints.get().appendingPathComponent(variant).path
    }

    func expected() throws -> Expected { try XCTUnwrap(Self.expected, "Tests/Fixtures/qwen-v1-expected.json is missing or malformed") }

    /// Compares one position's logits with the reference's top entries.
    func check(_ logits: UnsafePointer<Float>, _ reference: [[Double]], tolerance: Double, vocab: Int, _ what: String) -> Double {
        var worst = 0.0
        for entry in reference {
            worst = max(worst, abs(Double(logits[Int(entry[0])]) - entry[1]))
        }
        XCTAssertLessThan(worst, tolerance, "\(what): max |Δlogit|")
        var best = 0
        for i in 1..<vocab where logits[i] > logits[best] { best = i }
        let referenceBest = Int(reference[0][0]), margin = reference[0][1] - reference[1][1]
        if margin > 2 * tolerance {
            XCTAssertEqual(best, referenceBest, "\(what): top-1")
        } else {
            let ours = reference.first { Int($0[0]) == best }?[1] ?? -.infinity
            XCTAssertGreaterThan(ours, reference[0][1] - tolerance, "\(what): top-1 \(best) is not one of the reference's tied best")
        }
        return worst
    }

    func testEveryVariantMatchesTheIndependentImplementation() throws {
        let expected = try expected()
        XCTAssertEqual(expected.variants.count, 8)
        for (variant, positions) in expected.variants.sorted(by: { $0.key < $1.key }) {
            let model = try Model.load(path: try Self.checkpoint(variant), options: { var o = ModelLoadOptions(); o.threads = 2; return o }())
            XCTAssertEqual(model.info.weightType, variant.hasPrefix("gptq-int4") ? "gptq-int4" : variant.hasPrefix("gptq-int8") ? "gptq-int8"
                           : variant.hasPrefix("fp16") ? "f16" : "bf16", variant)
            // Batched prefill (matmul) and token by token (the decode kernels).
            for batch in [128, 1] {
                let tolerance = batch == 1 && variant.hasPrefix("gptq") ? 0.35 : 0.02
                let scorer = try SequenceScorer(model: model, contextSize: expected.prompt.count, batch: batch)
                var worst = 0.0
                try scorer.run(expected.prompt) { position, logits in
                    worst = max(worst, check(logits, positions[position], tolerance: tolerance, vocab: model.config.vocabSize,
                                             "\(variant) batch \(batch) position \(position)"))
                }
                print("\(variant) batch \(batch): max |Δlogit| \(worst)")
            }
        }
    }

    /// Qwen's dynamic NTK + logN, as its own code generates: a prompt longer than the
    /// checkpoint's seq_length (32) and longer than one prefill chunk (128), then greedy
    /// decoding past 256 tokens (where recomputing alpha per step would change it).
    func testLongContextGreedyDecodingMatchesQwensOwnCode() throws {
        let reference = try expected().long_context
        let model = try Model.load(path: try Self.checkpoint("long-context"))
        XCTAssertEqual(model.config.contextLength, 32)
        XCTAssertTrue(model.config.useDynamicNTK && model.config.useLogNAttention)
        let session = try Session(model: model)
        XCTAssertEqual(session.contextSize, 8192, "dynamic-NTK checkpoints default to the cap, not seq_length")
        XCTAssertGreaterThan(reference.prompt.count, model.engine.prefillChunk)
        var parameters = GenerationParameters()
        parameters.sampling = .greedy
        parameters.maxTokens = reference.generated.count
        // The logits behind each generated token, as the engine samples from them.
        let vocab = model.config.vocabSize
        let steps = LogitsRecorder()
        parameters.observeLogits = { step, logits in steps.append(step, Array(UnsafeBufferPointer(start: logits, count: vocab))) }
        let result = try session.generate(promptTokens: reference.prompt, parameters: parameters)
        XCTAssertEqual(result.generatedTokens, reference.generated.count)
        var worst = 0.0
        for (step, logits) in steps.rows.enumerated() {
            let chosen = Int32(logits.indices.max { logits[$0] < logits[$1] }!)
            guard chosen == reference.generated[step] else {
                return XCTFail("step \(step): generated \(chosen), Qwen's code \(reference.generated[step])")
            }
            if step > 0 {
                worst = max(worst, logits.withUnsafeBufferPointer {
                    check($0.baseAddress!, reference.steps[step], tolerance: 0.03, vocab: vocab, "step \(step)")
                })
            }
        }
        XCTAssertEqual(steps.rows.count, reference.generated.count)
        XCTAssertEqual(session.cache.ntkAlpha, 15, "alpha of the 200-token prompt: 2^ceil(log2(200 / 32) + 1) - 1")
        print("long context: \(reference.generated.count) tokens identical, max |Δlogit| \(worst)")
    }

    func testGPTQInt4ChatsThroughTheSession() throws {
        let model = try Model.load(path: try Self.checkpoint("gptq-int4-g128"))
        let session = try Session(model: model, options: { var o = SessionOptions(); o.threads = 2; o.seed = 7; return o }())
        var parameters = GenerationParameters()
        parameters.maxTokens = 8
        let result = try session.chat([ChatMessage(role: .user, content: "Hello")], parameters: parameters)
        XCTAssertTrue(result.generatedTokens == 8 || result.finishReason == .stop, "\(result)")
        XCTAssertGreaterThan(result.promptTokens, 10)
        XCTAssertEqual(session.history.count, 2)
    }
}

/// GPTQ settings and tensors the engine cannot run are refused at load, naming the field
/// or tensor; nothing traps.
final class GPTQLoadingTests: XCTestCase {
    /// A copy of a generated variant, with `edit` applied to its config.json text and
    /// `rename` applied to its safetensors header (same-length name changes).
    func variant(_ name: String, config edit: (String) -> String = { $0 }, rename: (String, String)? = nil) throws -> String {
        let source = try QwenV1ReferenceTests.checkpoint(name)
        let dir = try TestPaths.temporaryDirectory().appendingPathComponent(name)
        try FileManager.default.copyItem(atPath: source, toPath: dir.path)
        let config = dir.appendingPathComponent("config.json")
        try edit(String(contentsOf: config, encoding: .utf8)).write(to: config, atomically: true, encoding: .utf8)
        if let (from, to) = rename {
            precondition(from.utf8.count == to.utf8.count)
            let file = dir.appendingPathComponent("model.safetensors")
            var bytes = try [UInt8](Data(contentsOf: file))
            let headerLength = Int(bytes[0..<8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
            var header = String(decoding: bytes[8..<(8 + headerLength)], as: UTF8.self)
            header = header.replacingOccurrences(of: "\"\(from)\"", with: "\"\(to)\"")
            bytes.replaceSubrange(8..<(8 + headerLength), with: Array(header.utf8))
            try Data(bytes).write(to: file)
        }
        return dir.path
    }

    func assertRefused(_ path: String, _ expected: String..., file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try Model.load(path: path), file: file, line: line) { error in
            let message = "\(error)"
            for part in expected { XCTAssertTrue(message.contains(part), "\(message) lacks \(part)", file: file, line: line) }
        }
    }

    func testUnsupportedSettingsAreNamed() throws {
        assertRefused(try variant("gptq-int4-g128") { $0.replacingOccurrences(of: "\"bits\": 4", with: "\"bits\": 3") }, "bits 3")
        assertRefused(try variant("gptq-int4-g128") { $0.replacingOccurrences(of: "\"quant_method\": \"gptq\"", with: "\"quant_method\": \"gptq\", \"checkpoint_format\": \"gptq_v2\"") },
                      "checkpoint_format", "gptq_v2")
        assertRefused(try variant("gptq-int4-g128") { $0.replacingOccurrences(of: "\"quant_method\": \"gptq\"", with: "\"quant_method\": \"exl2\"") }, "quant_method", "exl2")
        // AWQ settings over GPTQ-packed tensors: the tensors' shapes say it.
        assertRefused(try variant("gptq-int4-g128") { $0.replacingOccurrences(of: "\"quant_method\": \"gptq\"", with: "\"quant_method\": \"awq\"") },
                      "qweight", "4-bit AWQ")
        assertRefused(try variant("gptq-int4-g128") { $0.replacingOccurrences(of: "\"quant_method\": \"gptq\"", with: "\"quant_method\": \"gptq\", \"is_marlin_format\": true") }, "is_marlin_format")
        assertRefused(try variant("gptq-int4-g128") { $0.replacingOccurrences(of: "\"group_size\": 128", with: "\"group_size\": 48") }, "group_size 48")
    }

    func testInconsistentTensorsAreNamed() throws {
        // The config's group size disagrees with the tensors: scales of the wrong shape.
        assertRefused(try variant("gptq-int4-g128") { $0.replacingOccurrences(of: "\"group_size\": 128", with: "\"group_size\": 64") },
                      "transformer.h.0.attn.c_attn.qzeros", "shape")
        // A missing qzeros.
        assertRefused(try variant("gptq-int4-g128", rename: ("transformer.h.1.mlp.w1.qzeros", "transformer.h.1.mlp.w1.qzeroz")),
                      "missing tensor transformer.h.1.mlp.w1.qzeros")
        // A bias the architecture has no place for.
        assertRefused(try variant("bf16", rename: ("transformer.h.0.attn.c_attn.bias", "transformer.h.0.attn.c_proj.bias")),
                      "transformer.h.0.attn.c_proj.bias")
    }

    /// A g_idx out of range is found when its block is first built: the forward pass
    /// reports it as a bad model and the model stays usable for the error's caller.
    func testBadGroupIndexIsReportedOnFirstUse() throws {
        let path = try variant("gptq-int4-g64-actorder")
        let shard = URL(fileURLWithPath: path).appendingPathComponent("model-00001-of-00002.safetensors")
        let index = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path).appendingPathComponent("model.safetensors.index.json"))) as? [String: Any]
        let map = try XCTUnwrap(index?["weight_map"] as? [String: String])
        let name = try XCTUnwrap(map.keys.sorted().first { $0.hasSuffix(".g_idx") && map[$0] == "model-00001-of-00002.safetensors" })
        var bytes = try [UInt8](Data(contentsOf: shard))
        let headerLength = Int(bytes[0..<8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
        let header = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + headerLength)])) as? [String: Any])
        let begin = try XCTUnwrap(((header[name] as? [String: Any])?["data_offsets"] as? [Int])?.first)
        bytes.replaceSubrange((8 + headerLength + begin)..<(8 + headerLength + begin + 4), with: [0xFF, 0xFF, 0, 0])
        try Data(bytes).write(to: shard)
        let model = try Model.load(path: path)
        let scorer = try SequenceScorer(model: model, contextSize: 4, batch: 4)
        XCTAssertThrowsError(try scorer.run([9707, 11, 1879]) { _, _ in }) { error in
            XCTAssertTrue("\(error)".contains("g_idx[0] = 65535"), "\(error)")
        }
    }
}

/// Logits rows handed over by the engine's step thread (`GenerationParameters.observeLogits`).
final class LogitsRecorder: @unchecked Sendable {
    private let lock = Mutex()
    private var stored: [[Float]] = []
    func append(_ step: Int, _ row: [Float]) { lock.locked { if step == stored.count { stored.append(row) } } }
    var rows: [[Float]] { lock.locked { stored } }
}
