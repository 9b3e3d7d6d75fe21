import Foundation
import XCTest
@testable import QwenEmbed

/// The grammar engine against llama.cpp's own expectations: every case of its
/// tests/test-grammar-integration.cpp (grammars and JSON schemas, with the strings each
/// must accept and refuse) and the grammars of its grammars/ folder
/// (Tests/Fixtures/grammar-cases.json, written by scripts/gen-grammar-fixtures.py).
final class GrammarTests: XCTestCase {
    struct Case {
        let description: String
        let grammar: String?
        let schema: String?
        let accept: [String]
        let reject: [String]
    }

    static func cases() throws -> [Case] {
        let url = TestPaths.fixtures.appendingPathComponent("grammar-cases.json")
        let list = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [[String: Any]] ?? []
        return list.map { c in
            Case(description: "\(c["source"] ?? ""): \(c["description"] ?? "")", grammar: c["grammar"] as? String,
                 schema: c["schema"] as? String, accept: c["accept"] as? [String] ?? [], reject: c["reject"] as? [String] ?? [])
        }
    }

    /// Whether `automaton` matches the whole of `text`.
    static func matches(_ automaton: GrammarAutomaton, _ text: String) throws -> Bool {
        let bytes = Array(text.utf8)
        let state = try bytes.withUnsafeBufferPointer { try automaton.next(automaton.start, bytes: $0) }
        return state != GrammarAutomaton.dead && automaton.ending(state).may
    }

    /// Cases outside what the engine takes, refused with a clear error rather than run
    /// differently: GBNF token references (`<think>`, `<[1000]>`: a grammar over bytes
    /// has no token ids).
    static let refused: Set<String> = ["simple grammar with tokens", "complex grammar with tokens"]

