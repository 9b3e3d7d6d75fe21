/// A JSON value for request and response bodies. Objects keep their members in document
/// order (a tool's parameter schema is written into the prompt in the order the client
/// gave it, as Python's json module keeps it) and numbers keep the literal the client
/// wrote (a seed may be any 64-bit integer, which a Double cannot hold).
enum JSON: Sendable {
    case null
    case bool(Bool)
    /// The literal as written (RFC 8259 grammar, checked by the parser).
    case number(String)
    case string(String)
    case array([JSON])
    /// Members in document order; a repeated key counts once, its last value (as Python).
    case object([(key: String, value: JSON)])

    static func int(_ value: Int) -> JSON { .number(String(value)) }

    /// The member `key` of an object (its last occurrence), nil if absent or not an object.
    subscript(key: String) -> JSON? {
        guard case .object(let members) = self else { return nil }
        return members.last(where: { $0.key == key })?.value
    }

    var isNull: Bool { if case .null = self { return true }; return false }
    var string: String? { if case .string(let s) = self { return s }; return nil }
    var array: [JSON]? { if case .array(let a) = self { return a }; return nil }
    var isObject: Bool { if case .object = self { return true }; return false }
    var objectMembers: [(key: String, value: JSON)]? { if case .object(let m) = self { return m }; return nil }

    /// The number's value, nil if this is not a number (a bool is not one).
    var double: Double? { if case .number(let text) = self { return Double(text) }; return nil }

    /// Whether this is the number `value` (any spelling: 1, 1.0, 1e0).
    func isNumber(_ value: Double) -> Bool { double == value }

    /// Whether this is an empty object.
    var isEmptyObject: Bool { if case .object(let m) = self { return m.isEmpty }; return false }

    // MARK: writing

    /// Compact JSON text (no spaces), UTF-8 left as it is (Python's ensure_ascii=False).
    var text: String {
        var out = ""
        write(into: &out)
        return out
    }

