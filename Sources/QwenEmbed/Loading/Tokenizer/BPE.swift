// Byte-pair encoding of one pre-token, as tiktoken's `byte_pair_encode`: repeatedly merge
// the adjacent pair whose concatenation has the lowest rank (leftmost on a tie) until no
// adjacent pair is a token. Ranks are ids, so a merged part's id is the merge's rank.
//
// Short pieces use flat arrays and a linear minimum search; long ones (CJK runs, long
// punctuation or whitespace runs) a linked list and a binary heap, O(n log n).

/// Per-call working memory for BPE (one allocation), grown on demand.
final class BPEScratch {
    private(set) var capacity = 0
    private var block: UnsafeMutableRawPointer
    private(set) var pos: UnsafeMutablePointer<Int32>
    private(set) var next: UnsafeMutablePointer<Int32>
    private(set) var prev: UnsafeMutablePointer<Int32>
    private(set) var rank: UnsafeMutablePointer<UInt32>
    private(set) var ids: UnsafeMutablePointer<Int32>
    private(set) var heap: UnsafeMutablePointer<UInt64>

    init() {
        (block, pos, next, prev, rank, ids, heap) = BPEScratch.carve(128)
        capacity = 128
    }

    /// Room for pieces of `n` bytes: five arrays of n + 1 four-byte entries, a heap of
    /// 3n + 4 eight-byte entries.
    private static func carve(_ n: Int) -> (UnsafeMutableRawPointer, UnsafeMutablePointer<Int32>,
            UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>, UnsafeMutablePointer<UInt32>,
            UnsafeMutablePointer<Int32>, UnsafeMutablePointer<UInt64>) {
        let stride = ((n + 1) * 4 + 7) & ~7
        let block = UnsafeMutableRawPointer.allocate(byteCount: 5 * stride + (3 * n + 4) * 8, alignment: 8)
        return (block,
                (block + 0 * stride).bindMemory(to: Int32.self, capacity: n + 1),
                (block + 1 * stride).bindMemory(to: Int32.self, capacity: n + 1),
                (block + 2 * stride).bindMemory(to: Int32.self, capacity: n + 1),
                (block + 3 * stride).bindMemory(to: UInt32.self, capacity: n + 1),
                (block + 4 * stride).bindMemory(to: Int32.self, capacity: n + 1),
                (block + 5 * stride).bindMemory(to: UInt64.self, capacity: 3 * n + 4))
    }

    func ensure(_ n: Int) {
        if n <= capacity { return }
        block.deallocate()
        let cap = max(n, capacity * 2)
        (block, pos, next, prev, rank, ids, heap) = BPEScratch.carve(cap)
        capacity = cap
    }

    deinit { block.deallocate() }
}

/// Pieces up to this many bytes use the flat-array merge loop.
let bpeSmallPiece = 32

extension Tokenizer {
    /// Encodes `p[from..<to]` (no special tokens) and appends the ids.
    func encodeOrdinary(_ p: UnsafePointer<UInt8>, _ from: Int, _ to: Int,
                        _ out: inout [Int32], _ scratch: BPEScratch) {
        let props = self.props
        let table = regularTable
        let store = self.store
        var i = from
        while i < to {
            let j = props.pieceEnd(p, i, to)
            let n = j - i
            if n == 1 {
                out.append(byteToken[Int(p[i])])
            } else {
                let id = table.lookup(p + i, n, store)
                if id != UInt32.max {
                    out.append(Int32(bitPattern: id))
                } else if n <= bpeSmallPiece {
                    bpeSmall(p + i, n, &out, scratch)
                } else {
                    bpeLarge(p + i, n, &out, scratch)
                }
            }
            i = j
        }
    }

    @inline(__always)
    private func rankOf(_ p: UnsafePointer<UInt8>, _ a: Int32, _ b: Int32) -> UInt32 {
        return regularTable.lookup(p + Int(a), Int(b - a), store)
    }

