// UTF-8 helpers for the tokenizer: validation with the offending offset, scalar
// decoding of text already known to be valid, and a growable byte buffer with slack
// after its end (the vocabulary hash reads whole 8-byte words).

/// Byte offset of the first byte that does not start or continue a well-formed UTF-8
/// sequence (overlongs, surrogates and scalars past U+10FFFF are ill-formed), or nil.
func firstInvalidUTF8Offset(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int? {
    var i = 0
    while i < n {
        i = skipASCII(p, from: i, count: n)
        if i >= n { break }
        let b0 = p[i]
        if b0 < 0x80 { i += 1; continue }
        guard let (len, lo, hi) = utf8Sequence(lead: b0) else { return i }
        if i + 1 >= n { return i }
        let b1 = p[i + 1]
        if b1 < lo || b1 > hi { return i }
        for k in 2..<len {
            if i + k >= n { return i }
            if p[i + k] & 0xC0 != 0x80 { return i }
        }
        i += len
    }
    return nil
}

/// Well-formed UTF-8 (RFC 3629) by lead byte: the sequence length and the range
/// allowed for the second byte (which excludes overlongs, surrogates and scalars past
/// U+10FFFF); nil for ASCII and for bytes that never start a sequence.
@inline(__always)
func utf8Sequence(lead: UInt8) -> (length: Int, low: UInt8, high: UInt8)? {
    switch lead {
    case 0xC2...0xDF: return (2, 0x80, 0xBF)
    case 0xE0: return (3, 0xA0, 0xBF)
    case 0xE1...0xEC, 0xEE...0xEF: return (3, 0x80, 0xBF)
    case 0xED: return (3, 0x80, 0x9F)
    case 0xF0: return (4, 0x90, 0xBF)
    case 0xF1...0xF3: return (4, 0x80, 0xBF)
    case 0xF4: return (4, 0x80, 0x8F)
    default: return nil
    }
}

/// The index of the first non-ASCII byte at or after `i` (or `count`), eight bytes at a time.
@inline(__always)
func skipASCII(_ p: UnsafePointer<UInt8>, from start: Int, count n: Int) -> Int {
    var i = start
    while i + 8 <= n {
        let w = UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self)
        if w & 0x8080_8080_8080_8080 != 0 { break }
        i += 8
    }
    while i < n && p[i] < 0x80 { i += 1 }
    return i
}

/// Decodes the scalar starting at `p[i]` of valid UTF-8; returns it and its length.
@inline(__always)
func decodeScalar(_ p: UnsafePointer<UInt8>, _ i: Int) -> (UInt32, Int) {
    let b0 = UInt32(p[i])
    if b0 < 0x80 { return (b0, 1) }
    if b0 < 0xE0 {
        return ((b0 & 0x1F) << 6 | UInt32(p[i + 1] & 0x3F), 2)
    }
    if b0 < 0xF0 {
        return ((b0 & 0x0F) << 12 | UInt32(p[i + 1] & 0x3F) << 6 | UInt32(p[i + 2] & 0x3F), 3)
    }
    return ((b0 & 0x07) << 18 | UInt32(p[i + 1] & 0x3F) << 12 | UInt32(p[i + 2] & 0x3F) << 6
        | UInt32(p[i + 3] & 0x3F), 4)
}

@inline(__always)
func appendUTF8(_ cp: UInt32, to out: inout [UInt8]) {
    if cp < 0x80 {
        out.append(UInt8(cp))
    } else if cp < 0x800 {
        out.append(UInt8(0xC0 | cp >> 6)); out.append(UInt8(0x80 | cp & 0x3F))
    } else if cp < 0x10000 {
        out.append(UInt8(0xE0 | cp >> 12)); out.append(UInt8(0x80 | cp >> 6 & 0x3F))
        out.append(UInt8(0x80 | cp & 0x3F))
    } else {
        out.append(UInt8(0xF0 | cp >> 18)); out.append(UInt8(0x80 | cp >> 12 & 0x3F))
        out.append(UInt8(0x80 | cp >> 6 & 0x3F)); out.append(UInt8(0x80 | cp & 0x3F))
    }
}
