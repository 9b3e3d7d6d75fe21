import Synchronization

/// `slots` requests run at once; up to `queue` more wait, first come first served;
/// beyond that a 429 with Retry-After (the Python server's Admission).
final class Admission: Sendable {
    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Bool, Never>
    }

    private struct State {
        var running = 0
        var waiters: [Waiter] = []
        var meanSeconds = 5.0        // moving average of a request's time in its slot
        var nextID: UInt64 = 0
    }

    let slots: Int
    let queue: Int
    private let state = Mutex(State())

    init(slots: Int, queue: Int) {
        self.slots = max(1, slots)
        self.queue = max(0, queue)
    }

    /// (running, waiting) for /health.
    var counts: (running: Int, waiting: Int) { state.withLock { ($0.running, $0.waiters.count) } }

    /// Takes a slot, waiting in line if none is free. Returns false if the client left
    /// while waiting (it holds no slot then); throws a 429 when the line is full.
    func enter(_ client: ClientWatch) async throws(RequestError) -> Bool {
        enum Decision { case admitted, wait(UInt64), refused(RequestError) }
        let decision: Decision = state.withLock { s in
            if s.running < slots && s.waiters.isEmpty {
                s.running += 1
                return .admitted
            }
            if s.waiters.count >= queue {
                let seconds = max(1, Int((s.meanSeconds * Double(s.waiters.count + 1) / Double(slots)).rounded(.up)))
                return .refused(RequestError(
                    status: 429, message: "the server is busy (\(s.running) running, \(s.waiters.count) waiting); retry in \(seconds) s",
                    code: "rate_limit_exceeded", kind: "rate_limit_error", headers: [("Retry-After", String(seconds))]))
            }
            s.nextID += 1
            return .wait(s.nextID)
        }
        switch decision {
        case .admitted:
            return true
        case .refused(let error):
            throw error
        case .wait(let id):
            let admitted = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                state.withLock { $0.waiters.append(Waiter(id: id, continuation: continuation)) }
                client.onGone { [weak self] in self?.abandon(id) }
            }
            if admitted && client.isGone {   // handed a slot just as the client left: pass it on
                leave(seconds: 0)
                return false
            }
            return admitted
        }
    }

    /// The waiter `id` leaves the line (its client is gone); nothing if it already got a slot.
    private func abandon(_ id: UInt64) {
        let waiter: Waiter? = state.withLock { s in
            guard let i = s.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return s.waiters.remove(at: i)
        }
        waiter?.continuation.resume(returning: false)
    }

    /// Gives a slot back (after `seconds` in it): to the next in line, if any.
    func leave(seconds: Double) {
        let next: Waiter? = state.withLock { s in
            if seconds > 0 { s.meanSeconds = 0.8 * s.meanSeconds + 0.2 * seconds }
            if s.waiters.isEmpty {
                s.running -= 1
                return nil
            }
            return s.waiters.removeFirst()   // the slot passes on; running stays
        }
        next?.continuation.resume(returning: true)
    }
}
