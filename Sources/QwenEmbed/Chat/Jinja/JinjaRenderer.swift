#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One render of a compiled template: runs the statements as the Python code jinja2
/// compiles them to would, with jinja2's scoping (a loop iteration, a macro call and a
/// block body are new scopes; `if` is not; a macro sees the scope it was defined in), and
/// guards that turn runaway templates into errors instead of exhausted memory or stack.
final class JinjaRenderer {
    /// Characters in any one string, including the output.
    static let maxStringLength = 64 << 20
    /// Items in any one list.
    static let maxListLength = 1 << 22
    /// Work units: about one per character or list item produced, 32 per operation, 256 per
    /// loop iteration or macro call (a million iterations at most, far beyond any chat).
    static let maxWork = 1 << 28
    /// Nested evaluations (expressions, statements, macro calls): bounds the stack.
    static let maxDepth = 400

    private enum Flow { case next, breakLoop, continueLoop }

    /// The output being written; a macro call, `set` block or filter block pushes its own.
    private var buffers: [JinjaString] = [JinjaString()]
    private var work = 0
    private var depth = 0
    /// Scopes holding macros and namespaces made by this render: cleared at the end, which
    /// breaks the reference cycles a macro (holding its scope) or namespace can make.
    private var scopesWithMacros: [JinjaScope] = []
    private var namespaces: [JinjaNamespace] = []

    static func checkSize(_ size: (partialValue: Int, overflow: Bool)) throws {
        guard !size.overflow, size.partialValue <= maxStringLength else {
            throw JinjaError.limit("a string or list longer than \(maxStringLength) items")
        }
    }

    func render(_ template: JinjaFrame, context: [String: JinjaValue]) throws -> JinjaString {
        defer {
            for scope in scopesWithMacros { scope.removeAll() }
            for namespace in namespaces { namespace.attributes = JinjaDict() }
        }
        let root = JinjaScope(parent: nil, variables: context)
        root.bindUndefined(template.undefinedNames)
        _ = try execute(template.body, in: root)
        return buffers[0]
    }

    /// A new scope for running `frame` inside `parent`.
    private func scope(for frame: JinjaFrame, in parent: JinjaScope) -> JinjaScope {
        let scope = JinjaScope(parent: parent)
        scope.bindUndefined(frame.undefinedNames)
        return scope
    }

    // MARK: Limits

    private func charge(_ units: Int) throws {
        work += units
        guard work <= JinjaRenderer.maxWork else { throw JinjaError.limit("the template ran too long") }
    }

    /// Counts a computed value against the budget and the size limits.
    private func charge(_ value: JinjaValue) throws {
        switch value {
        case .string(let s):
            try JinjaRenderer.checkSize((s.count, false))
            try charge(32 + s.count)
        case .list(let items), .tuple(let items):
            guard items.count <= JinjaRenderer.maxListLength else { throw JinjaError.limit("a list longer than \(JinjaRenderer.maxListLength) items") }
            try charge(32 + items.count)
        default:
            try charge(32)
        }
    }

    private func enter() throws {
        depth += 1
        guard depth <= JinjaRenderer.maxDepth else {
            throw JinjaError.limit("evaluation nested deeper than \(JinjaRenderer.maxDepth) levels (recursive macro?)")
        }
    }

    /// Refuses a container value nested deeper than `JinjaFormat.maxDepth` (deeper values
    /// could not be printed, and releasing one recurses once per level).
    private func checkNesting(_ value: JinjaValue) throws -> JinjaValue {
        func depth(_ value: JinjaValue, _ budget: Int) -> Int {
            guard budget > 0 else { return 0 }
            switch value {
            case .list(let items), .tuple(let items):
                var deepest = 0
                for item in items where deepest < budget - 1 { deepest = max(deepest, depth(item, budget - 1)) }
                return deepest + 1
            case .dictionary(let dict):
                var deepest = 0
                for item in dict.values where deepest < budget - 1 { deepest = max(deepest, depth(item, budget - 1)) }
                return deepest + 1
            default:
                return 0
            }
        }
        guard depth(value, JinjaFormat.maxDepth + 1) <= JinjaFormat.maxDepth else {
            throw JinjaError.limit("a value nested more than \(JinjaFormat.maxDepth) deep")
        }
        return value
    }

