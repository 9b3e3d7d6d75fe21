/// A run of rendered text and where it came from: `isData` when it came from the caller's
/// values (message content, tool names, arguments, ...), false when the template wrote it.
/// `JinjaTemplate.render` merges adjacent segments of the same kind.
struct TemplateSegment: Equatable, Sendable {
    var text: String
    var isData: Bool
}

/// A value as a chat template sees it: the Python objects transformers passes to jinja2
/// (None, bool, int, float, str, list, dict), jinja2's Undefined, and the objects a render
/// makes (tuples, namespaces, macros, loop contexts, functions, bound methods).
///
/// Build the caller's values with `.data(_:)` (caller strings), `.literal(_:)` (trusted
/// strings such as the tokenizer's special tokens), `.list(_:)`, `.dict(_:)` (ordered
/// pairs), `.bool`, `.int`, `.double`, `.none`, or `parseJSON(_:)`.
enum JinjaValue: Sendable {
    /// jinja2's default Undefined; the text says what was missing, for error messages.
    case undefined(String)
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(JinjaString)
    case list([JinjaValue])
    case tuple([JinjaValue])
    case dictionary(JinjaDict)
    /// A `namespace(...)` object (shared: `set ns.x = ...` changes it for every holder).
    case namespace(JinjaNamespace)
    /// A `{% macro %}` with the scope it was defined in.
    case macro(JinjaMacro)
    /// The `loop` variable of a `for` loop.
    case loop(JinjaLoop)
    /// A global function (`range`, `namespace`, `raise_exception`, ...).
    case function(String)
    /// A method looked up but not yet called (`message.content.startswith`).
    indirect case method(JinjaValue, String)
    /// What jinja2's `select`, `map`, `items`, `unique`, `reverse`, ... return: a Python
    /// generator (always true, no length, no indexing).
    case iterator(JinjaIterator)

    /// A string from the caller: its text is never taken for the template's own markup.
    static func data(_ text: String) -> JinjaValue { .string(JinjaString(text, isData: true)) }
    /// A string the template may trust like its own text (special tokens of the tokenizer).
    static func literal(_ text: String) -> JinjaValue { .string(JinjaString(text, isData: false)) }
    /// An ordered dict with string keys, in the given order.
    static func dict(_ pairs: [(String, JinjaValue)], keysAreData: Bool = true) -> JinjaValue {
        var dict = JinjaDict()
        for (key, value) in pairs { dict[.string(JinjaString(key, isData: keysAreData))] = value }
        return .dictionary(dict)
    }

    var isDict: Bool { if case .dictionary = self { return true } else { return false } }
    var isUndefined: Bool { if case .undefined = self { return true } else { return false } }
    var isString: Bool { if case .string = self { return true } else { return false } }
    var isNone: Bool { if case .none = self { return true } else { return false } }

    /// Python truthiness (Undefined is false).
    var isTruthy: Bool {
        switch self {
        case .undefined, .none: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .double(let d): return d != 0
        case .string(let s): return !s.isEmpty
        case .list(let items), .tuple(let items): return !items.isEmpty
        case .dictionary(let d): return !d.isEmpty
        case .namespace, .macro, .loop, .function, .method, .iterator: return true
        }
    }

    /// The Python type name, as error messages spell it.
    var typeName: String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string(let s): return s.isMarkup ? "Markup" : "str"
        case .list: return "list"
        case .tuple: return "tuple"
        case .dictionary: return "dict"
        case .namespace: return "Namespace"
        case .macro: return "Macro"
        case .loop: return "LoopContext"
        case .function: return "function"
        case .method: return "builtin_function_or_method"
        case .iterator: return "generator"
        }
    }

    /// A number as a Double (bool and int included), nil for anything else.
    var numericValue: Double? {
        switch self {
        case .bool(let b): return b ? 1 : 0
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }

    /// An int or bool as an Int (Python's bool is an int), nil for anything else.
    var integerValue: Int? {
        switch self {
        case .bool(let b): return b ? 1 : 0
        case .int(let i): return i
        default: return nil
        }
    }

    var isNumber: Bool { numericValue != nil }
}

/// A generator, computed at once: the items it yields, then the error it raises when the
/// template reads past them (jinja2 raises such errors only when the generator is read).
struct JinjaIterator: Sendable {
    var items: [JinjaValue]
    var failure: JinjaError?

