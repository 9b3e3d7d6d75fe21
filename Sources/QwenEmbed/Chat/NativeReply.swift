/// Replies of Qwen2 / Qwen2.5 / Qwen3 in the format their chat templates teach: an optional
/// thought in <think>...</think> first (Qwen3's thinking mode), then text, and tool calls
/// as `<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>` blocks, several per
/// turn (Qwen-Agent's and the templates' format; also what llama-server and vLLM parse).

/// A classified part of a reply, in the order the model wrote it.
public enum ReplyPart: Sendable, Equatable {
    /// Text for the user.
    case content(String)
    /// The model's thought (the inside of <think>...</think>).
    case reasoning(String)
    /// A complete tool call (sent when its block closes).
    case toolCall(ToolCall)
}

/// Splits a native-format reply into parts while it streams: text is handed on as it
/// comes (holding back only what may begin a tag), a tool call once its block closes.
/// With tools offered, a reply that starts with "{", "[" or a ``` fence is held to the end and
/// read as bare JSON calls when it is one (small models often drop the tags). A block that
/// is not a valid call stays text.
struct NativeReplyParser {
    private enum Mode { case start, reasoning, content, toolCall, bareJSON }
    private var mode: Mode
    /// Text received and not yet classified.
    private var pending = ""
    private let toolsOffered: Bool
    /// The newlines after </think> are layout, not content (Qwen3's template drops them).
    private var dropLeadingNewlines = false
    private var contentStarted = false
    private var sawCall = false

    /// `startsInReasoning`: the prompt ends inside an open <think> (templates that open it
    /// for the model, such as QwQ's), so the reply begins with the thought.
    init(toolsOffered: Bool, startsInReasoning: Bool) {
        self.toolsOffered = toolsOffered
        mode = startsInReasoning ? .reasoning : .start
    }

    static let thinkOpen = "<think>", thinkClose = "</think>"
    static let callOpen = "<tool_call>", callClose = "</tool_call>"

    /// The parts `text` (the next piece of the reply) completes.
    mutating func feed(_ text: String) -> [ReplyPart] {
        pending += text
        var parts: [ReplyPart] = []
        while step(&parts) {}
        return parts
    }

    /// The parts left at the end of the reply.
    mutating func finish() -> [ReplyPart] {
        var parts: [ReplyPart] = []
        switch mode {
        case .start, .content:
            if !(sawCall && isBlank(pending)) { emitContent(pending, &parts) }
        case .reasoning:
            if !pending.isEmpty { parts.append(.reasoning(pending)) }
        case .toolCall:
            // Cut off inside a block (max_tokens): a complete call is still a call.
            if let call = Self.parseCall(pending) { parts.append(.toolCall(call)) } else { emitContent(Self.callOpen + pending, &parts) }
        case .bareJSON:
            if let calls = Self.parseBareCalls(pending) { parts += calls.map(ReplyPart.toolCall) } else { emitContent(pending, &parts) }
        }
        pending = ""
        return parts
    }

    /// Classifies what `pending` allows; true when it made progress and should run again.
    private mutating func step(_ parts: inout [ReplyPart]) -> Bool {
        switch mode {
        case .start:
            let text = pending.drop { $0.isWhitespace }
            if text.isEmpty || (text.count < Self.thinkOpen.count && Self.thinkOpen.hasPrefix(text)) { return false }
            if text.hasPrefix(Self.thinkOpen) {
                pending = String(text.dropFirst(Self.thinkOpen.count))
                mode = .reasoning
            } else {
                mode = .content
            }
            return true
        case .reasoning:
            if let close = pending.firstRange(of: Self.thinkClose) {
                let thought = String(pending[..<close.lowerBound])
                if !thought.isEmpty { parts.append(.reasoning(thought)) }
                pending = String(pending[close.upperBound...])
                mode = .content
                dropLeadingNewlines = true
                return true
            }
            let ready = pending.count - Self.partialTagLength(pending, Self.thinkClose)
            if ready > 0 {
                parts.append(.reasoning(String(pending.prefix(ready))))
                pending = String(pending.dropFirst(ready))
            }
            return false
        case .content:
            if dropLeadingNewlines {
                pending = String(pending.drop { $0 == "\n" })
                if pending.isEmpty { return false }
                dropLeadingNewlines = false
            }
            if toolsOffered && !contentStarted && !sawCall, let first = pending.first(where: { !$0.isWhitespace }),
               first == "{" || first == "[" || first == "`" {
                mode = .bareJSON
                return false
            }
            if let open = pending.firstRange(of: Self.callOpen) {
                let before = String(pending[..<open.lowerBound])
                if !(sawCall && isBlank(before)) { emitContent(before, &parts) }
                pending = String(pending[open.upperBound...])
                mode = .toolCall
                return true
            }
            let ready = pending.count - Self.partialTagLength(pending, Self.callOpen)
            // After a call, blank text is the layout between blocks: held until text comes.
            if ready > 0 && !(sawCall && isBlank(String(pending.prefix(ready)))) {
                emitContent(String(pending.prefix(ready)), &parts)
                pending = String(pending.dropFirst(ready))
            }
            return false
        case .toolCall:
            guard let close = pending.firstRange(of: Self.callClose) else { return false }
            let body = String(pending[..<close.lowerBound])
            if let call = Self.parseCall(body) {
                parts.append(.toolCall(call))
                sawCall = true
            } else {
                emitContent(Self.callOpen + body + Self.callClose, &parts)
            }
            pending = String(pending[close.upperBound...])
            mode = .content
            return true
        case .bareJSON:
            return false
        }
    }

