#if canImport(Glibc)
import Glibc
#endif

// GPTQ weights (AutoGPTQ, checkpoint format v1, as Qwen's Int4/Int8 releases ship them)
// repacked at load into 32-value block formats the int8 kernels already read, in their
// interleaved layout (Interleave.swift), with no rounding: w = scale * (q - zero) is Q4_0 / Q8_0 exactly when every zero is 2^(bits-1)
// (symmetric checkpoints), and Q4_Z / Q8_Z otherwise. Act-order checkpoints (a g_idx that
// is not column / group_size) are regrouped: columns sorted by group, so that each
// 32-column block has one scale, and the input is gathered in that order at run time
// (`WeightMatrix.inputOrder`).

/// One GPTQ linear layer's tensors as AutoGPTQ stores them, read in place.
public struct GPTQTensors {
    /// 4 or 8.
    public var bits: Int
    public var inFeatures: Int
    public var outFeatures: Int
    /// Columns (input features) per group; inFeatures when the checkpoint says -1.
    public var groupSize: Int
    /// Rows of `scales` and `qzeros`.
    public var groups: Int
    public var qweight: UnsafeRawPointer     // int32 [inFeatures * bits / 32, outFeatures], low bits first along the input
    public var qzeros: UnsafeRawPointer      // int32 [groups, outFeatures * bits / 32], each zero stored minus `zeroOffset`
    public var scales: UnsafeRawPointer      // f16 [groups, outFeatures]
    public var groupIndex: UnsafeRawPointer? // int32 [inFeatures] (g_idx); nil = column / groupSize
    /// What the stored zeros lack: 1 in AutoGPTQ's checkpoint format v1, 0 in AutoAWQ's.
    public var zeroOffset: Int = 1

    public init(bits: Int, inFeatures: Int, outFeatures: Int, groupSize: Int, groups: Int,
                qweight: UnsafeRawPointer, qzeros: UnsafeRawPointer, scales: UnsafeRawPointer, groupIndex: UnsafeRawPointer?) {
        self.bits = bits
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        self.groupSize = groupSize
        self.groups = groups
        self.qweight = qweight
        self.qzeros = qzeros
        self.scales = scales
        self.groupIndex = groupIndex
    }

    /// The zero point of output column o in group g: the stored value plus `zeroOffset`.
    @inline(__always) func zero(group g: Int, column o: Int) -> Int {
        let perWord = 32 / bits
        let word = qzeros.loadUnaligned(fromByteOffset: 4 &* (g &* (outFeatures / perWord) &+ o / perWord), as: UInt32.self)
        return Int((word >> UInt32(bits &* (o % perWord))) & UInt32((1 << bits) - 1)) &+ zeroOffset
    }

    /// The f16 bits of output column o's scale in group g.
    @inline(__always) func scaleBits(group g: Int, column o: Int) -> UInt16 {
        scales.loadUnaligned(fromByteOffset: 2 &* (g &* outFeatures &+ o), as: UInt16.self)
    }
}

