/// The arguments of a filter, test, method or global call, bound to a Python signature.
struct JinjaCallArguments {
    var positional: [JinjaValue] = []
    var keyword: [(String, JinjaValue)] = []

    /// Binds the arguments to `names` as Python binds a call: positional first, keywords by
    /// name, then `defaults`; too many, unknown, repeated or missing arguments are errors.
    func bind(_ function: String, _ names: [String], defaults: [String: JinjaValue] = [:]) throws -> [JinjaValue] {
        guard positional.count <= names.count else {
            throw JinjaError.runtime("\(function)() takes at most \(names.count) arguments (\(positional.count) given)")
        }
        var bound: [JinjaValue?] = positional + Array(repeating: nil, count: names.count - positional.count)
        for (name, value) in keyword {
            guard let index = names.firstIndex(of: name) else {
                throw JinjaError.runtime("\(function)() got an unexpected keyword argument '\(name)'")
            }
            guard bound[index] == nil else { throw JinjaError.runtime("\(function)() got multiple values for argument '\(name)'") }
            bound[index] = value
        }
        return try names.indices.map { index in
            guard let value = bound[index] ?? defaults[names[index]] else {
                throw JinjaError.runtime("\(function)() missing required argument '\(names[index])'")
            }
            return value
        }
    }
}

/// jinja2's built-in filters and tests (those chat templates use), transformers' `tojson`,
/// and the names the parser checks templates against.
enum JinjaBuiltins {
    static let filters: Set<String> = [
        "abs", "attr", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "first", "float", "indent",
        "int", "items", "join", "last", "length", "list", "lower", "map", "max", "min", "reject", "rejectattr",
        "replace", "reverse", "safe", "select", "selectattr", "sort", "string", "title", "tojson", "trim", "unique", "upper",
    ]
    static let tests: Set<String> = [
        "defined", "undefined", "none", "boolean", "false", "true", "integer", "float", "number", "string", "mapping",
        "sequence", "iterable", "callable", "odd", "even", "divisibleby", "eq", "equalto", "==", "ne", "!=", "lt",
        "lessthan", "<", "le", "<=", "gt", "greaterthan", ">", "ge", ">=", "in", "sameas", "lower", "upper", "escaped",
        "filter", "test",
    ]
    static let globalFunctions: Set<String> = ["range", "dict", "namespace", "raise_exception", "strftime_now"]
    /// jinja2 globals this interpreter does not provide.
    static let refusedGlobals: Set<String> = ["lipsum", "cycler", "joiner"]

    static let stringMethods: Set<String> = [
        "strip", "lstrip", "rstrip", "split", "rsplit", "splitlines", "startswith", "endswith", "replace", "upper",
        "lower", "title", "capitalize", "find", "rfind", "count", "join", "format", "removeprefix", "removesuffix",
        "isspace", "isdigit", "isalpha", "isalnum", "islower", "isupper",
    ]
    static let dictMethods: Set<String> = ["get", "items", "keys", "values"]
    static let listMethods: Set<String> = ["count"]
    /// Python str methods this interpreter does not provide.
    static let refusedStringMethods: Set<String> = [
        "zfill", "center", "ljust", "rjust", "partition", "rpartition", "casefold", "swapcase", "expandtabs", "encode",
        "translate", "maketrans", "format_map", "istitle", "isidentifier", "isprintable", "isascii", "isdecimal",
        "isnumeric", "index", "rindex",
    ]
    /// Methods that change their dict or list: the sandbox forbids them.
    static let dictMutators: Set<String> = ["pop", "popitem", "setdefault", "update", "clear"]
    static let listMutators: Set<String> = ["append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse"]
    /// Method calls refused when a template is compiled.
    static let refusedMethods = refusedStringMethods.union(dictMutators).union(listMutators).union(["copy", "fromkeys"])

    // MARK: Filters

