import Checkpoint
import Foundation
import Manifest
import Scheduler
#if canImport(Glibc)
import Glibc
#endif

/// How a batch session behaves, whatever executes its attempts.
public struct SessionOptions: Sendable {
    /// Stop dispatching once this many jobs failed for good.
    public var maxFailures: Int?
    /// Default timeout: predicted time x this factor, at least `minimumTimeoutSeconds`.
    public var timeoutFactor: Double = 3
    public var minimumTimeoutSeconds: Double = 600
    public var graceSeconds: Double = 10
    public var command: String = "avatar-batch run"
    /// Each attempt's log takes at most this many MB of disk (its start, half the cap and at most 1 MB, and its end); nil: unbounded.
    public var logCapMB: Int? = 64

    /// Started once the run holds the store and stopped before it lets go (status's published list).
    public var companions: [any RunCompanion] = []

    public init(maxFailures: Int? = nil) {
        self.maxFailures = maxFailures
    }
}

/// How a run ended.
public struct RunSummary: Sendable {
    public var succeeded = 0
    public var failed = 0
    public var skipped = 0
    public var interrupted = false
    public var stoppedEarly = false
    public var wallSeconds = 0.0
    /// Highest device memory.used seen per GPU (GB), when sampled.
    public var devicePeakGB: [Int: Double] = [:]
    public var runID: Int64 = 0

    /// 0 all succeeded, 1 some failed for good (or stopped by --max-failures), 130 interrupted.
    public var exitStatus: Int32 {
        if interrupted { return 130 }
        return failed > 0 || stoppedEarly ? 1 : 0
    }
}

/// A clip that fits no GPU of the executor at its own settings.
public struct Unplaceable: Sendable {
    public var jobID: String
    public var location: String
    /// "clip X needs ..." with a hint when a smaller setting would fit.
    public var message: String
}

/// One batch, from acquiring its store to its closing line: reconcile what a dead run left, sync the manifest,
/// build the queue, hand jobs to the executor as it admits them, apply the outcome policy to every end (the OOM
/// ladder, the failure limit, what the predictor learns), and record everything. It knows nothing of processes
/// or Slurm: that is the executor's side of the seam (`AttemptExecutor`).
public final class BatchSession: @unchecked Sendable {
    let manifest: Manifest
    /// The manifest's jobs in its order, and each one's position by id (not a second copy of every job).
    let jobList: [Job]
    let position: [String: Int]
    let store: Store
    let options: SessionOptions
    let executor: any AttemptExecutor
    let progress: ProgressReporter
    let outputs: OutputFolder
    /// The renderer's S(k), for solo-equivalent durations of attempts that shared a GPU.
    let sharing: SharingModel
    var predictor: Predictor
    /// Calibration and history (nil: the profile alone, and nothing is written to a history).
    let knowledge: Knowledge?

    public init(manifest: Manifest, jobs: [Job], store: Store, executor: any AttemptExecutor, options: SessionOptions, progress: ProgressReporter,
                knowledge: Knowledge? = nil) throws {
        self.manifest = manifest
        self.jobList = jobs
        self.position = Dictionary(uniqueKeysWithValues: jobs.enumerated().map { ($0.element.id, $0.offset) })
        self.store = store
        self.options = options
        self.executor = executor
        self.progress = progress
        self.outputs = OutputFolder(outputDir: manifest.outputDir, jobs: jobs)
        self.knowledge = knowledge
        let observed = try store.observations(renderer: manifest.renderer.name)
        if let knowledge {
            self.sharing = SharingModel(knowledge.profile.sharing)
            self.predictor = knowledge.predictor(batch: observed)
        } else {
            self.sharing = SharingModel(manifest.renderer.sharing)
            self.predictor = Predictor(profile: manifest.renderer, observations: observed)
        }
        // On warm workers a clip's time is a request's: the load is the pool's to predict.
        predictor.warm = executor.servesWarm
    }

    /// Clips that fit no GPU of the executor at their own settings: an error before anything runs.
    public static func preflight(_ manifest: Manifest, jobs: [Job], executor: any AttemptExecutor, strategy: Strategy, maxJobsPerGPU: Int?,
                                 predictor: Predictor? = nil) -> [Unplaceable] {
        let planner = Planner(predictor: predictor ?? Predictor(profile: manifest.renderer), strategy: strategy, maxJobsPerGPU: maxJobsPerGPU)
        return jobs.compactMap { j in
            let e = planner.predictor.estimate(j.settings)
            let request = PlacementRequest(jobID: j.id, memoryGB: e.memoryGB, seconds: e.seconds, gpuModel: j.clip.gpuModel, unsharedSeconds: e.unsharedSeconds)
            guard Placer.fitsNoGPU(request, gpus: executor.gpus) != nil else { return nil }
            let hint = planner.suggestFit(PlanJob(id: j.id, settings: j.settings), gpus: executor.gpus).map { "; \($0)" } ?? ""
            return Unplaceable(jobID: j.id, location: "\(j.clip.location)", message: "clip \(j.id) needs \(executor.need(e.memoryGB))\(hint)")
        }
    }

