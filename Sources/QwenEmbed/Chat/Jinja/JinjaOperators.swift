#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Python's operators on template values, as the code jinja2 compiles templates to runs
/// them under transformers' sandbox: arithmetic with Python's int / float rules, Markup
/// escaping in `+`, attribute and item lookup with jinja2's fallbacks to Undefined,
/// slicing, membership and iteration. Undefined operands raise what jinja2 raises.
enum JinjaOperators {
    /// The error jinja2 raises when an Undefined is used (its text says what was missing).
    static func undefinedError(_ value: JinjaValue) -> JinjaError? {
        if case .undefined(let hint) = value { return .runtime(hint) }
        return nil
    }

    private static func operandError(_ symbol: String, _ a: JinjaValue, _ b: JinjaValue) -> JinjaError {
        .runtime("unsupported operand type(s) for \(symbol): '\(a.typeName)' and '\(b.typeName)'")
    }

    private static func checked(_ result: (partialValue: Int, overflow: Bool)) throws -> Int {
        guard !result.overflow else { throw JinjaError.unsupported("integer arithmetic beyond 64 bits") }
        return result.partialValue
    }

    static func binary(_ op: JinjaBinaryOperator, _ a: JinjaValue, _ b: JinjaValue) throws -> JinjaValue {
        if let error = undefinedError(a) ?? undefinedError(b) { throw error }
        if let x = a.integerValue, let y = b.integerValue { return try integerArithmetic(op, x, y) }
        if let x = a.numericValue, let y = b.numericValue { return try floatArithmetic(op, x, y) }
        switch (op, a, b) {
        case (.add, .string(let x), .string(let y)): return .string(concatenate(x, y))
        case (.add, .list(let x), .list(let y)): return .list(x + y)
        case (.add, .tuple(let x), .tuple(let y)): return .tuple(x + y)
        case (.add, .string, _), (.add, .list, _), (.add, .tuple, _):
            throw JinjaError.runtime("can only concatenate \(a.typeName) (not \"\(b.typeName)\") to \(a.typeName)")
        case (.multiply, _, _):
            if let count = b.integerValue, let result = try repeated(a, count) { return result }
            if let count = a.integerValue, let result = try repeated(b, count) { return result }
        case (.modulo, .string, _):
            throw JinjaError.unsupported("`%` string formatting")
        default:
            break
        }
        throw operandError(op.rawValue, a, b)
    }

    /// `a + b` of two strings; when one is Markup the other is HTML-escaped (markupsafe).
    static func concatenate(_ x: JinjaString, _ y: JinjaString) -> JinjaString {
        switch (x.isMarkup, y.isMarkup) {
        case (true, false): return x + y.htmlEscaped()
        case (false, true): return x.htmlEscaped() + y
        default: return x + y
        }
    }

    /// `sequence * count`, nil when `value` is no sequence.
    private static func repeated(_ value: JinjaValue, _ count: Int) throws -> JinjaValue? {
        let times = max(0, count)
        switch value {
        case .string(let s):
            try JinjaRenderer.checkSize(s.count.multipliedReportingOverflow(by: times))
            return .string(s.repeated(times))
        case .list(let items), .tuple(let items):
            try JinjaRenderer.checkSize(items.count.multipliedReportingOverflow(by: times))
            let result = Array((0..<times).map { _ in items }.joined())
            if case .tuple = value { return .tuple(result) }
            return .list(result)
        default:
            return nil
        }
    }

    private static func integerArithmetic(_ op: JinjaBinaryOperator, _ x: Int, _ y: Int) throws -> JinjaValue {
        switch op {
        case .add: return .int(try checked(x.addingReportingOverflow(y)))
        case .subtract: return .int(try checked(x.subtractingReportingOverflow(y)))
        case .multiply: return .int(try checked(x.multipliedReportingOverflow(by: y)))
        case .divide: return try floatArithmetic(.divide, Double(x), Double(y))
        case .floorDivide, .modulo:
            guard y != 0 else { throw JinjaError.runtime("integer division or modulo by zero") }
            var quotient = try checked(x.dividedReportingOverflow(by: y))
            var remainder = x % y
            if remainder != 0 && (remainder < 0) != (y < 0) {  // Python floors
                quotient -= 1
                remainder += y
            }
            return .int(op == .floorDivide ? quotient : remainder)
        case .power:
            guard y >= 0 else { return try floatArithmetic(.power, Double(x), Double(y)) }
            var result = 1, base = x, exponent = y
            while exponent > 0 {
                if exponent & 1 == 1 { result = try checked(result.multipliedReportingOverflow(by: base)) }
                exponent >>= 1
                if exponent > 0 { base = try checked(base.multipliedReportingOverflow(by: base)) }
            }
            return .int(result)
        }
    }

