/// jinja2's expression grammar, by precedence from loosest to tightest: conditional
/// (`a if b else c`), `or`, `and`, `not`, comparisons and `in`, `+ -`, `~`, `* / // %`,
/// `**`, unary `- +`, then primaries with postfixes (`.name`, `[index]`, `[a:b:c]`, calls),
/// filters (`| name(args)`) and tests (`is [not] name args`).
extension JinjaParser {
    private func expr(_ kind: JinjaExpr.Kind, _ line: Int) -> JinjaExpr { JinjaExpr(kind: kind, line: line) }

    /// Expressions separated by commas make a tuple (`{{ a, b }}`, `set a, b = 1, 2`).
    mutating func parseTuple(conditional: Bool = true, endNames: Set<String> = [],
                             parenthesized: Bool = false) throws -> JinjaExpr {
        let line = current.line
        var items: [JinjaExpr] = []
        var isTuple = false
        while true {
            if !items.isEmpty { try expect(op: ",") }
            if isTupleEnd(endNames) { break }
            items.append(conditional ? try parseExpression() : try parseOr())
            guard current.isOp(",") else { break }
            isTuple = true
        }
        if !isTuple {
            if let only = items.first { return only }
            guard parenthesized else { throw JinjaError.syntax("expected an expression, got \(describe(current))", line: line) }
        }
        return expr(.tuple(items), line)
    }

    mutating func parseExpression() throws -> JinjaExpr {
        try enter()
        var levels = 1
        defer { nesting -= levels }
        var result = try parseOr()
        while skip(name: "if") {
            try deepen(&levels)
            let condition = try parseOr()
            let otherwise = skip(name: "else") ? try parseExpression() : nil
            result = expr(.conditional(condition: condition, then: result, otherwise: otherwise), result.line)
        }
        return result
    }

    mutating func parseOr() throws -> JinjaExpr {
        var levels = 0
        defer { nesting -= levels }
        var left = try parseAnd()
        while skip(name: "or") {
            try deepen(&levels)
            left = expr(.or(left, try parseAnd()), left.line)
        }
        return left
    }

    private mutating func parseAnd() throws -> JinjaExpr {
        var levels = 0
        defer { nesting -= levels }
        var left = try parseNot()
        while skip(name: "and") {
            try deepen(&levels)
            left = expr(.and(left, try parseNot()), left.line)
        }
        return left
    }

    private mutating func parseNot() throws -> JinjaExpr {
        guard current.isName("not") else { return try parseCompare() }
        let line = advance().line
        try enter()
        defer { nesting -= 1 }
        return expr(.not(try parseNot()), line)
    }

    private mutating func parseCompare() throws -> JinjaExpr {
        let left = try parseMath1()
        var comparisons: [JinjaComparison] = []
        while true {
            if current.kind == .op, let op = JinjaCompareOperator(rawValue: current.value), op != .contains, op != .notContains {
                advance()
                comparisons.append(JinjaComparison(op: op, operand: try parseMath1()))
            } else if skip(name: "in") {
                comparisons.append(JinjaComparison(op: .contains, operand: try parseMath1()))
            } else if current.isName("not"), following.isName("in") {
                advance()
                advance()
                comparisons.append(JinjaComparison(op: .notContains, operand: try parseMath1()))
            } else {
                break
            }
        }
        return comparisons.isEmpty ? left : expr(.compare(left, comparisons), left.line)
    }

    private mutating func parseMath1() throws -> JinjaExpr {
        var levels = 0
        defer { nesting -= levels }
        var left = try parseConcat()
        while current.isOp("+") || current.isOp("-") {
            try deepen(&levels)
            let op: JinjaBinaryOperator = advance().value == "+" ? .add : .subtract
            left = expr(.binary(op, left, try parseConcat()), left.line)
        }
        return left
    }

    private mutating func parseConcat() throws -> JinjaExpr {
        var parts = [try parseMath2()]
        while skip(op: "~") { parts.append(try parseMath2()) }
        return parts.count == 1 ? parts[0] : expr(.concat(parts), parts[0].line)
    }

    private mutating func parseMath2() throws -> JinjaExpr {
        var levels = 0
        defer { nesting -= levels }
        var left = try parsePower()
        while current.kind == .op, ["*", "/", "//", "%"].contains(current.value),
              let op = JinjaBinaryOperator(rawValue: current.value) {
            try deepen(&levels)
            advance()
            left = expr(.binary(op, left, try parsePower()), left.line)
        }
        return left
    }