    func testLlamaCppCasesAcceptAndRefuseTheSameStrings() throws {
        let cases = try GrammarTests.cases()
        XCTAssertGreaterThan(cases.count, 50)
        var checked = 0, refused: [String] = []
        for c in cases {
            var text = c.grammar ?? ""
            let automaton: GrammarAutomaton
            do {
                if let schema = c.schema { text = try JSONSchemaGrammar.gbnf(schema: schema) }
                automaton = try GrammarAutomaton(GBNFParser.parse(text))
            } catch {
                refused.append(c.description)
                XCTAssertTrue(GrammarTests.refused.contains { c.description.hasSuffix(": " + $0) }, "\(c.description): \(error)\n\(text)")
                continue
            }
            for s in c.accept {
                XCTAssertTrue(try GrammarTests.matches(automaton, s), "\(c.description): refuses \(s.debugDescription)\n\(text)")
                checked += 1
            }
            for s in c.reject {
                XCTAssertFalse(try GrammarTests.matches(automaton, s), "\(c.description): accepts \(s.debugDescription)\n\(text)")
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 380)
        XCTAssertEqual(refused.count, GrammarTests.refused.count, refused.joined(separator: "\n"))
    }

    func testUTF8SequencesCoverExactlyTheRange() {
        var random = RandomSource(seed: 7)
        for _ in 0..<300 {
            var a = UInt32(random.next() % 0x110000), b = UInt32(random.next() % 0x110000)
            if random.next() % 2 == 0 { b = min(0x10FFFF, a + UInt32(random.next() % 300)) }
            if a > b { swap(&a, &b) }
            let sequences = utf8Sequences(a, b)
            for _ in 0..<50 {
                let cp = UInt32(random.next() % 0x110000)
                guard let scalar = Unicode.Scalar(cp) else { continue }
                let bytes = Array(String(scalar).utf8)
                let matched = sequences.contains { s in s.count == bytes.count && zip(s, bytes).allSatisfy { $0.contains($1) } }
                XCTAssertEqual(matched, cp >= a && cp <= b, "U+\(String(cp, radix: 16)) in \(a)...\(b)")
            }
        }
    }

    func testBadGrammarsNameWhereAndWhy() {
        let bad: [(String, String)] = [
            ("root ::= \"a", "line 1, column 10: unterminated string literal"),
            ("root ::= foo", "the rule 'foo' is used but never defined"),
            ("a ::= \"x\"", "no 'root' rule"),
            ("root ::= [a-", "unterminated character class"),
            ("root ::= (\"a\"", "expected ')'"),
            ("root ::= \"a\"{3,1}", "the maximum is below the minimum"),
            ("root ::= root \"a\" | \"b\"", "left-recursive"),
            ("root ::= x \"a\"\nx ::= \"b\"? root", "left-recursive"),
            ("root ::= <think> \"a\"", "token references"),
            ("root ::= \"\\q\"", "unknown escape"),
            ("root ::= *", "follows nothing"),
            ("", "the grammar is empty"),
        ]
        for (text, expected) in bad {
            XCTAssertThrowsError(try GrammarAutomaton(GBNFParser.parse(text)), text) { error in
                guard case QwenError.invalidArgument(let message) = error else { return XCTFail("\(error)") }
                XCTAssertTrue(message.contains(expected), "\(text.debugDescription): \(message)")
            }
        }
    }

    /// Found by fuzz_grammar (a JSON schema whose GBNF nested groups deeper than the stack
    /// held, under AddressSanitizer): groups nest at most `maxGroupDepth` levels, deeper
    /// text is refused naming where, and a nesting at the limit parses.
    func testGroupsNestedTooDeepAreRefusedNotOverflowed() throws {
        let limit = GBNFParser.maxGroupDepth
        func nested(_ depth: Int) -> String { "root ::= " + String(repeating: "(", count: depth) + "\"a\"" + String(repeating: ")", count: depth) }
        let automaton = try GrammarAutomaton(GBNFParser.parse(nested(limit)))
        XCTAssertTrue(try GrammarTests.matches(automaton, "a"))
        for depth in [limit + 1, 100_000] {
            XCTAssertThrowsError(try GBNFParser.parse(nested(depth))) { error in
                guard case QwenError.invalidArgument(let message) = error else { return XCTFail("\(error)") }
                XCTAssertTrue(message.contains("groups nest deeper than \(limit) levels"), message)
            }
        }
    }

    /// Found by fuzz_grammar: nullable repetitions with huge counts, nested, reach ~10^8
    /// stacks without reading a byte (and lower to ~10^4 rules, which the left-recursion
    /// check once walked quadratically: 5 s to refuse). Now refused by the per-call
    /// expansion budget, the check linear in the rules.
    func testNullableRepetitionsNestedDeepAreRefusedNotRun() throws {
        let fuzzed = "root ::= \t|||\t(\"5x0\"?){9791,}\n\t(||\t(\"5x0\"?){9791,}\n\t(\"5x0\"?){9791,}\n\"5x0\"?){9791,}\n"
        XCTAssertThrowsError(try GrammarAutomaton(GBNFParser.parse(fuzzed))) { error in
            guard case QwenError.invalidArgument(let message) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(message.contains("parser stacks in one step"), message)
        }
        // One level of the same is fine: ~10^4 stacks in the start state.
        let automaton = try GrammarAutomaton(GBNFParser.parse("root ::= (\"5x0\"?){9791,} \"!\""))
        XCTAssertTrue(try GrammarTests.matches(automaton, "5x05x0!"))
        XCTAssertFalse(try GrammarTests.matches(automaton, "5x05x!"))
        // A chain of 5,000 nullable rules back to root is left recursion; ending in a
        // byte, it is not.
        let chain = (1..<5000).map { "a\($0) ::= a\($0 + 1)" }.joined(separator: "\n")
        XCTAssertThrowsError(try GrammarAutomaton(GBNFParser.parse("root ::= a1 \"x\" | \"y\"\n\(chain)\na5000 ::= root |")))
        XCTAssertNoThrow(try GrammarAutomaton(GBNFParser.parse("root ::= a1 \"x\" | \"y\"\n\(chain)\na5000 ::= \"b\" |")))
    }

    /// JSON Schema `pattern`s against Python's `re` (Tests/Fixtures/regex-cases.json, from
    /// scripts/gen-regex-fixtures.py): the grammar accepts the JSON text of exactly the
    /// strings the regular expression finds a match in, escapes written as json.dumps
    /// writes them.
    func testPatternsMatchWhatPythonsRegexMatches() throws {
        let url = TestPaths.fixtures.appendingPathComponent("regex-cases.json")
        let cases = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [[String: Any]] ?? []
        XCTAssertGreaterThanOrEqual(cases.count, 30)
        for c in cases {
            let pattern = try XCTUnwrap(c["pattern"] as? String)
            let schema = String(decoding: try JSONSerialization.data(withJSONObject: ["type": "string", "pattern": pattern]), as: UTF8.self)
            let automaton = try GrammarAutomaton(GBNFParser.parse(JSONSchemaGrammar.gbnf(schema: schema)))
            for text in c["accept"] as? [String] ?? [] {
                XCTAssertTrue(try GrammarTests.matches(automaton, text), "\(pattern) should accept \(text)")
            }
            for text in c["reject"] as? [String] ?? [] {
                XCTAssertFalse(try GrammarTests.matches(automaton, text), "\(pattern) should refuse \(text)")
            }
        }
    }

    func testPatternsOutsideTheSubsetAreRefusedNamingTheConstruct() throws {
        let refused: [(String, String)] = [
            ("^(?=a)a$", "lookaround"), ("^(a)\\1$", "backreferences"), ("\\bword", "word boundaries"),
            ("^a^b$", "anchor '^'"), ("a$b", "anchor '$'"), ("^(a$)", "anchor '$'"), ("\\p{L}", "Unicode properties"),
            ("(a", "unbalanced '('"), ("a)", "unbalanced ')'"), ("[a-", "unterminated character class"),
            ("*a", "follows nothing"), ("a**", "follows a quantifier"), ("[z-a]", "out of order"), ("a{3,1}", "below the minimum"),
            ("a{10001}", "repetition above"), ("[]", "matches nothing"), ("\\q", "unknown escape"),
        ]
        for (pattern, expected) in refused {
            let schema = String(decoding: try JSONSerialization.data(withJSONObject: ["type": "string", "pattern": pattern]), as: UTF8.self)
            XCTAssertThrowsError(try JSONSchemaGrammar.gbnf(schema: schema), pattern) { error in
                guard case QwenError.invalidArgument(let message) = error else { return XCTFail("\(error)") }
                XCTAssertTrue(message.contains(expected) && message.contains("at #"), "\(pattern): \(message)")
            }
        }
        // Named groups are plain groups; `[^]` is any character.
        let schema = #"{"type": "string", "pattern": "^(?<year>\\d{4})-[^]$"}"#
        let automaton = try GrammarAutomaton(GBNFParser.parse(JSONSchemaGrammar.gbnf(schema: schema)))
        XCTAssertTrue(try GrammarTests.matches(automaton, #""2024-\"""#))
        XCTAssertFalse(try GrammarTests.matches(automaton, #""202-x""#))
    }

    /// A thinking model's reply: the reasoning block (optional, or already opened by the
    /// prompt) before the answer the grammar holds.
    func testReasoningBlockBeforeTheConstrainedAnswer() throws {
        let grammar = try GBNFParser.parse(#"root ::= "{" item "}"\#nitem ::= "a" | "b""#)
        let optional = try GrammarAutomaton(ReasoningGrammar.wrapped(grammar, mode: .optional))
        XCTAssertTrue(try GrammarTests.matches(optional, "{a}"))
        XCTAssertTrue(try GrammarTests.matches(optional, "<think>\nx < y, so a.\n</think>\n\n{a}"))
        XCTAssertFalse(try GrammarTests.matches(optional, "<think>no end {a}"))
        XCTAssertFalse(try GrammarTests.matches(optional, "<think>a</think>\n\n{c}"))
        let opened = try GrammarAutomaton(ReasoningGrammar.wrapped(grammar, mode: .opened))
        XCTAssertTrue(try GrammarTests.matches(opened, "so b</think>\n\n{b}"))
        XCTAssertFalse(try GrammarTests.matches(opened, "{b}"))
    }

    func testSchemasOutsideTheSubsetAreRefusedNamingThePath() {
        let bad: [(String, String)] = [
            (#"{"properties": {"a": {"pattern": "^a", "maxLength": 3}}}"#, "at #/properties/a: 'pattern' together with"),
            (#"{"properties": {"a": {"not": {}}}}"#, "at #/properties/a: the keyword 'not'"),
            (##"{"$ref": "#/$defs/missing"}"##, "points at nothing"),
            (#"{"type": "strin"}"#, "unknown type 'strin'"),
            (#"{"type": "object", "#, "json_schema:"),
        ]
        for (schema, expected) in bad {
            XCTAssertThrowsError(try JSONSchemaGrammar.gbnf(schema: schema)) { error in
                guard case QwenError.invalidArgument(let message) = error else { return XCTFail("\(error)") }
                XCTAssertTrue(message.contains(expected), "\(schema): \(message)")
            }
        }
    }

    func testRecursiveSchemasAndOptionalMembers() throws {
        let schema = ##"""
        {"$defs": {"Node": {"type": "object", "properties": {"name": {"type": "string"},
                   "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}, "required": ["name"]}},
         "$ref": "#/$defs/Node"}
        """##
        let automaton = try GrammarAutomaton(GBNFParser.parse(JSONSchemaGrammar.gbnf(schema: schema)))
        for ok in [#"{"name": "a"}"#, #"{"name": "a", "children": []}"#, #"{"name":"a","children":[{"name":"b","children":[{"name":"c"}]}]}"#] {
            XCTAssertTrue(try GrammarTests.matches(automaton, ok), ok)
        }
        for bad in [#"{}"#, #"{"children": []}"#, #"{"name": "a", "extra": 1}"#, #"{"name": "a", "children": [{}]}"#] {
            XCTAssertFalse(try GrammarTests.matches(automaton, bad), bad)
        }
    }
}
