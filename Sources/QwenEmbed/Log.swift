/// Severity of a library log message (mirrors qwen_log_level).
public enum LogLevel: Int32, Sendable, Comparable, CustomStringConvertible {
    case debug = 0, info = 1, warn = 2, error = 3
    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rawValue < b.rawValue }
    public var description: String {
        switch self {
        case .debug: return "debug"
        case .info: return "info"
        case .warn: return "warn"
        case .error: return "error"
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// Where the engine's log messages go. The default writes warnings and errors to
/// stderr; hosts (the C API's qwen_log_set, the CLI) replace the sink. Thread-safe.
public enum Log {
    public typealias Sink = @Sendable (LogLevel, String) -> Void

    private static let lock = Mutex()
    nonisolated(unsafe) private static var sink: Sink? = nil
    nonisolated(unsafe) private static var minimum: LogLevel = .warn

    /// Replace the sink (nil restores the default: stderr, warnings and errors).
    public static func set(sink newSink: Sink?, minimum newMinimum: LogLevel) {
        lock.locked {
            sink = newSink
            minimum = newSink == nil ? .warn : newMinimum
        }
    }

    public static func write(_ level: LogLevel, _ message: @autoclosure () -> String) {
        let (current, threshold) = lock.locked { (sink, minimum) }
        guard level >= threshold else { return }
        let text = message()
        if let current {
            current(level, text)
        } else {
            let line = "qwen: \(text)\n"
            fputs(line, stderr)
        }
    }
}

/// A plain pthread mutex (no Foundation).
public final class Mutex: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    public init() {
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    @inline(__always)
    public func locked<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Waits on `condition`, releasing the mutex meanwhile; call with the mutex held
    /// (inside `locked`).
    func wait(_ condition: Condition) {
        pthread_cond_wait(condition.condition, mutex)
    }
}

/// A pthread condition variable, waited on under a `Mutex`.
final class Condition: @unchecked Sendable {
    fileprivate let condition: UnsafeMutablePointer<pthread_cond_t>

    init() {
        condition = .allocate(capacity: 1)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        condition.deallocate()
    }

    func signal() { pthread_cond_signal(condition) }
    func broadcast() { pthread_cond_broadcast(condition) }
}
