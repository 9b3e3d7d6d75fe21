#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs parsing and rendering on a thread of its own with a large stack, so that the
/// interpreter's recursion (bounded by `JinjaParser.maxNesting` and
/// `JinjaRenderer.maxDepth`) cannot overflow a caller's small stack: threads made by some
/// platforms and runtimes get 512 KiB, and a debug build needs several KiB per level.
enum JinjaStack {
    /// Enough for the nesting limits in a debug build, with room to spare; only the pages
    /// the recursion touches are ever committed.
    static let size = 16 << 20

    /// `body`'s result, computed on a thread with a `size`-byte stack (on the calling
    /// thread when no thread can be made). The caller waits for it.
    static func run<T>(_ body: () throws -> T) throws -> T {
        try withoutActuallyEscaping(body) { body in
            let work = Work(body)
            guard start(work) else { return try body() }
            return try work.result.get()
        }
    }

    /// Runs `task` on a new thread and waits for it; false when no thread could be made.
    private static func start(_ task: Task) -> Bool {
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setstacksize(&attributes, size)
        let context = Unmanaged.passRetained(task).toOpaque()
        #if canImport(Darwin)
        var thread: pthread_t?
        #else
        var thread = pthread_t()
        #endif
        guard pthread_create(&thread, &attributes, { context in
            guard let context else { return nil }
            Unmanaged<Task>.fromOpaque(context).takeRetainedValue().run()
            return nil
        }, context) == 0 else {
            Unmanaged<Task>.fromOpaque(context).release()
            return false
        }
        #if canImport(Darwin)
        if let thread { pthread_join(thread, nil) }
        #else
        pthread_join(thread, nil)
        #endif
        return true
    }

    /// Work handed to the thread (`@unchecked Sendable`: the caller reads the result only
    /// after joining the thread that wrote it).
    private class Task: @unchecked Sendable {
        func run() {}
    }

    private final class Work<T>: Task, @unchecked Sendable {
        let body: () throws -> T
        var result: Result<T, Error> = .failure(JinjaError.limit("the render thread did not run"))

        init(_ body: @escaping () throws -> T) {
            self.body = body
        }

        override func run() {
            result = Result { try body() }
        }
    }
}
