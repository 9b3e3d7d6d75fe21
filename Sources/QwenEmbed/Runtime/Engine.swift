import Kernels
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The compute of one model, shared by all its sessions: one pool of threads (fixed when
/// the model loads), the kernel table chosen at load, the forward pass with its scratch,
/// and the step loop that runs every sequence in flight together.
///
/// Callers (sessions, each on its own thread) submit `Job`s and wait for their events; one
/// step thread runs the loop, like llama.cpp's server `update_slots`: each step is one
/// forward pass over the next token of every generating sequence (decoded together, each
/// with its own KV cache, position and NTK alpha) plus prompt chunks of sequences still
/// prefilling, oldest first, up to `prefillChunk` prompt tokens in all, so a long prompt
/// stalls running streams for one chunk at a time, never for its whole prefill; then each
/// generating sequence samples its next token (`GenerationState`). Sequences join and
/// leave between steps; a cancel is seen at the next step.
///
/// Where the model's prefill rows are independent of their batch
/// (`prefillRowsAreIndependent`), a sequence starting its prompt first copies the longest prefix of it that another sequence has
/// computed as prompt rows (in flight, or in the prompt cache), such as a system prompt
/// every conversation shares; one whose prompt shares a longer prefix with a sequence
/// ahead of it that is still prefilling waits a step for it.
///
/// A sequence's results never depend on what else runs with it: its generated tokens go
/// through the decode kernels (per-row arithmetic independent of the batch), its prompt
/// through matmul in chunks that are its own (or, where prefill rows are independent of
/// their batch, in any company and in chunks of any size), and copied positions are the very values
/// it would compute (see `ForwardPass`, `KVCache.promptRowPrefix`). Replies are the same
/// one at a time or many at once.
public final class Engine: @unchecked Sendable {
    /// Threads of the compute pool (the step thread is one of them).
    public let threads: Int
    public let kernels: KernelTable
    /// Most rows one step runs (one per sequence); more sequences take turns.
    public let maxRowsPerStep: Int
    /// Prompt tokens per prefill chunk, and per step in all.
    public let prefillChunk: Int
    /// Prompt tokens a step may take when it runs no sequence's next token, where prefill
    /// rows are independent of their batch (so a sequence's chunking does not change its
    /// results): a prompt read alone goes in chunks of up to this many (llama.cpp's default
    /// batch), which 2 threads read ~15% faster than chunks of 128 (fewer passes over the
    /// weights and fewer joins of the pool: Xeon, AVX-512, default model, pp512 268-283 vs
    /// 225-244 tok/s); generating streams still wait at most `prefillChunk` tokens.
    public let soloPrefillChunk: Int
    /// Whether a token's prefill result depends on nothing but its own row for this model on
    /// this table: the table's GEMM is (`KernelTable.prefillRowsAreIndependent`), or every
    /// matrix goes through the decode kernels' arithmetic
    /// (`TransformerWeights.everyMatrixPrefillsThroughDecodeKernels`). Where true, the
    /// prompt chunks of several sequences run in one product, a prompt prefix one sequence
    /// computed is copied into another, and a prompt read alone takes `soloPrefillChunk`.
    public let prefillRowsAreIndependent: Bool
    /// A prompt prefix shorter than this is not worth waiting a step for.
    static let prefixWorthWaiting = 8
    /// Released sequences' KV caches, kept for the prompts they hold.
    public let promptCache = PromptCache()
    /// Tokens a sequence may run ahead of its caller before it waits for it.
    static let maxEventsAhead = 4

    let config: ModelConfig
    let weights: TransformerWeights
    let tokenizer: Tokenizer

    /// Guards the fields below and every job's shared fields.
    fileprivate let lock = Mutex()
    /// The step thread waits on it for work.
    private let wakeStepThread = Condition()
    private var jobs: [Job] = []                // in flight, oldest first
    private var stepThread: pthread_t? = nil
    private var shuttingDown = false
    private var rotation = 0                    // first decode row when sequences outnumber rows
    private var lastShape = (rows: 0, promptTokens: 0)   // the step composition last logged
    // Created with the step thread and used by it only.
    private var pool: ThreadPool? = nil
    private var forward: ForwardPass? = nil

    init(config: ModelConfig, weights: TransformerWeights, tokenizer: Tokenizer, kernels: KernelTable, threads: Int,
         maxRowsPerStep: Int = 64, prefillChunk: Int = 128, soloPrefillChunk: Int = 512) {
        self.config = config
        self.weights = weights
        self.tokenizer = tokenizer
        self.kernels = kernels
        self.threads = max(1, threads)
        self.maxRowsPerStep = max(1, maxRowsPerStep)
        self.prefillChunk = max(1, prefillChunk)
        self.soloPrefillChunk = max(self.prefillChunk, soloPrefillChunk)
        prefillRowsAreIndependent = kernels.prefillRowsAreIndependent || weights.everyMatrixPrefillsThroughDecodeKernels
    }

    /// Stops the step thread. Called when the model goes away, so no session, and no job,
    /// is left.
    func shutdown() {
        let thread: pthread_t? = lock.locked {
            shuttingDown = true
            wakeStepThread.broadcast()
            return stepThread
        }
        if let thread { pthread_join(thread, nil) }
    }

    // MARK: submitting

    /// Prepares `cache` for a call on `prompt`: keeps the longest cached prefix of it (the
    /// last prompt token is always recomputed, for its logits) and sets the call's NTK
    /// alpha, computed once from the whole prompt as Qwen's modeling code does (keys
    /// rotated with another alpha are dropped: Qwen's own generate recomputes the whole
    /// prompt each call too). Returns how many prompt tokens are reused.
    func reuse(_ cache: KVCache, for prompt: [Int32]) -> Int {
        var common = 0
        let cached = cache.tokens
        while common < min(cached.count, prompt.count) && cached[common] == prompt[common] { common += 1 }
        if common == prompt.count && common > 0 { common -= 1 }
        cache.truncate(to: common)
        let alpha = ForwardPass.ntkAlpha(config, sequenceLength: prompt.count)
        if alpha != cache.ntkAlpha {
            cache.truncate(to: 0)
            cache.ntkAlpha = alpha
        }
        return cache.tokens.count
    }

    /// Hands `job` to the step loop, starting the loop on first use.
    func submit(_ job: Job) throws {
        let inFlight: Int = try lock.locked {
            guard !shuttingDown else { throw QwenError.internalError("the model is being freed") }
            if stepThread == nil { try startStepThread() }
            jobs.append(job)
            wakeStepThread.signal()
            return jobs.count
        }
        Log.write(.debug, "engine: a sequence of \(job.prompt.count) prompt tokens (\(job.nextPrompt) cached) joins; \(inFlight) in flight")
    }

    private func startStepThread() throws {
        let pool = ThreadPool(threads: threads)
        self.pool = pool
        forward = ForwardPass(config: config, weights: weights, kernels: kernels, pool: pool,
                              prefillRowsAreIndependent: prefillRowsAreIndependent)
        var thread = pthread_t()
        let context = Unmanaged.passRetained(self).toOpaque()
        let created = pthread_create(&thread, nil, { raw in
            guard let raw else { return nil }
            Unmanaged<Engine>.fromOpaque(raw).takeRetainedValue().stepLoop()
            return nil
        }, context)
        guard created == 0 else {
            Unmanaged<Engine>.fromOpaque(context).release()
            throw QwenError.outOfMemory("cannot start the engine's step thread (error \(created))")
        }
        stepThread = thread
        Log.write(.info, "engine: started: \(threads) compute threads, \(kernels.isa.rawValue) kernels, "
                  + "up to \(maxRowsPerStep) sequences and one \(prefillChunk)-token prompt chunk per step"
                  + (prefillRowsAreIndependent ? " (\(soloPrefillChunk) in a step of prompts only)" : ""))
    }

    /// A caller took an event or asked for something: the step thread may have work.
    fileprivate func wake() {
        lock.locked { wakeStepThread.signal() }
    }

    // MARK: the step loop

    /// One sequence's part of a step.
    fileprivate struct Entry {
        let job: Job
        let tokens: ArraySlice<Int32>
        /// Prompt tokens (else the sequence's last sampled token).
        let isPrompt: Bool
        let kind: RowKind
    }

    private func stepLoop() {
        guard let forward else { return }
        while let plan = nextPlan() {
            execute(plan, forward)
        }
    }

    /// Waits for work; nil when the engine shuts down.
    private func nextPlan() -> [Entry]? {
        lock.locked {
            while !shuttingDown {
                settleRequests()
                let plan = makePlan()
                if !plan.isEmpty {
                    logShape(of: plan)
                    return plan
                }
                if lastShape.rows > 0 {
                    Log.write(.debug, "engine: idle")
                    lastShape = (0, 0)
                }
                lock.wait(wakeStepThread)
            }
            return nil
        }
    }

    /// Logs the step's composition when it changes (debug). Under the lock.
    private func logShape(of plan: [Entry]) {
        let rows = plan.filter { $0.tokens.count == 1 }.count
        let promptTokens = plan.filter { $0.tokens.count > 1 }.reduce(0) { $0 + $1.tokens.count }
        guard rows != lastShape.rows || (promptTokens > 0) != (lastShape.promptTokens > 0) else { return }
        lastShape = (rows, promptTokens)
        Log.write(.debug, "engine: steps of \(rows) one-token rows" + (promptTokens > 0 ? " and a \(promptTokens)-token prompt chunk" : "")
                  + " (\(jobs.count) sequences in flight)")
    }

    /// Ends the sequences whose caller cancelled or stopped them. Under the lock.
    private func settleRequests() {
        for job in jobs where !job.done {
            if job.cancelFlag.isSet {
                end(job, .cancelled)
            } else if let reason = job.stopReason {
                end(job, reason)
            }
        }
        jobs.removeAll { $0.done }
    }

    /// The next step: the sampled token of every generating sequence whose caller keeps
    /// up, and prompt chunks, oldest sequence first, up to `prefillChunk` prompt tokens in
    /// all (at least one chunk; `soloPrefillChunk` in a step of prompts only, where rows are
    /// independent). Under the lock.
    private func makePlan() -> [Entry] {
        var plan: [Entry] = []
        let count = jobs.count
        for offset in 0..<count where plan.count < maxRowsPerStep {
            let job = jobs[(rotation + offset) % count]
            guard job.isRunnable else { continue }
            if let token = job.pendingToken {
                if job.cache.tokens.count >= job.cache.capacity {
                    end(job, .length)   // the context window is full
                } else {
                    plan.append(Entry(job: job, tokens: [token], isPrompt: false, kind: .decode))
                }
            } else if job.isPrefilling && job.chunkSize == 1 {   // scoring token by token, as decode runs
                plan.append(Entry(job: job, tokens: job.prompt[job.nextPrompt...].prefix(1), isPrompt: true, kind: .decode))
            }
        }
        rotation = count > 0 ? (rotation + 1) % count : 0
        let solo = plan.isEmpty && prefillRowsAreIndependent
        let fullBudget = solo ? soloPrefillChunk : prefillChunk
        var budget = fullBudget
        for job in jobs where job.isRunnable && job.isPrefilling && job.chunkSize > 1 && budget > 0 {
            if prefillRowsAreIndependent && !job.prefixChecked {
                guard shareLongestPrefix(with: job) else { continue }   // waits for a sequence ahead of it
            }
            // Scoring jobs keep their chunk: their logits buffer holds one.
            let chunk = solo && job.generation != nil ? max(job.chunkSize, soloPrefillChunk) : job.chunkSize
            var end = min(job.nextPrompt + chunk, job.prompt.count)
            if prefillRowsAreIndependent {
                // The part its prompt shares with sequences behind it first, alone: they copy it next step.
                let shared = sharedWithLaterPrompts(job)
                if shared - job.nextPrompt >= Engine.prefixWorthWaiting && shared < end { end = shared }
            }
            guard end - job.nextPrompt <= budget || budget == fullBudget else { continue }
            budget -= end - job.nextPrompt
            plan.append(Entry(job: job, tokens: job.prompt[job.nextPrompt..<end], isPrompt: true, kind: .prompt))
        }
        return plan
    }

    /// The longest prefix `job`'s prompt shares with the prompt of a sequence behind it
    /// still to start (which will copy it from `job`). Under the lock.
    private func sharedWithLaterPrompts(_ job: Job) -> Int {
        var longest = 0
        for later in jobs.drop(while: { $0 !== job }).dropFirst()
        where !later.done && !later.prefixChecked && later.chunkSize > 1 && later.cache.ntkAlpha == job.cache.ntkAlpha {
            var n = 0
            let bound = min(later.prompt.count - 1, job.prompt.count)
            while n < bound && later.prompt[n] == job.prompt[n] { n += 1 }
            longest = max(longest, n)
        }
        return longest
    }

    /// Before `job`'s first prompt chunk: copies into its cache the longest prefix of its
    /// prompt that a sequence in flight or a cached one (a cache of its type) computed as
    /// prompt rows, beyond what its own cache reused (which must be prompt rows too). Returns false when a sequence
    /// ahead of it, still prefilling, will compute a prefix worth waiting a step for.
    /// Under the lock (the caches of sequences in flight are the step thread's).
    private func shareLongestPrefix(with job: Job) -> Bool {
        let own = job.nextPrompt, limit = job.prompt.count - 1   // the last prompt token is always run
        guard job.cache.promptRowPrefix >= own, own < limit else {
            job.prefixChecked = true
            return true
        }
        func common(_ tokens: ArraySlice<Int32>) -> Int {
            var n = 0
            let bound = min(tokens.count, limit)
            while n < bound && tokens[tokens.startIndex + n] == job.prompt[n] { n += 1 }
            return n
        }
        var best = own, source: KVCache? = nil
        for other in jobs where other !== job && !other.done && other.cache.type == job.cache.type
            && other.cache.ntkAlpha == job.cache.ntkAlpha {
            let shared = common(other.cache.tokens[..<other.cache.promptRowPrefix])
            if shared > best { (best, source) = (shared, other.cache) }
        }
        let ahead = jobs.prefix { $0 !== job }
            .filter { !$0.done && $0.isPrefilling && $0.chunkSize > 1 && $0.cache.type == job.cache.type
                      && $0.cache.ntkAlpha == job.cache.ntkAlpha }
            .map { common($0.prompt[...]) }.max() ?? 0
        if ahead >= best + Engine.prefixWorthWaiting { return false }
        job.prefixChecked = true
        do {
            if let source {
                try job.cache.copy(upTo: best, from: source)
            } else {
                best = try promptCache.copyLongestPrefix(of: job.prompt, limit: limit, into: job.cache) ?? own
            }
        } catch {
            Log.write(.warn, "engine: a prompt prefix could not be copied: \(error)")
            return true
        }
        if best > own {
            job.copiedTokens = best - own
            job.nextPrompt = best
            Log.write(.debug, "engine: \(best - own) prompt tokens copied from another sequence's cache")
        }
        return true
    }

    /// Runs a step: room in the caches, the forward pass, then each sequence's next step.
    private func execute(_ planned: [Entry], _ forward: ForwardPass) {
        var failures: [(Job, Error)] = []
        // A cache that cannot grow fails its own sequence only.
        let plan = planned.filter { entry in
            do {
                try entry.job.cache.reserve(entry.job.cache.tokens.count + entry.tokens.count)
                return true
            } catch {
                Log.write(.warn, "engine: a sequence's KV cache cannot grow: \(error)")
                failures.append((entry.job, error))
                return false
            }
        }
        var outcomes: [(Job, [JobEvent])] = []
        if !plan.isEmpty {
            let chunks = plan.map { entry -> Chunk in
                if let buffer = entry.job.scoreBuffer {
                    return Chunk(tokens: entry.tokens, cache: entry.job.cache, logits: .all(into: buffer), kind: entry.kind)
                }
                let completesPrompt = !entry.isPrompt || entry.job.nextPrompt + entry.tokens.count == entry.job.prompt.count
                return Chunk(tokens: entry.tokens, cache: entry.job.cache, logits: completesPrompt ? .last : .none, kind: entry.kind)
            }
            let starts = plan.map { $0.job.cache.tokens.count }   // [plan] each chunk's first position
            do {
                let logits = try forward.run(chunks)
                for (entry, start) in zip(plan, starts) where entry.kind == .prompt && entry.job.cache.promptRowPrefix == start {
                    entry.job.cache.promptRowPrefix = start + entry.tokens.count
                }
                // Each sequence's next step (sampling, detokenizing) on the pool: they share nothing.
                let results = UnsafeMutablePointer<Result<[JobEvent], Error>>.allocate(capacity: plan.count)   // [plan]
                plan.withUnsafeBufferPointer { entries in
                    logits.withUnsafeBufferPointer { logits in
                        forward.pool.parallelFor(entries.count) { i in
                            (results + i).initialize(to: Result { try entries[i].job.advance(after: entries[i], logits: logits[i]) })
                        }
                    }
                }
                for (i, entry) in plan.enumerated() {
                    switch results[i] {
                    case .success(let events): outcomes.append((entry.job, events))
                    case .failure(let error): failures.append((entry.job, error))
                    }
                }
                results.deinitialize(count: plan.count)
                results.deallocate()
            } catch {
                Log.write(.error, "engine: a step of \(plan.count) sequences failed: \(error)")
                failures += plan.map { ($0.job, error) }
            }
        }
        lock.locked {
            for (job, events) in outcomes { job.post(events) }
            for (job, error) in failures where !job.done { job.post([.failed(error)]) }
            jobs.removeAll { $0.done }
        }
    }

    /// Ends `job` now with `reason`, its held-back text flushed. Under the lock.
    private func end(_ job: Job, _ reason: FinishReason) {
        let rest = job.flush()
        job.post((rest.isEmpty ? [] : [.token(rest, generated: job.generatedCount, logprob: nil)]) + [.finished(reason, generated: job.generatedCount)])
    }
}

/// A job's cancel flag, owned by its session so `cancel()` works from any thread, at any
/// time: the step loop reads it before each step.
final class CancelFlag: @unchecked Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .relaxed) }
    func set() { value.store(true, ordering: .relaxed) }
    func clear() { value.store(false, ordering: .relaxed) }
}