    func job(_ id: String) -> Job? { position[id].map { jobList[$0] } }

    /// An attempt under way.
    struct Running {
        var entry: JobQueue.Entry
        var attempt: AttemptRecord
        var placement: Placement
        var estimate: Estimate
        var started: Date
        /// When `rendering` was last brought up to date.
        var accountedUntil = Date()
        /// How many render on its card, itself counted, over its life so far, as runs of the same k: the interval up to
        /// `until`, from the previous one's (or the start). It renders at S(k)/k there. Its solo-equivalent time and the
        /// stretches the history keeps (what S(k) is learned from) are both counted from these, over its render
        /// (`BatchSession.renderSeconds`).
        var rendering: [(until: Date, k: Int)] = []
        /// The most attempts that shared its GPU while it ran, itself included (the history's window is kept per this k).
        var peers = 1
        /// When it began to run on its GPU: a cold attempt's launch, a warm request's hand-over to its worker (seen to
        /// the second: `accrue` runs each tick). Its unshared part (`Estimate.unsharedSeconds`) counts from here.
        var runningSince: Date?
    }

    /// What an ended attempt led to.
    enum Next {
        case requeue(JobQueue.Entry)
        case succeeded, failed, interrupted
    }

    /// Runs the batch: the store is held for the run and released with its exit status, and the closing line is printed.
    public func run() async throws -> RunSummary {
        let began = Date()
        var summary = RunSummary()
        let runID = try acquireStore()
        summary.runID = runID
        var exit: Int32 = 1
        defer { try? store.release(runID: runID, exitStatus: exit) }
        // Stopped before the release (defers run last first): nothing shows this run as live once it has let go.
        for c in options.companions { c.start(runID: runID) }
        defer { for c in options.companions { c.stop() } }

        let (stream, continuation) = AsyncStream.makeStream(of: SessionEvent.self)
        let store = self.store
        let events = ExecutorEvents(continuation, recorder: { attemptID, fact in try BatchSession.record(fact, attemptID: attemptID, store: store) },
                                    workerRecorder: { [knowledge, progress] fact in
                                        try BatchSession.record(fact, store: store)
                                        // A load is the history's too: the next batch on this GPU model expects what loads took here.
                                        if case let .ready(_, load?, _, model, settings) = fact, let warning = knowledge?.recordLoad(load, gpuModel: model, loadSettings: settings) {
                                            progress.event("warning: \(warning)")
                                        }
                                    })
        let executor = self.executor
        let signals = SignalWatcher(onFirst: { continuation.yield(.signal) }, onSecond: { executor.abortNow() })
        defer { signals.stop() }
        let ticker = Task { while !Task.isCancelled { try? await Task.sleep(for: .seconds(1)); continuation.yield(.tick) } }
        defer { ticker.cancel() }

        try await executor.open(events, runID: runID)
        // However the batch ends, what it wrote to the history goes from the write-ahead log into the file.
        defer { knowledge?.history?.checkpoint() }
        do {
            try await loop(runID: runID, stream: stream, summary: &summary)
        } catch {
            summary.devicePeakGB = await executor.close()
            throw error
        }
        summary.devicePeakGB = await executor.close()
        progress.finish()
        summary.wallSeconds = Date().timeIntervalSince(began)
        exit = summary.exitStatus
        try printTotals(summary)
        return summary
    }