    private mutating func parsePower() throws -> JinjaExpr {
        var levels = 0
        defer { nesting -= levels }
        var left = try parseUnary()
        while skip(op: "**") {
            try deepen(&levels)
            left = expr(.binary(.power, left, try parseUnary()), left.line)
        }
        return left
    }

    private mutating func parseUnary(withFilters: Bool = true) throws -> JinjaExpr {
        try enter()
        defer { nesting -= 1 }
        let line = current.line
        var node: JinjaExpr
        if skip(op: "-") {
            node = expr(.negative(try parseUnary(withFilters: false)), line)
        } else if skip(op: "+") {
            node = expr(.positive(try parseUnary(withFilters: false)), line)
        } else {
            node = try parsePrimary()
        }
        node = try parsePostfix(node)
        return withFilters ? try parseFilterExpression(node) : node
    }

    private mutating func parsePrimary() throws -> JinjaExpr {
        let token = current
        switch token.kind {
        case .name:
            advance()
            switch token.value {
            case "true", "True": return expr(.constant(.bool(true)), token.line)
            case "false", "False": return expr(.constant(.bool(false)), token.line)
            case "none", "None": return expr(.constant(.none), token.line)
            default:
                if macroDepth > 0, ["varargs", "kwargs", "caller"].contains(token.value) {
                    throw JinjaError.unsupported("`\(token.value)` in a macro", line: token.line)
                }
                return expr(.name(token.value), token.line)
            }
        case .string:
            var text = ""
            while current.kind == .string { text += advance().value }  // adjacent literals join
            return expr(.constant(.literal(text)), token.line)
        case .integer:
            advance()
            return expr(.constant(.int(token.integer)), token.line)
        case .float:
            advance()
            return expr(.constant(.double(token.float)), token.line)
        case .op where token.value == "(":
            advance()
            let inner = try parseTuple(parenthesized: true)
            try expect(op: ")")
            return inner
        case .op where token.value == "[":
            advance()
            var items: [JinjaExpr] = []
            while !current.isOp("]") {
                if !items.isEmpty { try expect(op: ",") }
                if current.isOp("]") { break }
                items.append(try parseExpression())
            }
            try expect(op: "]")
            return expr(.list(items), token.line)
        case .op where token.value == "{":
            advance()
            var pairs: [JinjaPair] = []
            while !current.isOp("}") {
                if !pairs.isEmpty { try expect(op: ",") }
                if current.isOp("}") { break }
                let key = try parseExpression()
                try expect(op: ":")
                pairs.append(JinjaPair(key: key, value: try parseExpression()))
            }
            try expect(op: "}")
            return expr(.dict(pairs), token.line)
        default:
            throw unexpected(token)
        }
    }

    private mutating func parsePostfix(_ start: JinjaExpr) throws -> JinjaExpr {
        var levels = 0
        defer { nesting -= levels }
        var node = start
        while true {
            if current.isOp(".") || current.isOp("[") || current.isOp("(") { try deepen(&levels) }
            if current.isOp(".") || current.isOp("[") {
                node = try parseSubscript(node)
            } else if current.isOp("(") {
                node = try parseCall(node)
            } else {
                return node
            }
        }
    }

    private mutating func parseFilterExpression(_ start: JinjaExpr) throws -> JinjaExpr {
        var levels = 0
        defer { nesting -= levels }
        var node = start
        while true {
            if current.isOp("|") {
                for filter in try parseFilters(inline: false) {
                    try deepen(&levels)
                    node = expr(.filter(node, filter), filter.line)
                }
            } else if current.isName("is") {
                try deepen(&levels)
                node = try parseTest(node)
            } else if current.isOp("(") {
                try deepen(&levels)
                node = try parseCall(node)
            } else {
                return node
            }
        }
    }

