import Kernels

/// A GGUF file (versions 2 and 3) behind mmap: metadata, tensor infos, and tensor data
/// read in place. Every count, length and offset is validated against the file size
/// before use. Layout (little-endian):
///   "GGUF" u32 version, u64 n_tensors, u64 n_kv,
///   n_kv x (string key, u32 type, value),
///   n_tensors x (string name, u32 n_dims, u64 dims[n_dims], u32 ggml_type, u64 offset),
///   padding to `general.alignment` (default 32), then the tensor data section.
public final class GGUFFile: @unchecked Sendable {
    public let file: MappedFile
    public let version: UInt32
    /// Metadata in file order of keys.
    public let metadata: [String: GGUFValue]
    public let metadataKeys: [String]
    public let tensors: [GGUFTensor]
    public let tensorsByName: [String: Int]
    /// Offset of the tensor data section in the file.
    public let dataOffset: Int
    public let alignment: Int

    /// Sanity bounds that reject absurd counts before any allocation.
    static let maxDims = 4
    static let maxStringBytes = 1 << 26

    public convenience init(path: String, useMmap: Bool = true) throws {
        try self.init(file: MappedFile(path: path, useMmap: useMmap))
    }

    public init(file: MappedFile) throws {
        self.file = file
        let name = FileSystem.lastComponent(file.path)
        var reader = ByteReader(file.bytes, context: name)
        let magic = try reader.read(UInt32.self, "magic")
        guard magic == 0x4655_4747 else { throw QwenError.badModel("\(name): not a GGUF file (bad magic)") }
        version = try reader.read(UInt32.self, "version")
        guard version == 2 || version == 3 else {
            throw QwenError.unsupportedModel("\(name): GGUF version \(version) is not supported (2 and 3 are)")
        }
        let tensorCount = try reader.read(UInt64.self, "tensor count")
        let kvCount = try reader.read(UInt64.self, "metadata count")
        // Each metadata entry takes at least 8+4 bytes, each tensor info at least 8+4+4+8.
        guard kvCount <= UInt64(reader.remaining / 12) else {
            throw QwenError.badModel("\(name): metadata count \(kvCount) is larger than the file could hold")
        }
        guard tensorCount <= UInt64(reader.remaining / 24) else {
            throw QwenError.badModel("\(name): tensor count \(tensorCount) is larger than the file could hold")
        }
        var metadata: [String: GGUFValue] = [:]
        var keys: [String] = []
        for index in 0..<Int(kvCount) {
            let key = try GGUFFile.readString(&reader, "metadata key \(index)")
            let type = try reader.read(UInt32.self, "type of \(key)")
            let value = try GGUFFile.readValue(&reader, type: type, key: key, depth: 0)
            if metadata.updateValue(value, forKey: key) == nil { keys.append(key) }
        }
        metadataKeys = keys
        self.metadata = metadata

        var alignment = 32
        if let value = metadata["general.alignment"] {
            guard let a = value.int, a > 0, a <= 1 << 20, a & (a - 1) == 0 else {
                throw QwenError.badModel("\(name): general.alignment must be a power of two")
            }
            alignment = a
        }
        self.alignment = alignment

        struct RawTensor { var name: String; var dims: [Int]; var typeRaw: UInt32; var offset: UInt64 }
        var raw: [RawTensor] = []
        raw.reserveCapacity(Int(tensorCount))
        for index in 0..<Int(tensorCount) {
            let tensorName = try GGUFFile.readString(&reader, "tensor name \(index)")
            let nDims = try reader.read(UInt32.self, "dimension count of \(tensorName)")
            guard nDims >= 1, nDims <= UInt32(GGUFFile.maxDims) else {
                throw QwenError.badModel("\(name): tensor \(tensorName) has \(nDims) dimensions (1...\(GGUFFile.maxDims) allowed)")
            }
            var dims: [Int] = []
            for d in 0..<Int(nDims) {
                let extent = try reader.read(UInt64.self, "dimension \(d) of \(tensorName)")
                guard extent >= 1, extent <= 1 << 40 else {
                    throw QwenError.badModel("\(name): tensor \(tensorName) has absurd dimension \(extent)")
                }
                dims.append(Int(extent))
            }
            let typeRaw = try reader.read(UInt32.self, "type of \(tensorName)")
            let offset = try reader.read(UInt64.self, "offset of \(tensorName)")
            raw.append(RawTensor(name: tensorName, dims: dims, typeRaw: typeRaw, offset: offset))
        }
        let headerEnd = reader.offset
        dataOffset = (headerEnd + alignment - 1) / alignment * alignment
        guard dataOffset <= file.size else {
            throw QwenError.badModel("\(name): tensor data section starts past the end of the file")
        }
        let dataSize = file.size - dataOffset

        var tensors: [GGUFTensor] = []
        var byName: [String: Int] = [:]
        for t in raw {
            guard let type = GGMLType(rawValue: t.typeRaw), type.isGGML else {
                throw QwenError.unsupportedModel("\(name): tensor \(t.name) has ggml type \(t.typeRaw), which is not supported")
            }
            var elements = 1
            for extent in t.dims {
                let (product, overflow) = elements.multipliedReportingOverflow(by: extent)
                guard !overflow, product <= 1 << 40 else {
                    throw QwenError.badModel("\(name): tensor \(t.name) has too many elements")
                }
                elements = product
            }
            guard let rowBytes = type.rowSize(t.dims[0]) else {
                throw QwenError.badModel("\(name): tensor \(t.name): row of \(t.dims[0]) elements is not a whole number of \(type.name) blocks")
            }
            let byteCount = rowBytes * (elements / t.dims[0])
            guard t.offset % UInt64(alignment) == 0 else {
                throw QwenError.badModel("\(name): tensor \(t.name) offset \(t.offset) is not aligned to \(alignment)")
            }
            guard t.offset <= UInt64(dataSize), UInt64(byteCount) <= UInt64(dataSize) - t.offset else {
                throw QwenError.badModel("\(name): tensor \(t.name) (offset \(t.offset), \(byteCount) bytes) lies outside the file's data section (\(dataSize) bytes)")
            }
            guard byName[t.name] == nil else { throw QwenError.badModel("\(name): tensor \(t.name) appears twice") }
            byName[t.name] = tensors.count
            let base = file.bytes.baseAddress! + dataOffset + Int(t.offset)
            tensors.append(GGUFTensor(name: t.name, dims: t.dims, type: type,
                                      data: UnsafeRawBufferPointer(start: base, count: byteCount)))
        }
        try checkNoOverlap(tensors.map { ($0.name, $0.data) }, file: name)
        self.tensors = tensors
        tensorsByName = byName
    }