    // MARK: Output

    private func write(_ text: JinjaString) throws {
        let last = buffers.count - 1
        try JinjaRenderer.checkSize(buffers[last].count.addingReportingOverflow(text.count))
        try charge(text.count)
        buffers[last].append(text)
    }

    /// What `frame` writes, in a scope of its own, and how it ended (jinja2 compiles a set
    /// or filter block inline: a `break` in it leaves the enclosing loop).
    private func capture(_ frame: JinjaFrame, in scope: JinjaScope) throws -> (JinjaString, Flow) {
        buffers.append(JinjaString())
        let flow: Flow
        do {
            flow = try execute(frame.body, in: self.scope(for: frame, in: scope))
        } catch {
            buffers.removeLast()
            throw error
        }
        return (buffers.removeLast(), flow)
    }

    // MARK: Statements

    private func execute(_ nodes: [JinjaNode], in scope: JinjaScope) throws -> Flow {
        for node in nodes {
            let flow = try execute(node, in: scope)
            if flow != .next { return flow }
        }
        return .next
    }

    private func execute(_ node: JinjaNode, in scope: JinjaScope) throws -> Flow {
        try enter()
        defer { depth -= 1 }
        do {
            switch node.kind {
            case .text(let text):
                try write(JinjaString(text, isData: false))
            case .output(let expression):
                try write(try JinjaFormat.str(try evaluate(expression, in: scope)))
            case .conditional(let branches, let otherwise):
                for branch in branches where try evaluate(branch.condition, in: scope).isTruthy {
                    return try execute(branch.body, in: scope)
                }
                return try execute(otherwise, in: scope)
            case .forLoop(let loop):
                return try run(loop, in: scope)
            case .set(let target, let expression):
                try assign(target, try evaluate(expression, in: scope), in: scope)
            case .setBlock(let target, let filters, let body):
                let (text, flow) = try capture(body, in: scope)
                if flow != .next { return flow }
                var value = JinjaValue.string(text)
                for filter in filters { value = try applyFilter(filter, to: value, in: scope) }
                try assign(target, value, in: scope)
            case .macro(let definition):
                scope.set(definition.name, .macro(JinjaMacro(definition: definition, closure: scope)))
                scopesWithMacros.append(scope)
            case .filterBlock(let filters, let body):
                let (text, flow) = try capture(body, in: scope)
                if flow != .next { return flow }
                var value = JinjaValue.string(text)
                for filter in filters { value = try applyFilter(filter, to: value, in: scope) }
                try write(try JinjaFormat.str(value))
            case .with(let assignments, let body):
                let values = try assignments.map { try evaluate($0.value, in: scope) }
                let inner = self.scope(for: body, in: scope)
                for (assignment, value) in zip(assignments, values) { try assign(assignment.target, value, in: inner) }
                return try execute(body.body, in: inner)
            case .generation(let body):
                return try execute(body.body, in: self.scope(for: body, in: scope))
            case .breakLoop:
                return .breakLoop
            case .continueLoop:
                return .continueLoop
            }
            return .next
        } catch let error as JinjaError {
            throw error.at(line: node.line)
        }
    }

