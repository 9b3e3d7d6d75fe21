import Foundation
import XCTest
@testable import QwenEmbed

/// Sampler, stop-string filter and ChatML rendering, without running the model.
final class GenerationTests: XCTestCase {
    func sample(_ logits: [Float], _ parameters: SamplingParameters, history: [Int32] = [], seed: UInt64 = 1) -> Int32? {
        var copy = logits
        var sampler = Sampler(parameters: parameters, seed: seed)
        return copy.withUnsafeMutableBufferPointer { sampler.sample($0.baseAddress!, vocab: $0.count, history: history) }
    }

    func testGreedyAndRepetitionPenalty() {
        let logits: [Float] = [1.0, 3.0, 2.9, -1.0]
        XCTAssertEqual(sample(logits, .greedy), 1)
        var penalised = SamplingParameters.greedy
        penalised.repetitionPenalty = 1.1
        // 3.0 / 1.1 = 2.727 < 2.9: the repeated token loses its lead.
        XCTAssertEqual(sample(logits, penalised, history: [1, 1, 1]), 2)
        // Negative logits are multiplied (made less likely), as HF does.
        var logitsNeg: [Float] = [-1.0, -1.05]
        var sampler = Sampler(parameters: penalised, seed: 1)
        _ = logitsNeg.withUnsafeMutableBufferPointer { sampler.sample($0.baseAddress!, vocab: 2, history: [0]) }
        XCTAssertEqual(logitsNeg[0], -1.1, accuracy: 1e-6)
    }

    /// NaN or infinite logits (a checkpoint with broken weights) give no token, greedy or
    /// sampled, instead of an arbitrary one or a trap.
    func testNonFiniteLogitsGiveNoToken() {
        for bad in [Float.nan, .infinity, -.infinity] {
            for parameters in [SamplingParameters.greedy, SamplingParameters()] {
                XCTAssertNil(sample([1, bad, 2], parameters))
                XCTAssertNil(sample([bad, bad, bad], parameters))
            }
        }
    }

    /// The 16-wide scans (`allFinite`, `argmax`) against one value at a time, at lengths
    /// around whole blocks of 16: a non-finite value found at every position, and the
    /// first of equal largest values (also -infinity, a grammar's mask) chosen.
    func testWideScansEqualOneValueAtATime() {
        for count in [1, 2, 15, 16, 17, 31, 32, 33, 47, 100] {
            var logits = (0..<count).map { Float(sin(Double($0) * 1.7)) }
            XCTAssertTrue(Sampler.allFinite(logits, count), "count \(count)")
            for position in 0..<count {
                for bad in [Float.nan, .infinity, -.infinity] {
                    var broken = logits
                    broken[position] = bad
                    XCTAssertFalse(Sampler.allFinite(broken, count), "count \(count), \(bad) at \(position)")
                }
            }
            let top = logits.max()!
            XCTAssertEqual(Sampler.argmax(logits, vocab: count), Int32(logits.firstIndex(of: top)!), "count \(count)")
            for (first, second) in [(0, count - 1), (count / 2, count - 1), (count - 2, count - 1)] where first >= 0 && first < second {
                logits[first] = 5; logits[second] = 5
                XCTAssertEqual(Sampler.argmax(logits, vocab: count), Int32(first), "count \(count), ties at \(first), \(second)")
                logits[first] = 0; logits[second] = 0
            }
            XCTAssertEqual(Sampler.argmax([Float](repeating: -.infinity, count: count), vocab: count), 0)
        }
    }

    func testTopKOneAndTinyTopPAreArgmax() {
        let logits: [Float] = (0..<100).map { Float(sin(Double($0))) }
        let best = Int32(logits.indices.max { logits[$0] < logits[$1] }!)
        var p = SamplingParameters()
        p.topK = 1
        for seed in 1...20 { XCTAssertEqual(sample(logits, p, seed: UInt64(seed)), best) }
        p = SamplingParameters()
        p.topP = 0.0001
        for seed in 1...20 { XCTAssertEqual(sample(logits, p, seed: UInt64(seed)), best) }
    }