    static func filter(_ name: String, _ value: JinjaValue, _ arguments: JinjaCallArguments) throws -> JinjaValue {
        func bind(_ names: [String], _ defaults: [String: JinjaValue] = [:]) throws -> [JinjaValue] {
            try arguments.bind(name, names, defaults: defaults)
        }
        switch name {
        case "tojson":
            let a = try bind(["ensure_ascii", "indent", "separators", "sort_keys"],
                             ["ensure_ascii": .bool(false), "indent": .none, "separators": .none, "sort_keys": .bool(false)])
            return .string(try JSONDumper(indent: try indentText(a[1]), separators: try separators(a[2]),
                                          sortKeys: a[3].isTruthy, ensureASCII: a[0].isTruthy).dumps(value))
        case "length", "count":
            _ = try bind([])
            return .int(try JinjaOperators.length(value))
        case "string":
            _ = try bind([])
            return .string(try softString(value))
        case "safe":
            _ = try bind([])
            return .string(try softString(value).withMarkup(true))
        case "e", "escape":
            _ = try bind([])
            return .string(try softString(value).htmlEscaped())
        case "trim":
            let chars = try bind(["chars"], ["chars": .none])[0]
            return .string(try softString(value).stripped(leading: true, trailing: true, chars: try optionalString(chars)))
        case "upper": _ = try bind([]); return .string(try softString(value).uppercased())
        case "lower": _ = try bind([]); return .string(try softString(value).lowercased())
        case "capitalize": _ = try bind([]); return .string(try softString(value).capitalized())
        case "title": _ = try bind([]); return .string(try softString(value).jinjaTitle())
        case "replace":
            let a = try bind(["old", "new", "count"], ["count": .none])
            let count = a[2].integerValue ?? -1
            return .string(try JinjaFormat.str(value).replacing(try JinjaFormat.str(a[0]), with: try JinjaFormat.str(a[1]), limit: count))
        case "default", "d":
            let a = try bind(["default_value", "boolean"], ["default_value": .literal(""), "boolean": .bool(false)])
            return value.isUndefined || (a[1].isTruthy && !value.isTruthy) ? a[0] : value
        case "join":
            let a = try bind(["d", "attribute"], ["d": .literal(""), "attribute": .none])
            var items = try JinjaOperators.iterate(value)
            if case .none = a[1] {} else { items = try items.map(attributeGetter(a[1])) }
            let separator = try JinjaFormat.str(a[0])
            var result = JinjaString()
            for (index, item) in items.enumerated() {
                if index > 0 { result.append(separator) }
                result.append(try JinjaFormat.str(item))
            }
            return .string(result)
        case "list": _ = try bind([]); return .list(try JinjaOperators.iterate(value))
        case "first":
            _ = try bind([])
            if case .string(let s) = value { return s.isEmpty ? .undefined("No first item, sequence was empty.") : .string(s.slice(0..<1)) }
            if case .iterator(let iterator) = value, let first = iterator.items.first { return first }
            return try JinjaOperators.iterate(value).first ?? .undefined("No first item, sequence was empty.")
        case "last":
            _ = try bind([])
            switch value {
            case .string(let s): return s.isEmpty ? .undefined("No last item, sequence was empty.") : .string(s.slice(s.count - 1..<s.count))
            case .undefined, .list, .tuple, .dictionary:
                return try JinjaOperators.iterate(value).last ?? .undefined("No last item, sequence was empty.")
            default: throw JinjaError.runtime("'\(value.typeName)' object is not reversible")
            }
        case "reverse":
            _ = try bind([])
            switch value {
            case .string(let s): return .string(s.picking(Array((0..<s.count).reversed())))
            case .list, .tuple, .dictionary, .undefined:  // Python's reversed(): an iterator
                return .iterator(try JinjaIterator { $0 = try JinjaOperators.iterate(value).reversed() })
            default: return .list(try JinjaOperators.iterate(value).reversed())
            }
        case "items":
            _ = try bind([])
            switch value {
            case .undefined: return .iterator(try JinjaIterator { _ in })
            case .dictionary(let dict): return .iterator(try JinjaIterator { $0 = dict.entries.map { .tuple([$0.key, $0.value]) } })
            default: return .iterator(try JinjaIterator { _ in throw JinjaError.runtime("Can only get item pairs from a mapping.") })
            }
        case "dictsort":
            let a = try bind(["case_sensitive", "by", "reverse"], ["case_sensitive": .bool(false), "by": .literal("key"), "reverse": .bool(false)])
            guard case .dictionary(let dict) = value else { throw JinjaError.runtime("'\(value.typeName)' object has no attribute 'items'") }
            guard case .string(let by) = a[1], by.text == "key" || by.text == "value" else {
                throw JinjaError.runtime("You can only sort by either \"key\" or \"value\"")
            }
            let pairs = dict.entries.map { JinjaValue.tuple([$0.key, $0.value]) }
            let position = by.text == "key" ? 0 : 1
            return .list(try sorted(pairs, reverse: a[2].isTruthy) { pair in
                guard case .tuple(let parts) = pair else { return pair }
                return a[0].isTruthy ? parts[position] : ignoringCase(parts[position])
            })
        case "sort":
            let a = try bind(["reverse", "case_sensitive", "attribute"], ["reverse": .bool(false), "case_sensitive": .bool(false), "attribute": .none])
            let getters = try attributeGetters(a[2])
            return .list(try sorted(try JinjaOperators.iterate(value), reverse: a[0].isTruthy) { item in
                .list(try getters.map { getter in
                    let key = try getter(item)
                    return a[1].isTruthy ? key : ignoringCase(key)
                })
            })
        case "unique":
            let a = try bind(["case_sensitive", "attribute"], ["case_sensitive": .bool(false), "attribute": .none])
            let getter = try attributeGetter(a[1])
            var seen = Set<JinjaDict.Key>()
            return .iterator(try JinjaIterator { unique in
                for item in try JinjaOperators.iterate(value) {
                    let key = try getter(item)
                    guard let hashKey = JinjaDict.key(a[0].isTruthy ? key : ignoringCase(key)) else {
                        throw JinjaError.runtime("unhashable type: '\(key.typeName)'")
                    }
                    if seen.insert(hashKey).inserted { unique.append(item) }
                }
            })
        case "min", "max":
            let a = try bind(["case_sensitive", "attribute"], ["case_sensitive": .bool(false), "attribute": .none])
            let getter = try attributeGetter(a[1])
            let items = try JinjaOperators.iterate(value)
            guard var best = items.first else { return .undefined("No aggregated item, sequence was empty.") }
            func key(_ item: JinjaValue) throws -> JinjaValue { a[0].isTruthy ? try getter(item) : ignoringCase(try getter(item)) }
            var bestKey = try key(best)
            for item in items.dropFirst() {
                let itemKey = try key(item)
                if try name == "min" ? JinjaCompare.less(itemKey, bestKey) : JinjaCompare.less(bestKey, itemKey, symbol: ">") {
                    (best, bestKey) = (item, itemKey)
                }
            }
            return best
        case "int":
            let a = try bind(["default", "base"], ["default": .int(0), "base": .int(10)])
            return try toInt(value, base: a[1].integerValue ?? 10) ?? a[0]
        case "float":
            let a = try bind(["default"], ["default": .double(0)])
            if let error = JinjaOperators.undefinedError(value) { throw error }
            if case .string(let s) = value { return parseFloat(s.text).map(JinjaValue.double) ?? a[0] }
            return value.numericValue.map(JinjaValue.double) ?? a[0]
        case "abs":
            _ = try bind([])
            switch value {
            case .bool, .int:
                let int = value.integerValue ?? 0
                return int < 0 ? try JinjaOperators.negate(.int(int)) : .int(int)
            case .double(let d): return .double(d.magnitude)
            default: throw JinjaError.runtime("bad operand type for abs(): '\(value.typeName)'")
            }
        case "attr":
            let attribute = try bind(["name"])[0]
            if let error = JinjaOperators.undefinedError(value) { throw error }
            guard case .string(let s) = attribute else { return .undefined("attribute name is not a string") }
            if case .dictionary = value, JinjaBuiltins.dictMethods.union(dictMutators).contains(s.text) == false {
                return .undefined("'dict object' has no attribute '\(s.text)'")
            }
            return try JinjaOperators.attribute(value, s.text)
        case "indent":
            let a = try bind(["width", "first", "blank"], ["width": .int(4), "first": .bool(false), "blank": .bool(false)])
            if let error = JinjaOperators.undefinedError(value) { throw error }
            guard case .string(let text) = value else {  // jinja2 appends "\n" to the value itself
                throw JinjaError.runtime("unsupported operand type(s) for +=: '\(value.typeName)' and 'str'")
            }
            return .string(try indent(text, width: a[0], first: a[1].isTruthy, blank: a[2].isTruthy))
        case "map":
            guard value.isTruthy else { return .iterator(try JinjaIterator { _ in }) }  // jinja2 skips a false value
            let function = try mapFunction(arguments)
            return .iterator(try JinjaIterator { mapped in
                for item in try JinjaOperators.iterate(value) { mapped.append(try function(item)) }
            })
        case "select", "reject", "selectattr", "rejectattr":
            guard value.isTruthy else { return .iterator(try JinjaIterator { _ in }) }
            let predicate = try selectPredicate(arguments, byAttribute: name.hasSuffix("attr"))
            let keep = name.hasPrefix("select")
            return .iterator(try JinjaIterator { selected in
                for item in try JinjaOperators.iterate(value) where try predicate(item) == keep { selected.append(item) }
            })
        default:
            throw JinjaError.unsupported("the filter `\(name)`")
        }
    }

