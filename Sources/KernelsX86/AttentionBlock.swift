// Prefill attention, compiled into each x86 kernel target like X86Kernels.swift (each
// holds a symlink to this file). A block of queries that share one KV head (a prompt
// chunk's rows x the query heads of a GQA group) walks the cached positions in tiles of
// QE_ATTENTION_TILE with FlashAttention's online softmax: no score row of the whole
// length is kept, and each tile's keys and values are converted to f32 once (from f16 or
// Q8_0 rows) for every query of the block instead of once per query. Scores are computed
// 8 positions per register (16 on AVX-512, whose target also accumulates the outputs in
// zmm registers) against the keys transposed, so no horizontal sums.
// Kernels' `GenericKernels.attendBlock` is the scalar reference.
#if arch(x86_64)
import KernelABI
import _Builtin_intrinsics.intel

/// Converts cached rows [first, first + n) of one head (f16, or Q8_0 blocks when q8) to
/// f32: keysT[d * tile + j] (transposed) and values[j * headDim + d] for j in 0..<n.
@inline(__always) func loadAttentionTile(_ keys: UnsafeRawPointer, _ values: UnsafeRawPointer, _ rowBytes: Int, first: Int,
                                         _ n: Int, _ headDim: Int, q8: Bool,
                                         _ keysT: UnsafeMutablePointer<Float>, _ valuesOut: UnsafeMutablePointer<Float>) {
    let tile = Int(QE_ATTENTION_TILE)
    @inline(__always) func row8(_ row: UnsafeRawPointer, _ d: Int) -> __m256 {
        guard q8 else { return F16.load8(row, d) }
        let block = row + (d / 32) &* 34
        return _mm256_mul_ps(_mm256_set1_ps(loadHalf(block, 0)), loadInt8AsFloat8(block, 2 &+ d % 32))
    }
    @inline(__always) func key(_ j: Int) -> UnsafeRawPointer { keys + (first &+ j) &* rowBytes }
    @inline(__always) func bits(_ v: __m256) -> __m256i { _mm256_castps_si256(v) }
    // Keys, 8 positions x 8 dimensions at a time: one 8 x 8 transpose in registers.
    var whole = 0
    while whole &+ 8 <= n {
        var d = 0
        while d < headDim {
            let t = transpose8((bits(row8(key(whole), d)), bits(row8(key(whole &+ 1), d)), bits(row8(key(whole &+ 2), d)),
                                bits(row8(key(whole &+ 3), d)), bits(row8(key(whole &+ 4), d)), bits(row8(key(whole &+ 5), d)),
                                bits(row8(key(whole &+ 6), d)), bits(row8(key(whole &+ 7), d))))
            for l in 0..<8 { storeFloat8(keysT, (d &+ l) &* tile &+ whole, _mm256_castsi256_ps(codeVector(t, l))) }
            d &+= 8
        }
        whole &+= 8
    }
    for j in 0..<n {
        let value = values + (first &+ j) &* rowBytes
        var d = 0
        while d < headDim {
            storeFloat8(valuesOut, j &* headDim &+ d, row8(value, d))
            if j >= whole {                                   // the last n % 8 positions' keys, one by one
                withUnsafeTemporaryAllocation(of: Float.self, capacity: 8) { lanes in
                    storeFloat8(lanes.baseAddress!, 0, row8(key(j), d))
                    for l in 0..<8 { keysT[(d &+ l) &* tile &+ j] = lanes[l] }
                }
            }
            d &+= 8
        }
    }
}

