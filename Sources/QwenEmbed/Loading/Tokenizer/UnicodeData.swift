// Run-time form of the generated tables in UnicodeTables.swift: decoded once, on first
// use, into flat buffers that live for the whole process.

/// Pre-tokenizer classes (low two bits of a property byte).
@usableFromInline let classOther: UInt8 = 0
@usableFromInline let classLetter: UInt8 = 1
@usableFromInline let classNumber: UInt8 = 2
@usableFromInline let classSpace: UInt8 = 3
/// Property bit: the scalar may change under NFC (ccc != 0 or NFC_QC != Yes).
@usableFromInline let propNFCUnsafe: UInt8 = 4

final class UnicodeData: @unchecked Sendable {
    static let shared = UnicodeData()

    /// Stage 1: block number for scalar >> shift. Stage 2: property bytes per block.
    let stage1: UnsafeMutablePointer<UInt8>
    let stage2: UnsafeMutablePointer<UInt8>
    let shift: UInt32
    let blockMask: UInt32

    /// Canonical combining classes != 0 (sorted scalars, parallel classes).
    let cccKeys: [UInt32]
    let cccValues: [UInt8]
    /// Full canonical decompositions: sorted scalars; `decompStart[i]..<decompStart[i+1]`
    /// indexes `decompData`.
    let decompKeys: [UInt32]
    let decompStart: [Int32]
    let decompData: [UInt32]
    /// Primary composites keyed by first << 21 | second (sorted), parallel composites.
    let compKeys: [UInt64]
    let compValues: [UInt32]

    private init() {
        shift = UInt32(unicodePropShift)
        blockMask = (1 << shift) - 1

        let s1 = UnicodeData.hexBytes(unicodePropStage1Hex)
        stage1 = .allocate(capacity: s1.count)
        stage1.initialize(from: s1, count: s1.count)

        var s2: [UInt8] = []
        s2.reserveCapacity(unicodePropStage2.utf8.count)
        for c in unicodePropStage2.utf8 where c != 10 { s2.append(c &- 65) }
        stage2 = .allocate(capacity: s2.count)
        stage2.initialize(from: s2, count: s2.count)

        var digits = UnicodeData.hexDigits(unicodeCCCHex)
        var ck: [UInt32] = [], cv: [UInt8] = []
        var i = 0
        while i + 8 <= digits.count {
            ck.append(UInt32(UnicodeData.hexValue(digits, i, 6)))
            cv.append(UInt8(UnicodeData.hexValue(digits, i + 6, 2)))
            i += 8
        }
        cccKeys = ck; cccValues = cv

        digits = UnicodeData.hexDigits(unicodeDecompHex)
        var dk: [UInt32] = [], ds: [Int32] = [], dd: [UInt32] = []
        i = 0
        while i + 7 <= digits.count {
            dk.append(UInt32(UnicodeData.hexValue(digits, i, 6)))
            let n = Int(UnicodeData.hexValue(digits, i + 6, 1))
            ds.append(Int32(dd.count))
            i += 7
            for _ in 0..<n where i + 6 <= digits.count {
                dd.append(UInt32(UnicodeData.hexValue(digits, i, 6)))
                i += 6
            }
        }
        ds.append(Int32(dd.count))
        decompKeys = dk; decompStart = ds; decompData = dd

        digits = UnicodeData.hexDigits(unicodeCompHex)
        var mk: [UInt64] = [], mv: [UInt32] = []
        i = 0
        while i + 18 <= digits.count {
            let a = UnicodeData.hexValue(digits, i, 6)
            let b = UnicodeData.hexValue(digits, i + 6, 6)
            mk.append(UInt64(a) << 21 | UInt64(b))
            mv.append(UInt32(UnicodeData.hexValue(digits, i + 12, 6)))
            i += 18
        }
        compKeys = mk; compValues = mv
    }

    /// Property byte of a scalar (class in the low two bits, `propNFCUnsafe`).
    @inline(__always) func prop(_ cp: UInt32) -> UInt8 {
        let block = UInt32(stage1[Int(truncatingIfNeeded: cp >> shift)])
        return stage2[Int(truncatingIfNeeded: block << shift | (cp & blockMask))]
    }

    func ccc(_ cp: UInt32) -> UInt8 {
        if cp < 0x300 { return 0 }
        var lo = 0, hi = cccKeys.count
        while lo < hi {
            let mid = (lo + hi) >> 1
            if cccKeys[mid] < cp { lo = mid + 1 } else { hi = mid }
        }
        return lo < cccKeys.count && cccKeys[lo] == cp ? cccValues[lo] : 0
    }

    /// Appends the full canonical decomposition of `cp` (itself when it has none).
    func decompose(_ cp: UInt32, into out: inout [UInt32]) {
        let sIndex = Int64(cp) - 0xAC00
        if sIndex >= 0 && sIndex < 11172 {
            out.append(UInt32(0x1100 + sIndex / 588))
            out.append(UInt32(0x1161 + (sIndex % 588) / 28))
            let t = sIndex % 28
            if t != 0 { out.append(UInt32(0x11A7 + t)) }
            return
        }
        if cp >= 0xC0 {
            var lo = 0, hi = decompKeys.count
            while lo < hi {
                let mid = (lo + hi) >> 1
                if decompKeys[mid] < cp { lo = mid + 1 } else { hi = mid }
            }
            if lo < decompKeys.count && decompKeys[lo] == cp {
                for k in Int(decompStart[lo])..<Int(decompStart[lo + 1]) { out.append(decompData[k]) }
                return
            }
        }
        out.append(cp)
    }

    /// The primary composite of a pair, if any.
    func compose(_ a: UInt32, _ b: UInt32) -> UInt32? {
        // Hangul LV and LVT.
        if a >= 0x1100 && a < 0x1100 + 19 && b >= 0x1161 && b < 0x1161 + 21 {
            return 0xAC00 + ((a - 0x1100) * 21 + (b - 0x1161)) * 28
        }
        if a >= 0xAC00 && a < 0xAC00 + 11172 && (a - 0xAC00) % 28 == 0 && b > 0x11A7 && b < 0x11A7 + 28 {
            return a + (b - 0x11A7)
        }
        let key = UInt64(a) << 21 | UInt64(b)
        var lo = 0, hi = compKeys.count
        while lo < hi {
            let mid = (lo + hi) >> 1
            if compKeys[mid] < key { lo = mid + 1 } else { hi = mid }
        }
        return lo < compKeys.count && compKeys[lo] == key ? compValues[lo] : nil
    }

    private static func hexDigits(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count)
        for c in s.utf8 {
            switch c {
            case 48...57: out.append(c - 48)
            case 97...102: out.append(c - 87)
            case 65...70: out.append(c - 55)
            default: break
            }
        }
        return out
    }

    private static func hexValue(_ d: [UInt8], _ at: Int, _ n: Int) -> UInt32 {
        var v: UInt32 = 0
        for k in at..<(at + n) { v = v << 4 | UInt32(d[k]) }
        return v
    }

    private static func hexBytes(_ s: String) -> [UInt8] {
        let d = hexDigits(s)
        var out: [UInt8] = []
        out.reserveCapacity(d.count / 2)
        var i = 0
        while i + 1 < d.count { out.append(d[i] << 4 | d[i + 1]); i += 2 }
        return out
    }
}
