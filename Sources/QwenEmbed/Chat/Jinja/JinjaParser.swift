/// jinja2's parser (the same grammar, precedence and quirks) for the statements chat
/// templates use. Filters, tests, methods and tags outside the supported subset are
/// refused here, so that a template either compiles to something this interpreter renders
/// as jinja2 would, or fails at once with a message naming the construct.
struct JinjaParser {
    /// Nesting of statements and expressions beyond this is refused (it bounds the stack).
    static let maxNesting = 120

    // The parser's state, shared with the expression grammar (JinjaExpressionParser.swift).
    let tokens: [JinjaToken]
    var index = 0
    /// Nesting so far (statements, expressions, left-deep chains), against `maxNesting`.
    var nesting = 0
    /// Loops around the current statement (inside the innermost macro), for break/continue.
    var loopDepth = 0
    /// Macros around the current statement (`varargs`, `kwargs`, `caller` are refused there).
    var macroDepth = 0

    /// The template's statements, with the names that start out undefined in each body.
    static func parse(_ source: String) throws -> JinjaFrame {
        var parser = JinjaParser(tokens: try JinjaLexer.tokenize(source))
        let body = try parser.subparse(until: [])
        guard parser.current.kind == .end else { throw parser.unexpected(parser.current) }
        return JinjaSymbols.annotate(body)
    }

    private init(tokens: [JinjaToken]) {
        self.tokens = tokens
    }

    // MARK: Token stream

    var current: JinjaToken { tokens[index] }
    var following: JinjaToken { tokens[min(index + 1, tokens.count - 1)] }

    @discardableResult
    mutating func advance() -> JinjaToken {
        let token = current
        if index < tokens.count - 1 { index += 1 }
        return token
    }

    mutating func skip(name: String) -> Bool {
        guard current.isName(name) else { return false }
        advance()
        return true
    }

    mutating func skip(op: String) -> Bool {
        guard current.isOp(op) else { return false }
        advance()
        return true
    }

    mutating func expect(op: String) throws {
        guard skip(op: op) else { throw JinjaError.syntax("expected '\(op)', got \(describe(current))", line: current.line) }
    }

    mutating func expect(_ kind: JinjaToken.Kind, _ what: String) throws -> JinjaToken {
        guard current.kind == kind else { throw JinjaError.syntax("expected \(what), got \(describe(current))", line: current.line) }
        return advance()
    }

    func describe(_ token: JinjaToken) -> String {
        switch token.kind {
        case .text: return "template text"
        case .blockBegin: return "'{%'"
        case .blockEnd: return "'%}'"
        case .variableBegin: return "'{{'"
        case .variableEnd: return "'}}'"
        case .name, .op: return "'\(token.value)'"
        case .string: return "a string"
        case .integer, .float: return "a number"
        case .end: return "the end of the template"
        }
    }

    func unexpected(_ token: JinjaToken) -> JinjaError {
        .syntax("unexpected \(describe(token))", line: token.line)
    }

    mutating func enter() throws {
        nesting += 1
        guard nesting <= JinjaParser.maxNesting else {
            throw JinjaError.unsupported("nesting deeper than \(JinjaParser.maxNesting) levels", line: current.line)
        }
    }

    /// Counts one more level of an expression that loops build left-deep (`a + b + c`,
    /// `x | f | g`, `a.b.c`), so that the tree's depth stays within the nesting limit too;
    /// the caller gives the levels back (`nesting -= levels`) when it returns.
    mutating func deepen(_ levels: inout Int) throws {
        levels += 1
        try enter()
    }

    // MARK: Statements

