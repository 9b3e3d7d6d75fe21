import KernelABI
#if canImport(Glibc)
import Glibc
#endif
#if canImport(KernelsAVX2)
import KernelsAVX2
import KernelsAVXVNNI
import KernelsAVX512
#endif

// The kernel table: the analogue of ggml's `type_traits_cpu`, and the only code that
// knows which instruction set runs. For each (format, layout, instruction set) it names
// the decode kernel (rows of a matrix times a batch of int8 or f32 vectors), the row
// dequantizer (embeddings, prefill tiles) and, per instruction set, the activation
// quantizer and the attention (f16 and Q8_0 KV caches) and SwiGLU kernels. Nothing reads a process-wide table: the engine chooses
// one when a model loads (`KernelTable.selected`) and hands it to every call (matvec,
// matmul, the forward pass), so models loaded with different tables coexist.

/// y[b * yStride + r] = dot(row r, x_b) for r in 0..<rows and b in 0..<count: (first row,
/// rowBytes, cols, rows, the input vectors x_0..x_{count-1}, count, y, yStride). Decode of
/// `count` sequences at once: each row of weights is decoded once and applied to every
/// vector, and each vector's result is computed exactly as it would be alone (count = 1).
public typealias RowsKernel = (UnsafeRawPointer, Int, Int, Int, UnsafePointer<qe_vector>, Int, UnsafeMutablePointer<Float>, Int) -> Void
/// out[cols] = one dequantized row: (row, cols, out).
public typealias DequantizeKernel = (UnsafeRawPointer, Int, UnsafeMutablePointer<Float>) -> Void
/// x[cols] -> (q8[cols], d8[cols / 32], s8[cols / 32]) (see `Reference.quantize`) and the
/// lane records lanes[qe_lane_record_bytes(cols)] (kernel_abi.h, `writeLaneRecords`).
public typealias QuantizeQ8Kernel = (UnsafePointer<Float>, Int, UnsafeMutablePointer<Int8>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>,
                                     UnsafeMutableRawPointer) -> Void