    func loop(runID: Int64, stream: AsyncStream<SessionEvent>, summary: inout RunSummary) async throws {
        var running = try await adoptOpenAttempts()
        try syncJobs()
        let queue = try buildQueue(&summary)
        let began = Date()
        if let k = knowledge {
            for w in k.warnings { progress.event("warning: \(w)") }
            progress.event("predictions: \(k.basis)")
            try? store.notePredictionBasis(runID: runID, k.basis)
        }
        progress.event("batch \(manifest.name): \(jobList.count) clips, \(summary.skipped) already done, "
            + (running.isEmpty ? "" : "\(running.count) still running, ") + "\(queue.count) to render on \(executor.describe())")
        var stopping = false
        var awaiting = false
        var failedForGood = 0
        var iterator = stream.makeAsyncIterator()

        while true {
            if !stopping {
                queue.refresh(predictor)
                let admission = executor.admit(queue, predictor: predictor, now: Date().timeIntervalSince(began))
                awaiting = admission.awaiting
                var degraded = false
                for (id, reason, fitsNoGPU) in admission.never {
                    guard let e = queue.entry(id) else { continue }
                    if fitsNoGPU, let next = degradeUntilItFits(e) {
                        // What it learned from an OOM makes it too big as it is: go down the ladder without running it.
                        progress.event("\(id): predicted \(String(format: "%.1f", queue.estimate(e, predictor).memoryGB)) GB fits no GPU; skipping to \(next.change)")
                        queue.append(next)
                        degraded = true
                        continue
                    }
                    let why = fitsNoGPU ? "fits no GPU: \(reason)" : reason
                    progress.event("FAILED \(id): \(why)")
                    try store.transition(id, to: .failed, reason: why)
                    queue.remove(id)
                    failedForGood += 1
                    summary.failed += 1
                }
                for (id, placement) in admission.starts {
                    guard let e = queue.remove(id) else { continue }
                    if let gpu = placement.gpu?.index { accrue(gpu: gpu, in: &running) }
                    running[id] = try await launch(e, placement: placement, runID: runID)
                    if let gpu = placement.gpu?.index { notePeers(gpu: gpu, in: &running) }
                }
                if degraded { continue }
            }
            if running.isEmpty && (queue.isEmpty || stopping) { break }
            if running.isEmpty && !queue.isEmpty && !awaiting {
                // Nothing runs and nothing could start: every remaining job waits on something that never frees.
                for e in queue.all {
                    progress.event("FAILED \(e.job.id): cannot be placed on any GPU")
                    try store.transition(e.job.id, to: .failed, reason: "cannot be placed on any GPU")
                    queue.remove(e.job.id)
                    summary.failed += 1
                }
                break
            }
            drawProgress(running: running, queue: queue, summary: summary)
            guard let event = await iterator.next() else { break }
            switch event {
            case .tick:
                // Sharing is accounted to the second: a request whose worker became ready starts its share from about then.
                for gpu in Set(running.values.compactMap { $0.placement.gpu?.index }) { accrue(gpu: gpu, in: &running) }
                continue
            case .signal:
                guard !stopping else { continue }
                stopping = true
                summary.interrupted = true
                await executor.stopAll()
            case let .executor(.say(line)):
                progress.event(line)
            case .executor(.changed):
                // A worker became ready (its request renders from now) or went away: sharing changed.
                for gpu in Set(running.values.compactMap { $0.placement.gpu?.index }) {
                    accrue(gpu: gpu, in: &running)
                    notePeers(gpu: gpu, in: &running)
                }
                continue
            case let .executor(.failed(why)):
                throw ExecutorError.launch(why)
            case let .executor(.ended(ended)):
                guard running[ended.jobID]?.attempt.id == ended.attemptID else { continue }
                if let gpu = running[ended.jobID]?.placement.gpu?.index { accrue(gpu: gpu, in: &running) }
                let r = running.removeValue(forKey: ended.jobID)!
                let result = executor.settle(ended)
                let next = try finish(r, result, stopping: stopping)
                executor.recorded(ended)
                if let e = tally(next, &summary, failedForGood: &failedForGood) { queue.append(e) }
                if !stopping && failureLimitReached(failedForGood, &summary, queued: queue.count, still: "running jobs finish") { stopping = true }
            }
        }
    }

    /// Writes what an executor learned about a running attempt (called on the executor's task, at once).
    static func record(_ fact: AttemptFact, attemptID: Int64, store: Store) throws {
        switch fact {
        case let .process(pid, start, group): try store.recordProcess(attemptID: attemptID, pid: pid, processStart: start, processGroup: group)
        case let .batchJob(id): try store.recordSlurmJob(attemptID: attemptID, slurmJobID: id)
        case let .host(host): try store.recordHost(attemptID: attemptID, host: host)
        case let .note(note): try store.recordNote(attemptID: attemptID, note: note)
        case let .worker(id): try store.recordWorker(attemptID: attemptID, workerID: id)
        }
    }

    /// Writes what an executor learned about a warm worker.
    static func record(_ fact: WorkerFact, store: Store) throws {
        switch fact {
        case let .started(w): try store.workerStarted(w)
        case let .ready(id, load, resident, _, _): try store.workerReady(id, loadSeconds: load, residentGB: resident)
        case let .served(id): try store.workerServed(id)
        case let .ended(id, note): try store.workerEnded(id, note: note)
        }
    }

    // MARK: start

    /// Becomes this store's one orchestrator (a dead holder is replaced; a live one makes this throw `locked`).
    func acquireStore() throws -> Int64 {
        let digest = (try? SHA256.hex(fileAt: manifest.path)) ?? ""
        return try store.acquire(ProcFS.current(), user: ProcessInfo.processInfo.environment["USER"] ?? String(getuid()), command: options.command,
                                 manifestPath: manifest.path, manifestDigest: digest, isAlive: ProcFS.isAlive)
    }

    /// Attempts a dead orchestrator left open: the executor takes back what still runs, and the rest is recorded
    /// interrupted (queued again by `buildQueue`).
    func adoptOpenAttempts() async throws -> [String: Running] {
        var running: [String: Running] = [:]
        // Attempts of another executor first: an executor that cannot take them back refuses before touching the rest.
        for a in try store.openAttempts().sorted(by: { ($0.executor != executor.kind ? 0 : 1, $0.id) < ($1.executor != executor.kind ? 0 : 1, $1.id) }) {
            let job = self.job(a.jobID)
            switch try await executor.adopt(a, known: AdoptedAttempt(inManifest: job != nil, graceSeconds: options.graceSeconds)) {
            case .tracked:
                guard let job else { continue }
                let entry = JobQueue.Entry(job: job, settings: a.settings ?? job.settings, isolate: a.isolated, rung: a.rung, change: a.change,
                                           order: position[job.id] ?? 0)
                running[a.jobID] = Running(entry: entry, attempt: a, placement: Placement(gpu: nil),
                                           estimate: predictor.estimate(entry.settings, jobID: job.id),
                                           started: Date(timeIntervalSince1970: a.startedAt))
            case let .gone(note):
                if let job { outputs.removePartials(job) }
                try store.finishAttempt(a, AttemptEnd(classification: .interrupted, note: note, jobState: .interrupted, reason: "interrupted"))
                progress.event("requeue \(a.jobID): attempt \(a.number) was interrupted")
            }
        }
        try await stopLeftoverWorkers()
        return running
    }

