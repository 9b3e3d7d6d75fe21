import Foundation
import XCTest
@testable import QwenEmbed

/// The real vocabulary, loaded once for every test that needs it.
private let vocabDir: String = {
    if let dir = ProcessInfo.processInfo.environment["QWEN_CACHE"], !dir.isEmpty { return dir }
    return NSHomeDirectory() + "/.cache/qwen-embed"
}()
private let vocabPath = vocabDir + "/qwen.tiktoken"
private let ggufPath = vocabDir + "/qwen2.5-coder-0.5b-instruct.gguf"

private let sharedTokenizer: Result<Tokenizer, Error> = Result { try Tokenizer(tiktokenFile: vocabPath) }

private func fixturesDir() -> String {
    // Tests/QwenEmbedTests/TokenizerTests.swift -> Tests/Fixtures
    let here = URL(fileURLWithPath: #filePath)
    return here.deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").path
}

final class TokenizerTests: XCTestCase {
    private func tokenizer(file: StaticString = #filePath, line: UInt = #line) throws -> Tokenizer {
        guard FileManager.default.fileExists(atPath: vocabPath) else {
            XCTFail("\(vocabPath) is missing: run scripts/fetch-model.sh first", file: file, line: line)
            throw QwenError.io("\(vocabPath) is missing")
        }
        return try sharedTokenizer.get()
    }

    // MARK: Reference cases

    func testReferenceCases() throws {
        let tok = try tokenizer()
        let path = fixturesDir() + "/tokenizer-cases.jsonl"
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var passed = 0
        var total = 0
        for line in text.split(separator: "\n") where !line.isEmpty {
            let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            guard let obj, let name = obj["name"] as? String, let input = obj["text"] as? String,
                  let ids = obj["ids"] as? [Int] else {
                XCTFail("bad fixture line: \(line.prefix(80))")
                continue
            }
            let special = obj["special"] as? Bool ?? false
            total += 1
            let got = tok.encode(input, parseSpecial: special).map(Int.init)
            if got == ids {
                passed += 1
            } else {
                let at = (0..<min(got.count, ids.count)).first(where: { got[$0] != ids[$0] }) ?? min(got.count, ids.count)
                XCTFail("\(name): ids differ at index \(at) (got \(got.count) ids, want \(ids.count)): "
                    + "got \(got[at..<min(got.count, at + 5)]) want \(ids[at..<min(ids.count, at + 5)])")
            }
            // The bytes API agrees with the String API.
            let viaBytes = try Array(input.utf8).withUnsafeBytes { try tok.encode(utf8: $0, parseSpecial: special) }
            XCTAssertEqual(viaBytes.map(Int.init), got, name)
        }
        XCTAssertGreaterThanOrEqual(total, 100, "fixture has too few cases")
        print("tokenizer reference cases: \(passed)/\(total) passed")
    }

    func testVocabularySize() throws {
        let tok = try tokenizer()
        XCTAssertEqual(tok.regularCount, 151_643)
        XCTAssertEqual(tok.count, 151_851)
        XCTAssertEqual(tok.specialTokenID("<|endoftext|>"), 151_643)
        XCTAssertEqual(tok.specialTokenID("<|im_start|>"), 151_644)
        XCTAssertEqual(tok.specialTokenID("<|im_end|>"), 151_645)
        XCTAssertEqual(tok.specialTokenID("<|extra_0|>"), 151_646)
        XCTAssertEqual(tok.specialTokenID("<|extra_204|>"), 151_850)
        XCTAssertNil(tok.specialTokenID("hello"))
        XCTAssertTrue(tok.isSpecial(151_644))
        XCTAssertFalse(tok.isSpecial(100))
        XCTAssertFalse(tok.isSpecial(151_851))
        XCTAssertEqual(tok.tokenBytes(151_644), Array("<|im_start|>".utf8))
        XCTAssertNil(tok.tokenBytes(-1))
        XCTAssertNil(tok.tokenBytes(151_851))
        XCTAssertEqual(tok.encode("hello world"), [14990, 1879])
        XCTAssertEqual(tok.encode(""), [])
    }

    // MARK: Round trip

    func testRandomRoundTrip() throws {
        let tok = try tokenizer()
        var rng = SplitMix64(seed: 0x5EED_1234)
        let pools: [[UInt32]] = [
            Array(0x20...0x7E),                                  // ASCII
            Array(0x4E00...0x4FFF),                              // CJK
            Array(0x300...0x36F),                                // combining marks
            [0x1F600, 0x1F680, 0x1F468, 0x200D, 0x1F469, 0x2764, 0xFE0F, 0x1F3FD],  // emoji, ZWJ
            [0x20, 0x20, 0x09, 0x0A, 0x0D, 0x3000, 0xA0, 0x2028, 0x85],            // whitespace
            Array(0x30...0x39) + [0x660, 0x661, 0xFF11, 0x2155],                  // digits
            Array(0x1100...0x1112) + Array(0x1161...0x1175) + Array(0x11A8...0x11C2), // jamo
            Array(0xC0...0x17F) + [0x212B, 0x2126, 0x1E9B, 0x0344],               // Latin, singletons
            Array(0x400...0x45F) + Array(0xAC00...0xAC40) + [0x27],              // Cyrillic, Hangul
        ]
        for iteration in 0..<3000 {
            var scalars = String.UnicodeScalarView()
            let length = Int(rng.next() % 40)
            for _ in 0..<length {
                let pool = pools[Int(rng.next() % UInt64(pools.count))]
                let v = pool[Int(rng.next() % UInt64(pool.count))]
                if let s = Unicode.Scalar(v) { scalars.append(s) }
            }
            let s = String(scalars)
            let ids = tok.encode(s)
            let back = try tok.decode(ids)
            let expected = Array(nfcNormalize(s).utf8)
            if back != expected {
                XCTFail("round trip \(iteration) failed for \(s.unicodeScalars.map { String($0.value, radix: 16) })")
                return
            }
            XCTAssertTrue(ids.allSatisfy { !tok.isSpecial($0) })
        }
    }

    // MARK: NFC

    func testNFC() {
        XCTAssertEqual(nfcNormalize("e\u{301}").unicodeScalars.map(\.value), [0xE9])
        XCTAssertEqual(nfcNormalize("abc"), "abc")
        // Hangul jamo L V T -> syllable; LV + T -> LVT.
        XCTAssertEqual(nfcNormalize("\u{1100}\u{1161}\u{11A8}").unicodeScalars.map(\.value), [0xAC01])
        XCTAssertEqual(nfcNormalize("\u{AC00}\u{11A8}").unicodeScalars.map(\.value), [0xAC01])
        // Singletons.
        XCTAssertEqual(nfcNormalize("\u{212B}").unicodeScalars.map(\.value), [0xC5])
        XCTAssertEqual(nfcNormalize("\u{2126}").unicodeScalars.map(\.value), [0x3A9])
        // Canonical reordering: dot below (220) before acute (230), then composition.
        XCTAssertEqual(nfcNormalize("a\u{301}\u{323}").unicodeScalars.map(\.value), [0x1EA1, 0x301])
        XCTAssertEqual(nfcNormalize("q\u{307}\u{323}").unicodeScalars.map(\.value), [0x71, 0x323, 0x307])
        // Blocked: a second acute cannot compose.
        XCTAssertEqual(nfcNormalize("e\u{301}\u{301}").unicodeScalars.map(\.value), [0xE9, 0x301])
        // Composition exclusion stays decomposed; non-starter decomposition.
        XCTAssertEqual(nfcNormalize("\u{0958}").unicodeScalars.map(\.value), [0x915, 0x93C])
        XCTAssertEqual(nfcNormalize("\u{0344}").unicodeScalars.map(\.value), [0x308, 0x301])
        // A mark at the very start, CJK around.
        XCTAssertEqual(nfcNormalize("\u{301}中e\u{301}文").unicodeScalars.map(\.value), [0x301, 0x4E2D, 0xE9, 0x6587])
        // Byte API, and its invalid-input error.
        XCTAssertEqual(try nfcNormalize(utf8: Array("A\u{30A}".utf8)), Array("\u{C5}".utf8))
        XCTAssertThrowsError(try nfcNormalize(utf8: [0x41, 0xFF]))
    }

    func testNFCAgainstFoundation() {
        // Foundation's NFC (tests may use Foundation) on characters that compose/decompose.
        // No precomposed LV syllable here: Foundation on Linux does not compose LV + T
        // (U+AC00 U+11A8 -> U+AC01, as Python and UAX #15 do; see testNFC).
        var rng = SplitMix64(seed: 42)
        let pool: [UInt32] = [0x41, 0x61, 0x65, 0x4F, 0x55, 0x300, 0x301, 0x302, 0x308, 0x323, 0x327,
                              0x1100, 0x1161, 0x11A8, 0x212B, 0x1E0A, 0x1E0C, 0x307, 0x3B1, 0x345,
                              0x313, 0x342, 0x4E00, 0x20]
        for _ in 0..<2000 {
            var scalars = String.UnicodeScalarView()
            for _ in 0..<Int(rng.next() % 12) {
                if let s = Unicode.Scalar(pool[Int(rng.next() % UInt64(pool.count))]) { scalars.append(s) }
            }
            let s = String(scalars)
            XCTAssertEqual(nfcNormalize(s).unicodeScalars.map(\.value),
                           s.precomposedStringWithCanonicalMapping.unicodeScalars.map(\.value),
                           "\(s.unicodeScalars.map { String($0.value, radix: 16) })")
        }
    }

    // MARK: Errors

    func testInvalidUTF8() throws {
        let tok = try tokenizer()
        let bad: [UInt8] = [0x68, 0x69, 0x20, 0xE4, 0xB8, 0x41]
        XCTAssertThrowsError(try bad.withUnsafeBytes { try tok.encode(utf8: $0) }) { error in
            XCTAssertEqual(error as? QwenError, .invalidArgument("invalid UTF-8 at byte offset 3"))
        }
        for seq: [UInt8] in [[0xC0, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0x80], [0xE0, 0x80, 0x80]] {
            XCTAssertThrowsError(try seq.withUnsafeBytes { try tok.encode(utf8: $0) })
        }
        let ok = Array("héllo 世界 😀".utf8)
        XCTAssertEqual(try ok.withUnsafeBytes { try tok.encode(utf8: $0) }, tok.encode("héllo 世界 😀"))
    }

    func testUnknownID() throws {
        let tok = try tokenizer()
        XCTAssertThrowsError(try tok.decode([1, 2, 999_999])) { error in
            XCTAssertEqual(error as? QwenError, .invalidArgument("unknown token id 999999"))
        }
        XCTAssertThrowsError(try tok.decode([-1]))
    }

    func testBadVocabularies() {
        func load(_ s: String) throws {
            var bytes = Array(s.utf8)
            _ = try bytes.withUnsafeMutableBytes { try Tokenizer(tiktokenBytes: UnsafeRawBufferPointer($0)) }
        }
        XCTAssertThrowsError(try load("QQ== 0\nQg 1\n")) { error in
            XCTAssertEqual((error as? QwenError)?.message, "qwen.tiktoken line 2: invalid base64")
        }
        XCTAssertThrowsError(try load("QQ== 0\nQg== x\n"))
        XCTAssertThrowsError(try load("QQ== 0\nQQ== 1\n"))
        XCTAssertThrowsError(try load("QQ== 0\nQg== 0\n"))
        XCTAssertThrowsError(try load(""))
        // A vocabulary lacking single-byte tokens is rejected rather than mis-encoding.
        XCTAssertThrowsError(try load("QQ== 0\n"))
        XCTAssertThrowsError(try Tokenizer(tiktokenFile: "/nonexistent/qwen.tiktoken")) { error in
            guard case .io = error as? QwenError else { return XCTFail("want .io, got \(error)") }
        }
        XCTAssertThrowsError(try Tokenizer(ggufTokens: ["a", "b"], tokenTypes: [1]))
    }

    // MARK: Special tokens

    func testSpecialTokens() throws {
        let tok = try tokenizer()
        let text = "<|im_start|>user\nhi<|im_end|>"
        let plain = tok.encode(text, parseSpecial: false)
        let parsed = tok.encode(text, parseSpecial: true)
        XCTAssertFalse(plain.contains(151_644))
        XCTAssertFalse(plain.contains(151_645))
        XCTAssertEqual(parsed.first, 151_644)
        XCTAssertEqual(parsed.last, 151_645)
        XCTAssertEqual(Array(parsed.dropFirst().dropLast()), tok.encode("user\nhi"))
        XCTAssertEqual(try tok.decode(parsed), Array(text.utf8))
        XCTAssertEqual(try tok.decode(plain), Array(text.utf8))
        XCTAssertEqual(try tok.decode(parsed, skipSpecial: true), Array("user\nhi".utf8))
        XCTAssertEqual(tok.encode("<|extra_204|><|extra_2|>", parseSpecial: true), [151_850, 151_648])
        XCTAssertEqual(tok.encode("<|im_start", parseSpecial: true), tok.encode("<|im_start"))
    }

    // MARK: Streaming

    func testStreamingDetokenizer() throws {
        let tok = try tokenizer()
        let text = "😀👨‍👩‍👧 中文字符 é Ω🎉 漢字かな交じり 🇯🇵"
        let ids = tok.encode(text)
        var stream = StreamingDetokenizer(tokenizer: tok)
        var out = ""
        var sawEmptyPush = false
        for id in ids {
            let piece = stream.push(id)
            if piece.isEmpty { sawEmptyPush = true }
            XCTAssertFalse(piece.unicodeScalars.contains("\u{FFFD}"), "partial character emitted")
            out += piece
        }
        out += stream.finish()
        XCTAssertEqual(out, text)
        XCTAssertTrue(sawEmptyPush, "expected some emoji or CJK character to span tokens")

        // Specials are skipped by default, kept on request.
        var s1 = StreamingDetokenizer(tokenizer: tok)
        XCTAssertEqual(s1.push(151_644), "")
        var s2 = StreamingDetokenizer(tokenizer: tok, skipSpecial: false)
        XCTAssertEqual(s2.push(151_644), "<|im_start|>")
    }

    func testStreamingInvalidBytesDoNotStall() {
        XCTAssertEqual(completePrefixLength([0x41, 0xE4, 0xB8]), 1)
        XCTAssertEqual(completePrefixLength([0x41, 0xE4, 0xB8, 0xAD]), 4)
        XCTAssertEqual(completePrefixLength([0x41, 0xFF]), 2)
        XCTAssertEqual(completePrefixLength([0xE0, 0x80]), 2)       // never completes
        XCTAssertEqual(completePrefixLength([0xF0, 0x9F, 0x98]), 0)
        XCTAssertEqual(completePrefixLength([0x80, 0x80, 0x80, 0x80, 0x80]), 5)
    }

    func testConcurrentEncode() throws {
        let tok = try tokenizer()
        let texts = ["Hello, world! 你好，世界。", "def f(x):\n    return x ** 2\n", "Привет 👋 e\u{301}", String(repeating: "数据 ", count: 200)]
        let expected = texts.map { tok.encode($0) }
        let mismatches = UnsafeMutablePointer<Int>.allocate(capacity: 8)
        mismatches.initialize(repeating: 0, count: 8)
        defer { mismatches.deallocate() }
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            for round in 0..<200 {
                let k = (worker + round) % texts.count
                if tok.encode(texts[k]) != expected[k] { mismatches[worker] += 1 }
            }
        }
        XCTAssertEqual((0..<8).reduce(0) { $0 + mismatches[$1] }, 0)
    }

    // MARK: GGUF vocabulary

    func testGGUFVocabularyMatchesTiktoken() throws {
        let tok = try tokenizer()
        guard FileManager.default.fileExists(atPath: ggufPath) else {
            return XCTFail("\(ggufPath) is missing: run scripts/fetch-model.sh first")
        }
        let gguf = try GGUFFile(path: ggufPath)
        guard let tokens = try gguf.stringArray("tokenizer.ggml.tokens") else {
            return XCTFail("no tokenizer.ggml.tokens")
        }
        let types = try gguf.int32Array("tokenizer.ggml.token_type")
        let fromGGUF = try Tokenizer(ggufTokens: tokens, tokenTypes: types)
        XCTAssertEqual(fromGGUF.regularCount, 151_643)
        XCTAssertEqual(fromGGUF.count, tokens.count)
        for id in 0..<Int32(tok.regularCount) where fromGGUF.tokenBytes(id) != tok.tokenBytes(id) {
            return XCTFail("token \(id) differs between the GGUF and qwen.tiktoken")
        }
        XCTAssertEqual(fromGGUF.specialTokenID("<|im_start|>"), 151_644)
        XCTAssertEqual(fromGGUF.specialTokenID("<|im_end|>"), 151_645)
        XCTAssertEqual(fromGGUF.specialTokenID("<|fim_prefix|>"), 151_659)
        XCTAssertEqual(fromGGUF.specialTokenID("<tool_call>"), 151_657)
        let sample = "<|im_start|>user\nHello, 世界! def f(x): return x**2<|im_end|>"
        XCTAssertEqual(fromGGUF.encode(sample, parseSpecial: true), tok.encode(sample, parseSpecial: true))
        XCTAssertEqual(fromGGUF.encode(sample), tok.encode(sample))
    }
}

/// Deterministic generator for the random tests.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
