/// The Python methods templates call on values: str methods (results of a Markup string
/// are Markup, and the strings it takes in are escaped, as markupsafe does), dict.get /
/// items / keys / values, list.count and `loop.cycle`.
enum JinjaMethods {
    static func call(_ receiver: JinjaValue, _ name: String, _ arguments: JinjaCallArguments) throws -> JinjaValue {
        func bind(_ names: [String], _ defaults: [String: JinjaValue] = [:]) throws -> [JinjaValue] {
            try arguments.bind(name, names, defaults: defaults)
        }
        switch receiver {
        case .string(let s):
            return try stringMethod(s, name, arguments)
        case .dictionary(let dict):
            switch name {
            case "get":
                let a = try bind(["key", "default"], ["default": .none])
                guard JinjaDict.key(a[0]) != nil else { throw JinjaError.runtime("unhashable type: '\(a[0].typeName)'") }
                return dict[a[0]] ?? a[1]
            case "items": _ = try bind([]); return .list(dict.entries.map { .tuple([$0.key, $0.value]) })
            case "keys": _ = try bind([]); return .list(dict.keys)
            case "values": _ = try bind([]); return .list(dict.values)
            default: break
            }
        case .list(let items), .tuple(let items):
            if name == "count" {
                let item = try bind(["value"])[0]
                return .int(try items.filter { try JinjaCompare.equal($0, item) }.count)
            }
        case .loop(let loop):
            if name == "cycle" {
                guard !arguments.positional.isEmpty else { throw JinjaError.runtime("no items for cycling given") }
                return arguments.positional[loop.index0 % arguments.positional.count]
            }
        default:
            break
        }
        throw JinjaError.unsupported("the method `\(name)`")
    }

    private static func string(_ value: JinjaValue, _ what: String) throws -> JinjaString {
        guard case .string(let s) = value else { throw JinjaError.runtime("\(what) must be str, not \(value.typeName)") }
        return s
    }

    /// `value` as Markup content: escaped unless it is Markup already.
    private static func escapedForMarkup(_ value: JinjaString, receiver: JinjaString) -> JinjaString {
        receiver.isMarkup ? value.htmlEscaped() : value
    }

    /// Python's index adjustment for `find(sub, start, end)`-style arguments.
    private static func range(_ start: JinjaValue, _ end: JinjaValue, count: Int) throws -> Range<Int> {
        func position(_ value: JinjaValue, _ fallback: Int) throws -> Int {
            if case .none = value { return fallback }
            guard let int = value.integerValue else { throw JinjaError.runtime("slice indices must be integers or None") }
            return int < 0 ? max(0, int + count) : min(int, count)
        }
        let lower = try position(start, 0)
        return lower..<max(lower, try position(end, count))
    }

    private static func stringMethod(_ s: JinjaString, _ name: String, _ arguments: JinjaCallArguments) throws -> JinjaValue {
        func bind(_ names: [String], _ defaults: [String: JinjaValue] = [:]) throws -> [JinjaValue] {
            try arguments.bind(name, names, defaults: defaults)
        }
        func predicate(_ test: (Unicode.Scalar) -> Bool) throws -> JinjaValue {
            _ = try bind([])
            return .bool(!s.isEmpty && s.scalars.allSatisfy(test))
        }
        switch name {
        case "strip", "lstrip", "rstrip":
            let chars = try bind(["chars"], ["chars": .none])[0]
            let set: JinjaString? = chars.isNone ? nil : try string(chars, "strip arg")
            return .string(s.stripped(leading: name != "rstrip", trailing: name != "lstrip", chars: set))
        case "split", "rsplit":
            let a = try bind(["sep", "maxsplit"], ["sep": .none, "maxsplit": .int(-1)])
            guard let maxSplit = a[1].integerValue else { throw JinjaError.runtime("maxsplit must be an integer") }
            if a[0].isNone { return .list(s.splitOnWhitespace(maxSplit: maxSplit, fromEnd: name == "rsplit").map(JinjaValue.string)) }
            let separator = try string(a[0], "separator")
            guard !separator.isEmpty else { throw JinjaError.runtime("empty separator") }
            return .list(s.split(separator: separator, maxSplit: maxSplit, fromEnd: name == "rsplit").map(JinjaValue.string))
        case "splitlines":
            guard !(try bind(["keepends"], ["keepends": .bool(false)])[0].isTruthy) else {
                throw JinjaError.unsupported("`splitlines(keepends=True)`")
            }
            return .list(s.splitLines().map(JinjaValue.string))
        case "startswith", "endswith":
            let a = try bind(["prefix", "start", "end"], ["start": .none, "end": .none])
            let window = s.slice(try range(a[1], a[2], count: s.count))
            let candidates: [JinjaValue]
            switch a[0] {
            case .string: candidates = [a[0]]
            case .tuple(let items): candidates = items
            default: throw JinjaError.runtime("\(name) first arg must be str or a tuple of str, not \(a[0].typeName)")
            }
            for candidate in candidates {
                let affix = try string(candidate, "tuple for \(name)")
                if name == "startswith" ? window.hasPrefix(affix) : window.hasSuffix(affix) { return .bool(true) }
            }
            return .bool(false)
        case "replace":
            let a = try bind(["old", "new", "count"], ["count": .int(-1)])
            guard let count = a[2].integerValue else { throw JinjaError.runtime("count must be an integer") }
            let new = escapedForMarkup(try string(a[1], "replace() argument 2"), receiver: s)
            return .string(s.replacing(try string(a[0], "replace() argument 1"), with: new, limit: count))
        case "upper": _ = try bind([]); return .string(s.uppercased())
        case "lower": _ = try bind([]); return .string(s.lowercased())
        case "title": _ = try bind([]); return .string(s.pythonTitle())
        case "capitalize": _ = try bind([]); return .string(s.capitalized())
        case "find", "rfind", "count":
            let a = try bind(["sub", "start", "end"], ["start": .none, "end": .none])
            let window = try range(a[1], a[2], count: s.count)
            let part = s.slice(window)
            let sub = try string(a[0], "must be str")
            if name == "count" { return .int(window.isEmpty && !sub.isEmpty ? 0 : part.occurrenceCount(sub)) }
            let found = part.find(sub, fromEnd: name == "rfind")
            return .int(found < 0 ? -1 : found + window.lowerBound)
        case "removeprefix", "removesuffix":
            let affix = try string(try bind(["affix"])[0], "\(name)() argument")
            if name == "removeprefix" { return .string(s.hasPrefix(affix) ? s.slice(affix.count..<s.count) : s) }
            return .string(s.hasSuffix(affix) && !affix.isEmpty ? s.slice(0..<s.count - affix.count) : s)
        case "join":
            let items = try JinjaOperators.iterate(try bind(["iterable"])[0])
            var result = JinjaString([], isData: false, isMarkup: s.isMarkup)
            for (index, item) in items.enumerated() {
                guard case .string(let text) = item else {
                    throw JinjaError.runtime("sequence item \(index): expected str instance, \(item.typeName) found")
                }
                if index > 0 { result.append(s) }
                result.append(escapedForMarkup(text, receiver: s))
            }
            return .string(result)
        case "format":
            return .string(try format(s, arguments))
        case "isspace": return try predicate(JinjaString.isSpace)
        case "isdigit": return try predicate { [.decimal, .digit].contains($0.properties.numericType) }
        case "isalpha": return try predicate(isAlpha)
        case "isalnum": return try predicate { isAlpha($0) || $0.properties.numericType != nil }
        case "islower", "isupper":
            _ = try bind([])
            var sawCased = false
            for scalar in s.scalars {
                let properties = scalar.properties
                if name == "islower" ? (properties.isUppercase || properties.generalCategory == .titlecaseLetter) : properties.isLowercase || properties.generalCategory == .titlecaseLetter {
                    return .bool(false)
                }
                if properties.isLowercase || properties.isUppercase { sawCased = true }
            }
            return .bool(sawCased)
        default:
            throw JinjaError.unsupported("the method `\(name)`")
        }
    }

