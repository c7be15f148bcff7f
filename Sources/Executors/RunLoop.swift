import Checkpoint
import Foundation
import Manifest
import Scheduler
#if canImport(Glibc)
import Glibc
#endif

/// How `run` behaves.
public struct RunOptions: Sendable {
    public var gpus: [GPU]
    public var strategy: Strategy
    /// Stop dispatching once this many jobs failed for good.
    public var maxFailures: Int?
    /// Default timeout: predicted time x this factor, at least `minimumTimeoutSeconds`.
    public var timeoutFactor: Double = 3
    public var minimumTimeoutSeconds: Double = 600
    public var graceSeconds: Double = 10
    /// Sample device memory with nvidia-smi this often (real GPUs only).
    public var sampleInterval: Double = 1
    public var maxJobsPerGPU: Int?
    public var command: String = "avatar-batch run"
    /// Each attempt's log takes at most this many MB of disk (its start, half the cap and at most 1 MB, and its end); nil: unbounded.
    public var logCapMB: Int? = 64
    /// Submit to Slurm instead of running locally.
    public var slurm: SlurmRunOptions?
    /// Host RAM in GB the local jobs may use together, by their predicted host RAM (nil: this machine's MemTotal;
    /// 0: not checked). Live Avatar keeps every decoded frame in host memory, so long clips exhaust the host first.
    public var hostRAMGB: Double?