/// What the step loop hands a job's caller, in order.
enum JobEvent {
    /// One generated token and the text it completed (possibly ""); `generated` counts
    /// the reply's tokens so far; the token's log probabilities when asked for (nil for
    /// held-back text flushed at the end).
    case token(String, generated: Int, logprob: TokenLogprob?)
    /// Scoring: the logits of prompt positions first..<first+count are in the job's
    /// buffer, until `acknowledge()`.
    case logits(first: Int, count: Int)
    case finished(FinishReason, generated: Int)
    case failed(Error)
}

/// One sequence in the engine: a prompt to prefill into `cache`, then a reply to
/// generate, or the logits of every prompt position to hand out (scoring). Its caller
/// (a session's thread) waits for its events; the step thread advances it.
final class Job: @unchecked Sendable {
    unowned let engine: Engine
    let cache: KVCache
    let prompt: [Int32]
    /// Prompt tokens per prefill chunk (1: token by token, through the decode kernels).
    let chunkSize: Int
    let cancelFlag: CancelFlag
    /// Prompt tokens reused from the cache.
    let cachedTokens: Int
    private let submitted = monotonicMilliseconds()

    // The step thread's (or, during a step, the pool thread advancing this job).
    /// The reply being generated; nil for scoring.
    fileprivate var generation: GenerationState?
    /// Scoring: each chunk's logits go here [chunkSize, vocab].
    fileprivate let scoreBuffer: UnsafeMutablePointer<Float>?
    /// First prompt index not in the cache yet.
    fileprivate var nextPrompt: Int
    /// The sampled token the next step runs.
    fileprivate var pendingToken: Int32? = nil
    fileprivate var generatedCount = 0
    /// Whether the prompt prefix has been looked for in other caches (`shareLongestPrefix`).
    fileprivate var prefixChecked = false
    /// Prompt tokens copied from another sequence's cache instead of computed (under the lock).
    fileprivate var copiedTokens = 0