    /// Nodes up to a `{% name %}` tag whose name is in `endNames` (left as the current
    /// token), or to the end of the template.
    private mutating func subparse(until endNames: Set<String>) throws -> [JinjaNode] {
        try enter()
        defer { nesting -= 1 }
        var body: [JinjaNode] = []
        while true {
            let token = current
            switch token.kind {
            case .text:
                body.append(JinjaNode(kind: .text(token.value), line: token.line))
                advance()
            case .variableBegin:
                advance()
                let expression = try parseTuple()
                _ = try expect(.variableEnd, "'}}'")
                body.append(JinjaNode(kind: .output(expression), line: token.line))
            case .blockBegin:
                advance()
                if current.kind == .name, endNames.contains(current.value) { return body }
                body += try parseStatement()
                _ = try expect(.blockEnd, "'%}'")
            case .end:
                return body
            default:
                throw unexpected(token)
            }
        }
    }

    /// The body of a block statement: after its tag's `%}`, up to one of `endNames`.
    private mutating func parseBody(until endNames: Set<String>, dropEnd: Bool) throws -> [JinjaNode] {
        _ = skip(op: ":")
        _ = try expect(.blockEnd, "'%}'")
        let body = try subparse(until: endNames)
        guard current.kind != .end else {
            let names = endNames.sorted().map { "`\($0)`" }.joined(separator: " or ")
            throw JinjaError.syntax("unexpected end of template, expected \(names)", line: current.line)
        }
        if dropEnd { advance() }
        return body
    }

    private mutating func parseStatement() throws -> [JinjaNode] {
        let token = current
        guard token.kind == .name else { throw JinjaError.syntax("tag name expected", line: token.line) }
        let line = token.line
        func node(_ kind: JinjaNode.Kind) -> [JinjaNode] { [JinjaNode(kind: kind, line: line)] }
        switch token.value {
        case "for": return node(.forLoop(try parseFor()))
        case "if": return node(try parseIf())
        case "set": return node(try parseSet())
        case "macro": return node(.macro(try parseMacro()))
        case "filter":
            advance()
            let filters = try parseFilters(inline: true)
            return node(.filterBlock(filters, body: JinjaFrame(body: try parseBody(until: ["endfilter"], dropEnd: true))))
        case "with": return node(try parseWith())
        case "print":
            advance()
            var nodes: [JinjaNode] = []
            while current.kind != .blockEnd {
                if !nodes.isEmpty { try expect(op: ",") }
                nodes.append(JinjaNode(kind: .output(try parseExpression()), line: line))
            }
            return nodes
        case "generation":
            advance()
            return node(.generation(JinjaFrame(body: try parseBody(until: ["endgeneration"], dropEnd: true))))
        case "break", "continue":
            advance()
            guard loopDepth > 0 else { throw JinjaError.syntax("`\(token.value)` outside a loop", line: line) }
            return node(token.value == "break" ? .breakLoop : .continueLoop)
        case "endfor", "endif", "endset", "endmacro", "endfilter", "endwith", "endgeneration", "elif", "else", "endraw":
            throw JinjaError.syntax("unexpected `\(token.value)`", line: line)
        default:
            throw JinjaError.unsupported("the `\(token.value)` tag", line: line)
        }
    }

    private mutating func parseFor() throws -> JinjaForLoop {
        advance()
        let target = try parseTarget(endNames: ["in"], allowNamespace: false)
        guard skip(name: "in") else { throw JinjaError.syntax("expected 'in'", line: current.line) }
        let iterable = try parseTuple(conditional: false, endNames: ["recursive"])
        let condition = skip(name: "if") ? try parseExpression() : nil
        if current.isName("recursive") { throw JinjaError.unsupported("a recursive `for` loop", line: current.line) }
        loopDepth += 1
        let body = try parseBody(until: ["endfor", "else"], dropEnd: false)
        loopDepth -= 1
        let otherwise = advance().value == "else" ? try parseBody(until: ["endfor"], dropEnd: true) : []
        return JinjaForLoop(target: target, iterable: iterable, condition: condition,
                            body: JinjaFrame(body: body), otherwise: JinjaFrame(body: otherwise))
    }

