#if canImport(Glibc)
import Glibc
#endif

// Weights repacked at load into the layout the decode kernels read fastest. Only the
// 32-value block formats are repacked (`WeightLayout.splitScales`); everything else stays
// where the file mapping put it.

/// A repacked copy of a matrix, owning its memory.
public final class RepackedMatrix: @unchecked Sendable {
    public let matrix: WeightMatrix
    private let storage: UnsafeMutableRawPointer   // [rows * rowBytes]
    private let order: UnsafeMutablePointer<Int32>? // [cols], the matrix's inputOrder

    init(matrix: WeightMatrix, storage: UnsafeMutableRawPointer, order: UnsafeMutablePointer<Int32>? = nil) {
        self.matrix = matrix
        self.storage = storage
        self.order = order
    }

    deinit {
        free(storage)
        order?.deallocate()
    }

    /// `w` in the split-scale layout, or nil when its format has none (or memory is short).
    public static func splittingScales(_ w: WeightMatrix) -> RepackedMatrix? {
        let header = w.type.scaleHeaderBytes
        guard w.layout == .ggml, header > 0 else { return nil }
        var raw: UnsafeMutableRawPointer? = nil
        guard posix_memalign(&raw, 64, w.rows * w.rowBytes) == 0, let out = raw else { return nil }
        let blocks = w.cols / 32, blockBytes = w.type.blockBytes, payload = blockBytes - header
        for r in 0..<w.rows {
            let source = w.row(r), target = out + r * w.rowBytes
            for b in 0..<blocks {
                let block = source + b &* blockBytes
                target.storeBytes(of: block.loadUnaligned(as: UInt16.self), toByteOffset: 2 &* b, as: UInt16.self)   // d
                if header == 4 {                                                                                   // m
                    target.storeBytes(of: block.loadUnaligned(fromByteOffset: 2, as: UInt16.self),
                                      toByteOffset: 2 &* blocks &+ 2 &* b, as: UInt16.self)
                }
                copyPayload(from: block + header, to: target + (header &* blocks &+ payload &* b), count: payload)
            }
        }
        guard let matrix = try? WeightMatrix(type: w.type, rows: w.rows, cols: w.cols, data: out, layout: .splitScales) else {
            free(out)
            return nil
        }
        return RepackedMatrix(matrix: matrix, storage: out)
    }
}

/// Copies a block's 16, 20 or 32 payload bytes with whole-vector moves.
@inline(__always)
private func copyPayload(from source: UnsafeRawPointer, to target: UnsafeMutableRawPointer, count: Int) {
    var done = 0
    while done &+ 16 <= count {
        target.storeBytes(of: source.loadUnaligned(fromByteOffset: done, as: SIMD16<UInt8>.self), toByteOffset: done, as: SIMD16<UInt8>.self)
        done &+= 16
    }
    while done &+ 4 <= count {
        target.storeBytes(of: source.loadUnaligned(fromByteOffset: done, as: UInt32.self), toByteOffset: done, as: UInt32.self)
        done &+= 4
    }
}

/// Writes one split-scale row of `cols` values of `type` back in ggml's layout into
/// out[row bytes] (for the scalar reference and the generic kernels).
func ggmlRow(_ type: GGMLType, cols: Int, _ source: UnsafeRawPointer, into out: UnsafeMutableRawPointer) {
    let header = type.scaleHeaderBytes, blocks = cols / 32, blockBytes = type.blockBytes
    let payload = blockBytes - header
    for b in 0..<blocks {
        let block = out + b * blockBytes
        block.copyMemory(from: source + 2 * b, byteCount: 2)
        if header == 4 { (block + 2).copyMemory(from: source + 2 * blocks + 2 * b, byteCount: 2) }
        (block + header).copyMemory(from: source + header * blocks + payload * b, byteCount: payload)
    }
}
