/// One token of a template, as jinja2's lexer yields it to the parser.
struct JinjaToken: Sendable {
    enum Kind: Sendable, Equatable {
        /// Template text outside tags (after whitespace control).
        case text
        case blockBegin, blockEnd, variableBegin, variableEnd
        case name, string, integer, float
        /// An operator or punctuation: `value` is its text ("==", "(", "|", ...).
        case op
        case end
    }

    var kind: Kind
    /// The text, name, operator, or the decoded string literal.
    var value: String
    var integer = 0
    var float = 0.0
    var line: Int

    func isName(_ name: String) -> Bool { kind == .name && value == name }
    func isOp(_ op: String) -> Bool { kind == .op && value == op }
}

/// jinja2's lexer with the environment transformers uses: `{% %}`, `{{ }}`, `{# #}`,
/// `{% raw %}`, whitespace control (`{%-`, `-%}`, `{%+`, `+%}`), trim_blocks (the first
/// newline after a block or comment tag is removed) and lstrip_blocks (whitespace from the
/// start of a line to a block or comment tag is removed), newlines normalized to "\n" and
/// one trailing newline dropped (keep_trailing_newline=False).
struct JinjaLexer {
    private let source: [Unicode.Scalar]
    private var position = 0
    private var line = 1
    /// Whether the last match ended a line (jinja2's `line_starting`), for lstrip_blocks.
    private var lineStarting = true
    private var tokens: [JinjaToken] = []
    /// Closing brackets expected inside the current tag.
    private var brackets: [Unicode.Scalar] = []

    static func tokenize(_ text: String) throws -> [JinjaToken] {
        var lexer = JinjaLexer(source: normalizedSource(text))
        try lexer.run()
        lexer.tokens.append(JinjaToken(kind: .end, value: "", line: lexer.line))
        return lexer.tokens
    }

    private init(source: [Unicode.Scalar]) {
        self.source = source
    }

    /// "\r\n" and "\r" become "\n"; one final newline is dropped.
    private static func normalizedSource(_ text: String) -> [Unicode.Scalar] {
        var result: [Unicode.Scalar] = []
        var previousWasCR = false
        for scalar in text.unicodeScalars {
            if scalar == "\n" && previousWasCR { previousWasCR = false; continue }
            previousWasCR = scalar == "\r"
            result.append(scalar == "\r" ? "\n" : scalar)
        }
        if result.last == "\n" { result.removeLast() }
        return result
    }

    private enum TagKind { case comment, block, variable, raw }

    private func matches(_ text: String, at index: Int) -> Bool {
        var i = index
        for scalar in text.unicodeScalars {
            guard i < source.count, source[i] == scalar else { return false }
            i += 1
        }
        return true
    }

    private func skipSpace(from index: Int) -> Int {
        var i = index
        while i < source.count, JinjaString.isSpace(source[i]) { i += 1 }
        return i
    }

    /// Moves to `index`, counting the lines passed.
    private mutating func advance(to index: Int) {
        for scalar in source[position..<index] where scalar == "\n" { line += 1 }
        position = index
        if index > 0 { lineStarting = source[index - 1] == "\n" }
    }

    private mutating func run() throws {
        while position < source.count {
            guard let (start, kind) = nextTag() else {
                emitText(Array(source[position...]))
                advance(to: source.count)
                return
            }
            let opener = start + 2
            let sign: Unicode.Scalar? = opener < source.count && (source[opener] == "-" || source[opener] == "+") ? source[opener] : nil
            emitText(strippedText(Array(source[position..<start]), sign: sign, isVariable: kind == .variable))
            advance(to: sign == nil ? opener : opener + 1)
            switch kind {
            case .comment: try skipComment()
            case .raw: try readRaw(tagStart: start)
            case .block: try readTag(closing: "%}", begin: .blockBegin, end: .blockEnd)
            case .variable: try readTag(closing: "}}", begin: .variableBegin, end: .variableEnd)
            }
        }
    }

    /// The next `{#`, `{%` (or `{% raw %}`) or `{{` at or after the position.
    private func nextTag() -> (Int, TagKind)? {
        var i = position
        while i + 1 < source.count {
            if source[i] == "{" {
                switch source[i + 1] {
                case "#": return (i, .comment)
                case "{": return (i, .variable)
                case "%": return (i, rawBeginEnd(at: i) == nil ? .block : .raw)
                default: break
                }
            }
            i += 1
        }
        return nil
    }

