/// An expression of a template and the line it starts on.
struct JinjaExpr: Sendable {
    indirect enum Kind: Sendable {
        /// A literal: string, number, true/false, none.
        case constant(JinjaValue)
        case name(String)
        case list([JinjaExpr])
        case tuple([JinjaExpr])
        case dict([JinjaPair])
        /// `obj.name`
        case attribute(JinjaExpr, String)
        /// `obj[index]`
        case item(JinjaExpr, JinjaExpr)
        /// `obj[start:stop:step]`
        case slice(JinjaExpr, start: JinjaExpr?, stop: JinjaExpr?, step: JinjaExpr?)
        case call(JinjaExpr, JinjaArguments)
        /// `value | name(arguments)`
        case filter(JinjaExpr, JinjaFilterCall)
        /// `value is [not] name(arguments)`
        case test(JinjaExpr, String, JinjaArguments, negated: Bool)
        case not(JinjaExpr)
        case negative(JinjaExpr)
        case positive(JinjaExpr)
        case binary(JinjaBinaryOperator, JinjaExpr, JinjaExpr)
        case and(JinjaExpr, JinjaExpr)
        case or(JinjaExpr, JinjaExpr)
        /// `a ~ b ~ c`
        case concat([JinjaExpr])
        /// `a < b <= c`, `a in b`, `a not in b`: Python's chained comparison.
        case compare(JinjaExpr, [JinjaComparison])
        /// `then if condition else otherwise` (no else: Undefined).
        case conditional(condition: JinjaExpr, then: JinjaExpr, otherwise: JinjaExpr?)
    }

    var kind: Kind
    var line: Int
}

struct JinjaPair: Sendable {
    var key: JinjaExpr
    var value: JinjaExpr
}

struct JinjaComparison: Sendable {
    var op: JinjaCompareOperator
    var operand: JinjaExpr
}

enum JinjaBinaryOperator: String, Sendable {
    case add = "+", subtract = "-", multiply = "*", divide = "/", floorDivide = "//", modulo = "%", power = "**"
}

enum JinjaCompareOperator: String, Sendable {
    case equal = "==", notEqual = "!=", less = "<", lessOrEqual = "<=", greater = ">", greaterOrEqual = ">="
    case contains = "in", notContains = "not in"
}

/// The arguments of a call, filter or test: positional, then keyword.
struct JinjaArguments: Sendable {
    var positional: [JinjaExpr] = []
    var keyword: [(name: String, value: JinjaExpr)] = []
}

/// One filter application, `name(arguments)`, in an expression or a filter / set block.
struct JinjaFilterCall: Sendable {
    var name: String
    var arguments: JinjaArguments
    var line: Int
}

/// What `set` and `for` assign to.
indirect enum JinjaTarget: Sendable {
    case name(String)
    case tuple([JinjaTarget])
    /// `ns.attribute` of a namespace.
    case namespaceAttribute(String, String)
}

/// A statement of a template and the line it starts on.
struct JinjaNode: Sendable {
    indirect enum Kind: Sendable {
        /// Template text.
        case text(String)
        /// `{{ expression }}`
        case output(JinjaExpr)
        /// `if` / `elif` branches in order, then the `else` body.
        case conditional([JinjaBranch], otherwise: [JinjaNode])
        case forLoop(JinjaForLoop)
        case set(JinjaTarget, JinjaExpr)
        /// `{% set x | filters %}body{% endset %}`
        case setBlock(JinjaTarget, [JinjaFilterCall], body: JinjaFrame)
        case macro(JinjaMacroDefinition)
        /// `{% filter name %}body{% endfilter %}`
        case filterBlock([JinjaFilterCall], body: JinjaFrame)
        /// `{% with a = 1 %}body{% endwith %}`
        case with([(target: JinjaTarget, value: JinjaExpr)], body: JinjaFrame)
        /// transformers' `{% generation %}body{% endgeneration %}`: renders its body.
        case generation(JinjaFrame)
        case breakLoop
        case continueLoop
    }

    var kind: Kind
    var line: Int
}

struct JinjaBranch: Sendable {
    var condition: JinjaExpr
    var body: [JinjaNode]
}

struct JinjaForLoop: Sendable {
    var target: JinjaTarget
    var iterable: JinjaExpr
    /// `for x in xs if condition`: skipped items are not counted by `loop`.
    var condition: JinjaExpr?
    var body: JinjaFrame
    /// Rendered when no item passed.
    var otherwise: JinjaFrame
}

/// The statements of a body that runs in a scope of its own (the template, a loop
/// iteration, a macro call, a block), and the names that start out undefined there.
///
/// jinja2 compiles a name that a body assigns before (or without) reading it, and that no
/// enclosing body mentions, to a local of that body that is unset until the assignment:
/// until then the name is undefined in that body and everything nested in it, even when
/// the caller's context has a variable of that name (JinjaSymbols finds these names).
struct JinjaFrame: Sendable {
    var body: [JinjaNode]
    var undefinedNames: [String] = []
}

struct JinjaMacroDefinition: Sendable {
    var name: String
    /// Parameters in order, with their default expressions.
    var parameters: [(name: String, defaultValue: JinjaExpr?)]
    var body: JinjaFrame
}

/// A macro value: its definition and the scope it was defined in (read at call time, as
/// Python closures read theirs).
///
/// `@unchecked Sendable`: made during one render and used only by that render's thread.
final class JinjaMacro: @unchecked Sendable {
    let definition: JinjaMacroDefinition
    let closure: JinjaScope

    var name: String { definition.name }

    init(definition: JinjaMacroDefinition, closure: JinjaScope) {
        self.definition = definition
        self.closure = closure
    }
}

/// Variables of one scope (the template's top level, a loop iteration, a macro call, a
/// block), looked up through the enclosing scopes.
final class JinjaScope {
    private var variables: [String: JinjaValue] = [:]
    let parent: JinjaScope?

    init(parent: JinjaScope?, variables: [String: JinjaValue] = [:]) {
        self.parent = parent
        self.variables = variables
    }

    func lookup(_ name: String) -> JinjaValue? {
        var scope: JinjaScope? = self
        while let current = scope {
            if let value = current.variables[name] { return value }
            scope = current.parent
        }
        return nil
    }

    func set(_ name: String, _ value: JinjaValue) {
        variables[name] = value
    }

    /// Makes `names` undefined here, whatever enclosing scopes hold (see `JinjaFrame`).
    func bindUndefined(_ names: [String]) {
        for name in names { variables[name] = .undefined("'\(name)' is undefined") }
    }

    /// Forgets every variable (at the end of a render, to break reference cycles).
    func removeAll() {
        variables.removeAll()
    }
}
