/// A bounds-checked little-endian cursor over untrusted bytes. Every read checks the
/// remaining length first and throws `QwenError.badModel` naming `context` when the
/// data runs out, so a truncated or garbled file can never read past its end.
struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    var offset: Int
    /// Names the file in error messages.
    let context: String

    init(_ bytes: UnsafeRawBufferPointer, offset: Int = 0, context: String) {
        self.bytes = bytes
        self.offset = offset
        self.context = context
    }

    var remaining: Int { bytes.count - offset }

    mutating func need(_ count: Int, _ what: @autoclosure () -> String) throws {
        guard count >= 0, count <= remaining else {
            throw QwenError.badModel("\(context): \(what()) at byte \(offset) runs past the end of the file (needs \(count) bytes, \(remaining) left)")
        }
    }

    mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws -> T {
        try need(MemoryLayout<T>.size, what())
        let value = bytes.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += MemoryLayout<T>.size
        return T(littleEndian: value)
    }

    mutating func readFloat(_ what: @autoclosure () -> String) throws -> Float {
        Float(bitPattern: try read(UInt32.self, what()))
    }

    mutating func readDouble(_ what: @autoclosure () -> String) throws -> Double {
        Double(bitPattern: try read(UInt64.self, what()))
    }

    /// Skips `count` bytes after checking they exist.
    mutating func skip(_ count: Int, _ what: @autoclosure () -> String) throws {
        try need(count, what())
        offset += count
    }

    /// A byte slice of `count` bytes, validated to lie inside the data.
    mutating func slice(_ count: Int, _ what: @autoclosure () -> String) throws -> UnsafeRawBufferPointer {
        try need(count, what())
        let base = bytes.baseAddress.map { $0 + offset }
        offset += count
        return UnsafeRawBufferPointer(start: base, count: count)
    }
}

extension UnsafeRawBufferPointer {
    /// The bytes as a String if they are valid UTF-8.
    func validUTF8String() -> String? {
        String(validating: self.bindMemory(to: UInt8.self), as: UTF8.self)
    }
}