    /// Where `{%(-|+)? raw (-%}\s*|%})` starting at `index` ends, if it is one.
    private func rawBeginEnd(at index: Int) -> Int? {
        var i = index + 2
        if i < source.count, source[i] == "-" || source[i] == "+" { i += 1 }
        i = skipSpace(from: i)
        guard matches("raw", at: i) else { return nil }
        i = skipSpace(from: i + 3)
        if matches("-%}", at: i) { return skipSpace(from: i + 3) }
        return matches("%}", at: i) ? i + 2 : nil
    }

    /// The text before a tag after whitespace control: `-` strips all whitespace before the
    /// tag; otherwise lstrip_blocks strips a block or comment tag's indentation, unless `+`.
    private func strippedText(_ text: [Unicode.Scalar], sign: Unicode.Scalar?, isVariable: Bool) -> [Unicode.Scalar] {
        if sign == "-" {
            var end = text.count
            while end > 0, JinjaString.isSpace(text[end - 1]) { end -= 1 }
            return Array(text[..<end])
        }
        guard sign != "+", !isVariable else { return text }
        let lineStart = (text.lastIndex(of: "\n") ?? -1) + 1
        guard lineStart > 0 || lineStarting, lineStart < text.count,
              text[lineStart...].allSatisfy(JinjaString.isSpace) else { return text }
        return Array(text[..<lineStart])
    }

    private mutating func emitText(_ text: [Unicode.Scalar]) {
        guard !text.isEmpty else { return }
        var string = String()
        string.unicodeScalars.append(contentsOf: text)
        tokens.append(JinjaToken(kind: .text, value: string, line: line))
    }

    /// After the end of a block or comment tag: `-` strips the whitespace that follows, `+`
    /// keeps it, plain removes one newline (trim_blocks).
    private func afterBlockEnd(_ index: Int, sign: Unicode.Scalar?) -> Int {
        switch sign {
        case "-": return skipSpace(from: index)
        case "+": return index
        default: return index < source.count && source[index] == "\n" ? index + 1 : index
        }
    }

    private mutating func skipComment() throws {
        var i = position
        while i + 1 < source.count, !(source[i] == "#" && source[i + 1] == "}") { i += 1 }
        guard i + 1 < source.count else { throw JinjaError.syntax("missing end of comment tag", line: line) }
        let sign: Unicode.Scalar? = i > position && (source[i - 1] == "-" || source[i - 1] == "+") ? source[i - 1] : nil
        advance(to: afterBlockEnd(i + 2, sign: sign))
    }

    /// `{% raw %}...{% endraw %}`: the body is text, its end tag obeys whitespace control.
    private mutating func readRaw(tagStart: Int) throws {
        advance(to: rawBeginEnd(at: tagStart) ?? position)
        var i = position
        while i + 1 < source.count {
            if source[i] == "{", source[i + 1] == "%" {
                var j = i + 2
                let sign: Unicode.Scalar? = j < source.count && (source[j] == "-" || source[j] == "+") ? source[j] : nil
                if sign != nil { j += 1 }
                j = skipSpace(from: j)
                if matches("endraw", at: j) {
                    j = skipSpace(from: j + 6)
                    let endSign: Unicode.Scalar? = j < source.count && (source[j] == "-" || source[j] == "+") ? source[j] : nil
                    if matches("%}", at: endSign == nil ? j : j + 1) {
                        emitText(strippedText(Array(source[position..<i]), sign: sign, isVariable: false))
                        advance(to: afterBlockEnd(endSign == nil ? j + 2 : j + 3, sign: endSign))
                        return
                    }
                }
            }
            i += 1
        }
        throw JinjaError.syntax("missing end of raw directive", line: line)
    }

    /// The tokens of a `{% %}` or `{{ }}` tag, up to and including its end.
    private mutating func readTag(closing: String, begin: JinjaToken.Kind, end: JinjaToken.Kind) throws {
        tokens.append(JinjaToken(kind: begin, value: "", line: line))
        brackets = []
        let isBlock = closing == "%}"
        while position < source.count {
            if brackets.isEmpty {
                if isBlock, matches("+%}", at: position) || matches("-%}", at: position) || matches("%}", at: position) {
                    let sign: Unicode.Scalar? = source[position] == "%" ? nil : source[position]
                    tokens.append(JinjaToken(kind: end, value: "", line: line))
                    advance(to: afterBlockEnd(position + (sign == nil ? 2 : 3), sign: sign))
                    return
                }
                if !isBlock, matches("-}}", at: position) || matches("}}", at: position) {
                    tokens.append(JinjaToken(kind: end, value: "", line: line))
                    advance(to: source[position] == "-" ? skipSpace(from: position + 3) : position + 2)
                    return
                }
            }
            if JinjaString.isSpace(source[position]) {
                advance(to: skipSpace(from: position))
            } else if let token = try number() ?? name() ?? stringLiteral() ?? op() {
                if token.token.kind == .op { try balance(token.token) }
                tokens.append(token.token)
                advance(to: token.end)
            } else {
                throw JinjaError.syntax("unexpected character '\(source[position])'", line: line)
            }
        }
        // The tag never ends: the parser reports the missing end.
    }

