import Foundation
import XCTest
@testable import QwenEmbed

/// Paths shared by the tests: fixtures in the repository, real files in the cache
/// that scripts/fetch-model.sh fills (make test runs it first).
enum TestPaths {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures")
    static var cache: String {
        ProcessInfo.processInfo.environment["QWEN_CACHE"] ?? NSHomeDirectory() + "/.cache/qwen-embed"
    }
    static var tiktoken: String { cache + "/qwen.tiktoken" }
    static var gguf: String { cache + "/qwen2.5-coder-0.5b-instruct.gguf" }

    static func requireFile(_ path: String) throws -> String {
        guard FileManager.default.fileExists(atPath: path) else {
            XCTFail("\(path) is missing: run scripts/fetch-model.sh")
            throw XCTSkip("missing \(path)")
        }
        return path
    }

    /// A new directory for one test's files, under this test process's root, which is
    /// removed when the process exits (the tests write model copies of up to ~700 MB; left
    /// behind, every run added them to the machine's temporary directory).
    static func temporaryDirectory() throws -> URL {
        _ = removeTemporaryRootAtExit
        let url = temporaryRoot.appendingPathComponent(UUID().uuidString)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// The root of this test process's temporary directories.
private let temporaryRoot = FileManager.default.temporaryDirectory.appendingPathComponent("qwen-tests-\(UUID().uuidString)")
private let removeTemporaryRootAtExit: Void = { atexit { try? FileManager.default.removeItem(at: temporaryRoot) } }()

/// Builds GGUF files byte by byte, for well-formed and deliberately broken inputs.
struct GGUFBuilder {
    var bytes: [UInt8] = []

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func f32(_ v: Float) { u32(v.bitPattern) }
    mutating func string(_ s: String) { u64(UInt64(s.utf8.count)); bytes += Array(s.utf8) }

    mutating func header(version: UInt32 = 3, tensors: UInt64, kv: UInt64) {
        bytes += Array("GGUF".utf8)
        u32(version)
        u64(tensors)
        u64(kv)
    }
    mutating func kvString(_ key: String, _ value: String) { string(key); u32(8); string(value) }
    mutating func kvU32(_ key: String, _ value: UInt32) { string(key); u32(4); u32(value) }
    mutating func kvF32(_ key: String, _ value: Float) { string(key); u32(6); f32(value) }
    mutating func kvStrings(_ key: String, _ values: [String]) {
        string(key); u32(9); u32(8); u64(UInt64(values.count))
        for v in values { string(v) }
    }
    mutating func tensorInfo(_ name: String, dims: [UInt64], type: UInt32, offset: UInt64) {
        string(name); u32(UInt32(dims.count))
        for d in dims { u64(d) }
        u32(type); u64(offset)
    }
    mutating func align(_ a: Int = 32) { while bytes.count % a != 0 { bytes.append(0) } }

    func write(to url: URL) throws { try Data(bytes).write(to: url) }
}

/// Writes a safetensors file from (name, dtype, shape, raw bytes) entries.
func writeSafetensors(_ url: URL, _ tensors: [(String, String, [Int], [UInt8])], headerOverride: String? = nil) throws {
    var offset = 0
    var entries: [String] = []
    var data: [UInt8] = []
    for (name, dtype, shape, raw) in tensors {
        entries.append("\"\(name)\": {\"dtype\": \"\(dtype)\", \"shape\": [\(shape.map(String.init).joined(separator: ","))], \"data_offsets\": [\(offset), \(offset + raw.count)]}")
        offset += raw.count
        data += raw
    }
    let header = headerOverride ?? "{\"__metadata__\": {\"format\": \"pt\"}, " + entries.joined(separator: ", ") + "}"
    var bytes: [UInt8] = []
    withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { bytes += $0 }
    bytes += Array(header.utf8)
    bytes += data
    try Data(bytes).write(to: url)
}

/// bf16 bytes of deterministic pseudo-random values in [-scale, scale).
func bf16Bytes(count: Int, seed: UInt64, scale: Float = 0.05) -> [UInt8] {
    var random = RandomSource(seed: seed)
    var out: [UInt8] = []
    out.reserveCapacity(count * 2)
    for _ in 0..<count {
        let v = (Float(random.nextUnit()) * 2 - 1) * scale
        let bits = UInt16(v.bitPattern >> 16)
        out.append(UInt8(bits & 0xff))
        out.append(UInt8(bits >> 8))
    }
    return out
}
