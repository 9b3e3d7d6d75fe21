#if canImport(Glibc)
import Glibc
#endif

/// Saved sessions (`Session.save(to:)`, `Model.loadSession(from:options:)`): one file holds
/// all a session needs to continue exactly as it would have. Little-endian throughout; a
/// string is a u32 byte count and its UTF-8 bytes; an optional string is a u8 (0 = nil,
/// 1 = present) and then the string.
///
///     byte 0     magic "QWENSESS"
///          8     format version, u32 (`version`)
///          12    the model's fingerprint, u64 (`Model.fingerprint`)
///          20    payload:
///                  context size u32, max window size u32
///                  sampler state: 4 x u64 (`RandomSource.state`)
///                  system prompt: optional string
///                  tools: u32 count, each: name, description, parameters JSON (strings),
///                         u8 flags (1: has a description, 2: has parameters)
///                  history: u32 count, each: u8 role (1 user, 2 assistant, 3 tool), content,
///                         u32 tool-call count, each: name, arguments; reasoning (optional)
///                  the KV cache, as `KVCache.save(to:)` writes it (a kv-type byte first)
///     end - 8    checksum, u64: `Hash64` over every byte before it
///
/// The envelope (the magic, the version at byte 8, the checksum in the last 8 bytes) is the
/// same in every format version, so a file from a newer QwenEmbed is told apart from a
/// corrupt one.
///
/// Errors when loading, all `QwenError`: `.io` the path cannot be read (missing, a
/// directory, no permission); `.badModel` not a session file, truncated or corrupt (a
/// checksum mismatch, a value out of range: the message names what and its byte offset);
/// `.unsupportedModel` a newer format version; `.invalidArgument` the file belongs to
/// another model; `.contextFull` the context size asked for cannot hold its cached tokens.
enum SessionFile {
    static let magic = Array("QWENSESS".utf8)
    /// The format this build writes, and the newest it reads.
    static let version: UInt32 = 1
    /// Magic, version and fingerprint.
    static let headerBytes = 20
    static let checksumBytes = 8

