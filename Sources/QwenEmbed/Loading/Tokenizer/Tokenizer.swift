#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Qwen's byte-level BPE tokenizer, exactly as Qwen's tiktoken tokenizer encodes:
/// NFC, optional special-token split, the Qwen pre-tokenization pattern (a hand-written
/// scanner, see PreTokenizer.swift), then BPE by rank on each piece (BPE.swift).
///
/// Tokens after the regular vocabulary are added tokens, of two kinds: control tokens
/// (<|im_start|>, <|endoftext|>: matched in text only when asked, skipped when decoding
/// for display) and text tokens (Qwen2's <tool_call>, Qwen3's <think>: Hugging Face's
/// added tokens with `special: false`, GGUF's user-defined tokens), matched in any text
/// as Hugging Face tokenizers and llama.cpp match them, and shown as the text they are.
///
/// Immutable after init, so one instance may be used from any number of threads.
public final class Tokenizer: @unchecked Sendable {
    /// Bytes of every id (regular tokens, then special tokens as their UTF-8 text).
    let store: TokenStore
    /// Regular tokens only: the BPE ranks.
    let regularTable: IDTable
    /// Added tokens (control and text): text tokens always matched, control tokens only
    /// with `parseSpecial`.
    let specialTable: IDTable
    /// [count - regularCount]: whether added token regularCount + i is a text token.
    let addedIsText: [Bool]
    /// Some added token is a text token (so plain encoding looks for added tokens too).
    let hasTextTokens: Bool
    /// Id of each single byte.
    let byteToken: UnsafeMutablePointer<Int32>
    /// Id of each two-byte token, indexed by first << 8 | second; UInt32.max if none.
    let pairRank: UnsafeMutablePointer<UInt32>
    /// Bytes that begin some special token.
    let specialFirstByte: UnsafeMutablePointer<Bool>
    /// Distinct special-token lengths in bytes, longest first.
    let specialLengths: [Int]
    let props: PropTable

    /// Ids known: regular plus added.
    public let count: Int
    /// Regular (BPE) tokens; ids below this are regular, the rest added tokens.
    public let regularCount: Int

    // MARK: Loading

    /// Reads a `.tiktoken` vocabulary (base64 token, space, rank per line) and adds
    /// Qwen's special tokens after the regular ones.
    public convenience init(tiktokenFile path: String) throws {
        let data = try readWholeFile(path)
        try self.init(tiktokenData: data, name: path)
    }

    public convenience init(tiktokenBytes: UnsafeRawBufferPointer) throws {
        let builder = try parseTiktoken(tiktokenBytes, name: "qwen.tiktoken")
        let regular = builder.count
        for name in qwenSpecialTokenNames() { builder.add(Array(name.utf8)) }
        try self.init(builder: builder, regularCount: regular, name: "qwen.tiktoken")
    }

    convenience init(tiktokenData: [UInt8], name: String) throws {
        let builder = try tiktokenData.withUnsafeBytes { try parseTiktoken($0, name: name) }
        let regular = builder.count
        for special in qwenSpecialTokenNames() { builder.add(Array(special.utf8)) }
        try self.init(builder: builder, regularCount: regular, name: name)
    }

    /// Vocabulary of a GGUF file: `tokenizer.ggml.tokens` (GPT-2 byte-level strings) and
    /// `tokenizer.ggml.token_type`. The leading run of normal (1) / byte (6) tokens is the
    /// BPE vocabulary (id = rank); every token after it is an added token, its bytes its
    /// text: a text token when user-defined (4), else a control token.
    public convenience init(ggufTokens: [String], tokenTypes: [Int32]?) throws {
        if let types = tokenTypes, types.count != ggufTokens.count {
            throw QwenError.badModel(
                "tokenizer.ggml.token_type has \(types.count) entries but tokenizer.ggml.tokens has \(ggufTokens.count)")
        }
        var regular = ggufTokens.count
        if let types = tokenTypes {
            if let first = types.firstIndex(where: { $0 != 1 && $0 != 6 }) { regular = first }
        } else if let first = ggufTokens.firstIndex(where: {
            $0.utf8.count > 4 && $0.hasPrefix("<|") && $0.hasSuffix("|>")
        }) {
            regular = first
        }
        var total = 0
        for t in ggufTokens { total += t.utf8.count }
        let builder = TokenStoreBuilder(ids: 0, byteCapacity: total)
        let inverse = byteLevelInverse()
        for (i, token) in ggufTokens.enumerated() {
            builder.add(i < regular ? try byteLevelBytes(token, inverse: inverse, what: "tokenizer.ggml.tokens[\(i)]") : Array(token.utf8))
        }
        let textTokens = Set((regular..<ggufTokens.count).filter { tokenTypes?[$0] == 4 })
        try self.init(builder: builder, regularCount: regular, textTokens: textTokens, name: "tokenizer.ggml.tokens")
    }

