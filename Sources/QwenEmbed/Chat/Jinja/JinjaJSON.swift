extension JinjaValue {
    /// Parses JSON text as Python's `json.loads` does: objects become ordered dicts (a
    /// repeated key keeps its first position and its last value), numbers without a
    /// fraction or exponent are ints (`1` int, `1.0` float), NaN / Infinity / -Infinity
    /// are accepted. Strings (keys included) carry data provenance when `asData`.
    ///
    /// Differences from Python: integers outside Int64 become floats, and a lone UTF-16
    /// surrogate escape becomes U+FFFD. Nesting is limited to `JinjaFormat.maxDepth`.
    static func parseJSON(_ text: String, asData: Bool = true) throws -> JinjaValue {
        var parser = JinjaJSONParser(bytes: Array(text.utf8), asData: asData)
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        guard parser.position == parser.bytes.count else { throw parser.failure("extra data") }
        return value
    }
}

/// The recursive-descent reader behind `JinjaValue.parseJSON`.
private struct JinjaJSONParser {
    let bytes: [UInt8]
    let asData: Bool
    var position = 0

    init(bytes: [UInt8], asData: Bool) {
        self.bytes = bytes
        self.asData = asData
    }

    func failure(_ what: String) -> QwenError {
        .invalidArgument("invalid JSON: \(what) at offset \(position)")
    }

