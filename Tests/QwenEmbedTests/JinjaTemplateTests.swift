import Foundation
import XCTest
@testable import QwenEmbed

/// The chat-template interpreter against transformers' own renderer
/// (Tests/Fixtures/chat-template-cases.json, written by scripts/gen-template-fixtures.py),
/// plus what the fixture cannot show: provenance of the output, refused constructs, limits.
final class JinjaTemplateTests: XCTestCase {
    // MARK: Fixture

    /// One rendering transformers recorded: template text, variables, and the output or error.
    private struct FixtureCase {
        var name: String
        var source: String
        var context: [String: JinjaValue]
        var expected: String?
        var error: String?
        var errorType: String?
    }

    private static func string(_ value: JinjaValue?) -> String? {
        if case .string(let s)? = value { return s.text }
        return nil
    }

    private static func loadFixture() throws -> (cases: [FixtureCase], snippets: [FixtureCase]) {
        let directory = TestPaths.fixtures
        let text = try String(contentsOf: directory.appendingPathComponent("chat-template-cases.json"), encoding: .utf8)
        guard case .dictionary(let fixture) = try JinjaValue.parseJSON(text) else { throw XCTSkip("fixture is not an object") }
        var sources: [String: String] = [:]
        func entries(_ key: String, source: (JinjaDict) throws -> (String, String)) throws -> [FixtureCase] {
            guard case .list(let items)? = fixture[key] else { return [] }
            return try items.compactMap { item in
                guard case .dictionary(let entry) = item else { return nil }
                var context: [String: JinjaValue] = [:]
                if case .dictionary(let variables)? = entry["context"] {
                    for (key, value) in variables.entries { context[string(key) ?? ""] = value }
                }
                let (name, text) = try source(entry)
                return FixtureCase(name: name, source: text, context: context, expected: string(entry["expected"]),
                                   error: string(entry["error"]), errorType: string(entry["errorType"]))
            }
        }
        let cases = try entries("cases") { entry in
            let template = string(entry["template"]) ?? ""
            if sources[template] == nil {
                sources[template] = try String(contentsOf: directory.appendingPathComponent("templates/" + template), encoding: .utf8)
            }
            return ("\(template) / \(string(entry["name"]) ?? "")", sources[template] ?? "")
        }
        let snippets = try entries("snippets") { entry in (string(entry["name"]) ?? "", string(entry["source"]) ?? "") }
        return (cases, snippets)
    }

    private func check(_ fixtureCase: FixtureCase, file: StaticString = #filePath, line: UInt = #line) {
        do {
            let segments = try JinjaTemplate(source: fixtureCase.source).render(fixtureCase.context)
            let output = segments.map(\.text).joined()
            guard let expected = fixtureCase.expected else {
                return XCTFail("\(fixtureCase.name): rendered, transformers raised \(fixtureCase.error ?? "")", file: file, line: line)
            }
            XCTAssert(Array(output.utf8) == Array(expected.utf8),
                      "\(fixtureCase.name):\n got      \(output.debugDescription)\n expected \(expected.debugDescription)",
                      file: file, line: line)
        } catch {
            guard fixtureCase.expected == nil else {
                return XCTFail("\(fixtureCase.name): \(error)", file: file, line: line)
            }
            if fixtureCase.errorType == "TemplateError" {  // raise_exception: the message is the template's
                XCTAssertEqual(error as? QwenError, .invalidArgument("chat template: \(fixtureCase.error ?? "")"),
                               fixtureCase.name, file: file, line: line)
            } else {
                guard case .invalidArgument? = error as? QwenError else {
                    return XCTFail("\(fixtureCase.name): \(error), transformers raised \(fixtureCase.error ?? "")", file: file, line: line)
                }
            }
        }
    }

    func testRendersEveryTemplateCaseAsTransformers() throws {
        let fixture = try Self.loadFixture()
        XCTAssertGreaterThan(fixture.cases.count, 300)
        let templates = Set(fixture.cases.map { $0.name.components(separatedBy: " / ")[0] })
        XCTAssertEqual(templates.count, 6, "\(templates)")
        for fixtureCase in fixture.cases { check(fixtureCase) }
    }

    func testRendersEverySnippetAsJinja2() throws {
        let fixture = try Self.loadFixture()
        XCTAssertGreaterThan(fixture.snippets.count, 100)
        for snippet in fixture.snippets { check(snippet) }
    }

    // MARK: Semantics

    private func render(_ source: String, _ context: [String: JinjaValue] = [:]) throws -> String {
        try JinjaTemplate(source: source).render(context).map(\.text).joined()
    }

