import KernelABI
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A fixed set of worker threads that run `parallelFor` jobs with the caller.
/// Work items are handed out through an atomic counter (dynamic balancing); idle
/// workers spin briefly before sleeping, because decode issues ~170 small jobs per
/// token and a futex wake-up per job would cost more than the work. One job runs
/// at a time: concurrent `parallelFor` calls on one pool are serialised.
public final class ThreadPool: @unchecked Sendable {
    /// Threads that compute, the caller included.
    public let threads: Int
    private let core: PoolCore
    private var workers: [pthread_t] = []

    public init(threads: Int) {
        self.threads = max(1, threads)
        core = PoolCore(workerCount: self.threads - 1)
        for _ in 1..<self.threads {
            var thread = pthread_t()
            // Each worker owns a reference to the shared state, never to the pool, so
            // dropping the last reference to the pool runs deinit, which stops them.
            let context = Unmanaged.passRetained(WorkerStart(core: core, thread: workers.count + 1)).toOpaque()
            let created = pthread_create(&thread, nil, { raw in
                guard let raw else { return nil }
                let start = Unmanaged<WorkerStart>.fromOpaque(raw).takeRetainedValue()
                start.core.workerLoop(thread: start.thread)
                return nil
            }, context)
            if created == 0 {
                workers.append(thread)
            } else {
                Unmanaged<WorkerStart>.fromOpaque(context).release()
            }
        }
        core.workerCount = workers.count
    }

    deinit {
        core.stop()
        for worker in workers { pthread_join(worker, nil) }
    }

    /// Calls `body(i)` for every i in 0..<n, spread over the pool; returns when all are done.
    public func parallelFor(_ n: Int, _ body: (Int) -> Void) {
        core.parallelFor(n) { i, _ in body(i) }
    }

    /// Calls `body(i, thread)` for every i in 0..<n, spread over the pool, where `thread`
    /// in 0..<threads names the pool thread running the item (0: the caller), so items
    /// can use per-thread scratch; returns when all are done.
    public func parallelFor(_ n: Int, _ body: (_ item: Int, _ thread: Int) -> Void) {
        core.parallelFor(n, body)
    }

}

/// What a new worker thread is handed: the shared state and its thread number.
private final class WorkerStart {
    let core: PoolCore
    let thread: Int
    init(core: PoolCore, thread: Int) {
        self.core = core
        self.thread = thread
    }
}

/// The state the pool's caller and workers share: the current job, the counters and the
/// sleep/wake machinery.
final class PoolCore: @unchecked Sendable {
    /// Serialises submitters. A pthread mutex (not Synchronization's Mutex, whose futex
    /// calls ThreadSanitizer cannot see) so TSan follows the happens-before chain from one
    /// job's workers to the next job's writes.
    private var submitLock = pthread_mutex_t()
    private var sleepMutex = pthread_mutex_t()
    private var sleepCondition = pthread_cond_t()
    /// Bumped once per job (and at shutdown); workers run a job when it changes.
    private let generation = Atomic<Int>(0)
    private let nextItem = Atomic<Int>(0)
    /// Workers that have not yet finished the current job.
    private let busyWorkers = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    /// The current job; written only between jobs, under `submitLock`.
    private var jobBody: ((Int, Int) -> Void)? = nil
    private var jobCount = 0

    /// Worker threads running `workerLoop` (set once, before any job).
    var workerCount: Int
    /// Spin-wait hints before a worker sleeps: ~50-100 µs (`pause` takes ~65 cycles on
    /// Zen 2 and later, ~140 on Skylake and later Intel cores).
    static let spinLimit = 2_000

    init(workerCount: Int) {
        self.workerCount = workerCount
        pthread_mutex_init(&submitLock, nil)
        pthread_mutex_init(&sleepMutex, nil)
        pthread_cond_init(&sleepCondition, nil)
    }

    deinit {
        pthread_mutex_destroy(&submitLock)
        pthread_mutex_destroy(&sleepMutex)
        pthread_cond_destroy(&sleepCondition)
    }

    /// Makes every worker return from `workerLoop`.
    func stop() {
        stopping.store(true, ordering: .sequentiallyConsistent)
        pthread_mutex_lock(&sleepMutex)
        generation.add(1, ordering: .sequentiallyConsistent)
        pthread_cond_broadcast(&sleepCondition)
        pthread_mutex_unlock(&sleepMutex)
    }

    func parallelFor(_ n: Int, _ body: (Int, Int) -> Void) {
        guard n > 0 else { return }
        if workerCount == 0 || n == 1 {
            for i in 0..<n { body(i, 0) }
            return
        }
        withoutActuallyEscaping(body) { body in
            pthread_mutex_lock(&submitLock)
            defer { pthread_mutex_unlock(&submitLock) }
            jobBody = body
            jobCount = n
            nextItem.store(0, ordering: .relaxed)
            busyWorkers.store(workerCount, ordering: .relaxed)
            pthread_mutex_lock(&sleepMutex)
            generation.add(1, ordering: .sequentiallyConsistent)
            pthread_cond_broadcast(&sleepCondition)
            pthread_mutex_unlock(&sleepMutex)
            runItems(body, n, thread: 0)
            // Workers finish within microseconds unless the OS descheduled one (a
            // busy host): then yield the core instead of spinning for a time slice.
            var spins = 0
            while busyWorkers.load(ordering: .acquiring) > 0 {
                spins += 1
                if spins < PoolCore.spinLimit { spinPause() } else { sched_yield() }
            }
            jobBody = nil
        }
    }

    @inline(__always)
    private func runItems(_ body: (Int, Int) -> Void, _ n: Int, thread: Int) {
        while true {
            let i = nextItem.add(1, ordering: .relaxed).oldValue
            if i >= n { break }
            body(i, thread)
        }
    }

    /// The loop of worker `thread` (1...workerCount).
    func workerLoop(thread: Int) {
        var seen = 0
        while true {
            var spins = 0
            while generation.load(ordering: .acquiring) == seen {
                spins += 1
                if spins < PoolCore.spinLimit {
                    spinPause()
                    continue
                }
                pthread_mutex_lock(&sleepMutex)
                while generation.load(ordering: .acquiring) == seen { pthread_cond_wait(&sleepCondition, &sleepMutex) }
                pthread_mutex_unlock(&sleepMutex)
            }
            seen = generation.load(ordering: .acquiring)
            if stopping.load(ordering: .acquiring) { return }
            if let body = jobBody { runItems(body, jobCount, thread: thread) }
            busyWorkers.subtract(1, ordering: .releasing)
        }
    }
}

/// The CPU's spin-wait hint (x86 `pause`, arm64 `yield`): lets the sibling hyperthread run
/// and saves power while a worker waits for the next job.
@inline(__always)
func spinPause() { qe_spin_pause() }
