import COpenBLAS
import KernelABI
#if canImport(Glibc)
import Glibc
#endif

// Matrix-vector (decode) and matrix-matrix (prefill) products: the threading and tiling
// around the kernels of a `KernelTable`, the same for every instruction set.

/// Dequantizes row `r` of `w` into out[cols]; also the embedding lookup.
public func dequantizeRow(_ w: WeightMatrix, row r: Int, into out: UnsafeMutablePointer<Float>, kernels: KernelTable) {
    kernels.dequantize(for: w)(w.row(r), w.cols, out)
}

/// y[rows] = W x[cols], output rows split over the pool.
public func matvec(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, pool: ThreadPool,
                   kernels: KernelTable, activations: QuantizedActivations? = nil) {
    matvec([w], x, count: 1, [y], pool: pool, kernels: kernels, activations: activations)
}

/// Y_i[count, rows_i] = X[count, cols] W_i^T by the decode kernels, for several matrices
/// sharing the input (q/k/v, gate/up) and `count` input vectors (one per sequence decoded
/// in the step): one job on the pool and one quantization of X (into `activations`, or a
/// temporary) for all. Each matrix's rows are decoded once for all vectors; each vector's
/// result equals what `count: 1` gives for it alone, bit for bit.
public func matvec(_ ws: [WeightMatrix], _ x: UnsafePointer<Float>, count: Int = 1, _ ys: [UnsafeMutablePointer<Float>],
                   pool: ThreadPool, kernels: KernelTable, activations: QuantizedActivations? = nil) {
    guard let cols = ws.first?.cols, count > 0 else { return }
    guard ws.allSatisfy({ $0.inputOrder == nil }) else {
        return inInputOrder(ws, x, ys, n: count) { ws, x, ys in
            matvec(ws, x, count: count, ys, pool: pool, kernels: kernels, activations: activations)
        }
    }
    let quantized = activations ?? QuantizedActivations(capacity: count * cols)
    quantized.prepare(x, count: count, cols: cols, forms: Set(ws.map { $0.type.activationForm }), kernels: kernels, pool: pool)
    let vectors = quantized.vectors
    // About 8 chunks per thread (multiples of 16 rows) over all matrices: enough to
    // balance, few enough that the shared work counter is not a point of contention.
    let totalRows = ws.reduce(0) { $0 + $1.rows }
    let chunk = max(16, (totalRows / (pool.threads * 8) + 15) / 16 * 16)
    let rowKernels = ws.map { kernels.rows(for: $0) }
    ys.withUnsafeBufferPointer { ys in
        rowKernels.withUnsafeBufferPointer { rowKernels in
            forEachRowPiece(of: ws, rowsPerPiece: chunk, pool: pool) { i, w, first, rows in
                rowKernels[i](w.row(first), w.rowBytes, w.cols, rows, vectors, count, ys[i] + first, w.rows)
            }
        }
    }
    withExtendedLifetime(quantized) {}
}

/// Rows of W dequantized per tile in `matmul`. For the table's GEMM about 192 KB of f32
/// (the tile stays in L2 while every token of the batch passes over it), a multiple of 4
/// in 4...64, and smaller when the job would otherwise have fewer than ~4 tiles per
/// thread (many cores, small matrices such as k and v); for OpenBLAS, which packs the
/// whole batch again for every call, a fixed 64.
func matmulTileRows(cols: Int, totalRows: Int, threads: Int, ownGEMM: Bool) -> Int {
    guard ownGEMM else { return openBLASTileRows }
    let cacheRows = max(4, min(64, (192 << 10) / (4 * max(cols, 1)) / 4 * 4))
    let balancedRows = max(4, totalRows / (4 * max(threads, 1)) / 4 * 4)
    return min(cacheRows, balancedRows)
}
/// 64 measured best of 64/128/256 (AVX2 path, 2 threads, pp512: 267/255/249 tok/s).
let openBLASTileRows = 64

/// Y[n, rows] = X[n, cols] W^T for a batch of n tokens (prefill).
public func matmul(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, n: Int, pool: ThreadPool,
                   kernels: KernelTable, activations: QuantizedActivations? = nil) {
    matmul([w], x, [y], n: n, pool: pool, kernels: kernels, activations: activations)
}

