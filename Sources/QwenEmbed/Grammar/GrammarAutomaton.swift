/// A `Grammar` compiled to bytes and run as a pushdown automaton whose states are built
/// on demand and kept: the design of xgrammar and llguidance (masks precomputed per
/// parser state) over llama.cpp's stack-set matcher.
///
/// Character classes become UTF-8 byte sequences, so tokens (byte strings) are matched
/// byte by byte, however they cut characters or grammar terminals. A parser position is
/// a stack of rule positions (llama.cpp's `llama_grammar_stack`), hash-consed into nodes
/// (position, parent node) so a stack is one integer; a parser state is the sorted set of
/// stacks whose top is a byte set (plus `acceptMarker` when the input may end there),
/// interned, with its 256 byte transitions filled in as they are first taken. Together
/// with the vocabulary's trie (`TokenTrie`), a state's allowed-token mask is one walk of
/// the trie, pruned at the first byte the state refuses, done once per state and kept:
/// a later request with the same grammar, or the same state again in one reply (inside
/// a string, between list items), costs a table lookup.
///
/// Shared by every reply using the grammar (`Model.grammar(for:)`); all methods lock.
final class GrammarAutomaton: @unchecked Sendable {
    // The compiled grammar (immutable).
    /// [elements]: >= 0 a byte set (index into `byteSets`), `endOfAlternative`, or
    /// `-2 - rule` a reference to a rule.
    private let elements: [Int32]
    /// [rules]: where each alternative of each rule begins in `elements`.
    private let alternatives: [[Int32]]
    /// [sets]: 256-bit byte sets.
    private let byteSets: [ByteSet]
    /// The start state.
    private(set) var start: Int32 = 0

    static let endOfAlternative: Int32 = -1
    /// In a state's members: the input may end here.
    static let acceptMarker = StackNodes.acceptMarker
    /// A transition to no state: the byte is refused.
    static let dead: Int32 = -1
    private static let unknown: Int32 = -2
    /// Parser states kept at most (each costs 1 KiB of transitions).
    static let maxStates = 60_000
    /// Stack nodes kept at most.
    static let maxNodes = 4_000_000
    /// Token masks kept at most (each costs vocab / 8 bytes); all are dropped when full.
    static let maxMasks = 2_048
    /// Stack nodes one call (compiling, a token's bytes, a mask) may visit, or take from
    /// kept expansions, while expanding stacks: nested repetitions of things that match nothing (`(("a"?){9000,}){9000,}`)
    /// reach millions of stacks without reading a byte, and a caller must not be able to
    /// stall a request with one (~0.3 s of work in a release build).
    static let expansionBudgetPerCall = 250_000

    private let lock = Mutex()
    // Built on demand, under the lock.
    private var stacks = StackNodes()
    /// [states]: members, sorted.
    private var stateMembers: [[Int32]] = []
    private var stateIndex: [[Int32]: Int32] = [:]
    /// [states * 256]: the state after each byte, `dead`, or `unknown` until taken.
    private var transitions: [Int32] = []
    /// Allowed-token bitsets by state.
    private var masks: [Int32: [UInt64]] = [:]

    struct ByteSet: Hashable {
        var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        @inline(__always) func contains(_ b: UInt8) -> Bool {
            let bit = UInt64(1) << UInt64(b & 63)
            switch b >> 6 {
            case 0: return words.0 & bit != 0
            case 1: return words.1 & bit != 0
            case 2: return words.2 & bit != 0
            default: return words.3 & bit != 0
            }
        }
        mutating func insert(_ range: ClosedRange<UInt8>) {
            for b in range {
                let bit = UInt64(1) << UInt64(b & 63)
                switch b >> 6 {
                case 0: words.0 |= bit
                case 1: words.1 |= bit
                case 2: words.2 |= bit
                default: words.3 |= bit
                }
            }
        }
        static func == (a: ByteSet, b: ByteSet) -> Bool { a.words == b.words }
        func hash(into h: inout Hasher) { h.combine(words.0); h.combine(words.1); h.combine(words.2); h.combine(words.3) }
    }

