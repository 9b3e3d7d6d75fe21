// The AVX-512 target's decode kernels for the interleaved layout (this file is compiled
// only there): two rows per 512-bit register, one in the low 256 bits and one in the high
// ones, against the same activations broadcast to both halves (vbroadcasti64x4 from
// memory is a load, no ALU work). The two rows are half the call's rows apart (i and
// i + rows / 2), so the weights arrive as two sequential streams in different pages: two
// neighbouring rows read side by side made one region's accesses zig-zag, and reading two
// rows per pass that way once halved what the hardware prefetcher delivered
// (BENCHMARKS.md). One vpdpbusd then does 64 byte products where the
// 256-bit kernels of X86Kernels.swift do 32, and a group's decoding is shared by both
// rows' instructions as well. Each lane's operations are those of the 256-bit kernels
// (same integer sums, same f32 operations in the same order, each half summed by the same
// `hsum`), so a row's result does not depend on whether it was paired, nor on the batch.
// An odd last row takes the 256-bit kernel.
#if arch(x86_64)
import KernelABI
import _Builtin_intrinsics.intel

/// Up to 8 code vectors of a group for two rows (those past the group's size are zero).
typealias CodeVectors512 = (__m512i, __m512i, __m512i, __m512i, __m512i, __m512i, __m512i, __m512i)

@inline(__always) func codeVector512(_ c: CodeVectors512, _ k: Int) -> __m512i {
    switch k {
    case 0: return c.0
    case 1: return c.1
    case 2: return c.2
    case 3: return c.3
    case 4: return c.4
    case 5: return c.5
    case 6: return c.6
    default: return c.7
    }
}

/// [low | high].
@inline(__always) func pair(_ low: __m256i, _ high: __m256i) -> __m512i {
    _mm512_mask_broadcast_i64x4(_mm512_castsi256_si512(low), 0xF0, high)
}

@inline(__always) func pair(_ low: __m256, _ high: __m256) -> __m512 {
    _mm512_mask_broadcast_f32x8(_mm512_castps256_ps512(low), 0xFF00, high)
}

/// The 32 bytes at p + offset (row r) and at p + stride + offset (row r + 1).
@inline(__always) func loadPair(_ p: UnsafeRawPointer, _ stride: Int, _ offset: Int) -> __m512i {
    pair(load256(p, offset), load256(p + stride, offset))
}

@inline(__always) func nibblePair512(_ p: UnsafeRawPointer, _ stride: Int, _ offset: Int) -> (__m512i, __m512i) {
    let packed = loadPair(p, stride, offset), mask = _mm512_set1_epi8(0x0F)
    return (_mm512_and_si512(packed, mask), _mm512_and_si512(_mm512_srli_epi16(packed, 4), mask))
}

@inline(__always) func withHighBits512(_ nib: __m512i, _ h: __m512i, from: Int, to: Int, mask: Int8) -> __m512i {
    let moved = from < to ? _mm512_slli_epi16(h, UInt32(to &- from)) : from > to ? _mm512_srli_epi16(h, UInt32(from &- to)) : h
    return _mm512_or_si512(nib, _mm512_and_si512(moved, _mm512_set1_epi8(mask)))
}

