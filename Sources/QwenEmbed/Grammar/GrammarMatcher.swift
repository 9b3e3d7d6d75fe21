/// One reply's place in a grammar: the automaton's state after the tokens generated so
/// far, and the masking of the next step's logits. End-of-turn tokens are allowed only
/// where the grammar may end; once it must end, the reply is over.
struct GrammarMatcher {
    let automaton: GrammarAutomaton
    let trie: TokenTrie
    let tokenizer: Tokenizer
    /// Ids that end the reply (allowed where the grammar may end).
    let endTokens: Set<Int32>
    private(set) var state: Int32

    init(automaton: GrammarAutomaton, trie: TokenTrie, tokenizer: Tokenizer, endTokens: Set<Int32>) {
        self.automaton = automaton
        self.trie = trie
        self.tokenizer = tokenizer
        self.endTokens = endTokens
        state = automaton.start
    }

    /// The input may end here / nothing but the end may follow.
    var ending: (may: Bool, must: Bool) { automaton.ending(state) }

    /// The state after `token`, or `GrammarAutomaton.dead` when the grammar refuses it.
    private func after(_ token: Int32) throws -> Int32 {
        if endTokens.contains(token) { return ending.may ? state : GrammarAutomaton.dead }
        guard !tokenizer.isSpecial(token), let bytes = tokenizer.tokenBytes(token), !bytes.isEmpty else { return GrammarAutomaton.dead }
        return try bytes.withUnsafeBufferPointer { try automaton.next(state, bytes: $0) }
    }

    func allows(_ token: Int32) throws -> Bool { try after(token) != GrammarAutomaton.dead }

    /// Moves past `token`, which `allows` (an end token leaves the state as it is).
    mutating func accept(_ token: Int32) throws {
        let next = try after(token)
        guard next != GrammarAutomaton.dead else { throw QwenError.internalError("the grammar refuses token \(token) that was sampled under its mask") }
        state = next
    }

    /// Sets the logits [vocab] of every token the grammar refuses here to -infinity.
    /// Throws when no token may follow (a grammar only special tokens could continue).
    func mask(_ logits: UnsafeMutablePointer<Float>, vocab: Int) throws {
        let allowed = try automaton.allowedTokens(state, trie: trie)
        let mayEnd = ending.may
        var kept = 0
        let saved = endTokens.map { ($0, Int($0) < vocab ? logits[Int($0)] : 0) }
        for word in 0..<(vocab + 63) / 64 {
            let bits = word < allowed.count ? allowed[word] : 0
            if bits == ~0 { kept += 64; continue }
            kept += bits.nonzeroBitCount
            for bit in 0..<min(64, vocab - word * 64) where bits & (1 << UInt64(bit)) == 0 {
                logits[word * 64 + bit] = -Float.infinity
            }
        }
        if mayEnd {
            for (id, logit) in saved where Int(id) < vocab { logits[Int(id)] = logit; kept += 1 }
        }
        guard kept > 0 else { throw QwenError.invalidArgument("no token of the vocabulary can continue the grammar here") }
    }
}