    /// Compiles `grammar`; a left-recursive grammar (a rule that can reach itself before
    /// reading a byte, which no top-down parser can run) is INVALID_ARGUMENT naming the rule.
    init(_ grammar: Grammar) throws {
        var lowering = ByteLowering(ruleCount: grammar.rules.count)
        var rules: [[[Int32]]] = Array(repeating: [], count: grammar.rules.count)
        for (r, alternatives) in grammar.rules.enumerated() {
            rules[r] = alternatives.map { sequence in sequence.flatMap { lowering.lower($0) } }
        }
        rules += lowering.extraRules
        try GrammarAutomaton.checkLeftRecursion(rules, names: grammar.names)
        var elements: [Int32] = []
        var starts: [[Int32]] = []
        for alternatives in rules {
            var ruleStarts: [Int32] = []
            for sequence in alternatives {
                ruleStarts.append(Int32(elements.count))
                elements += sequence
                elements.append(GrammarAutomaton.endOfAlternative)
            }
            starts.append(ruleStarts)
        }
        self.elements = elements
        alternatives = starts
        byteSets = lowering.sets
        // The start state: every alternative of root on an empty stack.
        stacks.resetBudget()
        start = try state(stacks.expand(starts[grammar.root].map { stacks.node($0, StackNodes.empty) },
                                        elements: elements, alternatives: alternatives))
    }

    // MARK: what callers ask

    /// The state after the bytes of `token` from `state`, or `dead`.
    func next(_ state: Int32, bytes: UnsafeBufferPointer<UInt8>) throws -> Int32 {
        try lock.locked {
            stacks.resetBudget()
            var s = state
            for b in bytes {
                s = try transition(s, b)
                if s == GrammarAutomaton.dead { break }
            }
            return s
        }
    }

    /// Whether the input may end in `state`; whether it must (nothing else may follow).
    func ending(_ state: Int32) -> (may: Bool, must: Bool) {
        lock.locked {
            let members = stateMembers[Int(state)]
            let may = members.first == GrammarAutomaton.acceptMarker
            return (may, may && members.count == 1)
        }
    }

    /// The tokens of `trie` whose bytes `state` accepts, as a bitset over token ids
    /// [(vocab + 63) / 64]; computed once per state and kept.
    func allowedTokens(_ state: Int32, trie: TokenTrie) throws -> [UInt64] {
        try lock.locked {
            if let mask = masks[state] { return mask }
            stacks.resetBudget()
            let mask = try walk(trie, from: state)
            if masks.count >= GrammarAutomaton.maxMasks { masks.removeAll() }
            masks[state] = mask
            return mask
        }
    }

    // MARK: building states (under the lock)

    /// Depth-first walk of the trie, each node's state from its parent's and its byte; a
    /// refused byte skips the node's whole subtree.
    private func walk(_ trie: TokenTrie, from state: Int32) throws -> [UInt64] {
        var mask = [UInt64](repeating: 0, count: (trie.vocabSize + 63) / 64)
        var ends: [Int32] = [Int32(trie.nodeCount)]   // [depth] where each open node's subtree ends
        var states: [Int32] = [state]                 // [depth] the state after each open node's bytes
        var i = 1
        let count = trie.nodeCount
        try trie.byte.withUnsafeBufferPointer { byte in
            try trie.subtreeEnd.withUnsafeBufferPointer { subtreeEnd in
                try trie.token.withUnsafeBufferPointer { token in
                    while i < count {
                        while Int32(i) >= ends[ends.count - 1] { ends.removeLast(); states.removeLast() }
                        let parent = Int(states[states.count - 1])
                        var s = transitions[parent << 8 | Int(byte[i])]
                        if s == GrammarAutomaton.unknown { s = try transition(Int32(parent), byte[i]) }
                        if s == GrammarAutomaton.dead {
                            i = Int(subtreeEnd[i])
                            continue
                        }
                        let id = token[i]
                        if id >= 0 {
                            mask[Int(id) >> 6] |= 1 << UInt64(id & 63)
                        } else if id != TokenTrie.noToken {
                            for same in trie.sharedBytes[Int(-2 - id)] { mask[Int(same) >> 6] |= 1 << UInt64(same & 63) }
                        }
                        ends.append(subtreeEnd[i])
                        states.append(s)
                        i += 1
                    }
                }
            }
        }
        return mask
    }

    private func transition(_ state: Int32, _ byte: UInt8) throws -> Int32 {
        let slot = Int(state) << 8 | Int(byte)
        let known = transitions[slot]
        if known != GrammarAutomaton.unknown { return known }
        var advanced: [Int32] = []   // the stacks that read `byte`, each moved past it
        for n in stateMembers[Int(state)] where n != GrammarAutomaton.acceptMarker {
            let position = Int(stacks.position[Int(n)])
            if byteSets[Int(elements[position])].contains(byte) {
                advanced.append(stacks.node(Int32(position + 1), stacks.parent[Int(n)]))
            }
        }
        let result = advanced.isEmpty ? GrammarAutomaton.dead
            : try self.state(stacks.expand(advanced, elements: elements, alternatives: alternatives))
        transitions[slot] = result
        return result
    }