    /// Warm workers a dead orchestrator left: they exit once they see their socket close, and whatever of them is
    /// still there (on this host) is stopped now, as a cold attempt's process group would be.
    func stopLeftoverWorkers() async throws {
        for w in try store.openWorkers() {
            guard w.host == ProcFS.hostname else { continue }
            var note = "gone when the next run started"
            if let pid = ProcFS.leftoverGroup(w.pid, leader: w.pid, start: w.processStart, host: w.host) {
                progress.event("stopping leftover worker \(w.id) (process group \(pid))")
                await ProcFS.terminateGroup(pid, graceSeconds: options.graceSeconds)
                note = "left running by a stopped orchestrator; stopped by the next run"
            }
            try store.workerEnded(w.id, note: note)
        }
    }

    /// Brings the store's jobs in line with the manifest (predictions included).
    func syncJobs() throws {
        // Settings repeat across a batch: each distinct one is estimated and encoded once.
        var known: [ClipSettings: (json: String, estimate: Estimate)] = [:]
        _ = try store.sync(jobList.map { j in
            let k = known[j.settings] ?? {
                let v = (String(decoding: (try? JSONEncoder.sorted.encode(j.settings)) ?? Data(), as: UTF8.self), predictor.estimate(j.settings))
                known[j.settings] = v
                return v
            }()
            return ManifestJob(id: j.id, contentKey: j.contentKey, settingsJSON: k.json, output: j.clip.output, priority: j.clip.priority,
                               predictedGB: k.estimate.memoryGB, predictedSeconds: k.estimate.seconds)
        })
    }

    /// Jobs to run: pending and interrupted ones, with the ladder's next step; succeeded jobs whose output is
    /// gone or changed go back to pending.
    func buildQueue(_ summary: inout RunSummary) throws -> JobQueue {
        // Appended in store order; the queue sorts itself into dispatch order (manifest order is its last key).
        let queue = JobQueue()
        var requeue: [String] = []
        // The store is read a page at a time (a 100,000-job store read whole peaked at hundreds of MB).
        try store.forEachJob { rec, attempts in
            guard let i = position[rec.id] else { return }
            let job = jobList[i]
            var rec = rec
            if rec.state == .succeeded {
                if outputs.stillValid(rec, job: job, store: store) { summary.skipped += 1; return }
                // A fresh ladder: the earlier success says nothing about this render (requeued once the read is done).
                requeue.append(rec.id)
                rec.state = .pending
                rec.retryFrom = rec.attemptCount
            }
            guard rec.state == .pending || rec.state == .interrupted else { return }
            let history = ladderHistory(attempts, job: job, retryFrom: rec.retryFrom)
            switch RetryLadder.next(history: history, base: job.settings, policy: manifest.retry) {
            case let .run(settings, isolate, rung, _):
                queue.append(JobQueue.Entry(job: job, settings: settings, isolate: isolate, rung: rung,
                                            change: RetryLadder.describeChange(job.settings, settings, isolate), order: i))
            case let .giveUp(reason):
                try store.transition(rec.id, to: .failed, reason: reason)
                summary.failed += 1
            case .done:
                // Pending, yet its last attempt succeeded: the output was lost; render it afresh.
                queue.append(JobQueue.Entry(job: job, settings: job.settings, isolate: false, rung: 0, change: "", order: i))
            }
        }
        if !requeue.isEmpty {
            _ = try store.requeue(requeue, includeSucceeded: true)
            for id in requeue { progress.event("requeue \(id): its output is missing or changed") }
        }
        return queue
    }

    /// The next rungs of the OOM ladder, applied until the predicted memory fits some GPU; nil when none does.
    func degradeUntilItFits(_ e: JobQueue.Entry) -> JobQueue.Entry? {
        let gpus = executor.gpus
        let found = RetryLadder.degradeUntilItFits(manifest.retry.onOOM, base: e.job.settings, from: e.rung) { settings, isolate in
            let est = predictor.estimate(settings, jobID: e.job.id)
            let r = PlacementRequest(jobID: e.job.id, memoryGB: est.memoryGB, seconds: est.seconds, isolate: isolate, gpuModel: e.job.clip.gpuModel,
                                     unsharedSeconds: est.unsharedSeconds)
            return Placer.fitsNoGPU(r, gpus: gpus) == nil
        }
        return found.map { JobQueue.Entry(job: e.job, settings: $0.settings, isolate: $0.isolate, rung: $0.rung,
                                          change: RetryLadder.describeChange(e.job.settings, $0.settings, $0.isolate), order: e.order) }
    }