    private static func floatArithmetic(_ op: JinjaBinaryOperator, _ x: Double, _ y: Double) throws -> JinjaValue {
        switch op {
        case .add: return .double(x + y)
        case .subtract: return .double(x - y)
        case .multiply: return .double(x * y)
        case .divide:
            guard y != 0 else { throw JinjaError.runtime("division by zero") }
            return .double(x / y)
        case .floorDivide, .modulo:
            guard y != 0 else { throw JinjaError.runtime("float \(op == .modulo ? "modulo" : "floor division by zero")") }
            // CPython's float_divmod.
            var mod = x.truncatingRemainder(dividingBy: y)
            var div = (x - mod) / y
            if mod != 0 {
                if (y < 0) != (mod < 0) {
                    mod += y
                    div -= 1
                }
            } else {
                mod = Double(signOf: y, magnitudeOf: 0)
            }
            if op == .modulo { return .double(mod) }
            guard div != 0 else { return .double(Double(signOf: x / y, magnitudeOf: 0)) }
            var floorDiv = div.rounded(.down)
            if div - floorDiv > 0.5 { floorDiv += 1 }
            return .double(floorDiv)
        case .power:
            if x == 0 && y < 0 { throw JinjaError.runtime("0.0 cannot be raised to a negative power") }
            if x < 0 && y != y.rounded() { throw JinjaError.unsupported("a complex power") }
            return .double(pow(x, y))
        }
    }

    static func negate(_ value: JinjaValue) throws -> JinjaValue {
        if let error = undefinedError(value) { throw error }
        switch value {
        case .bool, .int: return .int(try checked((0).subtractingReportingOverflow(value.integerValue ?? 0)))
        case .double(let d): return .double(-d)
        default: throw JinjaError.runtime("bad operand type for unary -: '\(value.typeName)'")
        }
    }

    static func positive(_ value: JinjaValue) throws -> JinjaValue {
        if let error = undefinedError(value) { throw error }
        switch value {
        case .bool, .int: return .int(value.integerValue ?? 0)
        case .double: return value
        default: throw JinjaError.runtime("bad operand type for unary +: '\(value.typeName)'")
        }
    }

    // MARK: Lookup

    /// `obj.name` under the sandbox: a method or attribute of the Python object first, then
    /// the item `obj['name']`, else Undefined. A method that changes its object (`pop`,
    /// `append`, ...) is an Undefined that fails when used, as the sandbox's is.
    static func attribute(_ object: JinjaValue, _ name: String) throws -> JinjaValue {
        if let error = undefinedError(object) { throw error }
        if let method = method(object, name) { return method }
        switch object {
        case .dictionary(let dict):
            if let value = dict[name] { return value }
        case .namespace(let namespace):
            if let value = namespace.attributes[name] { return value }
        case .loop(let loop):
            if let value = loop.attribute(name) { return value }
        default:
            break
        }
        return missingAttribute(object, name)
    }

    /// The bound method `object.name`, or the sandbox's unsafe Undefined for a mutating one.
    private static func method(_ object: JinjaValue, _ name: String) -> JinjaValue? {
        let methods: Set<String>
        var mutators: Set<String> = []
        switch object {
        case .string: methods = JinjaBuiltins.stringMethods.union(JinjaBuiltins.refusedStringMethods)
        case .dictionary: (methods, mutators) = (JinjaBuiltins.dictMethods.union(["copy", "fromkeys"]), JinjaBuiltins.dictMutators)
        case .list: (methods, mutators) = (JinjaBuiltins.listMethods.union(["index", "copy"]), JinjaBuiltins.listMutators)
        case .tuple: methods = JinjaBuiltins.listMethods.union(["index"])
        default: return nil
        }
        if mutators.contains(name) {
            return .undefined("access to attribute '\(name)' of '\(object.typeName)' object is unsafe.")
        }
        return methods.contains(name) ? .method(object, name) : nil
    }