    // Shared with the caller, under the engine's lock.
    fileprivate var events: [JobEvent] = []
    fileprivate var stopReason: FinishReason? = nil
    fileprivate var done = false
    fileprivate var awaitingAcknowledgement = false
    private let wakeCaller = Condition()
    private var firstTokenAt: Double? = nil
    private var finishedAt: Double? = nil

    /// A job whose first `cachedTokens` prompt tokens are in `cache` (`Engine.reuse`) that
    /// generates a reply with `generation`, or, without one, hands out the logits of every
    /// position in `scoreBuffer` [chunkSize, vocab].
    init(engine: Engine, cache: KVCache, prompt: [Int32], cachedTokens: Int, generation: GenerationState?,
         scoreBuffer: UnsafeMutablePointer<Float>? = nil, chunkSize: Int, cancelFlag: CancelFlag) {
        self.engine = engine
        self.cache = cache
        self.prompt = prompt
        self.generation = generation
        self.scoreBuffer = scoreBuffer
        self.chunkSize = max(1, chunkSize)
        self.cancelFlag = cancelFlag
        self.cachedTokens = cachedTokens
        nextPrompt = cachedTokens
    }

    fileprivate var isPrefilling: Bool { nextPrompt < prompt.count }
    /// Not finished, and not waiting for its caller. Under the lock.
    fileprivate var isRunnable: Bool { !done && !awaitingAcknowledgement && events.count < Engine.maxEventsAhead }

