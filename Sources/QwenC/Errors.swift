import CQwenHeader
import QwenEmbed
#if canImport(Glibc)
import Glibc
#endif

/// Thread-local storage of qwen_last_error(): one malloc'd C string per thread,
/// freed when replaced or when the thread exits.
enum LastError {
    static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { free($0) }
        return key
    }()
    static let empty: StaticString = ""

    static func set(_ message: String) {
        let old = pthread_getspecific(key)
        pthread_setspecific(key, strdup(message))
        free(old)
    }

    static func get() -> UnsafePointer<CChar> {
        if let current = pthread_getspecific(key) {
            return UnsafePointer(current.assumingMemoryBound(to: CChar.self))
        }
        return UnsafeRawPointer(empty.utf8Start).assumingMemoryBound(to: CChar.self)
    }
}

/// Records `error` for qwen_last_error() and returns its status code.
func fail(_ error: Error) -> qwen_status {
    guard let error = error as? QwenError else {
        LastError.set("internal error: \(error)")
        return QWEN_ERR_INTERNAL
    }
    LastError.set(error.message)
    switch error {
    case .invalidArgument: return QWEN_ERR_INVALID_ARGUMENT
    case .io: return QWEN_ERR_IO
    case .badModel: return QWEN_ERR_BAD_MODEL
    case .unsupportedModel: return QWEN_ERR_UNSUPPORTED_MODEL
    case .outOfMemory: return QWEN_ERR_OUT_OF_MEMORY
    case .contextFull: return QWEN_ERR_CONTEXT_FULL
    case .cancelled: return QWEN_ERR_CANCELLED
    case .busy: return QWEN_ERR_BUSY
    case .wrongState: return QWEN_ERR_WRONG_STATE
    case .notImplemented: return QWEN_ERR_NOT_IMPLEMENTED
    case .internalError: return QWEN_ERR_INTERNAL
    }
}

/// Runs an exported call's body: every thrown error becomes a status plus
/// qwen_last_error(); nothing crosses the C boundary as a Swift error.
@inline(__always)
func guarded(_ body: () throws -> qwen_status) -> qwen_status {
    do { return try body() } catch { return fail(error) }
}

/// Throws invalidArgument when a required pointer is NULL.
func required<T>(_ pointer: T?, _ name: String) throws -> T {
    guard let pointer else { throw QwenError.invalidArgument("\(name) is NULL") }
    return pointer
}

/// A `size_t` count, length or index from a caller. Swift imports size_t as Int, so a
/// value above Int.max arrives negative: rejected here instead of trapping later.
func sizeArgument(_ value: Int, _ name: String) throws -> Int {
    guard value >= 0 else { throw QwenError.invalidArgument("\(name) is \(UInt(bitPattern: value)), larger than any buffer") }
    return value
}

/// Most compute threads a model or session may ask for (each is an OS thread).
let maxThreads = 1024

/// An `n_threads` parameter: 0 (the default) up to `maxThreads`.
func threadsArgument(_ value: Int32, _ name: String) throws -> Int {
    guard value >= 0, Int(value) <= maxThreads else {
        throw QwenError.invalidArgument("\(name) is \(value); 0 (all cores) to \(maxThreads)")
    }
    return Int(value)
}

/// Decodes a NUL-terminated argument, rejecting invalid UTF-8.
func utf8Argument(_ pointer: UnsafePointer<CChar>?, _ name: String) throws -> String {
    let p = try required(pointer, name)
    let bytes = UnsafeBufferPointer(start: UnsafeRawPointer(p).assumingMemoryBound(to: UInt8.self), count: strlen(p))
    guard let s = String(validating: bytes, as: UTF8.self) else {
        throw QwenError.invalidArgument("\(name) is not valid UTF-8")
    }
    return s
}

/// The size a params struct declares, checked to be at least its first field.
func declaredSize(_ structSize: UInt32, _ name: String) throws -> Int {
    guard structSize >= 4 else { throw QwenError.invalidArgument("\(name).struct_size is \(structSize); call \(name)_init first") }
    return Int(structSize)
}