    /// Runs `produce`, keeping what it yielded before a runtime error as the error's place.
    init(_ produce: (inout [JinjaValue]) throws -> Void) throws {
        var items: [JinjaValue] = []
        do {
            try produce(&items)
        } catch let error as JinjaError where error.kind == .runtime {
            failure = error
        }
        self.items = items
    }

    /// Every item, or the error the generator raises.
    func consume() throws -> [JinjaValue] {
        if let failure { throw failure }
        return items
    }
}

/// A Python dict: insertion-ordered, keys compared as Python compares them (1 == 1.0 ==
/// True; strings by code point, whatever their provenance).
struct JinjaDict: Sendable {
    private(set) var entries: [(key: JinjaValue, value: JinjaValue)] = []
    private var positions: [Key: Int] = [:]

    /// A dict key as Python hashes it.
    enum Key: Hashable, Sendable {
        case none
        case int(Int)
        case double(Double)
        case string([Unicode.Scalar])
        case tuple([Key])
    }

    /// The hash key of `value`, or nil for an unhashable value (list, dict, ...).
    static func key(_ value: JinjaValue) -> Key? {
        switch value {
        case .none: return Key.none
        case .bool(let b): return .int(b ? 1 : 0)
        case .int(let i): return .int(i)
        case .double(let d):
            if d == d.rounded(), let i = Int(exactly: d) { return .int(i) }
            return .double(d)
        case .string(let s): return .string(s.scalars)
        case .tuple(let items):
            var keys: [Key] = []
            for item in items {
                guard let key = key(item) else { return nil }
                keys.append(key)
            }
            return .tuple(keys)
        default: return nil
        }
    }

    var count: Int { entries.count }
    var isEmpty: Bool { entries.isEmpty }
    var keys: [JinjaValue] { entries.map(\.key) }
    var values: [JinjaValue] { entries.map(\.value) }

    /// Looks up or sets a value; a key that exists keeps its position (as in Python).
    /// Unhashable keys are never present, and setting one is ignored (callers check first).
    subscript(key: JinjaValue) -> JinjaValue? {
        get {
            guard let hashKey = JinjaDict.key(key), let index = positions[hashKey] else { return nil }
            return entries[index].value
        }
        set {
            guard let hashKey = JinjaDict.key(key) else { return }
            if let index = positions[hashKey] {
                if let newValue { entries[index].value = newValue }
            } else if let newValue {
                positions[hashKey] = entries.count
                entries.append((key, newValue))
            }
        }
    }

    /// A string key (the common case: JSON objects, namespaces, attribute access).
    subscript(name: String) -> JinjaValue? {
        self[.string(JinjaString(name, isData: false))]
    }
}

/// The `loop` variable inside a `for` loop: the items and the current position.
final class JinjaLoop: Sendable {
    let items: [JinjaValue]
    let index0: Int

    init(items: [JinjaValue], index0: Int) {
        self.items = items
        self.index0 = index0
    }

    /// `loop.<name>`, or nil when a loop has no such attribute.
    func attribute(_ name: String) -> JinjaValue? {
        let length = items.count
        switch name {
        case "index": return .int(index0 + 1)
        case "index0": return .int(index0)
        case "revindex": return .int(length - index0)
        case "revindex0": return .int(length - index0 - 1)
        case "first": return .bool(index0 == 0)
        case "last": return .bool(index0 == length - 1)
        case "length": return .int(length)
        case "depth": return .int(1)  // loops are never recursive here
        case "depth0": return .int(0)
        case "previtem": return index0 > 0 ? items[index0 - 1] : .undefined("there is no previous item")
        case "nextitem": return index0 + 1 < length ? items[index0 + 1] : .undefined("there is no next item")
        case "cycle", "changed": return .method(.loop(self), name)
        default: return nil
        }
    }
}

/// The object `namespace(...)` makes: attributes that `{% set ns.name = value %}` changes
/// in place, so that a loop body can change what the code after the loop sees.
///
/// `@unchecked Sendable`: a namespace is created during one render and only that render,
/// on one thread, reads or changes it.
final class JinjaNamespace: @unchecked Sendable {
    var attributes: JinjaDict

    init(attributes: JinjaDict) {
        self.attributes = attributes
    }
}