    public func tensor(_ name: String) -> GGUFTensor? {
        tensorsByName[name].map { tensors[$0] }
    }

    // MARK: metadata accessors

    public func string(_ key: String) -> String? { metadata[key]?.string }
    public func int(_ key: String) -> Int? { metadata[key]?.int }
    public func float(_ key: String) -> Double? { metadata[key]?.double }

    public func requireInt(_ key: String) throws -> Int {
        guard let value = metadata[key] else { throw QwenError.badModel("\(FileSystem.lastComponent(file.path)): missing \(key)") }
        guard let int = value.int else { throw QwenError.badModel("\(FileSystem.lastComponent(file.path)): \(key) is not an integer") }
        return int
    }

    /// The string array stored under `key` (e.g. tokenizer.ggml.tokens).
    public func stringArray(_ key: String) throws -> [String]? {
        guard let value = metadata[key] else { return nil }
        guard case .array(let array) = value else {
            throw QwenError.badModel("\(FileSystem.lastComponent(file.path)): \(key) is not an array")
        }
        return try array.strings(context: key)
    }

    public func int32Array(_ key: String) throws -> [Int32]? {
        guard let value = metadata[key] else { return nil }
        guard case .array(let array) = value else {
            throw QwenError.badModel("\(FileSystem.lastComponent(file.path)): \(key) is not an array")
        }
        return try array.int32s(context: key)
    }

    // MARK: parsing

    static func readString(_ reader: inout ByteReader, _ what: @autoclosure () -> String) throws -> String {
        let length = try reader.read(UInt64.self, "length of \(what())")
        guard length <= UInt64(maxStringBytes) else {
            throw QwenError.badModel("\(reader.context): \(what()) has absurd length \(length)")
        }
        let bytes = try reader.slice(Int(length), what())
        guard let string = bytes.validUTF8String() else {
            throw QwenError.badModel("\(reader.context): \(what()) is not valid UTF-8")
        }
        return string
    }