extension RepackedMatrix {
    /// The [outFeatures, inFeatures] matrix of a GPTQ layer in the interleaved layout of
    /// Q4_0 / Q8_0 (symmetric) or Q4_Z / Q8_Z, with its column order when regrouped.
    /// Throws `KernelError` naming what is wrong: shapes, a g_idx out of range or one whose
    /// groups do not fill whole 32-column blocks, a NaN or infinite scale.
    public static func fromGPTQ(_ t: GPTQTensors) throws -> RepackedMatrix {
        let bits = t.bits, n = t.inFeatures, out = t.outFeatures
        guard bits == 4 || bits == 8 else { throw KernelError.invalidShape("GPTQ bits \(bits) (4 or 8 supported)") }
        guard n > 0, out > 0, n % 32 == 0, out % (32 / bits) == 0 else {
            throw KernelError.invalidShape("GPTQ layer of \(n) inputs and \(out) outputs (inputs must be a multiple of 32)")
        }
        guard t.groups > 0, t.groupSize > 0 else { throw KernelError.invalidShape("GPTQ layer with \(t.groups) groups of \(t.groupSize)") }

        // Each input column's group, then the column order that makes every 32-column
        // block one group (nil: the stored order already does).
        var groupOf = [Int32](repeating: 0, count: n)        // [inFeatures]
        for i in 0..<n {
            let g = t.groupIndex.map { Int($0.loadUnaligned(fromByteOffset: 4 &* i, as: Int32.self)) } ?? i / t.groupSize
            guard g >= 0, g < t.groups else {
                throw KernelError.invalidShape("g_idx[\(i)] = \(g) is outside the \(t.groups) groups")
            }
            groupOf[i] = Int32(g)
        }
        var order: [Int32]? = nil                            // [inFeatures]
        if (0..<(n / 32)).contains(where: { b in (1..<32).contains { groupOf[32 &* b &+ $0] != groupOf[32 &* b] } }) {
            let sorted = (0..<Int32(n)).sorted { (groupOf[Int($0)], $0) < (groupOf[Int($1)], $1) }
            for b in 0..<(n / 32) where groupOf[Int(sorted[32 * b])] != groupOf[Int(sorted[32 * b + 31])] {
                throw KernelError.invalidShape("g_idx: group \(groupOf[Int(sorted[32 * b])]) does not fill whole 32-column blocks")
            }
            order = sorted
        }
        for g in 0..<t.groups {
            for o in 0..<out where (t.scaleBits(group: g, column: o) & 0x7C00) == 0x7C00 {
                throw KernelError.invalidShape("scales[\(g), \(o)] is not finite")
            }
        }
        let symmetricZero = 1 << (bits - 1)
        let symmetric = !(0..<t.groups).contains { g in (0..<out).contains { t.zero(group: g, column: $0) != symmetricZero } }
        let type: GGMLType = bits == 4 ? (symmetric ? .q4_0 : .q4_Z) : (symmetric ? .q8_0 : .q8_Z)

        let blocks = n / 32, fields = type == .q4_Z || type == .q8_Z ? 2 : 1
        let rowBytes = blocks * type.blockBytes
        var raw: UnsafeMutableRawPointer? = nil
        // Advised as huge pages: faulting in 4 KiB pages was 37% of a 7B checkpoint's repack
        // time. (Aligning each matrix to 2 MiB as well cost decode a quarter of its speed:
        // every matrix then starts on the same cache sets.)
        guard posix_memalign(&raw, 64, out * rowBytes) == 0, let storage = raw else {
            throw KernelError.invalidShape("cannot allocate \(out * rowBytes) bytes for a GPTQ layer")
        }
        madvise(storage, out * rowBytes, MADV_HUGEPAGE)
        let orderStorage = order.map { o -> UnsafeMutablePointer<Int32> in
            let p = UnsafeMutablePointer<Int32>.allocate(capacity: n)
            p.initialize(from: o, count: n)
            return p
        }
        let blockGroup = (0..<blocks).map { Int(groupOf[Int(order?[32 * $0] ?? Int32(32 * $0))]) }   // [blocks]

        // 16 output columns at a time, so each qweight row is read a cache line at a time.
        // Each row: its scales (and zero points) per block, then its codes in the
        // interleaved layout, as the layout's u8 codes: q itself (8-bit q being the stored
        // c + 128 of c = q - 128).
        let tile = 16, perWord = 32 / bits, wordsPerBlock = 32 / perWord, mask = UInt32((1 << bits) - 1)
        @inline(__always) func word(_ packedRow: Int, _ o: Int) -> UInt32 {
            t.qweight.loadUnaligned(fromByteOffset: 4 &* (packedRow &* out &+ o), as: UInt32.self)
        }
        /// The f16 bits of the layout's zero point of column o in group g (8-bit: shifted by 128).
        @inline(__always) func zeroBits(_ g: Int, _ o: Int) -> UInt16 {
            Float16(Float(t.zero(group: g, column: o) - (bits == 8 ? 128 : 0))).bitPattern
        }
        let rowFields = UnsafeMutablePointer<UInt16>.allocate(capacity: 2 * blocks)   // [2, blocks]: d, zero point (act-order rows)
        // Act-order layers: codes unpacked to bytes [tile, inFeatures] (stored order), then
        // gathered into the matrix's order [inFeatures].
        let codes = order == nil ? nil : UnsafeMutablePointer<UInt8>.allocate(capacity: tile * n)
        let natural = order == nil ? nil : UnsafeMutablePointer<UInt8>.allocate(capacity: n)
        defer { rowFields.deallocate(); codes?.deallocate(); natural?.deallocate() }
        for o0 in stride(from: 0, to: out, by: tile) {
            let width = min(tile, out - o0)
            if let codes {
                for k in 0..<(n / perWord) {
                    for c in 0..<width {
                        let w = word(k, o0 &+ c), target = codes + (c &* n &+ k &* perWord)
                        for e in 0..<perWord { target[e] = UInt8(truncatingIfNeeded: (w >> UInt32(bits &* e)) & mask) }
                    }
                }
            }
            if let order, let codes, let natural {
                for c in 0..<width {
                    let o = o0 &+ c
                    for b in 0..<blocks {
                        let g = blockGroup[b]
                        rowFields[b] = t.scaleBits(group: g, column: o)
                        if fields == 2 { rowFields[blocks &+ b] = zeroBits(g, o) }
                    }
                    let rowCodes = codes + c &* n
                    for j in 0..<n { natural[j] = rowCodes[Int(order[j])] }
                    writeInterleavedRow32(fields: fields, bits: bits, cols: n, natural: natural, d: rowFields, m: rowFields + blocks,
                                          into: storage + o &* rowBytes)
                }
                continue
            }
            // Stored order: group by group, each for the tile's 16 rows (so every qweight
            // cache line read serves all 16 at once). Each 4-byte lane of the layout is one
            // qweight word: 8-bit, a lane of code vector k is word k of its block; 4-bit, a
            // lane of packed vector p is word p of its block, nibbles j and j + 4 side by side.
            var groupAt = 0
            forEachLaneGroup(blocks: blocks) { group in
                let g = group.size
                for c in 0..<width {
                    let o = o0 &+ c, at = storage + (o &* rowBytes &+ groupAt)
                    for i in 0..<g {
                        let b = group.first &+ i
                        at.storeBytes(of: t.scaleBits(group: blockGroup[b], column: o), toByteOffset: 2 &* i, as: UInt16.self)
                        if fields == 2 { at.storeBytes(of: zeroBits(blockGroup[b], o), toByteOffset: 2 &* (g &+ i), as: UInt16.self) }
                    }
                    let packed = at + 2 &* fields &* g
                    @inline(__always) func blockWord(_ block: Int, _ m: Int) -> UInt32 { word((group.first &+ block) &* wordsPerBlock &+ m, o) }
                    if g == 1 {
                        if bits == 4 {                   // ggml's 16 bytes: byte i = value i | value i + 16 << 4
                            packed.storeBytes(of: spreadNibbles(blockWord(0, 0)) | spreadNibbles(blockWord(0, 2)) << 4, as: UInt64.self)
                            packed.storeBytes(of: spreadNibbles(blockWord(0, 1)) | spreadNibbles(blockWord(0, 3)) << 4, toByteOffset: 8, as: UInt64.self)
                        } else {
                            for m in 0..<8 { packed.storeBytes(of: blockWord(0, m), toByteOffset: 4 &* m, as: UInt32.self) }
                        }
                    } else {
                        for l in 0..<8 {
                            let block = l % g, first = (l / g) &* (g == 8 ? 0 : bits == 4 ? 2 : 4)
                            for k in 0..<(bits == 4 ? g / 2 : g) {
                                let w = blockWord(block, first &+ k)
                                packed.storeBytes(of: bits == 4 ? pairNibbles(w) : w, toByteOffset: 32 &* k &+ 4 &* l, as: UInt32.self)
                            }
                        }
                    }
                }
                groupAt &+= g &* type.blockBytes
            }
        }
        var matrix = try WeightMatrix(type: type, rows: out, cols: n, data: storage, layout: .interleaved,
                                      inputOrder: orderStorage.map { UnsafePointer($0) })
        matrix.refinedPrefill = true
        return RepackedMatrix(matrix: matrix, storage: storage, order: orderStorage)
    }
}