    func write(into out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let literal): out += literal
        case .string(let s): JSON.writeString(s, into: &out)
        case .array(let elements):
            out += "["
            for (i, element) in elements.enumerated() {
                if i > 0 { out += "," }
                element.write(into: &out)
            }
            out += "]"
        case .object(let members):
            out += "{"
            for (i, member) in members.enumerated() {
                if i > 0 { out += "," }
                JSON.writeString(member.key, into: &out)
                out += ":"
                member.value.write(into: &out)
            }
            out += "}"
        }
    }

    static func writeString(_ s: String, into out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }

    // MARK: parsing

    struct ParseError: Error, CustomStringConvertible {
        let message: String
        let offset: Int
        var description: String { "\(message) at byte \(offset)" }
    }

    /// Parses RFC 8259 JSON (UTF-8). Depth-limited; never traps on any input.
    static func parse(_ bytes: [UInt8]) throws(ParseError) -> JSON {
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw ParseError(message: "invalid UTF-8", offset: 0)
        }
        var parser = Parser(bytes: bytes)
        parser.skipSpace()
        let value = try parser.value(depth: 0)
        parser.skipSpace()
        guard parser.at == bytes.count else { throw parser.fail("extra data after the value") }
        return value
    }

    private struct Parser {
        static let maxDepth = 128
        let bytes: [UInt8]
        var at = 0

        func fail(_ message: String) -> ParseError { ParseError(message: message, offset: at) }

        var peek: UInt8? { at < bytes.count ? bytes[at] : nil }

        mutating func skipSpace() {
            while let b = peek, b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D { at += 1 }
        }

        mutating func expect(_ byte: UInt8) throws(ParseError) {
            guard peek == byte else { throw fail("expected '\(Character(Unicode.Scalar(byte)))'") }
            at += 1
        }

        mutating func value(depth: Int) throws(ParseError) -> JSON {
            guard depth < Parser.maxDepth else { throw fail("nested more than \(Parser.maxDepth) deep") }
            guard let b = peek else { throw fail("unexpected end of data") }
            switch b {
            case UInt8(ascii: "{"):
                at += 1
                var members: [(key: String, value: JSON)] = []
                skipSpace()
                if peek == UInt8(ascii: "}") { at += 1; return .object(members) }
                while true {
                    skipSpace()
                    guard peek == UInt8(ascii: "\"") else { throw fail("expected a member name") }
                    let key = try string()
                    skipSpace()
                    try expect(UInt8(ascii: ":"))
                    skipSpace()
                    let member = try value(depth: depth + 1)
                    if let existing = members.firstIndex(where: { $0.key == key }) {
                        members[existing].value = member   // Python's dict: first position, last value
                    } else {
                        members.append((key, member))
                    }
                    skipSpace()
                    if peek == UInt8(ascii: ",") { at += 1; continue }
                    try expect(UInt8(ascii: "}"))
                    return .object(members)
                }
            case UInt8(ascii: "["):
                at += 1
                var elements: [JSON] = []
                skipSpace()
                if peek == UInt8(ascii: "]") { at += 1; return .array(elements) }
                while true {
                    skipSpace()
                    elements.append(try value(depth: depth + 1))
                    skipSpace()
                    if peek == UInt8(ascii: ",") { at += 1; continue }
                    try expect(UInt8(ascii: "]"))
                    return .array(elements)
                }
            case UInt8(ascii: "\""):
                return .string(try string())
            case UInt8(ascii: "t"): try word("true"); return .bool(true)
            case UInt8(ascii: "f"): try word("false"); return .bool(false)
            case UInt8(ascii: "n"): try word("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                return .number(try number())
            default:
                throw fail("unexpected character")
            }
        }

        mutating func word(_ w: StaticString) throws(ParseError) {
            let count = w.utf8CodeUnitCount
            guard at + count <= bytes.count else { throw fail("unexpected end of data") }
            for i in 0..<count where bytes[at + i] != w.utf8Start[i] {
                throw fail("unexpected character")
            }
            at += count
        }

        mutating func digits() -> Int {
            let start = at
            while let b = peek, b >= 0x30 && b <= 0x39 { at += 1 }
            return at - start
        }

        mutating func number() throws(ParseError) -> String {
            let start = at
            if peek == UInt8(ascii: "-") { at += 1 }
            if peek == UInt8(ascii: "0") {
                at += 1
            } else if digits() == 0 {
                throw fail("malformed number")
            }
            if peek == UInt8(ascii: ".") {
                at += 1
                guard digits() > 0 else { throw fail("malformed number") }
            }
            if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
                at += 1
                if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { at += 1 }
                guard digits() > 0 else { throw fail("malformed number") }
            }
            return String(decoding: bytes[start..<at], as: UTF8.self)
        }

        mutating func hex4() throws(ParseError) -> UInt32 {
            guard at + 4 <= bytes.count else { throw fail("truncated \\u escape") }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let b = bytes[at]
                let digit: UInt8
                switch b {
                case 0x30...0x39: digit = b - 0x30
                case 0x41...0x46: digit = b - 0x41 + 10
                case 0x61...0x66: digit = b - 0x61 + 10
                default: throw fail("bad \\u escape")
                }
                value = value << 4 | UInt32(digit)
                at += 1
            }
            return value
        }

        /// A string at `at` (which is its opening quote).
        mutating func string() throws(ParseError) -> String {
            at += 1
            var out: [UInt8] = []
            while true {
                guard let b = peek else { throw fail("unterminated string") }
                at += 1
                switch b {
                case UInt8(ascii: "\""):
                    return String(decoding: out, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    guard let e = peek else { throw fail("unterminated string") }
                    at += 1
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
                        var code = try hex4()
                        if (0xD800..<0xDC00).contains(code) {
                            // A high surrogate must be followed by an escaped low one.
                            guard at + 6 <= bytes.count, bytes[at] == UInt8(ascii: "\\"), bytes[at + 1] == UInt8(ascii: "u") else {
                                throw fail("lone surrogate in \\u escape")
                            }
                            at += 2
                            let low = try hex4()
                            guard (0xDC00..<0xE000).contains(low) else { throw fail("lone surrogate in \\u escape") }
                            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        } else if (0xDC00..<0xE000).contains(code) {
                            throw fail("lone surrogate in \\u escape")
                        }
                        guard let scalar = Unicode.Scalar(code) else { throw fail("bad \\u escape") }
                        out.append(contentsOf: Array(String(scalar).utf8))
                    default:
                        throw fail("bad escape")
                    }
                case 0x00..<0x20:
                    throw fail("control character in a string")
                default:
                    out.append(b)
                }
            }
        }
    }
}