    /// jinja2's `soft_str`: a string (Markup stays Markup), else `str(value)`.
    static func softString(_ value: JinjaValue) throws -> JinjaString {
        if case .string(let s) = value { return s }
        return try JinjaFormat.str(value)
    }

    private static func optionalString(_ value: JinjaValue) throws -> JinjaString? {
        switch value {
        case .none: return nil
        case .string(let s): return s
        default: throw JinjaError.runtime("strip arg must be None or str")
        }
    }

    private static func indentText(_ value: JinjaValue) throws -> String? {
        switch value {
        case .none: return nil
        case .string(let s): return s.text
        case .bool, .int:
            let width = max(0, value.integerValue ?? 0)
            try JinjaRenderer.checkSize((width, false))
            return String(repeating: " ", count: width)
        default: throw JinjaError.runtime("indent must be an int or a string")
        }
    }

    private static func separators(_ value: JinjaValue) throws -> (String, String)? {
        switch value {
        case .none: return nil
        case .list(let items), .tuple(let items):
            if items.count == 2, case .string(let item) = items[0], case .string(let key) = items[1] { return (item.text, key.text) }
        default: break
        }
        throw JinjaError.runtime("separators must be a pair of strings")
    }

    /// jinja2's `ignore_case`: strings lowercased, other values as they are.
    private static func ignoringCase(_ value: JinjaValue) -> JinjaValue {
        if case .string(let s) = value { return .string(s.lowercased()) }
        return value
    }

