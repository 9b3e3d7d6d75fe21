/// Qwen2 / Qwen2.5 / Qwen3 vocabularies from a Hugging Face `tokenizer.json`, mapped onto
/// the same exact tokenizer as qwen.tiktoken and GGUF vocabularies: the byte-level BPE
/// vocabulary (id = rank) and the added tokens after it. Only what this tokenizer computes
/// is accepted: Qwen's pre-tokenization pattern, NFC, byte-level BPE whose merges are in
/// rank order (so merging by rank, as tiktoken does, equals merging by merge list, as
/// Hugging Face does); anything else is UNSUPPORTED_MODEL naming the field.
extension Tokenizer {
    /// The Split pattern of Qwen2's (and Qwen3's) pre-tokenizer: Qwen (v1)'s, which
    /// PreTokenizer.swift scans by hand.
    static let qwenPreTokenizerPattern =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// Reads `tokenizer.json` at `path`. Ids from the vocabulary's end up to `vocabSize`
    /// (the model's padded embedding rows) that no added token claims are empty tokens:
    /// never produced by encoding, decoded as nothing.
    public convenience init(huggingFaceFile path: String, vocabSize: Int) throws {
        let name = FileSystem.lastComponent(path)
        let json = try JSONValue.parse(MappedFile.readAll(path: path), context: name)
        func unsupported(_ what: String) -> QwenError { .unsupportedModel("\(name): \(what)") }
        guard let model = json["model"], let vocab = model["vocab"]?.object else {
            throw QwenError.badModel("\(name): no model.vocab")
        }
        if let type = model["type"]?.string, type != "BPE" { throw unsupported("model type \(type) is not supported (byte-level BPE is)") }
        if model["byte_fallback"]?.bool == true { throw unsupported("byte_fallback BPE is not supported") }
        let normalizer = json["normalizer"]?["type"]?.string ?? "none"
        guard normalizer == "NFC" else { throw unsupported("normalizer \(normalizer) is not supported (NFC, as Qwen's, is)") }
        try Self.checkPreTokenizer(json["pre_tokenizer"], unsupported)

        // The regular vocabulary: ids 0..<n, each a byte-level string.
        var tokens = [String?](repeating: nil, count: vocab.count)   // [n] by id
        for (token, value) in vocab {
            guard let id = value.int, id >= 0, id < vocab.count, tokens[id] == nil else {
                throw QwenError.badModel("\(name): model.vocab ids must be 0..<\(vocab.count), each once (\(JSONValue.quoted(token)))")
            }
            tokens[id] = token
        }
        let inverse = byteLevelInverse()
        let builder = TokenStoreBuilder(ids: 0, byteCapacity: vocab.count * 8)
        for (id, token) in tokens.enumerated() {
            builder.add(try byteLevelBytes(token ?? "", inverse: inverse, what: "\(name): model.vocab id \(id)"))
        }
        try Self.checkMergesFollowRanks(model["merges"], vocab: vocab, name: name)

        // Added tokens, by id after the vocabulary.
        var added: [Int: (content: String, text: Bool)] = [:]
        for entry in json["added_tokens"]?.array ?? [] {
            guard let id = entry["id"]?.int, let content = entry["content"]?.string, !content.isEmpty else {
                throw QwenError.badModel("\(name): an added_tokens entry without id or content")
            }
            guard id >= vocab.count, id < max(vocabSize, vocab.count) + 4096 else {
                throw unsupported("added token \(JSONValue.quoted(content)) has id \(id), inside the BPE vocabulary or far past the model's \(vocabSize) rows")
            }
            added[id] = (content, !(entry["special"]?.bool ?? true))
        }
        let total = max(vocabSize, (added.keys.max() ?? -1) + 1, vocab.count)
        var textTokens: Set<Int> = []
        for id in vocab.count..<total {
            builder.add(added[id].map { Array($0.content.utf8) } ?? [])
            if added[id]?.text == true { textTokens.insert(id) }
        }
        try self.init(builder: builder, regularCount: vocab.count, textTokens: textTokens, name: name)
    }

    /// Accepts Qwen's pre-tokenizer: Sequence[Split(Qwen's pattern, Isolated), ByteLevel
    /// without its own regex and without a prefix space].
    private static func checkPreTokenizer(_ pre: JSONValue?, _ unsupported: (String) -> QwenError) throws {
        let steps = pre?["type"]?.string == "Sequence" ? pre?["pretokenizers"]?.array ?? [] : pre.map { [$0] } ?? []
        guard steps.count == 2, steps[0]["type"]?.string == "Split", steps[1]["type"]?.string == "ByteLevel" else {
            throw unsupported("pre_tokenizer \(steps.compactMap { $0["type"]?.string }) is not supported (Qwen's Split + ByteLevel is)")
        }
        guard let pattern = steps[0]["pattern"]?["Regex"]?.string, pattern == qwenPreTokenizerPattern else {
            throw unsupported("the pre-tokenizer pattern is not Qwen's (the only one supported)")
        }
        if let behavior = steps[0]["behavior"]?.string, behavior != "Isolated" {
            throw unsupported("pre-tokenizer split behavior \(behavior) is not supported (Isolated is)")
        }
        if steps[0]["invert"]?.bool == true { throw unsupported("an inverted pre-tokenizer split is not supported") }
        if steps[1]["add_prefix_space"]?.bool == true || steps[1]["use_regex"]?.bool == true {
            throw unsupported("ByteLevel with add_prefix_space or use_regex is not supported")
        }
    }

    /// Merges as "a b" strings or [a, b] pairs; merging by rank equals merging by this list
    /// when each merge's result is in the vocabulary and the results' ids never fall along
    /// the list (several pairs may make one token).
    private static func checkMergesFollowRanks(_ merges: JSONValue?, vocab: [String: JSONValue], name: String) throws {
        var previous = -1
        for (index, merge) in (merges?.array ?? []).enumerated() {
            let pair: [String]
            if let text = merge.string {
                pair = text.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            } else {
                pair = merge.array?.compactMap(\.string) ?? []
            }
            guard pair.count == 2 else { throw QwenError.badModel("\(name): merge \(index) is not a pair") }
            guard let id = vocab[pair[0] + pair[1]]?.int else {
                throw QwenError.badModel("\(name): merge \(index) makes \(JSONValue.quoted(pair[0] + pair[1])), which is not in the vocabulary")
            }
            guard id >= previous else {
                throw QwenError.unsupportedModel("\(name): merge \(index) is out of rank order (BPE merges must follow the vocabulary ids, as Qwen's do)")
            }
            previous = id
        }
    }
}