    /// `builder`'s ids below `regularCount` are the BPE vocabulary (id = rank), the rest
    /// added tokens; `textTokens` names the added ones that are text tokens.
    init(builder: TokenStoreBuilder, regularCount: Int, textTokens: Set<Int> = [], name: String) throws {
        let store = builder.finish()
        let regularTable = IDTable(capacityFor: regularCount)
        let specialTable = IDTable(capacityFor: max(store.count - regularCount, 1))
        func cleanUp() { store.deallocate(); regularTable.deallocate(); specialTable.deallocate() }
        for id in 0..<regularCount {
            if let other = regularTable.insert(Int32(id), store) {
                cleanUp()
                throw QwenError.badModel("\(name): tokens \(other) and \(id) have the same bytes")
            }
        }
        var lengths: Set<Int> = []
        let first = UnsafeMutablePointer<Bool>.allocate(capacity: 256)
        first.initialize(repeating: false, count: 256)
        for id in regularCount..<store.count {
            let n = Int(store.length[id])
            if n == 0 { continue }
            _ = specialTable.insert(Int32(id), store)   // a duplicate keeps the first id
            lengths.insert(n)
            first[Int(store.bytes[Int(store.start[id])])] = true
        }
        let byteToken = UnsafeMutablePointer<Int32>.allocate(capacity: 256)
        for b in 0..<256 {
            var one = [UInt8](repeating: 0, count: 16)
            one[0] = UInt8(b)
            let id = one.withUnsafeBytes { buf -> UInt32 in
                guard let base = buf.baseAddress else { return UInt32.max }
                return regularTable.lookup(base, 1, store)
            }
            if id == UInt32.max {
                cleanUp(); first.deallocate(); byteToken.deallocate()
                throw QwenError.badModel("\(name): no token for the single byte 0x\(String(b, radix: 16))")
            }
            byteToken[b] = Int32(id)
        }
        let pairRank = UnsafeMutablePointer<UInt32>.allocate(capacity: 65536)
        pairRank.initialize(repeating: UInt32.max, count: 65536)
        for id in 0..<regularCount where store.length[id] == 2 {
            let s = Int(store.start[id])
            pairRank[Int(store.bytes[s]) << 8 | Int(store.bytes[s + 1])] = UInt32(id)
        }
        self.store = store
        self.regularTable = regularTable
        self.specialTable = specialTable
        self.byteToken = byteToken
        self.pairRank = pairRank
        self.specialFirstByte = first
        self.specialLengths = lengths.sorted(by: >)
        self.props = PropTable(UnicodeData.shared)
        self.count = store.count
        self.regularCount = regularCount
        addedIsText = (regularCount..<store.count).map { textTokens.contains($0) }
        hasTextTokens = !textTokens.isEmpty
    }

    deinit {
        store.deallocate()
        regularTable.deallocate()
        specialTable.deallocate()
        byteToken.deallocate()
        pairRank.deallocate()
        specialFirstByte.deallocate()
    }

    // MARK: Encoding

    /// Token ids of `text` (NFC-normalized first). With `parseSpecial`, control-token
    /// strings become their ids; otherwise they are encoded as plain text. Text tokens
    /// (<tool_call>, <think>) become their ids either way.
    public func encode(_ text: String, parseSpecial: Bool = false) -> [Int32] {
        var text = text
        return text.withUTF8 { buf -> [Int32] in
            guard let base = buf.baseAddress else { return [] }
            return encodeValid(base, buf.count, parseSpecial: parseSpecial)
        }
    }

    /// Like `encode(_:)` for UTF-8 bytes; throws `QwenError.invalidArgument` naming the
    /// byte offset of invalid UTF-8.
    public func encode(utf8 bytes: UnsafeRawBufferPointer, parseSpecial: Bool = false) throws -> [Int32] {
        guard let raw = bytes.baseAddress, bytes.count > 0 else { return [] }
        let p = raw.assumingMemoryBound(to: UInt8.self)
        if let bad = firstInvalidUTF8Offset(p, bytes.count) {
            throw QwenError.invalidArgument("invalid UTF-8 at byte offset \(bad)")
        }
        return encodeValid(p, bytes.count, parseSpecial: parseSpecial)
    }