    /// Writes `session` (not running a call: the caller holds it) to `path` atomically.
    static func write(_ session: Session, to path: String) throws {
        guard !path.isEmpty else { throw QwenError.invalidArgument("the session file path is empty") }
        var template = Array((path + ".tmp-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { buffer in buffer.baseAddress.map { mkstemp($0) } ?? -1 }
        guard fd >= 0 else {
            throw QwenError.io("\(path): cannot create a file beside it: \(MappedFile.errnoText())")
        }
        let temporary = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var closed = false
        do {
            var out = SessionFileWriter(fd: fd, path: path)
            try out.bytes(magic)
            try out.u32(version)
            try out.u64(session.model.fingerprint)
            try writePayload(session, to: &out)
            try out.finish()
            guard fsync(fd) == 0 else { throw QwenError.io("\(path): fsync failed: \(MappedFile.errnoText())") }
            closed = true
            guard close(fd) == 0 else { throw QwenError.io("\(path): close failed: \(MappedFile.errnoText())") }
            guard rename(temporary, path) == 0 else { throw QwenError.io("\(path): cannot replace it: \(MappedFile.errnoText())") }
        } catch {
            if !closed { close(fd) }
            unlink(temporary)
            throw error
        }
    }

    private static func writePayload(_ session: Session, to out: inout SessionFileWriter) throws {
        try out.count(session.contextSize, "the context size")
        try out.count(session.maxWindowSize, "the window size")
        let state = session.random.state
        for word in [state.0, state.1, state.2, state.3] { try out.u64(word) }
        try out.optionalString(session.systemPrompt)
        try out.count(session.tools.count, "the tool count")
        for tool in session.tools {
            try out.string(tool.name)
            try out.string(tool.description)
            try out.string(tool.parametersJSON)
            try out.u8((tool.hasDescription ? 1 : 0) | (tool.hasParameters ? 2 : 0))
        }
        try out.count(session.history.count, "the message count")
        for message in session.history {
            try out.u8(UInt8(message.role.rawValue))
            try out.string(message.content)
            try out.count(message.toolCalls.count, "a tool-call count")
            for call in message.toolCalls {
                try out.string(call.name)
                try out.string(call.arguments)
            }
            try out.optionalString(message.reasoning)
        }
        try session.cache.save(to: &out)
    }

    /// The session saved in `path`, validated completely before it is created.
    static func read(_ path: String, model: Model, options: SessionOptions) throws -> Session {
        guard !path.isEmpty else { throw QwenError.invalidArgument("the session file path is empty") }
        let file = try MappedFile(path: path, useMmap: false)
        return try withExtendedLifetime(file) { try read(file.bytes, context: "\(path): session file", model: model, options: options) }
    }

    /// The session in `bytes`, a whole session file; `context` names it in errors.
    private static func read(_ bytes: UnsafeRawBufferPointer, context: String, model: Model, options: SessionOptions) throws -> Session {
        let prefix = min(bytes.count, magic.count)
        guard bytes.prefix(prefix).elementsEqual(magic.prefix(prefix)) else {
            throw QwenError.badModel("\(context): not a QwenEmbed session file (no \"QWENSESS\" at byte 0)")
        }
        guard bytes.count >= headerBytes + checksumBytes else {
            throw QwenError.badModel("\(context): truncated: \(bytes.count) bytes, less than the \(headerBytes + checksumBytes)-byte header and checksum")
        }
        let end = bytes.count - checksumBytes
        var hash = Hash64()
        hash.update(UnsafeRawBufferPointer(rebasing: bytes[..<end]))
        let stored = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: end, as: UInt64.self))
        guard stored == hash.value else {
            throw QwenError.badModel("\(context): corrupt or truncated: the checksum at byte \(end) does not match its \(end) bytes")
        }
        var input = SessionFileReader(UnsafeRawBufferPointer(rebasing: bytes[..<end]), context: context)
        try input.skip(magic.count)
        let format = try input.u32("the format version")
        guard format <= version else {
            throw QwenError.unsupportedModel("\(context): written by a newer QwenEmbed (format \(format), this reads up to \(version))")
        }
        guard format >= 1 else { throw QwenError.badModel("\(context): format version 0 at byte 8 does not exist") }
        let fingerprint = try input.u64("the model fingerprint")
        guard fingerprint == model.fingerprint else {
            throw QwenError.invalidArgument("\(context): belongs to another model (its fingerprint is "
                                            + "\(hex(fingerprint)), this model's \(hex(model.fingerprint)))")
        }
        return try readPayload(&input, model: model, options: options)
    }

    private static func readPayload(_ input: inout SessionFileReader, model: Model, options: SessionOptions) throws -> Session {
        let savedContext = try input.u32("the context size", in: 1...UInt32.max)
        let savedWindow = try input.u32("the window size", in: 1...UInt32.max)
        let at = input.offset
        let words = (try input.u64("the sampler state"), try input.u64("the sampler state"),
                     try input.u64("the sampler state"), try input.u64("the sampler state"))
        guard let random = RandomSource(state: words) else { throw input.corrupt("the sampler state is all zeros", at: at) }
        let systemPrompt = try input.optionalString("the system prompt")
        var tools: [ToolDefinition] = []
        for i in 0..<(try input.count("the tool count", eachAtLeast: 13)) {
            let at = input.offset
            let name = try input.string("tool \(i)'s name")
            let description = try input.string("tool \(i)'s description")
            let parameters = try input.string("tool \(i)'s parameters")
            let flags = try input.u8("tool \(i)'s flags", in: 0...3)
            guard let tool = ToolDefinition(saved: name, description: description, parametersJSON: parameters,
                                            hasDescription: flags & 1 != 0, hasParameters: flags & 2 != 0) else {
                throw input.corrupt("tool \(i) has an empty name or parameters that are not JSON", at: at)
            }
            tools.append(tool)
        }
        var history: [ChatMessage] = []
        for i in 0..<(try input.count("the message count", eachAtLeast: 10)) {
            history.append(try readMessage(&input, i))
        }
        var effective = options
        effective.contextSize = options.contextSize > 0 ? options.contextSize : Int(savedContext)
        effective.maxWindowSize = options.maxWindowSize > 0 ? options.maxWindowSize : Int(savedWindow)
        effective.systemPrompt = systemPrompt
        let session = try Session(model: model, options: effective)
        session.adopt(try KVCache.load(from: &input, config: model.config, capacity: session.contextSize))
        guard input.remaining == 0 else { throw input.corrupt("\(input.remaining) bytes follow the KV cache", at: input.offset) }
        try session.restore(systemPrompt: systemPrompt, tools: tools, history: history)
        session.random = random
        return session
    }