    /// Prompt tokens not computed by this job: reused from its own cache or copied from
    /// another; once the job has finished.
    var reusedTokens: Int { engine.lock.locked { cachedTokens + copiedTokens } }

    // MARK: the caller's side

    /// The next event, waiting for it.
    func next() -> JobEvent {
        let event: JobEvent = engine.lock.locked {
            while events.isEmpty { engine.lock.wait(wakeCaller) }
            return events.removeFirst()
        }
        switch event {
        case .finished, .failed: break
        case .token, .logits: engine.wake()   // room again: the sequence may run
        }
        return event
    }

    /// Ends the reply at the next step with `reason` (the caller's callback returned false,
    /// or it ended a pulled reply early). Events already queued are still handed out.
    func stop(_ reason: FinishReason) {
        engine.lock.locked { if stopReason == nil { stopReason = reason } }
        engine.wake()
    }

    /// Scoring: the caller is done with the logits of the last `.logits` event.
    func acknowledge() {
        engine.lock.locked { awaitingAcknowledgement = false }
        engine.wake()
    }

    /// Milliseconds from submission to the first token (to the end if there was none) and
    /// from the first token to the end; once the job has finished.
    var timings: (prefill: Double, decode: Double) {
        engine.lock.locked {
            let end = finishedAt ?? monotonicMilliseconds()
            guard let first = firstTokenAt else { return (end - submitted, 0) }
            return (first - submitted, end - first)
        }
    }

