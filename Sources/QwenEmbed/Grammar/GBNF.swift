/// A context-free grammar over Unicode code points, as GBNF text writes it (llama.cpp's
/// `grammars/README.md`): rules `name ::= alternatives`, alternatives split by `|`,
/// sequences of string literals ("..."), character classes ([a-z], [^"\\]), `.` (any
/// character), rule names and parenthesized groups, each optionally repeated by `*`, `+`,
/// `?`, `{m}`, `{m,}` or `{m,n}`; `#` comments; `root` is the start rule.
///
/// Parsing lowers groups and repetitions into rules of their own (as llama.cpp does), so
/// a `Grammar` is only rules of alternatives of sequences of character classes and rule
/// references. A rule may continue on following lines: it ends where the next
/// `name ::=` begins.
struct Grammar {
    /// A set of code points: sorted, disjoint, non-adjacent inclusive ranges.
    typealias CharClass = [ClosedRange<UInt32>]

    enum Item: Equatable {
        case chars(CharClass)
        case rule(Int)
    }
    typealias Sequence = [Item]

    /// [rules]: each rule's alternatives.
    var rules: [[Sequence]] = []
    /// [rules]: the names (generated rules get `parent-N`).
    var names: [String] = []
    /// Index of `root`.
    var root = 0

    static let maxCodePoint: UInt32 = 0x10FFFF
}

/// Reads GBNF text into a `Grammar`. Errors are `QwenError.invalidArgument` naming the
/// line and column.
struct GBNFParser {
    private let text: [UInt8]
    private var at = 0
    private var grammar = Grammar()
    /// Rule name -> index (referenced before or after its definition).
    private var ids: [String: Int] = [:]
    /// Rules with a definition; a referenced rule without one is an error.
    private var defined: Set<Int> = []
    /// Where each rule was first referenced (for the error).
    private var firstReference: [Int: Int] = [:]
    /// Groups open around the parser's position: each level is two frames of recursion.
    private var groupDepth = 0
    /// The deepest nesting of groups accepted: deeper text (the fuzzer's JSON schema whose
    /// GBNF nested thousands of groups) would overflow the caller's stack.
    static let maxGroupDepth = 100

    /// Most repetitions `{m,n}` may ask for (each copy is a rule element).
    static let maxRepetition = 10_000

    static func parse(_ text: String) throws -> Grammar {
        var parser = GBNFParser(text: Array(text.utf8))
        return try parser.parseGrammar()
    }

    private init(text: [UInt8]) { self.text = text }

    // MARK: errors and positions

    private func location(_ offset: Int) -> String {
        var line = 1, column = 1
        for byte in text[..<min(offset, text.count)] {
            if byte == UInt8(ascii: "\n") { line += 1; column = 1 } else if byte & 0xC0 != 0x80 { column += 1 }
        }
        return "line \(line), column \(column)"
    }

    private func fail(_ message: String, at offset: Int? = nil) -> QwenError {
        .invalidArgument("grammar: \(location(offset ?? at)): \(message)")
    }

    private var current: UInt8? { at < text.count ? text[at] : nil }