    func encodeValid(_ p: UnsafePointer<UInt8>, _ n: Int, parseSpecial: Bool) -> [Int32] {
        if n == 0 { return [] }
        // Working copy (NFC) with zeroed slack after the end for the word-wise hash.
        var work: [UInt8] = []
        if nfcFirstUnsafeOffset(p, n) == nil {
            work.reserveCapacity(n + tokenizerSlack)
            work.append(contentsOf: UnsafeBufferPointer(start: p, count: n))
        } else {
            work.reserveCapacity(n + n / 4 + tokenizerSlack)
            nfcNormalizeBytes(p, n, into: &work)
        }
        let len = work.count
        work.append(contentsOf: repeatElement(0, count: tokenizerSlack))
        var out: [Int32] = []
        out.reserveCapacity(len / 3 + 8)
        work.withUnsafeBufferPointer { w in
            guard let base = w.baseAddress else { return }
            let scratch = BPEScratch()
            if (parseSpecial || hasTextTokens) && !specialLengths.isEmpty {
                var segment = 0
                var i = 0
                while i < len {
                    if specialFirstByte[Int(base[i])], let (id, l) = matchAdded(base, i, len, allowControl: { _ in parseSpecial }) {
                        encodeOrdinary(base, segment, i, &out, scratch)
                        out.append(id)
                        i += l
                        segment = i
                    } else {
                        i += 1
                    }
                }
                encodeOrdinary(base, segment, len, &out, scratch)
            } else {
                encodeOrdinary(base, 0, len, &out, scratch)
            }
        }
        return out
    }

    /// The longest added token at `p[i...]` (within `end`) that may be matched there: a
    /// text token always, a control token of `length` bytes when `allowControl(length)`.
    private func matchAdded(_ p: UnsafePointer<UInt8>, _ i: Int, _ end: Int, allowControl: (Int) -> Bool) -> (Int32, Int)? {
        for l in specialLengths where i + l <= end {
            let id = specialTable.lookup(p + i, l, store)
            if id != UInt32.max && (addedIsText[Int(id) - regularCount] || allowControl(l)) { return (Int32(id), l) }
        }
        return nil
    }

    /// Token ids of a rendered chat template: the text of `segments` joined, encoded as
    /// Hugging Face tokenizers encode it (added tokens split out first, the ordinary text
    /// between them NFC-normalized and BPE-encoded as one string, across segment borders),
    /// except that a control token is parsed only inside a literal segment (the template's
    /// own text): a caller's data can never turn into <|im_start|> or <|im_end|>.
    func encode(segments: [(text: String, isData: Bool)]) -> [Int32] {
        var text: [UInt8] = []                 // [n + slack] the joined UTF-8
        var literals: [Range<Int>] = []        // byte ranges of literal segments, ascending
        for segment in segments {
            let start = text.count
            text.append(contentsOf: segment.text.utf8)
            if !segment.isData && text.count > start { literals.append(start..<text.count) }
        }
        let n = text.count
        text.append(contentsOf: repeatElement(0, count: tokenizerSlack))
        var out: [Int32] = []
        text.withUnsafeBufferPointer { w in
            guard let base = w.baseAddress else { return }
            var piece = 0, i = 0, literal = 0
            while i < n {
                while literal < literals.count && literals[literal].upperBound <= i { literal += 1 }
                let inLiteral = literal < literals.count && literals[literal].lowerBound <= i
                if specialFirstByte[Int(base[i])],
                   let (id, l) = matchAdded(base, i, n, allowControl: { inLiteral && i + $0 <= literals[literal].upperBound }) {
                    out += encodeValid(base + piece, i - piece, parseSpecial: false)
                    out.append(id)
                    i += l
                    piece = i
                } else {
                    i += 1
                }
            }
            out += encodeValid(base + piece, n - piece, parseSpecial: false)
        }
        return out
    }

    // MARK: Decoding and look-ups