    func testSamplingFollowsTheDistributionAndIsReproducible() {
        // Two tokens with probabilities 0.75 / 0.25 (logit difference ln 3).
        let logits: [Float] = [Float(log(3.0)), 0, -50]
        var p = SamplingParameters()
        p.topP = 1
        p.repetitionPenalty = 1
        var sampler = Sampler(parameters: p, seed: 42)
        var counts = [0, 0, 0]
        for _ in 0..<20000 {
            var l = logits
            counts[Int(l.withUnsafeMutableBufferPointer { sampler.sample($0.baseAddress!, vocab: 3, history: []) } ?? 2)] += 1
        }
        XCTAssertEqual(Double(counts[0]) / 20000, 0.75, accuracy: 0.015)
        XCTAssertEqual(counts[2], 0)
        XCTAssertEqual(sample(logits, p, seed: 9), sample(logits, p, seed: 9))

        // top_p 0.7 keeps only the 0.75 token (HF drops the tail whose mass <= 1 - top_p).
        p.topP = 0.7
        for seed in 1...50 { XCTAssertEqual(sample(logits, p, seed: UInt64(seed)), 0) }
    }

    func testStopStringFilterHoldsBackAndCuts() {
        var f = StopStringFilter(stops: ["</end>", "STOP"])
        var out = ""
        for piece in ["Hello <", "/en", "d> never"] {
            let (emit, stopped) = f.push(piece)
            out += emit
            if stopped { break }
            XCTAssertFalse(emit.contains("<"), "held back a possible stop prefix: \(emit)")
        }
        XCTAssertEqual(out, "Hello ")

        f = StopStringFilter(stops: ["STOP"])
        XCTAssertEqual(f.push("a ST").emit, "a ")
        XCTAssertEqual(f.push("ay").emit, "STay")
        XCTAssertEqual(f.push(" ok S").emit, " ok ")
        XCTAssertEqual(f.finish(), "S")

        f = StopStringFilter(stops: [])
        XCTAssertEqual(f.push("é🎉").emit, "é🎉")
    }

    /// A chat template that renders nothing (a file can carry one) is a clear error, not
    /// an empty prompt handed to the engine (make fuzz's fuzz_template found that trap).
    func testATemplateThatRendersNothingIsRefused() throws {
        let tokenizer = try Tokenizer(tiktokenFile: TestPaths.requireFile(TestPaths.tiktoken))
        let format = ChatFormat.template(try FileChatTemplate(source: "{# nothing #}", tokenizer: tokenizer, tokens: [:]))
        XCTAssertThrowsError(try format.prompt(system: nil, conversation: [ChatMessage(role: .user, content: "hi")], tools: [],
                                               enableThinking: nil, maxWindow: 6144, contextLimit: 100)) { error in
            guard case QwenError.invalidArgument(let message) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(message.contains("empty prompt"), message)
        }
    }

    func testChatTemplateMatchesMakeContext() throws {
        let tokenizer = try Tokenizer(tiktokenFile: TestPaths.requireFile(TestPaths.tiktoken))
        let template = try MakeContext(tokenizer: tokenizer)
        let lines = try String(contentsOf: TestPaths.fixtures.appendingPathComponent("chatml-cases.jsonl"), encoding: .utf8)
            .split(separator: "\n")
        XCTAssertEqual(lines.count, 4)
        for line in lines {
            let c = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            var messages: [ChatMessage] = []
            for pair in c["history"] as? [[String]] ?? [] {
                messages.append(ChatMessage(role: .user, content: pair[0]))
                messages.append(ChatMessage(role: .assistant, content: pair[1]))
            }
            messages.append(ChatMessage(role: .user, content: c["query"] as! String))
            let (ids, _) = try template.render(system: c["system"] as! String, messages: messages,
                                               maxWindow: c["max_window_size"] as! Int, contextLimit: 100_000)
            XCTAssertEqual(ids, (c["ids"] as! [Int]).map(Int32.init), c["name"] as! String)
        }
        // A query that cannot fit is CONTEXT_FULL, never a silent cut.
        XCTAssertThrowsError(try template.render(system: "s", messages: [ChatMessage(role: .user, content: String(repeating: "word ", count: 100))],
                                                 maxWindow: 6144, contextLimit: 50)) { error in
            guard case QwenError.contextFull = error else { return XCTFail("\(error)") }
        }
    }
}
