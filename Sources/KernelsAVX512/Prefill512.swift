// The AVX-512 target's kernels for batches of 4 or more vectors (decode steps of several
// sequences, prefill's token tiles): four rows at a time, as two pairs of rows in 512-bit
// registers (the layout of Decode512.swift), so each activation load feeds both pairs
// (half the broadcasts per product of `rowPairs32`). Prefill's token tiles take four
// neighbouring rows (the piece's weights are in cache, read once per tile, and each
// vector's four results land in one cache line of its output row); a decode step, whose
// weights come from memory, takes rows a quarter of the call apart, four sequential
// streams each prefetched ahead (`prefetchAhead`): four neighbouring rows read side by
// side were streams the prefetchers did not follow (default model, B=4 step 30.6-31.9
// ms against the pairs' 17.7). Each lane's operations are those of `rowPairs32` and the
// 256-bit kernels (same integer sums, same f32 operations in the same order, each row
// summed by the same `hsum`): a row's results are bit for bit the decode kernels'.
#if arch(x86_64)
import KernelABI
import _Builtin_intrinsics.intel

/// Vectors per call from which `rowsQ*` take the four-row kernels. Zen 4, default model, 2
/// threads, 4 conversations at once (a C driver of test_engine's conversations, three
/// alternated runs of four): 175.0 tok/s through `rowPairs32` against 185.4 (BENCHMARKS.md).
let quadRowsMinimumBatch = 4

/// Vectors per call from which the four rows are neighbours: prefill's token tiles (at
/// least 16 tokens, Kernels' `int8TileMinimumTokens`).
let neighbourQuadsMinimumBatch = 16

/// Which rows a call's four-row kernels take: quad r is rows first(r) + j * step, j in
/// 0..<4 (neighbours for prefill's tiles, a quarter of the call apart for a decode step,
/// whose four streams are then prefetched ahead: `spread`).
struct QuadRows {
    let quads: Int
    let spread: Bool
    let step: Int

    init(rows: Int, count: Int) {
        quads = rows / 4
        spread = count < neighbourQuadsMinimumBatch
        step = spread ? quads : 1
    }

    func first(_ r: Int) -> Int { spread ? r : 4 &* r }
}

/// Per-vector state of the four-row kernels: each vector's records and accumulators.
struct Quad512 {
    let records: UnsafeMutablePointer<UnsafeRawPointer>   // [count]
    let sums: UnsafeMutablePointer<__m512>                // [count, 2]: [row r | r + 1], [row r + 2 | r + 3]
    let count: Int

