/// Element types a safetensors file can declare (the subset Qwen checkpoints use,
/// plus the common others so a file is at least described before it is refused).
public enum SafetensorsDType: String, Sendable {
    case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16"
    case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8", u8 = "U8", bool = "BOOL"

    public var byteWidth: Int {
        switch self {
        case .f64, .i64: return 8
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .i8, .u8, .bool: return 1
        }
    }
}

/// One tensor of a safetensors checkpoint, read in place from its mapped shard.
/// `shape` is outermost first (PyTorch order): a Linear weight is [out, in].
public struct SafetensorsTensor: @unchecked Sendable {
    public let name: String
    public let dtype: SafetensorsDType
    public let shape: [Int]
    public let data: UnsafeRawBufferPointer
    public var elementCount: Int { shape.reduce(1, *) }
}

/// A single .safetensors file behind mmap. Layout: u64 header length N, N bytes of JSON
/// header {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}},
/// then the data section; offsets are relative to the data section.
public final class SafetensorsFile: @unchecked Sendable {
    public let file: MappedFile
    public let tensors: [String: SafetensorsTensor]
    public let metadata: [String: String]

    static let maxHeaderBytes = 100 << 20

    public convenience init(path: String, useMmap: Bool = true) throws {
        try self.init(file: MappedFile(path: path, useMmap: useMmap))
    }

    public init(file: MappedFile) throws {
        self.file = file
        let name = FileSystem.lastComponent(file.path)
        var reader = ByteReader(file.bytes, context: name)
        let headerLength = try reader.read(UInt64.self, "header length")
        guard headerLength <= UInt64(SafetensorsFile.maxHeaderBytes) else {
            throw QwenError.badModel("\(name): header length \(headerLength) is absurd")
        }
        guard headerLength <= UInt64(reader.remaining) else {
            throw QwenError.badModel("\(name): header length \(headerLength) runs past the end of the file (\(file.size) bytes)")
        }
        let header = try reader.slice(Int(headerLength), "header")
        let json = try JSONValue.parse(header, context: "\(name) header")
        guard let entries = json.object else { throw QwenError.badModel("\(name): header is not a JSON object") }
        let dataStart = reader.offset
        let dataSize = file.size - dataStart

        var tensors: [String: SafetensorsTensor] = [:]
        var metadata: [String: String] = [:]
        for (key, entry) in entries {
            if key == "__metadata__" {
                for (k, v) in entry.object ?? [:] { if let s = v.string { metadata[k] = s } }
                continue
            }
            guard let dtypeName = entry["dtype"]?.string else { throw QwenError.badModel("\(name): tensor \(key) has no dtype") }
            guard let dtype = SafetensorsDType(rawValue: dtypeName) else {
                throw QwenError.unsupportedModel("\(name): tensor \(key) has dtype \(dtypeName), which is not supported")
            }
            guard let shapeValues = entry["shape"]?.array else { throw QwenError.badModel("\(name): tensor \(key) has no shape") }
            var shape: [Int] = []
            var elements = 1
            for v in shapeValues {
                guard let extent = v.int, extent >= 0, extent <= 1 << 40 else {
                    throw QwenError.badModel("\(name): tensor \(key) has an invalid shape")
                }
                let (product, overflow) = elements.multipliedReportingOverflow(by: extent)
                guard !overflow, product <= 1 << 40 else { throw QwenError.badModel("\(name): tensor \(key) has too many elements") }
                elements = product
                shape.append(extent)
            }
            guard let offsets = entry["data_offsets"]?.array, offsets.count == 2,
                  let begin = offsets[0].int, let end = offsets[1].int else {
                throw QwenError.badModel("\(name): tensor \(key) has no valid data_offsets")
            }
            guard begin >= 0, begin <= end, end <= dataSize else {
                throw QwenError.badModel("\(name): tensor \(key) data_offsets [\(begin), \(end)] lie outside the data section (\(dataSize) bytes)")
            }
            guard end - begin == elements * dtype.byteWidth else {
                throw QwenError.badModel("\(name): tensor \(key) holds \(end - begin) bytes but shape \(shape) of \(dtypeName) needs \(elements * dtype.byteWidth)")
            }
            let base = file.bytes.baseAddress! + dataStart + begin
            tensors[key] = SafetensorsTensor(name: key, dtype: dtype, shape: shape,
                                             data: UnsafeRawBufferPointer(start: base, count: end - begin))
        }
        try checkNoOverlap(tensors.values.map { ($0.name, $0.data) }, file: name)
        self.tensors = tensors
        self.metadata = metadata
    }
}

