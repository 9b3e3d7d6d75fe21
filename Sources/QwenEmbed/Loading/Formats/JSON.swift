/// A small JSON reader for config.json, safetensors headers and index files, so the
/// library needs no Foundation. Strict RFC 8259; depth-limited; never traps.
public indirect enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    public var string: String? { if case .string(let s) = self { return s }; return nil }
    public var double: Double? { if case .number(let n) = self { return n }; return nil }
    public var bool: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var array: [JSONValue]? { if case .array(let a) = self { return a }; return nil }
    public var object: [String: JSONValue]? { if case .object(let o) = self { return o }; return nil }

    /// An integral number that fits in Int.
    public var int: Int? {
        guard case .number(let n) = self, n.rounded() == n, abs(n) < 9.0e15 else { return nil }
        return Int(n)
    }

    public static func parse(_ bytes: UnsafeRawBufferPointer, context: String) throws -> JSONValue {
        var parser = JSONParser(bytes: bytes.bindMemory(to: UInt8.self), context: context)
        return try parser.parseDocument()
    }

    public static func parse(_ bytes: [UInt8], context: String) throws -> JSONValue {
        try bytes.withUnsafeBytes { try parse($0, context: context) }
    }

    /// `string` as a JSON string literal, written as json.dumps(ensure_ascii=False) writes it.
    public static func quoted(_ string: String) -> String {
        var out = ""
        JSONParser.writePythonString(string, into: &out)
        return out
    }

    /// `text` re-serialized exactly as Python's `json.dumps(json.loads(text),
    /// ensure_ascii=False)` writes it: key order kept (a repeated key keeps its first
    /// place and its last value), ", " and ": " separators, non-ASCII literal, integers
    /// as written (normalized), other numbers as Python's float repr. Qwen's prompts
    /// embed JSON this way, so the engine must write it byte for byte.
    public static func pythonDumps(_ text: String, context: String) throws -> String {
        var bytes = Array(text.utf8)
        return try bytes.withUnsafeMutableBufferPointer { buffer in
            var parser = JSONParser(bytes: UnsafeBufferPointer(buffer), context: context)
            var out = ""
            try parser.rewriteDocument(into: &out)
            return out
        }
    }

    /// How Python's json.dumps writes `scalar` inside a string: its escape sequence, or nil
    /// when it is written as it is (with `ensureASCII`, every non-ASCII scalar is escaped
    /// too, beyond the BMP as a UTF-16 surrogate pair).
    static func pythonEscape(_ scalar: Unicode.Scalar, ensureASCII: Bool = false) -> String? {
        switch scalar {
        case "\"": return "\\\""
        case "\\": return "\\\\"
        case "\n": return "\\n"
        case "\r": return "\\r"
        case "\t": return "\\t"
        case "\u{08}": return "\\b"
        case "\u{0C}": return "\\f"
        case _ where scalar.value < 0x20 || (ensureASCII && scalar.value > 0x7E):
            let hex = Array("0123456789abcdef")
            return UTF16.encode(scalar).map { units in
                units.map { unit in "\\u" + String((0..<4).reversed().map { hex[Int(unit >> UInt16(4 * $0)) & 15] }) }.joined()
            } ?? ""
        default: return nil
        }
    }

    /// The members of the JSON object `text`, each value re-serialized as `pythonDumps`
    /// writes it, in order (a repeated key keeps its first place and its last value);
    /// nil when `text` is not one JSON object.
    public static func pythonDumpsMembers(_ text: String) -> [(key: String, json: String)]? {
        rewritingParts(of: text, opening: "{") { parser in
            var members: [(key: String, json: String)] = []
            var started = false
            while let key = try parser.nextKey(&started) {
                var value = ""
                try parser.rewriteValue(depth: 1, into: &value)
                if let i = members.firstIndex(where: { $0.key == key }) { members[i].json = value } else { members.append((key, value)) }
            }
            return members
        }
    }

    /// The elements of the JSON array `text`, each re-serialized as `pythonDumps` writes
    /// it; nil when `text` is not one JSON array.
    public static func pythonDumpsElements(_ text: String) -> [String]? {
        rewritingParts(of: text, opening: "[") { parser in
            var elements: [String] = []
            var started = false
            while try parser.nextElement(&started) {
                var value = ""
                try parser.rewriteValue(depth: 1, into: &value)
                elements.append(value)
            }
            return elements
        }
    }

    /// `parts(parser)` on the one JSON container of `text` that begins with `opening`
    /// (the parser just past it); nil when `text` is anything else.
    private static func rewritingParts<T>(of text: String, opening: Unicode.Scalar, _ parts: (inout JSONParser) throws -> T) -> T? {
        var bytes = Array(text.utf8)
        return bytes.withUnsafeMutableBufferPointer { buffer in
            var parser = JSONParser(bytes: UnsafeBufferPointer(buffer), context: "")
            parser.skipWhitespace()
            guard parser.index < buffer.count, buffer[parser.index] == UInt8(ascii: opening) else { return nil }
            parser.index += 1
            guard let result = try? parts(&parser) else { return nil }
            parser.skipWhitespace()
            return parser.index == buffer.count ? result : nil
        }
    }
}