    /// The finished attempts the OOM ladder looks at: this content key, since the last `retry`.
    func ladderHistory(_ attempts: [AttemptRecord], job: Job, retryFrom: Int) -> [AttemptHistoryEntry] {
        attempts.filter { $0.contentKey == job.contentKey && $0.classification != nil && $0.number > retryFrom }.map {
            AttemptHistoryEntry(classification: $0.classification!, settings: $0.settings ?? job.settings, isolated: $0.isolated, rung: $0.rung)
        }
    }

    /// Logs and working directories live beside the store (`<output_dir>/.avatar-batch/` unless --state moves it).
    func stateDir() -> String { (store.path as NSString).deletingLastPathComponent }

    /// Where an attempt's log goes: `logs/<id>.attempt-N.log` beside the store.
    func logPath(_ jobID: String, attempt n: Int) -> String { stateDir() + "/logs/\(jobID).attempt-\(n).log" }

    /// A job's timeout: its clip's `timeout`, else predicted time x --timeout-factor, at least the minimum.
    func timeout(_ e: JobQueue.Entry, _ est: Estimate) -> Double {
        // A CPU renderer's predictions are cheap and close (ffmpeg), and a stuck one should not hold a slot for ten
        // minutes: its floor is a minute.
        e.job.clip.timeoutSeconds ?? max(manifest.renderer.usesGPU ? options.minimumTimeoutSeconds : min(options.minimumTimeoutSeconds, 60),
                                         est.seconds * options.timeoutFactor)
    }

    /// Everything one attempt needs, for any executor (the port is the executor's to choose).
    func attemptPlan(_ e: JobQueue.Entry, attempt: AttemptRecord, placement: Placement, timeout: Double) -> AttemptPlan {
        AttemptPlan(job: e.job, settings: e.settings, number: attempt.number, gpu: placement.gpu ?? GPU(index: 0, uuid: "", model: "", memoryGB: 0),
                    renderer: manifest.renderer, outputDir: manifest.outputDir, manifestDirectory: (manifest.path as NSString).deletingLastPathComponent,
                    timeoutSeconds: timeout, graceSeconds: options.graceSeconds, logPath: attempt.logPath ?? logPath(e.job.id, attempt: attempt.number),
                    workdir: stateDir() + "/work/\(e.job.id)/attempt-\(attempt.number)", masterPort: 0,
                    logCapBytes: options.logCapMB.map { $0 << 20 }, inheritDevices: placement.gpu == nil)
    }

    /// Records the attempt, then asks the executor to start it.
    func launch(_ e: JobQueue.Entry, placement: Placement, runID: Int64) async throws -> Running {
        // On a card of another speed than the predictions' GPU model, its render takes the card's `timeScale` times.
        let predicted = predictor.estimate(e.settings, jobID: e.job.id)
        let est = placement.gpu.map { predicted.on($0) } ?? predicted
        let number = (try store.job(e.job.id)?.attemptCount ?? 0) + 1
        let attempt = try store.startAttempt(e.job.id, runID: runID, host: executor.initialHost, AttemptStart(
            executor: executor.kind, settings: e.settings, change: e.change, isolated: e.isolate, rung: e.rung, gpu: placement.gpu?.index,
            gpuUUID: placement.gpu?.uuid, logPath: logPath(e.job.id, attempt: number), predictedGB: est.memoryGB, predictedSeconds: est.seconds,
            predictedFrom: predictor.provenance(e.settings, jobID: e.job.id)))
        let plan = attemptPlan(e, attempt: attempt, placement: placement, timeout: timeout(e, est))
        outputs.attemptStarted(e.job)
        do {
            try await executor.start(AttemptLaunch(attempt: attempt, plan: plan, placement: placement, estimate: est, isolate: e.isolate, change: e.change))
        } catch {
            try store.finishAttempt(attempt, AttemptEnd(classification: .interrupted, note: "not started: \(error)", jobState: .interrupted,
                                                        reason: "not started"))
            throw error
        }
        return Running(entry: e, attempt: attempt, placement: placement, estimate: est, started: Date())
    }

    /// Every attempt rendering on `gpu` has shared it with at least as many as render there now (an attempt whose warm
    /// worker still loads, a cold attempt still in its predicted start-up, or a request still in its fixed part, does
    /// not count: it takes no share of the GPU's compute).
    func notePeers(gpu: Int, in running: inout [String: Running]) {
        let now = Date()
        markRunning(gpu: gpu, in: &running, at: now)
        let here = running.filter { $0.value.placement.gpu?.index == gpu && executor.isRendering($0.key) && !startingUp($0.value, at: now) }.map(\.key)
        for id in here { running[id]!.peers = max(running[id]!.peers, here.count) }
    }

    /// Notes when each attempt on `gpu` that runs now began to (`Running.runningSince`).
    func markRunning(gpu: Int, in running: inout [String: Running], at now: Date) {
        for (id, r) in running where r.runningSince == nil && r.placement.gpu?.index == gpu && executor.isRendering(id) {
            running[id]!.runningSince = now
        }
    }

