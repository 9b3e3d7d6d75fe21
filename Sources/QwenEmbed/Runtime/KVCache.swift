#if canImport(Glibc)
import Glibc
#endif

/// The keys and values of one sequence (a session's conversation): f16 for every layer
/// and position. f16 halves the memory of f32 (Qwen-7B: 256 KiB per token instead of 512)
/// at no measurable perplexity cost; it is also what llama.cpp uses by default.
///
/// Storage grows with the sequence (doubling, from 256 positions up to `capacity`), so a
/// session costs memory for the tokens it holds, not for its whole window: an idle
/// session that never ran holds none. Used by one thread at a time: the session's caller
/// between calls, the engine's step loop while a call runs.
public final class KVCache: @unchecked Sendable {
    public let layerCount: Int
    /// Positions the cache may hold (the session's n_ctx).
    public let capacity: Int
    /// kvHeads * headDim
    public let kvDim: Int
    /// Positions the storage holds now (0...capacity).
    public private(set) var allocated = 0
    private var keys: UnsafeMutablePointer<Float16>? = nil    // [layers, allocated, kvDim]
    private var values: UnsafeMutablePointer<Float16>? = nil  // [layers, allocated, kvDim]
    /// Token ids whose keys/values are stored at positions 0..<tokens.count.
    public internal(set) var tokens: [Int32] = []
    /// The dynamic-NTK alpha the cached keys were rotated with and the next positions
    /// will be (1 = plain RoPE); set per call by `ForwardPass.ntkAlpha` through the engine.
    public internal(set) var ntkAlpha: Double = 1
    /// Positions 0..<promptRowPrefix were all computed as prompt rows (f32, `RowKind.prompt`),
    /// none as a generated token: where the kernel table's prefill rows are independent of
    /// their batch, they hold exactly what any sequence with those tokens computes, so
    /// they may be copied into another cache (`copy`).
    public internal(set) var promptRowPrefix = 0

    /// Smallest storage allocated at the first use.
    static let initialPositions = 256

    public init(layerCount: Int, kvDim: Int, capacity: Int) throws {
        guard layerCount > 0, kvDim > 0, capacity > 0 else { throw QwenError.invalidArgument("KV cache of \(capacity) positions") }
        let (perLayer, overflow1) = capacity.multipliedReportingOverflow(by: kvDim)
        let (elements, overflow2) = perLayer.multipliedReportingOverflow(by: layerCount)
        guard !overflow1, !overflow2, elements <= Int.max / 4 else {
            throw QwenError.outOfMemory("KV cache of \(capacity) positions is too large")
        }
        self.layerCount = layerCount
        self.kvDim = kvDim
        self.capacity = capacity
    }

    public convenience init(config: ModelConfig, capacity: Int) throws {
        try self.init(layerCount: config.layerCount, kvDim: config.kvHeadCount * config.headDim, capacity: capacity)
    }

    deinit {
        free(keys)
        free(values)
    }

    /// Bytes the storage takes now.
    public var bytes: Int { 2 * 2 * layerCount * allocated * kvDim }

    /// Makes room for positions 0..<count (count <= capacity), growing the storage.
    func reserve(_ count: Int) throws {
        guard count > allocated else { return }
        guard count <= capacity else {
            throw QwenError.contextFull("the context window of \(capacity) tokens is full")
        }
        let grown = min(capacity, max(count, 2 * allocated, KVCache.initialPositions))
        let elements = layerCount * grown * kvDim
        guard let k = malloc(elements * 2), let v = malloc(elements * 2) else {
            throw QwenError.outOfMemory("cannot grow a KV cache to \(grown) positions (\((elements * 4) >> 20) MiB)")
        }
        let newKeys = k.bindMemory(to: Float16.self, capacity: elements)
        let newValues = v.bindMemory(to: Float16.self, capacity: elements)
        if let keys, let values {
            let used = tokens.count * kvDim   // only positions that hold something
            for layer in 0..<layerCount where used > 0 {
                (newKeys + layer * grown * kvDim).update(from: keys + layer * allocated * kvDim, count: used)
                (newValues + layer * grown * kvDim).update(from: values + layer * allocated * kvDim, count: used)
            }
        }
        free(keys)
        free(values)
        keys = newKeys
        values = newValues
        allocated = grown
    }

    /// Drops cached positions from `count` on.
    public func truncate(to count: Int) {
        let count = max(count, 0)
        if count < tokens.count { tokens.removeSubrange(count...) }
        promptRowPrefix = min(promptRowPrefix, count)
    }

    /// Appends `source`'s positions tokens.count..<end (its tokens and keys/values, for every
    /// layer), which must extend this cache's tokens. Prompt-row positions stay prompt rows.
    func copy(upTo end: Int, from source: KVCache) throws {
        let start = tokens.count
        guard start <= end, end <= source.tokens.count, source.kvDim == kvDim, source.layerCount == layerCount,
              tokens[...] == source.tokens[..<start] else {
            throw QwenError.internalError("KV cache copy of positions \(start)..<\(end) from a cache of \(source.tokens.count)")
        }
        try reserve(end)
        let count = (end - start) * kvDim
        for layer in 0..<layerCount where count > 0 {
            keyPointer(layer: layer, position: start).update(from: source.keyPointer(layer: layer, position: start), count: count)
            valuePointer(layer: layer, position: start).update(from: source.valuePointer(layer: layer, position: start), count: count)
        }
        if promptRowPrefix == start && source.promptRowPrefix >= end { promptRowPrefix = end }
        tokens.append(contentsOf: source.tokens[start..<end])
    }