/// Y_i[n, rows_i] = X[n, cols] W_i^T for several matrices sharing the input (q/k/v,
/// gate/up), as one job on the pool (prefill). Quantized matrices go through the decode
/// kernels' int8 arithmetic (`matmulInt8`): each token's result is bit for bit what
/// `matvec` gives for it alone; those marked `refinedPrefill` (GPTQ) take each token's
/// int8 remainder through the same kernels too, or f32 products where the table's int8
/// dot is not the faster (`KernelTable.refinesPrefill`). Float matrices, or a call mixing
/// float and quantized ones, go through f32 products (`matmulFloat`).
public func matmul(_ ws: [WeightMatrix], _ x: UnsafePointer<Float>, _ ys: [UnsafeMutablePointer<Float>], n: Int, pool: ThreadPool,
                   kernels: KernelTable, activations: QuantizedActivations? = nil) {
    guard !ws.isEmpty, n > 0 else { return }
    guard ws.allSatisfy({ $0.inputOrder == nil }) else {
        return inInputOrder(ws, x, ys, n: n) { ws, x, ys in
            matmul(ws, x, ys, n: n, pool: pool, kernels: kernels, activations: activations)
        }
    }
    if ws.allSatisfy({ $0.type.activationForm == .q8 && (!$0.refinedPrefill || kernels.refinesPrefill) }) {
        let refined = ws.contains(where: \.refinedPrefill)
        matmulInt8(ws, x, ys, n: n, refined: refined, pool: pool, kernels: kernels,
                   activations: activations ?? QuantizedActivations(capacity: (refined ? 2 : 1) * n * ws[0].cols))
    } else {
        matmulFloat(ws, x, ys, n: n, pool: pool, kernels: kernels)
    }
}

/// Bytes of int8 activation records a token tile of `matmulInt8` may take: the tile is read
/// once per weight row, so it should stay in L1d (32-48 KB per core on AVX2 and AVX-512
/// CPUs). Measured on the default model (Xeon, AVX-512, 2 threads, pp512, a noisy VM, three
/// rounds): 8, 16, 20, 30, 32 and 40 KB alike within the noise, 160 and 640 KB ~15% slower.
let int8TileRecordBytes = 32 << 10
/// Tokens a tile of `matmulInt8` has at least, whatever the records' size: each weight group
/// is decoded once per tile, and the four-row kernels of AVX-512 read neighbouring rows from 16.
/// A wide input (ffn_down's 4,864 columns: 9 KB per token) would otherwise get tiles of 3-4
/// tokens. 16 tokens of such records (146 KB) stay in L2. Measured on the default model
/// (Xeon, AVX-512, 1 thread, pp512, three rounds): at least 4 tokens 145-166 tok/s, 8:
/// 171-188, 16: 180-194, 16 with 64 KB: 185-191, 32 with 128 KB: 164-193.
let int8TileMinimumTokens = 16

