/// ggml's tensor element types (raw values are ggml's, as stored in GGUF files), and the
/// engine's own zero-point formats for asymmetric GPTQ (Q4_Z, Q8_Z; ids outside ggml's,
/// never read from a file: see `isGGML`). Quantized types pack `blockSize` elements into
/// `blockBytes` bytes.
public enum GGMLType: UInt32, Sendable, CaseIterable {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8
    case q4_K = 12, q5_K = 13, q6_K = 14, bf16 = 30
    case q4_Z = 0x5157_0004, q8_Z = 0x5157_0008

    /// A type ggml defines (a GGUF tensor may have it), as opposed to the engine's own.
    public var isGGML: Bool { self != .q4_Z && self != .q8_Z }

    /// What the engine knows of this format apart from its kernels: one line per format.
    public var format: FormatDescription {
        switch self {
        case .f32: return .float("F32", bytes: 4)
        case .f16: return .float("F16", bytes: 2)
        case .bf16: return .float("BF16", bytes: 2)
        case .q4_0: return .blocks32("Q4_0", Q4_0Format.self)
        case .q4_1: return .blocks32("Q4_1", Q4_1Format.self)
        case .q5_0: return .blocks32("Q5_0", Q5_0Format.self)
        case .q5_1: return .blocks32("Q5_1", Q5_1Format.self)
        case .q8_0: return .blocks32("Q8_0", Q8_0Format.self)
        case .q4_Z: return .blocks32("Q4_Z", Q4_ZFormat.self)
        case .q8_Z: return .blocks32("Q8_Z", Q8_ZFormat.self)
        case .q4_K: return .blocks256("Q4_K", Q4_KFormat.self)
        case .q5_K: return .blocks256("Q5_K", Q5_KFormat.self)
        case .q6_K: return .blocks256("Q6_K", Q6_KFormat.self)
        }
    }

    /// ggml's name of the type ("Q4_0"); the x86 kernel targets register their kernels
    /// under it.
    public var name: String { format.name }
    /// Elements per block.
    public var blockSize: Int { format.blockSize }
    /// Bytes per block (layouts as in ggml-common.h; the format's file in Formats/).
    public var blockBytes: Int { format.blockBytes }
    /// The activation form this format's decode kernels read, on every instruction set.
    public var activationForm: ActivationForm { format.activationForm }

    /// Bytes of a row of `n` elements, or nil when n is not a whole number of blocks.
    public func rowSize(_ n: Int) -> Int? {
        guard n > 0, n % blockSize == 0 else { return nil }
        let (bytes, overflow) = (n / blockSize).multipliedReportingOverflow(by: blockBytes)
        return overflow ? nil : bytes
    }
}

/// A weight format's name, block shape and the activations its decode kernels read
/// (`GGMLType.format`). Its layout, scalar reference and portable decoder are in its file in
/// Formats/, its x86 kernels in `X86Kernels.kernels` (Sources/KernelsX86).
public struct FormatDescription: Sendable {
    public let name: String
    /// Elements per block.
    public let blockSize: Int
    /// Bytes per block.
    public let blockBytes: Int
    public let activationForm: ActivationForm

    static func float(_ name: String, bytes: Int) -> Self {
        Self(name: name, blockSize: 1, blockBytes: bytes, activationForm: .float)
    }
    static func blocks32<F: Block32Format>(_ name: String, _: F.Type) -> Self {
        Self(name: name, blockSize: 32, blockBytes: F.blockBytes, activationForm: .q8)
    }
    static func blocks256<F: Block256Format>(_ name: String, _: F.Type) -> Self {
        Self(name: name, blockSize: 256, blockBytes: F.blockBytes, activationForm: .q8)
    }
}

/// How the blocks of a row are laid out.
public enum WeightLayout: Sendable {
    /// As in the file (ggml-common.h): each block starts with its f16 scale(s). The float
    /// formats' only layout; quantized matrices in it are read by the portable kernels
    /// (embedding rows are only dequantized; matrices used for decode are repacked).
    case ggml
    /// Quantized formats repacked at load (`RepackedMatrix.interleaving`, Interleave.swift):
    /// within each row, 8 blocks (K-quants: the 8 sub-blocks of a block) side by side in
    /// the lanes of one register, their scales together. Same bytes per row.
    case interleaved
}

/// A row-major [rows, cols] matrix of some GGMLType, read in place (typically from an
/// mmapped file) or from its repacked copy. Rows are contiguous, `rowBytes` apart.
public struct WeightMatrix: @unchecked Sendable {
    public let type: GGMLType
    public let rows: Int
    public let cols: Int
    public let data: UnsafeRawPointer
    public let rowBytes: Int
    public let layout: WeightLayout
    /// [cols] or nil: column j multiplies input element inputOrder[j] (GPTQ act-order
    /// weights, regrouped at load so each 32-column block has one scale). matvec and
    /// matmul gather their input through it; nil is the identity.
    public internal(set) var inputOrder: UnsafePointer<Int32>?
    /// Whether prefill (`matmul`) multiplies this quantized matrix with each token's int8
    /// vector and then its remainder's (`QuantizedActivations.prepareRefined`: ~15 bits of
    /// the activations; in f32 where that is slower, `KernelTable.refinesPrefill`) rather
    /// than with the int8 vector alone. GPTQ matrices: Qwen's GPTQ
    /// checkpoints are held to transformers' f32 logits, and int8 activations alone move
    /// those of the generated test checkpoints (whose activations have outliers) by up to
    /// 0.3 (QwenV1ReferenceTests, whose prefill tolerance is 0.02).
    public internal(set) var refinedPrefill = false
    /// Whether `matmul` multiplies this matrix with the decode kernels' int8 arithmetic, so
    /// each token's prefill row is bit for bit its decode row, whatever the batch.
    public var prefillsThroughDecodeKernels: Bool { type.activationForm == .q8 && !refinedPrefill }

    /// Throws when `cols` is not a whole number of blocks, or `layout` is interleaved for a
    /// float format.
    public init(type: GGMLType, rows: Int, cols: Int, data: UnsafeRawPointer, layout: WeightLayout = .ggml,
                inputOrder: UnsafePointer<Int32>? = nil) throws {
        self.inputOrder = inputOrder
        guard layout == .ggml || type.blockSize >= 32 else {
            throw KernelError.invalidShape("\(type.name) has no interleaved layout")
        }
        self.layout = layout
        guard rows > 0, let rowBytes = type.rowSize(cols) else {
            throw KernelError.invalidShape("a \(rows)x\(cols) matrix of \(type.name) is not a whole number of \(type.blockSize)-element blocks")
        }
        self.type = type
        self.rows = rows
        self.cols = cols
        self.data = data
        self.rowBytes = rowBytes
    }

    @inline(__always)
    public func row(_ r: Int) -> UnsafeRawPointer { data + r * rowBytes }

    /// Rows [first, first + count) as a matrix of their own (a fused QKV split).
    public func rows(_ first: Int, count: Int) throws -> WeightMatrix {
        guard first >= 0, count > 0, first + count <= rows else {
            throw KernelError.invalidShape("rows \(first)..<\(first + count) of a \(rows)-row matrix")
        }
        var part = try WeightMatrix(type: type, rows: count, cols: cols, data: row(first), layout: layout, inputOrder: inputOrder)
        part.refinedPrefill = refinedPrefill
        return part
    }
}

public enum KernelError: Error, Equatable {
    case invalidShape(String)
}

@inline(__always)
func loadHalf(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
    Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
}