    /// y[b * yStride + j * rowStep] = the sum of vector b for the quad's row j (j in 0..<4,
    /// rows rowStep apart); zeroes the sums for the next four rows. The four rows are
    /// summed side by side in the order of `hsum` (v_i + v_i+4 = x_i, then (x_0 + x_2) +
    /// (x_1 + x_3)), so each equals `hsum` of its row bit for bit.
    @inline(__always) func finishRows(_ y: UnsafeMutablePointer<Float>, _ yStride: Int, rowStep: Int) {
        // Lane permutations by index vectors (Swift cannot pass the immediates of the
        // shuffle intrinsics), lane 15 first.
        let swapHalves = _mm512_set_epi32(11, 10, 9, 8, 15, 14, 13, 12, 3, 2, 1, 0, 7, 6, 5, 4)
        let rowsX = _mm512_set_epi32(27, 26, 25, 24, 19, 18, 17, 16, 11, 10, 9, 8, 3, 2, 1, 0)
        let swapPairs = _mm512_set_epi32(13, 12, 15, 14, 9, 8, 11, 10, 5, 4, 7, 6, 1, 0, 3, 2)
        let swapNeighbours = _mm512_set_epi32(14, 15, 12, 13, 10, 11, 8, 9, 6, 7, 4, 5, 2, 3, 0, 1)
        let firstOfEachQuarter = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 8, 4, 0)
        for b in 0..<count {
            let first = sums[2 &* b], second = sums[2 &* b &+ 1]
            // Lanes 0...3 and 8...11 of each: its two rows' x_0...x_3.
            let firstX = _mm512_add_ps(first, _mm512_permutexvar_ps(swapHalves, first))
            let secondX = _mm512_add_ps(second, _mm512_permutexvar_ps(swapHalves, second))
            let x = _mm512_permutex2var_ps(firstX, rowsX, secondX)                // [row r + j: x_0...x_3] for j in 0..<4
            let pairs = _mm512_add_ps(x, _mm512_permutexvar_ps(swapPairs, x))     // lane 4 j: x_0 + x_2, 4 j + 1: x_1 + x_3
            let sums4 = _mm512_add_ps(pairs, _mm512_permutexvar_ps(swapNeighbours, pairs))
            let four = _mm512_castps512_ps128(_mm512_permutexvar_ps(firstOfEachQuarter, sums4))
            if rowStep == 1 { _mm_storeu_ps(y + b &* yStride, four) } else {
                let out = y + b &* yStride, high = _mm_movehl_ps(four, four)
                out[0] = _mm_cvtss_f32(four)
                out[rowStep] = _mm_cvtss_f32(_mm_movehdup_ps(four))
                out[2 &* rowStep] = _mm_cvtss_f32(high)
                out[3 &* rowStep] = _mm_cvtss_f32(_mm_movehdup_ps(high))
            }
            sums[2 &* b] = _mm512_setzero_ps()
            sums[2 &* b &+ 1] = _mm512_setzero_ps()
        }
    }
}

@inline(__always) func withQuad512(_ v: UnsafePointer<qe_vector>, _ count: Int, _ body: (Quad512) -> Void) {
    withUnsafeTemporaryAllocation(of: UnsafeRawPointer.self, capacity: count) { records in
        withUnsafeTemporaryAllocation(of: __m512.self, capacity: 2 &* count) { sums in
            for b in 0..<count { records[b] = UnsafeRawPointer(v[b].lanes!) }
            for i in 0..<(2 &* count) { sums[i] = _mm512_setzero_ps() }
            body(Quad512(records: records.baseAddress!, sums: sums.baseAddress!, count: count))
        }
    }
}

/// (first + Σ_{k < n} (code vector k of c) · x_k, second + the same for d), x_k the 32
/// bytes at x + 32 k in both halves, each loaded once for both pairs of rows.
@inline(__always) func dotCodes512x2(_ first: __m512i, _ c: CodeVectors512, _ second: __m512i, _ d: CodeVectors512,
                                     _ x: UnsafeRawPointer, count n: Int) -> (__m512i, __m512i) {
    @inline(__always) func dp(_ acc: __m512i, _ codes: __m512i, _ y: __m512i) -> __m512i {
        _mm512_maskz_dpbusd_epi32(0xFFFF, acc, codes, y)   // (_mm512_dpbusd_epi32 is a macro)
    }
    var a = first, b = second
    for k in 0..<n {
        let y = broadcast256(x, 32 &* k)
        a = dp(a, codeVector512(c, k), y)
        b = dp(b, codeVector512(d, k), y)
    }
    return (a, b)
}

