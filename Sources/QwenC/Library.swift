import CQwenHeader
import QwenEmbed
#if canImport(Glibc)
import Glibc
#endif

// Version, status strings, errors and logging: the C entry points that need no model.

private let versionText: StaticString = "0.1.0"

@c @implementation public func qwen_abi_version() -> Int32 { Int32(QWEN_ABI_VERSION) }

@c @implementation public func qwen_version_string() -> UnsafePointer<CChar>! {
    staticCString(versionText)
}

@c @implementation public func qwen_last_error() -> UnsafePointer<CChar>! { LastError.get() }

@c @implementation public func qwen_status_string(_ status: qwen_status) -> UnsafePointer<CChar>! {
    let text: StaticString
    switch status {
    case QWEN_OK: text = "ok"
    case QWEN_ERR_INVALID_ARGUMENT: text = "invalid argument"
    case QWEN_ERR_IO: text = "i/o error"
    case QWEN_ERR_BAD_MODEL: text = "bad model file"
    case QWEN_ERR_UNSUPPORTED_MODEL: text = "unsupported model"
    case QWEN_ERR_OUT_OF_MEMORY: text = "out of memory"
    case QWEN_ERR_CONTEXT_FULL: text = "context window full"
    case QWEN_ERR_BUFFER_TOO_SMALL: text = "buffer too small"
    case QWEN_ERR_CANCELLED: text = "cancelled"
    case QWEN_ERR_BUSY: text = "session busy"
    case QWEN_ERR_INTERNAL: text = "internal error"
    case QWEN_ERR_NOT_IMPLEMENTED: text = "not implemented"
    case QWEN_ERR_WRONG_STATE: text = "wrong state"
    default: text = "unknown status"
    }
    return staticCString(text)
}

func staticCString(_ text: StaticString) -> UnsafePointer<CChar> {
    UnsafeRawPointer(text.utf8Start).assumingMemoryBound(to: CChar.self)
}

/// A C callback and its user data, called under Log's lock-free snapshot.
private struct CLogSink: @unchecked Sendable {
    let fn: qwen_log_fn
    let userData: UnsafeMutableRawPointer?
}

@c @implementation public func qwen_log_set(_ fn: qwen_log_fn?, _ userData: UnsafeMutableRawPointer?, _ min: qwen_log_level) {
    guard let fn else {
        Log.set(sink: nil, minimum: .warn)
        return
    }
    let sink = CLogSink(fn: fn, userData: userData)
    let minimum = LogLevel(rawValue: Int32(min.rawValue)) ?? .warn
    Log.set(sink: { level, message in
        message.withCString { sink.fn(qwen_log_level(rawValue: UInt32(level.rawValue)), $0, sink.userData) }
    }, minimum: minimum)
}
