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
    let lead = b[k]
    let need: Int
    var lo: UInt8 = 0x80, hi: UInt8 = 0xBF
    switch lead {
    case 0xC2...0xDF: need = 2
    case 0xE0: need = 3; lo = 0xA0
    case 0xE1...0xEC, 0xEE...0xEF: need = 3
    case 0xED: need = 3; hi = 0x9F
    case 0xF0: need = 4; lo = 0x90
    case 0xF1...0xF3: need = 4
    case 0xF4: need = 4; hi = 0x8F
    default: return n   // ASCII or a byte that never starts a sequence
    }
    let have = n - k
    if have >= need { return n }
    if have >= 2 && (b[k + 1] < lo || b[k + 1] > hi) { return n }
    return k
}