    mutating func skipWhitespace() {
        while position < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[position]) { position += 1 }
    }

    private func startsWith(_ word: String) -> Bool {
        let utf8 = Array(word.utf8)
        return bytes.count - position >= utf8.count && Array(bytes[position..<position + utf8.count]) == utf8
    }

    mutating func parseValue(depth: Int) throws -> JinjaValue {
        guard depth < JinjaFormat.maxDepth else { throw failure("nesting deeper than \(JinjaFormat.maxDepth)") }
        guard position < bytes.count else { throw failure("unexpected end") }
        switch bytes[position] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth)
        case UInt8(ascii: "["): return try parseArray(depth: depth)
        case UInt8(ascii: "\""): return .string(JinjaString(try parseString(), isData: asData))
        default: break
        }
        for (word, value) in [("null", JinjaValue.none), ("true", .bool(true)), ("false", .bool(false)),
                              ("NaN", .double(.nan)), ("Infinity", .double(.infinity)), ("-Infinity", .double(-.infinity))]
        where startsWith(word) {
            position += word.utf8.count
            return value
        }
        return try parseNumber()
    }

    private mutating func parseObject(depth: Int) throws -> JinjaValue {
        position += 1
        var dict = JinjaDict()
        skipWhitespace()
        if position < bytes.count, bytes[position] == UInt8(ascii: "}") {
            position += 1
            return .dictionary(dict)
        }
        while true {
            skipWhitespace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { throw failure("expected a string key") }
            let key = JinjaString(try parseString(), isData: asData)
            skipWhitespace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else { throw failure("expected ':'") }
            position += 1
            skipWhitespace()
            dict[.string(key)] = try parseValue(depth: depth + 1)
            skipWhitespace()
            guard position < bytes.count else { throw failure("unexpected end") }
            position += 1
            if bytes[position - 1] == UInt8(ascii: "}") { return .dictionary(dict) }
            guard bytes[position - 1] == UInt8(ascii: ",") else { position -= 1; throw failure("expected ',' or '}'") }
        }
    }

    private mutating func parseArray(depth: Int) throws -> JinjaValue {
        position += 1
        var items: [JinjaValue] = []
        skipWhitespace()
        if position < bytes.count, bytes[position] == UInt8(ascii: "]") {
            position += 1
            return .list(items)
        }
        while true {
            skipWhitespace()
            items.append(try parseValue(depth: depth + 1))
            skipWhitespace()
            guard position < bytes.count else { throw failure("unexpected end") }
            position += 1
            if bytes[position - 1] == UInt8(ascii: "]") { return .list(items) }
            guard bytes[position - 1] == UInt8(ascii: ",") else { position -= 1; throw failure("expected ',' or ']'") }
        }
    }

    /// A JSON number: an Int when it has no fraction or exponent (and fits), else a Double.
    private mutating func parseNumber() throws -> JinjaValue {
        let start = position
        func digits() -> Int {
            let first = position
            while position < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position]) { position += 1 }
            return position - first
        }
        if position < bytes.count, bytes[position] == UInt8(ascii: "-") { position += 1 }
        let integerStart = position
        let integerDigits = digits()
        guard integerDigits > 0 else { throw failure("expected a value") }
        if integerDigits > 1, bytes[integerStart] == UInt8(ascii: "0") { position = integerStart + 1 }
        var isFloat = false
        if position + 1 < bytes.count, bytes[position] == UInt8(ascii: "."),
           (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position + 1]) {
            position += 1
            _ = digits()
            isFloat = true
        }
        if position < bytes.count, bytes[position] == UInt8(ascii: "e") || bytes[position] == UInt8(ascii: "E") {
            let mark = position
            position += 1
            if position < bytes.count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") { position += 1 }
            if digits() > 0 { isFloat = true } else { position = mark }
        }
        let text = String(decoding: bytes[start..<position], as: UTF8.self)
        if !isFloat, let int = Int(text) { return .int(int) }
        guard let double = Double(text) else { throw failure("bad number") }
        return .double(double)
    }

    /// A string body after its opening quote, escapes decoded.
    private mutating func parseString() throws -> String {
        position += 1
        var scalars = String.UnicodeScalarView()
        var run: [UInt8] = []
        func flush() {
            scalars.append(contentsOf: String(decoding: run, as: UTF8.self).unicodeScalars)
            run.removeAll(keepingCapacity: true)
        }
        while true {
            guard position < bytes.count else { throw failure("unterminated string") }
            let byte = bytes[position]
            position += 1
            switch byte {
            case UInt8(ascii: "\""):
                flush()
                return String(scalars)
            case UInt8(ascii: "\\"):
                flush()
                scalars.append(try parseEscape())
            case 0..<0x20:
                position -= 1
                throw failure("invalid control character")
            default:
                run.append(byte)
            }
        }
    }

    private mutating func parseEscape() throws -> Unicode.Scalar {
        guard position < bytes.count else { throw failure("unterminated string") }
        let byte = bytes[position]
        position += 1
        switch byte {
        case UInt8(ascii: "\""): return "\""
        case UInt8(ascii: "\\"): return "\\"
        case UInt8(ascii: "/"): return "/"
        case UInt8(ascii: "b"): return "\u{08}"
        case UInt8(ascii: "f"): return "\u{0C}"
        case UInt8(ascii: "n"): return "\n"
        case UInt8(ascii: "r"): return "\r"
        case UInt8(ascii: "t"): return "\t"
        case UInt8(ascii: "u"):
            let unit = try parseHex4()
            if (0xD800..<0xDC00).contains(unit), startsWith("\\u") {
                let mark = position
                position += 2
                let low = try parseHex4()
                if (0xDC00..<0xE000).contains(low) {
                    return Unicode.Scalar(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)) ?? "\u{FFFD}"
                }
                position = mark
            }
            return Unicode.Scalar(unit) ?? "\u{FFFD}"
        default:
            position -= 1
            throw failure("invalid escape")
        }
    }

    private mutating func parseHex4() throws -> UInt32 {
        guard bytes.count - position >= 4,
              let value = UInt32(String(decoding: bytes[position..<position + 4], as: UTF8.self), radix: 16),
              bytes[position..<position + 4].allSatisfy({ $0 != UInt8(ascii: "+") && $0 != UInt8(ascii: "-") })
        else { throw failure("invalid \\u escape") }
        position += 4
        return value
    }
}
