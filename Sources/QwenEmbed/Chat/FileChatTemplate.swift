/// Qwen2/2.5/3 prompts rendered by a chat template, as transformers' `apply_chat_template`
/// renders them (`JinjaTemplate`), then tokenized as Hugging Face tokenizers encode the
/// text, except that control tokens come only from the template's own text
/// (`Tokenizer.encode(segments:)`): a message's "<|im_end|>" stays text.
struct FileChatTemplate {
    let template: JinjaTemplate
    let tokenizer: Tokenizer
    /// The tokenizer's named tokens the template may read (bos_token, eos_token, ...).
    let tokens: [String: String]

    init(source: String, tokenizer: Tokenizer, tokens: [String: String]) throws {
        template = try JinjaTemplate(source: source)
        self.tokenizer = tokenizer
        self.tokens = tokens
    }

    /// The rendered text of the prompt for the reply to `conversation`, in segments of
    /// template text and caller data. The template sees what transformers' callers pass:
    /// `messages` (a system message first when `system` is set), OpenAI-style `tools`
    /// (none: None), `add_generation_prompt`, `documents` (None), `enable_thinking` only when set, and the
    /// named tokens. An assistant turn's tool calls are {"type": "function", "function":
    /// {"name", "arguments"}} with the arguments as a JSON object when they are one (as
    /// llama-server and vLLM pass them), else their text; its thought is `reasoning_content`.
    func render(system: String?, conversation: [ChatMessage], tools: [ToolDefinition], enableThinking: Bool?,
                addGenerationPrompt: Bool = true) throws -> [TemplateSegment] {
        var messages: [JinjaValue] = []
        if let system { messages.append(.dict([("role", .literal("system")), ("content", .data(system))])) }
        for message in conversation {
            var fields: [(String, JinjaValue)] = [("role", .literal(message.role.name)), ("content", .data(message.content))]
            if let reasoning = message.reasoning { fields.append(("reasoning_content", .data(reasoning))) }
            if !message.toolCalls.isEmpty {
                fields.append(("tool_calls", .list(message.toolCalls.map { call in
                    let arguments = (try? JinjaValue.parseJSON(call.arguments)).flatMap { $0.isDict ? $0 : nil } ?? .data(call.arguments)
                    return .dict([("type", .literal("function")),
                                  ("function", .dict([("name", .data(call.name)), ("arguments", arguments)]))])
                })))
            }
            messages.append(.dict(fields))
        }
        var context: [String: JinjaValue] = [
            "messages": .list(messages),
            "tools": tools.isEmpty ? .none : .list(try tools.map(Self.toolValue)),
            "add_generation_prompt": .bool(addGenerationPrompt),
            "documents": .none,   // transformers passes documents=None too
        ]
        if let enableThinking { context["enable_thinking"] = .bool(enableThinking) }
        for (name, token) in tokens { context[name] = .literal(token) }
        return try template.render(context)
    }

    /// A tool as an OpenAI-style object: {"type": "function", "function": {"name",
    /// "description", "parameters"}}, without the fields the caller did not give.
    static func toolValue(_ tool: ToolDefinition) throws -> JinjaValue {
        var function: [(String, JinjaValue)] = [("name", .data(tool.name))]
        if tool.hasDescription { function.append(("description", .data(tool.description))) }
        if tool.hasParameters { function.append(("parameters", try JinjaValue.parseJSON(tool.parametersJSON))) }
        return .dict([("type", .literal("function")), ("function", .dict(function))])
    }

    /// The prompt ids for the reply to `conversation`, and whether the prompt leaves a
    /// <think> open for the reply (templates that start the thought for the model).
    func promptIDs(system: String?, conversation: [ChatMessage], tools: [ToolDefinition],
                   enableThinking: Bool?) throws -> (ids: [Int32], opensThinking: Bool) {
        let segments = try render(system: system, conversation: conversation, tools: tools, enableThinking: enableThinking)
        let text = segments.map(\.text).joined()
        let opensThinking = pythonRStrip(text).hasSuffix(NativeReplyParser.thinkOpen)
        return (tokenizer.encode(segments: segments.map { ($0.text, $0.isData) }), opensThinking)
    }

    /// Qwen2.5-Instruct's template (as its GGUF and tokenizer_config.json carry it): the
    /// format for a Qwen2-family file that has none, or one this engine cannot render.
    static let builtinQwen25 = #"""
{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"""#
}
