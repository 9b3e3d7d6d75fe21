import Foundation
import Kernels
import XCTest
@testable import QwenEmbed

/// The KV cache's types: storage, copies only between caches of one type, and sessions of
/// each type on the real model (prompt prefixes never shared across types).
final class KVCacheTests: XCTestCase {
    /// Rows written through `KVCacheType.store` read back as f16 or as gguf-py's Q8_0 would hold them;
    /// growing the storage keeps them; bytes per token are 53% of f16's for q8.
    func testStoreGrowAndBytes() throws {
        let kvDim = 128, layers = 3
        var random = SystemRandomNumberGenerator()
        let k = (0..<kvDim).map { _ in Float.random(in: -3...3, using: &random) }   // [kvDim]
        let v = (0..<kvDim).map { _ in Float.random(in: -3...3, using: &random) }   // [kvDim]
        for type in KVCacheType.allCases {
            let cache = try KVCache(layerCount: layers, kvDim: kvDim, headDim: 64, capacity: 1000, type: type)
            XCTAssertEqual(cache.rowBytes, type == .f16 ? 256 : 136)
            XCTAssertEqual(cache.bytesPerToken, 2 * layers * cache.rowBytes)
            try cache.reserve(10)
            type.store(k, count: kvDim, into: cache.keyPointer(layer: 2, position: 9))     // as the forward pass writes rows
            type.store(v, count: kvDim, into: cache.valuePointer(layer: 2, position: 9))
            cache.tokens = Array(repeating: 7, count: 10)
            try cache.reserve(600)                        // grows: rows move
            XCTAssertEqual(cache.allocated, 600)
            XCTAssertEqual(cache.bytes, 2 * layers * 600 * cache.rowBytes)
            var out = [Float](repeating: .nan, count: kvDim)   // [kvDim]
            dequantizeKVRow(cache.keyPointer(layer: 2, position: 9), count: kvDim, q8: type == .q8, into: &out)
            for i in 0..<kvDim {
                // f16: half an f16 ulp; Q8_0: half a step of max|block| / 127, plus the f16 scale's rounding.
                XCTAssertEqual(out[i], k[i], accuracy: type == .f16 ? 2e-3 : 3.0 / 254 + 3e-3, "\(type) \(i)")
            }
            dequantizeKVRow(cache.valuePointer(layer: 2, position: 9), count: kvDim, q8: type == .q8, into: &out)
            for i in 0..<kvDim { XCTAssertEqual(out[i], v[i], accuracy: type == .f16 ? 2e-3 : 3.0 / 254 + 3e-3, "\(type) \(i)") }
        }
        XCTAssertEqual(Double(KVCacheType.q8.bytes(values: 128)) / Double(KVCacheType.f16.bytes(values: 128)), 34.0 / 64)
    }

    /// A copy only combines caches of one type; q8 needs whole blocks per head.
    func testCopiesStayWithinOneTypeAndQ8NeedsWholeBlocks() throws {
        let f16 = try KVCache(layerCount: 2, kvDim: 64, headDim: 32, capacity: 16, type: .f16)
        let q8 = try KVCache(layerCount: 2, kvDim: 64, headDim: 32, capacity: 16, type: .q8)
        let other = try KVCache(layerCount: 2, kvDim: 64, headDim: 32, capacity: 16, type: .q8)
        for cache in [f16, q8] {
            try cache.reserve(4)
            cache.tokens = [1, 2, 3, 4]
        }
        XCTAssertThrowsError(try other.copy(upTo: 4, from: f16))
        XCTAssertEqual(other.tokens, [])
        try other.copy(upTo: 4, from: q8)
        XCTAssertEqual(other.tokens, [1, 2, 3, 4])
        XCTAssertThrowsError(try KVCache(layerCount: 2, kvDim: 32, headDim: 16, capacity: 16, type: .q8)) { error in
            guard case QwenError.invalidArgument = error else { return XCTFail("\(error)") }
        }
        XCTAssertNoThrow(try KVCache(layerCount: 2, kvDim: 32, headDim: 16, capacity: 16, type: .f16))
    }

    /// On the real model: a q8 session answers; a released f16 session's cache is never
    /// handed to a q8 session for the same conversation, while an f16 session reuses it.
    func testPromptCacheKeepsTypesApart() throws {
        let model = try Model.load(path: try TestPaths.requireFile(TestPaths.gguf),
                                   options: { var o = ModelLoadOptions(); o.threads = 2; return o }())
        var parameters = GenerationParameters()
        parameters.maxTokens = 8
        parameters.sampling = .greedy
        let question = ChatMessage(role: .user, content: "Name three prime numbers.")
        var q8Options = SessionOptions()
        q8Options.kvType = .q8
        let q8Session = try Session(model: model, options: q8Options)
        XCTAssertEqual(q8Session.kvType, .q8)
        XCTAssertFalse(try q8Session.chat([question], parameters: parameters).text.isEmpty)
        XCTAssertEqual(q8Session.kvCacheBytes.perToken * 64, KVCacheType.f16.bytesPerToken(model.config)! * 34)

        let f16Session = try model.acquireSession(conversation: [])
        let reply = try f16Session.chat([question], parameters: parameters).text
        model.releaseSession(f16Session)   // the prompt cache's only cache: f16
        let conversation = [question, ChatMessage(role: .assistant, content: reply)]
        let q8 = try model.acquireSession(conversation: conversation, options: q8Options)
        XCTAssertEqual(q8.kvType, .q8)
        XCTAssertEqual(q8.cachedTokens, [], "a q8 session took an f16 cache")
        let f16 = try model.acquireSession(conversation: conversation)
        XCTAssertEqual(f16.kvType, .f16)
        XCTAssertFalse(f16.cachedTokens.isEmpty, "the f16 session reuses the f16 cache")
    }
}
