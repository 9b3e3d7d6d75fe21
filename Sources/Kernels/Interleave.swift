#if canImport(Glibc)
import Glibc
#endif

// The interleaved weight layout (`WeightLayout.interleaved`) the decode kernels read, and
// the matching order of the int8 activations (`qe_vector.lanes`). Every quantized matrix
// is repacked into it at load (`RepackedMatrix.interleaving`, GPTQ.swift writes it
// directly); rows stay independent and keep their size (`GGMLType.rowSize`).
//
// "Lane per block": a 256-bit register of int32 lanes holds 8 different 32-value blocks
// of a row, so one integer dot product (vpdpbusd, or vpmaddubsw + vpmaddwd) per 32 bytes
// of codes accumulates all 8 blocks at once, and each block's scale is applied by one
// convert and one FMA per 8 blocks instead of per block.
//
// Groups. A row's cols / 32 blocks are cut, in order, into groups of G = 8 blocks while 8
// remain, then one group of G = 4 if 4 remain, then groups of G = 1 (`laneGroups`). In a
// group, "code vector" k (k in 0..<G, 32 bytes = 8 lanes of 4 bytes) holds in lane l the
// codes of block l % G at columns (l / G) * 4 G + 4 k ..< + 4 of that block:
//   G = 8: lane l is block l, vector k its columns 4 k ..< 4 k + 4;
//   G = 4: lanes l and l + 4 are block l (its first and second 16 columns);
//   G = 1: the block's 32 codes in column order.
// The activations' int8 values use the same order (`qe_vector.lanes`, kernel_abi.h), so
// lane l of code vector k always meets the activations it multiplies.
//
// 32-value formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_Z, Q8_Z): a group of G blocks takes
// the G blocks' bytes (G * blockBytes), as
//   f16 d[G]                       the blocks' scales, block order
//   f16 m[G]                       Q4_1, Q5_1: the mins; Q4_Z, Q8_Z: the zero points
//   codes                          `Block32Format.split`'s codes (u8, column order within
//                                  the block) moved into code vectors and packed:
//     4-bit (Q4_0, Q4_1, Q4_Z)     G = 8, 4: G / 2 vectors of 32 bytes, vector p holding code
//                                  vector 2 p in its low nibbles and 2 p + 1 in its high ones;
//                                  G = 1: 16 bytes, byte i = code i | code i + 16 << 4 (ggml's)
//     5-bit (Q5_0, Q5_1)           the fifth bits, then the low 4 bits as 4-bit codes.
//                                  Fifth bits, G = 8: 32 bytes, bit k of byte j = bit 4 of
//                                  byte j of code vector k; G = 4: 16 bytes, bit k of byte j
//                                  (k < 4) for byte j of code vector k and bit 4 + k for its
//                                  byte j + 16; G = 1: u32, bit j for code j (ggml's qh)
//     8-bit (Q8_0, Q8_Z)           the code vectors (int8 c stored as c ^ 0x80 = c + 128)
// K-quants (Q4_K, Q5_K, Q6_K): each 256-value block is one group of 8 (lane l = its
// sub-block of 32 values l), in its own bytes, as
//   header                         `Block256Format.split`'s (Q4_K, Q5_K: the block's 16 bytes
//                                  of d, dmin, scales and mins; Q6_K: f16 d, int8 scales of
//                                  the first 16 values of each 32, then of the second 16)
//   codes                          Q4_K: 4-bit as above; Q5_K: 5-bit as above (G = 8);
//                                  Q6_K: the low 4 bits as 4-bit codes, then 64 bytes: for
//                                  h in 0..<2, bits 2 k, 2 k + 1 of byte 32 h + j are bits 4, 5
//                                  of byte j of code vector 4 h + k.

/// A group of the interleaved layout: `size` (8, 4 or 1) blocks from block `first`.
struct LaneGroup {
    let first: Int
    let size: Int
}

/// The groups of a row of `blocks` 32-value blocks, in order.
func laneGroups(blocks: Int) -> [LaneGroup] {
    var groups: [LaneGroup] = []
    forEachLaneGroup(blocks: blocks) { groups.append($0) }
    return groups
}

/// Calls body with each group of a row of `blocks` 32-value blocks, in order.
@inline(__always)
func forEachLaneGroup(blocks: Int, _ body: (LaneGroup) -> Void) {
    var first = 0
    while blocks &- first >= 8 { body(LaneGroup(first: first, size: 8)); first &+= 8 }
    if blocks &- first >= 4 { body(LaneGroup(first: first, size: 4)); first &+= 4 }
    while first < blocks { body(LaneGroup(first: first, size: 1)); first &+= 1 }
}