    /// The interned state of these stack tops (`StackNodes.expand`'s: each once).
    private func state(_ tops: [Int32]) throws -> Int32 {
        let members = tops.sorted()
        if let s = stateIndex[members] { return s }
        guard stateMembers.count < GrammarAutomaton.maxStates else {
            throw QwenError.invalidArgument("the grammar needs more than \(GrammarAutomaton.maxStates) parser states (nested too deeply, or too ambiguous)")
        }
        let s = Int32(stateMembers.count)
        stateMembers.append(members)
        stateIndex[members] = s
        transitions += repeatElement(GrammarAutomaton.unknown, count: 256)
        return s
    }

    // MARK: compiling

    /// Refuses left recursion: a rule that can reach itself before reading a byte with
    /// something left to read after it (the stack would grow without end). Coming back
    /// to a rule in tail position (`( [x]* )*`) is fine: the stack stays as it is.
    /// Linear in the grammar's size (a worklist for nullability, Tarjan's strongly
    /// connected components for "can reach itself"), as repetitions lower to many rules.
    private static func checkLeftRecursion(_ rules: [[[Int32]]], names: [String]) throws {
        let nullable = nullableRules(rules)
        // Rules each rule may begin with, and whether in tail position (nothing after it).
        var edges: [[(rule: Int, tail: Bool)]] = Array(repeating: [], count: rules.count)
        for (r, alternatives) in rules.enumerated() {
            for sequence in alternatives {
                for (i, e) in sequence.enumerated() {
                    guard e <= -2 else { break }
                    edges[r].append((Int(-2 - e), i == sequence.count - 1))
                    if !nullable[Int(-2 - e)] { break }
                }
            }
        }
        // A non-tail edge r -> s is left recursion exactly when s reaches r: when both lie
        // in one strongly connected component.
        let component = stronglyConnectedComponents(edges.map { $0.map(\.rule) })
        for (r, out) in edges.enumerated() {
            for edge in out where !edge.tail && component[edge.rule] == component[r] {
                let name = r < names.count ? names[r] : "a character class"
                throw QwenError.invalidArgument("grammar: the rule '\(name)' is left-recursive (it can reach itself before reading a character)")
            }
        }
    }

    /// [rules]: whether each rule can match nothing. An alternative is nullable when every
    /// element is a reference to a nullable rule; each rule becoming nullable is
    /// propagated once to the alternatives that reference it.
    private static func nullableRules(_ rules: [[[Int32]]]) -> [Bool] {
        var nullable = [Bool](repeating: false, count: rules.count)
        var alternativeRule: [Int] = []        // [alternatives] the rule it belongs to
        var unresolved: [Int] = []             // [alternatives] references not yet known nullable
        var referencedBy: [[Int]] = Array(repeating: [], count: rules.count)  // [rules] alternatives, once per reference
        var pending: [Int] = []
        for (r, alternatives) in rules.enumerated() {
            for sequence in alternatives where sequence.allSatisfy({ $0 <= -2 }) {
                let a = alternativeRule.count
                alternativeRule.append(r)
                unresolved.append(sequence.count)
                for e in sequence { referencedBy[Int(-2 - e)].append(a) }
                if sequence.isEmpty && !nullable[r] { nullable[r] = true; pending.append(r) }
            }
        }
        while let r = pending.popLast() {
            for a in referencedBy[r] {
                unresolved[a] -= 1
                let owner = alternativeRule[a]
                if unresolved[a] == 0 && !nullable[owner] { nullable[owner] = true; pending.append(owner) }
            }
        }
        return nullable
    }

    /// [nodes]: the strongly connected component of each node of `successors` (Tarjan's
    /// algorithm, iterative so deep chains cannot overflow the stack).
    private static func stronglyConnectedComponents(_ successors: [[Int]]) -> [Int] {
        let count = successors.count
        var index = [Int](repeating: -1, count: count), low = [Int](repeating: 0, count: count)
        var component = [Int](repeating: -1, count: count)
        var onStack = [Bool](repeating: false, count: count)
        var stack: [Int] = [], nextIndex = 0, nextComponent = 0
        var frames: [(node: Int, edge: Int)] = []   // the depth-first walk: node, next edge to take
        for root in 0..<count where index[root] < 0 {
            frames.append((root, 0))
            index[root] = nextIndex; low[root] = nextIndex; nextIndex += 1
            stack.append(root); onStack[root] = true
            while let (v, e) = frames.last {
                if e < successors[v].count {
                    frames[frames.count - 1].edge += 1
                    let w = successors[v][e]
                    if index[w] < 0 {
                        index[w] = nextIndex; low[w] = nextIndex; nextIndex += 1
                        stack.append(w); onStack[w] = true
                        frames.append((w, 0))
                    } else if onStack[w] {
                        low[v] = min(low[v], index[w])
                    }
                    continue
                }
                frames.removeLast()
                if let parent = frames.last?.node { low[parent] = min(low[parent], low[v]) }
                if low[v] == index[v] {
                    while let w = stack.popLast() {
                        onStack[w] = false
                        component[w] = nextComponent
                        if w == v { break }
                    }
                    nextComponent += 1
                }
            }
        }
        return component
    }
}

