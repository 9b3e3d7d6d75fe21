/// JSON Schema's `pattern` (an ECMAScript regular expression that matches anywhere in the
/// string unless anchored) as a GBNF expression over the text between a JSON string's
/// quotes. Characters a JSON string must escape (`"`, `\`, controls) are matched in the
/// escaped form Python's `json.dumps` writes (`\"`, `\\`, `\n`, `\u001f`), so the reply is
/// valid JSON whose decoded value matches the pattern. (llama.cpp copies the pattern's
/// classes into the grammar as they are, so its `.` may emit a bare `"`; and it takes an
/// unanchored pattern as any string.)
///
/// Taken: literals and escapes (`\d \w \s \D \W \S`, `\t \n \r \v \f \0`, `\xHH`,
/// `\uHHHH`, `\cX`, escaped punctuation), classes (ranges, negation, escapes inside), `.`,
/// groups `( )` `(?: )` `(?<name> )`, `|`, the quantifiers `* + ? {n} {n,} {n,m}` (lazy
/// or not: the same strings), and `^` / `$` at the ends of a top-level alternative. An
/// unanchored end matches any characters there. Refused naming the construct:
/// lookaround, backreferences, `\b`, `\B`, `\p{...}`, anchors elsewhere.
enum RegexGrammar {
    /// The GBNF expression matching the quoted text of every JSON string whose value
    /// matches `pattern`; `anyCharacter` is the name of a rule for one JSON string
    /// character (escaped or not), used where the pattern is not anchored.
    static func expression(pattern: String, anyCharacter: String) throws -> String {
        var parser = Parser(Array(pattern.unicodeScalars))
        let alternatives = try parser.topLevel()
        return alternatives.map { alternative in
            var parts: [String] = []
            if !alternative.anchoredStart { parts.append("\(anyCharacter)*") }
            parts.append(gbnf(alternative.node))
            if !alternative.anchoredEnd { parts.append("\(anyCharacter)*") }
            return parts.joined(separator: " ")
        }.joined(separator: " | ")
    }

    /// A set of code points as sorted, disjoint, non-adjacent ranges.
    struct CodePoints: Equatable {
        private(set) var ranges: [ClosedRange<UInt32>] = []

        init(_ ranges: [ClosedRange<UInt32>] = []) {
            for r in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
                if let last = self.ranges.last, r.lowerBound <= last.upperBound &+ 1 {
                    self.ranges[self.ranges.count - 1] = last.lowerBound...max(last.upperBound, r.upperBound)
                } else {
                    self.ranges.append(r)
                }
            }
        }

        static func + (a: CodePoints, b: CodePoints) -> CodePoints { CodePoints(a.ranges + b.ranges) }

        /// Every code point not in the set.
        var inverted: CodePoints {
            var out: [ClosedRange<UInt32>] = []
            var next: UInt32 = 0
            for r in ranges {
                if r.lowerBound > next { out.append(next...(r.lowerBound - 1)) }
                next = r.upperBound + 1
            }
            if next <= 0x10FFFF { out.append(next...0x10FFFF) }
            return CodePoints(out)
        }

        func intersection(_ other: CodePoints) -> CodePoints {
            var out: [ClosedRange<UInt32>] = []
            for a in ranges {
                for b in other.ranges where a.overlaps(b) { out.append(max(a.lowerBound, b.lowerBound)...min(a.upperBound, b.upperBound)) }
            }
            return CodePoints(out)
        }

        var isEmpty: Bool { ranges.isEmpty }

