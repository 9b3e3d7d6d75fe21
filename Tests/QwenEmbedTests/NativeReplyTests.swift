import XCTest
@testable import QwenEmbed

/// Qwen2/2.5/3 replies split into text, thought and <tool_call> blocks, whole and as they
/// stream (every split of the text into pieces gives the same parts, joined).
final class NativeReplyTests: XCTestCase {
    /// The parts of `text` fed in pieces of `size` characters, adjacent text parts joined.
    func parts(_ text: String, tools: Bool = true, reasoning: Bool = false, size: Int) -> [ReplyPart] {
        var parser = NativeReplyParser(toolsOffered: tools, startsInReasoning: reasoning)
        var out: [ReplyPart] = []
        var rest = Substring(text)
        while !rest.isEmpty {
            out += parser.feed(String(rest.prefix(size)))
            rest = rest.dropFirst(size)
        }
        out += parser.finish()
        var joined: [ReplyPart] = []
        for part in out {
            switch (joined.last, part) {
            case (.content(let a)?, .content(let b)): joined[joined.count - 1] = .content(a + b)
            case (.reasoning(let a)?, .reasoning(let b)): joined[joined.count - 1] = .reasoning(a + b)
            default: joined.append(part)
            }
        }
        return joined
    }

    func check(_ text: String, tools: Bool = true, reasoning: Bool = false, _ expected: [ReplyPart],
               file: StaticString = #filePath, line: UInt = #line) {
        for size in [1, 2, 3, 5, 7, 11, 1000] {
            XCTAssertEqual(parts(text, tools: tools, reasoning: reasoning, size: size), expected, "pieces of \(size)", file: file, line: line)
        }
    }

    func testToolCallBlocks() {
        let weather = ToolCall(name: "get_weather", arguments: #"{"city": "Paris"}"#)
        check("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\":\"Paris\"}}\n</tool_call>", [.toolCall(weather)])
        check("Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
              [.content("Let me check.\n"), .toolCall(weather)])
        // Several per turn, the layout between them dropped; arguments keep their order.
        check("<tool_call>\n{\"name\": \"a\", \"arguments\": {\"z\": 1, \"a\": [1.5, \"é\"]}}\n</tool_call>\n"
              + "<tool_call>\n{\"name\": \"b\", \"arguments\": \"{\\\"x\\\": 2}\"}\n</tool_call>",
              [.toolCall(ToolCall(name: "a", arguments: #"{"z": 1, "a": [1.5, "é"]}"#)),
               .toolCall(ToolCall(name: "b", arguments: #"{"x": 2}"#))])
        // Not a call: the block stays text.
        check("<tool_call>\nnot json\n</tool_call>", [.content("<tool_call>\nnot json\n</tool_call>")])
        // Cut off after a complete object (max_tokens): still a call.
        check("<tool_call>\n{\"name\": \"a\", \"arguments\": {}}\n", [.toolCall(ToolCall(name: "a", arguments: "{}"))])
        // Text that only looks like the start of a tag.
        check("a < b and <tool", [.content("a < b and <tool")])
    }

    func testBareJSONCallsFromSmallModels() {
        let call = ToolCall(name: "get_weather", arguments: #"{"city": "Paris"}"#)
        check(#"{"name": "get_weather", "arguments": {"city": "Paris"}}"#, [.toolCall(call)])
        check("```json\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n```", [.toolCall(call)])
        check(#"[{"name": "get_weather", "arguments": {"city": "Paris"}}, {"name": "x", "arguments": {}}]"#,
              [.toolCall(call), .toolCall(ToolCall(name: "x", arguments: "{}"))])
        check("{\"name\": \"a\", \"arguments\": {\"s\": \"}{\"}}\n{\"name\": \"b\", \"arguments\": {}}",
              [.toolCall(ToolCall(name: "a", arguments: #"{"s": "}{"}"#)), .toolCall(ToolCall(name: "b", arguments: "{}"))])
        // A call followed by something else is not a list of calls: all text.
        check("{\"name\": \"a\", \"arguments\": {}}\n{\"temperature_c\": 21}", [.content("{\"name\": \"a\", \"arguments\": {}}\n{\"temperature_c\": 21}")])
        // Without tools, or JSON that is no call: text.
        check(#"{"name": "get_weather"}"#, tools: false, [.content(#"{"name": "get_weather"}"#)])
        check(#"{"answer": 42}"#, [.content(#"{"answer": 42}"#)])
    }

    func testThinking() {
        check("<think>\nThe user wants X.\n</think>\n\nHere is X.", [.reasoning("\nThe user wants X.\n"), .content("Here is X.")])
        // A template that opened <think> in the prompt: the reply starts inside the thought.
        check("Hmm.\n</think>\n\nDone.", reasoning: true, [.reasoning("Hmm.\n"), .content("Done.")])
        check("<think>\nCall it.\n</think>\n\n<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>",
              [.reasoning("\nCall it.\n"), .toolCall(ToolCall(name: "f", arguments: "{}"))])
        // Cut off while thinking.
        check("<think>\nStill", [.reasoning("\nStill")])
        check("No thought here.", [.content("No thought here.")])
    }

    func testReplyFormatsParseWholeReplies() {
        let message = ReplyFormat.native(toolsOffered: true, startsInReasoning: false).message(
            parsing: "<think>\nok\n</think>\n\nSure.\n<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}}\n</tool_call>")
        XCTAssertEqual(message, ChatMessage(role: .assistant, content: "Sure.\n",
                                            toolCalls: [ToolCall(name: "f", arguments: #"{"a": 1}"#)], reasoning: "\nok\n"))
    }
}