    private static func missingAttribute(_ object: JinjaValue, _ name: String) -> JinjaValue {
        .undefined("'\(objectDescription(object))' has no attribute '\(name)'")
    }

    /// jinja2's `object_type_repr`: "dict object", "None", ...
    private static func objectDescription(_ object: JinjaValue) -> String {
        if case .none = object { return "None" }
        return "\(object.typeName) object"
    }

    /// `obj[key]` under the sandbox: the item first, then (for a string key) the attribute,
    /// else Undefined.
    static func item(_ object: JinjaValue, _ key: JinjaValue) throws -> JinjaValue {
        if let error = undefinedError(object) { throw error }
        switch object {
        case .dictionary(let dict):
            if let value = dict[key] { return value }
        case .list(let items), .tuple(let items):
            if let index = key.integerValue {
                let position = index < 0 ? index + items.count : index
                if items.indices.contains(position) { return items[position] }
            }
        case .string(let s):
            if let index = key.integerValue {
                let position = index < 0 ? index + s.count : index
                if (0..<s.count).contains(position) { return .string(s.slice(position..<position + 1)) }
            }
        default:
            break
        }
        if case .string(let name) = key { return try attribute(object, name.text) }
        return .undefined("'\(objectDescription(object))' has no element \((try? JinjaFormat.repr(key, depth: 0).text) ?? "")")
    }

    /// `obj[start:stop:step]` with Python's index rules.
    static func slice(_ object: JinjaValue, start: JinjaValue, stop: JinjaValue, step: JinjaValue) throws -> JinjaValue {
        if let error = undefinedError(object) { throw error }
        func index(_ value: JinjaValue) throws -> Int? {
            if case .none = value { return nil }
            guard let int = value.integerValue else {
                throw JinjaError.runtime("slice indices must be integers or None or have an __index__ method")
            }
            return int
        }
        let stride = try index(step) ?? 1
        guard stride != 0 else { throw JinjaError.runtime("slice step cannot be zero") }
        let length: Int
        switch object {
        case .string(let s): length = s.count
        case .list(let items), .tuple(let items): length = items.count
        case .dictionary: throw JinjaError.runtime("unhashable type: 'slice'")
        default: throw JinjaError.runtime("'\(object.typeName)' object is not subscriptable")
        }
        func adjust(_ value: Int) -> Int {
            if value < 0 { return value + length < 0 ? (stride < 0 ? -1 : 0) : value + length }
            return value >= length ? (stride < 0 ? length - 1 : length) : value
        }
        let first = adjust(try index(start) ?? (stride < 0 ? Int.max : 0))
        let end = adjust(try index(stop) ?? (stride < 0 ? Int.min : Int.max))
        var positions: [Int] = []
        var position = first
        while stride > 0 ? position < end : position > end {
            positions.append(position)
            let next = position.addingReportingOverflow(stride)
            if next.overflow { break }
            position = next.partialValue
        }
        switch object {
        case .string(let s): return .string(stride == 1 ? s.slice(first..<max(first, end)) : s.picking(positions))
        case .tuple(let items): return .tuple(positions.map { items[$0] })
        case .list(let items): return .list(positions.map { items[$0] })
        default: return .undefined("")
        }
    }

    // MARK: Containers

    /// The items a `for` loop (or `list`, `join`, ...) goes through: a dict's keys, a
    /// string's characters, nothing for Undefined.
    static func iterate(_ value: JinjaValue) throws -> [JinjaValue] {
        switch value {
        case .undefined: return []
        case .list(let items), .tuple(let items): return items
        case .dictionary(let dict): return dict.keys
        case .string(let s): return (0..<s.count).map { .string(s.slice($0..<$0 + 1).withMarkup(false)) }
        case .iterator(let iterator): return try iterator.consume()
        default: throw JinjaError.runtime("'\(value.typeName)' object is not iterable")
        }
    }

    static func length(_ value: JinjaValue) throws -> Int {
        switch value {
        case .undefined: return 0
        case .string(let s): return s.count
        case .list(let items), .tuple(let items): return items.count
        case .dictionary(let dict): return dict.count
        default: throw JinjaError.runtime("object of type '\(value.typeName)' has no len()")
        }
    }