        static let digits = CodePoints([0x30...0x39])
        static let word = CodePoints([0x30...0x39, 0x41...0x5A, 0x5F...0x5F, 0x61...0x7A])
        /// ECMAScript's WhiteSpace and LineTerminator.
        static let space = CodePoints([0x09...0x0D, 0x20...0x20, 0xA0...0xA0, 0x1680...0x1680, 0x2000...0x200A,
                                       0x2028...0x2029, 0x202F...0x202F, 0x205F...0x205F, 0x3000...0x3000, 0xFEFF...0xFEFF])
        /// What `.` matches: all but the line terminators.
        static let dot = CodePoints([0x0A...0x0A, 0x0D...0x0D, 0x2028...0x2029]).inverted
        /// What a JSON string holds as it is; the rest is written escaped. (DEL too: JSON
        /// allows it bare, and json.dumps writes it so.)
        static let unescaped = CodePoints([0x00...0x1F, 0x22...0x22, 0x5C...0x5C]).inverted
    }

    indirect enum Node {
        /// One character of the set.
        case character(CodePoints)
        case sequence([Node])
        case alternation([Node])
        case repetition(Node, minimum: Int, maximum: Int?)
    }

    struct Alternative {
        var node: Node
        var anchoredStart: Bool
        var anchoredEnd: Bool
    }

    // MARK: writing GBNF

    static func gbnf(_ node: Node) -> String {
        switch node {
        case .character(let set):
            return characterExpression(set)
        case .sequence(let items):
            if items.isEmpty { return "\"\"" }
            // Runs of single unescaped characters become one literal.
            var out: [String] = []
            var literal = ""
            for item in items {
                if case .character(let set) = item, set.ranges.count == 1, set.ranges[0].lowerBound == set.ranges[0].upperBound,
                   let text = literalText(set.ranges[0].lowerBound) {
                    literal += text
                    continue
                }
                if !literal.isEmpty { out.append("\"\(literal)\""); literal = "" }
                let text = gbnf(item)
                out.append(needsParentheses(item) ? "(\(text))" : text)
            }
            if !literal.isEmpty { out.append("\"\(literal)\"") }
            return out.joined(separator: " ")
        case .alternation(let alternatives):
            return alternatives.map { gbnf($0) }.joined(separator: " | ")
        case .repetition(let item, let minimum, let maximum):
            let quantifier: String
            switch (minimum, maximum) {
            case (0, nil): quantifier = "*"
            case (1, nil): quantifier = "+"
            case (0, 1?): quantifier = "?"
            case (let m, nil): quantifier = "{\(m),}"
            case (let m, let n?) where m == n: quantifier = "{\(m)}"
            case (let m, let n?): quantifier = "{\(m),\(n)}"
            }
            return "(\(gbnf(item)))\(quantifier)"
        }
    }

    /// Whether `node` is written as alternatives (a `|` list, or a character that has
    /// escaped forms), which a sequence must put in parentheses.
    private static func needsParentheses(_ node: Node) -> Bool {
        if case .alternation = node { return true }
        if case .character(let set) = node { return !set.intersection(CodePoints.unescaped.inverted).isEmpty }
        return false
    }

    /// One character of `set` as JSON text: a class of those written as they are, and a
    /// literal for each one written escaped.
    private static func characterExpression(_ set: CodePoints) -> String {
        var alternatives: [String] = []
        let plain = set.intersection(CodePoints.unescaped)
        if plain.ranges.count == 1, plain.ranges[0].lowerBound == plain.ranges[0].upperBound,
           let text = literalText(plain.ranges[0].lowerBound) {
            alternatives.append("\"\(text)\"")
        } else if !plain.isEmpty {
            alternatives.append("[" + plain.ranges.map { r in
                r.lowerBound == r.upperBound ? classText(r.lowerBound) : "\(classText(r.lowerBound))-\(classText(r.upperBound))"
            }.joined() + "]")
        }
        for r in set.intersection(CodePoints.unescaped.inverted).ranges {
            for c in r { alternatives.append("\"\(jsonEscape(c))\"") }
        }
        return alternatives.joined(separator: " | ")
    }

    /// How json.dumps writes a character it escapes, as GBNF literal text.
    private static func jsonEscape(_ c: UInt32) -> String {
        switch c {
        case 0x22: return #"\\\""#
        case 0x5C: return #"\\\\"#
        case 0x08: return #"\\b"#
        case 0x0C: return #"\\f"#
        case 0x0A: return #"\\n"#
        case 0x0D: return #"\\r"#
        case 0x09: return #"\\t"#
        default: return #"\\u00"# + String(c, radix: 16).leftPadded(to: 2)
        }
    }

    /// A character inside a GBNF literal (nil where it needs escaping there).
    private static func literalText(_ c: UInt32) -> String? {
        guard c >= 0x20, c != 0x22, c != 0x5C, c != 0x7F, let scalar = Unicode.Scalar(c) else { return nil }
        return String(Character(scalar))
    }

    /// A character inside a GBNF class.
    private static func classText(_ c: UInt32) -> String {
        if c > 0x20 && c < 0x7F && !"\\]-[^\"".unicodeScalars.contains(where: { $0.value == c }) {
            return String(Character(Unicode.Scalar(UInt8(c))))
        }
        return c <= 0xFF ? "\\x" + String(c, radix: 16).leftPadded(to: 2)
            : c <= 0xFFFF ? "\\u" + String(c, radix: 16).leftPadded(to: 4) : "\\U" + String(c, radix: 16).leftPadded(to: 8)
    }

    // MARK: reading the pattern

    /// Recursive descent over the pattern's code points.
    private struct Parser {
        let text: [Unicode.Scalar]
        var at = 0
        var depth = 0
        static let maxDepth = 100

        init(_ text: [Unicode.Scalar]) { self.text = text }

        var current: Unicode.Scalar? { at < text.count ? text[at] : nil }

        func fail(_ message: String) -> QwenError {
            QwenError.invalidArgument("pattern: \(message) (at character \(at + 1))")
        }

        /// The whole pattern: alternatives, each possibly anchored at its ends.
        mutating func topLevel() throws -> [Alternative] {
            var alternatives: [Alternative] = []
            while true {
                var alternative = Alternative(node: .sequence([]), anchoredStart: false, anchoredEnd: false)
                if current == "^" { at += 1; alternative.anchoredStart = true }
                let items = try sequence(topLevel: true)
                if current == "$" { at += 1; alternative.anchoredEnd = true }
                alternative.node = .sequence(items)
                alternatives.append(alternative)
                guard let c = current else { return alternatives }
                if c == ")" { throw fail("unbalanced ')'") }
                at += 1   // the '|' before the next alternative
            }
        }

        /// Items up to `|`, `)` or the end (a top-level sequence also stops before a `$`
        /// that ends its alternative).
        mutating func sequence(topLevel: Bool) throws -> [Node] {
            var items: [Node] = []
            while let c = current, c != "|", c != ")" {
                if c == "$" {
                    let next = at + 1 < text.count ? text[at + 1] : nil
                    if topLevel && (next == nil || next == "|") { break }
                    throw fail("the anchor '$' is only taken at the ends of the pattern (or of a top-level alternative)")
                }
                if c == "^" { throw fail("the anchor '^' is only taken at the start of the pattern (or of a top-level alternative)") }
                var item = try atom()
                while let (minimum, maximum) = try quantifier() {
                    if case .repetition = item { throw fail("a quantifier follows a quantifier") }
                    item = .repetition(item, minimum: minimum, maximum: maximum)
                }
                items.append(item)
            }
            return items
        }

        mutating func atom() throws -> Node {
            guard let c = current else { throw fail("unexpected end") }
            switch c {
            case "(":
                at += 1
                if current == "?" {
                    at += 1
                    switch current {
                    case ":": at += 1
                    case "<" where at + 1 < text.count && text[at + 1] != "=" && text[at + 1] != "!":
                        // A named group: the same strings as a plain one.
                        while let n = current, n != ">" { at += 1 }
                        guard current == ">" else { throw fail("unterminated group name") }
                        at += 1
                    default: throw fail("lookaround and other '(?' groups are not supported")
                    }
                }
                depth += 1
                guard depth <= Parser.maxDepth else { throw fail("groups nested more than \(Parser.maxDepth) deep") }
                var alternatives = [Node.sequence(try sequence(topLevel: false))]
                while current == "|" {
                    at += 1
                    alternatives.append(.sequence(try sequence(topLevel: false)))
                }
                guard current == ")" else { throw fail("unbalanced '('") }
                at += 1
                depth -= 1
                return alternatives.count == 1 ? alternatives[0] : .alternation(alternatives)
            case ".":
                at += 1
                return .character(CodePoints.dot)
            case "[":
                let set = try characterClass()
                if set.isEmpty { throw fail("a character class that matches nothing") }
                return .character(set)
            case "\\":
                return .character(try escape(inClass: false))
            case "*", "+", "?":
                throw fail("'\(c)' follows nothing")
            default:
                at += 1
                return .character(CodePoints([c.value...c.value]))
            }
        }

        /// A quantifier after an atom, if one is there; `{` that does not begin one is a
        /// literal (as ECMAScript's web-compatible grammar reads it).
        mutating func quantifier() throws -> (Int, Int?)? {
            guard let c = current else { return nil }
            var bounds: (Int, Int?)
            switch c {
            case "*": at += 1; bounds = (0, nil)
            case "+": at += 1; bounds = (1, nil)
            case "?": at += 1; bounds = (0, 1)
            case "{":
                let start = at
                at += 1
                guard let minimum = number() else { at = start; return nil }
                var maximum: Int? = minimum
                if current == "," {
                    at += 1
                    maximum = number()
                }
                guard current == "}" else { at = start; return nil }
                at += 1
                if let maximum, maximum < minimum { throw fail("{\(minimum),\(maximum)}: the maximum is below the minimum") }
                guard (maximum ?? minimum) <= GBNFParser.maxRepetition else {
                    throw fail("repetition above \(GBNFParser.maxRepetition)")
                }
                bounds = (minimum, maximum)
            default: return nil
            }
            if current == "?" { at += 1 }   // lazy: the same strings
            return bounds
        }

        mutating func number() -> Int? {
            var value = 0, digits = 0
            while let c = current, ("0"..."9").contains(c) {
                value = min(value * 10 + Int(c.value - 0x30), Int(Int32.max))
                digits += 1
                at += 1
            }
            return digits > 0 ? value : nil
        }

        /// `[...]`: ranges, single characters and class escapes; `^` first negates.
        mutating func characterClass() throws -> CodePoints {
            at += 1
            var negated = false
            if current == "^" { negated = true; at += 1 }
            var set = CodePoints()
            while true {
                guard let c = current else { throw fail("unterminated character class") }
                if c == "]" { at += 1; break }   // `[]` matches nothing, `[^]` anything
                let low = try classMember()
                if current == "-", at + 1 < text.count, text[at + 1] != "]" {
                    at += 1
                    let high = try classMember()
                    guard let lo = low.single, let hi = high.single else {
                        // A class escape at an end of a range: '-' is itself (web-compatible reading).
                        set = set + low + high + CodePoints([0x2D...0x2D])
                        continue
                    }
                    guard lo <= hi else { throw fail("range out of order in a character class") }
                    set = set + CodePoints([lo...hi])
                } else {
                    set = set + low
                }
            }
            return negated ? set.inverted : set
        }

        mutating func classMember() throws -> CodePoints {
            guard let c = current else { throw fail("unterminated character class") }
            if c == "\\" { return try escape(inClass: true) }
            at += 1
            return CodePoints([c.value...c.value])
        }

        /// An escape: a class (`\d`), a control or code (`\n`, `\x41`), or a character
        /// standing for itself (`\.`).
        mutating func escape(inClass: Bool) throws -> CodePoints {
            at += 1
            guard let e = current else { throw fail("'\\' ends the pattern") }
            at += 1
            func one(_ c: UInt32) -> CodePoints { CodePoints([c...c]) }
            switch e {
            case "d": return CodePoints.digits
            case "D": return CodePoints.digits.inverted
            case "w": return CodePoints.word
            case "W": return CodePoints.word.inverted
            case "s": return CodePoints.space
            case "S": return CodePoints.space.inverted
            case "t": return one(0x09)
            case "n": return one(0x0A)
            case "r": return one(0x0D)
            case "v": return one(0x0B)
            case "f": return one(0x0C)
            case "0" where !(current.map { ("0"..."9").contains($0) } ?? false): return one(0)
            case "b" where inClass: return one(0x08)
            case "b", "B": throw fail("word boundaries (\\b, \\B) are not supported")
            case "1"..."9": throw fail("backreferences are not supported")
            case "k", "p", "P": throw fail("'\\\(e)' (named backreferences, Unicode properties) is not supported")
            case "x": return one(try hex(digits: 2))
            case "u":
                if current == "{" { throw fail("'\\u{...}' is not supported") }
                return one(try hex(digits: 4))
            case "c":
                guard let letter = current, ("a"..."z").contains(letter) || ("A"..."Z").contains(letter) else {
                    throw fail("'\\c' is not followed by a letter")
                }
                at += 1
                return one(letter.value % 32)
            default:
                if e.properties.isAlphabetic || ("0"..."9").contains(e) { throw fail("unknown escape '\\\(e)'") }
                return one(e.value)
            }
        }

        mutating func hex(digits: Int) throws -> UInt32 {
            var value: UInt32 = 0
            for _ in 0..<digits {
                guard let c = current, c.isASCII, let d = UInt32(String(c), radix: 16) else {
                    throw fail("expected \(digits) hex digits")
                }
                value = value << 4 | d
                at += 1
            }
            return value
        }
    }
}

private extension RegexGrammar.CodePoints {
    /// The one code point of a set of one.
    var single: UInt32? { ranges.count == 1 && ranges[0].lowerBound == ranges[0].upperBound ? ranges[0].lowerBound : nil }
}
