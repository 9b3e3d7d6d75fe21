/// jinja2's symbol analysis (idtracking.py), reduced to the one thing it changes in the
/// output: which names start out undefined in a body (`JinjaFrame.undefinedNames`).
///
/// jinja2 compiles each body (the template, a loop body, a macro, a block) to Python code
/// with one local per name it assigns. A name whose first mention in the body is an
/// assignment, and that no enclosing body mentions, starts as "missing": reading it before
/// the assignment (for instance from a macro called earlier) gives Undefined, not the
/// context's variable of that name. Assignments inside `if` branches never do this (jinja2
/// resolves those names from the context), and a name read first is looked up as usual.
enum JinjaSymbols {
    static func annotate(_ body: [JinjaNode]) -> JinjaFrame {
        annotate(body, in: SymbolTable(parent: nil))
    }

    /// How a body's local starts out (jinja2's VAR_LOAD_* instructions).
    private enum Load { case parameter, resolve, alias, undefined }

    /// The names one body mentions, as jinja2's `Symbols` records them.
    private final class SymbolTable {
        let parent: SymbolTable?
        var loads: [String: Load] = [:]
        var stores: Set<String> = []

        init(parent: SymbolTable?) {
            self.parent = parent
        }

        func copy() -> SymbolTable {
            let table = SymbolTable(parent: parent)
            table.loads = loads
            table.stores = stores
            return table
        }

        func hasReference(_ name: String) -> Bool {
            loads[name] != nil || parent?.hasReference(name) == true
        }

        func load(_ name: String) {
            if !hasReference(name) { loads[name] = .resolve }
        }

        func store(_ name: String) {
            stores.insert(name)
            if loads[name] == nil { loads[name] = parent?.hasReference(name) == true ? .alias : .undefined }
        }

        func declareParameter(_ name: String) {
            stores.insert(name)
            loads[name] = .parameter
        }

        /// Merges the tables of an `if`'s branches: a name assigned in a branch is resolved.
        func branchUpdate(_ branches: [SymbolTable]) {
            let branchStores = Set(branches.flatMap(\.stores)).subtracting(stores)
            for branch in branches {
                loads.merge(branch.loads) { _, new in new }
                stores.formUnion(branch.stores)
            }
            for name in branchStores { loads[name] = parent?.hasReference(name) == true ? .alias : .resolve }
        }

        var undefinedNames: [String] { loads.filter { $0.value == .undefined }.keys.sorted() }
    }

    /// Analyzes a whole body first (nested bodies see everything it mentions, as in
    /// jinja2, which analyzes a body before compiling the bodies inside it), then the
    /// bodies nested in it.
    private static func annotate(_ body: [JinjaNode], in table: SymbolTable) -> JinjaFrame {
        for node in body { visit(node, table) }
        return JinjaFrame(body: body.map { nested($0, parent: table) }, undefinedNames: table.undefinedNames)
    }

    /// What a statement mentions in the body it belongs to.
    private static func visit(_ node: JinjaNode, _ table: SymbolTable) {
        switch node.kind {
        case .text, .breakLoop, .continueLoop, .generation:
            break
        case .output(let expression):
            loads(expression, table)
        case .conditional(let branches, let otherwise):
            guard let first = branches.first else { return }
            loads(first.condition, table)
            let body = table.copy()
            first.body.forEach { visit($0, body) }
            // jinja2 keeps the elif branches as one branch of nested ifs.
            let elifs = table.copy()
            for branch in branches.dropFirst() {
                loads(branch.condition, elifs)
                let elifBody = elifs.copy()
                branch.body.forEach { visit($0, elifBody) }
                elifs.branchUpdate([elifBody, elifs.copy(), elifs.copy()])
            }
            let otherwiseTable = table.copy()
            otherwise.forEach { visit($0, otherwiseTable) }
            table.branchUpdate([body, elifs, otherwiseTable])
        case .forLoop(let loop):
            loads(loop.iterable, table)
        case .set(let target, let expression):
            loads(expression, table)
            store(target, table)
        case .setBlock(let target, _, _):
            store(target, table)
        case .macro(let definition):
            table.store(definition.name)
        case .filterBlock(let filters, _):
            filters.forEach { loads($0.arguments, table) }
        case .with(let assignments, _):
            assignments.forEach { loads($0.value, table) }
        }
    }

