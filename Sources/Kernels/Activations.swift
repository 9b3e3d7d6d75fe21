import KernelABI

/// The input vectors of a matrix-vector product, in the forms the decode kernels read
/// (`qe_vector`): f32 as given, and int8 with per-32 scales (q8, and its copy interleaved
/// for the kernels, `lanes`), quantized only when a format of the matrices at hand needs
/// it. One vector per sequence decoded in the step; each is quantized on its own, so a
/// vector's form never depends on the others. Buffers grow to the largest `count * cols`
/// seen.
public final class QuantizedActivations {
    public private(set) var capacity = 0            // values (count * cols) the buffers hold
    private var vectorCapacity = 0                  // qe_vector slots
    private var laneCapacity = 0                    // bytes of lane records
    private var q8: UnsafeMutablePointer<Int8>      // [capacity]: vector b at b * cols
    private var d8: UnsafeMutablePointer<Float>     // [capacity / 32]
    private var s8: UnsafeMutablePointer<Float>     // [capacity / 32]
    private var lanes: UnsafeMutableRawPointer      // [laneCapacity]: vector b at b * qe_lane_record_bytes(cols)
    private var slots: UnsafeMutablePointer<qe_vector>   // [vectorCapacity]
    /// The vectors for the kernels ([count] of the last `prepare`); valid until the next one.
    public var vectors: UnsafePointer<qe_vector> { UnsafePointer(slots) }

    public init(capacity: Int = 256) {
        q8 = .allocate(capacity: 1); d8 = .allocate(capacity: 1); s8 = .allocate(capacity: 1)
        lanes = .allocate(byteCount: 1, alignment: 64)
        slots = .allocate(capacity: 1)
        reserve(values: capacity, vectors: 1)
    }

    deinit { release() }

    private func release() {
        q8.deallocate(); d8.deallocate(); s8.deallocate(); lanes.deallocate(); slots.deallocate()
    }

    private func reserve(values: Int, vectors: Int) {
        guard values > capacity || vectors > vectorCapacity else { return }
        release()
        capacity = max(capacity, (values + 31) / 32 * 32)
        vectorCapacity = max(vectorCapacity, vectors)
        // Records take at most 32 G + 224 <= 256 bytes per 32 values (G = 1).
        laneCapacity = capacity * 8
        q8 = .allocate(capacity: capacity); d8 = .allocate(capacity: capacity / 32); s8 = .allocate(capacity: capacity / 32)
        lanes = .allocate(byteCount: laneCapacity, alignment: 64)
        slots = .allocate(capacity: vectorCapacity)
    }

    /// Quantizes one input into a slot's share of the buffers (`quantizeQ8`), on any thread:
    /// plain pointers, so the pool's threads never touch the class.
    private struct SlotQuantizer {
        let q8: UnsafeMutablePointer<Int8>, d8: UnsafeMutablePointer<Float>, s8: UnsafeMutablePointer<Float>
        let lanes: UnsafeMutableRawPointer
        let cols: Int, recordBytes: Int
        let quantizeQ8: QuantizeQ8Kernel

        /// input[cols] quantized into slot `slot` (values at slot * cols, records at
        /// slot * recordBytes): its vector, `x` unset.
        func vector(_ input: UnsafePointer<Float>, slot: Int) -> qe_vector {
            let q = q8 + slot * cols, d = d8 + slot * cols / 32, s = s8 + slot * cols / 32, l = lanes + slot * recordBytes
            quantizeQ8(input, cols, q, d, s, l)
            var vector = qe_vector()
            vector.q8 = UnsafePointer(q); vector.d8 = UnsafePointer(d); vector.s8 = UnsafePointer(s)
            vector.lanes = UnsafeRawPointer(l).assumingMemoryBound(to: UInt8.self)
            return vector
        }
    }

    /// The quantizer for inputs of `cols` (a multiple of 32) into the current buffers.
    private func slotQuantizer(cols: Int, kernels: KernelTable) -> SlotQuantizer {
        SlotQuantizer(q8: q8, d8: d8, s8: s8, lanes: lanes, cols: cols, recordBytes: Int(qe_lane_record_bytes(cols)),
                      quantizeQ8: kernels.quantizeQ8)
    }

    /// Runs body(b) for b in 0..<count, side by side on `pool` when one is given.
    private static func forEachVector(_ count: Int, pool: ThreadPool?, _ body: (Int) -> Void) {
        if let pool, count > 1 {
            pool.parallelFor(count) { b in body(b) }
        } else {
            for b in 0..<count { body(b) }
        }
    }

    /// Fills `vectors` for the `count` inputs x[count, cols] (row b at x + b * cols) with
    /// the forms `forms` asks for, with `kernels`' quantizer; several vectors are quantized
    /// side by side on `pool` when one is given.
    public func prepare(_ x: UnsafePointer<Float>, count: Int = 1, cols: Int, forms: Set<ActivationForm>, kernels: KernelTable,
                        pool: ThreadPool? = nil) {
        reserve(values: count * cols, vectors: count)
        let quantizer = forms.contains(.q8) && cols % 32 == 0 ? slotQuantizer(cols: cols, kernels: kernels) : nil
        let slots = slots
        Self.forEachVector(count, pool: quantizer == nil ? nil : pool) { b in
            var vector = quantizer?.vector(x + b * cols, slot: b) ?? qe_vector()
            vector.x = x + b * cols
            slots[b] = vector
        }
    }

    /// Fills `vectors` with 2 count int8 vectors for the inputs x[count, cols] (`cols` a
    /// multiple of 32): vector 2b is x_b quantized as `prepare` quantizes it, vector 2b + 1
    /// the remainder x_b - d8 * q8 quantized the same way (its `x` is nil). A product summed
    /// over each pair misses only the remainder's rounding: per value at most half its
    /// block's scale, max|x| / 254 / 254 (~15 bits), against max|x| / 254 for x_b's vector
    /// alone.
    public func prepareRefined(_ x: UnsafePointer<Float>, count: Int, cols: Int, kernels: KernelTable, pool: ThreadPool? = nil) {
        reserve(values: 2 * count * cols, vectors: 2 * count)
        let quantizer = slotQuantizer(cols: cols, kernels: kernels), slots = slots
        Self.forEachVector(count, pool: pool) { b in
            let input = x + b * cols
            var vector = quantizer.vector(input, slot: 2 * b)
            vector.x = input
            slots[2 * b] = vector
            let (q, d) = (vector.q8!, vector.d8!)   // set just above
            withUnsafeTemporaryAllocation(of: Float.self, capacity: cols) { remainder in   // [cols]
                for j in 0..<cols { remainder[j] = input[j] - d[j / 32] * Float(q[j]) }
                slots[2 * b + 1] = quantizer.vector(UnsafePointer(remainder.baseAddress!), slot: 2 * b + 1)
            }
        }
    }
}