    /// Row `position` of `layer`'s keys [kvDim]; position < allocated.
    func keyPointer(layer: Int, position: Int) -> UnsafeMutablePointer<Float16> {
        keys.unsafelyUnwrapped + (layer * allocated + position) * kvDim
    }

    /// Row `position` of `layer`'s values [kvDim]; position < allocated.
    func valuePointer(layer: Int, position: Int) -> UnsafeMutablePointer<Float16> {
        values.unsafelyUnwrapped + (layer * allocated + position) * kvDim
    }
}

// MARK: saved sessions

extension KVCache {
    /// The layout of a saved cache's rows: the kv-type byte `save(to:)` writes first.
    enum SavedLayout: UInt8 {
        /// keys and values as f16, [n, kvDim] each per layer.
        case f16 = 0
    }

    /// Writes the cache as a saved session holds it (`SessionFile`): u8 layout, u32 layers,
    /// u32 kvDim, u32 token count n, u32 `promptRowPrefix`, u64 `ntkAlpha` (its bits),
    /// n x i32 tokens, then per layer the keys [n, kvDim] and values [n, kvDim] of positions
    /// 0..<n. Rows are written as they are in memory (little-endian hosts).
    func save(to out: inout SessionFileWriter) throws {
        try out.u8(SavedLayout.f16.rawValue)
        try out.count(layerCount, "the layer count")
        try out.count(kvDim, "the KV width")
        try out.count(tokens.count, "the cached token count")
        try out.count(promptRowPrefix, "the prompt-row prefix")
        try out.u64(ntkAlpha.bitPattern)
        try tokens.withUnsafeBytes { try out.bytes($0) }
        let rowBytes = tokens.count * kvDim * MemoryLayout<Float16>.size   // one layer's keys (or values) in use
        for layer in 0..<layerCount where rowBytes > 0 {
            try out.bytes(UnsafeRawBufferPointer(start: keyPointer(layer: layer, position: 0), count: rowBytes))
            try out.bytes(UnsafeRawBufferPointer(start: valuePointer(layer: layer, position: 0), count: rowBytes))
        }
    }

    /// A cache of `capacity` positions holding what `save(to:)` wrote, checked against
    /// `config` (layers, KV width, token ids) before its storage is allocated. Throws
    /// `.badModel` for what does not fit the model, `.contextFull` when its tokens do not
    /// fit `capacity`.
    static func load(from input: inout SessionFileReader, config: ModelConfig, capacity: Int) throws -> KVCache {
        let cache = try KVCache(config: config, capacity: capacity)
        var at = input.offset
        let layout = try input.u8("the KV cache layout")
        guard SavedLayout(rawValue: layout) == .f16 else { throw input.corrupt("KV cache layout \(layout) is not one this build reads", at: at) }
        at = input.offset
        let layers = Int(try input.u32("the KV layer count")), width = Int(try input.u32("the KV width"))
        guard layers == cache.layerCount, width == cache.kvDim else {
            throw input.corrupt("a KV cache of \(layers) layers x \(width) does not fit the model's \(cache.layerCount) x \(cache.kvDim)", at: at)
        }
        at = input.offset
        let count = try input.count("the cached token count", eachAtLeast: MemoryLayout<Int32>.size)
        guard count < capacity else {
            throw QwenError.contextFull("\(input.context): the session's \(count) cached tokens (byte \(at)) do not fit a context of \(capacity) positions")
        }
        at = input.offset
        let prefix = Int(try input.u32("the prompt-row prefix"))
        guard prefix <= count else { throw input.corrupt("prompt-row prefix \(prefix) is beyond the \(count) cached tokens", at: at) }
        at = input.offset
        let alpha = Double(bitPattern: try input.u64("the NTK alpha"))
        guard alpha.isFinite, alpha >= 1 else { throw input.corrupt("NTK alpha \(alpha) is not a finite value >= 1", at: at) }
        at = input.offset
        let ids = try input.slice(count * MemoryLayout<Int32>.size, "the cached tokens")
        let tokens = (0..<count).map { Int32(littleEndian: ids.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self)) }
        if let bad = tokens.firstIndex(where: { $0 < 0 || Int($0) >= config.vocabSize }) {
            throw input.corrupt("cached token \(bad) is id \(tokens[bad]), outside the vocabulary of \(config.vocabSize)", at: at + 4 * bad)
        }
        let rowBytes = count * width * MemoryLayout<Float16>.size   // one layer's keys (or values) in use
        guard rowBytes * 2 * layers <= input.remaining else {
            throw input.corrupt("the KV rows of \(count) tokens need \(rowBytes * 2 * layers) bytes; \(input.remaining) are left", at: input.offset)
        }
        if count > 0 {
            try cache.reserve(count)
            for layer in 0..<layers {
                for (rows, what) in [(cache.keyPointer(layer: layer, position: 0), "keys"), (cache.valuePointer(layer: layer, position: 0), "values")] {
                    let saved = try input.slice(rowBytes, "layer \(layer)'s \(what)")
                    if let source = saved.baseAddress { UnsafeMutableRawPointer(rows).copyMemory(from: source, byteCount: rowBytes) }
                }
            }
        }
        cache.tokens = tokens
        cache.ntkAlpha = alpha
        cache.promptRowPrefix = prefix
        return cache
    }
}
