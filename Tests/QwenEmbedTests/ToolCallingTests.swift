import Foundation
import XCTest
@testable import QwenEmbed

/// Function calling against Qwen's own server code: reply parsing and the JSON it embeds
/// (Tests/Fixtures/tool-calling.json, from scripts/gen-tool-fixture.py; the prompt ids
/// of the same fixture are checked through the C API in tests/python/test_tools.py).
final class ToolCallingTests: XCTestCase {
    func fixture() throws -> [String: Any] {
        let data = try Data(contentsOf: TestPaths.fixtures.appendingPathComponent("tool-calling.json"))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// Well-formed, partial and malformed replies split as `parse_response` splits them.
    func testRepliesParseAsQwensServerParsesThem() throws {
        let replies = try XCTUnwrap(fixture()["replies"] as? [[String: Any]])
        XCTAssertGreaterThan(replies.count, 10)
        for case_ in replies {
            let reply = try XCTUnwrap(case_["reply"] as? String)
            let parsed = ToolReply(parsing: reply)
            XCTAssertEqual(parsed.content, case_["content"] as? String, "content of \(reply.debugDescription)")
            if let call = case_["tool_call"] as? [String: String] {
                XCTAssertEqual(parsed.toolCall, ToolCall(name: call["name"] ?? "", arguments: call["arguments"] ?? ""),
                               "tool call of \(reply.debugDescription)")
            } else {
                XCTAssertNil(parsed.toolCall, "tool call of \(reply.debugDescription)")
            }
        }
    }

    /// Tool parameters are written byte for byte as Python's json.dumps(ensure_ascii=False).
    func testParametersAreWrittenAsPythonWritesThem() throws {
        let cases = try XCTUnwrap(fixture()["json_dumps"] as? [[String: String]])
        for case_ in cases {
            let text = try XCTUnwrap(case_["text"])
            XCTAssertEqual(try JSONValue.pythonDumps(text, context: "test"), case_["python"], "dumps of \(text)")
        }
        for bad in ["", "{", "{\"a\" 1}", "[1,]", "NaN", "\"\\ud800\"", "01", "{} {}", "{,}", "[,1]", "{\"a\":1,}", "[1 2]",
                    "{\"a\":1 \"b\":2}", "[", "{\"a\":"] {
            XCTAssertThrowsError(try ToolDefinition(name: "f", parameters: bad), "accepted \(bad.debugDescription)") { error in
                guard case QwenError.invalidArgument(let message) = error else { return XCTFail("\(error)") }
                XCTAssertTrue(message.contains("tool f"), message)
            }
        }
    }

    /// The ReAct conversation refuses what Qwen's server refuses, naming the rule.
    func testMalformedConversationsAreRefused() throws {
        let tool = try ToolDefinition(name: "f", description: "does f")
        let cases: [([ChatMessage], String)] = [
            ([ChatMessage(role: .tool, content: "42")], "tool result must follow"),
            ([ChatMessage(role: .assistant, content: "hi")], "assistant turn must follow"),
            ([ChatMessage(role: .user, content: "a"), ChatMessage(role: .assistant, content: "b")], "last message"),
            ([ChatMessage(role: .user, content: "a"), ChatMessage(role: .user, content: "b"),
              ChatMessage(role: .assistant, content: "c"), ChatMessage(role: .user, content: "d")], "exactly one user"),
        ]
        for (messages, expected) in cases {
            XCTAssertThrowsError(try ReActConversation(messages: messages, tools: [tool])) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(error) does not say \(expected)")
            }
        }
    }
}
