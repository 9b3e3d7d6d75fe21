import Foundation
import XCTest
@testable import QwenEmbed

/// Saved sessions (`Session.save`, `Model.loadSession`) on the tiny bf16 Qwen v1 checkpoint
/// of scripts/gen-qwen-checkpoints.py: a loaded session continues exactly as the original,
/// and a damaged file is refused with the error it should get.
final class SessionFileTests: XCTestCase {
    static let checkpoint: Result<String, Error> = Result(catching: { () throws -> String in
        _ = try TestPaths.requireFile(TestPaths.tiktoken)
        let dir = try TestPaths.temporaryDirectory()
        let script = TestPaths.fixtures.deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/gen-qwen-checkpoints.py").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, dir.path, "bf16"]
        var environment = ProcessInfo.processInfo.environment
        environment["QWEN_TIKTOKEN"] = TestPaths.tiktoken
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw QwenError.io("gen-qwen-checkpoints.py failed (\(process.terminationStatus))") }
        return dir.appendingPathComponent("bf16").path
    })

    static let model: Result<Model, Error> = Result(catching: {
        try Model.load(path: try checkpoint.get(), options: { var o = ModelLoadOptions(); o.threads = 2; return o }())
    })

    static func greedy(_ tokens: Int) -> GenerationParameters {
        var p = GenerationParameters()
        p.sampling = .greedy
        p.maxTokens = tokens
        p.stopsAtEndOfTurn = false   // the random weights rarely end a turn: always `tokens` tokens
        return p
    }

    static func sampled(_ tokens: Int) -> GenerationParameters {
        var p = greedy(tokens)
        p.sampling = SamplingParameters()   // temperature 1, top-p 0.8; seed nil: the session's stream
        return p
    }

    /// A session with a system prompt, a tool, a tool call in its history and two replies.
    func conversation(_ model: Model) throws -> Session {
        var options = SessionOptions()
        options.contextSize = 512
        options.seed = 42
        options.systemPrompt = "Be brief. ½ ✓"
        let session = try Session(model: model, options: options)
        try session.setTools([try ToolDefinition(name: "get_weather", description: "Weather of a city.",
                                                 parameters: "{\"type\":\"object\"}"),
                              try ToolDefinition(name: "now")])
        try session.addMessage(ChatMessage(role: .user, content: "Weather in Paris?"))
        try session.addMessage(ChatMessage(role: .assistant, content: "Thought: look it up",
                                           toolCall: ToolCall(name: "get_weather", arguments: "{\"city\": \"Paris\"}")))
        try session.addMessage(ChatMessage(role: .tool, content: "{\"temperature\": 21}"))
        _ = try session.chat([ChatMessage(role: .user, content: "And tomorrow?")], parameters: Self.sampled(6))
        _ = try session.chat([ChatMessage(role: .user, content: "Thanks")], parameters: Self.greedy(5))
        return session
    }

    func testALoadedSessionContinuesExactlyAsTheOriginal() throws {
        let model = try Self.model.get()
        let original = try conversation(model)
        let path = try TestPaths.temporaryDirectory().appendingPathComponent("chat.qsession").path
        try original.save(to: path)
        let loaded = try model.loadSession(from: path)

        XCTAssertEqual(loaded.systemPrompt, original.systemPrompt)
        XCTAssertEqual(loaded.tools, original.tools)
        XCTAssertEqual(loaded.history, original.history)
        XCTAssertEqual(loaded.contextSize, 512)
        XCTAssertEqual(loaded.maxWindowSize, original.maxWindowSize)
        XCTAssertEqual(loaded.cachedTokens, original.cachedTokens)
        XCTAssertGreaterThan(loaded.cachedTokens.count, 20)

        // The next reply: sampled from the restored random stream, then greedy; each reuses the cache.
        for parameters in [Self.sampled(8), Self.greedy(8)] {
            let next = [ChatMessage(role: .user, content: "Go on")]
            let expected = try original.chat(next, parameters: parameters)
            let got = try loaded.chat(next, parameters: parameters)
            XCTAssertEqual(got.text, expected.text)
            XCTAssertEqual(got.generatedTokens, 8)
            XCTAssertEqual(got.cachedTokens, expected.cachedTokens)
            XCTAssertGreaterThan(got.cachedTokens, 0, "the restored keys and values are reused")
        }
        XCTAssertEqual(loaded.history, original.history)

        // A larger context and another window may be asked for; a context too small for the cache is refused.
        var options = SessionOptions()
        options.contextSize = 1024
        options.maxWindowSize = 300
        let wider = try model.loadSession(from: path, options: options)
        XCTAssertEqual(wider.contextSize, 1024)
        XCTAssertEqual(wider.maxWindowSize, 300)
        options.contextSize = 8
        XCTAssertThrowsError(try model.loadSession(from: path, options: options)) { error in
            guard case QwenError.contextFull(let message) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(message.contains("do not fit a context of 8"), message)
        }
    }

    func testSaveIsRefusedDuringAPulledReplyAndNeverLeavesAHalfFile() throws {
        let model = try Self.model.get()
        let session = try conversation(model)
        let dir = try TestPaths.temporaryDirectory()
        let path = dir.appendingPathComponent("chat.qsession").path
        try session.save(to: path)
        let saved = try Data(contentsOf: URL(fileURLWithPath: path))

        try session.beginChat([ChatMessage(role: .user, content: "More")], parameters: Self.greedy(3))
        XCTAssertThrowsError(try session.save(to: path)) { error in
            guard case QwenError.wrongState = error else { return XCTFail("\(error)") }
        }
        _ = try session.endChat()
        XCTAssertThrowsError(try session.save(to: dir.appendingPathComponent("missing/chat.qsession").path)) { error in
            guard case QwenError.io = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try session.save(to: dir.path)) { error in   // a directory cannot be replaced by a file
            guard case QwenError.io = error else { return XCTFail("\(error)") }
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), saved)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["chat.qsession"], "no temporary file left")
        try session.save(to: path)   // over the existing file
        XCTAssertNotEqual(try Data(contentsOf: URL(fileURLWithPath: path)), saved)
    }

    /// `bytes` with its checksum recomputed, so the checks behind it are reached.
    static func resealed(_ bytes: [UInt8]) -> [UInt8] {
        var body = Array(bytes.dropLast(8))
        var hash = Hash64()
        body.withUnsafeBytes { hash.update($0) }
        withUnsafeBytes(of: hash.value.littleEndian) { body += $0 }
        return body
    }

    func testDamagedFilesAreRefusedWithTheirError() throws {
        let model = try Self.model.get()
        let dir = try TestPaths.temporaryDirectory()
        let good = dir.appendingPathComponent("good.qsession").path
        try conversation(model).save(to: good)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: good)))
        let path = dir.appendingPathComponent("bad.qsession").path

        func refused(_ data: [UInt8], _ what: String, file: StaticString = #filePath, line: UInt = #line,
                     _ check: (QwenError) -> Bool) {
            XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(data)))
            XCTAssertThrowsError(try model.loadSession(from: path), what, file: file, line: line) { error in
                guard let error = error as? QwenError else { return XCTFail("\(what): \(error)", file: file, line: line) }
                XCTAssertTrue(check(error), "\(what): \(error)", file: file, line: line)
                XCTAssertTrue(error.message.contains(path), "\(what): \(error) names the file", file: file, line: line)
            }
        }
        func isBad(_ fragment: String) -> (QwenError) -> Bool {
            { if case .badModel(let m) = $0 { return m.contains(fragment) } else { return false } }
        }

        for cut in Array(0..<40) + Array(stride(from: 40, to: bytes.count, by: max(1, bytes.count / 200))) {
            refused(Array(bytes.prefix(cut)), "truncated to \(cut)",
                    isBad(cut == 0 ? "empty" : cut < 28 ? "truncated" : "checksum"))
        }
        for offset in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 300)) {
            var flipped = bytes
            flipped[offset] ^= 0x20
            refused(flipped, "byte \(offset) flipped", isBad(offset < 8 ? "not a QwenEmbed session file" : "checksum"))
        }
        var newer = bytes
        newer[8] = 2
        refused(Self.resealed(newer), "format 2") {
            if case .unsupportedModel(let m) = $0 { return m.contains("written by a newer QwenEmbed (format 2, this reads up to 1)") }
            return false
        }
        var other = bytes
        other[12] ^= 1
        refused(Self.resealed(other), "another model's fingerprint") {
            if case .invalidArgument(let m) = $0 { return m.contains("belongs to another model") }
            return false
        }
        var zeros = bytes
        for i in 28..<60 { zeros[i] = 0 }
        refused(Self.resealed(zeros), "a zero sampler state", isBad("sampler state is all zeros at byte 28"))
        refused(Self.resealed(bytes.prefix(bytes.count - 9) + bytes.suffix(8)), "a payload cut short", isBad("KV rows"))
        refused(Self.resealed(bytes.dropLast(8) + [0, 0, 0, 0, 0, 0, 0, 0, 0]), "bytes after the payload", isBad("follow the KV cache"))

        for (missing, what) in [(dir.appendingPathComponent("none.qsession").path, "missing"), (dir.path, "a directory")] {
            XCTAssertThrowsError(try model.loadSession(from: missing), what) { error in
                guard case QwenError.io(let message) = error else { return XCTFail("\(what): \(error)") }
                XCTAssertTrue(message.contains(missing), message)
            }
        }
        XCTAssertNoThrow(try model.loadSession(from: good))
    }

    func testTheFingerprintIsComputedOnceAndDependsOnTheWeights() throws {
        let model = try Self.model.get()
        XCTAssertEqual(model.fingerprint, model.fingerprint)
        let weights: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8]
        func fingerprint(_ data: [UInt8], shape: [Int] = [8]) -> UInt64 {
            data.withUnsafeBytes { bytes in
                Model.fingerprint(config: model.config, vocabularySize: 10,
                                  tensors: [SourceTensor(name: "w", type: "U8", shape: shape, data: bytes)])
            }
        }
        XCTAssertEqual(fingerprint(weights), fingerprint(weights))
        XCTAssertNotEqual(fingerprint(weights), fingerprint([1, 2, 3, 4, 5, 6, 7, 9]))
        XCTAssertNotEqual(fingerprint(weights), fingerprint(weights, shape: [2, 4]))
    }
}
