// Unicode Normalization Form C without Foundation.
//
// Fast path: a scalar whose property byte lacks `propNFCUnsafe` (ccc 0, NFC_QC Yes) is
// left as it is and starts a new normalization segment; text made only of such scalars
// (all ASCII, most CJK, Hangul syllables, ...) is already NFC and is not touched. Only a
// segment from the last such "safe" scalar through the run of unsafe ones after it is
// decomposed, canonically reordered and recomposed (UAX #15).

/// Normalizes a string to NFC (returns it unchanged when it already is).
public func nfcNormalize(_ s: String) -> String {
    var copy = s
    let normalized = copy.withUTF8 { buf -> [UInt8]? in
        guard let base = buf.baseAddress, nfcFirstUnsafeOffset(base, buf.count) != nil else {
            return nil
        }
        var out: [UInt8] = []
        out.reserveCapacity(buf.count + 16)
        nfcNormalizeBytes(base, buf.count, into: &out)
        return out
    }
    guard let bytes = normalized else { return s }
    return String(decoding: bytes, as: UTF8.self)
}

/// NFC of valid UTF-8 bytes. Throws `QwenError.invalidArgument` naming the offset of the
/// first invalid byte.
public func nfcNormalize(utf8 bytes: [UInt8]) throws -> [UInt8] {
    return try bytes.withUnsafeBufferPointer { buf -> [UInt8] in
        guard let base = buf.baseAddress else { return [] }
        if let bad = firstInvalidUTF8Offset(base, buf.count) {
            throw QwenError.invalidArgument("invalid UTF-8 at byte offset \(bad)")
        }
        if nfcFirstUnsafeOffset(base, buf.count) == nil { return bytes }
        var out: [UInt8] = []
        out.reserveCapacity(buf.count + 16)
        nfcNormalizeBytes(base, buf.count, into: &out)
        return out
    }
}

/// Offset of the first scalar of valid UTF-8 that NFC might change, or nil when the text
/// is certainly NFC already.
func nfcFirstUnsafeOffset(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int? {
    let ud = UnicodeData.shared
    var i = 0
    while i < n {
        i = skipASCII(p, from: i, count: n)
        if i >= n { break }
        let (cp, len) = decodeScalar(p, i)
        if ud.prop(cp) & propNFCUnsafe != 0 { return i }
        i += len
    }
    return nil
}

/// Appends the NFC form of valid UTF-8 `p[0..<n]` to `out`.
func nfcNormalizeBytes(_ p: UnsafePointer<UInt8>, _ n: Int, into out: inout [UInt8]) {
    let ud = UnicodeData.shared
    var copied = 0          // bytes before this are already in `out`
    var boundary = 0        // start of the last safe scalar (a segment may start there)
    var i = 0
    var scalars: [UInt32] = []
    var decomposed: [UInt32] = []
    while i < n {
        let b0 = p[i]
        if b0 < 0x80 { boundary = i; i += 1; continue }
        let (cp, len) = decodeScalar(p, i)
        if ud.prop(cp) & propNFCUnsafe == 0 { boundary = i; i += len; continue }
        // Unsafe scalar: the segment runs from `boundary` to the next safe scalar.
        let segStart = max(boundary, copied)
        var segEnd = i + len
        while segEnd < n {
            let (c2, l2) = decodeScalar(p, segEnd)
            if p[segEnd] < 0x80 || ud.prop(c2) & propNFCUnsafe == 0 { break }
            segEnd += l2
        }
        if segStart > copied {
            out.append(contentsOf: UnsafeBufferPointer(start: p + copied, count: segStart - copied))
        }
        scalars.removeAll(keepingCapacity: true)
        var k = segStart
        while k < segEnd {
            let (c, l) = decodeScalar(p, k)
            scalars.append(c)
            k += l
        }
        normalizeSegment(scalars, ud, &decomposed)
        for c in decomposed { appendUTF8(c, to: &out) }
        copied = segEnd
        boundary = segEnd
        i = segEnd
    }
    if n > copied {
        out.append(contentsOf: UnsafeBufferPointer(start: p + copied, count: n - copied))
    }
}

/// Decompose, reorder canonically and recompose `input`; the result replaces `result`.
private func normalizeSegment(_ input: [UInt32], _ ud: UnicodeData, _ result: inout [UInt32]) {
    var d: [UInt32] = []
    d.reserveCapacity(input.count * 2)
    for c in input { ud.decompose(c, into: &d) }
    var cls = d.map { ud.ccc($0) }
    // Canonical ordering: stable insertion sort of each run of non-starters by class.
    var i = 1
    while i < d.count {
        let c = cls[i]
        if c != 0 {
            var j = i
            while j > 0 && cls[j - 1] > c {
                cls.swapAt(j, j - 1)
                d.swapAt(j, j - 1)
                j -= 1
            }
        }
        i += 1
    }
    // Canonical composition.
    result.removeAll(keepingCapacity: true)
    var starter = -1
    var lastClass: UInt8 = 0
    for (idx, ch) in d.enumerated() {
        let cc = cls[idx]
        if starter >= 0 {
            let adjacent = result.count - 1 == starter
            if adjacent || (lastClass != 0 && lastClass < cc) {
                if let composite = ud.compose(result[starter], ch) {
                    result[starter] = composite
                    continue
                }
            }
        }
        if cc == 0 { starter = result.count }
        lastClass = cc
        result.append(ch)
    }
}