    private mutating func parseIf() throws -> JinjaNode.Kind {
        advance()
        var branches: [JinjaBranch] = []
        while true {
            let condition = try parseTuple(conditional: false)
            branches.append(JinjaBranch(condition: condition, body: try parseBody(until: ["elif", "else", "endif"], dropEnd: false)))
            let end = advance().value
            if end == "elif" { continue }
            let otherwise = end == "else" ? try parseBody(until: ["endif"], dropEnd: true) : []
            return .conditional(branches, otherwise: otherwise)
        }
    }

    private mutating func parseSet() throws -> JinjaNode.Kind {
        advance()
        let target = try parseTarget(endNames: [], allowNamespace: true)
        if skip(op: "=") { return .set(target, try parseTuple()) }
        let filters = current.isOp("|") ? try parseFilters(inline: false) : []
        return .setBlock(target, filters, body: JinjaFrame(body: try parseBody(until: ["endset"], dropEnd: true)))
    }

    private mutating func parseWith() throws -> JinjaNode.Kind {
        advance()
        var assignments: [(target: JinjaTarget, value: JinjaExpr)] = []
        while current.kind != .blockEnd {
            if !assignments.isEmpty { try expect(op: ",") }
            let target = try parseTarget(endNames: [], allowNamespace: false)
            try expect(op: "=")
            assignments.append((target, try parseExpression()))
        }
        return .with(assignments, body: JinjaFrame(body: try parseBody(until: ["endwith"], dropEnd: true)))
    }

    private mutating func parseMacro() throws -> JinjaMacroDefinition {
        advance()
        let name = try expect(.name, "a macro name").value
        try expect(op: "(")
        var parameters: [(name: String, defaultValue: JinjaExpr?)] = []
        while !current.isOp(")") {
            if !parameters.isEmpty { try expect(op: ",") }
            if current.isOp(")") { break }
            let parameter = try expect(.name, "a parameter name").value
            let defaultValue = skip(op: "=") ? try parseExpression() : nil
            if defaultValue == nil, parameters.contains(where: { $0.defaultValue != nil }) {
                throw JinjaError.syntax("non-default argument follows default argument", line: current.line)
            }
            parameters.append((parameter, defaultValue))
        }
        try expect(op: ")")
        let savedLoops = loopDepth
        loopDepth = 0
        macroDepth += 1
        defer { loopDepth = savedLoops; macroDepth -= 1 }
        return JinjaMacroDefinition(name: name, parameters: parameters,
                                    body: JinjaFrame(body: try parseBody(until: ["endmacro"], dropEnd: true)))
    }

    /// A `set` / `for` / `with` target: a name, `ns.attr` (set only), or a tuple of targets.
    mutating func parseTarget(endNames: Set<String>, allowNamespace: Bool) throws -> JinjaTarget {
        var targets: [JinjaTarget] = []
        var isTuple = false
        while true {
            if !targets.isEmpty { try expect(op: ",") }
            if isTupleEnd(endNames) { break }
            targets.append(try parseTargetElement(allowNamespace: allowNamespace))
            guard current.isOp(",") else { break }
            isTuple = true
        }
        if !isTuple, let only = targets.first { return only }
        guard !targets.isEmpty else { throw JinjaError.syntax("expected an assignment target", line: current.line) }
        return .tuple(targets)
    }

    private mutating func parseTargetElement(allowNamespace: Bool) throws -> JinjaTarget {
        let token = current
        if token.kind == .name, !["true", "false", "True", "False", "none", "None"].contains(token.value) {
            advance()
            if allowNamespace, skip(op: ".") { return .namespaceAttribute(token.value, try expect(.name, "an attribute name").value) }
            return .name(token.value)
        }
        if skip(op: "(") {
            let target = try parseTarget(endNames: [], allowNamespace: allowNamespace)
            try expect(op: ")")
            return target
        }
        throw JinjaError.syntax("can't assign to \(describe(token))", line: token.line)
    }

    func isTupleEnd(_ endNames: Set<String>) -> Bool {
        current.kind == .variableEnd || current.kind == .blockEnd || current.isOp(")")
            || (current.kind == .name && endNames.contains(current.value))
    }
}
