// Hand-written scanner for Qwen's pre-tokenization pattern
//
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*
//   |\s*[\r\n]+|\s+(?!\S)|\s+
//
// with the leftmost-first alternation and backtracking of the Rust regex crates that
// tiktoken uses (\s = Unicode White_Space; (?i) folds s/S/U+017F).

/// Pointer form of the scalar property table for the hot loops.
struct PropTable {
    let stage1: UnsafePointer<UInt8>
    let stage2: UnsafePointer<UInt8>
    let shift: UInt32
    let mask: UInt32

    init(_ ud: UnicodeData) {
        stage1 = UnsafePointer(ud.stage1)
        stage2 = UnsafePointer(ud.stage2)
        shift = ud.shift
        mask = ud.blockMask
    }

    /// Pre-tokenizer class (classOther/Letter/Number/Space) and byte length of the scalar
    /// at `p[j]` (valid UTF-8). ASCII properties are stage 2's first block.
    @inline(__always)
    func classAt(_ p: UnsafePointer<UInt8>, _ j: Int) -> (UInt8, Int) {
        let b = p[j]
        if b < 0x80 { return (stage2[Int(b)] & 3, 1) }
        let (cp, l) = decodeScalar(p, j)
        let block = UInt32(stage1[Int(truncatingIfNeeded: cp >> shift)])
        return (stage2[Int(truncatingIfNeeded: block << shift | (cp & mask))] & 3, l)
    }

    /// End of the run of letters starting at `j`.
    @inline(__always)
    func letterRunEnd(_ p: UnsafePointer<UInt8>, _ j: Int, _ end: Int) -> Int {
        var j = j
        while j < end {
            let (c, l) = classAt(p, j)
            if c != classLetter { break }
            j += l
        }
        return j
    }

    /// End (exclusive) of the pre-token that starts at `i < end`.
    @inline(__always)
    func pieceEnd(_ p: UnsafePointer<UInt8>, _ i: Int, _ end: Int) -> Int {
        let b0 = p[i]
        // (?i:'s|'t|'re|'ve|'m|'ll|'d)
        if b0 == 0x27 && i + 1 < end {
            let b1 = p[i + 1]
            switch b1 | 0x20 {
            case 0x73, 0x74, 0x6D, 0x64:   // s t m d
                return i + 2
            case 0x72, 0x76:               // re ve
                if i + 2 < end && p[i + 2] | 0x20 == 0x65 { return i + 3 }
            case 0x6C:                     // ll
                if i + 2 < end && p[i + 2] | 0x20 == 0x6C { return i + 3 }
            default:
                if b1 == 0xC5 && i + 2 < end && p[i + 2] == 0xBF { return i + 3 }   // 'ſ (U+017F)
            }
        }
        let (c0, l0) = classAt(p, i)
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if c0 == classLetter { return letterRunEnd(p, i + l0, end) }
        // \p{N}
        if c0 == classNumber { return i + l0 }
        let newline = b0 == 10 || b0 == 13
        if !newline && i + l0 < end {
            let (c1, l1) = classAt(p, i + l0)
            if c1 == classLetter { return letterRunEnd(p, i + l0 + l1, end) }
        }
        // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
        var j = -1
        if c0 == classOther {
            j = i + l0
        } else if b0 == 0x20 && i + 1 < end {
            let (c1, l1) = classAt(p, i + 1)
            if c1 == classOther { j = i + 1 + l1 }
        }
        if j >= 0 {
            while j < end {
                let (c, l) = classAt(p, j)
                if c != classOther { break }
                j += l
            }
            while j < end && (p[j] == 10 || p[j] == 13) { j += 1 }
            return j
        }
        // Whitespace: `\s*[\r\n]+` ends after the run's last CR/LF; else `\s+(?!\S)`
        // leaves the run's last scalar for the next token (when one follows); else `\s+`.
        j = i
        var last = i
        var lastNewline = -1
        while j < end {
            let (c, l) = classAt(p, j)
            if c != classSpace { break }
            if p[j] == 10 || p[j] == 13 { lastNewline = j }
            last = j
            j += l
        }
        if lastNewline >= 0 { return lastNewline + 1 }
        if j == end { return j }
        if last > i { return last }
        return j
    }
}