    /// Python's `sorted(items, key=key, reverse=reverse)`: stable, also when reversed.
    private static func sorted(_ items: [JinjaValue], reverse: Bool, key: (JinjaValue) throws -> JinjaValue) throws -> [JinjaValue] {
        let keys = try items.map(key)
        var failure: Error?
        let order = items.indices.sorted { a, b in
            do {
                if try reverse ? JinjaCompare.less(keys[b], keys[a]) : JinjaCompare.less(keys[a], keys[b]) { return true }
                if try reverse ? JinjaCompare.less(keys[a], keys[b]) : JinjaCompare.less(keys[b], keys[a]) { return false }
                return a < b
            } catch {
                failure = error
                return a < b
            }
        }
        if let failure { throw failure }
        return order.map { items[$0] }
    }

    /// jinja2's `make_attrgetter`: "a.b.0" looks up a, then b, then item 0; none: the item.
    static func attributeGetter(_ attribute: JinjaValue, default fallback: JinjaValue? = nil) throws -> (JinjaValue) throws -> JinjaValue {
        var parts: [JinjaValue] = []
        switch attribute {
        case .none: break
        case .string(let s):
            parts = s.split(separator: JinjaString(".", isData: false), maxSplit: -1, fromEnd: false).map { part in
                if !part.isEmpty, part.scalars.allSatisfy({ ("0"..."9").contains($0) }), let index = Int(part.text) { return .int(index) }
                return .string(part)
            }
        default: parts = [attribute]
        }
        return { item in
            var value = item
            for part in parts {
                value = try JinjaOperators.item(value, part)
                if let fallback, value.isUndefined { value = fallback }
            }
            return value
        }
    }