    /// `item in container`.
    static func contains(_ container: JinjaValue, _ item: JinjaValue) throws -> Bool {
        switch container {
        case .undefined: return false
        case .string(let s):
            guard case .string(let sub) = item else {
                throw JinjaError.runtime("'in <string>' requires string as left operand, not \(item.typeName)")
            }
            return s.contains(sub)
        case .list(let items), .tuple(let items):
            return try items.contains { try JinjaCompare.equal($0, item) }
        case .dictionary(let dict):
            guard JinjaDict.key(item) != nil else { throw JinjaError.runtime("unhashable type: '\(item.typeName)'") }
            return dict[item] != nil
        case .iterator(let iterator):
            if try iterator.items.contains(where: { try JinjaCompare.equal($0, item) }) { return true }
            _ = try iterator.consume()
            return false
        default:
            throw JinjaError.runtime("argument of type '\(container.typeName)' is not iterable")
        }
    }
}

/// Python's `==` and ordering.
enum JinjaCompare {
    static func equal(_ a: JinjaValue, _ b: JinjaValue, depth: Int = 0) throws -> Bool {
        guard depth < JinjaFormat.maxDepth else { throw JinjaError.limit("a value nested more than \(JinjaFormat.maxDepth) deep") }
        switch (a, b) {
        case (.undefined, .undefined), (.none, .none): return true
        case (.string(let x), .string(let y)): return x == y
        case (.list(let x), .list(let y)), (.tuple(let x), .tuple(let y)):
            guard x.count == y.count else { return false }
            for (p, q) in zip(x, y) where !(try equal(p, q, depth: depth + 1)) { return false }
            return true
        case (.dictionary(let x), .dictionary(let y)):
            guard x.count == y.count else { return false }
            for entry in x.entries {
                guard let other = y[entry.key], try equal(entry.value, other, depth: depth + 1) else { return false }
            }
            return true
        case (.namespace(let x), .namespace(let y)): return x === y
        case (.macro(let x), .macro(let y)): return x === y
        case (.loop(let x), .loop(let y)): return x === y
        case (.function(let x), .function(let y)): return x == y
        default:
            if let x = a.integerValue, let y = b.integerValue { return x == y }
            if let x = a.numericValue, let y = b.numericValue { return x == y }
            return false
        }
    }

    /// `a < b` (`symbol` names the operator in the TypeError for mismatched types).
    static func less(_ a: JinjaValue, _ b: JinjaValue, symbol: String = "<", depth: Int = 0) throws -> Bool {
        guard depth < JinjaFormat.maxDepth else { throw JinjaError.limit("a value nested more than \(JinjaFormat.maxDepth) deep") }
        if let error = JinjaOperators.undefinedError(a) ?? JinjaOperators.undefinedError(b) { throw error }
        if let x = a.integerValue, let y = b.integerValue { return x < y }
        if let x = a.numericValue, let y = b.numericValue { return x < y }
        switch (a, b) {
        case (.string(let x), .string(let y)):
            return x.scalars.lexicographicallyPrecedes(y.scalars) { $0.value < $1.value }
        case (.list(let x), .list(let y)), (.tuple(let x), .tuple(let y)):
            for (p, q) in zip(x, y) where !(try equal(p, q, depth: depth + 1)) {
                return try less(p, q, symbol: symbol, depth: depth + 1)
            }
            return x.count < y.count
        default:
            throw JinjaError.runtime("'\(symbol)' not supported between instances of '\(a.typeName)' and '\(b.typeName)'")
        }
    }

    static func compare(_ op: JinjaCompareOperator, _ a: JinjaValue, _ b: JinjaValue) throws -> Bool {
        switch op {
        case .equal: return try equal(a, b)
        case .notEqual: return try !equal(a, b)
        case .less: return try less(a, b)
        case .greater: return try less(b, a, symbol: ">")
        case .lessOrEqual: return try less(a, b, symbol: "<=") || equal(a, b)
        case .greaterOrEqual: return try less(b, a, symbol: ">=") || equal(a, b)
        case .contains: return try JinjaOperators.contains(b, a)
        case .notContains: return try !JinjaOperators.contains(b, a)
        }
    }
}
