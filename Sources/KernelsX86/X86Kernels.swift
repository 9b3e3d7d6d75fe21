// The x86 kernels, written once with 256-bit intrinsics and compiled three times: into
// KernelsAVX2 (-target-cpu haswell), KernelsAVXVNNI (alderlake, QWEN_DOT_AVXVNNI) and
// KernelsAVX512 (cascadelake, QWEN_DOT_AVX512VNNI); each of those targets holds a
// symlink to every file of Sources/KernelsX86. Only the byte dot product (`dotCodes`)
// and `fifthBits` differ between them: AVX2 multiplies bytes with vpmaddubsw + vpmaddwd,
// the VNNI targets with one vpdpbusd; the AVX-512 target adds its zmm kernels
// (Decode512, Prefill512, GEMM512).
//
// Everything here is self-contained: raw pointers in, raw pointers out, no Swift code
// shared with another module, entry points (`X86Kernels`) reached only through the
// kernel table in `Kernels`. Decode reads quantized weights in the interleaved layout
// (Kernels/Interleave.swift) against int8 activations in the same order (`qe_vector`'s
// lane records: one scale per 32 values), and a batch of vectors at once: each group of
// codes is decoded once and used for every vector (InterleavedDecode.swift). ggml's
// layouts (ggml-common.h) are only dequantized (embedding rows, Dequantize.swift); the
// scalar references in Kernels/Formats say what each kernel computes.
#if arch(x86_64)
import KernelABI
import _Builtin_intrinsics.intel

// MARK: Entry points (reached only through Kernels' table)

/// Decode of rows times a batch of vectors: (first row, rowBytes, cols, rows, v, count, y,
/// yStride) -> y[b * yStride + r] = dot(row r, v[b]) (Kernels' `RowsKernel`).
public typealias RowsEntry = (UnsafeRawPointer, Int, Int, Int, UnsafePointer<qe_vector>, Int, UnsafeMutablePointer<Float>, Int) -> Void
/// One row dequantized: (row, cols, out[cols]) (Kernels' `DequantizeKernel`).
public typealias DequantizeEntry = (UnsafeRawPointer, Int, UnsafeMutablePointer<Float>) -> Void
/// One format's kernels on this instruction set:
///   rows:                  decode of rows in ggml's layout (the float formats; nil for the
///                          quantized ones, which the engine repacks and reads interleaved)
///   dequantize:            a row in ggml's layout (embedding rows, float prefill tiles)
///   interleavedRows:       decode of rows in the interleaved layout (quantized formats)
///   interleavedDequantize: a row in the interleaved layout
public typealias FormatEntries = (rows: RowsEntry?, dequantize: DequantizeEntry,
                                  interleavedRows: RowsEntry?, interleavedDequantize: DequantizeEntry?)

/// Decode of interleaved rows of a 32-value-block format: on AVX-512 four rows at a time
/// for batches of `quadRowsMinimumBatch` or more vectors (Prefill512.swift), else two rows
/// per 512-bit register (Decode512.swift) for batches of `rowPairsMinimumBatch` or more,
/// the 256-bit kernels below otherwise (all three give the same results bit for bit).
@inline(__always) func decodeRows32<F: Lane32>(_: F.Type, _ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int,
                                               _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
    #if QWEN_DOT_AVX512VNNI
    if count >= quadRowsMinimumBatch { rowQuads32(F.self, w, rowBytes, cols, rows, v, count, y, yStride) }
    else if count >= rowPairsMinimumBatch { rowPairs32(F.self, w, rowBytes, cols, rows, v, count, y, yStride) }
    else { rowsLanes32(F.self, w, rowBytes, cols, rows, v, count, y, yStride) }
    #else
    rowsLanes32(F.self, w, rowBytes, cols, rows, v, count, y, yStride)
    #endif
}

/// The same for Q4_K (isQ5 false) and Q5_K.
@inline(__always) func decodeRowsK4(isQ5: Bool, _ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int,
                                    _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
    #if QWEN_DOT_AVX512VNNI
    if count >= quadRowsMinimumBatch { rowQuadsK4(isQ5: isQ5, w, rowBytes, cols, rows, v, count, y, yStride) }
    else if count >= rowPairsMinimumBatch { rowPairsK4(isQ5: isQ5, w, rowBytes, cols, rows, v, count, y, yStride) }
    else { rowsLanesK4(isQ5: isQ5, w, rowBytes, cols, rows, v, count, y, yStride) }
    #else
    rowsLanesK4(isQ5: isQ5, w, rowBytes, cols, rows, v, count, y, yStride)
    #endif
}

/// The same for Q6_K.
@inline(__always) func decodeRowsQ6K(_ w: UnsafeRawPointer, _ rowBytes: Int, _ cols: Int, _ rows: Int,
                                     _ v: UnsafePointer<qe_vector>, _ count: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
    #if QWEN_DOT_AVX512VNNI
    if count >= quadRowsMinimumBatch { rowQuadsQ6K(w, rowBytes, cols, rows, v, count, y, yStride) }
    else if count >= rowPairsMinimumBatch { rowPairsQ6K(w, rowBytes, cols, rows, v, count, y, yStride) }
    else { rowsLanesQ6K(w, rowBytes, cols, rows, v, count, y, yStride) }
    #else
    rowsLanesQ6K(w, rowBytes, cols, rows, v, count, y, yStride)
    #endif
}

