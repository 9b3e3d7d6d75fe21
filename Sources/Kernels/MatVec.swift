import COpenBLAS
import KernelABI

// Matrix-vector (decode) and matrix-matrix (prefill) products: the threading and tiling
// around the kernels of a `KernelTable`, the same for every instruction set.

/// Dequantizes row `r` of `w` into out[cols]; also the embedding lookup.
public func dequantizeRow(_ w: WeightMatrix, row r: Int, into out: UnsafeMutablePointer<Float>, kernels: KernelTable = .active) {
    kernels.dequantize(for: w)(w.row(r), w.cols, out)
}

/// y[rows] = W x[cols], output rows split over the pool.
public func matvec(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, pool: ThreadPool,
                   kernels: KernelTable = .active, activations: QuantizedActivations? = nil) {
    matvec([w], x, [y], pool: pool, kernels: kernels, activations: activations)
}

/// y_i = W_i x for several matrices sharing the input x[cols] (q/k/v, gate/up): one job on
/// the pool and one quantization of x (into `activations`, or a temporary) for all.
public func matvec(_ ws: [WeightMatrix], _ x: UnsafePointer<Float>, _ ys: [UnsafeMutablePointer<Float>], pool: ThreadPool,
                   kernels: KernelTable = .active, activations: QuantizedActivations? = nil) {
    guard let cols = ws.first?.cols else { return }
    let quantized = activations ?? QuantizedActivations(capacity: cols)
    quantized.prepare(x, cols: cols, forms: Set(ws.map { $0.type.activationForm }), kernels: kernels)
    var vector = quantized.vector
    // About 8 chunks per thread (multiples of 16 rows) over all matrices, as (matrix,
    // first row) pairs: enough to balance, few enough that the shared work counter is
    // not a point of contention. The workers read plain buffers: touching the Swift
    // arrays from both threads would make them contend on the arrays' reference counts.
    let totalRows = ws.reduce(0) { $0 + $1.rows }
    let chunk = max(16, (totalRows / (pool.threads * 8) + 15) / 16 * 16)
    var starts: [(Int, Int)] = []
    for (i, w) in ws.enumerated() {
        for first in stride(from: 0, to: w.rows, by: chunk) { starts.append((i, first)) }
    }
    let rowKernels = ws.map { kernels.rows(for: $0) }
    withUnsafePointer(to: &vector) { v in
        starts.withUnsafeBufferPointer { starts in
            ws.withUnsafeBufferPointer { ws in
                ys.withUnsafeBufferPointer { ys in
                    rowKernels.withUnsafeBufferPointer { rowKernels in
                        pool.parallelFor(starts.count) { c in
                            let (i, first) = starts[c]
                            let w = ws[i]
                            rowKernels[i](w.row(first), w.rowBytes, w.cols, min(chunk, w.rows &- first), v, ys[i] + first)
                        }
                    }
                }
            }
        }
    }
    withExtendedLifetime(quantized) {}
}

/// Rows of W dequantized per tile in `matmul`. For the table's GEMM about 192 KB of f32
/// (the tile stays in L2 while every token of the batch passes over it), a multiple of 4
/// in 4...64; for OpenBLAS, which packs the whole batch again for every call, TILE rows.
func matmulTileRows(cols: Int, ownGEMM: Bool) -> Int {
    ownGEMM ? max(4, min(64, (192 << 10) / (4 * max(cols, 1)) / 4 * 4)) : openBLASTileRows
}
/// 64 measured best of 64/128/256 (AVX2 path, 2 threads, pp512: 267/255/249 tok/s).
let openBLASTileRows = 64

/// Y[n, rows] = X[n, cols] W^T for a batch of n tokens (prefill). Tiles of W are
/// dequantized to f32 by the table's kernels and multiplied with the batch by the table's
/// GEMM (or OpenBLAS sgemm, single-threaded, where the table has none); tiles are split
/// over the pool.
public func matmul(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, n: Int, pool: ThreadPool,
                   kernels: KernelTable = .active) {
    if n == 1 { return matvec(w, x, y, pool: pool, kernels: kernels) }
    OpenBLAS.useOneThread()
    let tileRows = matmulTileRows(cols: w.cols, ownGEMM: kernels.gemm != nil)
    let tiles = (w.rows + tileRows - 1) / tileRows
    let dequantize = kernels.dequantize(for: w)
    let gemm = kernels.gemm
    pool.parallelFor(tiles) { tile in
        let first = tile * tileRows
        let count = min(tileRows, w.rows - first)
        let weights: UnsafePointer<Float>
        var scratch: UnsafeMutablePointer<Float>? = nil
        if w.type == .f32 {
            weights = w.row(first).assumingMemoryBound(to: Float.self)
        } else {
            let buffer = UnsafeMutablePointer<Float>.allocate(capacity: count * w.cols)  // [count, cols]
            for r in 0..<count { dequantize(w.row(first + r), w.cols, buffer + r * w.cols) }
            scratch = buffer
            weights = UnsafePointer(buffer)
        }
        if let gemm {
            gemm(weights, count, x, n, w.cols, y + first, w.rows)
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(count), Int32(w.cols),
                        1, x, Int32(w.cols), weights, Int32(w.cols), 0, y + first, Int32(w.rows))
        }
        scratch?.deallocate()
    }
}

/// OpenBLAS keeps its own thread pool; ours splits the work, so it runs one thread.
enum OpenBLAS {
    static let configured: Bool = {
        openblas_set_num_threads(1)
        return true
    }()
    static func useOneThread() { _ = configured }
}