    private mutating func parseSubscript(_ node: JinjaExpr) throws -> JinjaExpr {
        let token = advance()
        if token.value == "." {
            let attribute = advance()
            switch attribute.kind {
            case .name: return expr(.attribute(node, attribute.value), token.line)
            case .integer: return expr(.item(node, expr(.constant(.int(attribute.integer)), attribute.line)), token.line)
            default: throw JinjaError.syntax("expected name or number after '.'", line: attribute.line)
            }
        }
        var subscripts: [JinjaExpr] = []
        var slice: (JinjaExpr?, JinjaExpr?, JinjaExpr?)?
        while !current.isOp("]") {
            if !subscripts.isEmpty || slice != nil { try expect(op: ",") }
            var start: JinjaExpr?
            if !current.isOp(":") {
                let value = try parseExpression()
                guard current.isOp(":") else { subscripts.append(value); continue }
                start = value
            }
            advance()
            let stop = current.isOp(":") || current.isOp("]") || current.isOp(",") ? nil : try parseExpression()
            var step: JinjaExpr?
            if skip(op: ":"), !current.isOp("]"), !current.isOp(",") { step = try parseExpression() }
            slice = (start, stop, step)
        }
        try expect(op: "]")
        switch (subscripts.count, slice) {
        case (1, nil): return expr(.item(node, subscripts[0]), token.line)
        case (_, nil): return expr(.item(node, expr(.tuple(subscripts), token.line)), token.line)  // x[] and x[a, b]: a tuple key
        case (0, let slice?): return expr(.slice(node, start: slice.0, stop: slice.1, step: slice.2), token.line)
        default: throw JinjaError.unsupported("a subscript mixing slices and indices", line: token.line)
        }
    }

    private mutating func parseCallArguments() throws -> JinjaArguments {
        let line = current.line
        try expect(op: "(")
        var arguments = JinjaArguments()
        while !current.isOp(")") {
            if !arguments.positional.isEmpty || !arguments.keyword.isEmpty {
                try expect(op: ",")
                if current.isOp(")") { break }
            }
            if current.isOp("*") || current.isOp("**") {
                throw JinjaError.unsupported("`\(current.value)` arguments in a call", line: line)
            }
            if current.kind == .name, following.isOp("=") {
                let name = advance().value
                advance()
                arguments.keyword.append((name, try parseExpression()))
            } else {
                guard arguments.keyword.isEmpty else {
                    throw JinjaError.syntax("invalid syntax for function call expression", line: line)
                }
                arguments.positional.append(try parseExpression())
            }
        }
        try expect(op: ")")
        return arguments
    }

    private mutating func parseCall(_ node: JinjaExpr) throws -> JinjaExpr {
        let line = current.line
        switch node.kind {
        case .attribute(_, let method) where JinjaBuiltins.refusedMethods.contains(method):
            throw JinjaError.unsupported("the method `\(method)`", line: line)
        case .name(let function) where JinjaBuiltins.refusedGlobals.contains(function):
            throw JinjaError.unsupported("the function `\(function)`", line: line)
        default:
            return expr(.call(node, try parseCallArguments()), line)
        }
    }

    /// `| name(args) | name ...`, or with `inline` a first filter without the `|`.
    mutating func parseFilters(inline: Bool) throws -> [JinjaFilterCall] {
        var filters: [JinjaFilterCall] = []
        var first = inline
        while first || skip(op: "|") {
            first = false
            let token = try expect(.name, "a filter name")
            var name = token.value
            while skip(op: ".") { name += "." + (try expect(.name, "a filter name").value) }
            guard JinjaBuiltins.filters.contains(name) else { throw JinjaError.unsupported("the filter `\(name)`", line: token.line) }
            let arguments = current.isOp("(") ? try parseCallArguments() : JinjaArguments()
            filters.append(JinjaFilterCall(name: name, arguments: arguments, line: token.line))
        }
        return filters
    }

    private mutating func parseTest(_ node: JinjaExpr) throws -> JinjaExpr {
        let line = advance().line
        let negated = skip(name: "not")
        var name = try expect(.name, "a test name").value
        while skip(op: ".") { name += "." + (try expect(.name, "a test name").value) }
        guard JinjaBuiltins.tests.contains(name) else { throw JinjaError.unsupported("the test `\(name)`", line: line) }
        var arguments = JinjaArguments()
        if current.isOp("(") {
            arguments = try parseCallArguments()
        } else if [.name, .string, .integer, .float].contains(current.kind) || current.isOp("[") || current.isOp("{"),
                  !["else", "or", "and"].contains(where: current.isName) {
            if current.isName("is") { throw JinjaError.syntax("you cannot chain multiple tests with is", line: line) }
            arguments.positional = [try parsePostfix(try parsePrimary())]
        }
        return expr(.test(node, name, arguments, negated: negated), line)
    }
}
