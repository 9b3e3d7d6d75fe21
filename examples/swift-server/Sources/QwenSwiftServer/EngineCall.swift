import Foundation
import QwenEmbed
import Synchronization

/// What a finished engine call produced.
struct Outcome: Sendable {
    var result: GenerationResult
    /// The reply as the session's history holds it (with tools: parsed into content and a
    /// tool call); nil for a raw completion.
    var reply: ChatMessage?
}

enum EngineEvent: Sendable {
    /// A piece of the reply (whole UTF-8 text).
    case piece(String)
    /// The call is over and its session given back.
    case finished(Outcome)
    /// The call failed (or was cancelled: `QwenError.cancelled`); its session given back.
    case failed(any Error)
}

/// One engine call on a thread of its own: `Session.chat` and `generate` block their
/// thread, so they never run on Swift's cooperative pool or an event loop. Its events come
/// out of `next()` in order, then nil once the thread is done with the engine (the session
/// is released before the last event). `cancel()` (any thread) stops it: before it starts,
/// during prefill (`Session.cancel`) or between pieces.
final class EngineCall: Sendable {
    private struct Control {
        var cancelled = false
        var session: Session? = nil
    }

    private struct Queue {
        var events: [EngineEvent] = []
        var finished = false
        var waiter: CheckedContinuation<EngineEvent?, Never>? = nil
    }

    private let control = Mutex(Control())
    private let queue = Mutex(Queue())

    /// Starts `work` on a new thread with the session `acquire` gives; `work` gets an
    /// `onPiece` to hand to the engine (it forwards pieces when `streamPieces`, and
    /// returns false once the call is cancelled).
    init(model: Model, streamPieces: Bool,
         acquire: @escaping @Sendable (Model) throws -> Session,
         work: @escaping @Sendable (Session, @escaping (String) -> Bool) throws -> Outcome) {
        let thread = Thread { [self] in
            run(model: model, streamPieces: streamPieces, acquire: acquire, work: work)
        }
        thread.name = "qwen-generate"
        thread.stackSize = 8 << 20
        thread.start()
    }

    var isCancelled: Bool { control.withLock { $0.cancelled } }

    /// Stops the call; safe from any thread, any number of times.
    func cancel() {
        let session = control.withLock { c -> Session? in
            c.cancelled = true
            return c.session
        }
        session?.cancel()
    }

    /// The next event; nil when the call's thread has finished with the engine.
    func next() async -> EngineEvent? {
        await withCheckedContinuation { continuation in
            queue.withLock { q in
                if !q.events.isEmpty {
                    continuation.resume(returning: q.events.removeFirst())
                } else if q.finished {
                    continuation.resume(returning: nil)
                } else {
                    q.waiter = continuation
                }
            }
        }
    }

    private func push(_ event: EngineEvent?) {
        queue.withLock { q in
            if let waiter = q.waiter {
                q.waiter = nil
                waiter.resume(returning: event)
            } else if let event {
                q.events.append(event)
            }
            if event == nil { q.finished = true }
        }
    }

    private func run(model: Model, streamPieces: Bool, acquire: @Sendable (Model) throws -> Session,
                     work: @Sendable (Session, @escaping (String) -> Bool) throws -> Outcome) {
        var event: EngineEvent
        do {
            let session = try acquire(model)
            let started = control.withLock { c -> Bool in
                if c.cancelled { return false }
                c.session = session
                return true
            }
            defer {
                control.withLock { $0.session = nil }
                model.releaseSession(session)
            }
            guard started else { throw QwenError.cancelled("the call was cancelled") }
            let outcome = try work(session) { [self] piece in
                if streamPieces { push(.piece(piece)) }
                return !isCancelled
            }
            event = .finished(outcome)
        } catch {
            event = .failed(error)
        }
        push(event)
        push(nil)
    }
}
