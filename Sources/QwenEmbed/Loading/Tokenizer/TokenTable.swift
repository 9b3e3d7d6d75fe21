// Token byte storage and the byte-string -> id hash table behind BPE.
//
// All token bytes live in one arena (with zeroed slack after the end), located by
// per-id start/length arrays. The hash table is open addressing with linear probing;
// a slot holds (upper 32 bits of the hash) << 32 | (id + 1), 0 meaning empty, so most
// failed probes are settled without touching the arena.

/// Zeroed bytes kept readable after every buffer the hash or compare may read past.
let tokenizerSlack = 16

@inline(__always)
func load64(_ p: UnsafeRawPointer, _ offset: Int) -> UInt64 {
    return p.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
}

/// Hash of `n` bytes at `p`; may read up to 7 bytes past the end (masked out).
@inline(__always)
func hashBytes(_ p: UnsafeRawPointer, _ n: Int) -> UInt64 {
    var h = UInt64(truncatingIfNeeded: n) &* 0x9E37_79B9_7F4A_7C15
    var i = 0
    while i + 8 <= n {
        h = (h ^ load64(p, i)) &* 0xBF58_476D_1CE4_E5B9
        h ^= h >> 31
        i += 8
    }
    let rem = n &- i
    if rem > 0 {
        let w = load64(p, i) & (UInt64.max >> UInt64(truncatingIfNeeded: 64 &- rem &* 8))
        h = (h ^ w) &* 0xBF58_476D_1CE4_E5B9
    }
    h ^= h >> 32
    h = h &* 0x94D0_49BB_1331_11EB
    h ^= h >> 29
    return h
}

/// Whether `n` bytes at `a` and `b` are equal; may read up to 7 bytes past each.
@inline(__always)
func bytesEqual(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ n: Int) -> Bool {
    var i = 0
    while i + 8 <= n {
        if load64(a, i) != load64(b, i) { return false }
        i += 8
    }
    let rem = n &- i
    if rem == 0 { return true }
    let m = UInt64.max >> UInt64(truncatingIfNeeded: 64 &- rem &* 8)
    return (load64(a, i) ^ load64(b, i)) & m == 0
}

/// Open-addressing table from token bytes to id, over a `TokenStore`'s arena.
///
/// Each slot is two words, side by side in one cache line: the token's first eight bytes
/// (zero-padded), and `tag << 48 | length << 32 | (id + 1)` (0: empty). Tokens of up to
/// eight bytes, the great majority, are matched without touching the arena.
struct IDTable {
    let slots: UnsafeMutablePointer<UInt64>
    let mask: Int
    /// A one-hash Bloom filter, 32 bits per slot, indexed by the hash's top bits: most
    /// absent keys (half of BPE's look-ups) are rejected here, in a cache-friendly array a
    /// sixteenth of the table's size, without probing the table.
    let filter: UnsafeMutablePointer<UInt64>
    let filterShift: UInt64

    init(capacityFor n: Int) {
        var cap = 16
        while cap * 3 < n * 5 { cap <<= 1 }   // load factor at most 0.6
        slots = .allocate(capacity: 2 * cap)
        slots.initialize(repeating: 0, count: 2 * cap)
        mask = cap - 1
        var capBits: UInt64 = 0
        while 1 << capBits < cap { capBits += 1 }
        filterShift = 64 - (capBits + 5)
        filter = .allocate(capacity: cap / 2)
        filter.initialize(repeating: 0, count: cap / 2)
    }

    func deallocate() { slots.deallocate(); filter.deallocate() }

    /// First word of a key and its hash.
    @inline(__always)
    static func key(_ p: UnsafeRawPointer, _ n: Int) -> (UInt64, UInt64) {
        if n <= 8 {
            let w = load64(p, 0) & (UInt64.max >> UInt64(truncatingIfNeeded: 64 &- n &* 8))
            var h = (w ^ UInt64(truncatingIfNeeded: n) << 59) &* 0x9E37_79B9_7F4A_7C15
            h ^= h >> 29
            h = h &* 0xBF58_476D_1CE4_E5B9
            h ^= h >> 32
            return (w, h)
        }
        return (load64(p, 0), hashBytes(p, n))
    }