/// `decodeCodes` for the same group of two rows `stride` bytes apart (the second in the
/// high half).
@inline(__always) func decodeCodes512(bits: Int, _ p: UnsafeRawPointer, _ stride: Int, size g: Int) -> CodeVectors512 {
    let z = _mm512_setzero_si512()
    if g == 1 {                                               // per row, then paired
        let low = decodeCodes(bits: bits, p, size: 1).0, high = decodeCodes(bits: bits, p + stride, size: 1).0
        return (pair(low, high), z, z, z, z, z, z, z)
    }
    switch bits {
    case 8:
        if g == 8 {
            return (loadPair(p, stride, 0), loadPair(p, stride, 32), loadPair(p, stride, 64), loadPair(p, stride, 96),
                    loadPair(p, stride, 128), loadPair(p, stride, 160), loadPair(p, stride, 192), loadPair(p, stride, 224))
        }
        return (loadPair(p, stride, 0), loadPair(p, stride, 32), loadPair(p, stride, 64), loadPair(p, stride, 96), z, z, z, z)
    case 4:
        let (c0, c1) = nibblePair512(p, stride, 0), (c2, c3) = nibblePair512(p, stride, 32)
        if g == 4 { return (c0, c1, c2, c3, z, z, z, z) }
        let (c4, c5) = nibblePair512(p, stride, 64), (c6, c7) = nibblePair512(p, stride, 96)
        return (c0, c1, c2, c3, c4, c5, c6, c7)
    case 5:
        if g == 4 {
            @inline(__always) func bits(_ q: UnsafeRawPointer) -> __m256i {
                _mm256_srlv_epi32(_mm256_broadcastsi128_si256(load128(q, 0)), _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4))
            }
            let h = pair(bits(p), bits(p + stride))
            let (n0, n1) = nibblePair512(p, stride, 16), (n2, n3) = nibblePair512(p, stride, 48)
            return (withHighBits512(n0, h, from: 0, to: 4, mask: 0x10), withHighBits512(n1, h, from: 1, to: 4, mask: 0x10),
                    withHighBits512(n2, h, from: 2, to: 4, mask: 0x10), withHighBits512(n3, h, from: 3, to: 4, mask: 0x10), z, z, z, z)
        }
        let h = loadPair(p, stride, 0)
        let (n0, n1) = nibblePair512(p, stride, 32), (n2, n3) = nibblePair512(p, stride, 64)
        let (n4, n5) = nibblePair512(p, stride, 96), (n6, n7) = nibblePair512(p, stride, 128)
        return (withHighBits512(n0, h, from: 0, to: 4, mask: 0x10), withHighBits512(n1, h, from: 1, to: 4, mask: 0x10),
                withHighBits512(n2, h, from: 2, to: 4, mask: 0x10), withHighBits512(n3, h, from: 3, to: 4, mask: 0x10),
                withHighBits512(n4, h, from: 4, to: 4, mask: 0x10), withHighBits512(n5, h, from: 5, to: 4, mask: 0x10),
                withHighBits512(n6, h, from: 6, to: 4, mask: 0x10), withHighBits512(n7, h, from: 7, to: 4, mask: 0x10))
    default:                                                  // 6 (Q6_K, g = 8)
        let (n0, n1) = nibblePair512(p, stride, 0), (n2, n3) = nibblePair512(p, stride, 32)
        let (n4, n5) = nibblePair512(p, stride, 64), (n6, n7) = nibblePair512(p, stride, 96)
        let h0 = loadPair(p, stride, 128), h1 = loadPair(p, stride, 160)
        return (withHighBits512(n0, h0, from: 0, to: 4, mask: 0x30), withHighBits512(n1, h0, from: 2, to: 4, mask: 0x30),
                withHighBits512(n2, h0, from: 4, to: 4, mask: 0x30), withHighBits512(n3, h0, from: 6, to: 4, mask: 0x30),
                withHighBits512(n4, h1, from: 0, to: 4, mask: 0x30), withHighBits512(n5, h1, from: 2, to: 4, mask: 0x30),
                withHighBits512(n6, h1, from: 4, to: 4, mask: 0x30), withHighBits512(n7, h1, from: 6, to: 4, mask: 0x30))
    }
}

/// The 32 bytes at p + offset in both halves (a load, no ALU work).
@inline(__always) func broadcast256(_ p: UnsafeRawPointer, _ offset: Int) -> __m512i { _mm512_broadcast_i64x4(load256(p, offset)) }

@inline(__always) func broadcastFloat8(_ p: UnsafeRawPointer, _ offset: Int) -> __m512 {
    _mm512_broadcast_f32x8(_mm256_loadu_ps((p + offset).assumingMemoryBound(to: Float.self)))
}