    /// tiktoken's merge loop over flat arrays; `n >= 2`.
    func bpeSmall(_ p: UnsafePointer<UInt8>, _ n: Int, _ out: inout [Int32], _ scratch: BPEScratch) {
        scratch.ensure(n)
        let pos = scratch.pos, rank = scratch.rank, ids = scratch.ids
        for k in 0..<n {
            pos[k] = Int32(k)
            ids[k] = byteToken[Int(p[k])]
        }
        pos[n] = Int32(n)
        var count = n
        // rank[k]: rank of merging part k with part k + 1.
        var previous = Int(p[0])
        for k in 0..<(n - 1) {
            let b = Int(p[k + 1])
            rank[k] = pairRank[previous << 8 | b]
            previous = b
        }
        rank[n - 1] = UInt32.max
        while true {
            var best = UInt32.max
            var at = 0
            for k in 0..<(count - 1) where rank[k] < best {
                best = rank[k]
                at = k
            }
            if best == UInt32.max { break }
            ids[at] = Int32(bitPattern: best)
            // Remove part at + 1.
            var k = at + 1
            while k < count {
                pos[k] = pos[k + 1]
                ids[k] = ids[k + 1]
                rank[k] = rank[k + 1]
                k += 1
            }
            count -= 1
            rank[at] = at + 1 < count ? rankOf(p, pos[at], pos[at + 2]) : UInt32.max
            if at > 0 { rank[at - 1] = rankOf(p, pos[at - 1], pos[at + 1]) }
        }
        for k in 0..<count { out.append(ids[k]) }
    }

    /// The same merges with a linked list and a min-heap keyed (rank, position).
    func bpeLarge(_ p: UnsafePointer<UInt8>, _ n: Int, _ out: inout [Int32], _ scratch: BPEScratch) {
        scratch.ensure(n)
        let next = scratch.next, prev = scratch.prev, rank = scratch.rank, ids = scratch.ids
        let heap = scratch.heap
        var heapCount = 0

        @inline(__always) func push(_ key: UInt64) {
            var c = heapCount
            heapCount += 1
            while c > 0 {
                let parent = (c - 1) >> 1
                if heap[parent] <= key { break }
                heap[c] = heap[parent]
                c = parent
            }
            heap[c] = key
        }
        @inline(__always) func pop() -> UInt64 {
            let top = heap[0]
            heapCount -= 1
            let key = heap[heapCount]
            var c = 0
            while true {
                var child = 2 * c + 1
                if child >= heapCount { break }
                if child + 1 < heapCount && heap[child + 1] < heap[child] { child += 1 }
                if key <= heap[child] { break }
                heap[c] = heap[child]
                c = child
            }
            heap[c] = key
            return top
        }

        // Node k starts at byte k; node n is the end sentinel.
        for k in 0..<n {
            next[k] = Int32(k + 1)
            prev[k] = Int32(k - 1)
            ids[k] = byteToken[Int(p[k])]
        }
        next[n] = Int32(n)
        for k in 0..<(n - 1) {
            let r = pairRank[Int(p[k]) << 8 | Int(p[k + 1])]
            rank[k] = r
            if r != UInt32.max { push(UInt64(r) << 32 | UInt64(k)) }
        }
        rank[n - 1] = UInt32.max
        while heapCount > 0 {
            let e = pop()
            let r = UInt32(truncatingIfNeeded: e >> 32)
            let k = Int(UInt32(truncatingIfNeeded: e))
            if rank[k] != r { continue }   // stale entry
            let j = Int(next[k])
            let nj = Int(next[j])
            ids[k] = Int32(bitPattern: r)
            next[k] = Int32(nj)
            if nj < n { prev[nj] = Int32(k) }
            rank[j] = UInt32.max
            if nj < n {
                let r2 = rankOf(p, Int32(k), next[nj])
                rank[k] = r2
                if r2 != UInt32.max { push(UInt64(r2) << 32 | UInt64(k)) }
            } else {
                rank[k] = UInt32.max
            }
            if k > 0 {
                let pk = Int(prev[k])
                let r3 = rankOf(p, Int32(pk), Int32(nj))
                rank[pk] = r3
                if r3 != UInt32.max { push(UInt64(r3) << 32 | UInt64(pk)) }
            }
        }
        var k = 0
        while k < n {
            out.append(ids[k])
            k = Int(next[k])
        }
    }
}
