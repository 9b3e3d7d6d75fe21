/// JSON Schema to GBNF, as llama.cpp's `json-schema-to-grammar` writes it (the same
/// primitive rules, whitespace bounded the same way, required properties first in the
/// schema's order, then optional ones in order), for the subset OpenAI's structured
/// outputs accept: `type` (one or a list), `properties` / `required` /
/// `additionalProperties`, `items` / `prefixItems` / `minItems` / `maxItems`, `enum`,
/// `const`, `anyOf` / `oneOf`, `$ref` into `$defs` / `definitions` (recursion allowed),
/// strings with `minLength` / `maxLength`, the formats date, time, date-time and uuid, or
/// a `pattern` (ECMAScript regular expressions: `RegexGrammar`),
/// integers with `minimum` / `maximum` / `exclusiveMinimum` / `exclusiveMaximum` (as
/// llama.cpp: digit-by-digit ranges; on numbers these bounds are not enforced). Annotations (`title`, `description`,
/// `default`, `examples`, `$schema`, `strict`) are ignored; `not`, `allOf` of
/// several schemas and conditionals are refused naming where, rather than ignored: the
/// reply would not be held to them.
struct JSONSchemaGrammar {
    private var rules: [(name: String, body: String)] = []
    private var ruleNames: Set<String> = []
    /// $ref target -> its rule (added before its body is built, so recursion works).
    private var references: [String: String] = [:]
    private let document: JinjaValue
    /// Rule names get this prefix (tool-call grammars hold several schemas).
    private let prefix: String

    /// The GBNF grammar of JSON text matching the schema `schemaText`. Errors are
    /// INVALID_ARGUMENT naming the position (JSON) or the schema path.
    static func gbnf(schema schemaText: String) throws -> String {
        var builder = try JSONSchemaGrammar(schemaText: schemaText, prefix: "")
        let root = try builder.visit(builder.document, name: "root", path: "#")
        if root != "root" { builder.add("root", root) }
        return builder.text
    }

    /// Any JSON object (OpenAI's `response_format: {"type": "json_object"}`).
    static var jsonObject: String {
        var builder = JSONSchemaGrammar(document: .none, prefix: "")
        builder.add("root", builder.primitive("object"))
        return builder.text
    }

    init(schemaText: String, prefix: String) throws {
        let document: JinjaValue
        do {
            document = try JinjaValue.parseJSON(schemaText, asData: true)
        } catch let error as QwenError {
            throw QwenError.invalidArgument("json_schema: \(error.message)")
        } catch {
            throw QwenError.invalidArgument("json_schema: not JSON: \(error)")
        }
        self.init(document: document, prefix: prefix)
    }

    private init(document: JinjaValue, prefix: String) {
        self.document = document
        self.prefix = prefix
    }

    /// The rules in the order they were made, as GBNF text.
    var text: String { rules.map { "\($0.name) ::= \($0.body)" }.joined(separator: "\n") + "\n" }

    /// The rule name for the schema's root (for embedding in a larger grammar).
    mutating func rootRule(named name: String) throws -> String {
        try visit(document, name: name, path: "#")
    }

    // MARK: rules

    @discardableResult
    private mutating func add(_ name: String, _ body: String) -> String {
        var base = name.unicodeScalars.map { s -> String in
            (s.properties.isAlphabetic && s.isASCII) || ("0"..."9").contains(s) ? String(s) : "-"
        }.joined()
        if base.isEmpty { base = "r" }
        base = prefix + base
        if let existing = rules.first(where: { $0.name == base }), existing.body == body { return base }
        var unique = base, n = 1
        while ruleNames.contains(unique) { unique = "\(base)-\(n)"; n += 1 }
        ruleNames.insert(unique)
        rules.append((unique, body))
        return unique
    }

    private mutating func define(_ reserved: String, _ body: String) {
        if let i = rules.firstIndex(where: { $0.name == reserved }) { rules[i].body = body }
    }