    private static func isAlpha(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    /// `str.format(*args, **kwargs)` with `{}`, `{0}`, `{name}`, `!s` / `!r` and `{{` `}}`;
    /// format specs and field paths are refused.
    private static func format(_ template: JinjaString, _ arguments: JinjaCallArguments) throws -> JinjaString {
        let scalars = template.scalars
        var result = JinjaString([], isData: false, isMarkup: template.isMarkup)
        var automatic = 0
        var numbering: Bool?  // true: automatic, false: manual
        var index = 0
        var textStart = 0
        func flushText(_ end: Int) {
            result.append(template.slice(textStart..<end))
        }
        while index < scalars.count {
            let scalar = scalars[index]
            guard scalar == "{" || scalar == "}" else { index += 1; continue }
            flushText(index)
            if index + 1 < scalars.count, scalars[index + 1] == scalar {
                result.append(template.slice(index..<index + 1))
                index += 2
                textStart = index
                continue
            }
            guard scalar == "{" else { throw JinjaError.runtime("Single '}' encountered in format string") }
            guard let close = scalars[index...].firstIndex(of: "}") else { throw JinjaError.runtime("Single '{' encountered in format string") }
            var field = template.slice(index + 1..<close).text
            var conversion: Character?
            if let bang = field.lastIndex(of: "!") {
                conversion = field[field.index(after: bang)...].first
                guard field.distance(from: bang, to: field.endIndex) == 2, conversion == "s" || conversion == "r" else {
                    throw JinjaError.unsupported("this replacement field in `format`")
                }
                field = String(field[..<bang])
            }
            guard !field.contains(where: { ":.[{".contains($0) }) else { throw JinjaError.unsupported("a format spec or field path in `format`") }
            let value: JinjaValue
            if field.isEmpty || field.allSatisfy(\.isNumber) {
                let isAutomatic = field.isEmpty
                if let numbering, numbering != isAutomatic {
                    throw JinjaError.runtime("cannot switch between automatic and manual field numbering")
                }
                numbering = isAutomatic
                let position = isAutomatic ? automatic : Int(field) ?? Int.max
                if isAutomatic { automatic += 1 }
                guard position < arguments.positional.count else {
                    throw JinjaError.runtime("Replacement index \(position) out of range for positional args tuple")
                }
                value = arguments.positional[position]
            } else {
                guard let named = arguments.keyword.first(where: { $0.0 == field }) else { throw JinjaError.runtime("KeyError: '\(field)'") }
                value = named.1
            }
            let text = conversion == "r" ? try JinjaFormat.repr(value, depth: 0) : try JinjaBuiltins.softString(value)
            result.append(escapedForMarkup(text.isMarkup ? text : text.plain, receiver: template))
            index = close + 1
            textStart = index
        }
        flushText(scalars.count)
        return result
    }
}