/// Column-ordered codes of G blocks, natural[32 G] (block b at 32 b), to code vectors
/// cv[32 G]: cv[32 k + 4 l + j] = natural[32 (l % G) + (l / G) 4 G + 4 k + j]. Bytes of any
/// kind (weight codes, int8 activations).
@inline(__always)
func interleave(_ natural: UnsafeRawPointer, groupSize g: Int, _ cv: UnsafeMutableRawPointer) {
    switch g {
    case 8: permuteWords(natural, cv, groupSize: 8, inverse: false)
    case 4: permuteWords(natural, cv, groupSize: 4, inverse: false)
    default: cv.copyMemory(from: natural, byteCount: 32)
    }
}

/// The inverse of `interleave`.
@inline(__always)
func deinterleave(_ cv: UnsafeRawPointer, groupSize g: Int, _ natural: UnsafeMutableRawPointer) {
    switch g {
    case 8: permuteWords(cv, natural, groupSize: 8, inverse: true)
    case 4: permuteWords(cv, natural, groupSize: 4, inverse: true)
    default: natural.copyMemory(from: cv, byteCount: 32)
    }
}

/// `interleave` (or its inverse) as 4-byte moves, for a constant g.
@inline(__always)
private func permuteWords(_ source: UnsafeRawPointer, _ target: UnsafeMutableRawPointer, groupSize g: Int, inverse: Bool) {
    for k in 0..<g {
        for l in 0..<8 {
            let natural = 32 &* (l % g) &+ (l / g) &* 4 &* g &+ 4 &* k, vector = 32 &* k &+ 4 &* l
            let (from, to) = inverse ? (vector, natural) : (natural, vector)
            target.storeBytes(of: source.loadUnaligned(fromByteOffset: from, as: UInt32.self), toByteOffset: to, as: UInt32.self)
        }
    }
}

private let lowNibbles: UInt64 = 0x0F0F_0F0F_0F0F_0F0F
private let bit0: UInt64 = 0x0101_0101_0101_0101
private let bits01: UInt64 = 0x0303_0303_0303_0303

@inline(__always) private func u64(_ p: UnsafeRawPointer, _ offset: Int) -> UInt64 {
    p.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
}

@inline(__always) private func store64(_ v: UInt64, _ p: UnsafeMutableRawPointer, _ offset: Int) {
    p.storeBytes(of: v, toByteOffset: offset, as: UInt64.self)
}

/// Bytes the packed codes of a group of G code vectors take at `bits` per code.
@inline(__always) func packedBytes(groupSize g: Int, bits: Int) -> Int { 4 &* g &* bits }

/// Code vectors cv[32 G] (each code below 2^bits) -> the packed codes of the layout.
func packCodes(_ cv: UnsafeRawPointer, groupSize g: Int, bits: Int, _ out: UnsafeMutableRawPointer) {
    if bits == 8 { out.copyMemory(from: cv, byteCount: 32 &* g); return }
    var nibblesAt = 0
    if bits == 5 {                                        // fifth bits, then nibbles
        switch g {
        case 8:
            for j in stride(from: 0, to: 32, by: 8) {
                var h: UInt64 = 0
                for k in 0..<8 { h |= ((u64(cv, 32 &* k &+ j) >> 4) & bit0) << UInt64(k) }
                store64(h, out, j)
            }
            nibblesAt = 32
        case 4:
            for j in stride(from: 0, to: 16, by: 8) {
                var h: UInt64 = 0
                for k in 0..<4 {
                    h |= ((u64(cv, 32 &* k &+ j) >> 4) & bit0) << UInt64(k)
                    h |= ((u64(cv, 32 &* k &+ 16 &+ j) >> 4) & bit0) << UInt64(4 &+ k)
                }
                store64(h, out, j)
            }
            nibblesAt = 16
        default:
            var h: UInt32 = 0
            for j in 0..<32 { h |= UInt32((cv.load(fromByteOffset: j, as: UInt8.self) >> 4) & 1) << UInt32(j) }
            out.storeBytes(of: h, as: UInt32.self)
            nibblesAt = 4
        }
    }
    let nibbles = out + nibblesAt
    if g == 1 {
        for j in stride(from: 0, to: 16, by: 8) { store64((u64(cv, j) & lowNibbles) | (u64(cv, 16 &+ j) & lowNibbles) << 4, nibbles, j) }
    } else {
        for p in 0..<(g / 2) {
            for j in stride(from: 0, to: 32, by: 8) {
                store64((u64(cv, 64 &* p &+ j) & lowNibbles) | (u64(cv, 64 &* p &+ 32 &+ j) & lowNibbles) << 4, nibbles, 32 &* p &+ j)
            }
        }
    }
    if bits == 6 {                                        // Q6_K (G = 8): two bit planes after the nibbles
        for h in 0..<2 {
            for j in stride(from: 0, to: 32, by: 8) {
                var v: UInt64 = 0
                for k in 0..<4 { v |= ((u64(cv, 32 &* (4 &* h &+ k) &+ j) >> 4) & bits01) << UInt64(2 &* k) }
                store64(v, out, 128 &+ 32 &* h &+ j)
            }
        }
    }
}