    /// Whether an attempt is still in its unshared part (`Estimate.unsharedSeconds`, as predicted when it started): a
    /// cold attempt's start-up, a warm request's fixed part; or has not begun at all (its worker loads).
    func startingUp(_ r: Running, at now: Date) -> Bool {
        guard let since = r.runningSince else { return true }
        return now.timeIntervalSince(since) < r.estimate.unsharedSeconds
    }

    /// Brings every job on `gpu` up to now: how many render there beside it (`Running.rendering`), from which its
    /// solo-equivalent time and its stretches are counted when it ends (`soloSeconds(_:_:)`).
    func accrue(gpu: Int, in running: inout [String: Running]) {
        let now = Date()
        markRunning(gpu: gpu, in: &running, at: now)
        let here = running.filter { $0.value.placement.gpu?.index == gpu }.map(\.key)
        let rendering = here.filter { executor.isRendering($0) && !startingUp(running[$0]!, at: now) }
        for id in here {
            let r = running[id]!
            // How many it would render beside now, whether or not its predicted start-up is over (it may be, whatever the
            // prediction).
            let ownK = rendering.contains(id) ? rendering.count : rendering.count + 1
            if let last = r.rendering.last, last.k == ownK {
                running[id]!.rendering[r.rendering.count - 1].until = now
            } else {
                running[id]!.rendering.append((now, ownK))
            }
            running[id]!.accountedUntil = now
        }
    }

    /// The part of an attempt that rendered, and so shared its GPU: from its render's start as its renderer reported
    /// it, else after its predicted unshared part (a cold attempt's start-up, a warm request's fixed part).
    func renderSeconds(_ r: Running, _ result: AttemptResult) -> Double {
        result.reportedRenderSeconds ?? max(result.seconds - r.estimate.unsharedSeconds, 0)
    }

    /// An attempt's solo-equivalent time, so that a duration learned on a packed GPU is not taken for a solo one: its
    /// unshared part as it took, then its render (`renderSeconds`) weighted by the rate it rendered at, S(k)/k of
    /// `Running.rendering`; never more than it took. (A warm request's time holds no load: its unshared part is its
    /// time less its render, not its wait for a worker.)
    func soloSeconds(_ r: Running, _ result: AttemptResult) -> Double {
        let render = renderSeconds(r, result)
        let solo = result.worker != nil
            ? max(result.seconds - render, 0) + BatchSession.stretches(started: r.started, end: r.accountedUntil, along: r.rendering, renderSeconds: render)
                .reduce(0) { $0 + $1.value * sharing.perJobRate($1.key) }
            : BatchSession.soloSeconds(started: r.started, end: r.accountedUntil, along: r.rendering, renderSeconds: render, sharing: sharing)
        return min(solo, result.seconds)
    }

    /// The solo-equivalent time of a cold attempt that ran from `started` to `end` beside `along` (runs of the same k,
    /// each up to its `until`) and rendered for its last `renderSeconds`: its start-up whole, then each stretch of its
    /// render at S(k)/k.
    package static func soloSeconds(started: Date, end: Date, along: [(until: Date, k: Int)], renderSeconds: Double, sharing: SharingModel) -> Double {
        let startUp = max(end.timeIntervalSince(started) - max(renderSeconds, 0), 0)
        return startUp + stretches(started: started, end: end, along: along, renderSeconds: renderSeconds)
            .reduce(0) { $0 + $1.value * sharing.perJobRate($1.key) }
    }

    /// Seconds of the last `renderSeconds` of an attempt that ran from `started` to `end` spent beside k rendering on
    /// its card, itself included, by k (`along`: runs of the same k, each up to its `until`). A render longer than the
    /// attempt as we timed it counts the extra at the last k.
    package static func stretches(started: Date, end: Date, along: [(until: Date, k: Int)], renderSeconds: Double) -> [Int: Double] {
        let renderFrom = end.addingTimeInterval(-max(renderSeconds, 0))
        var out: [Int: Double] = [:]
        var from = started
        for run in along {
            let overlap = min(run.until, end).timeIntervalSince(max(from, renderFrom))
            if overlap > 0 { out[run.k, default: 0] += overlap }
            from = run.until
        }
        if renderFrom < started { out[along.last?.k ?? 1, default: 0] += started.timeIntervalSince(renderFrom) }
        return out
    }

    // MARK: outcomes

    /// Counts what an ended attempt led to; returns the job to queue again, if any.
    func tally(_ next: Next, _ summary: inout RunSummary, failedForGood: inout Int) -> JobQueue.Entry? {
        switch next {
        case let .requeue(e): return e
        case .succeeded: summary.succeeded += 1
        case .failed:
            summary.failed += 1
            failedForGood += 1
        case .interrupted: break
        }
        return nil
    }

    /// Whether --max-failures is reached; says so and marks the run stopped early when it is.
    func failureLimitReached(_ failedForGood: Int, _ summary: inout RunSummary, queued: Int, still: String) -> Bool {
        guard let limit = options.maxFailures, failedForGood >= limit else { return false }
        progress.event("stopping: \(failedForGood) job(s) failed (--max-failures \(limit)); \(still), \(queued) stay queued")
        summary.stoppedEarly = true
        return true
    }