    /// Inserts `id` (whose bytes are in `store`); returns the id already holding the
    /// same bytes instead, if any. Tokens longer than 65535 bytes are not inserted.
    func insert(_ id: Int32, _ store: TokenStore) -> Int32? {
        let p = UnsafeRawPointer(store.bytes + Int(store.start[Int(id)]))
        let n = Int(store.length[Int(id)])
        if n > 0xFFFF { return nil }
        let (w, h) = IDTable.key(p, n)
        let meta = (h & 0xFFFF_0000_0000_0000) | UInt64(n) << 32 | UInt64(UInt32(id) + 1)
        let bit = h >> filterShift
        filter[Int(bit >> 6)] |= 1 << (bit & 63)
        var i = Int(truncatingIfNeeded: h) & mask
        while true {
            let m = slots[2 * i + 1]
            if m == 0 {
                slots[2 * i] = w
                slots[2 * i + 1] = meta
                return nil
            }
            if slots[2 * i] == w && m >> 32 == meta >> 32 {
                let other = Int(UInt32(truncatingIfNeeded: m)) - 1
                if n <= 8 || bytesEqual(p, store.bytes + Int(store.start[other]), n) {
                    return Int32(other)
                }
            }
            i = (i + 1) & mask
        }
    }

    /// Id of the token whose bytes are `p[0..<n]`, or `UInt32.max`.
    @inline(__always)
    func lookup(_ p: UnsafeRawPointer, _ n: Int, _ store: TokenStore) -> UInt32 {
        let (w, h) = IDTable.key(p, n)
        let bit = h >> filterShift
        if filter[Int(truncatingIfNeeded: bit >> 6)] & (1 << (bit & 63)) == 0 { return UInt32.max }
        var i = Int(truncatingIfNeeded: h) & mask
        if n <= 8 {
            let want = UInt64(truncatingIfNeeded: n)
            while true {
                let m = slots[2 &* i &+ 1]
                if m == 0 { return UInt32.max }
                if slots[2 &* i] == w && (m >> 32) & 0xFFFF == want {
                    return UInt32(truncatingIfNeeded: m) &- 1
                }
                i = (i &+ 1) & mask
            }
        }
        let want = (h & 0xFFFF_0000_0000_0000) >> 32 | UInt64(truncatingIfNeeded: n)
        while true {
            let m = slots[2 &* i &+ 1]
            if m == 0 { return UInt32.max }
            if slots[2 &* i] == w && m >> 32 == want {
                let id = Int(UInt32(truncatingIfNeeded: m)) &- 1
                if bytesEqual(p + 8, store.bytes + Int(store.start[id]) + 8, n &- 8) {
                    return UInt32(truncatingIfNeeded: id)
                }
            }
            i = (i &+ 1) & mask
        }
    }
}

/// Bytes of every id: `bytes[start[id] ..< start[id] + length[id]]`.
struct TokenStore {
    let bytes: UnsafeMutablePointer<UInt8>
    let start: UnsafeMutablePointer<UInt32>
    let length: UnsafeMutablePointer<UInt32>
    let count: Int

    func deallocate() {
        bytes.deallocate(); start.deallocate(); length.deallocate()
    }
}

/// Accumulates token bytes while a vocabulary is read; frees them unless `finish()`
/// handed them over (so an error while loading leaks nothing).
final class TokenStoreBuilder {
    private var handedOver = false
    var bytes: UnsafeMutablePointer<UInt8>
    var capacity: Int
    var used = 0
    var start: [UInt32]
    var length: [UInt32]

    /// `ids` slots, all unset (length UInt32.max) until `set`.
    init(ids: Int, byteCapacity: Int) {
        capacity = max(byteCapacity, 64)
        bytes = .allocate(capacity: capacity + tokenizerSlack)
        start = [UInt32](repeating: 0, count: ids)
        length = [UInt32](repeating: UInt32.max, count: ids)
    }

    func reserve(_ extra: Int) {
        if used + extra <= capacity { return }
        var cap = capacity * 2
        while cap < used + extra { cap *= 2 }
        let nb = UnsafeMutablePointer<UInt8>.allocate(capacity: cap + tokenizerSlack)
        nb.update(from: bytes, count: used)
        bytes.deallocate()
        bytes = nb
        capacity = cap
    }

    var count: Int { start.count }

    /// Appends a token with the next id.
    func add(_ data: [UInt8]) {
        reserve(data.count)
        start.append(UInt32(used))
        length.append(UInt32(data.count))
        for b in data { bytes[used] = b; used += 1 }
    }

    deinit { if !handedOver { bytes.deallocate() } }

    /// Hands the storage over (the builder must not be used afterwards).
    func finish() -> TokenStore {
        handedOver = true
        (bytes + used).initialize(repeating: 0, count: capacity + tokenizerSlack - used)
        let n = start.count
        let s = UnsafeMutablePointer<UInt32>.allocate(capacity: n)
        let l = UnsafeMutablePointer<UInt32>.allocate(capacity: n)
        start.withUnsafeBufferPointer { if let b = $0.baseAddress { s.initialize(from: b, count: n) } }
        length.withUnsafeBufferPointer { if let b = $0.baseAddress { l.initialize(from: b, count: n) } }
        return TokenStore(bytes: bytes, start: s, length: l, count: n)
    }
}