    /// `sort`'s attribute: several comma-separated paths make a list key.
    private static func attributeGetters(_ attribute: JinjaValue) throws -> [(JinjaValue) throws -> JinjaValue] {
        guard case .string(let s) = attribute else { return [try attributeGetter(attribute)] }
        return try s.split(separator: JinjaString(",", isData: false), maxSplit: -1, fromEnd: false).map { try attributeGetter(.string($0)) }
    }

    /// `map(attribute='x', default=...)` or `map('filter', args...)`.
    private static func mapFunction(_ arguments: JinjaCallArguments) throws -> (JinjaValue) throws -> JinjaValue {
        if arguments.positional.isEmpty, let attribute = arguments.keyword.first(where: { $0.0 == "attribute" })?.1 {
            let fallback = arguments.keyword.first(where: { $0.0 == "default" })?.1
            guard arguments.keyword.allSatisfy({ $0.0 == "attribute" || $0.0 == "default" }) else {
                throw JinjaError.runtime("Unexpected keyword argument for map")
            }
            return try attributeGetter(attribute, default: fallback)
        }
        guard case .string(let name)? = arguments.positional.first else { throw JinjaError.runtime("map requires a filter argument") }
        guard filters.contains(name.text) else { throw JinjaError.unsupported("the filter `\(name.text)`") }
        let rest = JinjaCallArguments(positional: Array(arguments.positional.dropFirst()), keyword: arguments.keyword)
        return { try filter(name.text, $0, rest) }
    }

    /// `select('test', args...)`, `selectattr('attr', 'test', args...)`, no test: truthiness.
    private static func selectPredicate(_ arguments: JinjaCallArguments, byAttribute: Bool) throws -> (JinjaValue) throws -> Bool {
        var positional = arguments.positional
        var getter: (JinjaValue) throws -> JinjaValue = { $0 }
        if byAttribute {
            guard !positional.isEmpty else { throw JinjaError.runtime("Missing parameter for attribute name") }
            getter = try attributeGetter(positional.removeFirst())
        }
        guard !positional.isEmpty else { return { try getter($0).isTruthy } }
        guard case .string(let name) = positional.removeFirst() else { throw JinjaError.runtime("a test name must be a string") }
        guard tests.contains(name.text) else { throw JinjaError.unsupported("the test `\(name.text)`") }
        let rest = JinjaCallArguments(positional: positional, keyword: arguments.keyword)
        return { try test(name.text, try getter($0), rest) }
    }