    private static func isNameByte(_ b: UInt8) -> Bool {
        (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || (b >= 0x30 && b <= 0x39) || b == 0x2D || b == 0x5F
    }

    /// Skips spaces, newlines and comments.
    private mutating func skipSpace() {
        while let b = current {
            if b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D {
                at += 1
            } else if b == UInt8(ascii: "#") {
                while current != nil && current != 0x0A { at += 1 }
            } else {
                return
            }
        }
    }

    private mutating func name() -> String? {
        let start = at
        while let b = current, GBNFParser.isNameByte(b) { at += 1 }
        return at > start ? String(decoding: text[start..<at], as: UTF8.self) : nil
    }

    /// Whether a rule definition (`name ::=`) starts here.
    private func atDefinition() -> Bool {
        var i = at
        while i < text.count, GBNFParser.isNameByte(text[i]) { i += 1 }
        guard i > at else { return false }
        while i < text.count, text[i] == 0x20 || text[i] == 0x09 || text[i] == 0x0A || text[i] == 0x0D { i += 1 }
        return i + 3 <= text.count && text[i] == UInt8(ascii: ":") && text[i + 1] == UInt8(ascii: ":") && text[i + 2] == UInt8(ascii: "=")
    }

    private mutating func ruleID(_ name: String) -> Int {
        if let id = ids[name] { return id }
        let id = grammar.rules.count
        grammar.rules.append([])
        grammar.names.append(name)
        ids[name] = id
        return id
    }

    private mutating func newRule(after parent: String) -> Int {
        var n = grammar.rules.count
        while ids["\(parent)-\(n)"] != nil { n += 1 }
        return ruleID("\(parent)-\(n)")
    }

    // MARK: grammar

    private mutating func parseGrammar() throws -> Grammar {
        skipSpace()
        guard current != nil else { throw fail("the grammar is empty") }
        while current != nil {
            let start = at
            guard let ruleName = name() else { throw fail("expected a rule name") }
            skipSpace()
            guard at + 3 <= text.count, text[at] == UInt8(ascii: ":"), text[at + 1] == UInt8(ascii: ":"), text[at + 2] == UInt8(ascii: "=") else {
                throw fail("expected ::= after the rule name '\(ruleName)'")
            }
            at += 3
            let id = ruleID(ruleName)
            guard !defined.contains(id) else { throw fail("the rule '\(ruleName)' is defined twice", at: start) }
            defined.insert(id)
            grammar.rules[id] = try alternatives(in: ruleName, nested: false)
            skipSpace()
        }
        for (id, offset) in firstReference where !defined.contains(id) {
            throw fail("the rule '\(grammar.names[id])' is used but never defined", at: offset)
        }
        guard let root = ids["root"], defined.contains(root) else { throw fail("the grammar has no 'root' rule", at: 0) }
        grammar.root = root
        return grammar
    }

    private mutating func alternatives(in ruleName: String, nested: Bool) throws -> [Grammar.Sequence] {
        var result = [try sequence(in: ruleName, nested: nested)]
        while current == UInt8(ascii: "|") {
            at += 1
            result.append(try sequence(in: ruleName, nested: nested))
        }
        return result
    }

    private mutating func sequence(in ruleName: String, nested: Bool) throws -> Grammar.Sequence {
        var items: Grammar.Sequence = []
        var lastStart: Int? = nil   // index in items where the last repeatable item begins
        while true {
            skipSpace()
            guard let b = current else { break }
            if b == UInt8(ascii: "|") || (b == UInt8(ascii: ")") && nested) { break }
            if !nested && atDefinition() { break }
            let itemStart = at
            switch b {
            case UInt8(ascii: "\""):
                at += 1
                lastStart = items.count
                while true {
                    guard let c = current else { throw fail("unterminated string literal", at: itemStart) }
                    if c == UInt8(ascii: "\"") { at += 1; break }
                    let cp = try character()
                    items.append(.chars([cp...cp]))
                }
                if lastStart == items.count { lastStart = nil }   // "" repeats nothing
            case UInt8(ascii: "["):
                lastStart = items.count
                items.append(.chars(try charClass()))
            case UInt8(ascii: "."):
                at += 1
                lastStart = items.count
                items.append(.chars([0...Grammar.maxCodePoint]))
            case UInt8(ascii: "("):
                guard groupDepth < Self.maxGroupDepth else {
                    throw fail("groups nest deeper than \(Self.maxGroupDepth) levels", at: itemStart)
                }
                at += 1
                let id = newRule(after: ruleName)
                defined.insert(id)
                groupDepth += 1
                grammar.rules[id] = try alternatives(in: ruleName, nested: true)
                groupDepth -= 1
                skipSpace()
                guard current == UInt8(ascii: ")") else { throw fail("expected ')' to close the group opened", at: itemStart) }
                at += 1
                lastStart = items.count
                items.append(.rule(id))
            case UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "?"), UInt8(ascii: "{"):
                guard let start = lastStart, start < items.count else {
                    throw fail("'\(Character(Unicode.Scalar(b)))' follows nothing it could repeat")
                }
                let (minimum, maximum) = try repetitionBounds()
                // A literal of several characters repeats as a whole: a rule of its own.
                var item = items[start]
                if items.count - start > 1 {
                    let id = newRule(after: ruleName)
                    defined.insert(id)
                    grammar.rules[id] = [Array(items[start...])]
                    item = .rule(id)
                }
                items.removeSubrange(start...)
                items += repeated(item, minimum: minimum, maximum: maximum, in: ruleName)
                lastStart = nil
            case UInt8(ascii: "<"):
                throw fail("token references (<...>, <[id]>) are not supported: write the token's text as a string")
            default:
                guard let ref = name() else {
                    throw fail("unexpected character '\(String(decoding: [b], as: UTF8.self))'")
                }
                let id = ruleID(ref)
                if firstReference[id] == nil { firstReference[id] = itemStart }
                lastStart = items.count
                items.append(.rule(id))
            }
        }
        return items
    }