    static func readValue(_ reader: inout ByteReader, type: UInt32, key: String, depth: Int) throws -> GGUFValue {
        switch type {
        case 0: return .uint(UInt64(try reader.read(UInt8.self, key)))
        case 1: return .int(Int64(try reader.read(Int8.self, key)))
        case 2: return .uint(UInt64(try reader.read(UInt16.self, key)))
        case 3: return .int(Int64(try reader.read(Int16.self, key)))
        case 4: return .uint(UInt64(try reader.read(UInt32.self, key)))
        case 5: return .int(Int64(try reader.read(Int32.self, key)))
        case 6: return .float(Double(try reader.readFloat(key)))
        case 7:
            let byte = try reader.read(UInt8.self, key)
            guard byte <= 1 else { throw QwenError.badModel("\(reader.context): \(key) is a bool with value \(byte)") }
            return .bool(byte == 1)
        case 8: return .string(try readString(&reader, key))
        case 9:
            guard depth == 0 else { throw QwenError.badModel("\(reader.context): \(key): nested arrays are not supported") }
            let elementType = try reader.read(UInt32.self, "element type of \(key)")
            let count = try reader.read(UInt64.self, "element count of \(key)")
            guard let width = GGUFArray.fixedWidth(elementType) ?? (elementType == 8 ? 8 : nil) else {
                throw QwenError.badModel("\(reader.context): \(key) has unknown element type \(elementType)")
            }
            guard count <= UInt64(reader.remaining / width) else {
                throw QwenError.badModel("\(reader.context): \(key) claims \(count) elements, more than the file holds")
            }
            let start = reader.offset
            if elementType == 8 {
                for i in 0..<Int(count) { _ = try readStringBytes(&reader, "\(key)[\(i)]") }
            } else {
                try reader.skip(Int(count) * width, key)
            }
            let body = UnsafeRawBufferPointer(rebasing: reader.bytes[start..<reader.offset])
            return .array(GGUFArray(elementType: elementType, count: Int(count), body: body))
        case 10: return .uint(try reader.read(UInt64.self, key))
        case 11: return .int(try reader.read(Int64.self, key))
        case 12: return .float(try reader.readDouble(key))
        default:
            throw QwenError.badModel("\(reader.context): \(key) has unknown value type \(type)")
        }
    }

    /// Validates a length-prefixed string and returns its bytes without decoding.
    static func readStringBytes(_ reader: inout ByteReader, _ what: @autoclosure () -> String) throws -> UnsafeRawBufferPointer {
        let length = try reader.read(UInt64.self, "length of \(what())")
        guard length <= UInt64(maxStringBytes) else {
            throw QwenError.badModel("\(reader.context): \(what()) has absurd length \(length)")
        }
        return try reader.slice(Int(length), what())
    }
}

/// One tensor: GGUF dims are innermost first (dims[0] = row length).
public struct GGUFTensor: @unchecked Sendable {
    public let name: String
    public let dims: [Int]
    public let type: GGMLType
    /// The tensor's bytes inside the mapped file.
    public let data: UnsafeRawBufferPointer

    public var elementCount: Int { dims.reduce(1, *) }
}

public enum GGUFValue: Sendable {
    case uint(UInt64)
    case int(Int64)
    case float(Double)
    case bool(Bool)
    case string(String)
    case array(GGUFArray)

    public var int: Int? {
        switch self {
        case .uint(let v): return v <= UInt64(Int.max) ? Int(v) : nil
        case .int(let v): return Int(v)
        default: return nil
        }
    }

    public var double: Double? {
        switch self {
        case .float(let v): return v
        case .uint(let v): return Double(v)
        case .int(let v): return Double(v)
        default: return nil
        }
    }

    public var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var bool: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }
}

/// An array value kept as its validated bytes; decoded on demand (token lists are large).
public struct GGUFArray: @unchecked Sendable {
    public let elementType: UInt32
    public let count: Int
    /// The encoded elements, already checked to lie inside the file.
    let body: UnsafeRawBufferPointer

    static func fixedWidth(_ type: UInt32) -> Int? {
        switch type {
        case 0, 1, 7: return 1
        case 2, 3: return 2
        case 4, 5, 6: return 4
        case 10, 11, 12: return 8
        default: return nil
        }
    }

    public func strings(context: String) throws -> [String] {
        guard elementType == 8 else { throw QwenError.badModel("\(context) is not an array of strings") }
        var reader = ByteReader(body, context: context)
        var result: [String] = []
        result.reserveCapacity(count)
        for i in 0..<count {
            let bytes = try GGUFFile.readStringBytes(&reader, "element \(i)")
            guard let s = bytes.validUTF8String() else { throw QwenError.badModel("\(context)[\(i)] is not valid UTF-8") }
            result.append(s)
        }
        return result
    }

    public func int32s(context: String) throws -> [Int32] {
        var reader = ByteReader(body, context: context)
        var result: [Int32] = []
        result.reserveCapacity(count)
        for _ in 0..<count {
            switch elementType {
            case 4: result.append(Int32(truncatingIfNeeded: try reader.read(UInt32.self, context)))
            case 5: result.append(try reader.read(Int32.self, context))
            default: throw QwenError.badModel("\(context) is not an array of 32-bit integers")
            }
        }
        return result
    }
}
