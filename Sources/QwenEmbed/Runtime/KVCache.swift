import Kernels
#if canImport(Glibc)
import Glibc
#endif

/// How a KV cache stores each position's keys and values (`SessionOptions.kvType`).
public enum KVCacheType: String, Sendable, CaseIterable {
    /// f16: 2 bytes per value (llama.cpp's default).
    case f16
    /// ggml's Q8_0 (as llama.cpp's `-ctk q8_0 -ctv q8_0`): per 32 values an f16 scale and
    /// 32 int8, 34 bytes instead of 64 (53% of f16); needs a head size that is a multiple
    /// of 32.
    case q8

    /// Bytes of `values` values (a row, or a head's slice of one), values a multiple of 32 for q8.
    public func bytes(values: Int) -> Int {
        switch self {
        case .f16: return 2 * values
        case .q8: return values / 32 * 34
        }
    }

    /// Writes x[count] as one row of this type into row[bytes(values: count)].
    func store(_ x: UnsafePointer<Float>, count: Int, into row: UnsafeMutableRawPointer) {
        switch self {
        case .f16: storeRowF16(x, count: count, into: row)
        case .q8: quantizeRowQ8_0(x, count: count, into: row)
        }
    }

    /// Bytes of KV cache one token takes on a model of `config` (keys and values of every
    /// layer), nil where this type cannot serve it (q8 and a head size not a multiple of 32).
    public func bytesPerToken(_ config: ModelConfig) -> Int? {
        guard self != .q8 || config.headDim % 32 == 0 else { return nil }
        return 2 * config.layerCount * bytes(values: config.kvHeadCount * config.headDim)
    }
}