    /// After `*`, `+`, `?` or `{`: the bounds (maximum nil = unbounded).
    private mutating func repetitionBounds() throws -> (Int, Int?) {
        let b = text[at]
        at += 1
        switch b {
        case UInt8(ascii: "*"): return (0, nil)
        case UInt8(ascii: "+"): return (1, nil)
        case UInt8(ascii: "?"): return (0, 1)
        default:
            let open = at - 1
            skipSpace()
            guard let minimum = number() else { throw fail("expected a number after '{'", at: open) }
            skipSpace()
            var maximum: Int? = minimum
            if current == UInt8(ascii: ",") {
                at += 1
                skipSpace()
                maximum = number()
                skipSpace()
            }
            guard current == UInt8(ascii: "}") else { throw fail("expected '}' to close the repetition", at: open) }
            at += 1
            if let maximum, maximum < minimum { throw fail("repetition {\(minimum),\(maximum)}: the maximum is below the minimum", at: open) }
            guard (maximum ?? minimum) <= GBNFParser.maxRepetition else {
                throw fail("repetition above \(GBNFParser.maxRepetition)", at: open)
            }
            return (minimum, maximum)
        }
    }

    private mutating func number() -> Int? {
        var value = 0, digits = 0
        while let b = current, b >= 0x30 && b <= 0x39 {
            value = min(value * 10 + Int(b - 0x30), 1_000_000)
            digits += 1
            at += 1
        }
        return digits > 0 ? value : nil
    }

    /// `item` repeated minimum...maximum times, as llama.cpp lowers it: the required copies,
    /// then a rule for the rest (`x*`: r ::= x r | ; `x{0,n}`: nested optionals).
    private mutating func repeated(_ item: Grammar.Item, minimum: Int, maximum: Int?, in ruleName: String) -> [Grammar.Item] {
        var items = Array(repeating: item, count: minimum)
        if let maximum {
            guard maximum > minimum else { return items }
            // opt_k ::= item opt_{k-1} | ""  (opt_1 ::= item | "")
            var tail: Int? = nil
            for _ in 0..<(maximum - minimum) {
                let id = newRule(after: ruleName)
                defined.insert(id)
                grammar.rules[id] = [tail.map { [item, .rule($0)] } ?? [item], []]
                tail = id
            }
            if let tail { items.append(.rule(tail)) }
        } else {
            let id = newRule(after: ruleName)
            defined.insert(id)
            grammar.rules[id] = [[item, .rule(id)], []]
            items.append(.rule(id))
        }
        return items
    }

    // MARK: characters

