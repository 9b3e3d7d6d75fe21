/// A 64-bit hash over bytes, fed in pieces of any size: each 8-byte little-endian word w
/// goes through h = rotl((h ^ w) * 0x9E3779B97F4A7C15, 27) (a bijection of h for a given
/// word, so a change confined to one word always changes the result), a last partial word
/// zero-padded, then the byte count and splitmix64's finalizer. Fast (a multiply per 8
/// bytes) and enough to detect corruption; not a cryptographic hash. Saved session files
/// carry it as their checksum (`SessionFile`), so its definition is part of that format.
struct Hash64 {
    private var h: UInt64 = 0x51_57_45_4E_53_45_53_53   // "QWENSESS"
    private var pending: UInt64 = 0                      // bytes of an incomplete word
    private var pendingBytes = 0
    private var total: UInt64 = 0

    init() {}

    private mutating func mix(_ word: UInt64) {
        let m = (h ^ word) &* 0x9E37_79B9_7F4A_7C15
        h = m << 27 | m >> 37
    }

    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        let n = bytes.count
        total &+= UInt64(n)
        var i = 0
        while pendingBytes != 0 && i < n {
            pending |= UInt64(bytes[i]) << (8 * UInt64(pendingBytes))
            pendingBytes += 1
            i += 1
            if pendingBytes == 8 { mix(pending); pending = 0; pendingBytes = 0 }
        }
        while i + 8 <= n {
            mix(UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)))
            i += 8
        }
        while i < n {
            pending |= UInt64(bytes[i]) << (8 * UInt64(pendingBytes))
            pendingBytes += 1
            i += 1
        }
    }

    mutating func update<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { update($0) }
    }

    mutating func update(_ text: String) {
        update(UInt64(text.utf8.count))
        var text = text
        text.withUTF8 { update(UnsafeRawBufferPointer($0)) }
    }

    var value: UInt64 {
        var copy = self
        if copy.pendingBytes > 0 { copy.mix(copy.pending) }
        copy.mix(copy.total)
        var z = copy.h
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// One tensor of the file(s) a model was loaded from, as its fingerprint reads it.
struct SourceTensor {
    let name: String
    /// The file's type name ("Q4_K", "BF16", ...).
    let type: String
    /// As the file states it.
    let shape: [Int]
    /// The tensor's bytes in the mapped file.
    let data: UnsafeRawBufferPointer
}

extension Model {
    /// Bytes hashed at each end of a tensor, and per stride sample between them.
    static let fingerprintEdgeBytes = 4096, fingerprintSampleBytes = 256, fingerprintSamples = 16

    /// A *sampled* fingerprint of a model: the config (architecture, dimensions, layer
    /// count, vocabulary size, RoPE settings), the tokenizer's vocabulary size, and every
    /// tensor's name, type and shape with a sample of its bytes (the first and last 4 KiB
    /// and 16 evenly spaced 256-byte pieces between them), so computing it reads about
    /// 12 KiB per tensor (a few MB, milliseconds, for a 500 MB model) instead of every
    /// weight. Two files with the same fingerprint are the same model for every practical
    /// purpose (the same checkpoint converted twice, or a copy); a change to weights
    /// outside the samples alone would not show. Saved sessions carry it to refuse being
    /// loaded into another model.
    static func fingerprint(config: ModelConfig, vocabularySize: Int, tensors: [SourceTensor]) -> UInt64 {
        var hash = Hash64()
        hash.update(config.architecture.rawValue)
        for value in [config.vocabSize, config.hiddenSize, config.intermediateSize, config.layerCount, config.headCount,
                      config.kvHeadCount, config.headDim, config.contextLength, config.ropeDim, vocabularySize] {
            hash.update(Int64(value))
        }
        hash.update(config.rmsNormEps.bitPattern)
        hash.update(config.ropeTheta.bitPattern)
        hash.update(UInt8(config.tiedEmbeddings ? 1 : 0) | UInt8(config.useDynamicNTK ? 2 : 0) | UInt8(config.useLogNAttention ? 4 : 0))
        hash.update(UInt64(tensors.count))
        for tensor in tensors.sorted(by: { $0.name < $1.name }) {
            hash.update(tensor.name)
            hash.update(tensor.type)
            hash.update(UInt64(tensor.shape.count))
            for dim in tensor.shape { hash.update(Int64(dim)) }
            let data = tensor.data
            hash.update(UInt64(data.count))
            let edge = min(fingerprintEdgeBytes, data.count)
            hash.update(UnsafeRawBufferPointer(rebasing: data[..<edge]))
            hash.update(UnsafeRawBufferPointer(rebasing: data[(data.count - edge)...]))
            let middle = data.count - 2 * edge
            guard middle > fingerprintSampleBytes else { continue }
            let stride = middle / fingerprintSamples
            for i in 0..<fingerprintSamples {
                let start = edge + i * stride
                hash.update(UnsafeRawBufferPointer(rebasing: data[start..<min(start + fingerprintSampleBytes, data.count - edge)]))
            }
        }
        return hash.value
    }
}
