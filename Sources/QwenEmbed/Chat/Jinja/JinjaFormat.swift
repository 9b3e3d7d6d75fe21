/// How Python writes values: `str()` (what `{{ x }}`, `~` and the `string` filter print),
/// `repr()` (items inside printed lists and dicts) and `json.dumps` (the `tojson` filter
/// as transformers overrides it). Strings keep their provenance in the output; the
/// punctuation around them is the template's.
enum JinjaFormat {
    /// Nesting deeper than this in a printed or serialized value is refused (Python's
    /// recursion limit would stop it later; this keeps the stack small).
    static let maxDepth = 200

    /// Python `str(value)`, jinja2's Undefined printing as "".
    static func str(_ value: JinjaValue) throws -> JinjaString {
        switch value {
        case .undefined: return JinjaString()
        case .string(let s): return s.plain
        default: return try repr(value, depth: 0)
        }
    }

    /// Python `repr(value)`.
    static func repr(_ value: JinjaValue, depth: Int) throws -> JinjaString {
        guard depth < maxDepth else { throw JinjaError.limit("a value nested more than \(maxDepth) deep") }
        switch value {
        case .undefined: return literal("Undefined")
        case .none: return literal("None")
        case .bool(let b): return literal(b ? "True" : "False")
        case .int(let i): return literal(String(i))
        case .double(let d): return literal(floatRepr(d))
        case .string(let s): return stringRepr(s)
        case .list(let items): return try sequence(items, open: "[", close: "]", depth: depth)
        case .tuple(let items):
            return try sequence(items, open: "(", close: items.count == 1 ? ",)" : ")", depth: depth)
        case .dictionary(let dict): return try dictRepr(dict, depth: depth)
        case .namespace(let namespace):
            return literal("<Namespace ") + (try dictRepr(namespace.attributes, depth: depth + 1)) + literal(">")
        case .macro(let macro): return literal("<Macro ") + stringRepr(literal(macro.name)) + literal(">")
        case .loop(let loop): return literal("<LoopContext \(loop.index0 + 1)/\(loop.items.count)>")
        case .function(let name): return literal("<function \(name)>")
        case .iterator: return literal("<generator object>")
        case .method(let receiver, let name): return literal("<built-in method \(name) of \(receiver.typeName) object>")
        }
    }

    /// Python `repr` of a dict: `{'a': 1, 'b': [2]}`.
    static func dictRepr(_ dict: JinjaDict, depth: Int) throws -> JinjaString {
        var out = literal("{")
        for (index, entry) in dict.entries.enumerated() {
            if index > 0 { out.append(literal(", ")) }
            out.append(try repr(entry.key, depth: depth + 1))
            out.append(literal(": "))
            out.append(try repr(entry.value, depth: depth + 1))
        }
        out.append(literal("}"))
        return out
    }

    private static func sequence(_ items: [JinjaValue], open: String, close: String, depth: Int) throws -> JinjaString {
        var out = literal(open)
        for (index, item) in items.enumerated() {
            if index > 0 { out.append(literal(", ")) }
            out.append(try repr(item, depth: depth + 1))
        }
        out.append(literal(close))
        return out
    }

    static func literal(_ text: String) -> JinjaString { JinjaString(text, isData: false) }

    /// Python's `repr` of a str: single quotes unless the text has ' and no ", escapes for
    /// backslash, the quote, \t \n \r and characters Python does not print.
    static func stringRepr(_ s: JinjaString) -> JinjaString {
        let quote: Unicode.Scalar = (s.scalars.contains("'") && !s.scalars.contains("\"")) ? "\"" : "'"
        var out: [Unicode.Scalar] = [quote]
        for scalar in s.scalars {
            switch scalar {
            case quote, "\\": out += ["\\", scalar]
            case "\t": out += ["\\", "t"]
            case "\n": out += ["\\", "n"]
            case "\r": out += ["\\", "r"]
            default:
                if isPrintable(scalar) {
                    out.append(scalar)
                } else {
                    let v = scalar.value
                    let (prefix, width) = v <= 0xFF ? ("\\x", 2) : v <= 0xFFFF ? ("\\u", 4) : ("\\U", 8)
                    out += Array((prefix + hex(v, width: width)).unicodeScalars)
                }
            }
        }
        out.append(quote)
        return s.plain.derived(out)
    }

    /// Python's `str.isprintable` for one code point.
    static func isPrintable(_ scalar: Unicode.Scalar) -> Bool {
        if scalar == " " { return true }
        switch scalar.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator, .spaceSeparator:
            return false
        default:
            return true
        }
    }

    static func hex(_ value: UInt32, width: Int) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }

    /// Python's `repr(float)`: the shortest digits that round-trip, positional for decimal
    /// exponents in [-4, 16), else d.ddde+XX.
    static func floatRepr(_ value: Double) -> String {
        if value.isNaN { return "nan" }
        if value.isInfinite { return value < 0 ? "-inf" : "inf" }
        if value == 0 { return value.sign == .minus ? "-0.0" : "0.0" }
        // Swift's description has the same shortest round-trip digits; only the layout differs.
        let description = value.magnitude.description
        var mantissa = Substring(description)
        var exponent = 0
        if let e = description.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            mantissa = description[..<e]
            exponent = Int(description[description.index(after: e)...]) ?? 0
        }
        var digits = Array(mantissa.filter { $0 != "." })
        var pointPosition = mantissa.firstIndex(of: ".").map { mantissa.distance(from: mantissa.startIndex, to: $0) } ?? mantissa.count
        while digits.count > 1, digits.first == "0" { digits.removeFirst(); pointPosition -= 1 }
        while digits.count > 1, digits.last == "0" { digits.removeLast() }
        let decimalPoint = pointPosition + exponent  // value = 0.DIGITS x 10^decimalPoint
        let sign = value < 0 ? "-" : ""
        let text = String(digits)
        if decimalPoint <= -4 || decimalPoint > 16 {
            let rest = digits.count > 1 ? "." + String(digits.dropFirst()) : ""
            let e = decimalPoint - 1
            let magnitude = String(abs(e))
            return sign + String(digits[0]) + rest + "e" + (e < 0 ? "-" : "+") + (magnitude.count < 2 ? "0" : "") + magnitude
        }
        if decimalPoint <= 0 { return sign + "0." + String(repeating: "0", count: -decimalPoint) + text }
        if decimalPoint >= digits.count { return sign + text + String(repeating: "0", count: decimalPoint - digits.count) + ".0" }
        return sign + String(digits[..<decimalPoint]) + "." + String(digits[decimalPoint...])
    }
}