/// `dotCodes` for two rows: acc + Σ_{k < n} (code vector k) · (x_k in both halves).
@inline(__always) func dotCodes512(_ acc: __m512i, _ c: CodeVectors512, _ x: UnsafeRawPointer, count n: Int) -> __m512i {
    @inline(__always) func dp(_ acc: __m512i, _ k: Int) -> __m512i {
        _mm512_maskz_dpbusd_epi32(0xFFFF, acc, codeVector512(c, k), broadcast256(x, 32 &* k))   // (_mm512_dpbusd_epi32 is a macro)
    }
    if n == 1 { return dp(acc, 0) }
    var a = dp(acc, 0), b = dp(_mm512_setzero_si512(), 1)
    if n >= 4 { a = dp(a, 2); b = dp(b, 3) }
    if n == 8 { a = dp(a, 4); b = dp(b, 5); a = dp(a, 6); b = dp(b, 7) }
    return _mm512_add_epi32(a, b)
}

/// `laneHalves` of two rows.
@inline(__always) func laneHalves512(_ p: UnsafeRawPointer, _ stride: Int, _ offset: Int, _ g: Int) -> __m512 {
    switch g {
    case 8: return _mm512_cvtph_ps(_mm256_set_m128i(load128(p + stride, offset), load128(p, offset)))
    case 4:
        let low = Int64(bitPattern: p.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        let high = Int64(bitPattern: (p + stride).loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        return _mm512_cvtph_ps(_mm256_setr_epi64x(low, low, high, high))
    default: return pair(_mm256_set1_ps(loadHalf(p, offset)), _mm256_set1_ps(loadHalf(p + stride, offset)))
    }
}

/// Batches of fewer vectors take the 256-bit kernels (`rowsLanes32` and kin) instead of
/// the row pairs. On a core that runs a 512-bit operation as two 256-bit halves
/// (QE_CPU_HALF_WIDTH_ZMM: Zen 4) a pair saves no arithmetic: Zen 4, default model, decode
/// step through the 256-bit kernels against the pairs, 1 thread: B=1 15.1-15.4 ms against
/// 17.9-20.0, B=2 19.9-20.4 against 22.0-22.4, B=4 33.0-33.3 against 31.5-33.4; 2 threads:
/// B=1 11.4-12.5 against 13.3-14.8, B=4 19.3-20.5 against 16.4-18.7 (BENCHMARKS.md).
/// Elsewhere (full-width AVX-512) the pairs from one vector on.
let rowPairsMinimumBatch = qe_cpu_features() & UInt32(QE_CPU_HALF_WIDTH_ZMM) != 0 ? 4 : 1

/// Per-vector state of the two-row kernels: each vector's records and accumulator.
struct Batch512 {
    let records: UnsafeMutablePointer<UnsafeRawPointer>   // [count]
    let sums: UnsafeMutablePointer<__m512>                // [count]: row r low, row r + 1 high
    let count: Int

    /// y[b * yStride] and y[b * yStride + second] = the two rows' sums of vector b (each
    /// half by `hsum`, as the 256-bit kernels); zeroes them for the next pair.
    @inline(__always) func finishRows(_ y: UnsafeMutablePointer<Float>, second: Int, _ yStride: Int) {
        let high = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 15, 14, 13, 12, 11, 10, 9, 8)   // lanes 8...15, twice
        for b in 0..<count {
            let s = sums[b]
            y[b &* yStride] = hsum(_mm512_castps512_ps256(s))
            y[b &* yStride &+ second] = hsum(_mm512_castps512_ps256(_mm512_permutexvar_ps(high, s)))
            sums[b] = _mm512_setzero_ps()
        }
    }
}

@inline(__always) func withBatch512(_ v: UnsafePointer<qe_vector>, _ count: Int, _ body: (Batch512) -> Void) {
    withUnsafeTemporaryAllocation(of: UnsafeRawPointer.self, capacity: count) { records in
        withUnsafeTemporaryAllocation(of: __m512.self, capacity: count) { sums in
            for b in 0..<count {
                records[b] = UnsafeRawPointer(v[b].lanes!)
                sums[b] = _mm512_setzero_ps()
            }
            body(Batch512(records: records.baseAddress!, sums: sums.baseAddress!, count: count))
        }
    }
}

/// Rows longer than this are not prefetched by `prefetchRowPair`.
let prefetchRowBytesLimit = 1024

/// Asks for the `rowBytes` bytes at `row` and at `row + apart` (a row pair two rows ahead
/// of the one being computed) so both weight streams keep arriving while a batch of
/// vectors keeps the core busy between loads; batches of `batchPrefetchMinimumBatch` or
/// more ask group by group further ahead instead (`prefetchAhead`). Only for rows of at most
/// `prefetchRowBytesLimit` bytes (the 896-column rows of the 0.5B model it was added
/// for): a longer row's burst of requests (2 x 43 lines for a 4864-column Q4_K row, 2 x 36
/// for a 4096-column Q4_0 row of Qwen-7B) stalled the loads it ran ahead of, on Zen 4
/// halving single-stream decode at 7B shapes (BENCHMARKS.md); the hardware prefetcher
/// follows two long sequential streams by itself.
@inline(__always) func prefetchRowPair(_ row: UnsafeRawPointer, _ rowBytes: Int, _ apart: Int, ahead: Bool) {
    guard ahead, rowBytes <= prefetchRowBytesLimit else { return }
    var offset = 0
    while offset < rowBytes {
        qe_prefetch(row + offset)
        qe_prefetch(row + (apart &+ offset))
        offset &+= 64
    }
}

/// `group32` for the same group of two rows `stride` bytes apart.
@inline(__always) func group32x2<F: Lane32>(_: F.Type, _ q: UnsafeRawPointer, _ stride: Int, size g: Int, _ batch: Batch512, _ record: Int) {
    let d = laneHalves512(q, stride, 0, g)
    var m = _mm512_setzero_ps()
    if F.fields == 2 {
        let second = laneHalves512(q, stride, 2 &* g, g)
        m = F.zeroPoint ? _mm512_fnmadd_ps(d, second, _mm512_setzero_ps()) : second
    }
    let codes = decodeCodes512(bits: F.bits, q + 2 &* F.fields &* g, stride, size: g)
    for b in 0..<batch.count {
        let x = batch.records[b] + record, lanes = x + 32 &* g
        var acc = F.offset != 0 ? broadcast256(lanes, Record.offsetTerm(F.offset)) : _mm512_setzero_si512()
        acc = dotCodes512(acc, codes, x, count: g)
        var sum = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), _mm512_mul_ps(d, broadcastFloat8(lanes, Record.d8)), batch.sums[b])
        if F.fields == 2 { sum = _mm512_fmadd_ps(m, broadcastFloat8(lanes, Record.s8), sum) }
        batch.sums[b] = sum
    }
}

