import KernelABI

/// One input vector in the forms the decode kernels read (`qe_vector`): f32 as given,
/// and int8 with per-32 scales (q8), quantized only when a format of the matrices at hand
/// needs it. Buffers grow to the largest `cols` seen.
public final class QuantizedActivations {
    public private(set) var capacity = 0
    private var q8: UnsafeMutablePointer<Int8>      // [capacity]
    private var d8: UnsafeMutablePointer<Float>     // [capacity / 32]
    private var s8: UnsafeMutablePointer<Float>     // [capacity / 32]
    /// The pointers for the kernels; valid until the next `prepare`.
    public private(set) var vector = qe_vector()

    public init(capacity: Int = 256) {
        q8 = .allocate(capacity: 1); d8 = .allocate(capacity: 1); s8 = .allocate(capacity: 1)
        reserve(capacity)
    }

    deinit { release() }

    private func release() {
        q8.deallocate(); d8.deallocate(); s8.deallocate()
    }

    private func reserve(_ count: Int) {
        guard count > capacity else { return }
        release()
        capacity = (count + 31) / 32 * 32
        q8 = .allocate(capacity: capacity); d8 = .allocate(capacity: capacity / 32); s8 = .allocate(capacity: capacity / 32)
    }

    /// Fills `vector` for x[cols] with the forms `forms` asks for, with `kernels`' quantizers.
    public func prepare(_ x: UnsafePointer<Float>, cols: Int, forms: Set<ActivationForm>, kernels: KernelTable) {
        reserve(cols)
        vector = qe_vector()
        vector.x = x
        if forms.contains(.q8) && cols % 32 == 0 {
            kernels.quantizeQ8(x, cols, q8, d8, s8)
            vector.q8 = UnsafePointer(q8); vector.d8 = UnsafePointer(d8); vector.s8 = UnsafePointer(s8)
        }
    }
}