    /// Concatenated bytes of `ids` (not necessarily valid UTF-8 for a partial sequence).
    /// Throws `QwenError.invalidArgument` for an id outside the vocabulary.
    /// With `skipSpecial`, control tokens are left out (text tokens are text).
    public func decode(_ ids: [Int32], skipSpecial: Bool = false) throws -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(ids.count * 4)
        for id in ids {
            guard id >= 0 && Int(id) < count else {
                throw QwenError.invalidArgument("unknown token id \(id)")
            }
            if skipSpecial && isSpecial(id) { continue }
            let s = Int(store.start[Int(id)])
            out.append(contentsOf: UnsafeBufferPointer(start: store.bytes + s, count: Int(store.length[Int(id)])))
        }
        return out
    }

    /// Bytes of one token, nil for an unknown id.
    public func tokenBytes(_ id: Int32) -> [UInt8]? {
        guard id >= 0 && Int(id) < count else { return nil }
        let s = Int(store.start[Int(id)])
        return Array(UnsafeBufferPointer(start: store.bytes + s, count: Int(store.length[Int(id)])))
    }

    /// Appends the bytes of a known id; false for an unknown one.
    func appendTokenBytes(_ id: Int32, to out: inout [UInt8]) -> Bool {
        guard id >= 0 && Int(id) < count else { return false }
        let s = Int(store.start[Int(id)])
        out.append(contentsOf: UnsafeBufferPointer(start: store.bytes + s, count: Int(store.length[Int(id)])))
        return true
    }

    /// Whether `id` is a control token (an added token that is not text).
    public func isSpecial(_ id: Int32) -> Bool {
        Int(id) >= regularCount && Int(id) < count && !addedIsText[Int(id) - regularCount]
    }

    /// Id of an added token given its text ("<|im_start|>" -> 151644, "<think>"), or nil.
    public func specialTokenID(_ text: String) -> Int32? {
        var bytes = Array(text.utf8)
        let n = bytes.count
        if n == 0 { return nil }
        bytes.append(contentsOf: repeatElement(0, count: tokenizerSlack))
        let id = bytes.withUnsafeBytes { buf -> UInt32 in
            guard let base = buf.baseAddress else { return UInt32.max }
            return specialTable.lookup(base, n, store)
        }
        return id == UInt32.max ? nil : Int32(id)
    }
}

/// Qwen (v1) special tokens in id order after the regular vocabulary.
func qwenSpecialTokenNames() -> [String] {
    var names = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    for i in 0..<205 { names.append("<|extra_\(i)|>") }
    return names
}

/// The bytes a GPT-2 byte-level token string stands for (`inverse`: `byteLevelInverse()`);
/// `what` names the token in the error.
func byteLevelBytes(_ token: String, inverse: [Int16], what: String) throws -> [UInt8] {
    var bytes: [UInt8] = []
    for scalar in token.unicodeScalars {
        let v = Int(scalar.value)
        guard v < inverse.count, inverse[v] >= 0 else {
            throw QwenError.badModel("\(what): character U+\(String(v, radix: 16, uppercase: true)) is not in the byte-level alphabet")
        }
        bytes.append(UInt8(inverse[v]))
    }
    guard !bytes.isEmpty else { throw QwenError.badModel("\(what) is empty") }
    return bytes
}

/// GPT-2's byte-to-unicode map inverted: scalar value -> byte, -1 for others.
func byteLevelInverse() -> [Int16] {
    var inverse = [Int16](repeating: -1, count: 324)
    var extra = 0
    for b in 0..<256 {
        let printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
        if printable {
            inverse[b] = Int16(b)
        } else {
            inverse[256 + extra] = Int16(b)
            extra += 1
        }
    }
    return inverse
}