    private mutating func emitContent(_ text: String, _ parts: inout [ReplyPart]) {
        guard !text.isEmpty else { return }
        parts.append(.content(text))
        contentStarted = true
    }

    private func isBlank(_ text: String) -> Bool { text.allSatisfy(\.isWhitespace) }

    /// Characters at the end of `text` that begin `tag` (held back: the tag may follow).
    static func partialTagLength(_ text: String, _ tag: String) -> Int {
        for length in stride(from: min(tag.count - 1, text.count), to: 0, by: -1) where tag.hasPrefix(text.suffix(length)) {
            return length
        }
        return 0
    }

    /// `{"name": NAME, "arguments": ARGS}` (also "parameters" for the arguments, as some
    /// fine-tunes write): the call, its arguments as Python's json.dumps writes them (a
    /// string argument is kept as it is); nil for anything else.
    static func parseCall(_ text: String) -> ToolCall? {
        guard let members = JSONValue.pythonDumpsMembers(pythonStrip(text)),
              let nameJSON = members.first(where: { $0.key == "name" })?.json,
              let name = try? JSONValue.parse(Array(nameJSON.utf8), context: "tool call").string, !name.isEmpty else { return nil }
        guard let arguments = members.first(where: { $0.key == "arguments" || $0.key == "parameters" })?.json else {
            return ToolCall(name: name, arguments: "{}")
        }
        if let string = try? JSONValue.parse(Array(arguments.utf8), context: "tool call").string {
            return ToolCall(name: name, arguments: string)
        }
        return ToolCall(name: name, arguments: arguments)
    }

    /// A whole reply that is one call object, a list of them, several one after another, or
    /// any of these in a ``` fence.
    static func parseBareCalls(_ text: String) -> [ToolCall]? {
        var body = Substring(pythonStrip(text))
        if body.hasPrefix("```") {
            guard body.count >= 6, body.hasSuffix("```") else { return nil }
            body = body.dropFirst(3).dropLast(3)
            body = body.drop { $0 != "\n" && $0 != "{" && $0 != "[" }   // the fence's language tag
        }
        let inner = pythonStrip(String(body))
        if let call = parseCall(inner) { return [call] }
        // A list of calls, or several objects one after another (one per line, as models write them).
        guard let elements = JSONValue.pythonDumpsElements(inner) ?? consecutiveObjects(inner), !elements.isEmpty else { return nil }
        let calls = elements.compactMap(parseCall)
        return calls.count == elements.count ? calls : nil
    }

    /// The top-level {...} objects of `text` when it is nothing but such objects and
    /// whitespace; nil otherwise. Braces inside strings do not count.
    static func consecutiveObjects(_ text: String) -> [String]? {
        var objects: [String] = []
        var current = "", depth = 0, inString = false, escaped = false
        for c in text {
            if depth == 0 {
                if c.isWhitespace { continue }
                guard c == "{" else { return nil }
            }
            current.append(c)
            if inString {
                if escaped { escaped = false } else if c == "\\" { escaped = true } else if c == "\"" { inString = false }
                continue
            }
            switch c {
            case "\"": inString = true
            case "{": depth += 1
            case "}":
                depth -= 1
                if depth == 0 { objects.append(current); current = "" }
            default: break
            }
        }
        return depth == 0 && objects.count > 1 ? objects : nil
    }
}