    private typealias Lexed = (token: JinjaToken, end: Int)

    /// The end of `(\d+_)*\d+` at `index`: digits, single underscores between them.
    private func digits(at index: Int) -> Int? {
        var i = index
        guard i < source.count, ("0"..."9").contains(source[i]) else { return nil }
        while true {
            while i < source.count, ("0"..."9").contains(source[i]) { i += 1 }
            guard i + 1 < source.count, source[i] == "_", ("0"..."9").contains(source[i + 1]) else { return i }
            i += 1
        }
    }

    private func text(_ range: Range<Int>) -> String {
        var string = String()
        string.unicodeScalars.append(contentsOf: source[range].filter { $0 != "_" })
        return string
    }

    /// A float (`1.5`, `1e3`, `2.5E-3`) or an integer (`42`, `0x1F`, `0o17`, `0b101`, `1_000`).
    private func number() throws -> Lexed? {
        guard let integerEnd = digits(at: position) else { return nil }
        func exponentEnd(_ index: Int) -> Int? {
            guard index < source.count, source[index] == "e" || source[index] == "E" else { return nil }
            var i = index + 1
            if i < source.count, source[i] == "+" || source[i] == "-" { i += 1 }
            return digits(at: i)
        }
        let fractionEnd = integerEnd < source.count && source[integerEnd] == "." ? digits(at: integerEnd + 1) : nil
        let floatEnd = fractionEnd.flatMap(exponentEnd) ?? exponentEnd(integerEnd) ?? fractionEnd
        if let floatEnd, position == 0 || source[position - 1] != "." {
            guard let value = Double(text(position..<floatEnd)) else { throw JinjaError.syntax("bad float literal", line: line) }
            return (JinjaToken(kind: .float, value: "", float: value, line: line), floatEnd)
        }
        var radix = 10, start = position, end = position + 1
        if source[position] == "0", position + 1 < source.count,
           let base = ["b": 2, "B": 2, "o": 8, "O": 8, "x": 16, "X": 16][Character(source[position + 1])] {
            var i = position + 2
            while true {
                let j = i < source.count && source[i] == "_" ? i + 1 : i
                guard j < source.count, let digit = Character(source[j]).hexDigitValue, digit < base else { break }
                i = j + 1
            }
            if i > position + 2 { radix = base; start = position + 2; end = i }
        }
        if radix == 10 {
            // `[1-9](_?\d)*`, or `0(_?0)*`: "007" is the integer 0 and then 07, as in jinja2.
            let allowed: ClosedRange<Unicode.Scalar> = source[position] == "0" ? "0"..."0" : "0"..."9"
            while true {
                let j = end < source.count && source[end] == "_" ? end + 1 : end
                guard j < source.count, allowed.contains(source[j]) else { break }
                end = j + 1
            }
        }
        guard let value = Int(text(start..<end), radix: radix) else {
            throw JinjaError.unsupported("an integer literal beyond 64 bits", line: line)
        }
        return (JinjaToken(kind: .integer, value: "", integer: value, line: line), end)
    }

    private func name() -> Lexed? {
        let first = source[position]
        guard first == "_" || first.properties.isXIDStart else { return nil }
        var end = position + 1
        while end < source.count, source[end] == "_" || source[end].properties.isXIDContinue { end += 1 }
        return (JinjaToken(kind: .name, value: stringOf(position..<end), line: line), end)
    }

    private func stringOf(_ range: Range<Int>) -> String {
        var string = String()
        string.unicodeScalars.append(contentsOf: source[range])
        return string
    }

    /// A quoted string; jinja2 decodes its escapes as Python's unicode-escape codec does.
    private func stringLiteral() throws -> Lexed? {
        let quote = source[position]
        guard quote == "'" || quote == "\"" else { return nil }
        var i = position + 1
        while i < source.count, source[i] != quote {
            i += source[i] == "\\" ? 2 : 1
        }
        guard i < source.count else { return nil }
        let value = try JinjaLexer.unescape(Array(source[position + 1..<i]), line: line)
        return (JinjaToken(kind: .string, value: value, line: line), i + 1)
    }