/// The int8 prefill product: X quantized once (every token's `qe_vector`, into
/// `activations`; with `refined`, each token's vector followed by its remainder's,
/// `QuantizedActivations.prepareRefined`), then W cut into pieces of rows spread over the
/// pool, each piece run over the batch in tiles of tokens whose records fit
/// `int8TileRecordBytes` (at least `int8TileMinimumTokens` tokens). Every piece-tile is one
/// call of the format's decode kernel (`KernelTable.rows`), which decodes each weight group
/// once for the tile's vectors; refined, a token's row is the sum of its two vectors' rows.
func matmulInt8(_ ws: [WeightMatrix], _ x: UnsafePointer<Float>, _ ys: [UnsafeMutablePointer<Float>], n: Int, refined: Bool,
                pool: ThreadPool, kernels: KernelTable, activations: QuantizedActivations) {
    let cols = ws[0].cols
    if refined {
        activations.prepareRefined(x, count: n, cols: cols, kernels: kernels, pool: pool)
    } else {
        activations.prepare(x, count: n, cols: cols, forms: [.q8], kernels: kernels, pool: pool)
    }
    let vectors = activations.vectors                                  // [n]; refined [2 n]: x_t at 2 t, its remainder at 2 t + 1
    let tileTokens = min(n, max(int8TileMinimumTokens, int8TileRecordBytes / Int(qe_lane_record_bytes(cols))))
    // Pieces of 8...64 rows, about 4 per thread.
    let totalRows = ws.reduce(0) { $0 + $1.rows }
    let pieceRows = max(8, min(64, totalRows / (pool.threads * 4) / 8 * 8))
    let rowKernels = ws.map { kernels.rows(for: $0) }
    ys.withUnsafeBufferPointer { ys in
        rowKernels.withUnsafeBufferPointer { rowKernels in
            forEachRowPiece(of: ws, rowsPerPiece: pieceRows, pool: pool) { i, w, first, rows in
                var t = 0
                while t < n {
                    let count = min(tileTokens, n &- t)
                    let y = ys[i] + (t &* w.rows &+ first)                // [count, w.rows] from row first
                    if refined {
                        withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 &* count &* rows) { pairs in   // [2 count, rows]
                            let p = pairs.baseAddress!
                            rowKernels[i](w.row(first), w.rowBytes, w.cols, rows, vectors + 2 &* t, 2 &* count, p, rows)
                            for b in 0..<count {
                                for r in 0..<rows { y[b &* w.rows &+ r] = p[2 &* b &* rows &+ r] + p[(2 &* b &+ 1) &* rows &+ r] }
                            }
                        }
                    } else {
                        rowKernels[i](w.row(first), w.rowBytes, w.cols, rows, vectors + t, count, y, w.rows)
                    }
                    t &+= count
                }
            }
        }
    }
    withExtendedLifetime(activations) {}
}

/// The f32 prefill product: tiles of each W dequantized to f32 by the table's kernels and
/// multiplied with the batch by the table's GEMM (or OpenBLAS sgemm, single-threaded,
/// where the table has none).
func matmulFloat(_ ws: [WeightMatrix], _ x: UnsafePointer<Float>, _ ys: [UnsafeMutablePointer<Float>], n: Int, pool: ThreadPool,
                 kernels: KernelTable) {
    let cols = ws[0].cols
    OpenBLAS.useOneThread()
    let gemm = kernels.gemm
    let tileRows = matmulTileRows(cols: cols, totalRows: ws.reduce(0) { $0 + $1.rows }, threads: pool.threads,
                                  ownGEMM: gemm != nil)
    let dequantizers = ws.map { kernels.dequantize(for: $0) }
    ys.withUnsafeBufferPointer { ys in
        dequantizers.withUnsafeBufferPointer { dequantizers in
            forEachRowPiece(of: ws, rowsPerPiece: tileRows, pool: pool) { i, w, first, count in
                let weights: UnsafePointer<Float>
                var scratch: UnsafeMutablePointer<Float>? = nil
                if w.type == .f32 {
                    weights = w.row(first).assumingMemoryBound(to: Float.self)
                } else {
                    let buffer = UnsafeMutablePointer<Float>.allocate(capacity: count * w.cols)  // [count, cols]
                    for r in 0..<count { dequantizers[i](w.row(first + r), w.cols, buffer + r * w.cols) }
                    scratch = buffer
                    weights = UnsafePointer(buffer)
                }
                if let gemm {
                    gemm(weights, count, x, n, w.cols, ys[i] + first, w.rows)
                } else {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(count), Int32(w.cols),
                                1, x, Int32(w.cols), weights, Int32(w.cols), 0, ys[i] + first, Int32(w.rows))
                }
                scratch?.deallocate()
            }
        }
    }
}