    // MARK: the step thread's side

    /// The events after a step ran `entry` (with `logits` when it asked for the last ones).
    fileprivate func advance(after entry: Engine.Entry, logits: UnsafeMutablePointer<Float>?) throws -> [JobEvent] {
        if entry.isPrompt {
            let first = nextPrompt
            nextPrompt += entry.tokens.count
            if scoreBuffer != nil {
                return [.logits(first: first, count: entry.tokens.count)] + (isPrefilling ? [] : [.finished(.stop, generated: 0)])
            }
            if isPrefilling { return [] }
        }
        guard generation != nil, let logits else { return [] }
        if firstTokenAt == nil { firstTokenAt = monotonicMilliseconds() }
        pendingToken = nil
        let step = try generation!.advance(logits: logits)   // in place: the state's sets and arrays are not copied
        generatedCount = generation!.generated.count
        switch step {
        case .next(let token, let emit, let logprob):
            pendingToken = token
            return [.token(emit, generated: generatedCount, logprob: logprob)]
        case .finished(let reason, let emit, let generated, let logprob):
            return (emit.isEmpty && !generated ? [] : [.token(emit, generated: generatedCount, logprob: logprob)])
                + [.finished(reason, generated: generatedCount)]
        }
    }

    /// The text a generating sequence holds back, flushed (the reply ends). Under the lock,
    /// from the step thread.
    fileprivate func flush() -> String {
        generation?.flush() ?? ""
    }

    /// Hands events to the caller. Under the lock.
    fileprivate func post(_ new: [JobEvent]) {
        guard !new.isEmpty else { return }
        for event in new {
            switch event {
            case .finished, .failed:
                done = true
                finishedAt = monotonicMilliseconds()
            case .logits:
                awaitingAcknowledgement = true
            case .token:
                break
            }
        }
        events += new
        wakeCaller.signal()
    }
}
