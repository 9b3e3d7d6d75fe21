#if canImport(Glibc)
import Glibc
#endif

// The cheap elementwise steps of the transformer block, portable Swift: RMSNorm, RoPE,
// softmax, residual adds. Attention and SwiGLU, which convert f16 and call exp per
// element, are kernels of the table (`KernelTable.attend`, `KernelTable.swiGLU`); so is
// RMSNorm (`KernelTable.rmsNorm`: the x86 tables fuse its squares with vfmadd, the
// portable table is this function).

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