/// Runs `product` on matrices whose columns are in another order than the input
/// (`WeightMatrix.inputOrder`): the input X[n, cols] gathered into that order, and the
/// matrices passed on as plain ones; matrices of different orders one group at a time.
func inInputOrder(_ ws: [WeightMatrix], _ x: UnsafePointer<Float>, _ ys: [UnsafeMutablePointer<Float>], n: Int,
                  _ product: ([WeightMatrix], UnsafePointer<Float>, [UnsafeMutablePointer<Float>]) -> Void) {
    var remaining = Array(zip(ws, ys))
    while let first = remaining.first {
        let order = first.0.inputOrder
        let group = remaining.filter { $0.0.inputOrder == order }
        remaining.removeAll { $0.0.inputOrder == order }
        let plain = group.map { pair -> WeightMatrix in
            var w = pair.0
            w.inputOrder = nil
            return w
        }
        guard let order else {
            product(plain, x, group.map(\.1))
            continue
        }
        let cols = first.0.cols
        let gathered = UnsafeMutablePointer<Float>.allocate(capacity: n * cols)   // [n, cols]
        defer { gathered.deallocate() }
        for t in 0..<n {
            for j in 0..<cols { gathered[t &* cols &+ j] = x[t &* cols &+ Int(order[j])] }
        }
        product(plain, gathered, group.map(\.1))
    }
}

/// Calls body(matrix index, matrix, first row, row count) for every piece of at most
/// `rowsPerPiece` rows of every matrix in `ws`, spread over the pool (matvec's chunks,
/// matmul's tiles). The workers read plain buffers: touching Swift arrays from several
/// threads would make them contend on the arrays' reference counts, so callers pass
/// their per-matrix arrays as buffers too.
func forEachRowPiece(of ws: [WeightMatrix], rowsPerPiece: Int, pool: ThreadPool,
                     _ body: (Int, WeightMatrix, Int, Int) -> Void) {
    var pieces: [(Int, Int)] = []                          // (matrix, first row)
    for (i, w) in ws.enumerated() {
        for first in stride(from: 0, to: w.rows, by: rowsPerPiece) { pieces.append((i, first)) }
    }
    pieces.withUnsafeBufferPointer { pieces in
        ws.withUnsafeBufferPointer { ws in
            pool.parallelFor(pieces.count) { p in
                let (i, first) = pieces[p]
                let w = ws[i]
                body(i, w, first, min(rowsPerPiece, w.rows &- first))
            }
        }
    }
}

/// OpenBLAS keeps its own thread pool; ours splits the work, so it runs one thread.
enum OpenBLAS {
    static let configured: Bool = {
        useKernelsThisCPURuns()
        openblas_set_num_threads(1)
        return true
    }()
    static func useOneThread() { _ = configured }

    /// The cores of OpenBLAS's own kernel sets that lack AVX2 + FMA (its `corename`s).
    static let coresWithoutAVX2: Set<String> = [
        "prescott", "core2", "penryn", "dunnington", "nehalem", "sandybridge", "katmai", "coppermine",
        "northwood", "banias", "atom", "nano", "athlon", "opteron", "opteron_sse3", "barcelona", "bobcat", "bulldozer",
        "piledriver", "steamroller", "excavator",
    ]

    /// A DYNAMIC_ARCH OpenBLAS picks its kernels from the CPU model at start and falls back
    /// to SSE3 ("Prescott") on one newer than it knows: Debian 12's 0.3.21 does so on a
    /// Sapphire Rapids VM, where its prefill (then the AVX2 path's, now the generic
    /// path's) ran at 50-63 tok/s instead of 3x that.
    /// Where it chose a core without AVX2 and this CPU and OS run AVX2 + FMA, its core
    /// selection runs again (its exported `gotoblas_dynamic_quit` / `_init`) naming
    /// SkylakeX (AVX-512 F/BW/DQ/VL) or Haswell through OPENBLAS_CORETYPE, as if the user
    /// had set it; the variable is removed again. Not when the user set it.
    private static func useKernelsThisCPURuns() {
        guard getenv("OPENBLAS_CORETYPE") == nil, let name = openblas_get_corename(),
              coresWithoutAVX2.contains(String(cString: name).lowercased()) else { return }
        let features = qe_cpu_features()
        guard features & UInt32(QE_CPU_AVX2) != 0,
              let quit = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "gotoblas_dynamic_quit"),
              let initialize = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "gotoblas_dynamic_init") else { return }
        typealias Entry = @convention(c) () -> Void
        setenv("OPENBLAS_CORETYPE", features & UInt32(QE_CPU_AVX512) != 0 ? "SkylakeX" : "Haswell", 1)
        unsafeBitCast(quit, to: Entry.self)()
        unsafeBitCast(initialize, to: Entry.self)()
        unsetenv("OPENBLAS_CORETYPE")
    }
}