    /// A primitive rule (and the rules it uses), llama.cpp's definitions.
    private mutating func primitive(_ name: String) -> String {
        let definitions: [String: (body: String, uses: [String])] = [
            "space": (#"| " " | "\n"{1,2} [ \t]{0,20}"#, []),
            "boolean": (#"("true" | "false") space"#, ["space"]),
            "null": (#""null" space"#, ["space"]),
            "integral-part": (#"[0] | [1-9] [0-9]{0,15}"#, []),
            "decimal-part": (#"[0-9]{1,16}"#, []),
            "number": (#"("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)? space"#, ["integral-part", "decimal-part", "space"]),
            "integer": (#"("-"? integral-part) space"#, ["integral-part", "space"]),
            "char": (#"[^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})"#, []),
            "string": (#""\"" char* "\"" space"#, ["char", "space"]),
            "value": ("object | array | string | number | boolean | null", ["object", "array", "string", "number", "boolean", "null"]),
            "object": (#""{" space ( string ":" space value ("," space string ":" space value)* )? "}" space"#, ["string", "value", "space"]),
            "array": (#""[" space ( value ("," space value)* )? "]" space"#, ["value", "space"]),
            "date": (#"[0-9]{4} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | [1-2] [0-9] | "3" [0-1] )"#, []),
            "time": (#"([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{3} )? ( "Z" | ( "+" | "-" ) ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] )"#, []),
            "date-time": (#"date "T" time"#, ["date", "time"]),
            "date-string": (#""\"" date "\"" space"#, ["date", "space"]),
            "time-string": (#""\"" time "\"" space"#, ["time", "space"]),
            "date-time-string": (#""\"" date-time "\"" space"#, ["date-time", "space"]),
            "uuid": (#""\"" [0-9a-fA-F]{8} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{12} "\"" space"#, ["space"]),
        ]
        let full = prefix + name
        guard !ruleNames.contains(full), let definition = definitions[name] else { return full }
        ruleNames.insert(full)
        rules.append((full, definition.body.replacingPrimitiveNames(definition.uses, prefix: prefix)))
        for used in definition.uses { _ = primitive(used) }
        return full
    }

    /// A GBNF string literal of `text`.
    static func literal(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                out += "\\x" + String(scalar.value, radix: 16).leftPadded(to: 2)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    private func jsonText(_ value: JinjaValue, path: String) throws -> String {
        do { return try JSONDumper().dumps(value).text } catch {
            throw QwenError.invalidArgument("json_schema: at \(path): the value cannot be written as JSON")
        }
    }

    // MARK: schemas

    private static let ignored: Set<String> = ["title", "description", "default", "examples", "$schema", "$id", "$comment",
                                               "strict", "readOnly", "writeOnly", "deprecated", "$defs", "definitions",
                                               "discriminator", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
                                               "multipleOf", "uniqueItems", "minProperties", "maxProperties", "contentEncoding",
                                               "contentMediaType"]
    private static let understood: Set<String> = ["type", "properties", "required", "additionalProperties", "items",
                                                  "prefixItems", "minItems", "maxItems", "enum", "const", "anyOf", "oneOf",
                                                  "allOf", "$ref", "minLength", "maxLength", "format", "nullable",
                                                  "pattern"]

    /// The rule (or expression) for `schema`, named after `name`.
    mutating func visit(_ schema: JinjaValue, name: String, path: String) throws -> String {
        if case .bool(let b) = schema {
            guard b else { throw QwenError.invalidArgument("json_schema: at \(path): the schema `false` accepts nothing") }
            return primitive("value")
        }
        guard case .dictionary(let s) = schema else {
            throw QwenError.invalidArgument("json_schema: at \(path): a schema must be an object or a boolean")
        }
        for key in s.keys {
            guard case .string(let k) = key else { continue }
            let keyText = k.text
            if !JSONSchemaGrammar.ignored.contains(keyText) && !JSONSchemaGrammar.understood.contains(keyText) {
                throw QwenError.invalidArgument("json_schema: at \(path): the keyword '\(keyText)' is not supported")
            }
        }
        func member(_ key: String) -> JinjaValue? { s[key] }

        if case .string(let ref)? = member("$ref") { return try reference(ref.text, path: path) }
        if case .list(let all)? = member("allOf") {
            guard all.count == 1 else { throw QwenError.invalidArgument("json_schema: at \(path): allOf of several schemas is not supported") }
            return try visit(all[0], name: name, path: path + "/allOf/0")
        }
        for key in ["anyOf", "oneOf"] {
            if let choices = member(key) {
                guard case .list(let list) = choices, !list.isEmpty else {
                    throw QwenError.invalidArgument("json_schema: at \(path)/\(key): expected a non-empty list of schemas")
                }
                var alternatives: [String] = []
                for (i, choice) in list.enumerated() {
                    alternatives.append(try visit(choice, name: "\(name)-\(i)", path: "\(path)/\(key)/\(i)"))
                }
                return add(name, alternatives.joined(separator: " | "))
            }
        }
        if let value = member("const") {
            return add(name, "\(JSONSchemaGrammar.literal(try jsonText(value, path: path))) \(primitive("space"))")
        }
        if let values = member("enum") {
            guard case .list(let list) = values, !list.isEmpty else {
                throw QwenError.invalidArgument("json_schema: at \(path)/enum: expected a non-empty list")
            }
            let alternatives = try list.map { JSONSchemaGrammar.literal(try jsonText($0, path: path)) }
            return add(name, "(\(alternatives.joined(separator: " | "))) \(primitive("space"))")
        }
        var types: [String] = []
        switch member("type") {
        case .string(let t)?: types = [t.text]
        case .list(let list)?:
            for item in list {
                guard case .string(let t) = item else { throw QwenError.invalidArgument("json_schema: at \(path)/type: expected type names") }
                types.append(t.text)
            }
        case nil:
            if member("properties") != nil || member("additionalProperties") != nil { types = ["object"] }
            else if member("items") != nil || member("prefixItems") != nil { types = ["array"] }
            else if member("pattern") != nil || member("format") != nil { types = ["string"] }   // as llama.cpp
        default: throw QwenError.invalidArgument("json_schema: at \(path)/type: expected a name or a list of names")
        }
        if case .bool(true)? = member("nullable"), !types.isEmpty, !types.contains("null") { types.append("null") }
        if types.isEmpty { return primitive("value") }
        if types.count > 1 {
            var alternatives: [String] = []
            for t in types {
                var single = s
                single[.string(JinjaString("type", isData: false))] = .string(JinjaString(t, isData: true))
                single[.string(JinjaString("nullable", isData: false))] = .bool(false)
                alternatives.append(try visit(.dictionary(single), name: "\(name)-\(t)", path: path))
            }
            return add(name, alternatives.joined(separator: " | "))
        }
        switch types[0] {
        case "object": return try object(s, name: name, path: path)
        case "array": return try array(s, name: name, path: path)
        case "string": return try string(s, name: name, path: path)
        case "integer": return try integer(s, name: name, path: path)
        case "number": return primitive("number")
        case "boolean": return primitive("boolean")
        case "null": return primitive("null")
        default: throw QwenError.invalidArgument("json_schema: at \(path)/type: unknown type '\(types[0])'")
        }
    }

    private mutating func reference(_ ref: String, path: String) throws -> String {
        if let rule = references[ref] { return rule }
        guard ref.hasPrefix("#") else {
            throw QwenError.invalidArgument("json_schema: at \(path)/$ref: only references into this schema (#/...) are supported, not '\(ref)'")
        }
        var target = document
        for rawPart in ref.dropFirst().split(separator: "/", omittingEmptySubsequences: true) {
            let part = String(rawPart).jsonPointerUnescaped
            switch target {
            case .dictionary(let d) where d[part] != nil: target = d[part] ?? .none
            case .list(let l) where Int(part).map({ $0 >= 0 && $0 < l.count }) == true: target = l[Int(part) ?? 0]
            default: throw QwenError.invalidArgument("json_schema: at \(path)/$ref: '\(ref)' points at nothing")
            }
        }
        let name = String(ref.split(separator: "/").last ?? "ref")
        let rule = add(name, "")   // defined below, once its body is built
        references[ref] = rule
        let body = try visit(target, name: name + "-body", path: ref)
        define(rule, body)
        return rule
    }

    private mutating func object(_ s: JinjaDict, name: String, path: String) throws -> String {
        var properties: [(key: String, schema: JinjaValue)] = []
        if let p = s["properties"] {
            guard case .dictionary(let d) = p else { throw QwenError.invalidArgument("json_schema: at \(path)/properties: expected an object") }
            for (key, value) in d.entries {
                guard case .string(let k) = key else { continue }
                properties.append((k.text, value))
            }
        }
        var required: Set<String> = []
        if let r = s["required"] {
            guard case .list(let list) = r else { throw QwenError.invalidArgument("json_schema: at \(path)/required: expected a list of names") }
            for item in list {
                guard case .string(let k) = item else { throw QwenError.invalidArgument("json_schema: at \(path)/required: expected a list of names") }
                required.insert(k.text)
            }
        }
        let additional = s["additionalProperties"]
        if s["properties"] == nil, additional == nil || { if case .bool(true)? = additional { return true }; return false }() {
            return primitive("object")
        }
        let space = primitive("space")
        var keyValue: [String: String] = [:]
        for (key, schema) in properties {
            let value = try visit(schema, name: "\(name)-\(key)", path: "\(path)/properties/\(key)")
            keyValue[key] = add("\(name)-\(key)-kv", "\(JSONSchemaGrammar.literal(JSONValue.quoted(key))) \(space) \":\" \(space) \(value)")
        }
        var extra: String? = nil
        var otherKey: String { properties.isEmpty ? primitive("string") : add("\(name)-additional-key", notStrings(properties.map(\.key))) }
        switch additional {
        case .bool(true)?:
            extra = add("\(name)-additional-kv", "\(otherKey) \":\" \(space) \(primitive("value"))")
        case .dictionary?:
            let value = try visit(additional ?? .none, name: "\(name)-additional", path: "\(path)/additionalProperties")
            extra = add("\(name)-additional-kv", "\(otherKey) \":\" \(space) \(value)")
        default: break
        }
        let requiredKeys = properties.map(\.key).filter { required.contains($0) }
        var optionalKeys = properties.map(\.key).filter { !required.contains($0) }.compactMap { keyValue[$0] }
        if let extra { optionalKeys.append(extra + "*") }   // any number of further members
        var body = "\"{\" \(space) " + requiredKeys.compactMap { keyValue[$0] }.joined(separator: " \",\" \(space) ")
        if !optionalKeys.isEmpty {
            // Each optional member may be skipped; the members present keep their order.
            func chain(_ rest: ArraySlice<String>, firstIsOptional: Bool) -> String {
                guard let first = rest.first else { return "" }
                let repeats = first.hasSuffix("*")
                let rule = repeats ? String(first.dropLast()) : first
                let comma = "( \",\" \(space) \(rule) )"
                var out = firstIsOptional ? comma + (repeats ? "*" : "?") : rule + (repeats ? " \(comma)*" : "")
                if rest.count > 1 {
                    out += " " + add("\(name)-rest", chain(rest.dropFirst(), firstIsOptional: true))
                }
                return out
            }
            let choices = optionalKeys.indices.map { chain(optionalKeys[$0...], firstIsOptional: false) }
            body += requiredKeys.isEmpty ? " ( " + choices.joined(separator: " | ") + " )?"
                : " ( \",\" \(space) ( " + choices.joined(separator: " | ") + " ) )?"
        }
        body += " \"}\" \(space)"
        return add(name, body)
    }

    /// A JSON string (with `space` after it) that is none of `keys`: the keys' trie walked
    /// character by character, each step either leaving it or going on to a longer key.
    private mutating func notStrings(_ keys: [String]) -> String {
        final class Node { var children: [(Character, Node)] = []; var isKey = false }
        let root = Node()
        for key in keys {
            var node = root
            for c in JSONValue.quoted(key).dropFirst().dropLast() {   // the key as JSON writes it
                if let next = node.children.first(where: { $0.0 == c })?.1 { node = next } else {
                    let next = Node()
                    node.children.append((c, next))
                    node = next
                }
            }
            node.isKey = true
        }
        let char = primitive("char")
        func classText(_ c: Character) -> String {
            c.unicodeScalars.map { u in "\\]^-[".unicodeScalars.contains(u) ? "\\" + String(u) : String(u) }.joined()
        }
        /// After the characters leading to `node`: what may follow so the string is no key.
        func rest(_ node: Node) -> String {
            var alternatives: [String] = []
            for (c, child) in node.children.sorted(by: { $0.0 < $1.0 }) {
                let after = child.children.isEmpty ? "\(char)+" : child.isKey ? "(\(rest(child)))" : "(\(rest(child)))?"
                alternatives.append("[\(classText(c))] \(after)")
            }
            alternatives.append("[^\"\\\\\\x7F\\x00-\\x1F\(node.children.map { classText($0.0) }.joined())] \(char)*")
            return alternatives.joined(separator: " | ")
        }
        return "\"\\\"\" (\(rest(root)))\(root.isKey ? "" : "?") \"\\\"\" \(primitive("space"))"
    }

    private mutating func array(_ s: JinjaDict, name: String, path: String) throws -> String {
        let space = primitive("space")
        if case .list(let prefixItems)? = s["prefixItems"] ?? s["items"] {   // a list of items: a tuple (older drafts)
            var parts: [String] = []
            for (i, item) in prefixItems.enumerated() {
                parts.append(try visit(item, name: "\(name)-\(i)", path: "\(path)/prefixItems/\(i)"))
            }
            return add(name, "\"[\" \(space) " + parts.joined(separator: " \",\" \(space) ") + " \"]\" \(space)")
        }
        let item = try s["items"].map { try visit($0, name: "\(name)-item", path: "\(path)/items") } ?? primitive("value")
        let minimum = s["minItems"].flatMap { if case .int(let n) = $0 { return n } else { return nil } } ?? 0
        let maximum = s["maxItems"].flatMap { if case .int(let n) = $0 { return n } else { return nil } }
        guard minimum >= 0, (maximum ?? minimum) >= minimum, (maximum ?? minimum) <= GBNFParser.maxRepetition else {
            throw QwenError.invalidArgument("json_schema: at \(path): minItems/maxItems out of range")
        }
        let list: String
        switch (minimum, maximum) {
        case (_, 0?): list = ""
        case (0, nil): list = "( \(item) ( \",\" \(space) \(item) )* )?"
        case (0, let max?): list = "( \(item) ( \",\" \(space) \(item) ){0,\(max - 1)} )?"
        case (let min, nil): list = "\(item) ( \",\" \(space) \(item) ){\(min - 1),}"
        case (let min, let max?): list = "\(item) ( \",\" \(space) \(item) ){\(min - 1),\(max - 1)}"
        }
        return add(name, "\"[\" \(space) \(list) \"]\" \(space)")
    }

    private mutating func integer(_ s: JinjaDict, name: String, path: String) throws -> String {
        func bound(_ key: String, _ adjust: Int64) throws -> Int64? {
            guard let value = s[key] else { return nil }
            switch value {
            case .int(let n): return Int64(n) &+ adjust
            case .double(let d) where d.isFinite && abs(d) < 9.0e15:
                // A fractional bound: the nearest integer inside it.
                let inside = adjust > 0 || key == "minimum" ? d.rounded(.up) : d.rounded(.down)
                return Int64(inside) &+ (inside == d ? adjust : 0)
            default: throw QwenError.invalidArgument("json_schema: at \(path)/\(key): expected a number")
            }
        }
        let minimum = try [bound("minimum", 0), bound("exclusiveMinimum", 1)].compactMap { $0 }.max()
        let maximum = try [bound("maximum", 0), bound("exclusiveMaximum", -1)].compactMap { $0 }.min()
        if minimum == nil && maximum == nil { return primitive("integer") }
        if let minimum, let maximum, minimum > maximum {
            throw QwenError.invalidArgument("json_schema: at \(path): no integer is within the minimum and the maximum")
        }
        return add(name, "(\(IntegerRangeGrammar.expression(minimum: minimum, maximum: maximum))) \(primitive("space"))")
    }

    private mutating func string(_ s: JinjaDict, name: String, path: String) throws -> String {
        if let pattern = s["pattern"] {
            guard case .string(let text) = pattern else {
                throw QwenError.invalidArgument("json_schema: at \(path)/pattern: expected a string")
            }
            guard s["minLength"] == nil, s["maxLength"] == nil, s["format"] == nil else {
                throw QwenError.invalidArgument("json_schema: at \(path): 'pattern' together with minLength, maxLength or format is not supported")
            }
            let body: String
            do {
                body = try RegexGrammar.expression(pattern: text.text, anyCharacter: primitive("char"))
            } catch let error as QwenError {
                throw QwenError.invalidArgument("json_schema: at \(path): \(error.message)")
            }
            return add(name, "\"\\\"\" (\(body)) \"\\\"\" \(primitive("space"))")
        }
        if case .string(let format)? = s["format"] {
            switch format.text {
            case "date": return primitive("date-string")
            case "time": return primitive("time-string")
            case "date-time": return primitive("date-time-string")
            case "uuid": return primitive("uuid")
            default: break   // email, uri, ...: any string
            }
        }
        let minimum = s["minLength"].flatMap { if case .int(let n) = $0 { return n } else { return nil } } ?? 0
        let maximum = s["maxLength"].flatMap { if case .int(let n) = $0 { return n } else { return nil } }
        if minimum == 0 && maximum == nil { return primitive("string") }
        guard minimum >= 0, (maximum ?? minimum) >= minimum, (maximum ?? minimum) <= GBNFParser.maxRepetition else {
            throw QwenError.invalidArgument("json_schema: at \(path): minLength/maxLength out of range")
        }
        let bounds = maximum.map { "{\(minimum),\($0)}" } ?? "{\(minimum),}"
        return add(name, "\"\\\"\" \(primitive("char"))\(bounds) \"\\\"\" \(primitive("space"))")
    }
}

extension String {
    /// The text with zeros in front up to `width` characters (hex digits of an escape).
    func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}

private extension String {

    /// A JSON pointer segment with "~1" read as "/" and "~0" as "~".
    var jsonPointerUnescaped: String {
        var out = ""
        var tilde = false
        for c in self {
            if tilde { out.append(c == "1" ? "/" : c == "0" ? "~" : c); tilde = false } else if c == "~" { tilde = true } else { out.append(c) }
        }
        return tilde ? out + "~" : out
    }

    /// A primitive's body with the names of the rules it uses prefixed.
    func replacingPrimitiveNames(_ names: [String], prefix: String) -> String {
        guard !prefix.isEmpty else { return self }
        var out = ""
        var word = ""
        var inLiteral = false, inClass = false, escaped = false
        func flush() {
            out += names.contains(word) ? prefix + word : word
            word = ""
        }
        for c in self {
            if escaped { out.append(c); escaped = false; continue }
            if (inLiteral || inClass) && c == "\\" { out.append(c); escaped = true; continue }
            if inLiteral { out.append(c); if c == "\"" { inLiteral = false }; continue }
            if inClass { out.append(c); if c == "]" { inClass = false }; continue }
            if c.isLetter || c.isNumber || c == "-" { word.append(c); continue }
            flush()
            if c == "\"" { inLiteral = true } else if c == "[" { inClass = true }
            out.append(c)
        }
        flush()
        return out
    }
}