    private func run(_ loop: JinjaForLoop, in scope: JinjaScope) throws -> Flow {
        var items = try JinjaOperators.iterate(try evaluate(loop.iterable, in: scope))
        if let condition = loop.condition {
            items = try items.filter { item in
                let itemScope = JinjaScope(parent: scope)
                try assign(loop.target, item, in: itemScope)
                return try evaluate(condition, in: itemScope).isTruthy
            }
        }
        // jinja2 runs `else` unless an iteration ran to its end: also after a `break` or
        // `continue` in every iteration.
        var completedIteration = false
        for index in items.indices {
            try charge(256)
            let iteration = self.scope(for: loop.body, in: scope)
            iteration.set("loop", .loop(JinjaLoop(items: items, index0: index)))
            try assign(loop.target, items[index], in: iteration)
            let flow = try execute(loop.body.body, in: iteration)
            if flow == .breakLoop { break }
            if flow == .next { completedIteration = true }
        }
        if completedIteration || loop.otherwise.body.isEmpty { return .next }
        return try execute(loop.otherwise.body, in: self.scope(for: loop.otherwise, in: scope))
    }

    private func assign(_ target: JinjaTarget, _ value: JinjaValue, in scope: JinjaScope) throws {
        switch target {
        case .name(let name):
            scope.set(name, value)
        case .tuple(let targets):
            let items = try JinjaOperators.iterate(value)
            guard items.count == targets.count else {
                throw JinjaError.runtime(items.count < targets.count
                    ? "not enough values to unpack (expected \(targets.count), got \(items.count))"
                    : "too many values to unpack (expected \(targets.count))")
            }
            for (target, item) in zip(targets, items) { try assign(target, item, in: scope) }
        case .namespaceAttribute(let name, let attribute):
            guard case .namespace(let namespace)? = scope.lookup(name) else {
                throw JinjaError.runtime("cannot assign attribute on non-namespace object")
            }
            try JinjaRenderer.checkNamespaceName(attribute)
            namespace.attributes[.string(JinjaString(attribute, isData: false))] = value
        }
    }

    /// transformers' namespaces refuse names starting with "_".
    private static func checkNamespaceName(_ name: String) throws {
        if name.hasPrefix("_") {
            throw JinjaError.runtime("Chat templates cannot store underscore-prefixed attributes on a namespace, but got '\(name)'")
        }
    }

    // MARK: Expressions

    func evaluate(_ expression: JinjaExpr, in scope: JinjaScope) throws -> JinjaValue {
        try enter()
        defer { depth -= 1 }
        do {
            return try evaluateKind(expression, in: scope)
        } catch let error as JinjaError {
            throw error.at(line: expression.line)
        }
    }