/// Causal attention of `heads` query heads sharing one KV head over `length` cached
/// positions: (q, heads, keys, values, rowBytes, length, headDim, scores, out) with
///   q:      [heads, headDim] f32 (already rotated and scaled)
///   keys:   [length] rows `rowBytes` apart (KVRows.swift); the KV head's headDim values
///           start at keys: f16 for `attend`, Q8_0 blocks for `attendQ8`
///   values: [length] rows, likewise
///   scores: [heads, length] f32 scratch
///   out:    [heads, headDim] f32
/// Each head's result is the same bit for bit whatever `heads` it is computed with.
public typealias AttendKernel = (UnsafePointer<Float>, Int, UnsafeRawPointer, UnsafeRawPointer, Int, Int, Int,
                                 UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> Void
/// Prefill attention of `count` queries sharing one KV head, tiled over positions with an
/// online softmax (no score row of the whole length): (queries, outs, lengths, count, keys,
/// values, rowBytes, headDim, q8, scratch) with
///   queries: [count] pointers to headDim f32 (rotated and scaled)
///   outs:    [count] pointers to headDim f32
///   lengths: [count] positions each query attends (0 ..< lengths[i]: causal)
///   keys, values, rowBytes: as for `AttendKernel`; Q8_0 rows when q8, else f16
///   scratch: [qe_attend_block_scratch(count, headDim)] f32
/// headDim a multiple of 32.
public typealias AttendBlockKernel = (UnsafePointer<UnsafePointer<Float>>, UnsafePointer<UnsafeMutablePointer<Float>>,
                                      UnsafePointer<Int>, Int, UnsafeRawPointer, UnsafeRawPointer, Int, Int, Bool,
                                      UnsafeMutablePointer<Float>) -> Void
/// y[t * yStride + r] = Σ_k x[t * cols + k] * w[r * cols + k] for an f32 weight tile
/// w [rows, cols] and tokens x [n, cols]: (w, rows, x, n, cols, y, yStride).
public typealias GEMMKernel = (UnsafePointer<Float>, Int, UnsafePointer<Float>, Int, Int, UnsafeMutablePointer<Float>, Int) -> Void
/// gate[i] = silu(gate[i]) * up[i]: (gate, up, n).
public typealias SwiGLUKernel = (UnsafeMutablePointer<Float>, UnsafePointer<Float>, Int) -> Void
/// `rmsNorm` (Elementwise.swift), bit for bit: (x, weight, y, n, eps).
public typealias RMSNormKernel = (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int, Float) -> Void

/// The instruction sets kernels are compiled for, lowest first.
public enum InstructionSet: String, CaseIterable, Sendable, Comparable {
    /// Portable Swift SIMD: every Swift target.
    case generic
    /// x86-64 AVX2 + FMA + F16C (Haswell, Zen 1 and later).
    case avx2
    /// AVX2 with AVX-VNNI vpdpbusd (Alder Lake, Sapphire Rapids, Zen 5 and later).
    case avxvnni
    /// AVX-512 F/CD/BW/DQ/VL + VNNI (Cascade Lake, Ice Lake, Zen 4 and later).
    case avx512

    public static func < (a: Self, b: Self) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// How a format's decode kernel wants its input vector.
public enum ActivationForm: Sendable {
    /// f32 x (F32, F16, BF16 weights).
    case float
    /// int8 with one scale per 32 values (Q8_0-style), for every quantized format.
    case q8
}

extension GGMLType {
    /// Dense index for the table's arrays.
    var tableIndex: Int { GGMLType.allCases.firstIndex(of: self)! }
}

/// The kernels of one instruction set for every format.
public struct KernelTable: @unchecked Sendable {
    public let isa: InstructionSet
    let rowKernels: [RowsKernel]                           // [GGMLType.allCases.count], ggml layout
    let dequantizeKernels: [DequantizeKernel]              // [GGMLType.allCases.count], ggml layout
    let interleavedRowKernels: [RowsKernel?]               // [GGMLType.allCases.count], interleaved layout (nil: floats)
    let interleavedDequantizeKernels: [DequantizeKernel?]  // [GGMLType.allCases.count], likewise
    public let quantizeQ8: QuantizeQ8Kernel
    /// Attention over an f16 KV cache.
    public let attend: AttendKernel
    /// Attention over a Q8_0 KV cache (headDim a multiple of 32).
    public let attendQ8: AttendKernel
    /// Prefill attention of a block of queries sharing a KV head (either cache type).
    public let attendBlock: AttendBlockKernel
    public let swiGLU: SwiGLUKernel
    /// RMSNorm of one row. The portable `rmsNorm` sums squares with SIMD16's addProduct,
    /// which a module compiled for baseline x86-64 (no FMA) turns into a libm fmaf call per
    /// value; the x86 tables compute the same fused sums with vfmadd.
    public let rmsNorm: RMSNormKernel
    /// Prefill's product of a dequantized tile with the token batch; nil: OpenBLAS sgemm.
    public let gemm: GEMMKernel?

    /// Whether a token's prefill result depends on nothing but its own row, for every
    /// weight format: true for the table's own GEMM (every token through the same code,
    /// wherever it sits in the batch), false for OpenBLAS, whose sgemm (float weights)
    /// computes some rows differently depending on the batch's size and their place in it.
    /// (GGUF-quantized weights always are: `matmul` runs them through the decode kernels;
    /// a model's engine takes either as enough, `Engine.prefillRowsAreIndependent`.)
    public var prefillRowsAreIndependent: Bool { gemm != nil }

    /// Whether matrices marked `WeightMatrix.refinedPrefill` (GPTQ) prefill through the
    /// int8 kernels, each token's vector and then its remainder's, rather than in f32: where
    /// the int8 dot is vpdpbusd. Qwen-7B-Chat-Int4's shapes, prompt of 64, Zen 4: AVX-512
    /// 19.9 against 13.6 tok/s at 2 threads, 9.8 against 6.9 at 1; the AVX2 kernels
    /// (vpmaddubsw + vpmaddwd, twice the instructions) 9.6 against 9.8, level; the portable
    /// kernels 0.24 against OpenBLAS's 2.1 (BENCHMARKS.md). AVX-VNNI's dot is AVX-512's at
    /// half the width, as is its f32 GEMM.
    public var refinesPrefill: Bool { isa == .avx512 || isa == .avxvnni }

    /// The decode kernel for w's format and layout.
    @inline(__always) public func rows(for w: WeightMatrix) -> RowsKernel {
        w.layout == .interleaved ? interleavedRowKernels[w.type.tableIndex]! : rowKernels[w.type.tableIndex]
    }

    /// The row dequantizer for w's format and layout.
    @inline(__always) public func dequantize(for w: WeightMatrix) -> DequantizeKernel {
        w.layout == .interleaved ? interleavedDequantizeKernels[w.type.tableIndex]! : dequantizeKernels[w.type.tableIndex]
    }

    /// The table for `isa`, or nil when this build lacks it or this CPU cannot run it.
    public static func forInstructionSet(_ isa: InstructionSet) -> KernelTable? {
        available.contains(isa) ? build(isa) : nil
    }

    /// Instruction sets this build has and this CPU runs, lowest first.
    public static let available: [InstructionSet] = {
        var sets: [InstructionSet] = [.generic]
        #if canImport(KernelsAVX2)
        let features = qe_cpu_features()
        if features & UInt32(QE_CPU_AVX2) != 0 { sets.append(.avx2) }
        if features & UInt32(QE_CPU_AVXVNNI) != 0 { sets.append(.avxvnni) }
        if features & UInt32(QE_CPU_AVX512) != 0 { sets.append(.avx512) }
        #endif
        return sets
    }()

    /// The table for a model: the best available instruction set, or the one `override`
    /// (a QWEN_ISA value: generic|avx2|avxvnni|avx512) names if this CPU runs it (a set
    /// this CPU cannot run is never chosen; an unknown name is ignored).
    public static func selected(override: String?) -> KernelTable {
        build(preferred(override: override))
    }

    /// The instruction set `selected(override:)` uses.
    public static func preferred(override: String?) -> InstructionSet {
        if let name = override, let isa = InstructionSet(rawValue: name.lowercased()), available.contains(isa) { return isa }
        return available.last!
    }

    private static func build(_ isa: InstructionSet) -> KernelTable {
        switch isa {
        case .generic: return GenericKernels.table
        #if canImport(KernelsAVX2)
        case .avx2: return x86Table(.avx2, KernelsAVX2.X86Kernels.self, gemm: KernelsAVX2.X86Kernels.gemmF32)
        case .avxvnni: return x86Table(.avxvnni, KernelsAVXVNNI.X86Kernels.self, gemm: KernelsAVXVNNI.X86Kernels.gemmF32)
        case .avx512: return x86Table(.avx512, KernelsAVX512.X86Kernels.self, gemm: KernelsAVX512.X86Kernels.gemmF32)
        #else
        default: return GenericKernels.table
        #endif
        }
    }
}

#if canImport(KernelsAVX2)
/// The three x86 kernel targets compile one source, so their entry points have the same
/// names; this protocol lets one function build the table for each. Formats are asked for
/// by name (`X86Kernels.kernels`), so adding one touches its description (GGMLType) and
/// its kernels, not this list.
protocol X86KernelSet {
    static func kernels(_ name: String) -> (rows: RowsKernel?, dequantize: DequantizeKernel,
                                            interleavedRows: RowsKernel?, interleavedDequantize: DequantizeKernel?)?
    static func quantizeQ8(_ x: UnsafePointer<Float>, _ cols: Int, _ q8: UnsafeMutablePointer<Int8>, _ d8: UnsafeMutablePointer<Float>,
                           _ s8: UnsafeMutablePointer<Float>, _ lanes: UnsafeMutableRawPointer)
    static func attendHeads(_ q: UnsafePointer<Float>, _ heads: Int, _ keys: UnsafeRawPointer, _ values: UnsafeRawPointer, _ rowBytes: Int,
                            _ length: Int, _ headDim: Int, _ scores: UnsafeMutablePointer<Float>, _ out: UnsafeMutablePointer<Float>)
    static func attendHeadsQ8(_ q: UnsafePointer<Float>, _ heads: Int, _ keys: UnsafeRawPointer, _ values: UnsafeRawPointer, _ rowBytes: Int,
                              _ length: Int, _ headDim: Int, _ scores: UnsafeMutablePointer<Float>, _ out: UnsafeMutablePointer<Float>)
    static func attendBlock(_ queries: UnsafePointer<UnsafePointer<Float>>, _ outs: UnsafePointer<UnsafeMutablePointer<Float>>,
                            _ lengths: UnsafePointer<Int>, _ count: Int, _ keys: UnsafeRawPointer, _ values: UnsafeRawPointer,
                            _ rowBytes: Int, _ headDim: Int, _ q8: Bool, _ scratch: UnsafeMutablePointer<Float>)
    static func swiGLU(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, _ n: Int)
    static func rmsNorm(_ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int, _ eps: Float)
}

extension KernelsAVX2.X86Kernels: X86KernelSet {}
extension KernelsAVXVNNI.X86Kernels: X86KernelSet {}
extension KernelsAVX512.X86Kernels: X86KernelSet {}

/// The x86 table: the instruction set's kernels for the float formats and the interleaved
/// layout; quantized matrices left in ggml's layout (never decoded by the engine, which
/// repacks them) and any format the x86 source lacks take the portable kernels.
private func x86Table<K: X86KernelSet>(_ isa: InstructionSet, _: K.Type, gemm: GEMMKernel?) -> KernelTable {
    let entries = GGMLType.allCases.map { K.kernels($0.name) }
    return KernelTable(isa: isa,
                       rowKernels: zip(GGMLType.allCases, entries).map { $1?.rows ?? GenericKernels.rows($0) },
                       dequantizeKernels: zip(GGMLType.allCases, entries).map { $1?.dequantize ?? GenericKernels.dequantize($0) },
                       interleavedRowKernels: zip(GGMLType.allCases, entries).map { $1?.interleavedRows ?? GenericKernels.interleavedRows($0) },
                       interleavedDequantizeKernels: zip(GGMLType.allCases, entries).map {
                           $1?.interleavedDequantize ?? GenericKernels.interleavedDequantize($0)
                       },
                       quantizeQ8: K.quantizeQ8, attend: K.attendHeads, attendQ8: K.attendHeadsQ8, attendBlock: K.attendBlock, swiGLU: K.swiGLU,
                       rmsNorm: K.rmsNorm, gemm: gemm)
}
#endif