/// `rowsLanes32` two rows at a time (rows i and i + rows / 2).
@inline(__always) func rowPairs32<F: Lane32>(_: F.Type, _ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int,
                                            _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
    withBatch512(v, count) { batch in
        let half = rows / 2, apart = half &* rowBytes, far = count >= batchPrefetchMinimumBatch
        for r in 0..<half {
            let row = w + r &* rowBytes
            prefetchRowPair(row + 2 &* rowBytes, rowBytes, apart, ahead: !far && r &+ 2 < half)
            forEachLaneGroup(blocks: cols / 32, blockBytes: F.blockBytes) { offset, g, record in
                prefetchAhead(row + offset, bytes: g &* F.blockBytes, far: far)
                prefetchAhead(row + (apart &+ offset), bytes: g &* F.blockBytes, far: far)
                group32x2(F.self, row + offset, apart, size: g, batch, record)
            }
            batch.finishRows(y + r, second: half, yStride)
        }
    }
    if rows & 1 == 1 { rowsLanes32(F.self, w + (rows &- 1) &* rowBytes, rowBytes, cols, 1, v, count, y + (rows &- 1), yStride) }
}

/// `rowsLanesK4` two rows at a time.
@inline(__always) func rowPairsK4(isQ5: Bool, _ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int,
                                  _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
    let bytes = isQ5 ? 176 : 144, bits = isQ5 ? 5 : 4
    withBatch512(v, count) { batch in
        let half = rows / 2, apart = half &* rowBytes, far = count >= batchPrefetchMinimumBatch
        for r in 0..<half {
            let row = w + r &* rowBytes
            prefetchRowPair(row + 2 &* rowBytes, rowBytes, apart, ahead: !far && r &+ 2 < half)
            for i in 0..<(cols / 256) {
                let q = row + i &* bytes, record = i &* (256 &+ Record.lanes)
                prefetchAhead(q, bytes: bytes, far: far)
                prefetchAhead(q + apart, bytes: bytes, far: far)
                let (scales0, mins0) = factorsK4(q), (scales1, mins1) = factorsK4(q + apart)
                let scales = pair(scales0, scales1), mins = pair(mins0, mins1)
                let codes = decodeCodes512(bits: bits, q + 16, apart, size: 8)
                for b in 0..<count {
                    let x = batch.records[b] + record, lanes = x + 256
                    let acc = dotCodes512(_mm512_setzero_si512(), codes, x, count: 8)
                    let sum = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), _mm512_mul_ps(scales, broadcastFloat8(lanes, Record.d8)), batch.sums[b])
                    batch.sums[b] = _mm512_fmadd_ps(mins, broadcastFloat8(lanes, Record.s8), sum)
                }
            }
            batch.finishRows(y + r, second: half, yStride)
        }
    }
    if rows & 1 == 1 { rowsLanesK4(isQ5: isQ5, w + (rows &- 1) &* rowBytes, rowBytes, cols, 1, v, count, y + (rows &- 1), yStride) }
}