    private func op() throws -> Lexed? {
        for candidate in ["//", "**", "==", "!=", ">=", "<="] where matches(candidate, at: position) {
            return (JinjaToken(kind: .op, value: candidate, line: line), position + 2)
        }
        let scalar = source[position]
        guard "+-/*%~[](){}><=.:|,;".unicodeScalars.contains(scalar) else { return nil }
        return (JinjaToken(kind: .op, value: String(scalar), line: line), position + 1)
    }

    /// Decodes a string literal's escapes as jinja2 does (Python's unicode-escape codec):
    /// \n \t \\ \' \" \a \b \f \r \v, octal, \xXX, \uXXXX, \UXXXXXXXX, a backslash-newline
    /// dropped, any other backslash kept. A UTF-16 surrogate pair from two \u escapes
    /// becomes one character and a lone surrogate U+FFFD (Swift strings cannot hold one).
    static func unescape(_ body: [Unicode.Scalar], line: Int) throws -> String {
        var units: [UInt32] = []
        var i = 0
        func hex(_ count: Int) throws -> UInt32 {
            guard i + count < body.count + 1, count > 0 else { throw JinjaError.syntax("truncated escape in a string", line: line) }
            var value: UInt32 = 0
            for scalar in body[i..<i + count] {
                guard let digit = Character(scalar).hexDigitValue else { throw JinjaError.syntax("truncated escape in a string", line: line) }
                value = value * 16 + UInt32(digit)
            }
            i += count
            return value
        }
        while i < body.count {
            let scalar = body[i]
            i += 1
            guard scalar == "\\", i < body.count else { units.append(scalar.value); continue }
            let code = body[i]
            i += 1
            switch code {
            case "\n": break
            case "\\", "'", "\"": units.append(code.value)
            case "a": units.append(0x07)
            case "b": units.append(0x08)
            case "f": units.append(0x0C)
            case "n": units.append(0x0A)
            case "r": units.append(0x0D)
            case "t": units.append(0x09)
            case "v": units.append(0x0B)
            case "0"..."7":
                var value = code.value - 0x30
                var digits = 1
                while digits < 3, i < body.count, ("0"..."7").contains(body[i]) {
                    value = value * 8 + body[i].value - 0x30
                    i += 1
                    digits += 1
                }
                units.append(value)
            case "x": units.append(try hex(2))
            case "u": units.append(try hex(4))
            case "U":
                let value = try hex(8)
                guard value <= 0x10FFFF else { throw JinjaError.syntax("illegal Unicode character in a string", line: line) }
                units.append(value)
            case "N": throw JinjaError.unsupported("a \\N{...} escape in a string", line: line)
            default:
                // Python sees a non-ASCII character here as its backslashreplace escape.
                units.append(0x5C)
                if code.isASCII {
                    units.append(code.value)
                } else {
                    let v = code.value
                    let escape = v <= 0xFF ? "\\x" + JinjaFormat.hex(v, width: 2)
                        : v <= 0xFFFF ? "\\u" + JinjaFormat.hex(v, width: 4) : "\\U" + JinjaFormat.hex(v, width: 8)
                    units.append(contentsOf: escape.unicodeScalars.map(\.value))
                }
            }
        }
        var result = String.UnicodeScalarView()
        var index = 0
        while index < units.count {
            let unit = units[index]
            if (0xD800..<0xDC00).contains(unit), index + 1 < units.count, (0xDC00..<0xE000).contains(units[index + 1]) {
                result.append(Unicode.Scalar(0x10000 + ((unit - 0xD800) << 10) + (units[index + 1] - 0xDC00)) ?? "\u{FFFD}")
                index += 2
            } else {
                result.append(Unicode.Scalar(unit) ?? "\u{FFFD}")
                index += 1
            }
        }
        return String(result)
    }

    /// Tracks brackets inside a tag, so that `}}` inside `{{ {'a': {}} }}` does not end it.
    private mutating func balance(_ token: JinjaToken) throws {
        switch token.value {
        case "(": brackets.append(")")
        case "[": brackets.append("]")
        case "{": brackets.append("}")
        case ")", "]", "}":
            guard let expected = brackets.popLast() else { throw JinjaError.syntax("unexpected '\(token.value)'", line: line) }
            guard String(expected) == token.value else {
                throw JinjaError.syntax("unexpected '\(token.value)', expected '\(expected)'", line: line)
            }
        default: break
        }
    }
}