    func testWhitespaceControlMatchesJinja2() throws {
        // trim_blocks drops the newline after a block tag; lstrip_blocks the indentation before it.
        XCTAssertEqual(try render("{% if true %}\nA\n{% endif %}\nB\n"), "A\nB")
        XCTAssertEqual(try render("  {% if true %}\n    X\n  {% endif %}\nY"), "    X\nY")
        XCTAssertEqual(try render("  {{ 'v' }}\n"), "  v")  // not for expressions
        XCTAssertEqual(try render("a  {% if true %}b{% endif %}"), "a  b")  // only at the start of a line
        XCTAssertEqual(try render("A   \n  {{- 'b' -}}  \n  C"), "AbC")
        XCTAssertEqual(try render("  {%+ if true %}x{% endif +%}\ny"), "  x\ny")
        XCTAssertEqual(try render("a\n  {# comment #}\nb"), "a\nb")
        XCTAssertEqual(try render("{% raw %}{{ x }}{% endraw %}"), "{{ x }}")
        XCTAssertEqual(try render("a\r\nb\n"), "a\nb")
    }

    func testLoopVariablesAndNamespace() throws {
        XCTAssertEqual(try render("{% for x in 'abc' %}{{ loop.index }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }};{% endfor %}"),
                       "12TrueFalse;21FalseFalse;30FalseTrue;")
        XCTAssertEqual(try render("{% set ns = namespace(n=0) %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}"), "6")
        XCTAssertEqual(try render("{% set x = 1 %}{% for i in [2] %}{% set x = i %}{% endfor %}{{ x }}"), "1")
        XCTAssertEqual(try render("{% for m in l[::-1] if m != 2 %}{{ m }}{{ loop.length }}{% endfor %}", ["l": .list([.int(1), .int(2), .int(3)])]),
                       "3212")
    }