    public init(gpus: [GPU], strategy: Strategy, maxFailures: Int? = nil) {
        self.gpus = gpus
        self.strategy = strategy
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

/// Ties scheduler, store and executor together: reconcile what a dead run left, skip what is done, dispatch as
/// GPUs free up, apply the OOM ladder, retry crashes, and never let one failure stop the queue.
public final class RunLoop: @unchecked Sendable {
    let manifest: Manifest
    let jobs: [String: Job]
    let order: [String]
    let store: Store
    let options: RunOptions
    let progress: ProgressReporter
    var predictor: Predictor
    let ports = PortAllocator()
    let groups = GroupRegistry()
    let memory = MemoryTracker()
    /// Every clip's final output path (files the batch owns in output_dir).
    let ownedOutputs: Set<String>

    public init(manifest: Manifest, jobs: [Job], store: Store, options: RunOptions, progress: ProgressReporter) throws {
        self.manifest = manifest
        self.jobs = Dictionary(uniqueKeysWithValues: jobs.map { ($0.id, $0) })
        self.order = jobs.map(\.id)
        self.ownedOutputs = Set(jobs.map { manifest.outputDir + "/" + $0.clip.output })
        self.store = store
        self.options = options
        self.progress = progress
        self.predictor = Predictor(profile: manifest.renderer, observations: try store.observations(renderer: manifest.renderer.name))
    }

    struct Pending {
        var job: Job
        var settings: ClipSettings
        var isolate: Bool
        var rung: Int
        var change: String
        var order: Int
    }

    struct Running {
        var pending: Pending
        var attempt: AttemptRecord
        var gpu: GPU
        var estimate: Estimate
        var started: Date
        var port: Int
        /// Seconds of solo-speed progress so far: wall time weighted by S(k)/k of the k jobs it shared a GPU with,
        /// so a duration learned from a packed GPU is not taken for a solo one.
        var soloSeconds = 0.0
        var accountedUntil = Date()
        /// What the output's folder held when the attempt started (nil: not watched).
        var folderBefore: Set<String>? = nil
    }

    enum Event: Sendable {
        case finished(String, AttemptResult)
        case signal(Int32)
        case tick
    }

    /// Runs the batch, locally or through Slurm: either way the store is held for the run and released with its
    /// exit status, and the closing line is printed.
    public func run() async throws -> RunSummary {
        let began = Date()
        var summary = RunSummary()
        let runID = try acquireStore()
        summary.runID = runID
        var exit: Int32 = 1
        defer { try? store.release(runID: runID, exitStatus: exit) }
        if let so = options.slurm {
            try await runSlurm(so, runID: runID, summary: &summary)
        } else {
            try await runLocal(runID: runID, began: began, summary: &summary)
        }
        progress.finish()
        summary.wallSeconds = Date().timeIntervalSince(began)
        exit = summary.exitStatus
        try printTotals(summary)
        return summary
    }

    /// The local run: jobs placed on this machine's GPUs by the dispatcher.
    func runLocal(runID: Int64, began: Date, summary: inout RunSummary) async throws {
        try await reconcile()
        try syncJobs()
        var queue = try buildQueue(&summary)
        progress.event("batch \(manifest.name): \(order.count) clips, \(summary.skipped) already done, \(queue.count) to render on \(options.gpus.count) GPU(s) [\(options.strategy.name)]")

        let cap = options.maxJobsPerGPU ?? manifest.renderer.maxJobsPerGPU
        let dispatcher = Dispatcher(placer: Placer(strategy: options.strategy, maxJobsPerGPU: cap, sharing: SharingModel(manifest.renderer.sharing)))
        var gpus = options.gpus
        let realGPUs = gpus.contains { !$0.uuid.hasPrefix("virtual-") }
        if realGPUs, let used = await GPUDiscovery.memoryUsed() {
            // Read again now that a dead run's leftovers are gone: what remains belongs to other processes.
            for i in gpus.indices { gpus[i].foreignUsedGB = used[gpus[i].index] ?? gpus[i].foreignUsedGB }
        }
        var loads = gpus.map { GPULoad(gpu: $0) }
        memory.setBaseline(Dictionary(uniqueKeysWithValues: gpus.map { ($0.index, $0.foreignUsedGB) }))
        var running: [String: Running] = [:]
        var stopping = false
        var failedForGood = 0
        let hostRAM = options.hostRAMGB ?? ProcFS.memTotalGB() ?? 0
        let signals = SignalWatcher(registry: groups)
        defer { signals.stop() }

        try await withThrowingTaskGroup(of: Event.self) { group in
            group.addTask { for await sig in signals.stream { return .signal(sig) }; return .tick }
            group.addTask { try? await Task.sleep(for: .seconds(1)); return .tick }
            if realGPUs {
                let tracker = memory, interval = options.sampleInterval
                group.addTask {
                    while !Task.isCancelled {
                        if let used = await GPUDiscovery.memoryUsed() { tracker.sample(used) }
                        try? await Task.sleep(for: .seconds(interval))
                    }
                    return .tick
                }
            }
            while true {
                // Dispatch what fits now.
                var degraded = false
                if !stopping {
                    let now = Date().timeIntervalSince(began)
                    let queued = queue.map { p -> QueuedJob in
                        let e = predictor.estimate(p.settings, jobID: p.job.id)
                        return QueuedJob(request: PlacementRequest(jobID: p.job.id, memoryGB: e.memoryGB, seconds: e.seconds, isolate: p.isolate,
                                                                   gpuModel: p.job.clip.gpuModel), priority: p.job.clip.priority, order: p.order)
                    }
                    let round = dispatcher.round(queue: queued, loads: &loads, now: now, explain: false, queueCount: queued.count)
                    for (id, reason) in round.never {
                        let p = queue.first { $0.job.id == id }!
                        if let next = degradeUntilItFits(p) {
                            // What it learned from an OOM makes it too big as it is: go down the ladder without running it.
                            progress.event("\(id): predicted \(String(format: "%.1f", predictor.estimate(p.settings, jobID: p.job.id).memoryGB)) GB fits no GPU; skipping to \(next.change)")
                            queue[queue.firstIndex { $0.job.id == id }!] = next
                            degraded = true
                            continue
                        }
                        progress.event("FAILED \(id): fits no GPU: \(reason)")
                        try failWithoutAttempt(p, reason: "fits no GPU: \(reason)")
                        queue.removeAll { $0.job.id == id }
                        failedForGood += 1
                        summary.failed += 1
                    }
                    var hostUsed = running.values.reduce(0) { $0 + $1.estimate.hostRAMGB }
                    for (id, gpuIndex) in round.starts {
                        let p = queue.first { $0.job.id == id }!
                        let gpu = options.gpus.first { $0.index == gpuIndex }!
                        let e = predictor.estimate(p.settings, jobID: p.job.id)  // the round has reserved it on `loads`
                        if hostRAM > 0 && e.hostRAMGB > 0 && hostUsed + e.hostRAMGB > hostRAM {
                            // The host, not the GPU, is full: release the GPU reservation and wait, or fail when even an
                            // empty host could not hold it.
                            let li = loads.firstIndex { $0.gpu.index == gpuIndex }!
                            loads[li].occupants.removeAll { $0.jobID == id }
                            if p.isolate { loads[li].isolated = false }
                            if e.hostRAMGB > hostRAM {
                                let reason = String(format: "needs %.0f GB of host RAM (predicted), this machine has %.0f GB (--host-ram)", e.hostRAMGB, hostRAM)
                                progress.event("FAILED \(id): \(reason)")
                                try failWithoutAttempt(p, reason: reason)
                                queue.removeAll { $0.job.id == id }
                                failedForGood += 1
                                summary.failed += 1
                            }
                            continue
                        }
                        hostUsed += e.hostRAMGB
                        queue.removeAll { $0.job.id == id }
                        accrue(gpu: gpuIndex, in: &running, sharing: dispatcher.placer.sharing)
                        let r = try launch(p, gpu: gpu, estimate: e, runID: runID, group: &group)
                        running[id] = r
                    }
                }
                if degraded { continue }
                if running.isEmpty && (queue.isEmpty || stopping) { break }
                if running.isEmpty && !queue.isEmpty {
                    // Nothing runs and nothing could start: every remaining job waits on something that never frees.
                    for p in queue {
                        progress.event("FAILED \(p.job.id): cannot be placed on any GPU")
                        try failWithoutAttempt(p, reason: "cannot be placed on any GPU")
                        summary.failed += 1
                    }
                    queue.removeAll()
                    break
                }
                drawProgress(running: running, queue: queue, summary: summary)
                guard let event = try await group.next() else { break }
                switch event {
                case .tick:
                    group.addTask { try? await Task.sleep(for: .seconds(1)); return .tick }
                case .signal:
                    stopping = true
                    summary.interrupted = true
                    for r in running.values { ProcFS.signalGroup(r.attempt.pid ?? r.attempt.processGroup ?? -1, SIGTERM) }
                    // Cancelling the group makes every launcher stop its process group (SIGTERM, then SIGKILL).
                    group.cancelAll()
                case let .finished(id, result):
                    if let gpu = running[id]?.gpu.index { accrue(gpu: gpu, in: &running, sharing: dispatcher.placer.sharing) }
                    guard let r = running.removeValue(forKey: id) else { continue }
                    let li = loads.firstIndex { $0.gpu.index == r.gpu.index }!
                    loads[li].occupants.removeAll { $0.jobID == id }
                    if r.pending.isolate { loads[li].isolated = false }
                    ports.release(r.port)
                    if let p = tally(try finish(r, result, stopping: stopping), &summary, failedForGood: &failedForGood) { queue.append(p) }
                    if !stopping && failureLimitReached(failedForGood, &summary, queued: queue.count, still: "running jobs finish") { stopping = true }
                }
            }
            group.cancelAll()
        }
        summary.devicePeakGB = memory.peaks
    }

    /// Brings the store's jobs in line with the manifest (predictions included).
    func syncJobs() throws {
        _ = try store.sync(order.map { id in
            let j = jobs[id]!
            let e = predictor.estimate(j.settings)
            return ManifestJob(id: id, contentKey: j.contentKey, settingsJSON: String(decoding: (try? JSONEncoder.sorted.encode(j.settings)) ?? Data(), as: UTF8.self),
                               output: j.clip.output, priority: j.clip.priority, predictedGB: e.memoryGB, predictedSeconds: e.seconds)
        })
    }

    /// The closing line: how the batch ended and the store's counts.
    func printTotals(_ summary: RunSummary) throws {
        let counts = try store.counts()
        progress.event("batch \(manifest.name) \(summary.interrupted ? "interrupted" : "finished") in \(ProgressReporter.duration(summary.wallSeconds)): "
            + JobState.allCases.compactMap { s in counts[s].map { "\($0) \(s.rawValue)" } }.joined(separator: ", "))
    }

    // MARK: start

    /// Becomes this store's one orchestrator (a dead holder is replaced; a live one makes this throw `locked`).
    func acquireStore() throws -> Int64 {
        let digest = (try? SHA256.hex(fileAt: manifest.path)) ?? ""
        return try store.acquire(ProcFS.current(), user: ProcessInfo.processInfo.environment["USER"] ?? String(getuid()), command: options.command,
                                 manifestPath: manifest.path, manifestDigest: digest, isAlive: ProcFS.isAlive)
    }

    /// Open attempts of a dead orchestrator: stop what is left of their process groups, then requeue them as interrupted.
    func reconcile() async throws {
        let open = try store.openAttempts()
        let inSlurm = open.filter { $0.gpuUUID == slurmGPUMarker }
        if !inSlurm.isEmpty {
            throw ExecutorError.launch("\(inSlurm.count) attempt(s) were submitted to Slurm by an earlier run and are not collected yet "
                + "(e.g. \(inSlurm[0].jobID), Slurm job \(inSlurm[0].slurmJobID ?? "?")); run with --executor slurm to collect them first")
        }
        for a in open { try await reconcileLocal(a) }
    }

    /// A dead local run's attempt: stop what is left of its process group and requeue it.
    func reconcileLocal(_ a: AttemptRecord) async throws {
        if let pgid = a.processGroup, a.host == ProcFS.hostname, !ProcFS.members(ofGroup: pgid).isEmpty {
            // Only a group whose leader is the process we launched (pid + start time), or whose leader is gone.
            let leaderMatches = a.pid.map { pid in ProcFS.startTime(of: pid) == nil || ProcFS.startTime(of: pid) == a.processStart } ?? true
            if leaderMatches {
                progress.event("stopping leftover processes of \(a.jobID) (process group \(pgid))")
                await ProcFS.terminateGroup(pgid, graceSeconds: options.graceSeconds)
            }
        }
        removePartials(a.jobID)
        try store.finishAttempt(a, AttemptEnd(classification: .interrupted, note: "the orchestrator stopped while it ran", jobState: .interrupted,
                                              reason: "interrupted"))
        progress.event("requeue \(a.jobID): attempt \(a.number) was interrupted")
    }

    func removePartials(_ jobID: String) {
        guard let job = jobs[jobID] else { return }
        let final = manifest.outputDir + "/" + job.clip.output
        let dir = (final as NSString).deletingLastPathComponent
        let prefix = "." + (final as NSString).lastPathComponent + ".partial-"
        for f in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where f.hasPrefix(prefix) {
            try? FileManager.default.removeItem(atPath: dir + "/" + f)
        }
    }

    /// Jobs to run: pending and interrupted ones, with the ladder's next step; succeeded jobs whose output is
    /// gone or changed go back to pending.
    func buildQueue(_ summary: inout RunSummary) throws -> [Pending] {
        var queue: [Pending] = []
        let records = Dictionary(uniqueKeysWithValues: try store.jobs().map { ($0.id, $0) })
        let attempts = Dictionary(grouping: try store.attempts(), by: \.jobID)
        for (i, id) in order.enumerated() {
            guard let job = jobs[id], var rec = records[id] else { continue }
            if rec.state == .succeeded {
                if outputStillValid(rec, job: job) { summary.skipped += 1; continue }
                // A fresh ladder: the earlier success says nothing about this render.
                _ = try store.requeue([id], includeSucceeded: true)
                progress.event("requeue \(id): its output is missing or changed")
                rec = try store.job(id) ?? rec
            }
            guard rec.state == .pending || rec.state == .interrupted else { continue }
            let history = ladderHistory(attempts[id] ?? [], job: job, retryFrom: rec.retryFrom)
            switch RetryLadder.next(history: history, base: job.settings, policy: manifest.retry) {
            case let .run(settings, isolate, rung, _):
                queue.append(Pending(job: job, settings: settings, isolate: isolate, rung: rung, change: describeChange(job.settings, settings, isolate), order: i))
            case let .giveUp(reason):
                try store.transition(id, to: .failed, reason: reason)
                summary.failed += 1
            case .done:
                // Pending, yet its last attempt succeeded: the output was lost; render it afresh.
                queue.append(Pending(job: job, settings: job.settings, isolate: false, rung: 0, change: "", order: i))
            }
        }
        return queue
    }

    func outputStillValid(_ rec: JobRecord, job: Job) -> Bool {
        let path = manifest.outputDir + "/" + job.clip.output
        guard let attrs = try? FileManager.default.attributesOfItem(atPath: path), let digest = rec.outputDigest else { return false }
        let size = attrs[.size] as? Int
        let mtime = (attrs[.modificationDate] as? Date)?.timeIntervalSince1970
        if let s = rec.outputSize, let m = rec.outputMTime, s == size, let mtime, abs(m - mtime) < 0.001 { return true }
        guard let now = try? SHA256.hex(fileAt: path), now == digest else { return false }
        try? store.refreshOutput(rec.id, digest: digest, size: size ?? 0, mtime: mtime ?? 0)
        return true
    }

    func describeChange(_ base: ClipSettings, _ s: ClipSettings, _ isolate: Bool) -> String {
        var parts: [String] = []
        if isolate { parts.append("isolate") }
        if s.size != base.size { parts.append("size: \(s.size)") }
        if s.inferFrames != base.inferFrames { parts.append("infer_frames: \(s.inferFrames)") }
        if s.sampleSteps != base.sampleSteps { parts.append("sample_steps: \(s.sampleSteps)") }
        if s.onlineDecode != base.onlineDecode { parts.append("online_decode: \(s.onlineDecode)") }
        if s.offloadModel != base.offloadModel { parts.append("offload_model: \(s.offloadModel)") }
        if s.fp8 != base.fp8 { parts.append("fp8: \(s.fp8)") }
        return parts.joined(separator: ", ")
    }

    /// The next rungs of the OOM ladder, applied until the predicted memory fits the largest GPU; nil when none does.
    func degradeUntilItFits(_ p: Pending) -> Pending? {
        let largest = options.gpus.map(\.memoryGB).max() ?? 0
        let rungs = manifest.retry.onOOM
        guard p.rung < rungs.count else { return nil }
        for rung in (p.rung + 1)...rungs.count {
            let (settings, isolate) = RetryLadder.apply(rungs, upTo: rung, to: p.job.settings)
            if predictor.estimate(settings, jobID: p.job.id).memoryGB <= largest {
                return Pending(job: p.job, settings: settings, isolate: isolate, rung: rung,
                               change: describeChange(p.job.settings, settings, isolate), order: p.order)
            }
        }
        return nil
    }

    func failWithoutAttempt(_ p: Pending, reason: String) throws {
        try store.transition(p.job.id, to: .failed, reason: reason)
    }

    /// The finished attempts the OOM ladder looks at: this content key, since the last `retry`.
    func ladderHistory(_ attempts: [AttemptRecord], job: Job, retryFrom: Int) -> [AttemptHistoryEntry] {
        attempts.filter { $0.contentKey == job.contentKey && $0.classification != nil && $0.number > retryFrom }.map {
            AttemptHistoryEntry(classification: $0.classification!, settings: $0.settings ?? job.settings, isolated: $0.isolated, rung: $0.rung)
        }
    }

    /// Logs and working directories live beside the store (`<output_dir>/.avatar-batch/` unless --state moves it).
    func stateDir() -> String { (store.path as NSString).deletingLastPathComponent }

    /// The number the job's next attempt will get (the store assigns it in `startAttempt`).
    func nextAttemptNumber(_ jobID: String) throws -> Int { (try store.job(jobID)?.attemptCount ?? 0) + 1 }

    /// Where an attempt's log goes: `logs/<id>.attempt-N.log` beside the store (`slurm.log` for Slurm's own output).
    func logPath(_ jobID: String, attempt n: Int, kind: String = "log") -> String { stateDir() + "/logs/\(jobID).attempt-\(n).\(kind)" }

    /// A job's timeout: its clip's `timeout`, else predicted time x --timeout-factor, at least the minimum.
    func timeout(_ p: Pending, _ e: Estimate) -> Double {
        // A CPU renderer's predictions are cheap and close (ffmpeg), and a stuck one should not hold a slot for ten
        // minutes: its floor is a minute.
        p.job.clip.timeoutSeconds ?? max(manifest.renderer.usesGPU ? options.minimumTimeoutSeconds : min(options.minimumTimeoutSeconds, 60),
                                         e.seconds * options.timeoutFactor)
    }

    /// Everything one attempt needs, for either executor.
    func attemptPlan(_ p: Pending, attempt: AttemptRecord, gpu: GPU, timeout: Double, port: Int, inheritDevices: Bool = false) -> AttemptPlan {
        AttemptPlan(job: p.job, settings: p.settings, number: attempt.number, gpu: gpu, renderer: manifest.renderer,
                    outputDir: manifest.outputDir, manifestDirectory: (manifest.path as NSString).deletingLastPathComponent,
                    timeoutSeconds: timeout, graceSeconds: options.graceSeconds, logPath: attempt.logPath ?? logPath(p.job.id, attempt: attempt.number),
                    workdir: stateDir() + "/work/\(p.job.id)/attempt-\(attempt.number)", masterPort: port,
                    logCapBytes: options.logCapMB.map { $0 << 20 }, inheritDevices: inheritDevices)
    }

    func launch(_ p: Pending, gpu: GPU, estimate e: Estimate, runID: Int64, group: inout ThrowingTaskGroup<Event, any Error>) throws -> Running {
        let port = ports.take()
        let logPath = self.logPath(p.job.id, attempt: try nextAttemptNumber(p.job.id))
        let attempt = try store.startAttempt(p.job.id, runID: runID, host: ProcFS.hostname, AttemptStart(
            settings: p.settings, change: p.change, isolated: p.isolate, rung: p.rung, gpu: gpu.index, gpuUUID: gpu.uuid, logPath: logPath,
            predictedGB: e.memoryGB, predictedSeconds: e.seconds))
        let plan = attemptPlan(p, attempt: attempt, gpu: gpu, timeout: timeout(p, e), port: port)
        let key = "\(p.job.id)#\(attempt.number)"
        memory.begin(key, gpu: gpu.index)
        progress.event("start \(p.job.id) on GPU \(gpu.index) (attempt \(attempt.number), \(String(format: "%.1f", e.memoryGB)) GB, ~\(ProgressReporter.duration(e.seconds))\(p.change.isEmpty ? "" : "; " + p.change))")
        let store = self.store, groups = self.groups, id = p.job.id
        group.addTask {
            let result = try await AttemptRunner.run(plan) { pid, start in
                groups.add(pid)
                try? store.recordProcess(attemptID: attempt.id, pid: pid, processStart: start, processGroup: pid)
            }
            return .finished(id, result)
        }
        var r = Running(pending: p, attempt: attempt, gpu: gpu, estimate: e, started: Date(), port: port)
        r.folderBefore = folderListing(p.job)
        return r
    }

    /// Names in the folder a job's output goes to; nil when it is too large to watch cheaply (over 5,000 entries).
    func folderListing(_ job: Job) -> Set<String>? {
        let dir = ((manifest.outputDir + "/" + job.clip.output) as NSString).deletingLastPathComponent
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir), names.count <= 5000 else { return nil }
        return Set(names)
    }

    /// Files that appeared in the output's folder during the attempt and belong to no clip: a renderer writing
    /// outside its output path (renderers are trusted and not sandboxed; this is reported, not prevented).
    func strayFiles(_ r: Running) -> [String] {
        guard let before = r.folderBefore, let after = folderListing(r.pending.job) else { return [] }
        let dir = ((manifest.outputDir + "/" + r.pending.job.clip.output) as NSString).deletingLastPathComponent
        return after.subtracting(before).filter { name in
            if name == ".avatar-batch" || (name.hasPrefix(".") && name.contains(".partial-")) { return false }
            return !ownedOutputs.contains(dir + "/" + name)
        }.sorted()
    }

    /// Brings the solo-speed progress of every job on `gpu` up to now, at the rate of how many share it.
    func accrue(gpu: Int, in running: inout [String: Running], sharing: SharingModel) {
        let now = Date()
        let here = running.filter { $0.value.gpu.index == gpu }.map(\.key)
        let rate = sharing.perJobRate(max(here.count, 1))
        for id in here {
            running[id]!.soloSeconds += now.timeIntervalSince(running[id]!.accountedUntil) * rate
            running[id]!.accountedUntil = now
        }
    }

    enum Next {
        case requeue(Pending)
        case succeeded, failed, interrupted
    }

    /// Counts what a finished attempt led to; returns the job to queue again, if any.
    func tally(_ next: Next, _ summary: inout RunSummary, failedForGood: inout Int) -> Pending? {
        switch next {
        case let .requeue(p): return p
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

    func finish(_ r: Running, _ result: AttemptResult, stopping: Bool) throws -> Next {
        let id = r.pending.job.id
        groups.remove(r.attempt.pid ?? -1)
        let sampled = memory.end("\(id)#\(r.attempt.number)")
        let peak = result.reportedPeakGB ?? sampled
        let frames = r.pending.settings.totalFrames
        let bucket = predictor.bucket(r.pending.settings)
        if !result.leftovers.isEmpty {
            progress.event("warning: \(id): processes \(result.leftovers) survived SIGKILL")
        }
        var classification = result.classification
        if stopping && classification != .succeeded && (classification == .killed || classification == .crashed) {
            classification = .interrupted  // we stopped it
        }
        // Feed the predictor: a success is a measurement, an OOM a lower bound.
        if classification == .succeeded {
            // Learn the solo-equivalent duration (see `Running.soloSeconds`), not the wall time of a shared GPU.
            let o = Observation(bucket: bucket, gpuModel: r.gpu.model, peakGB: peak, seconds: min(r.soloSeconds, result.seconds), frames: frames)
            predictor.observe(o)
            try? store.record(o, renderer: manifest.renderer.name)
        } else if classification == .oom {
            let floor = result.oom?.lowerBoundGB ?? (r.pending.isolate ? r.gpu.memoryGB : r.estimate.rawMemoryGB * 1.25)
            // Alone on the card, the OOM speaks for every clip of these settings; sharing it, only for this clip.
            let o = Observation(bucket: bucket, gpuModel: r.gpu.model, peakGB: floor, seconds: nil, frames: frames, oom: true,
                                jobID: r.pending.isolate ? nil : id)
            predictor.observe(o)
            try? store.record(o, renderer: manifest.renderer.name)
        }
        var note = result.note
        let strays = strayFiles(r)
        if !strays.isEmpty {
            let list = strays.prefix(5).joined(separator: ", ") + (strays.count > 5 ? ", ..." : "")
            let text = "files appeared beside its output that no clip owns (written outside its output path, by it or a job beside it): \(list)"
            note = note.map { $0 + "; " + text } ?? text
            progress.event("warning: \(id): \(text)")
        }
        var end = AttemptEnd(classification: classification, exitStatus: result.exitCode, signal: result.signal, stderrTail: result.stderrTail,
                             peakGB: peak, seconds: result.seconds, outputDigest: result.outputDigest, note: note, jobState: .pending)
        switch classification {
        case .succeeded:
            let path = manifest.outputDir + "/" + r.pending.job.clip.output
            let attrs = try? FileManager.default.attributesOfItem(atPath: path)
            end.outputSize = attrs?[.size] as? Int
            end.outputMTime = (attrs?[.modificationDate] as? Date)?.timeIntervalSince1970
            end.jobState = .succeeded
            try store.finishAttempt(r.attempt, end)
            progress.event("done \(id) in \(ProgressReporter.duration(result.seconds))" + (peak.map { String(format: ", peak %.1f GB", $0) } ?? ""))
            return .succeeded
        case .interrupted, .cancelled:
            end.jobState = .interrupted
            end.reason = "interrupted"
            try store.finishAttempt(r.attempt, end)
            removePartials(id)
            progress.event("interrupted \(id)")
            return .interrupted
        default:
            let history = ladderHistory(try store.attempts(jobID: id), job: r.pending.job, retryFrom: try store.job(id)?.retryFrom ?? 0)
                + [AttemptHistoryEntry(classification: classification, settings: r.pending.settings, isolated: r.pending.isolate, rung: r.pending.rung)]
            let what = classification.rawValue + (result.note.map { " (\($0))" } ?? "") + (result.oom?.triedGiB.map { String(format: " tried to allocate %.2f GiB", $0) } ?? "")
            switch RetryLadder.next(history: history, base: r.pending.job.settings, policy: manifest.retry) {
            case let .run(settings, isolate, rung, reason):
                end.jobState = .pending
                end.reason = reason
                try store.finishAttempt(r.attempt, end)
                let change = describeChange(r.pending.job.settings, settings, isolate)
                progress.event("\(classification.rawValue) \(id): \(what); retry: \(reason)")
                return .requeue(Pending(job: r.pending.job, settings: settings, isolate: isolate, rung: rung, change: change, order: r.pending.order))
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

    func drawProgress(running: [String: Running], queue: [Pending], summary: RunSummary) {
        guard progress.live else { return }
        let lanes = options.gpus.map { g in
            (index: g.index, model: g.model, lanes: running.values.filter { $0.gpu.index == g.index }.map {
                ProgressReporter.Lane(jobID: $0.pending.job.id, started: $0.started, predictedSeconds: $0.estimate.seconds)
            })
        }
        let work = queue.map { predictor.estimate($0.settings, jobID: $0.job.id).seconds }.reduce(0, +)
            + running.values.map { max($0.estimate.seconds - Date().timeIntervalSince($0.started), 0) }.reduce(0, +)
        let eta = options.gpus.isEmpty ? nil : work / Double(options.gpus.count)
        progress.draw(gpus: lanes, done: summary.succeeded + summary.skipped, failed: summary.failed, running: running.count, waiting: queue.count, etaSeconds: eta)
    }
}