/// The inverse of `packCodes`.
func unpackCodes(_ packed: UnsafeRawPointer, groupSize g: Int, bits: Int, _ cv: UnsafeMutableRawPointer) {
    if bits == 8 { cv.copyMemory(from: packed, byteCount: 32 &* g); return }
    let nibbles = packed + (bits == 5 ? (g == 8 ? 32 : g == 4 ? 16 : 4) : 0)
    if g == 1 {
        for j in stride(from: 0, to: 16, by: 8) {
            let v = u64(nibbles, j)
            store64(v & lowNibbles, cv, j)
            store64((v >> 4) & lowNibbles, cv, 16 &+ j)
        }
    } else {
        for p in 0..<(g / 2) {
            for j in stride(from: 0, to: 32, by: 8) {
                let v = u64(nibbles, 32 &* p &+ j)
                store64(v & lowNibbles, cv, 64 &* p &+ j)
                store64((v >> 4) & lowNibbles, cv, 64 &* p &+ 32 &+ j)
            }
        }
    }
    if bits == 5 {
        switch g {
        case 8:
            for j in stride(from: 0, to: 32, by: 8) {
                let h = u64(packed, j)
                for k in 0..<8 { store64(u64(cv, 32 &* k &+ j) | ((h >> UInt64(k)) & bit0) << 4, cv, 32 &* k &+ j) }
            }
        case 4:
            for j in stride(from: 0, to: 16, by: 8) {
                let h = u64(packed, j)
                for k in 0..<4 {
                    store64(u64(cv, 32 &* k &+ j) | ((h >> UInt64(k)) & bit0) << 4, cv, 32 &* k &+ j)
                    store64(u64(cv, 32 &* k &+ 16 &+ j) | ((h >> UInt64(4 &+ k)) & bit0) << 4, cv, 32 &* k &+ 16 &+ j)
                }
            }
        default:
            let h = packed.loadUnaligned(as: UInt32.self)
            for j in 0..<32 {
                let c = cv.load(fromByteOffset: j, as: UInt8.self) | UInt8((h >> UInt32(j)) & 1) << 4
                cv.storeBytes(of: c, toByteOffset: j, as: UInt8.self)
            }
        }
    }
    if bits == 6 {
        for h in 0..<2 {
            for j in stride(from: 0, to: 32, by: 8) {
                let v = u64(packed, 128 &+ 32 &* h &+ j)
                for k in 0..<4 {
                    let at = 32 &* (4 &* h &+ k) &+ j
                    store64(u64(cv, at) | ((v >> UInt64(2 &* k)) & bits01) << 4, cv, at)
                }
            }
        }
    }
}

// MARK: Rows

/// Writes one interleaved row of a 32-value format from its column-ordered codes
/// natural[cols] (as `Block32Format.split` gives them) and f16 fields d[cols / 32] and
/// (`fields` 2) m[cols / 32]. Also GPTQ's writer.
func writeInterleavedRow32(fields: Int, bits: Int, cols: Int, natural: UnsafePointer<UInt8>, d: UnsafePointer<UInt16>,
                           m: UnsafePointer<UInt16>?, into row: UnsafeMutableRawPointer) {
    withUnsafeTemporaryAllocation(byteCount: 256, alignment: 32) { scratch in
        let cv = scratch.baseAddress!                                   // [32 G] code vectors
        var out = row
        forEachLaneGroup(blocks: cols / 32) { group in
            let g = group.size
            out.copyMemory(from: d + group.first, byteCount: 2 &* g)
            if fields == 2, let m { (out + 2 &* g).copyMemory(from: m + group.first, byteCount: 2 &* g) }
            interleave(natural + 32 &* group.first, groupSize: g, cv)
            let codes = out + 2 &* fields &* g
            packCodes(cv, groupSize: g, bits: bits, codes)
            out = codes + packedBytes(groupSize: g, bits: bits)
        }
    }
}

