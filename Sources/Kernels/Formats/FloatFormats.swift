// F32, F16 and BF16: one value per element, no blocks; the kernels read them against the
// f32 activations. (Three formats, one file: each is a single load-and-convert.)

/// F32: IEEE single precision, 4 bytes per value.
enum F32Format {
    @inline(__always) static func value(_ p: UnsafeRawPointer, _ i: Int) -> Float {
        p.loadUnaligned(fromByteOffset: 4 &* i, as: Float.self)
    }
}

/// F16: IEEE half precision, 2 bytes per value.
enum F16Format {
    @inline(__always) static func value(_ p: UnsafeRawPointer, _ i: Int) -> Float { loadHalf(p, 2 &* i) }
}

/// BF16: the upper 16 bits of an f32, 2 bytes per value.
enum BF16Format {
    @inline(__always) static func value(_ p: UnsafeRawPointer, _ i: Int) -> Float {
        Float(bitPattern: UInt32(p.loadUnaligned(fromByteOffset: 2 &* i, as: UInt16.self)) << 16)
    }
}