/// `rowsLanesQ6K` two rows at a time.
@inline(__always) func rowPairsQ6K(_ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int,
                                   _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
    withBatch512(v, count) { batch in
        let half = rows / 2, apart = half &* rowBytes, far = count >= batchPrefetchMinimumBatch
        for r in 0..<half {
            let row = w + r &* rowBytes
            prefetchRowPair(row + 2 &* rowBytes, rowBytes, apart, ahead: !far && r &+ 2 < half)
            for i in 0..<(cols / 256) {
                let q = row + i &* 210, record = i &* (256 &+ Record.lanes)
                prefetchAhead(q, bytes: 210, far: far)
                prefetchAhead(q + apart, bytes: 210, far: far)
                let (first0, second0) = factorsQ6K(q), (first1, second1) = factorsQ6K(q + apart)
                let first = pair(first0, first1), second = pair(second0, second1)
                let c = decodeCodes512(bits: 6, q + 18, apart, size: 8)
                let z = _mm512_setzero_si512()
                let low = (c.0, c.1, c.2, c.3, z, z, z, z), high = (c.4, c.5, c.6, c.7, z, z, z, z)
                for b in 0..<count {
                    let x = batch.records[b] + record, lanes = x + 256
                    let a = dotCodes512(broadcast256(lanes, Record.offset32Low), low, x, count: 4)
                    let h = dotCodes512(broadcast256(lanes, Record.offset32High), high, x + 128, count: 4)
                    let t = _mm512_fmadd_ps(_mm512_cvtepi32_ps(h), second, _mm512_mul_ps(_mm512_cvtepi32_ps(a), first))
                    batch.sums[b] = _mm512_fmadd_ps(t, broadcastFloat8(lanes, Record.d8), batch.sums[b])
                }
            }
            batch.finishRows(y + r, second: half, yStride)
        }
    }
    if rows & 1 == 1 { rowsLanesQ6K(w + (rows &- 1) &* rowBytes, rowBytes, cols, 1, v, count, y + (rows &- 1), yStride) }
}
#endif