    /// jinja2's `indent`: lines after the first (and blank ones with `blank`) indented.
    private static func indent(_ text: JinjaString, width: JinjaValue, first: Bool, blank: Bool) throws -> JinjaString {
        let indentation = JinjaString(try indentText(width) ?? "", isData: false, isMarkup: text.isMarkup)
        let newline = JinjaString("\n", isData: false, isMarkup: text.isMarkup)
        var lines = (text + newline).splitLines()
        var result = JinjaString([], isData: false, isMarkup: text.isMarkup)
        if blank {
            for (index, line) in lines.enumerated() {
                if index > 0 { result.append(newline + indentation) }
                result.append(line)
            }
        } else if !lines.isEmpty {
            result.append(lines.removeFirst())
            if !lines.isEmpty {
                result.append(newline)
                for (index, line) in lines.enumerated() {
                    if index > 0 { result.append(newline) }
                    if !line.isEmpty { result.append(indentation) }
                    result.append(line)
                }
            }
        }
        return first ? indentation + result : result
    }

    /// The `int` filter: int(value) (a string in `base`), else int(float(value)), else nil.
    private static func toInt(_ value: JinjaValue, base: Int) throws -> JinjaValue? {
        if let error = JinjaOperators.undefinedError(value) { throw error }
        if let int = value.integerValue { return .int(int) }
        var double = value.numericValue
        if case .string(let s) = value {
            let text = s.stripped(leading: true, trailing: true).text
            var digits = text.hasPrefix("-") || text.hasPrefix("+") ? String(text.dropFirst()) : text
            var radix = base
            // A 0x / 0o / 0b prefix is allowed in its base, and picks the base when it is 0.
            for (prefix, prefixBase) in [("0x", 16), ("0o", 8), ("0b", 2)] where digits.lowercased().hasPrefix(prefix) && (base == prefixBase || base == 0) {
                digits = String(digits.dropFirst(2))
                if digits.hasPrefix("_") { digits.removeFirst() }
                radix = prefixBase
            }
            if radix == 0 { radix = 10 }
            if (2...36).contains(radix), !digits.isEmpty, !digits.hasPrefix("_"), !digits.hasSuffix("_"), !digits.contains("__"),
               let int = Int(digits.filter { $0 != "_" }, radix: radix) {
                return .int(text.hasPrefix("-") ? -int : int)
            }
            double = parseFloat(s.text)
        }
        guard let double, double.isFinite, let int = Int(exactly: double.rounded(.towardZero)) else { return nil }
        return .int(int)
    }

    /// Python's `float(text)`: surrounding whitespace, digits with single underscores, an
    /// optional exponent, inf / infinity / nan in any case.
    static func parseFloat(_ text: String) -> Double? {
        let trimmed = JinjaString(text, isData: false).stripped(leading: true, trailing: true).text
        let unsigned = trimmed.hasPrefix("-") || trimmed.hasPrefix("+") ? String(trimmed.dropFirst()) : trimmed
        let negative = trimmed.hasPrefix("-")
        switch unsigned.lowercased() {
        case "inf", "infinity": return negative ? -.infinity : .infinity
        case "nan": return .nan
        default: break
        }
        let characters = Array(unsigned)
        func isDigit(_ index: Int) -> Bool { characters.indices.contains(index) && ("0"..."9").contains(characters[index]) }
        for (index, character) in characters.enumerated() {
            guard character.isASCII, character.isNumber || ".eE+-_".contains(character) else { return nil }
            // An underscore only between digits; a sign only after the exponent's e.
            if character == "_", !(isDigit(index - 1) && isDigit(index + 1)) { return nil }
            if character == "+" || character == "-", index == 0 || !"eE".contains(characters[index - 1]) { return nil }
        }
        guard characters.contains(where: \.isNumber), let value = Double(String(characters.filter { $0 != "_" })) else { return nil }
        return negative ? -value : value
    }

