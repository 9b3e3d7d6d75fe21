#if canImport(Glibc)
import Glibc
#endif

// Elementwise and attention kernels of the transformer block: RMSNorm, RoPE,
// softmax, SiLU-gated FFN activation, and causal attention over an f16 KV cache.
// The cheap ones are portable Swift here; attention and SwiGLU, which convert f16 and
// call exp per element, go through the kernel table.

/// y = x / sqrt(mean(x^2) + eps) * weight, for one row of n values. x and y may alias.
@inlinable
public func rmsNorm(_ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                    n: Int, eps: Float) {
    var sum = SIMD16<Float>()
    var i = 0
    while i + 16 <= n {
        let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
        sum.addProduct(v, v)
        i += 16
    }
    var total = sum.sum()
    while i < n { total += x[i] * x[i]; i += 1 }
    let scale = 1 / (total / Float(n) + eps).squareRoot()
    for j in 0..<n { y[j] = x[j] * scale * weight[j] }
}

/// The rotation angles of RoPE for one position: cos/sin of position * theta^(-2i/ropeDim)
/// for i in 0..<ropeDim/2, written to cosines[half] and sines[half].
@inlinable
public func ropeAngles(position: Int, ropeDim: Int, theta: Float,
                       cosines: UnsafeMutablePointer<Float>, sines: UnsafeMutablePointer<Float>) {
    for i in 0..<(ropeDim / 2) {
        let angle = Double(position) * pow(Double(theta), -2.0 * Double(i) / Double(ropeDim))
        cosines[i] = Float(cos(angle))
        sines[i] = Float(sin(angle))
    }
}

/// Rotary position embedding, NeoX / rotate-half layout (HF's `rotate_half`): in each
/// head, dims i and i + ropeDim/2 form a pair rotated by the angle of `ropeAngles`.
/// x: [heads, headDim] for one token; dims past ropeDim are left alone.
@inlinable
public func ropeNeoX(_ x: UnsafeMutablePointer<Float>, heads: Int, headDim: Int, ropeDim: Int,
                     cosines: UnsafePointer<Float>, sines: UnsafePointer<Float>) {
    let half = ropeDim / 2
    for h in 0..<heads {
        let base = x + h * headDim
        for i in 0..<half {
            let x0 = base[i], x1 = base[i + half]
            base[i] = x0 * cosines[i] - x1 * sines[i]
            base[i + half] = x0 * sines[i] + x1 * cosines[i]
        }
    }
}

/// In-place softmax of n values.
@inlinable
public func softmax(_ x: UnsafeMutablePointer<Float>, n: Int) {
    guard n > 0 else { return }
    var maximum = x[0]
    for i in 1..<n where x[i] > maximum { maximum = x[i] }
    var sum: Float = 0
    for i in 0..<n {
        let e = expf(x[i] - maximum)
        x[i] = e
        sum += e
    }
    let inverse = 1 / sum
    for i in 0..<n { x[i] *= inverse }
}

/// gate[i] = silu(gate[i]) * up[i] over n values (SwiGLU), by the active kernels.
@inlinable
public func siluMultiply(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, n: Int) {
    KernelTable.active.swiGLU(gate, up, n)
}

/// y[i] += x[i]
@inlinable
public func addInPlace(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, n: Int) {
    var i = 0
    while i + 16 <= n {
        let a = UnsafeRawPointer(y + i).loadUnaligned(as: SIMD16<Float>.self)
        let b = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
        UnsafeMutableRawPointer(y + i).storeBytes(of: a + b, as: SIMD16<Float>.self)
        i += 16
    }
    while i < n { y[i] += x[i]; i += 1 }
}

/// Causal attention of one query head over `length` cached positions, by the active kernels.
///   q:      [headDim] f32 (already rotated and scaled)
///   keys:   [length, kvStride] f16, this head's slice starts at keys[0]
///   values: [length, kvStride] f16, likewise
///   scores: [length] f32 scratch
///   out:    [headDim] f32
@inlinable
public func attendHead(q: UnsafePointer<Float>, keys: UnsafePointer<Float16>, values: UnsafePointer<Float16>,
                       kvStride: Int, length: Int, headDim: Int,
                       scores: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>) {
    KernelTable.active.attend(q, keys, values, kvStride, length, headDim, scores, out)
}