    private static func readMessage(_ input: inout SessionFileReader, _ i: Int) throws -> ChatMessage {
        let at = input.offset
        let rawRole = try input.u8("message \(i)'s role", in: 1...3)
        guard let role = Role(rawValue: Int32(rawRole)) else { throw input.corrupt("message \(i)'s role \(rawRole)", at: at) }
        let content = try input.string("message \(i)'s content")
        var calls: [ToolCall] = []
        for k in 0..<(try input.count("message \(i)'s tool-call count", eachAtLeast: 8)) {
            let callAt = input.offset
            let name = try input.string("message \(i)'s tool call \(k) name")
            guard !name.isEmpty else { throw input.corrupt("message \(i)'s tool call \(k) has an empty name", at: callAt) }
            calls.append(ToolCall(name: name, arguments: try input.string("message \(i)'s tool call \(k) arguments")))
        }
        let reasoning = try input.optionalString("message \(i)'s reasoning")
        guard role == .assistant || (calls.isEmpty && reasoning == nil) else {
            throw input.corrupt("message \(i) (\(role.name)) carries tool calls or reasoning, which only an assistant turn can", at: at)
        }
        return ChatMessage(role: role, content: content, toolCalls: calls, reasoning: reasoning)
    }

    static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}

extension Model {
    /// The session saved in `path` (`Session.save(to:)`), continuing exactly where it was:
    /// its history, system prompt, tools, sampler state and KV cache (the next chat call on
    /// the restored history reuses the restored keys and values). `options.contextSize`
    /// and `maxWindowSize`: 0 = the saved session's; its `systemPrompt`, `seed` and `kvType`
    /// are ignored (the file's system prompt and KV cache type, and its sampler continues).
    /// Everything in the
    /// file is checked before the session is created; errors as `SessionFile` lists them.
    public func loadSession(from path: String, options: SessionOptions = SessionOptions()) throws -> Session {
        try SessionFile.read(path, model: self, options: options)
    }
}