    func testPythonValuesPrintAsPython() throws {
        XCTAssertEqual(try render("{{ [1, 'a', none, true, 1.0, 1e-06, 1e16, 0.1 + 0.2] }}"),
                       "[1, 'a', None, True, 1.0, 1e-06, 1e+16, 0.30000000000000004]")
        XCTAssertEqual(try render("{{ d | tojson }}|{{ d }}", ["d": try JinjaValue.parseJSON(#"{"b": 1.0, "a": [1, "é\n"], "c": null}"#)]),
                       #"{"b": 1.0, "a": [1, "é\n"], "c": null}|{'b': 1.0, 'a': [1, 'é\n'], 'c': None}"#)
        XCTAssertEqual(try render("{{ '  x ' | trim }}|{{ 'a,b'.split(',')[-1] }}|{{ 'Ab'.upper() }}|{{ 7 // -2 }}|{{ 7 / 2 }}"), "x|b|AB|-4|3.5")
    }

    func testParseJSONFollowsPython() throws {
        let value = try JinjaValue.parseJSON(#"{"z": 1, "a": 1.0, "z": 2, "u": "\ud83d\ude00\u00e9", "n": [1e2, -0, NaN, true]}"#)
        guard case .dictionary(let dict) = value else { return XCTFail("not a dict") }
        XCTAssertEqual(dict.keys.compactMap { if case .string(let s) = $0 { return s.text } else { return nil } }, ["z", "a", "u", "n"])
        XCTAssertEqual(try render("{{ v }}", ["v": value]), "{'z': 2, 'a': 1.0, 'u': '😀é', 'n': [100.0, 0, nan, True]}")
        for bad in ["", "{", "[1,]", "{\"a\" 1}", "01", "\"\u{01}\"", "[1] x", "\"\\x\""] {
            XCTAssertThrowsError(try JinjaValue.parseJSON(bad), bad)
        }
        XCTAssertThrowsError(try JinjaValue.parseJSON(String(repeating: "[", count: 500) + String(repeating: "]", count: 500)))
    }

    // MARK: Provenance

    func testCallerTextIsDataAndTemplateTextIsNot() throws {
        let template = try JinjaTemplate(source: "{{- '<|im_start|>user\\n' + message.content + '<|im_end|>\\n' }}")
        let segments = try template.render(["message": .dict([("content", .data("hi<|im_end|>"))])])
        XCTAssertEqual(segments, [
            TemplateSegment(text: "<|im_start|>user\n", isData: false),
            TemplateSegment(text: "hi<|im_end|>", isData: true),
            TemplateSegment(text: "<|im_end|>\n", isData: false),
        ])
    }

    func testProvenanceFollowsCharacters() throws {
        func segments(_ source: String, _ context: [String: JinjaValue]) throws -> [TemplateSegment] {
            try JinjaTemplate(source: source).render(context)
        }
        let content = JinjaValue.data("<think>\nplan\n</think>\n\nanswer <tool_call>")
        // Slicing, split and strip keep each character's provenance.
        XCTAssertEqual(try segments("[{{ c.split('</think>')[-1].lstrip('\\n') }}]", ["c": content]),
                       [TemplateSegment(text: "[", isData: false), TemplateSegment(text: "answer <tool_call>", isData: true),
                        TemplateSegment(text: "]", isData: false)])
        // A transformation of mixed text is data as a whole.
        XCTAssertEqual(try segments("{{ ('<b>' ~ c) | upper }}", ["c": .data("x")]), [TemplateSegment(text: "<B>X", isData: true)])
        // tojson: the template's punctuation, the caller's strings (keys included).
        XCTAssertEqual(try segments("{{ t | tojson }}", ["t": .dict([("name", .data("<|im_end|>"))])]), [
            TemplateSegment(text: "{\"", isData: false), TemplateSegment(text: "name", isData: true),
            TemplateSegment(text: "\": \"", isData: false), TemplateSegment(text: "<|im_end|>", isData: true),
            TemplateSegment(text: "\"}", isData: false),
        ])
        // Special tokens passed as literals stay literal; a macro's output keeps its parts'.
        XCTAssertEqual(try segments("{% macro wrap(x) %}<{{ x }}>{% endmacro %}{{ bos_token }}{{ wrap(c) | trim }}",
                                    ["bos_token": .literal("<s>"), "c": .data(" v ")]),
                       [TemplateSegment(text: "<s><", isData: false), TemplateSegment(text: " v ", isData: true),
                        TemplateSegment(text: ">", isData: false)])
        // Numbers and booleans from the caller cannot spell tokens; they print as template text.
        XCTAssertEqual(try segments("{{ n }}{{ c | length }}", ["n": .int(3), "c": .data("ab")]),
                       [TemplateSegment(text: "32", isData: false)])
    }

    func testQwen35ImagePlaceholdersStayTemplateText() throws {
        let source = try String(contentsOf: TestPaths.fixtures.appendingPathComponent("templates/Qwen3.5-4B.jinja"), encoding: .utf8)
        let message = JinjaValue.dict([("role", .literal("user")), ("content", .list([
            .dict([("type", .literal("image"))]), .dict([("type", .literal("text")), ("text", .data("what is <|image_pad|>?"))]),
        ]))])
        let segments = try JinjaTemplate(source: source).render(["messages": .list([message]), "add_generation_prompt": .bool(true)])
        XCTAssertEqual(segments.filter(\.isData).map(\.text), ["what is <|image_pad|>?"])
        XCTAssertEqual(segments.map(\.text).joined(),
                       "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>what is <|image_pad|>?<|im_end|>\n<|im_start|>assistant\n<think>\n")
    }

    func testSegmentsAreMergedAndNeverEmpty() throws {
        let segments = try JinjaTemplate(source: "{{ a }}{{ '' }}{{ b }}x{{ '' }}y{{ c }}")
            .render(["a": .data("1"), "b": .data("2"), "c": .data("")])
        XCTAssertEqual(segments, [TemplateSegment(text: "12", isData: true), TemplateSegment(text: "xy", isData: false)])
        XCTAssertEqual(try JinjaTemplate(source: "{% if false %}x{% endif %}").render([:]), [])
    }

    // MARK: Errors

    private func assertUnsupported(_ source: String, naming construct: String, line: Int = 1,
                                   file: StaticString = #filePath, lineNumber: UInt = #line) {
        XCTAssertThrowsError(try JinjaTemplate(source: source), file: file, line: lineNumber) { error in
            guard case .unsupportedModel(let message)? = error as? QwenError else {
                return XCTFail("\(error) is not unsupportedModel", file: file, line: lineNumber)
            }
            XCTAssert(message.hasPrefix("chat template line \(line): ") && message.contains(construct),
                      "\(message) does not name \(construct) at line \(line)", file: file, line: lineNumber)
        }
    }

    func testRefusesConstructsOutsideTheSubsetByName() {
        assertUnsupported("{% include 'x.jinja' %}", naming: "the `include` tag is not supported")
        assertUnsupported("{% extends 'base' %}", naming: "the `extends` tag")
        assertUnsupported("{% import 'm' as m %}", naming: "the `import` tag")
        assertUnsupported("{% call m() %}x{% endcall %}", naming: "the `call` tag")
        assertUnsupported("{% block b %}{% endblock %}", naming: "the `block` tag")
        assertUnsupported("a\n{{ x | wordwrap(10) }}", naming: "the filter `wordwrap`", line: 2)
        assertUnsupported("{{ x | from_json }}", naming: "the filter `from_json`")
        assertUnsupported("\n\n{{ s.zfill(5) }}", naming: "the method `zfill`", line: 3)
        assertUnsupported("{% set _ = l.append(1) %}", naming: "the method `append`")
        assertUnsupported("{{ x is divisibleby3 }}", naming: "the test `divisibleby3`")
        assertUnsupported("{% for x in l recursive %}{% endfor %}", naming: "a recursive `for` loop")
        assertUnsupported("{{ cycler('a', 'b') }}", naming: "the function `cycler`")
        assertUnsupported("{% macro m() %}{{ varargs }}{% endmacro %}", naming: "`varargs` in a macro")
        assertUnsupported("{{ f(*args) }}", naming: "`*` arguments")
        assertUnsupported("{{ 99999999999999999999 }}", naming: "an integer literal beyond 64 bits")
    }

    func testSyntaxErrorsAreUnsupportedWithTheLine() {
        for (source, line) in [("{% if x %}", 1), ("a\n{{ 1 + }}", 2), ("{# open", 1), ("{% endif %}", 1), ("{{ (1 }}", 1),
                               ("{% for %}{% endfor %}", 1), ("{{ 'a' 'b }}", 1), ("{% break %}", 1), ("{{ '\\x4' }}", 1)] {
            XCTAssertThrowsError(try JinjaTemplate(source: source), source) { error in
                guard case .unsupportedModel(let message)? = error as? QwenError else { return XCTFail("\(source): \(error)") }
                XCTAssert(message.hasPrefix("chat template line \(line): "), "\(source): \(message)")
            }
        }
    }

    func testRaiseExceptionAndRuntimeErrorsAreInvalidArguments() throws {
        let template = try JinjaTemplate(source: "{% if messages[0].role != 'user' %}{{ raise_exception('Roles must alternate.') }}{% endif %}")
        XCTAssertThrowsError(try template.render(["messages": .list([.dict([("role", .literal("system"))])])])) { error in
            XCTAssertEqual(error as? QwenError, .invalidArgument("chat template: Roles must alternate."))
        }
        XCTAssertThrowsError(try JinjaTemplate(source: "\n{{ m.content + 1 }}").render(["m": .dict([("content", .data("x"))])])) { error in
            XCTAssertEqual(error as? QwenError, .invalidArgument("chat template: line 2: can only concatenate str (not \"int\") to str"))
        }
        XCTAssertThrowsError(try JinjaTemplate(source: "{{ m.missing.deeper }}").render(["m": .dict([])])) { error in
            XCTAssertEqual(error as? QwenError, .invalidArgument("chat template: line 1: 'dict object' has no attribute 'missing'"))
        }
    }

    // MARK: Robustness

    private func assertLimited(_ source: String, _ context: [String: JinjaValue] = [:], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try JinjaTemplate(source: source).render(context), source, file: file, line: line) { error in
            guard error is QwenError else { return XCTFail("\(error)", file: file, line: line) }
        }
    }

    func testRunawayTemplatesFailInsteadOfExhaustingMemoryOrStack() {
        assertLimited("{% for i in range(100000) %}{{ s }}{% endfor %}", ["s": .data(String(repeating: "x", count: 1000))])  // > 64 MiB
        assertLimited("{{ 'x' * 100000000 }}")
        assertLimited("{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}")
        assertLimited("{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = [ns.l] %}{% endfor %}")
        assertLimited("{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}")
        assertLimited("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}")
        XCTAssertThrowsError(try JinjaTemplate(source: "{{ " + String(repeating: "(", count: 5000) + "1" + String(repeating: ")", count: 5000) + " }}"))
        XCTAssertThrowsError(try JinjaTemplate(source: String(repeating: "{% if 1 %}", count: 1000)))
        XCTAssertThrowsError(try JinjaTemplate(source: "{{ " + String(repeating: "not ", count: 5000) + "1 }}"))
        // Chains that parse in a loop (not by recursion) must not build deeper trees either.
        for chain in [" + 1", " | trim", ".a", "[0]", "()", " and 1", " ** 1", " if 1"] {
            XCTAssertThrowsError(try JinjaTemplate(source: "{{ 1" + String(repeating: chain, count: 100_000) + " }}"), chain)
        }
        assertLimited("{{ range(-9223372036854775807, 9223372036854775807) | length }}{{ 'abc'[::x] }}", ["x": .int(Int.min)])
        assertLimited("{{ 'abc'[::x] }}{{ {} | tojson(indent=x) }}", ["x": .int(Int.max)])
    }

    /// Random bytes and random template-like token soup never trap (they render or throw).
    func testRandomInputNeverTraps() {
        var random = SeededGenerator(seed: 20_251_203)
        let pieces = ["{{", "}}", "{%", "%}", "{#", "#}", "-", "+", " if ", " for ", " in ", " endif ", " endfor ", " set ",
                      " macro ", " endmacro ", "(", ")", "[", "]", "{", "}", ":", ",", "'", "\"", "\\", "|", ".", "~", "*",
                      "x", "loop", "ns", "1", "-1", "0.5", " is ", " not ", "none", "\n", " ", "é", "raw", "endraw", "tojson",
                      "trim", "items", "namespace(", "range(", "[::-1]", " and ", " or ", " else ", "=", "==", "**", "//", "%"]
        let context: [String: JinjaValue] = ["x": .list([.data("a"), .int(-3), .double(0.5)]), "ns": .dict([("k", .none)])]
        for _ in 0..<3000 {
            var source = ""
            if Bool.random(using: &random) {
                for _ in 0..<Int.random(in: 0..<40, using: &random) { source += pieces.randomElement(using: &random) ?? "" }
            } else {
                source = String(decoding: (0..<Int.random(in: 0..<60, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) },
                                as: UTF8.self)
            }
            if let template = try? JinjaTemplate(source: source) { _ = try? template.render(context) }
        }
    }

    /// The nesting limits keep a render inside a small thread stack (512 KiB, as a secondary
    /// thread of some platforms gets), in a debug build.
    func testDeepTemplatesFitASmallThreadStack() throws {
        let deepest = String(repeating: "(", count: 50) + "x" + String(repeating: ")", count: 50)
        let sources = [
            "{% macro r(n) %}{% if n > 0 %}{{ r(n - 1) }}{% endif %}{% endmacro %}{{ r(1000) }}",
            String(repeating: "{% for i in [1] %}{% if true %}", count: 30) + "{{ \(deepest) }}"
                + String(repeating: "{% endif %}{% endfor %}", count: 30),
            "{{ " + String(repeating: "[", count: 150) + String(repeating: "]", count: 150) + " }}",
        ]
        let deepJSON = String(repeating: "[", count: JinjaFormat.maxDepth - 1) + String(repeating: "]", count: JinjaFormat.maxDepth - 1)
        let done = expectation(description: "rendered")
        let thread = Thread {
            for source in sources { _ = try? JinjaTemplate(source: source).render(["x": .int(1)]) }
            _ = try? JinjaValue.parseJSON(deepJSON)  // parsed on the caller's thread
            done.fulfill()
        }
        thread.stackSize = 512 << 10
        thread.start()
        wait(for: [done], timeout: 120)
    }

    func testOneTemplateRendersOnManyThreads() throws {
        let source = try String(contentsOf: TestPaths.fixtures.appendingPathComponent("templates/Qwen-Qwen3-0.6B.jinja"), encoding: .utf8)
        let template = try JinjaTemplate(source: source)
        let context: [String: JinjaValue] = [
            "messages": .list([.dict([("role", .literal("user")), ("content", .data("hello"))])]),
            "add_generation_prompt": .bool(true), "enable_thinking": .bool(false),
        ]
        let expected = try template.render(context)
        let results = UnsafeSendableBox(Array(repeating: [TemplateSegment](), count: 8))
        DispatchQueue.concurrentPerform(iterations: 8) { index in
            results.set(index, (try? template.render(context)) ?? [])
        }
        XCTAssertEqual(results.values, Array(repeating: expected, count: 8))
    }
}

/// A seeded generator (SplitMix64), so that a failing random input can be reproduced.
private struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Results written by concurrent workers, each to its own slot, under a lock.
private final class UnsafeSendableBox: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [[TemplateSegment]]

    init(_ values: [[TemplateSegment]]) {
        storage = values
    }

    func set(_ index: Int, _ value: [TemplateSegment]) {
        lock.lock()
        storage[index] = value
        lock.unlock()
    }

    var values: [[TemplateSegment]] {
        lock.lock()
        defer { lock.unlock() }
        return storage
    }
}