    /// One character of a literal or class: UTF-8 text or an escape.
    private mutating func character() throws -> UInt32 {
        guard let b = current else { throw fail("unexpected end of the grammar") }
        if b == UInt8(ascii: "\\") {
            at += 1
            guard let e = current else { throw fail("unexpected end after '\\'") }
            at += 1
            switch e {
            case UInt8(ascii: "n"): return 0x0A
            case UInt8(ascii: "r"): return 0x0D
            case UInt8(ascii: "t"): return 0x09
            case UInt8(ascii: "\\"), UInt8(ascii: "\""), UInt8(ascii: "["), UInt8(ascii: "]"), UInt8(ascii: "-"),
                 UInt8(ascii: "^"), UInt8(ascii: "/"), UInt8(ascii: "'"): return UInt32(e)
            case UInt8(ascii: "x"): return try hex(digits: 2)
            case UInt8(ascii: "u"): return try hex(digits: 4)
            case UInt8(ascii: "U"): return try hex(digits: 8)
            default: throw fail("unknown escape '\\\(String(decoding: [e], as: UTF8.self))'", at: at - 2)
            }
        }
        // One UTF-8 character.
        let length = b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 0
        guard length > 0, at + length <= text.count else { throw fail("invalid UTF-8") }
        var cp = length == 1 ? UInt32(b) : UInt32(b) & (0xFF >> (length + 1))
        for i in 1..<length {
            let c = text[at + i]
            guard c & 0xC0 == 0x80 else { throw fail("invalid UTF-8") }
            cp = cp << 6 | UInt32(c & 0x3F)
        }
        at += length
        return cp
    }

    private mutating func hex(digits: Int) throws -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<digits {
            guard let b = current else { throw fail("expected \(digits) hex digits") }
            let digit: UInt8
            switch b {
            case 0x30...0x39: digit = b - 0x30
            case 0x61...0x66: digit = b - 0x61 + 10
            case 0x41...0x46: digit = b - 0x41 + 10
            default: throw fail("expected \(digits) hex digits")
            }
            value = value << 4 | UInt32(digit)
            at += 1
        }
        guard value <= Grammar.maxCodePoint else { throw fail("code point \(value) is beyond U+10FFFF", at: at - digits - 2) }
        return value
    }

    private mutating func charClass() throws -> Grammar.CharClass {
        let open = at
        at += 1
        var negated = false
        if current == UInt8(ascii: "^") { negated = true; at += 1 }
        var ranges: [ClosedRange<UInt32>] = []
        while true {
            guard let b = current else { throw fail("unterminated character class", at: open) }
            if b == UInt8(ascii: "]") { at += 1; break }
            let lo = try character()
            var hi = lo
            if current == UInt8(ascii: "-"), at + 1 < text.count, text[at + 1] != UInt8(ascii: "]") {
                at += 1
                hi = try character()
                guard hi >= lo else { throw fail("the range is reversed", at: at - 1) }
            }
            ranges.append(lo...hi)
        }
        let normal = GBNFParser.normalize(ranges)
        return negated ? GBNFParser.complement(normal) : normal
    }

    /// Sorted, merged ranges.
    static func normalize(_ ranges: [ClosedRange<UInt32>]) -> Grammar.CharClass {
        var out: Grammar.CharClass = []
        for r in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = out.last, r.lowerBound <= last.upperBound &+ 1 {
                out[out.count - 1] = last.lowerBound...max(last.upperBound, r.upperBound)
            } else {
                out.append(r)
            }
        }
        return out
    }

    static func complement(_ ranges: Grammar.CharClass) -> Grammar.CharClass {
        var out: Grammar.CharClass = []
        var next: UInt32 = 0
        for r in ranges {
            if r.lowerBound > next { out.append(next...(r.lowerBound - 1)) }
            next = r.upperBound + 1
        }
        if next <= Grammar.maxCodePoint { out.append(next...Grammar.maxCodePoint) }
        return out
    }
}