/// The eight nibbles of w (value m at bits 4m...4m+3) moved to the low nibbles of eight
/// bytes (value m in byte m).
@inline(__always)
func spreadNibbles(_ w: UInt32) -> UInt64 {
    var x = UInt64(w)
    x = (x | x << 16) & 0x0000_FFFF_0000_FFFF
    x = (x | x << 8) & 0x00FF_00FF_00FF_00FF
    x = (x | x << 4) & 0x0F0F_0F0F_0F0F_0F0F
    return x
}

/// Byte j of the result (j in 0..<4) holds nibbles j and j + 4 of w, low and high: one
/// 4-byte lane of a packed 4-bit code vector from one word of 8 codes.
@inline(__always)
func pairNibbles(_ w: UInt32) -> UInt32 {
    let x = spreadNibbles(w)
    return UInt32(truncatingIfNeeded: x) | UInt32(truncatingIfNeeded: x >> 32) << 4
}

/// An AutoAWQ GEMM layer (4-bit, as Qwen2.5's AWQ releases ship) rewritten in GPTQ's
/// packing, so `RepackedMatrix.fromGPTQ` turns it into the same kernel formats with no
/// rounding: AWQ packs eight output columns per int32 in the order [0, 2, 4, 6, 1, 3, 5, 7]
/// (AutoAWQ's `AWQ_ORDER`) and stores zeros as they are; GPTQ packs eight inputs per int32
/// in order. w[o, i] = scale[g, o] * (q[i, o] - zero[g, o]) in both. The converted words
/// live as long as this value.
public final class AWQLayer {
    public let tensors: GPTQTensors
    private let qweight: UnsafeMutablePointer<UInt32>   // [inFeatures / 8, outFeatures] GPTQ packing
    private let qzeros: UnsafeMutablePointer<UInt32>    // [groups, outFeatures / 8] GPTQ packing (nibbles by column)

