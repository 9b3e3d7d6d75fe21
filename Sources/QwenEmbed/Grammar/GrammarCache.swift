/// A model's compiled grammars, by GBNF text, and its vocabulary trie: requests with the
/// same grammar or JSON schema share one automaton, so the parser states and token masks
/// one reply built serve the next. Least recently used grammars are dropped past
/// `capacity`. Thread-safe.
final class GrammarCache: @unchecked Sendable {
    static let capacity = 16
    private let lock = Mutex()
    private var entries: [(key: Key, automaton: GrammarAutomaton)] = []   // most recent last
    private var trie: TokenTrie? = nil

    private struct Key: Equatable {
        var text: String
        var reasoning: ReasoningGrammar.Mode?
    }

    /// The automaton of the GBNF `text` (behind a reasoning block when `reasoning` is
    /// set), compiled on first use (INVALID_ARGUMENT naming the position when the text is
    /// not a grammar).
    func automaton(_ text: String, reasoning: ReasoningGrammar.Mode? = nil) throws -> GrammarAutomaton {
        let key = Key(text: text, reasoning: reasoning)
        if let hit: GrammarAutomaton = lock.locked({
            guard let i = entries.firstIndex(where: { $0.key == key }) else { return nil }
            let entry = entries.remove(at: i)
            entries.append(entry)
            return entry.automaton
        }) { return hit }
        let grammar = try GBNFParser.parse(text)
        let automaton = try GrammarAutomaton(reasoning.map { try ReasoningGrammar.wrapped(grammar, mode: $0) } ?? grammar)
        lock.locked {
            entries.append((key, automaton))
            if entries.count > GrammarCache.capacity { entries.removeFirst() }
        }
        return automaton
    }

    /// The trie of `tokenizer`'s vocabulary over `vocabSize` logits, built on first use.
    func tokenTrie(_ tokenizer: Tokenizer, vocabSize: Int) -> TokenTrie {
        lock.locked {
            if let trie { return trie }
            let built = TokenTrie(tokenizer: tokenizer, vocabSize: vocabSize)
            trie = built
            return built
        }
    }
}

extension Model {
    /// The GBNF grammar of a JSON Schema, as replies with `jsonSchema` are held to it.
    public static func grammar(forJSONSchema schema: String) throws -> String {
        try JSONSchemaGrammar.gbnf(schema: schema)
    }

    /// Checks a GBNF `grammar` or a `jsonSchema` (exactly one) as generation takes it:
    /// compiled, its start state built. Returns the GBNF text replies would be held to.
    public static func checkGrammar(_ grammar: String?, jsonSchema: String?) throws -> String {
        var parameters = GenerationParameters()
        parameters.grammar = grammar
        parameters.jsonSchema = jsonSchema
        guard let text = try Session.grammarText(parameters) else { throw QwenError.invalidArgument("give a grammar or a JSON schema") }
        _ = try GrammarAutomaton(GBNFParser.parse(text))
        return text
    }

    /// The GBNF grammar `response_format: {"type": "json_object"}` holds replies to.
    public static var jsonObjectGrammar: String { JSONSchemaGrammar.jsonObject }

    /// What the GBNF `grammar` allows after the reply tokens `prefix` (which it must
    /// allow): the tokens that may come next, ascending, and whether the reply may end
    /// there. The masks replies are sampled under; for tests against other implementations.
    public func allowedTokens(grammar: String, after prefix: [Int32]) throws -> (tokens: [Int32], mayEnd: Bool) {
        let automaton = try grammars.automaton(grammar)
        var matcher = GrammarMatcher(automaton: automaton, trie: grammars.tokenTrie(tokenizer, vocabSize: config.vocabSize),
                                     tokenizer: tokenizer, endTokens: [])
        for (i, token) in prefix.enumerated() {
            guard try matcher.allows(token) else {
                throw QwenError.invalidArgument("the grammar refuses prefix token \(i) (id \(token))")
            }
            try matcher.accept(token)
        }
        let mask = try automaton.allowedTokens(matcher.state, trie: matcher.trie)
        var tokens: [Int32] = []
        for (w, word) in mask.enumerated() where word != 0 {
            for bit in 0..<64 where word & (1 << UInt64(bit)) != 0 { tokens.append(Int32(w * 64 + bit)) }
        }
        return (tokens, matcher.ending.may)
    }
}