/// `json.dumps(value, ensure_ascii=, indent=, separators=, sort_keys=)` as Python writes it.
struct JSONDumper {
    /// The indentation of one level (`indent=2` is two spaces), nil for one line.
    var indent: String?
    var itemSeparator: String
    var keySeparator: String
    var sortKeys = false
    var ensureASCII = false

    init(indent: String? = nil, separators: (String, String)? = nil, sortKeys: Bool = false, ensureASCII: Bool = false) {
        self.indent = indent
        // Python's default item separator is "," with an indent and ", " without.
        (itemSeparator, keySeparator) = separators ?? (indent == nil ? ", " : ",", ": ")
        self.sortKeys = sortKeys
        self.ensureASCII = ensureASCII
    }

    func dumps(_ value: JinjaValue) throws -> JinjaString {
        var out = JinjaString()
        try write(value, level: 0, into: &out)
        return out
    }

    private func write(_ value: JinjaValue, level: Int, into out: inout JinjaString) throws {
        guard level < JinjaFormat.maxDepth else { throw JinjaError.limit("a value nested more than \(JinjaFormat.maxDepth) deep") }
        switch value {
        case .none: out.append(JinjaFormat.literal("null"))
        case .bool(let b): out.append(JinjaFormat.literal(b ? "true" : "false"))
        case .int(let i): out.append(JinjaFormat.literal(String(i)))
        case .double(let d): out.append(JinjaFormat.literal(JSONDumper.floatText(d)))
        case .string(let s): out.append(quoted(s))
        case .list(let items), .tuple(let items):
            try writeContainer(items.count, open: "[", close: "]", level: level, into: &out) { index, out in
                try write(items[index], level: level + 1, into: &out)
            }
        case .dictionary(let dict):
            let entries = sortKeys ? try sortedEntries(dict) : dict.entries
            try writeContainer(entries.count, open: "{", close: "}", level: level, into: &out) { index, out in
                out.append(quoted(try keyText(entries[index].key)))
                out.append(JinjaFormat.literal(keySeparator))
                try write(entries[index].value, level: level + 1, into: &out)
            }
        default:
            throw JinjaError.runtime("Object of type \(value.typeName) is not JSON serializable")
        }
    }

    private func writeContainer(_ count: Int, open: String, close: String, level: Int, into out: inout JinjaString,
                                item: (Int, inout JinjaString) throws -> Void) throws {
        guard count > 0 else { out.append(JinjaFormat.literal(open + close)); return }
        let newline = indent.map { "\n" + String(repeating: $0, count: level + 1) } ?? ""
        out.append(JinjaFormat.literal(open + newline))
        for index in 0..<count {
            if index > 0 { out.append(JinjaFormat.literal(itemSeparator + newline)) }
            try item(index, &out)
        }
        out.append(JinjaFormat.literal((indent.map { "\n" + String(repeating: $0, count: level) } ?? "") + close))
    }

    /// Python's float in JSON: repr, or NaN / Infinity / -Infinity.
    static func floatText(_ d: Double) -> String {
        if d.isNaN { return "NaN" }
        if d.isInfinite { return d < 0 ? "-Infinity" : "Infinity" }
        return JinjaFormat.floatRepr(d)
    }

    /// A dict key as JSON writes it: str as is, numbers, bools and None as text.
    private func keyText(_ key: JinjaValue) throws -> JinjaString {
        switch key {
        case .string(let s): return s
        case .none: return JinjaFormat.literal("null")
        case .bool(let b): return JinjaFormat.literal(b ? "true" : "false")
        case .int(let i): return JinjaFormat.literal(String(i))
        case .double(let d): return JinjaFormat.literal(JSONDumper.floatText(d))
        default: throw JinjaError.runtime("keys must be str, int, float, bool or None, not \(key.typeName)")
        }
    }

    private func sortedEntries(_ dict: JinjaDict) throws -> [(key: JinjaValue, value: JinjaValue)] {
        var failure: JinjaError?
        let sorted = dict.entries.sorted { a, b in
            do { return try JinjaCompare.less(a.key, b.key) } catch { failure = error as? JinjaError; return false }
        }
        if let failure { throw failure }
        return sorted
    }

    /// A JSON string literal: the quotes are the template's, the characters keep theirs.
    private func quoted(_ s: JinjaString) -> JinjaString {
        var out = JinjaFormat.literal("\"")
        var start = 0
        for (index, scalar) in s.scalars.enumerated() {
            guard let escape = JSONValue.pythonEscape(scalar, ensureASCII: ensureASCII) else { continue }
            out.append(s.slice(start..<index).plain)
            out.append(s.slice(index..<index + 1).plain.derived(Array(escape.unicodeScalars)))
            start = index + 1
        }
        out.append(s.slice(start..<s.count).plain)
        out.append(JinjaFormat.literal("\""))
        return out
    }
}