private struct JSONParser {
    let bytes: UnsafeBufferPointer<UInt8>
    let context: String
    var index = 0
    static let maxDepth = 64

    init(bytes: UnsafeBufferPointer<UInt8>, context: String) {
        self.bytes = bytes
        self.context = context
    }

    func fail(_ what: String) -> QwenError {
        QwenError.badModel("\(context): invalid JSON at byte \(index): \(what)")
    }

    mutating func parseDocument() throws -> JSONValue {
        let value = try parseValue(depth: 0)
        skipWhitespace()
        guard index == bytes.count else { throw fail("trailing data") }
        return value
    }

    /// The key of an object's next member, leaving `index` at its value; nil once the
    /// closing "}" is read. `started`: whether a member came before (then a "," first).
    mutating func nextKey(_ started: inout Bool) throws -> String? {
        skipWhitespace()
        guard index < bytes.count else { throw fail("unexpected end in object") }
        if bytes[index] == UInt8(ascii: "}") { index += 1; return nil }
        if started {
            guard bytes[index] == UInt8(ascii: ",") else { throw fail("expected ',' or '}'") }
            index += 1
            skipWhitespace()
        }
        started = true
        guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw fail("expected a key") }
        let key = try parseString()
        skipWhitespace()
        guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw fail("expected ':'") }
        index += 1
        return key
    }

    /// Whether an array has another element (`index` then at it); false once the
    /// closing "]" is read. `started`: whether an element came before (then a "," first).
    mutating func nextElement(_ started: inout Bool) throws -> Bool {
        skipWhitespace()
        guard index < bytes.count else { throw fail("unexpected end in array") }
        if bytes[index] == UInt8(ascii: "]") { index += 1; return false }
        if started {
            guard bytes[index] == UInt8(ascii: ",") else { throw fail("expected ',' or ']'") }
            index += 1
        }
        started = true
        return true
    }

    mutating func skipWhitespace() {
        while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
    }

    mutating func parseValue(depth: Int) throws -> JSONValue {
        guard depth < JSONParser.maxDepth else { throw fail("nested too deeply") }
        skipWhitespace()
        guard index < bytes.count else { throw fail("unexpected end") }
        switch bytes[index] {
        case UInt8(ascii: "{"):
            index += 1
            var object: [String: JSONValue] = [:]
            var started = false
            while let key = try nextKey(&started) { object[key] = try parseValue(depth: depth + 1) }
            return .object(object)
        case UInt8(ascii: "["):
            index += 1
            var array: [JSONValue] = []
            var started = false
            while try nextElement(&started) { array.append(try parseValue(depth: depth + 1)) }
            return .array(array)
        case UInt8(ascii: "\""):
            return .string(try parseString())
        case UInt8(ascii: "t"): try expectWord("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectWord("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectWord("null"); return .null
        default:
            return .number(try parseNumber())
        }
    }

    // MARK: Python json.dumps re-serialization

    mutating func rewriteDocument(into out: inout String) throws {
        try rewriteValue(depth: 0, into: &out)
        skipWhitespace()
        guard index == bytes.count else { throw fail("trailing data") }
    }

    mutating func rewriteValue(depth: Int, into out: inout String) throws {
        guard depth < JSONParser.maxDepth else { throw fail("nested too deeply") }
        skipWhitespace()
        guard index < bytes.count else { throw fail("unexpected end") }
        switch bytes[index] {
        case UInt8(ascii: "{"):
            index += 1
            var keys: [String] = []                 // first-seen order
            var values: [String: String] = [:]      // key -> its last value, written
            var started = false
            while let key = try nextKey(&started) {
                var value = ""
                try rewriteValue(depth: depth + 1, into: &value)
                if values.updateValue(value, forKey: key) == nil { keys.append(key) }
            }
            out += "{"
            for (i, key) in keys.enumerated() {
                if i > 0 { out += ", " }
                JSONParser.writePythonString(key, into: &out)
                out += ": "
                out += values[key] ?? "null"
            }
            out += "}"
        case UInt8(ascii: "["):
            index += 1
            out += "["
            var started = false, written = 0
            while try nextElement(&started) {
                if written > 0 { out += ", " }
                try rewriteValue(depth: depth + 1, into: &out)
                written += 1
            }
            out += "]"
        case UInt8(ascii: "\""):
            JSONParser.writePythonString(try parseString(), into: &out)
        case UInt8(ascii: "t"): try expectWord("true"); out += "true"
        case UInt8(ascii: "f"): try expectWord("false"); out += "false"
        case UInt8(ascii: "n"): try expectWord("null"); out += "null"
        default:
            let text = try scanNumber()
            if text.utf8.contains(where: { $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }) {
                guard let value = Double(text) else { throw fail("bad number") }
                out += JSONParser.pythonFloatRepr(value)
            } else {
                out += JSONParser.pythonInt(text)
            }
        }
    }

    /// Python's int(text) printed: a JSON integer without a redundant "-" on zero.
    static func pythonInt(_ text: String) -> String {
        text.utf8.allSatisfy({ $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "0") }) ? "0" : text
    }

    /// Python's repr(float): the shortest digits that round-trip, positional for decimal
    /// exponents -4...15, otherwise d.ddde±XX; "Infinity"/"NaN" as json.dumps writes them.
    static func pythonFloatRepr(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value < 0 ? "-Infinity" : "Infinity" }
        let sign = value.sign == .minus ? "-" : ""
        if value == 0 { return sign + "0.0" }
        // Swift's description also gives the shortest round-trip digits; only the layout differs.
        var text = Substring(value.magnitude.description)
        var exponent = 0
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            exponent = Int(text[text.index(after: e)...]) ?? 0
            text = text[..<e]
        }
        let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        var digits = Array((parts.first ?? "") + (parts.count > 1 ? parts[1] : ""))
        var point = (parts.first?.count ?? 0) + exponent   // value = 0.digits × 10^point
        while digits.first == "0" { digits.removeFirst(); point -= 1 }
        while digits.last == "0" { digits.removeLast() }
        guard !digits.isEmpty else { return sign + "0.0" }
        let scientific = point - 1
        if scientific < -4 || scientific >= 16 {
            var mantissa = String(digits[0])
            if digits.count > 1 { mantissa += "." + String(digits[1...]) }
            let magnitude = abs(scientific)
            return sign + mantissa + "e" + (scientific < 0 ? "-" : "+") + (magnitude < 10 ? "0" : "") + String(magnitude)
        }
        if point <= 0 { return sign + "0." + String(repeating: "0", count: -point) + String(digits) }
        if point >= digits.count { return sign + String(digits) + String(repeating: "0", count: point - digits.count) + ".0" }
        return sign + String(digits[..<point]) + "." + String(digits[point...])
    }

    /// A string as json.dumps(ensure_ascii=False) writes it.
    static func writePythonString(_ string: String, into out: inout String) {
        out += "\""
        for scalar in string.unicodeScalars {
            if let escape = JSONValue.pythonEscape(scalar) { out += escape } else { out.unicodeScalars.append(scalar) }
        }
        out += "\""
    }

    mutating func expectWord(_ word: StaticString) throws {
        let count = word.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw fail("unexpected end") }
        for i in 0..<count where bytes[index + i] != word.utf8Start[i] { throw fail("unexpected literal") }
        index += count
    }

    mutating func parseNumber() throws -> Double {
        let text = try scanNumber()
        guard let value = Double(text) else { throw fail("bad number") }
        return value
    }

    /// The text of the number at `index` (checked against JSON's grammar).
    mutating func scanNumber() throws -> String {
        let start = index
        if index < bytes.count, bytes[index] == UInt8(ascii: "-") { index += 1 }
        func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
        var digits = 0
        while index < bytes.count, isDigit(bytes[index]) { index += 1; digits += 1 }
        guard digits > 0 else { throw fail("expected a value") }
        guard digits == 1 || bytes[index - digits] != UInt8(ascii: "0") else { throw fail("a number with a leading zero") }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            var fraction = 0
            while index < bytes.count, isDigit(bytes[index]) { index += 1; fraction += 1 }
            guard fraction > 0 else { throw fail("bad number") }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            var exponent = 0
            while index < bytes.count, isDigit(bytes[index]) { index += 1; exponent += 1 }
            guard exponent > 0 else { throw fail("bad exponent") }
        }
        return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
    }

    mutating func parseHex4() throws -> UInt32 {
        guard index + 4 <= bytes.count else { throw fail("short \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let b = bytes[index]
            let digit: UInt8
            switch b {
            case 0x30...0x39: digit = b - 0x30
            case 0x41...0x46: digit = b - 0x41 + 10
            case 0x61...0x66: digit = b - 0x61 + 10
            default: throw fail("bad \\u escape")
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    mutating func parseString() throws -> String {
        index += 1  // opening quote
        var out: [UInt8] = []
        while true {
            guard index < bytes.count else { throw fail("unterminated string") }
            let b = bytes[index]
            index += 1
            switch b {
            case UInt8(ascii: "\""):
                guard let s = String(validating: out, as: UTF8.self) else { throw fail("string is not valid UTF-8") }
                return s
            case UInt8(ascii: "\\"):
                guard index < bytes.count else { throw fail("unterminated escape") }
                let e = bytes[index]
                index += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try parseHex4()
                    if (0xD800...0xDBFF).contains(scalar) {
                        guard index + 6 <= bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                            throw fail("unpaired surrogate")
                        }
                        index += 2
                        let low = try parseHex4()
                        guard (0xDC00...0xDFFF).contains(low) else { throw fail("unpaired surrogate") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { throw fail("invalid \\u escape") }
                    out.append(contentsOf: Array(String(Character(unicode)).utf8))
                default: throw fail("bad escape")
                }
            case 0x00..<0x20:
                throw fail("control character in string")
            default:
                out.append(b)
            }
        }
    }
}