/// One row of a 32-value format from ggml's layout into the interleaved one.
private func interleaveRow32<F: Block32Format>(_: F.Type, cols: Int, _ source: UnsafeRawPointer, into row: UnsafeMutableRawPointer,
                                               natural: UnsafeMutablePointer<UInt8>, d: UnsafeMutablePointer<UInt16>,
                                               m: UnsafeMutablePointer<UInt16>) {
    for b in 0..<(cols / 32) {
        let (first, second) = F.split(source + b &* F.blockBytes, natural + 32 &* b)
        d[b] = first
        m[b] = second
    }
    writeInterleavedRow32(fields: F.fields, bits: F.codeBits, cols: cols, natural: natural, d: d, m: m, into: row)
}

/// One row of a K-quant from ggml's layout into the interleaved one.
private func interleaveRow256<F: Block256Format>(_: F.Type, cols: Int, _ source: UnsafeRawPointer, into row: UnsafeMutableRawPointer,
                                                 natural: UnsafeMutablePointer<UInt8>) {
    withUnsafeTemporaryAllocation(byteCount: 256, alignment: 32) { scratch in          // [256] code vectors
        for b in 0..<(cols / 256) {
            let out = row + b &* F.blockBytes
            F.split(source + b &* F.blockBytes, natural, out)
            interleave(natural, groupSize: 8, scratch.baseAddress!)
            packCodes(scratch.baseAddress!, groupSize: 8, bits: F.codeBits, out + F.headerBytes)
        }
    }
}

/// Writes one interleaved row of `cols` values of `type` back in ggml's layout into
/// out[row bytes] (for the scalar reference and the generic kernels).
func ggmlRow(_ type: GGMLType, cols: Int, _ source: UnsafeRawPointer, into out: UnsafeMutableRawPointer) {
    func row32<F: Block32Format>(_: F.Type) {
        withUnsafeTemporaryAllocation(byteCount: 512, alignment: 32) { scratch in
            let cv = scratch.baseAddress!, natural = cv + 256                       // [32 G] each
            var p = source
            for group in laneGroups(blocks: cols / 32) {
                let g = group.size, codes = p + 2 &* F.fields &* g
                unpackCodes(codes, groupSize: g, bits: F.codeBits, cv)
                deinterleave(cv, groupSize: g, natural)
                for i in 0..<g {
                    let fields = (p.loadUnaligned(fromByteOffset: 2 &* i, as: UInt16.self),
                                  F.fields == 2 ? p.loadUnaligned(fromByteOffset: 2 &* g &+ 2 &* i, as: UInt16.self) : 0)
                    F.join(natural.assumingMemoryBound(to: UInt8.self) + 32 &* i, fields, into: out + (group.first &+ i) &* F.blockBytes)
                }
                p = codes + packedBytes(groupSize: g, bits: F.codeBits)
            }
        }
    }
    func row256<F: Block256Format>(_: F.Type) {
        withUnsafeTemporaryAllocation(byteCount: 512, alignment: 32) { scratch in
            let cv = scratch.baseAddress!, natural = cv + 256                       // [256] each
            for b in 0..<(cols / 256) {
                let block = source + b &* F.blockBytes
                unpackCodes(block + F.headerBytes, groupSize: 8, bits: F.codeBits, cv)
                deinterleave(cv, groupSize: 8, natural)
                F.join(natural.assumingMemoryBound(to: UInt8.self), block, into: out + b &* F.blockBytes)
            }
        }
    }
    switch type {
    case .q4_0: row32(Q4_0Format.self)
    case .q4_1: row32(Q4_1Format.self)
    case .q5_0: row32(Q5_0Format.self)
    case .q5_1: row32(Q5_1Format.self)
    case .q8_0: row32(Q8_0Format.self)
    case .q4_Z: row32(Q4_ZFormat.self)
    case .q8_Z: row32(Q8_ZFormat.self)
    case .q4_K: row256(Q4_KFormat.self)
    case .q5_K: row256(Q5_KFormat.self)
    case .q6_K: row256(Q6_KFormat.self)
    case .f32, .f16, .bf16: preconditionFailure("\(type.name) has no interleaved layout")
    }
}

// MARK: Activations