    /// The statement with the bodies nested in it annotated.
    private static func nested(_ node: JinjaNode, parent: SymbolTable) -> JinjaNode {
        var result = node
        switch node.kind {
        case .conditional(let branches, let otherwise):
            let annotated = branches.map { JinjaBranch(condition: $0.condition, body: $0.body.map { nested($0, parent: parent) }) }
            result.kind = .conditional(annotated, otherwise: otherwise.map { nested($0, parent: parent) })
        case .forLoop(var loop):
            let table = SymbolTable(parent: parent)
            declare(loop.target, table)
            table.declareParameter("loop")
            loop.body = annotate(loop.body.body, in: table)
            loop.otherwise = annotate(loop.otherwise.body, in: SymbolTable(parent: parent))
            result.kind = .forLoop(loop)
        case .macro(var definition):
            let table = SymbolTable(parent: parent)
            definition.parameters.forEach { table.declareParameter($0.name) }
            definition.parameters.forEach { if let value = $0.defaultValue { loads(value, table) } }
            definition.body = annotate(definition.body.body, in: table)
            result.kind = .macro(definition)
        case .setBlock(let target, let filters, let body):
            result.kind = .setBlock(target, filters, body: annotate(body.body, in: SymbolTable(parent: parent)))
        case .filterBlock(let filters, let body):
            let table = SymbolTable(parent: parent)
            filters.forEach { loads($0.arguments, table) }
            result.kind = .filterBlock(filters, body: annotate(body.body, in: table))
        case .with(let assignments, let body):
            let table = SymbolTable(parent: parent)
            assignments.forEach { declare($0.target, table) }
            result.kind = .with(assignments, body: annotate(body.body, in: table))
        case .generation(let body):
            result.kind = .generation(annotate(body.body, in: SymbolTable(parent: parent)))
        case .text, .output, .set, .breakLoop, .continueLoop:
            break
        }
        return result
    }

    private static func store(_ target: JinjaTarget, _ table: SymbolTable) {
        switch target {
        case .name(let name): table.store(name)
        case .tuple(let targets): targets.forEach { store($0, table) }
        case .namespaceAttribute(let namespace, _): table.load(namespace)
        }
    }

    private static func declare(_ target: JinjaTarget, _ table: SymbolTable) {
        switch target {
        case .name(let name): table.declareParameter(name)
        case .tuple(let targets): targets.forEach { declare($0, table) }
        case .namespaceAttribute(let namespace, _): table.load(namespace)
        }
    }

    private static func loads(_ arguments: JinjaArguments, _ table: SymbolTable) {
        arguments.positional.forEach { loads($0, table) }
        arguments.keyword.forEach { loads($0.value, table) }
    }

    /// Every name an expression reads.
    private static func loads(_ expression: JinjaExpr, _ table: SymbolTable) {
        switch expression.kind {
        case .constant:
            break
        case .name(let name):
            table.load(name)
        case .list(let items), .tuple(let items), .concat(let items):
            items.forEach { loads($0, table) }
        case .dict(let pairs):
            pairs.forEach { loads($0.key, table); loads($0.value, table) }
        case .attribute(let object, _), .not(let object), .negative(let object), .positive(let object):
            loads(object, table)
        case .item(let object, let index):
            loads(object, table)
            loads(index, table)
        case .slice(let object, let start, let stop, let step):
            for part in [object, start, stop, step].compactMap({ $0 }) { loads(part, table) }
        case .call(let callee, let arguments):
            loads(callee, table)
            loads(arguments, table)
        case .filter(let value, let filter):
            loads(value, table)
            loads(filter.arguments, table)
        case .test(let value, _, let arguments, _):
            loads(value, table)
            loads(arguments, table)
        case .binary(_, let left, let right), .and(let left, let right), .or(let left, let right):
            loads(left, table)
            loads(right, table)
        case .compare(let first, let comparisons):
            loads(first, table)
            comparisons.forEach { loads($0.operand, table) }
        case .conditional(let condition, let then, let otherwise):
            loads(condition, table)
            loads(then, table)
            if let otherwise { loads(otherwise, table) }
        }
    }
}