/// scores[0 ..< 8 g] = q · keys of the tile's positions 0 ..< 8 g (g groups of 8, g <= 8),
/// from the transposed keys (on AVX-512, 16 positions per register: up to 8 more
/// positions' scores past 8 g are written too, from whatever the tile holds there).
@inline(__always) func tileScores(_ q: UnsafePointer<Float>, _ keysT: UnsafePointer<Float>, _ headDim: Int, groups g: Int,
                                  _ scores: UnsafeMutablePointer<Float>) {
    let tile = Int(QE_ATTENTION_TILE)
    #if QWEN_DOT_AVX512VNNI
    // Up to 64 positions in four zmm accumulators, one pass over the dimensions; the count
    // of registers a constant in each loop (no test per dimension).
    @inline(__always) func pass(_ registers: Int) {
        let z = _mm512_setzero_ps()
        var a = (z, z, z, z)
        for d in 0..<headDim {
            let qd = _mm512_set1_ps(q[d]), k = keysT + d &* tile
            a.0 = _mm512_fmadd_ps(qd, _mm512_loadu_ps(k), a.0)
            if registers > 1 { a.1 = _mm512_fmadd_ps(qd, _mm512_loadu_ps(k + 16), a.1) }
            if registers > 2 { a.2 = _mm512_fmadd_ps(qd, _mm512_loadu_ps(k + 32), a.2) }
            if registers > 3 { a.3 = _mm512_fmadd_ps(qd, _mm512_loadu_ps(k + 48), a.3) }
        }
        _mm512_storeu_ps(scores, a.0)
        if registers > 1 { _mm512_storeu_ps(scores + 16, a.1) }
        if registers > 2 { _mm512_storeu_ps(scores + 32, a.2) }
        if registers > 3 { _mm512_storeu_ps(scores + 48, a.3) }
    }
    switch (g &+ 1) / 2 {
    case 1: pass(1)
    case 2: pass(2)
    case 3: pass(3)
    default: pass(4)
    }
    #else
    var start = 0
    while start < g {
        // Four groups (32 positions) per pass over the dimensions.
        let z = _mm256_setzero_ps()
        var a = (z, z, z, z)
        let width = min(4, g &- start)
        for d in 0..<headDim {
            let qd = _mm256_set1_ps(q[d]), k = keysT + (d &* tile &+ 8 &* start)
            a.0 = _mm256_fmadd_ps(qd, loadFloat8(k, 0), a.0)
            if width > 1 { a.1 = _mm256_fmadd_ps(qd, loadFloat8(k, 8), a.1) }
            if width > 2 { a.2 = _mm256_fmadd_ps(qd, loadFloat8(k, 16), a.2) }
            if width > 3 { a.3 = _mm256_fmadd_ps(qd, loadFloat8(k, 24), a.3) }
        }
        let s = scores + 8 &* start
        storeFloat8(s, 0, a.0)
        if width > 1 { storeFloat8(s, 8, a.1) }
        if width > 2 { storeFloat8(s, 16, a.2) }
        if width > 3 { storeFloat8(s, 24, a.3) }
        start &+= 4
    }
    #endif
}

/// One query's online-softmax step over a tile's first `valid` positions: scores become
/// e^(score - new maximum), the running sum and output (out[headDim]) are rescaled by
/// e^(old - new maximum) and take the tile's terms.
@inline(__always) func accumulateTile(_ scores: UnsafeMutablePointer<Float>, valid: Int, _ values: UnsafePointer<Float>,
                                      _ headDim: Int, maximum: inout Float, sum: inout Float, _ out: UnsafeMutablePointer<Float>) {
    // The maximum 8 scores per register (a scalar max per score made a chain of compares
    // as long as the tile's own products).
    var maxima = _mm256_set1_ps(-.infinity), j = 0
    while j &+ 8 <= valid { maxima = _mm256_max_ps(maxima, loadFloat8(scores, j)); j &+= 8 }
    var tileMaximum = hmax(maxima)
    while j < valid { tileMaximum = max(tileMaximum, scores[j]); j &+= 1 }
    let newMaximum = max(maximum, tileMaximum)
    let factor = maximum == -.infinity ? 0 : _mm_cvtss_f32(_mm256_castps256_ps128(exp8(_mm256_set1_ps(maximum - newMaximum))))
    sum = sum * factor + exponentiate(scores, valid, maximum: newMaximum)   // scores[j] = e^(score - newMaximum)
    maximum = newMaximum
    #if QWEN_DOT_AVX512VNNI
    // 64 output values (32 for a last part of 32) in zmm registers over the tile's
    // positions; the width a constant in each loop.
    let scale = _mm512_set1_ps(factor)
    @inline(__always) func part(_ o: UnsafeMutablePointer<Float>, _ v: UnsafePointer<Float>, wide: Bool) {
        var a = (_mm512_mul_ps(scale, _mm512_loadu_ps(o)), _mm512_mul_ps(scale, _mm512_loadu_ps(o + 16)),
                 wide ? _mm512_mul_ps(scale, _mm512_loadu_ps(o + 32)) : _mm512_setzero_ps(),
                 wide ? _mm512_mul_ps(scale, _mm512_loadu_ps(o + 48)) : _mm512_setzero_ps())
        for j in 0..<valid {
            let p = _mm512_set1_ps(scores[j]), row = v + j &* headDim
            a.0 = _mm512_fmadd_ps(p, _mm512_loadu_ps(row), a.0)
            a.1 = _mm512_fmadd_ps(p, _mm512_loadu_ps(row + 16), a.1)
            if wide {
                a.2 = _mm512_fmadd_ps(p, _mm512_loadu_ps(row + 32), a.2)
                a.3 = _mm512_fmadd_ps(p, _mm512_loadu_ps(row + 48), a.3)
            }
        }
        _mm512_storeu_ps(o, a.0)
        _mm512_storeu_ps(o + 16, a.1)
        if wide {
            _mm512_storeu_ps(o + 32, a.2)
            _mm512_storeu_ps(o + 48, a.3)
        }
    }
    var d = 0
    while headDim &- d >= 64 { part(out + d, values + d, wide: true); d &+= 64 }
    if d < headDim { part(out + d, values + d, wide: false) }
    #else
    let scale = _mm256_set1_ps(factor)
    var d = 0
    while d < headDim {
        // 32 output values in registers over the tile's positions (headDim a multiple of 32).
        var a = (_mm256_mul_ps(scale, loadFloat8(out, d)), _mm256_mul_ps(scale, loadFloat8(out, d &+ 8)),
                 _mm256_mul_ps(scale, loadFloat8(out, d &+ 16)), _mm256_mul_ps(scale, loadFloat8(out, d &+ 24)))
        for j in 0..<valid {
            let p = _mm256_set1_ps(scores[j]), v = values + (j &* headDim &+ d)
            a.0 = _mm256_fmadd_ps(p, loadFloat8(v, 0), a.0)
            a.1 = _mm256_fmadd_ps(p, loadFloat8(v, 8), a.1)
            a.2 = _mm256_fmadd_ps(p, loadFloat8(v, 16), a.2)
            a.3 = _mm256_fmadd_ps(p, loadFloat8(v, 24), a.3)
        }
        storeFloat8(out, d, a.0)
        storeFloat8(out, d &+ 8, a.1)
        storeFloat8(out, d &+ 16, a.2)
        storeFloat8(out, d &+ 24, a.3)
        d &+= 32
    }
    #endif
}