/// Lowers code point classes to byte-level elements: a class of one-byte characters is
/// one byte set; otherwise a rule whose alternatives are the class's UTF-8 byte-range
/// sequences (one-byte ones merged), shared by every use of the same class.
private struct ByteLowering {
    let ruleCount: Int
    var sets: [GrammarAutomaton.ByteSet] = []
    var setIndex: [GrammarAutomaton.ByteSet: Int32] = [:]
    var extraRules: [[[Int32]]] = []
    var classRule: [Grammar.CharClass: Int32] = [:]

    init(ruleCount: Int) { self.ruleCount = ruleCount }

    mutating func lower(_ item: Grammar.Item) -> [Int32] {
        switch item {
        case .rule(let r): return [-2 - Int32(r)]
        case .chars(let ranges):
            if let rule = classRule[ranges] { return [-2 - rule] }
            let sequences = ranges.flatMap { utf8Sequences($0.lowerBound, $0.upperBound) }
            var single = GrammarAutomaton.ByteSet()
            var longer: [[ClosedRange<UInt8>]] = []
            for s in sequences {
                if s.count == 1 { single.insert(s[0]) } else { longer.append(s) }
            }
            if longer.isEmpty { return [set(single)] }
            if longer.count == 1 && single == GrammarAutomaton.ByteSet() {
                return longer[0].map { range in var b = GrammarAutomaton.ByteSet(); b.insert(range); return set(b) }
            }
            var alternatives: [[Int32]] = single == GrammarAutomaton.ByteSet() ? [] : [[set(single)]]
            for s in longer {
                alternatives.append(s.map { range in var b = GrammarAutomaton.ByteSet(); b.insert(range); return set(b) })
            }
            let rule = Int32(ruleCount + extraRules.count)
            extraRules.append(alternatives)
            classRule[ranges] = rule
            return [-2 - rule]
        }
    }

    private mutating func set(_ s: GrammarAutomaton.ByteSet) -> Int32 {
        if let i = setIndex[s] { return i }
        let i = Int32(sets.count)
        sets.append(s)
        setIndex[s] = i
        return i
    }
}

/// The UTF-8 byte-range sequences matching exactly the code points lo...hi (surrogates
/// excluded), as Rust's regex-syntax `Utf8Sequences` splits a range.
func utf8Sequences(_ lo: UInt32, _ hi: UInt32) -> [[ClosedRange<UInt8>]] {
    guard lo <= hi else { return [] }
    if lo < 0xD800 && hi > 0xDFFF { return utf8Sequences(lo, 0xD7FF) + utf8Sequences(0xE000, hi) }
    if lo >= 0xD800 && lo <= 0xDFFF { return hi > 0xDFFF ? utf8Sequences(0xE000, hi) : [] }
    if hi >= 0xD800 && hi <= 0xDFFF { return utf8Sequences(lo, 0xD7FF) }
    for boundary: UInt32 in [0x7F, 0x7FF, 0xFFFF] where lo <= boundary && hi > boundary {
        return utf8Sequences(lo, boundary) + utf8Sequences(boundary + 1, hi)
    }
    if hi <= 0x7F { return [[UInt8(lo)...UInt8(hi)]] }
    for i in 1..<4 {
        let m: UInt32 = (1 << (6 * UInt32(i))) - 1
        if lo & ~m != hi & ~m {
            if lo & m != 0 { return utf8Sequences(lo, lo | m) + utf8Sequences((lo | m) + 1, hi) }
            if hi & m != m { return utf8Sequences(lo, (hi & ~m) - 1) + utf8Sequences(hi & ~m, hi) }
        }
    }
    let a = utf8Bytes(lo), b = utf8Bytes(hi)
    return [zip(a, b).map { $0...$1 }]
}

private func utf8Bytes(_ cp: UInt32) -> [UInt8] {
    switch cp {
    case 0..<0x80: return [UInt8(cp)]
    case 0x80..<0x800: return [UInt8(0xC0 | cp >> 6), UInt8(0x80 | cp & 0x3F)]
    case 0x800..<0x10000: return [UInt8(0xE0 | cp >> 12), UInt8(0x80 | cp >> 6 & 0x3F), UInt8(0x80 | cp & 0x3F)]
    default: return [UInt8(0xF0 | cp >> 18), UInt8(0x80 | cp >> 12 & 0x3F), UInt8(0x80 | cp >> 6 & 0x3F), UInt8(0x80 | cp & 0x3F)]
    }
}
