/// Grammars that force a reply to be a tool call (`tool_choice: "required"` or a named
/// tool), in the shape the model's own prompt asks for, each call's arguments held to
/// its tool's parameter schema (`JSONSchemaGrammar`; a schema outside its subset falls
/// back to any JSON object):
/// - Qwen2/2.5/3 (`ReplyFormat.native`): `<tool_call>\n{"name": NAME, "arguments": ARGS}\n</tool_call>`
///   as their chat templates write it (a thinking model's reasoning block before it is
///   added as for any grammar: `ReasoningGrammar`);
/// - Qwen (v1) (`ReplyFormat.react`): `Thought: ...\nAction: NAME\nAction Input: ARGS\nObservation:`,
///   the ReAct text Qwen's `openai_api.py` prompt asks for ("Observation:" is its stop string).
enum ToolCallGrammar {
    static func gbnf(tools: [ToolDefinition], format: ReplyFormat) -> String {
        var rules: [String] = []
        var calls: [String] = []
        for (i, tool) in tools.enumerated() {
            var arguments = "t\(i)-args"
            if var builder = try? JSONSchemaGrammar(schemaText: tool.parametersJSON, prefix: "t\(i)-"),
               let root = try? builder.rootRule(named: "args") {
                arguments = root
                rules.append(builder.text)
            } else {
                var any = try? JSONSchemaGrammar(schemaText: #"{"type": "object"}"#, prefix: "t\(i)-")
                arguments = (try? any?.rootRule(named: "args")) ?? arguments
                rules.append(any?.text ?? "")
            }
            let name = JSONSchemaGrammar.literal(tool.name)
            switch format {
            case .native:
                let head = JSONSchemaGrammar.literal("{\"name\": \(JSONValue.quoted(tool.name)), \"arguments\": ")
                calls.append("\(head) \(arguments) \"}\"")
            case .react:
                calls.append("\(name) \"\\nAction Input: \" \(arguments) \"\\nObservation:\"")
            }
        }
        let call = "call ::= " + calls.joined(separator: " | ")
        let root: String
        switch format {
        case .native:
            root = #"root ::= "<tool_call>\n" call "\n</tool_call>""#
        case .react:
            root = #"root ::= "Thought: " [^\n]* "\nAction: " call"#
        }
        return ([root, call] + rules).joined(separator: "\n") + "\n"
    }
}
