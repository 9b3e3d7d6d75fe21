import Hummingbird
import NIOCore
import Synchronization

/// Notices that a request's client has gone (closed its connection) while the request is
/// waiting for a slot, prefilling or generating, streamed or not, so that its work can be
/// cancelled. It reads the connection's inbound side, which ends when the client closes,
/// through Hummingbird's `RequestBody.consumeWithInboundCloseHandler`, on a task of its
/// own that `stop()` ends. `stop()` must be awaited before the response is complete.
///
/// Watching takes the connection's inbound side away from Hummingbird, which then ends the
/// connection after this response (the responses say `Connection: close`). `stop()` also
/// closes the connection's input, so that what a client sends on it afterwards is never
/// read: Hummingbird would take it for a request that nobody answers, and the connection
/// would stay open (and hold up a graceful shutdown) until the client closed it.
final class ClientWatch: Sendable {
    private let flag = GoneFlag()
    private let stopper: AsyncStream<Void>.Continuation
    private let task: Task<Void, Never>
    private let channel: any Channel

    /// Starts watching `request`'s connection (`channel`); its body must have been
    /// collected already.
    init(_ request: Request, channel: any Channel) {
        let (stopped, stopper) = AsyncStream<Void>.makeStream()
        self.stopper = stopper
        self.channel = channel
        task = Task { [flag] in
            _ = try? await request.body.consumeWithInboundCloseHandler { _ in
                for await _ in stopped {}           // until stop(), or the client is gone
            } onInboundClosed: {
                flag.markGone()
                stopper.finish()
            }
        }
    }

    /// Whether the client has gone.
    var isGone: Bool { flag.isGone }

    /// Runs `handler` once the client is gone (now, if it already is).
    func onGone(_ handler: @escaping @Sendable () -> Void) { flag.onGone(handler) }

    /// Stops watching; returns once the connection is no longer read here.
    func stop() async {
        flag.stop()   // ending the watch closes its view of the inbound side: not the client leaving
        stopper.finish()
        await task.value
        channel.close(mode: .input, promise: nil)
    }
}

private final class GoneFlag: Sendable {
    private struct State {
        var gone = false
        var stopped = false
        var handlers: [@Sendable () -> Void] = []
    }

    private let state = Mutex(State())

    var isGone: Bool { state.withLock { $0.gone } }

    func onGone(_ handler: @escaping @Sendable () -> Void) {
        let now = state.withLock { s -> Bool in
            if s.gone { return true }
            s.handlers.append(handler)
            return false
        }
        if now { handler() }
    }

    /// No more watching: handlers are dropped and a later markGone does nothing.
    func stop() {
        state.withLock { s in
            s.stopped = true
            s.handlers.removeAll()
        }
    }

    func markGone() {
        let handlers = state.withLock { s -> [@Sendable () -> Void] in
            guard !s.gone, !s.stopped else { return [] }
            s.gone = true
            defer { s.handlers.removeAll() }
            return s.handlers
        }
        for handler in handlers { handler() }
    }
}