public enum X86Kernels {
    /// The kernels of the format named `name` (Kernels' `GGMLType.name`), or nil for a
    /// format this source has none for. A format's x86 kernels are registered here and
    /// nowhere else: the kernel table asks for every format by name.
    public static func kernels(_ name: String) -> FormatEntries? {
        switch name {
        case "F32": return ({ rowsFloat(F32.self, $0, $1, $2, $3, $4, $5, $6, $7) }, { dequantizeFloat(F32.self, $0, $1, $2) }, nil, nil)
        case "F16": return ({ rowsFloat(F16.self, $0, $1, $2, $3, $4, $5, $6, $7) }, { dequantizeFloat(F16.self, $0, $1, $2) }, nil, nil)
        case "BF16": return ({ rowsFloat(BF16.self, $0, $1, $2, $3, $4, $5, $6, $7) }, { dequantizeFloat(BF16.self, $0, $1, $2) }, nil, nil)
        case "Q8_0": return (nil, { dequantize32(Q8_0.self, $0, $1, $2) }, { decodeRows32(Q8_0Lanes.self, $0, $1, $2, $3, $4, $5, $6, $7) },
                             { dequantizeLanes32(Q8_0Lanes.self, $0, $1, $2) })
        case "Q4_0": return (nil, { dequantize32(Q4_0.self, $0, $1, $2) }, { decodeRows32(Q4_0Lanes.self, $0, $1, $2, $3, $4, $5, $6, $7) },
                             { dequantizeLanes32(Q4_0Lanes.self, $0, $1, $2) })
        case "Q4_1": return (nil, { dequantize32(Q4_1.self, $0, $1, $2) }, { decodeRows32(Q4_1Lanes.self, $0, $1, $2, $3, $4, $5, $6, $7) },
                             { dequantizeLanes32(Q4_1Lanes.self, $0, $1, $2) })
        case "Q5_0": return (nil, { dequantize32(Q5_0.self, $0, $1, $2) }, { decodeRows32(Q5_0Lanes.self, $0, $1, $2, $3, $4, $5, $6, $7) },
                             { dequantizeLanes32(Q5_0Lanes.self, $0, $1, $2) })
        case "Q5_1": return (nil, { dequantize32(Q5_1.self, $0, $1, $2) }, { decodeRows32(Q5_1Lanes.self, $0, $1, $2, $3, $4, $5, $6, $7) },
                             { dequantizeLanes32(Q5_1Lanes.self, $0, $1, $2) })
        case "Q4_Z": return (nil, { dequantize32(Q4_Z.self, $0, $1, $2) }, { decodeRows32(Q4_ZLanes.self, $0, $1, $2, $3, $4, $5, $6, $7) },
                             { dequantizeLanes32(Q4_ZLanes.self, $0, $1, $2) })
        case "Q8_Z": return (nil, { dequantize32(Q8_Z.self, $0, $1, $2) }, { decodeRows32(Q8_ZLanes.self, $0, $1, $2, $3, $4, $5, $6, $7) },
                             { dequantizeLanes32(Q8_ZLanes.self, $0, $1, $2) })
        case "Q4_K": return (nil, { dequantizeK4(isQ5: false, $0, $1, $2) }, { decodeRowsK4(isQ5: false, $0, $1, $2, $3, $4, $5, $6, $7) },
                             { dequantizeLanesK4(isQ5: false, $0, $1, $2) })
        case "Q5_K": return (nil, { dequantizeK4(isQ5: true, $0, $1, $2) }, { decodeRowsK4(isQ5: true, $0, $1, $2, $3, $4, $5, $6, $7) },
                             { dequantizeLanesK4(isQ5: true, $0, $1, $2) })
        case "Q6_K": return (nil, { dequantizeQ6K($0, $1, $2) }, { decodeRowsQ6K($0, $1, $2, $3, $4, $5, $6, $7) },
                             { dequantizeLanesQ6K($0, $1, $2) })
        default: return nil
        }
    }

    /// Causal attention of query heads sharing a KV head over an f16 KV cache, up to four
    /// heads side by side (see Kernels' `AttendKernel`).
    @inline(never) public static func attendHeads(_ q: UnsafePointer<Float>, _ heads: Int, _ keys: UnsafeRawPointer,
                                                  _ values: UnsafeRawPointer, _ rowBytes: Int, _ length: Int, _ headDim: Int,
                                                  _ scores: UnsafeMutablePointer<Float>, _ out: UnsafeMutablePointer<Float>) {
        attendGroup(F16RowsAttention.self, q, heads, keys, values, rowBytes, length, headDim, scores, out)
    }

    /// gate[i] = silu(gate[i]) * up[i] for i in 0..<n.
    @inline(never) public static func swiGLU(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, _ n: Int) {
        swiGLU8(gate, up, n)
    }

    /// y = x / sqrt(mean(x^2) + eps) * weight for one row of n values (x and y may alias):
    /// Kernels' portable `rmsNorm` bit for bit.
    @inline(never) public static func rmsNorm(_ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                                              _ n: Int, _ eps: Float) {
        rmsNorm8(x, weight, y, n, eps)
    }

    /// x[cols] (cols a multiple of 32) -> q8[cols], d8[cols/32], s8[cols/32]: per 32
    /// values d = max|x| / 127, q = round-to-nearest-even(x / d), s = d * Σ q; and the
    /// interleaved copy with its lane sums, lanes[qe_lane_record_bytes(cols)].
    @inline(never) public static func quantizeQ8(_ x: UnsafePointer<Float>, _ cols: Int, _ q8: UnsafeMutablePointer<Int8>,
                                                 _ d8: UnsafeMutablePointer<Float>, _ s8: UnsafeMutablePointer<Float>,
                                                 _ lanes: UnsafeMutableRawPointer) {
        quantizeWithLanes(x, cols, q8, d8, s8, lanes)
    }
}
#endif