/// `group32x2` for the same group of four rows: the pairs (q, q + rowBytes) and (third,
/// third + rowBytes).
@inline(__always) func group32x4<F: Lane32>(_: F.Type, _ q: UnsafeRawPointer, _ rowBytes: Int, _ third: UnsafeRawPointer, size g: Int,
                                            _ quad: Quad512, _ record: Int) {
    let d = laneHalves512(q, rowBytes, 0, g), e = laneHalves512(third, rowBytes, 0, g)
    var m = _mm512_setzero_ps(), n = _mm512_setzero_ps()
    if F.fields == 2 {
        let mq = laneHalves512(q, rowBytes, 2 &* g, g), nq = laneHalves512(third, rowBytes, 2 &* g, g)
        m = F.zeroPoint ? _mm512_fnmadd_ps(d, mq, _mm512_setzero_ps()) : mq
        n = F.zeroPoint ? _mm512_fnmadd_ps(e, nq, _mm512_setzero_ps()) : nq
    }
    let codesOffset = 2 &* F.fields &* g
    let codes = decodeCodes512(bits: F.bits, q + codesOffset, rowBytes, size: g)
    let codes3 = decodeCodes512(bits: F.bits, third + codesOffset, rowBytes, size: g)
    for b in 0..<quad.count {
        let x = quad.records[b] + record, lanes = x + 32 &* g
        let start = F.offset != 0 ? broadcast256(lanes, Record.offsetTerm(F.offset)) : _mm512_setzero_si512()
        let (acc, acc3) = dotCodes512x2(start, codes, start, codes3, x, count: g)
        let d8 = broadcastFloat8(lanes, Record.d8)
        var sum = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), _mm512_mul_ps(d, d8), quad.sums[2 &* b])
        var sum3 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc3), _mm512_mul_ps(e, d8), quad.sums[2 &* b &+ 1])
        if F.fields == 2 {
            let s8 = broadcastFloat8(lanes, Record.s8)
            sum = _mm512_fmadd_ps(m, s8, sum)
            sum3 = _mm512_fmadd_ps(n, s8, sum3)
        }
        quad.sums[2 &* b] = sum
        quad.sums[2 &* b &+ 1] = sum3
    }
}

/// `rowsLanes32` four rows at a time (neighbours, or a quarter of the call apart for
/// fewer than `neighbourQuadsMinimumBatch` vectors); the last rows % 4 by `rowPairs32`.
@inline(__always) func rowQuads32<F: Lane32>(_: F.Type, _ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int,
                                            _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
    let placed = QuadRows(rows: rows, count: count), apart = placed.step &* rowBytes
    withQuad512(v, count) { quad in
        for r in 0..<placed.quads {
            let row = w + placed.first(r) &* rowBytes
            forEachLaneGroup(blocks: cols / 32, blockBytes: F.blockBytes) { offset, g, record in
                for k in 0..<4 { prefetchAhead(row + (k &* apart &+ offset), bytes: g &* F.blockBytes, far: placed.spread) }
                group32x4(F.self, row + offset, apart, row + (2 &* apart &+ offset), size: g, quad, record)
            }
            quad.finishRows(y + placed.first(r), yStride, rowStep: placed.step)
        }
    }
    let done = 4 &* placed.quads
    if done < rows { rowPairs32(F.self, w + done &* rowBytes, rowBytes, cols, rows &- done, v, count, y + done, yStride) }
}

/// `rowsLanesK4` four rows at a time, placed as in `rowQuads32`; the last rows % 4 by
/// `rowPairsK4`.
@inline(__always) func rowQuadsK4(isQ5: Bool, _ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int,
                                  _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
    let bytes = isQ5 ? 176 : 144, bits = isQ5 ? 5 : 4
    let placed = QuadRows(rows: rows, count: count), apart = placed.step &* rowBytes
    withQuad512(v, count) { quad in
        for r in 0..<placed.quads {
            let row = w + placed.first(r) &* rowBytes
            for i in 0..<(cols / 256) {
                let q = row + i &* bytes, third = q + 2 &* apart, record = i &* (256 &+ Record.lanes)
                for k in 0..<4 { prefetchAhead(q + k &* apart, bytes: bytes, far: placed.spread) }
                let (scales0, mins0) = factorsK4(q), (scales1, mins1) = factorsK4(q + apart)
                let (scales2, mins2) = factorsK4(third), (scales3, mins3) = factorsK4(third + apart)
                let scales = pair(scales0, scales1), mins = pair(mins0, mins1)
                let scales23 = pair(scales2, scales3), mins23 = pair(mins2, mins3)
                let codes = decodeCodes512(bits: bits, q + 16, apart, size: 8)
                let codes23 = decodeCodes512(bits: bits, third + 16, apart, size: 8)
                for b in 0..<count {
                    let x = quad.records[b] + record, lanes = x + 256
                    let zero = _mm512_setzero_si512()
                    let (acc, acc23) = dotCodes512x2(zero, codes, zero, codes23, x, count: 8)
                    let d8 = broadcastFloat8(lanes, Record.d8), s8 = broadcastFloat8(lanes, Record.s8)
                    let sum = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), _mm512_mul_ps(scales, d8), quad.sums[2 &* b])
                    let sum23 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc23), _mm512_mul_ps(scales23, d8), quad.sums[2 &* b &+ 1])
                    quad.sums[2 &* b] = _mm512_fmadd_ps(mins, s8, sum)
                    quad.sums[2 &* b &+ 1] = _mm512_fmadd_ps(mins23, s8, sum23)
                }
            }
            quad.finishRows(y + placed.first(r), yStride, rowStep: placed.step)
        }
    }
    let done = 4 &* placed.quads
    if done < rows { rowPairsK4(isQ5: isQ5, w + done &* rowBytes, rowBytes, cols, rows &- done, v, count, y + done, yStride) }
}