    private func evaluateKind(_ expression: JinjaExpr, in scope: JinjaScope) throws -> JinjaValue {
        switch expression.kind {
        case .constant(let value):
            return value
        case .name(let name):
            if let value = scope.lookup(name) { return value }
            return JinjaBuiltins.globalFunctions.contains(name) ? .function(name) : .undefined("'\(name)' is undefined")
        case .list(let items):
            return try checkNesting(.list(try items.map { try evaluate($0, in: scope) }))
        case .tuple(let items):
            return try checkNesting(.tuple(try items.map { try evaluate($0, in: scope) }))
        case .dict(let pairs):
            var dict = JinjaDict()
            for pair in pairs {
                let key = try evaluate(pair.key, in: scope)
                guard JinjaDict.key(key) != nil else { throw JinjaError.runtime("unhashable type: '\(key.typeName)'") }
                dict[key] = try evaluate(pair.value, in: scope)
            }
            return try checkNesting(.dictionary(dict))
        case .attribute(let object, let name):
            return try JinjaOperators.attribute(try evaluate(object, in: scope), name)
        case .item(let object, let index):
            return try JinjaOperators.item(try evaluate(object, in: scope), try evaluate(index, in: scope))
        case .slice(let object, let start, let stop, let step):
            let value = try evaluate(object, in: scope)
            func bound(_ expression: JinjaExpr?) throws -> JinjaValue { try expression.map { try evaluate($0, in: scope) } ?? .none }
            return try JinjaOperators.slice(value, start: try bound(start), stop: try bound(stop), step: try bound(step))
        case .call(let callee, let arguments):
            let function = try evaluate(callee, in: scope)
            let result = try call(function, try evaluate(arguments, in: scope))
            try charge(result)
            return result
        case .filter(let value, let filter):
            return try applyFilter(filter, to: try evaluate(value, in: scope), in: scope)
        case .test(let value, let name, let arguments, let negated):
            let passed = try JinjaBuiltins.test(name, try evaluate(value, in: scope), try evaluate(arguments, in: scope))
            return .bool(passed != negated)
        case .not(let operand):
            return .bool(!(try evaluate(operand, in: scope).isTruthy))
        case .negative(let operand):
            return try JinjaOperators.negate(try evaluate(operand, in: scope))
        case .positive(let operand):
            return try JinjaOperators.positive(try evaluate(operand, in: scope))
        case .binary(let op, let left, let right):
            let result = try JinjaOperators.binary(op, try evaluate(left, in: scope), try evaluate(right, in: scope))
            try charge(result)
            return result
        case .and(let left, let right):
            let value = try evaluate(left, in: scope)
            return value.isTruthy ? try evaluate(right, in: scope) : value
        case .or(let left, let right):
            let value = try evaluate(left, in: scope)
            return value.isTruthy ? value : try evaluate(right, in: scope)
        case .concat(let parts):
            var text = JinjaString()
            for part in parts { text.append(try JinjaFormat.str(try evaluate(part, in: scope))) }
            try charge(.string(text))
            return .string(text)
        case .compare(let first, let comparisons):
            var left = try evaluate(first, in: scope)
            for comparison in comparisons {
                let right = try evaluate(comparison.operand, in: scope)
                guard try JinjaCompare.compare(comparison.op, left, right) else { return .bool(false) }
                left = right
            }
            return .bool(true)
        case .conditional(let condition, let then, let otherwise):
            if try evaluate(condition, in: scope).isTruthy { return try evaluate(then, in: scope) }
            if let otherwise { return try evaluate(otherwise, in: scope) }
            return .undefined("the inline if-expression on line \(expression.line) evaluated to false and no else section was defined.")
        }
    }

    private func evaluate(_ arguments: JinjaArguments, in scope: JinjaScope) throws -> JinjaCallArguments {
        JinjaCallArguments(positional: try arguments.positional.map { try evaluate($0, in: scope) },
                           keyword: try arguments.keyword.map { ($0.name, try evaluate($0.value, in: scope)) })
    }

    private func applyFilter(_ filter: JinjaFilterCall, to value: JinjaValue, in scope: JinjaScope) throws -> JinjaValue {
        do {
            let result = try JinjaBuiltins.filter(filter.name, value, try evaluate(filter.arguments, in: scope))
            try charge(result)
            return result
        } catch let error as JinjaError {
            throw error.at(line: filter.line)
        }
    }

    // MARK: Calls

    private func call(_ function: JinjaValue, _ arguments: JinjaCallArguments) throws -> JinjaValue {
        switch function {
        case .macro(let macro): return try call(macro, arguments)
        case .function(let name): return try callGlobal(name, arguments)
        case .method(let receiver, let name): return try JinjaMethods.call(receiver, name, arguments)
        case .undefined(let hint): throw JinjaError.runtime(hint)
        default: throw JinjaError.runtime("'\(function.typeName)' object is not callable")
        }
    }