    /// What an interrupted attempt is queued again as: itself, unless the manifest changed the clip since it started
    /// (an attempt adopted after the orchestrator stopped): then the clip as the manifest has it now, from the start
    /// of its ladder, as a fresh run does once its sync has reset the job.
    func requeued(_ r: Running) -> JobQueue.Entry {
        guard let job = job(r.entry.job.id), job.contentKey != r.attempt.contentKey else { return r.entry }
        try? syncJobs()  // the job is no longer running: the store takes its new content key (and resets it)
        return JobQueue.Entry(job: job, settings: job.settings, isolate: false, rung: 0, change: "", order: r.entry.order)
    }

    /// The outcome policy: what an attempt's end means for its job, recorded in one transaction.
    func finish(_ r: Running, _ result: AttemptResult, stopping: Bool) throws -> Next {
        let id = r.entry.job.id
        // The renderer's own figure (PyTorch's allocator, a warm worker's done) misses the CUDA context and what other
        // libraries hold; the device's view, sampled while the attempt had its GPU alone, wins when it saw more.
        let peak = [result.reportedPeakGB, result.sampledPeakGB].compactMap { $0 }.max()
        let frames = r.entry.settings.totalFrames
        let bucket = predictor.bucket(r.entry.settings)
        if !result.leftovers.isEmpty {
            progress.event("warning: \(id): processes \(result.leftovers) survived SIGKILL")
        }
        var classification = result.classification
        if stopping && (classification == .killed || classification == .crashed) {
            classification = .interrupted  // we stopped it
        }
        let gpuModel = r.placement.gpu?.model ?? executor.gpus.first?.model ?? ""
        // Feed the predictor: a success is a measurement, an OOM a lower bound.
        if classification == .succeeded {
            // Learn the solo-equivalent duration (`soloSeconds`), not the wall time of a shared GPU; where the executor's
            // scheduler placed it (Slurm) its sharing is unknown and its wall time is taken as it is. A cold attempt's
            // start-up is the renderer's own where it reported its render.
            let seconds = r.placement.gpu == nil ? result.seconds : soloSeconds(r, result)
            let startup = result.worker == nil ? result.reportedRenderSeconds.map { result.seconds - $0 } : nil
            let o = Observation(bucket: bucket, gpuModel: gpuModel, peakGB: peak, seconds: seconds, frames: frames, warm: result.worker != nil,
                                startupSeconds: startup)
            // This batch's predictions are of one GPU model: a time on a card of another speed counts as that model's
            // (`Estimate.unscaled`). The history keeps it as it ran, under the card's own model (`learn`).
            var mine = o
            if let gpu = r.placement.gpu, gpu.timeScale != 1 {
                mine.seconds = Estimate.unscaled(seconds, startUp: startup ?? r.estimate.startUpSeconds, on: gpu)
            }
            predictor.observe(mine)
            try? store.record(mine, renderer: manifest.renderer.name)
            learn(o, r, result)
        } else if classification == .oom {
            let alone = r.entry.isolate
            let floor = result.oom?.lowerBoundGB ?? (alone ? (r.placement.gpu?.memoryGB ?? r.estimate.rawMemoryGB * 1.25) : r.estimate.rawMemoryGB * 1.25)
            // Alone on the card, the OOM speaks for every clip of these settings; sharing it, only for this clip.
            let o = Observation(bucket: bucket, gpuModel: gpuModel, peakGB: floor, seconds: nil, frames: frames, oom: true, jobID: alone ? nil : id)
            predictor.observe(o)
            try? store.record(o, renderer: manifest.renderer.name)
            // Only an OOM alone on its card speaks for the bucket in later batches.
            if alone { learn(o, r, result) }
        }
        var note = result.note
        let strays = outputs.strayFiles(after: r.entry.job)
        if !strays.isEmpty {
            let list = strays.prefix(5).joined(separator: ", ") + (strays.count > 5 ? ", ..." : "")
            let text = "files appeared beside its output that no clip owns (written outside its output path, by it or a job beside it): \(list)"
            note = note.map { $0 + "; " + text } ?? text
            progress.event("warning: \(id): \(text)")
        }
        var end = AttemptEnd(classification: classification, exitStatus: result.exitCode, signal: result.signal, stderrTail: result.stderrTail,
                             peakGB: peak, seconds: result.seconds, outputDigest: result.outputDigest, note: note, jobState: .pending)
        end.renderSeconds = result.worker == nil ? result.reportedRenderSeconds : nil
        switch classification {
        case .succeeded:
            let stat = outputs.stat(r.entry.job)
            end.outputSize = stat.size
            end.outputMTime = stat.mtime
            end.jobState = .succeeded
            try store.finishAttempt(r.attempt, end)
            progress.event("done \(id) in \(ProgressReporter.duration(result.seconds))" + (peak.map { String(format: ", peak %.1f GB", $0) } ?? ""))
            return .succeeded
        case .interrupted:
            // Not the job's fault: not counted; queued again now, or by the next run when this one is stopping.
            end.jobState = .interrupted
            end.reason = "interrupted"
            try store.finishAttempt(r.attempt, end)
            outputs.removePartials(r.entry.job)
            progress.event("interrupted \(id)" + (stopping || result.note == nil ? "" : ": \(result.note!)"))
            return stopping ? .interrupted : .requeue(requeued(r))
        case .cancelled:
            end.jobState = .cancelled
            end.reason = "cancelled outside avatar-batch; `avatar-batch retry` renders it again"
            try store.finishAttempt(r.attempt, end)
            outputs.removePartials(r.entry.job)
            progress.event("FAILED \(id): \(result.note ?? "cancelled outside avatar-batch"); `avatar-batch retry MANIFEST \(id)` renders it again")
            return .failed
        default:
            let history = ladderHistory(try store.attempts(jobID: id), job: r.entry.job, retryFrom: try store.job(id)?.retryFrom ?? 0)
                + [AttemptHistoryEntry(classification: classification, settings: r.entry.settings, isolated: r.entry.isolate, rung: r.entry.rung)]
            let what = classification.rawValue + (result.note.map { " (\($0))" } ?? "") + (result.oom?.triedGiB.map { String(format: " tried to allocate %.2f GiB", $0) } ?? "")
            switch RetryLadder.next(history: history, base: r.entry.job.settings, policy: manifest.retry) {
            case let .run(settings, isolate, rung, reason):
                end.jobState = .pending
                end.reason = reason
                try store.finishAttempt(r.attempt, end)
                let change = RetryLadder.describeChange(r.entry.job.settings, settings, isolate)
                progress.event("\(classification.rawValue) \(id): \(what); retry: \(reason)")
                return .requeue(JobQueue.Entry(job: r.entry.job, settings: settings, isolate: isolate, rung: rung, change: change, order: r.entry.order))
            case let .giveUp(reason):
                end.jobState = .failed
                end.reason = reason
                try store.finishAttempt(r.attempt, end)
                progress.event("FAILED \(id): \(what); \(reason); log: \(r.attempt.logPath ?? "")")
                return .failed
            case .done:
                end.jobState = .failed
                try store.finishAttempt(r.attempt, end)
                return .failed
            }
        }
    }

