/// Turns a stream of token ids into text, one push at a time, returning only whole
/// characters: a UTF-8 sequence split across tokens is held back until it completes.
/// Bytes that can never form a character come out as U+FFFD, so the stream never stalls.
public struct StreamingDetokenizer {
    public let tokenizer: Tokenizer
    public let skipSpecial: Bool
    private var pending: [UInt8] = []

    public init(tokenizer: Tokenizer, skipSpecial: Bool = true) {
        self.tokenizer = tokenizer
        self.skipSpecial = skipSpecial
    }

    /// Adds one token; returns the characters complete so far (possibly ""). An unknown
    /// id yields U+FFFD.
    public mutating func push(_ id: Int32) -> String {
        if skipSpecial && tokenizer.isSpecial(id) { return "" }
        if !tokenizer.appendTokenBytes(id, to: &pending) {
            pending.append(contentsOf: [0xEF, 0xBF, 0xBD])
        }
        let cut = completePrefixLength(pending)
        if cut == 0 { return "" }
        let text = String(decoding: pending[0..<cut], as: UTF8.self)
        pending.removeFirst(cut)
        return text
    }

    /// Whatever is still held back (an incomplete sequence becomes U+FFFD); resets.
    public mutating func finish() -> String {
        if pending.isEmpty { return "" }
        let text = String(decoding: pending, as: UTF8.self)
        pending.removeAll()
        return text
    }
}

/// Length of the prefix of `b` that does not end inside a UTF-8 sequence that may still
/// complete: a trailing lead byte followed by fewer continuation bytes than it needs,
/// each allowed at its place, is held back; anything else is released.
func completePrefixLength(_ b: [UInt8]) -> Int {
    let n = b.count
    var k = n - 1
    // Find the last non-continuation byte among the last four.
    while k >= 0 && k >= n - 4 && b[k] & 0xC0 == 0x80 { k -= 1 }
    if k < 0 || k < n - 4 { return n }
    guard let (need, lo, hi) = utf8Sequence(lead: b[k]) else {
        return n   // ASCII or a byte that never starts a sequence
    }
    let have = n - k
    if have >= need { return n }
    if have >= 2 && (b[k + 1] < lo || b[k + 1] > hi) { return n }
    return k
}
