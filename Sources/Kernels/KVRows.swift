// The KV cache's row formats, written by the forward pass (one row = one position's keys
// or values of one layer, kvDim values) and read by the attention kernels (`attend`,
// `attendQ8` of the kernel table):
//   f16:  kvDim halves, 2 * kvDim bytes.
//   q8_0: ggml's Q8_0 blocks (Formats/Q8_0.swift): per 32 values an f16 scale d and 32
//         int8 q, value = d * q; kvDim / 32 * 34 bytes (kvDim a multiple of 32).
// A head's headDim values (headDim a multiple of 32 for q8_0) are whole blocks, so head h
// starts `rowBytes(headDim) * h` bytes into the row.

/// Writes x[count] as f16 into row[2 * count].
public func storeRowF16(_ x: UnsafePointer<Float>, count: Int, into row: UnsafeMutableRawPointer) {
    let halves = row.assumingMemoryBound(to: Float16.self)
    for i in 0..<count { halves[i] = Float16(x[i]) }
}

/// Writes x[count] (count a multiple of 32) as Q8_0 blocks into row[count / 32 * 34], as
/// ggml's quantize_row_q8_0_ref and gguf-py's quantizer do: per block d = max|x| / 127
/// (stored as f16), q = round-half-away-from-zero(x * (1 / d)) in f32, 0 where d is 0.
public func quantizeRowQ8_0(_ x: UnsafePointer<Float>, count: Int, into row: UnsafeMutableRawPointer) {
    for b in 0..<(count / 32) { Q8_0Format.quantize(x + b &* 32, into: row + b &* Q8_0Format.blockBytes) }
}

/// Reads row[count] back as f32 from the f16 (q8 = false) or Q8_0 row format.
public func dequantizeKVRow(_ row: UnsafeRawPointer, count: Int, q8: Bool, into out: UnsafeMutablePointer<Float>) {
    if q8 {
        for b in 0..<(count / 32) { Q8_0Format.reference(row + b &* Q8_0Format.blockBytes, out + b &* 32) }
    } else {
        for i in 0..<count { out[i] = loadHalf(row, 2 &* i) }
    }
}