extension X86Kernels {
    /// Causal attention of `count` queries sharing one KV head, tiled over positions with
    /// an online softmax: outs[i][headDim] = softmax(queries[i] · keys[0 ..< lengths[i]]) ·
    /// values[0 ..< lengths[i]] for f16 rows, or Q8_0 rows when q8 (headDim a multiple of
    /// 32; keys/values and rowBytes as for `attendHeads`; scratch:
    /// qe_attend_block_scratch(count, headDim) floats).
    @inline(never) public static func attendBlock(_ queries: UnsafePointer<UnsafePointer<Float>>,
                                                  _ outs: UnsafePointer<UnsafeMutablePointer<Float>>,
                                                  _ lengths: UnsafePointer<Int>, _ count: Int,
                                                  _ keys: UnsafeRawPointer, _ values: UnsafeRawPointer, _ rowBytes: Int,
                                                  _ headDim: Int, _ q8: Bool, _ scratch: UnsafeMutablePointer<Float>) {
        let tile = Int(QE_ATTENTION_TILE)
        let keysT = scratch                                   // [headDim, tile]
        let tileValues = keysT + headDim &* tile              // [tile, headDim]
        let scores = tileValues + tile &* headDim             // [tile]
        let maxima = scores + tile                            // [count]
        let sums = maxima + count                             // [count]
        let acc = sums + count                                // [count, headDim]
        var longest = 0
        for i in 0..<count {
            longest = max(longest, lengths[i])
            maxima[i] = -.infinity
            sums[i] = 0
        }
        acc.initialize(repeating: 0, count: count &* headDim)
        var first = 0
        while first < longest {
            let n = min(tile, longest &- first)
            loadAttentionTile(keys, values, rowBytes, first: first, n, headDim, q8: q8, keysT, tileValues)
            for i in 0..<count {
                let valid = min(lengths[i] &- first, n)
                guard valid > 0 else { continue }
                tileScores(queries[i], keysT, headDim, groups: (valid &+ 7) / 8, scores)
                accumulateTile(scores, valid: valid, tileValues, headDim, maximum: &maxima[i], sum: &sums[i], acc + i &* headDim)
            }
            first &+= n
        }
        for i in 0..<count {
            let inverse = _mm256_set1_ps(1 / sums[i]), out = outs[i], row = acc + i &* headDim
            var d = 0
            while d < headDim { storeFloat8(out, d, _mm256_mul_ps(inverse, loadFloat8(row, d))); d &+= 8 }
        }
    }
}
#endif