/// Parses `.tiktoken` text: one "base64 rank" pair per line; ranks must be 0..<n.
func parseTiktoken(_ buf: UnsafeRawBufferPointer, name: String) throws -> TokenStoreBuilder {
    guard let raw = buf.baseAddress, buf.count > 0 else {
        throw QwenError.badModel("\(name): empty vocabulary")
    }
    let p = raw.assumingMemoryBound(to: UInt8.self)
    let n = buf.count
    var lines = 0
    var k = 0
    while k < n {
        guard let hit = memchr(p + k, 10, n - k) else { lines += 1; break }
        lines += 1
        k = UnsafeRawPointer(hit) - raw + 1
    }
    // Decoded tokens are shorter than their base64 text, so `n` bytes always suffice and
    // the arena is written through a local pointer (no growth, no exclusivity checks).
    let builder = TokenStoreBuilder(ids: 0, byteCapacity: n)
    let arena = builder.bytes
    var used = 0
    var start = [UInt32](repeating: 0, count: lines)
    var length = [UInt32](repeating: UInt32.max, count: lines)
    let table = base64DecodeTable
    var filled = 0
    var maxRank = -1
    var pos = 0
    var lineNo = 0
    while pos < n {
        lineNo += 1
        var eol = n
        if let hit = memchr(p + pos, 10, n - pos) { eol = UnsafeRawPointer(hit) - raw }
        var end = eol
        if end > pos && p[end - 1] == 13 { end -= 1 }
        defer { pos = eol + 1 }
        if end == pos { continue }
        var sp = pos
        while sp < end && p[sp] != 32 { sp += 1 }
        if sp == end || sp == pos {
            throw QwenError.badModel("\(name) line \(lineNo): expected \"base64 rank\"")
        }
        // Rank.
        var rank = 0
        var digits = 0
        for j in (sp + 1)..<end {
            let c = p[j]
            guard c >= 48 && c <= 57, digits < 10 else {
                throw QwenError.badModel("\(name) line \(lineNo): invalid rank")
            }
            rank = rank * 10 + Int(c - 48)
            digits += 1
        }
        if digits == 0 { throw QwenError.badModel("\(name) line \(lineNo): invalid rank") }
        if rank >= lines {
            throw QwenError.badModel("\(name) line \(lineNo): rank \(rank) out of range (\(lines) lines)")
        }
        if length[rank] != UInt32.max {
            throw QwenError.badModel("\(name) line \(lineNo): rank \(rank) appears twice")
        }
        // Base64 token.
        let chars = sp - pos
        if chars % 4 != 0 { throw QwenError.badModel("\(name) line \(lineNo): invalid base64") }
        let dst = arena + used
        var acc: UInt32 = 0
        var bits = 0
        var outLen = 0
        var padding = 0
        for j in pos..<sp {
            let c = p[j]
            if c == 61 {   // '='
                padding += 1
                continue
            }
            let v = table[Int(c)]
            if v < 0 || padding > 0 {
                throw QwenError.badModel("\(name) line \(lineNo): invalid base64")
            }
            acc = acc << 6 | UInt32(v)
            bits += 6
            if bits >= 8 {
                bits -= 8
                dst[outLen] = UInt8(truncatingIfNeeded: acc >> UInt32(bits))
                outLen += 1
            }
        }
        if padding > 2 || outLen == 0 {
            throw QwenError.badModel("\(name) line \(lineNo): invalid base64")
        }
        start[rank] = UInt32(used)
        length[rank] = UInt32(outLen)
        used += outLen
        filled += 1
        if rank > maxRank { maxRank = rank }
    }
    if filled == 0 { throw QwenError.badModel("\(name): no tokens") }
    if maxRank + 1 != filled {
        let missing = length.firstIndex(of: UInt32.max) ?? filled
        throw QwenError.badModel("\(name): rank \(missing) is missing (ranks must be 0..<\(filled))")
    }
    start.removeLast(lines - filled)
    length.removeLast(lines - filled)
    builder.used = used
    builder.start = start
    builder.length = length
    return builder
}

private let base64DecodeTable: [Int8] = {
    var t = [Int8](repeating: -1, count: 256)
    let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    for (i, c) in alphabet.enumerated() { t[Int(c)] = Int8(i) }
    return t
}()

/// Whole contents of a file, read with POSIX calls.
func readWholeFile(_ path: String) throws -> [UInt8] {
    let fd = open(path, O_RDONLY)
    if fd < 0 {
        throw QwenError.io("cannot open \(path): \(String(cString: strerror(errno)))")
    }
    defer { close(fd) }
    var st = stat()
    if fstat(fd, &st) != 0 {
        throw QwenError.io("cannot stat \(path): \(String(cString: strerror(errno)))")
    }
    let size = Int(st.st_size)
    var out = [UInt8](repeating: 0, count: size)
    var got = 0
    var failure: Int32 = 0
    out.withUnsafeMutableBytes { buf in
        guard let base = buf.baseAddress else { return }
        while got < size {
            let r = read(fd, base + got, size - got)
            if r < 0 {
                if errno == EINTR { continue }
                failure = errno
                return
            }
            if r == 0 { break }
            got += r
        }
    }
    if failure != 0 {
        throw QwenError.io("cannot read \(path): \(String(cString: strerror(failure)))")
    }
    if got < size { out.removeLast(size - got) }
    return out
}