    /// `qweight`: int32 [inFeatures, outFeatures / 8]; `qzeros`: int32 [groups, outFeatures / 8];
    /// `scales`: f16 [groups, outFeatures]; shapes checked by the caller.
    public init(inFeatures: Int, outFeatures: Int, groupSize: Int, groups: Int,
                qweight awqWeight: UnsafeRawPointer, qzeros awqZeros: UnsafeRawPointer, scales: UnsafeRawPointer) {
        let wordsPerRow = outFeatures / 8
        /// Nibble of AWQ word `w` holding column 8 * (o / 8) + o % 8.
        @inline(__always) func awqNibble(_ w: UInt32, _ column: Int) -> UInt32 {
            (w >> UInt32(4 &* awqNibbleOfColumn[column])) & 15
        }
        qweight = .allocate(capacity: inFeatures / 8 * outFeatures)
        qweight.initialize(repeating: 0, count: inFeatures / 8 * outFeatures)
        for i in 0..<inFeatures {
            for wordIndex in 0..<wordsPerRow {
                let w = awqWeight.loadUnaligned(fromByteOffset: 4 &* (i &* wordsPerRow &+ wordIndex), as: UInt32.self)
                for column in 0..<8 {
                    qweight[(i / 8) &* outFeatures &+ 8 &* wordIndex &+ column] |= awqNibble(w, column) << UInt32(4 &* (i % 8))
                }
            }
        }
        qzeros = .allocate(capacity: groups * wordsPerRow)
        qzeros.initialize(repeating: 0, count: groups * wordsPerRow)
        for g in 0..<groups {
            for wordIndex in 0..<wordsPerRow {
                let w = awqZeros.loadUnaligned(fromByteOffset: 4 &* (g &* wordsPerRow &+ wordIndex), as: UInt32.self)
                for column in 0..<8 { qzeros[g &* wordsPerRow &+ wordIndex] |= awqNibble(w, column) << UInt32(4 &* column) }
            }
        }
        var t = GPTQTensors(bits: 4, inFeatures: inFeatures, outFeatures: outFeatures, groupSize: groupSize, groups: groups,
                            qweight: UnsafeRawPointer(qweight), qzeros: UnsafeRawPointer(qzeros), scales: scales, groupIndex: nil)
        t.zeroOffset = 0
        tensors = t
    }

    deinit {
        qweight.deallocate()
        qzeros.deallocate()
    }
}

/// For output column c of an 8-column AWQ word, the nibble holding it: the inverse of
/// AWQ_ORDER [0, 2, 4, 6, 1, 3, 5, 7] (nibble i holds column AWQ_ORDER[i]).
private let awqNibbleOfColumn = [0, 4, 1, 5, 2, 6, 3, 7]
