// Prefill attention, compiled into each x86 kernel target like X86Kernels.swift (each
// holds a symlink to this file). A block of queries that share one KV head (a prompt
// chunk's rows x the query heads of a GQA group) walks the cached positions in tiles of
// QE_ATTENTION_TILE with FlashAttention's online softmax: no score row of the whole
// length is kept, and each tile's keys and values are converted to f32 once (from f16 or
// Q8_0 rows) for every query of the block instead of once per query. Scores are computed
// 8 positions per register (16 on AVX-512, whose target also accumulates the outputs in
// zmm registers) against the keys transposed, so no horizontal sums. Queries that all
// cover a tile go through it together, four on AVX-512 and two on the 256-bit targets
// (16 registers), each key and value load feeding all of them (one query's pass loaded a
// register per FMA), with each query's arithmetic unchanged: a query's result never
// depends on its block.
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
/// e^(score - new maximum) and the running sum is rescaled by e^(old - new maximum) and takes
/// them; returns that factor, by which the query's output sums are to be rescaled.
@inline(__always) func softmaxStep(_ scores: UnsafeMutablePointer<Float>, valid: Int, maximum: inout Float, sum: inout Float) -> Float {
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
    return factor
}

/// One query's online-softmax step over a tile's first `valid` positions (`softmaxStep`),
/// then its output out[headDim] rescaled and the tile's values added, weighted by the
/// scores.
@inline(__always) func accumulateTile(_ scores: UnsafeMutablePointer<Float>, valid: Int, _ values: UnsafePointer<Float>,
                                      _ headDim: Int, maximum: inout Float, sum: inout Float, _ out: UnsafeMutablePointer<Float>) {
    let factor = softmaxStep(scores, valid: valid, maximum: &maximum, sum: &sum)
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

#if QWEN_DOT_AVX512VNNI
/// `tileScores` of four queries over one tile: each key load feeds the four queries' FMAs
/// (one query's pass loads a key register per FMA); each query's lanes take the same FMAs
/// in the same order, so its scores are `tileScores`' bit for bit. scores: [4, tile].
@inline(__always) func tileScoresFour(_ q: UnsafePointer<UnsafePointer<Float>>, _ keysT: UnsafePointer<Float>, _ headDim: Int,
                                      groups g: Int, _ scores: UnsafeMutablePointer<Float>) {
    let tile = Int(QE_ATTENTION_TILE)
    let q0 = q[0], q1 = q[1], q2 = q[2], q3 = q[3]
    @inline(__always) func pass(_ registers: Int) {
        let z = _mm512_setzero_ps()
        var a = (z, z, z, z), b = a, c = a, e = a                       // queries 0...3: positions 0-15 ... 48-63
        for d in 0..<headDim {
            let k = keysT + d &* tile
            let k0 = _mm512_loadu_ps(k), k1 = registers > 1 ? _mm512_loadu_ps(k + 16) : z
            let k2 = registers > 2 ? _mm512_loadu_ps(k + 32) : z, k3 = registers > 3 ? _mm512_loadu_ps(k + 48) : z
            @inline(__always) func add(_ x: inout (__m512, __m512, __m512, __m512), _ qd: Float) {
                let s = _mm512_set1_ps(qd)
                x.0 = _mm512_fmadd_ps(s, k0, x.0)
                if registers > 1 { x.1 = _mm512_fmadd_ps(s, k1, x.1) }
                if registers > 2 { x.2 = _mm512_fmadd_ps(s, k2, x.2) }
                if registers > 3 { x.3 = _mm512_fmadd_ps(s, k3, x.3) }
            }
            add(&a, q0[d]); add(&b, q1[d]); add(&c, q2[d]); add(&e, q3[d])
        }
        @inline(__always) func store(_ x: (__m512, __m512, __m512, __m512), _ out: UnsafeMutablePointer<Float>) {
            _mm512_storeu_ps(out, x.0)
            if registers > 1 { _mm512_storeu_ps(out + 16, x.1) }
            if registers > 2 { _mm512_storeu_ps(out + 32, x.2) }
            if registers > 3 { _mm512_storeu_ps(out + 48, x.3) }
        }
        store(a, scores); store(b, scores + tile); store(c, scores + 2 &* tile); store(e, scores + 3 &* tile)
    }
    switch (g &+ 1) / 2 {
    case 1: pass(1)
    case 2: pass(2)
    case 3: pass(3)
    default: pass(4)
    }
}

/// `accumulateTile` of four queries over the same `valid` positions: each query's softmax
/// step (maxima[4], sums[4]), then the four outputs (out[4, headDim]) rescaled and the
/// tile's values added, each value load feeding the four queries' FMAs; per query the
/// operations of `accumulateTile` in its order (scores: [4, tile]).
@inline(__always) func accumulateTileFour(_ scores: UnsafeMutablePointer<Float>, valid: Int, _ values: UnsafePointer<Float>,
                                          _ headDim: Int, maxima: UnsafeMutablePointer<Float>, sums: UnsafeMutablePointer<Float>,
                                          _ out: UnsafeMutablePointer<Float>) {
    let tile = Int(QE_ATTENTION_TILE)
    let s0 = scores, s1 = scores + tile, s2 = s1 + tile, s3 = s2 + tile
    let factors = (softmaxStep(s0, valid: valid, maximum: &maxima[0], sum: &sums[0]),
                   softmaxStep(s1, valid: valid, maximum: &maxima[1], sum: &sums[1]),
                   softmaxStep(s2, valid: valid, maximum: &maxima[2], sum: &sums[2]),
                   softmaxStep(s3, valid: valid, maximum: &maxima[3], sum: &sums[3]))
    let o0 = out, o1 = out + headDim, o2 = o1 + headDim, o3 = o2 + headDim
    // 64 output values of each query (32 for a last part of 32) in zmm registers over the
    // positions; the width a constant in each loop.
    @inline(__always) func part(_ d: Int, wide: Bool) {
        let z = _mm512_setzero_ps()
        @inline(__always) func start(_ o: UnsafeMutablePointer<Float>, _ factor: Float) -> (__m512, __m512, __m512, __m512) {
            let scale = _mm512_set1_ps(factor)
            return (_mm512_mul_ps(scale, _mm512_loadu_ps(o)), _mm512_mul_ps(scale, _mm512_loadu_ps(o + 16)),
                    wide ? _mm512_mul_ps(scale, _mm512_loadu_ps(o + 32)) : z, wide ? _mm512_mul_ps(scale, _mm512_loadu_ps(o + 48)) : z)
        }
        var a = start(o0 + d, factors.0), b = start(o1 + d, factors.1)
        var c = start(o2 + d, factors.2), e = start(o3 + d, factors.3)
        for j in 0..<valid {
            let row = values + (j &* headDim &+ d)
            let r0 = _mm512_loadu_ps(row), r1 = _mm512_loadu_ps(row + 16)
            let r2 = wide ? _mm512_loadu_ps(row + 32) : z, r3 = wide ? _mm512_loadu_ps(row + 48) : z
            @inline(__always) func add(_ x: inout (__m512, __m512, __m512, __m512), _ score: Float) {
                let p = _mm512_set1_ps(score)
                x.0 = _mm512_fmadd_ps(p, r0, x.0)
                x.1 = _mm512_fmadd_ps(p, r1, x.1)
                if wide {
                    x.2 = _mm512_fmadd_ps(p, r2, x.2)
                    x.3 = _mm512_fmadd_ps(p, r3, x.3)
                }
            }
            add(&a, s0[j]); add(&b, s1[j]); add(&c, s2[j]); add(&e, s3[j])
        }
        @inline(__always) func store(_ x: (__m512, __m512, __m512, __m512), _ o: UnsafeMutablePointer<Float>) {
            _mm512_storeu_ps(o, x.0)
            _mm512_storeu_ps(o + 16, x.1)
            if wide {
                _mm512_storeu_ps(o + 32, x.2)
                _mm512_storeu_ps(o + 48, x.3)
            }
        }
        store(a, o0 + d); store(b, o1 + d); store(c, o2 + d); store(e, o3 + d)
    }
    var d = 0
    while headDim &- d >= 64 { part(d, wide: true); d &+= 64 }
    if d < headDim { part(d, wide: false) }
}
#endif

#if !QWEN_DOT_AVX512VNNI
/// `tileScores` of two queries over one tile (256-bit targets: 16 registers hold two
/// queries' four accumulators each): each key load feeds both queries' FMAs; each query's
/// lanes take the same FMAs in the same order, so its scores are `tileScores`' bit for
/// bit. scores: [2, tile].
@inline(__always) func tileScoresTwo(_ q: UnsafePointer<UnsafePointer<Float>>, _ keysT: UnsafePointer<Float>, _ headDim: Int,
                                     groups g: Int, _ scores: UnsafeMutablePointer<Float>) {
    let tile = Int(QE_ATTENTION_TILE)
    let q0 = q[0], q1 = q[1]
    var start = 0
    while start < g {
        let z = _mm256_setzero_ps()
        var a = (z, z, z, z), b = a                                     // queries 0, 1: four groups of 8 positions
        let width = min(4, g &- start)
        for d in 0..<headDim {
            let k = keysT + (d &* tile &+ 8 &* start)
            let k0 = loadFloat8(k, 0), k1 = width > 1 ? loadFloat8(k, 8) : z
            let k2 = width > 2 ? loadFloat8(k, 16) : z, k3 = width > 3 ? loadFloat8(k, 24) : z
            @inline(__always) func add(_ x: inout (__m256, __m256, __m256, __m256), _ qd: Float) {
                let s = _mm256_set1_ps(qd)
                x.0 = _mm256_fmadd_ps(s, k0, x.0)
                if width > 1 { x.1 = _mm256_fmadd_ps(s, k1, x.1) }
                if width > 2 { x.2 = _mm256_fmadd_ps(s, k2, x.2) }
                if width > 3 { x.3 = _mm256_fmadd_ps(s, k3, x.3) }
            }
            add(&a, q0[d]); add(&b, q1[d])
        }
        @inline(__always) func store(_ x: (__m256, __m256, __m256, __m256), _ s: UnsafeMutablePointer<Float>) {
            storeFloat8(s, 0, x.0)
            if width > 1 { storeFloat8(s, 8, x.1) }
            if width > 2 { storeFloat8(s, 16, x.2) }
            if width > 3 { storeFloat8(s, 24, x.3) }
        }
        store(a, scores + 8 &* start); store(b, scores + (tile &+ 8 &* start))
        start &+= 4
    }
}

/// `accumulateTile` of two queries over the same `valid` positions (256-bit targets): each
/// query's softmax step (maxima[2], sums[2]), then both outputs (out[2, headDim]) rescaled
/// and the tile's values added 32 at a time, each value load feeding both queries' FMAs;
/// per query the operations of `accumulateTile` in its order (scores: [2, tile]).
@inline(__always) func accumulateTileTwo(_ scores: UnsafeMutablePointer<Float>, valid: Int, _ values: UnsafePointer<Float>,
                                         _ headDim: Int, maxima: UnsafeMutablePointer<Float>, sums: UnsafeMutablePointer<Float>,
                                         _ out: UnsafeMutablePointer<Float>) {
    let tile = Int(QE_ATTENTION_TILE)
    let s0 = scores, s1 = scores + tile, o0 = out, o1 = out + headDim
    let scale0 = _mm256_set1_ps(softmaxStep(s0, valid: valid, maximum: &maxima[0], sum: &sums[0]))
    let scale1 = _mm256_set1_ps(softmaxStep(s1, valid: valid, maximum: &maxima[1], sum: &sums[1]))
    var d = 0
    while d < headDim {
        @inline(__always) func start(_ o: UnsafeMutablePointer<Float>, _ scale: __m256) -> (__m256, __m256, __m256, __m256) {
            (_mm256_mul_ps(scale, loadFloat8(o, d)), _mm256_mul_ps(scale, loadFloat8(o, d &+ 8)),
             _mm256_mul_ps(scale, loadFloat8(o, d &+ 16)), _mm256_mul_ps(scale, loadFloat8(o, d &+ 24)))
        }
        var a = start(o0, scale0), b = start(o1, scale1)
        for j in 0..<valid {
            let v = values + (j &* headDim &+ d)
            let r0 = loadFloat8(v, 0), r1 = loadFloat8(v, 8), r2 = loadFloat8(v, 16), r3 = loadFloat8(v, 24)
            @inline(__always) func add(_ x: inout (__m256, __m256, __m256, __m256), _ score: Float) {
                let p = _mm256_set1_ps(score)
                x.0 = _mm256_fmadd_ps(p, r0, x.0)
                x.1 = _mm256_fmadd_ps(p, r1, x.1)
                x.2 = _mm256_fmadd_ps(p, r2, x.2)
                x.3 = _mm256_fmadd_ps(p, r3, x.3)
            }
            add(&a, s0[j]); add(&b, s1[j])
        }
        @inline(__always) func store(_ x: (__m256, __m256, __m256, __m256), _ o: UnsafeMutablePointer<Float>) {
            storeFloat8(o, d, x.0)
            storeFloat8(o, d &+ 8, x.1)
            storeFloat8(o, d &+ 16, x.2)
            storeFloat8(o, d &+ 24, x.3)
        }
        store(a, o0); store(b, o1)
        d &+= 32
    }
}
#endif

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
        let scores = tileValues + tile &* headDim             // [4, tile]: one query's, or four's side by side
        let maxima = scores + 4 &* tile                       // [count]
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
            var i = 0
            while i < count {
                #if QWEN_DOT_AVX512VNNI
                // Four queries that all take the whole tile go together (every tile of a
                // long prompt but the last few).
                if i &+ 4 <= count, lengths[i] &- first >= n, lengths[i &+ 1] &- first >= n, lengths[i &+ 2] &- first >= n,
                   lengths[i &+ 3] &- first >= n {
                    tileScoresFour(queries + i, keysT, headDim, groups: (n &+ 7) / 8, scores)
                    accumulateTileFour(scores, valid: n, tileValues, headDim, maxima: maxima + i, sums: sums + i, acc + i &* headDim)
                    i &+= 4
                    continue
                }
                #else
                // Two such queries go together on the 256-bit targets.
                if i &+ 2 <= count, lengths[i] &- first >= n, lengths[i &+ 1] &- first >= n {
                    tileScoresTwo(queries + i, keysT, headDim, groups: (n &+ 7) / 8, scores)
                    accumulateTileTwo(scores, valid: n, tileValues, headDim, maxima: maxima + i, sums: sums + i, acc + i &* headDim)
                    i &+= 2
                    continue
                }
                #endif
                let valid = min(lengths[i] &- first, n)
                if valid > 0 {
                    tileScores(queries[i], keysT, headDim, groups: (valid &+ 7) / 8, scores)
                    accumulateTile(scores, valid: valid, tileValues, headDim, maximum: &maxima[i], sum: &sums[i], acc + i &* headDim)
                }
                i &+= 1
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