/// Throws a bad model naming two tensors whose bytes overlap: a file whose tensors share
/// bytes was written wrongly (or on purpose), and nothing should read one through the other.
func checkNoOverlap(_ ranges: [(name: String, data: UnsafeRawBufferPointer)], file: String) throws {
    let sorted = ranges.filter { $0.data.count > 0 }.sorted { $0.data.baseAddress! < $1.data.baseAddress! }
    for (a, b) in zip(sorted, sorted.dropFirst()) where a.data.baseAddress! + a.data.count > b.data.baseAddress! {
        throw QwenError.badModel("\(file): tensors \(a.name) and \(b.name) overlap")
    }
}

/// A checkpoint directory's weights: `model.safetensors`, or the shards listed in
/// `model.safetensors.index.json` ({"weight_map": {tensor: shard file}}), or every
/// *.safetensors file in the directory when there is no index.
public final class SafetensorsCheckpoint: @unchecked Sendable {
    public let shards: [SafetensorsFile]
    public let tensors: [String: SafetensorsTensor]
    public var fileBytes: UInt64 { shards.reduce(0) { $0 + UInt64($1.file.size) } }

    public init(directory: String, useMmap: Bool = true) throws {
        let indexPath = FileSystem.join(directory, "model.safetensors.index.json")
        var shardNames: [String]
        var weightMap: [String: String]? = nil
        if FileSystem.exists(indexPath) {
            let index = try JSONValue.parse(MappedFile.readAll(path: indexPath), context: "model.safetensors.index.json")
            guard let map = index["weight_map"]?.object else {
                throw QwenError.badModel("model.safetensors.index.json: missing weight_map")
            }
            var names = Set<String>()
            var mapped: [String: String] = [:]
            for (tensor, shard) in map {
                guard let shardName = shard.string, !shardName.contains("/"), !shardName.hasPrefix(".") else {
                    throw QwenError.badModel("model.safetensors.index.json: bad shard name for \(tensor)")
                }
                names.insert(shardName)
                mapped[tensor] = shardName
            }
            shardNames = names.sorted()
            weightMap = mapped
        } else {
            shardNames = try FileSystem.list(directory).filter { $0.hasSuffix(".safetensors") }
        }
        guard !shardNames.isEmpty else { throw QwenError.io("\(directory): no .safetensors files") }
        var shards: [SafetensorsFile] = []
        var tensors: [String: SafetensorsTensor] = [:]
        for shardName in shardNames {
            let shard = try SafetensorsFile(path: FileSystem.join(directory, shardName), useMmap: useMmap)
            shards.append(shard)
            for (name, tensor) in shard.tensors {
                if let expected = weightMap?[name], expected != shardName { continue }
                guard tensors[name] == nil else { throw QwenError.badModel("\(shardName): tensor \(name) appears in two shards") }
                tensors[name] = tensor
            }
        }
        if let weightMap {
            for (name, shard) in weightMap where tensors[name] == nil {
                throw QwenError.badModel("model.safetensors.index.json: \(name) should be in \(shard) but is not")
            }
        }
        self.shards = shards
        self.tensors = tensors
    }

    /// Gives the pages of `range` (bytes of one of the shards) back to the kernel once
    /// nothing reads them again (see `MappedFile.releasePages`); other ranges are ignored.
    public func releasePages(_ range: UnsafeRawBufferPointer) {
        guard let start = range.baseAddress else { return }
        for shard in shards {
            guard let base = shard.file.bytes.baseAddress, start >= base,
                  start + range.count <= base + shard.file.bytes.count else { continue }
            shard.file.releasePages(range)
        }
    }
}
