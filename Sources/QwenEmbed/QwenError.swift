/// Every failure the engine reports. Each case carries a message naming the problem
/// (file, field, value); the C layer maps the case to a `qwen_status` and the message
/// to `qwen_last_error()`.
public enum QwenError: Error, Equatable, CustomStringConvertible {
    /// A caller passed something unusable: invalid UTF-8, an unknown token id, a bad value.
    case invalidArgument(String)
    /// A file is missing or unreadable, or mapping it failed.
    case io(String)
    /// A model file is corrupt or inconsistent (offsets past the end, wrong sizes, ...).
    case badModel(String)
    /// A valid file describing something this engine does not run.
    case unsupportedModel(String)
    case outOfMemory(String)
    /// The prompt does not fit the context window.
    case contextFull(String)
    case cancelled(String)
    case busy(String)
    /// A call the session's state does not allow now (a pull-form reply is, or is not, in progress).
    case wrongState(String)
    case notImplemented(String)
    /// A broken invariant inside the engine (a bug).
    case internalError(String)

    public var message: String {
        switch self {
        case .invalidArgument(let m), .io(let m), .badModel(let m), .unsupportedModel(let m),
             .outOfMemory(let m), .contextFull(let m), .cancelled(let m), .busy(let m),
             .wrongState(let m), .notImplemented(let m), .internalError(let m):
            return m
        }
    }

    public var description: String { message }
}