/// Writes a session file through a 1 MiB buffer, hashing what it writes (`Hash64`).
struct SessionFileWriter {
    private let fd: Int32
    /// Names the file in errors.
    private let path: String
    private var buffer: [UInt8] = []
    private var hash = Hash64()
    private static let bufferBytes = 1 << 20

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
        buffer.reserveCapacity(Self.bufferBytes)
    }

    mutating func bytes(_ data: UnsafeRawBufferPointer) throws {
        hash.update(data)
        try append(data)
    }

    mutating func bytes(_ data: [UInt8]) throws {
        try data.withUnsafeBytes { try bytes($0) }
    }

    mutating func u8(_ value: UInt8) throws { try bytes([value]) }
    mutating func u32(_ value: UInt32) throws { try withUnsafeBytes(of: value.littleEndian) { try bytes($0) } }
    mutating func u64(_ value: UInt64) throws { try withUnsafeBytes(of: value.littleEndian) { try bytes($0) } }

    /// A count or size as a u32.
    mutating func count(_ value: Int, _ what: String) throws {
        guard let value = UInt32(exactly: value) else { throw QwenError.invalidArgument("\(path): \(what) (\(value)) is too large to save") }
        try u32(value)
    }

    mutating func string(_ text: String) throws {
        var text = text
        try count(text.utf8.count, "a string's length")
        try text.withUTF8 { try bytes(UnsafeRawBufferPointer($0)) }
    }

    mutating func optionalString(_ text: String?) throws {
        try u8(text == nil ? 0 : 1)
        if let text { try string(text) }
    }

    /// Appends the checksum of everything written and writes out the buffer.
    mutating func finish() throws {
        try withUnsafeBytes(of: hash.value.littleEndian) { try append($0) }
        try flush()
    }

    private mutating func append(_ data: UnsafeRawBufferPointer) throws {
        if buffer.count + data.count > Self.bufferBytes { try flush() }
        if data.count >= Self.bufferBytes { try writeAll(data) } else { buffer.append(contentsOf: data) }
    }

    private mutating func flush() throws {
        try buffer.withUnsafeBytes { try writeAll($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    private func writeAll(_ data: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < data.count, let base = data.baseAddress {
            let n = write(fd, base + done, data.count - done)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw QwenError.io("\(path): write failed: \(MappedFile.errnoText())") }
            done += n
        }
    }
}

/// Reads a session file's payload: every read bounds-checked (`ByteReader`), every count
/// checked against the bytes left before anything is allocated for it, every error a
/// `.badModel` naming the file, what was read and its byte offset.
struct SessionFileReader {
    private var reader: ByteReader

    init(_ bytes: UnsafeRawBufferPointer, context: String) {
        reader = ByteReader(bytes, context: context)
    }

    /// Names the file in errors.
    var context: String { reader.context }
    var offset: Int { reader.offset }
    var remaining: Int { reader.remaining }

    func corrupt(_ what: String, at offset: Int) -> QwenError {
        .badModel("\(reader.context): corrupt: \(what) at byte \(offset)")
    }

    mutating func skip(_ count: Int) throws { try reader.skip(count, "the header") }
    mutating func u8(_ what: String) throws -> UInt8 { try reader.read(UInt8.self, what) }
    mutating func u32(_ what: String) throws -> UInt32 { try reader.read(UInt32.self, what) }
    mutating func u64(_ what: String) throws -> UInt64 { try reader.read(UInt64.self, what) }

    mutating func u8(_ what: String, in range: ClosedRange<UInt8>) throws -> UInt8 {
        let at = offset, value = try u8(what)
        guard range.contains(value) else { throw corrupt("\(what) is \(value), not \(range.lowerBound)...\(range.upperBound)", at: at) }
        return value
    }

    mutating func u32(_ what: String, in range: ClosedRange<UInt32>) throws -> UInt32 {
        let at = offset, value = try u32(what)
        guard range.contains(value) else { throw corrupt("\(what) is \(value), not \(range.lowerBound)...\(range.upperBound)", at: at) }
        return value
    }

    /// A u32 count of items that take at least `eachAtLeast` bytes each, so a corrupt count
    /// fails here instead of allocating for items the file cannot hold.
    mutating func count(_ what: String, eachAtLeast bytes: Int) throws -> Int {
        let at = offset, value = Int(try u32(what))
        guard value <= remaining / bytes else {
            throw corrupt("\(what) \(value) is more than the \(remaining) bytes left can hold", at: at)
        }
        return value
    }

    /// `count` bytes, checked to be there.
    mutating func slice(_ count: Int, _ what: String) throws -> UnsafeRawBufferPointer {
        try reader.slice(count, what)
    }

    mutating func string(_ what: String) throws -> String {
        let at = offset, length = Int(try u32("\(what)'s length"))
        guard let text = try reader.slice(length, what).validUTF8String() else { throw corrupt("\(what) is not valid UTF-8", at: at) }
        return text
    }

    mutating func optionalString(_ what: String) throws -> String? {
        try u8("whether \(what) is set", in: 0...1) == 1 ? try string(what) : nil
    }
}