/// `rowsLanesQ6K` four rows at a time, placed as in `rowQuads32`; the last rows % 4 by
/// `rowPairsQ6K`.
@inline(__always) func rowQuadsQ6K(_ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int,
                                   _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
    let placed = QuadRows(rows: rows, count: count), apart = placed.step &* rowBytes
    withQuad512(v, count) { quad in
        for r in 0..<placed.quads {
            let row = w + placed.first(r) &* rowBytes
            for i in 0..<(cols / 256) {
                let q = row + i &* 210, third = q + 2 &* apart, record = i &* (256 &+ Record.lanes)
                for k in 0..<4 { prefetchAhead(q + k &* apart, bytes: 210, far: placed.spread) }
                let (first0, second0) = factorsQ6K(q), (first1, second1) = factorsQ6K(q + apart)
                let (first2, second2) = factorsQ6K(third), (first3, second3) = factorsQ6K(third + apart)
                let first = pair(first0, first1), second = pair(second0, second1)
                let first23 = pair(first2, first3), second23 = pair(second2, second3)
                let c = decodeCodes512(bits: 6, q + 18, apart, size: 8)
                let c23 = decodeCodes512(bits: 6, third + 18, apart, size: 8)
                let z = _mm512_setzero_si512()
                let low = (c.0, c.1, c.2, c.3, z, z, z, z), high = (c.4, c.5, c.6, c.7, z, z, z, z)
                let low23 = (c23.0, c23.1, c23.2, c23.3, z, z, z, z), high23 = (c23.4, c23.5, c23.6, c23.7, z, z, z, z)
                for b in 0..<count {
                    let x = quad.records[b] + record, lanes = x + 256
                    let offsetLow = broadcast256(lanes, Record.offset32Low), offsetHigh = broadcast256(lanes, Record.offset32High)
                    let (a, a23) = dotCodes512x2(offsetLow, low, offsetLow, low23, x, count: 4)
                    let (h, h23) = dotCodes512x2(offsetHigh, high, offsetHigh, high23, x + 128, count: 4)
                    let t = _mm512_fmadd_ps(_mm512_cvtepi32_ps(h), second, _mm512_mul_ps(_mm512_cvtepi32_ps(a), first))
                    let t23 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(h23), second23, _mm512_mul_ps(_mm512_cvtepi32_ps(a23), first23))
                    let d8 = broadcastFloat8(lanes, Record.d8)
                    quad.sums[2 &* b] = _mm512_fmadd_ps(t, d8, quad.sums[2 &* b])
                    quad.sums[2 &* b &+ 1] = _mm512_fmadd_ps(t23, d8, quad.sums[2 &* b &+ 1])
                }
            }
            quad.finishRows(y + placed.first(r), yStride, rowStep: placed.step)
        }
    }
    let done = 4 &* placed.quads
    if done < rows { rowPairsQ6K(w + done &* rowBytes, rowBytes, cols, rows &- done, v, count, y + done, yStride) }
}
#endif