/// The `qe_vector.lanes` records of one vector (kernel_abi.h) from its int8 values q8[cols]
/// and scales d8[cols / 32], into out[qe_lane_record_bytes(cols)]. The portable writer
/// (the generic table's, and the reference the instruction sets' quantizers are tested
/// against).
func writeLaneRecords(_ q8: UnsafePointer<Int8>, _ d8: UnsafePointer<Float>, cols: Int, _ out: UnsafeMutableRawPointer) {
    var record = out
    for group in laneGroups(blocks: cols / 32) {
        let g = group.size
        interleave(UnsafeRawPointer(q8 + 32 &* group.first), groupSize: g, record)
        let lanes = record + 32 &* g
        for l in 0..<8 {
            var sum: Int32 = 0, low: Int32 = 0
            for k in 0..<g {
                for j in 0..<4 {
                    let v = Int32(record.load(fromByteOffset: 32 &* k &+ 4 &* l &+ j, as: Int8.self))
                    sum &+= v
                    if k < 4 { low &+= v }
                }
            }
            let d = d8[group.first &+ l % g]
            lanes.storeBytes(of: d, toByteOffset: 4 &* l, as: Float.self)
            lanes.storeBytes(of: d * Float(sum), toByteOffset: 32 &+ 4 &* l, as: Float.self)
            for (i, factor) in [Int32(-8), -16, -128].enumerated() {
                lanes.storeBytes(of: factor &* sum, toByteOffset: 64 &+ 32 &* i &+ 4 &* l, as: Int32.self)
            }
            lanes.storeBytes(of: -32 &* low, toByteOffset: 160 &+ 4 &* l, as: Int32.self)
            lanes.storeBytes(of: -32 &* (sum &- low), toByteOffset: 192 &+ 4 &* l, as: Int32.self)
        }
        record = lanes + 224
    }
}

/// Bytes of the lane records of a vector of `cols` values (kernel_abi.h's
/// qe_lane_record_bytes).
func laneRecordBytes(cols: Int) -> Int {
    laneGroups(blocks: cols / 32).reduce(0) { $0 + 32 * $1.size + 224 }
}

// MARK: Repacked matrices

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

    /// `w` (ggml layout) in the interleaved layout, or nil when its format has none (the
    /// float formats) or memory is short. `release`, when given, is handed w's bytes
    /// copied so far (from its start) after every few MB, so a caller can drop the
    /// original's pages as the copy proceeds (peak memory then barely grows).
    public static func interleaving(_ w: WeightMatrix, release: ((UnsafeRawBufferPointer) -> Void)? = nil) -> RepackedMatrix? {
        guard w.layout == .ggml, w.type.blockSize >= 32 else { return nil }
        var raw: UnsafeMutableRawPointer? = nil
        guard posix_memalign(&raw, 64, w.rows * w.rowBytes) == 0, let out = raw else { return nil }
        madvise(out, w.rows * w.rowBytes, MADV_HUGEPAGE)   // fewer page faults while copying (see GPTQ.swift)
        let cols = w.cols
        let natural = UnsafeMutablePointer<UInt8>.allocate(capacity: cols)          // [cols] codes of a row
        let fields = UnsafeMutablePointer<UInt16>.allocate(capacity: 2 * (cols / 32)) // [2, cols / 32] d, m
        defer { natural.deallocate(); fields.deallocate() }
        let rowsPerRelease = max(1, (4 << 20) / w.rowBytes)
        func copied(_ r: Int) {
            if let release, (r &+ 1) % rowsPerRelease == 0 { release(UnsafeRawBufferPointer(start: w.data, count: (r &+ 1) &* w.rowBytes)) }
        }
        func rows32<F: Block32Format>(_: F.Type) {
            for r in 0..<w.rows {
                interleaveRow32(F.self, cols: cols, w.row(r), into: out + r * w.rowBytes, natural: natural, d: fields, m: fields + cols / 32)
                copied(r)
            }
        }
        func rows256<F: Block256Format>(_: F.Type) {
            for r in 0..<w.rows {
                interleaveRow256(F.self, cols: cols, w.row(r), into: out + r * w.rowBytes, natural: natural)
                copied(r)
            }
        }
        switch w.type {
        case .q4_0: rows32(Q4_0Format.self)
        case .q4_1: rows32(Q4_1Format.self)
        case .q5_0: rows32(Q5_0Format.self)
        case .q5_1: rows32(Q5_1Format.self)
        case .q8_0: rows32(Q8_0Format.self)
        case .q4_Z: rows32(Q4_ZFormat.self)
        case .q8_Z: rows32(Q8_ZFormat.self)
        case .q4_K: rows256(Q4_KFormat.self)
        case .q5_K: rows256(Q5_KFormat.self)
        case .q6_K: rows256(Q6_KFormat.self)
        case .f32, .f16, .bf16: break
        }
        guard let matrix = try? WeightMatrix(type: w.type, rows: w.rows, cols: w.cols, data: out, layout: .interleaved,
                                             inputOrder: w.inputOrder) else {
            free(out)
            return nil
        }
        release?(UnsafeRawBufferPointer(start: w.data, count: w.rows * w.rowBytes))
        return RepackedMatrix(matrix: matrix, storage: out)
    }
}