    /// Adds an attempt's figures to the history: its solo-equivalent time (as this batch learned it), its wall time
    /// and how many shared its GPU (S(k) is learned from those), and whether it was a warm request (its time holds no
    /// load); the time of one whose sharing is unknown (a Slurm node's) is left out.
    func learn(_ o: Observation, _ r: Running, _ result: AttemptResult) {
        guard let k = knowledge else { return }
        let model = r.placement.gpu.map(Learning.modelKey) ?? k.gpuModel ?? ""
        var h = o
        var wall: Double? = o.oom ? nil : result.seconds
        // The render's stretches at each k (`renderSeconds`).
        var stretches: [Int: Double]? = o.oom ? nil
            : BatchSession.stretches(started: r.started, end: r.accountedUntil, along: r.rendering, renderSeconds: renderSeconds(r, result))
        if r.placement.gpu == nil {
            h.seconds = nil
            wall = nil
            stretches = nil
        }
        if let warning = k.record(h, gpuModel: model, colocated: r.peers, wallSeconds: wall, stretches: stretches) { progress.event("warning: \(warning)") }
    }

    /// The closing line: how the batch ended and the store's counts.
    func printTotals(_ summary: RunSummary) throws {
        let counts = try store.counts()
        progress.event("batch \(manifest.name) \(summary.interrupted ? "interrupted" : "finished") in \(ProgressReporter.duration(summary.wallSeconds)): "
            + JobState.allCases.compactMap { s in counts[s].map { "\($0) \(s.rawValue)" } }.joined(separator: ", "))
    }

    private var etaCache: (at: Date, seconds: Double)?

    func drawProgress(running: [String: Running], queue: JobQueue, summary: RunSummary) {
        guard progress.live else { return }
        let lanes = executor.gpus.map { g in
            (index: g.index, model: g.model, lanes: running.values.filter { $0.placement.gpu?.index == g.index }.map {
                ProgressReporter.Lane(jobID: $0.entry.job.id, started: $0.started, predictedSeconds: $0.estimate.seconds)
            })
        }
        // The queue's predicted work is summed at most once a second: it reads every queued job.
        if etaCache == nil || Date().timeIntervalSince(etaCache!.at) > 1 {
            let work = queue.all.map { queue.estimate($0, predictor).seconds }.reduce(0, +)
            etaCache = (Date(), work)
        }
        let work = etaCache!.seconds + running.values.map { max($0.estimate.seconds - Date().timeIntervalSince($0.started), 0) }.reduce(0, +)
        let eta = executor.gpus.isEmpty ? nil : work / Double(executor.gpus.count)
        progress.draw(gpus: lanes, done: summary.succeeded + summary.skipped, failed: summary.failed, running: running.count, waiting: queue.count, etaSeconds: eta)
    }
}