    /// A macro call as jinja2's `Macro.__call__`: positional arguments first, then keyword
    /// arguments by name, then defaults (evaluated in the macro's scope, in order).
    private func call(_ macro: JinjaMacro, _ arguments: JinjaCallArguments) throws -> JinjaValue {
        try charge(256)
        let parameters = macro.definition.parameters
        guard arguments.positional.count <= parameters.count else {
            throw JinjaError.runtime("macro '\(macro.name)' takes not more than \(parameters.count) argument(s)")
        }
        var keyword = arguments.keyword
        let scope = self.scope(for: macro.definition.body, in: macro.closure)
        for (index, parameter) in parameters.enumerated() {
            if index < arguments.positional.count {
                scope.set(parameter.name, arguments.positional[index])
            } else if let position = keyword.firstIndex(where: { $0.0 == parameter.name }) {
                scope.set(parameter.name, keyword.remove(at: position).1)
            } else if let defaultValue = parameter.defaultValue {
                scope.set(parameter.name, try evaluate(defaultValue, in: scope))
            } else {
                scope.set(parameter.name, .undefined("parameter '\(parameter.name)' was not provided"))
            }
        }
        if let extra = keyword.first {
            throw JinjaError.runtime("macro '\(macro.name)' takes no keyword argument '\(extra.0)'")
        }
        buffers.append(JinjaString())
        do {
            _ = try execute(macro.definition.body.body, in: scope)
        } catch {
            buffers.removeLast()
            throw error
        }
        return .string(buffers.removeLast())
    }

    /// The globals transformers' environment has: range, dict, namespace, raise_exception,
    /// strftime_now.
    private func callGlobal(_ name: String, _ arguments: JinjaCallArguments) throws -> JinjaValue {
        switch name {
        case "range":
            guard arguments.keyword.isEmpty, (1...3).contains(arguments.positional.count) else {
                throw JinjaError.runtime("range expected 1 to 3 integer arguments")
            }
            var bounds: [Int] = []
            for value in arguments.positional {
                guard let int = value.integerValue else { throw JinjaError.runtime("'\(value.typeName)' object cannot be interpreted as an integer") }
                bounds.append(int)
            }
            let (start, stop) = bounds.count == 1 ? (0, bounds[0]) : (bounds[0], bounds[1])
            let step = bounds.count == 3 ? bounds[2] : 1
            guard step != 0 else { throw JinjaError.runtime("range() arg 3 must not be zero") }
            // The span can exceed Int: then it is certainly too big.
            let span = step > 0 ? stop.subtractingReportingOverflow(start) : start.subtractingReportingOverflow(stop)
            let count = span.overflow ? Int.max : span.partialValue <= 0 ? 0 : (span.partialValue - 1) / step.magnitude.clampedToInt + 1
            guard count <= 100_000 else {
                throw JinjaError.runtime("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).")
            }
            return .list((0..<count).map { .int(start + $0 * step) })
        case "dict":
            return .dictionary(try JinjaBuiltins.makeDict(arguments))
        case "namespace":
            let attributes = try JinjaBuiltins.makeDict(arguments)
            for key in attributes.keys { if case .string(let s) = key { try JinjaRenderer.checkNamespaceName(s.text) } }
            let namespace = JinjaNamespace(attributes: attributes)
            namespaces.append(namespace)
            return .namespace(namespace)
        case "raise_exception":
            let message = try arguments.bind("raise_exception", ["message"])[0]
            throw JinjaError(kind: .raised, message: try JinjaFormat.str(message).text, line: nil)
        case "strftime_now":
            let format = try arguments.bind("strftime_now", ["format"])[0]
            guard case .string(let text) = format else { throw JinjaError.runtime("strftime() argument 1 must be str") }
            return .literal(JinjaRenderer.strftimeNow(text.text))
        default:
            throw JinjaError.unsupported("the function `\(name)`")
        }
    }

    /// `datetime.now().strftime(format)`: the C library's strftime, local time.
    private static func strftimeNow(_ format: String) -> String {
        var now = time(nil)
        var parts = tm()
        localtime_r(&now, &parts)
        var buffer = [CChar](repeating: 0, count: min(1 << 20, 256 + format.utf8.count * 16))
        let count = strftime(&buffer, buffer.count, format, &parts)
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

private extension UInt {
    /// The value as an Int, Int.max when it does not fit.
    var clampedToInt: Int { self > UInt(Int.max) ? Int.max : Int(self) }
}