/// The keys and values of one sequence (a session's conversation) for every layer and
/// position, f16 or Q8_0 (`KVCacheType`; Kernels/KVRows.swift has the row formats). f16
/// halves the memory of f32 (Qwen-7B: 256 KiB per token instead of 512) at no measurable
/// perplexity cost; Q8_0 halves it again, nearly (`BENCHMARKS.md`). Callers see rows of
/// bytes: `rowBytes` per position, layer and keys or values.
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
    public let type: KVCacheType
    /// Bytes of one position's keys (or values) in one layer: kvDim values in `type`.
    public let rowBytes: Int
    /// Positions the storage holds now (0...capacity).
    public private(set) var allocated = 0
    private var keys: UnsafeMutableRawPointer? = nil    // [layers, allocated, rowBytes]
    private var values: UnsafeMutableRawPointer? = nil  // [layers, allocated, rowBytes]
    /// Token ids whose keys/values are stored at positions 0..<tokens.count.
    public internal(set) var tokens: [Int32] = []
    /// The dynamic-NTK alpha the cached keys were rotated with and the next positions
    /// will be (1 = plain RoPE); set per call by `ForwardPass.ntkAlpha` through the engine.
    public internal(set) var ntkAlpha: Double = 1
    /// Positions 0..<promptRowPrefix were all computed as prompt rows (f32, `RowKind.prompt`),
    /// none as a generated token: where the kernel table's prefill rows are independent of
    /// their batch, they hold exactly what any sequence with those tokens computes, so
    /// they may be copied into another cache of the same type (`copy`).
    public internal(set) var promptRowPrefix = 0

    /// Smallest storage allocated at the first use.
    static let initialPositions = 256

    /// A cache of `type` whose heads are `headDim` values (kvDim a multiple of it); q8
    /// needs headDim a multiple of 32 (INVALID_ARGUMENT otherwise).
    public init(layerCount: Int, kvDim: Int, headDim: Int, capacity: Int, type: KVCacheType = .f16) throws {
        guard layerCount > 0, kvDim > 0, headDim > 0, kvDim % headDim == 0, capacity > 0 else {
            throw QwenError.invalidArgument("KV cache of \(capacity) positions")
        }
        guard type != .q8 || headDim % 32 == 0 else {
            throw QwenError.invalidArgument("kv_type q8 needs a head size that is a multiple of 32; this model's is \(headDim)")
        }
        let (perLayer, overflow1) = capacity.multipliedReportingOverflow(by: kvDim)
        let (elements, overflow2) = perLayer.multipliedReportingOverflow(by: layerCount)
        guard !overflow1, !overflow2, elements <= Int.max / 4 else {
            throw QwenError.outOfMemory("KV cache of \(capacity) positions is too large")
        }
        self.layerCount = layerCount
        self.kvDim = kvDim
        self.capacity = capacity
        self.type = type
        rowBytes = type.bytes(values: kvDim)
    }

    public convenience init(config: ModelConfig, capacity: Int, type: KVCacheType = .f16) throws {
        try self.init(layerCount: config.layerCount, kvDim: config.kvHeadCount * config.headDim, headDim: config.headDim,
                      capacity: capacity, type: type)
    }

    deinit {
        free(keys)
        free(values)
    }

    /// Bytes the storage takes now.
    public var bytes: Int { 2 * layerCount * allocated * rowBytes }

    /// Bytes one position takes: keys and values of every layer.
    public var bytesPerToken: Int { 2 * layerCount * rowBytes }

    /// Makes room for positions 0..<count (count <= capacity), growing the storage.
    func reserve(_ count: Int) throws {
        guard count > allocated else { return }
        guard count <= capacity else {
            throw QwenError.contextFull("the context window of \(capacity) tokens is full")
        }
        let grown = min(capacity, max(count, 2 * allocated, KVCache.initialPositions))
        let size = layerCount * grown * rowBytes
        guard let newKeys = malloc(size), let newValues = malloc(size) else {
            throw QwenError.outOfMemory("cannot grow a KV cache to \(grown) positions (\((size * 2) >> 20) MiB)")
        }
        if let keys, let values {
            let used = tokens.count * rowBytes   // only positions that hold something
            for layer in 0..<layerCount where used > 0 {
                (newKeys + layer * grown * rowBytes).copyMemory(from: keys + layer * allocated * rowBytes, byteCount: used)
                (newValues + layer * grown * rowBytes).copyMemory(from: values + layer * allocated * rowBytes, byteCount: used)
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
    /// layer), which must extend this cache's tokens; both caches of one type (rows are
    /// copied as bytes, never converted). Prompt-row positions stay prompt rows.
    func copy(upTo end: Int, from source: KVCache) throws {
        let start = tokens.count
        guard start <= end, end <= source.tokens.count, source.type == type, source.kvDim == kvDim,
              source.layerCount == layerCount, tokens[...] == source.tokens[..<start] else {
            throw QwenError.internalError("KV cache copy of positions \(start)..<\(end) from a cache of \(source.tokens.count)")
        }
        try reserve(end)
        let count = (end - start) * rowBytes
        for layer in 0..<layerCount where count > 0 {
            keyPointer(layer: layer, position: start).copyMemory(from: source.keyPointer(layer: layer, position: start), byteCount: count)
            valuePointer(layer: layer, position: start).copyMemory(from: source.valuePointer(layer: layer, position: start), byteCount: count)
        }
        if promptRowPrefix == start && source.promptRowPrefix >= end { promptRowPrefix = end }
        tokens.append(contentsOf: source.tokens[start..<end])
    }

    /// Row `position` of `layer`'s keys [rowBytes]; position < allocated.
    func keyPointer(layer: Int, position: Int) -> UnsafeMutableRawPointer {
        keys.unsafelyUnwrapped + (layer * allocated + position) * rowBytes
    }

    /// Row `position` of `layer`'s values [rowBytes]; position < allocated.
    func valuePointer(layer: Int, position: Int) -> UnsafeMutableRawPointer {
        values.unsafelyUnwrapped + (layer * allocated + position) * rowBytes
    }
}

// MARK: saved sessions

extension KVCache {
    /// The layout of a saved cache's rows: the kv-type byte `save(to:)` writes first.
    enum SavedLayout: UInt8 {
        /// keys and values as f16 rows, [n, kvDim] each per layer.
        case f16 = 0
        /// keys and values as Q8_0 rows, [n, kvDim / 32 blocks of 34 bytes] each per layer.
        case q8 = 1

        init(_ type: KVCacheType) {
            switch type {
            case .f16: self = .f16
            case .q8: self = .q8
            }
        }

        var type: KVCacheType {
            switch self {
            case .f16: return .f16
            case .q8: return .q8
            }
        }
    }

    /// Writes the cache as a saved session holds it (`SessionFile`): u8 layout (its type),
    /// u32 layers, u32 kvDim, u32 token count n, u32 `promptRowPrefix`, u64 `ntkAlpha` (its
    /// bits), n x i32 tokens, then per layer the keys and values of positions 0..<n, n
    /// rows of `rowBytes` each. Rows are written as they are in memory (little-endian hosts).
    func save(to out: inout SessionFileWriter) throws {
        try out.u8(SavedLayout(type).rawValue)
        try out.count(layerCount, "the layer count")
        try out.count(kvDim, "the KV width")
        try out.count(tokens.count, "the cached token count")
        try out.count(promptRowPrefix, "the prompt-row prefix")
        try out.u64(ntkAlpha.bitPattern)
        try tokens.withUnsafeBytes { try out.bytes($0) }
        let used = tokens.count * rowBytes   // one layer's keys (or values) in use
        for layer in 0..<layerCount where used > 0 {
            try out.bytes(UnsafeRawBufferPointer(start: keyPointer(layer: layer, position: 0), count: used))
            try out.bytes(UnsafeRawBufferPointer(start: valuePointer(layer: layer, position: 0), count: used))
        }
    }

    /// A cache of `capacity` positions holding what `save(to:)` wrote (of the type it was
    /// saved with), checked against `config` (layers, KV width, token ids) before its
    /// storage is allocated. Throws `.badModel` for what does not fit the model,
    /// `.contextFull` when its tokens do not fit `capacity`.
    static func load(from input: inout SessionFileReader, config: ModelConfig, capacity: Int) throws -> KVCache {
        var at = input.offset
        let layout = try input.u8("the KV cache layout")
        guard let saved = SavedLayout(rawValue: layout) else { throw input.corrupt("KV cache layout \(layout) is not one this build reads", at: at) }
        let cache = try KVCache(config: config, capacity: capacity, type: saved.type)
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
        let rowBytes = count * cache.rowBytes   // one layer's keys (or values) in use
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