    /// `dict(...)` / `namespace(...)` arguments: a mapping or pairs, then keywords.
    static func makeDict(_ arguments: JinjaCallArguments) throws -> JinjaDict {
        guard arguments.positional.count <= 1 else { throw JinjaError.runtime("dict expected at most 1 argument") }
        var dict = JinjaDict()
        if let source = arguments.positional.first {
            if case .dictionary(let other) = source {
                dict = other
            } else {
                for pair in try JinjaOperators.iterate(source) {
                    let parts = try JinjaOperators.iterate(pair)
                    guard parts.count == 2 else { throw JinjaError.runtime("dictionary update sequence element has length \(parts.count); 2 is required") }
                    guard JinjaDict.key(parts[0]) != nil else { throw JinjaError.runtime("unhashable type: '\(parts[0].typeName)'") }
                    dict[parts[0]] = parts[1]
                }
            }
        }
        for (name, value) in arguments.keyword { dict[.string(JinjaString(name, isData: false))] = value }
        return dict
    }

    // MARK: Tests

    static func test(_ name: String, _ value: JinjaValue, _ arguments: JinjaCallArguments) throws -> Bool {
        func argument() throws -> JinjaValue { try arguments.bind(name, ["other"])[0] }
        let takesArgument: Set = ["divisibleby", "eq", "equalto", "==", "ne", "!=", "lt", "lessthan", "<", "le", "<=",
                                  "gt", "greaterthan", ">", "ge", ">=", "in", "sameas"]
        if !takesArgument.contains(name) { _ = try arguments.bind(name, []) }
        switch name {
        case "defined": return !value.isUndefined
        case "undefined": return value.isUndefined
        case "none": if case .none = value { return true } else { return false }
        case "boolean": if case .bool = value { return true } else { return false }
        case "false": if case .bool(false) = value { return true } else { return false }
        case "true": if case .bool(true) = value { return true } else { return false }
        case "integer": if case .int = value { return true } else { return false }
        case "float": if case .double = value { return true } else { return false }
        case "number": return value.isNumber
        case "string": return value.isString
        case "mapping": return value.isDict
        case "sequence":
            switch value {
            case .undefined, .string, .list, .tuple, .dictionary: return true
            default: return false
            }
        case "iterable":
            switch value {
            case .undefined, .string, .list, .tuple, .dictionary, .loop, .iterator: return true
            default: return false
            }
        case "callable":
            switch value {
            case .macro, .function, .method, .loop: return true
            default: return false
            }
        case "odd", "even", "divisibleby":
            let divisor = name == "divisibleby" ? try argument() : .int(2)
            let remainder = try JinjaOperators.binary(.modulo, value, divisor)
            return try JinjaCompare.equal(remainder, .int(name == "odd" ? 1 : 0))
        case "eq", "equalto", "==": return try JinjaCompare.equal(value, try argument())
        case "ne", "!=": return try !JinjaCompare.equal(value, try argument())
        case "lt", "lessthan", "<": return try JinjaCompare.compare(.less, value, try argument())
        case "le", "<=": return try JinjaCompare.compare(.lessOrEqual, value, try argument())
        case "gt", "greaterthan", ">": return try JinjaCompare.compare(.greater, value, try argument())
        case "ge", ">=": return try JinjaCompare.compare(.greaterOrEqual, value, try argument())
        case "in": return try JinjaOperators.contains(try argument(), value)
        case "sameas":
            let other = try argument()
            switch (value, other) {
            case (.none, .none): return true
            case (.bool(let a), .bool(let b)): return a == b
            case (.int(let a), .int(let b)): return a == b && (-5...256).contains(a)  // CPython's cached ints
            case (.namespace(let a), .namespace(let b)): return a === b
            case (.macro(let a), .macro(let b)): return a === b
            default: return false
            }
        case "lower", "upper":
            return try JinjaMethods.call(.string(try JinjaFormat.str(value)), "is" + name, JinjaCallArguments()).isTruthy
        case "escaped": if case .string(let s) = value { return s.isMarkup } else { return false }
        case "filter", "test":
            guard case .string(let s) = value else { return false }
            return (name == "filter" ? filters : tests).contains(s.text)
        default:
            throw JinjaError.unsupported("the test `\(name)`")
        }
    }
}
