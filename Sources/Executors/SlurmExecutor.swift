import Checkpoint
import Foundation
import Manifest
import Scheduler
#if canImport(Glibc)
import Glibc
#endif

/// How `run --executor slurm` submits: resolved from the manifest's `slurm:` section, flags and the cluster.
public struct SlurmRunOptions: Sendable {
    public var client = SlurmClient()
    public var settings: SlurmSettings
    /// shard or gpu (auto resolved against the cluster).
    public var gres: SlurmGres
    /// Shards of the largest GPU (shard mode): a job needing more is refused before submission.
    public var maxShardsPerGPU: Int
    public var maxInFlight: Int
    /// The binary the nodes run.
    public var binary: String
    public var pollSeconds: Double = 5
    /// Seconds to wait for cancelled jobs to end after Ctrl-C before giving up on them.
    public var cancelWaitSeconds: Double = 60
    /// The GPU memory the user declared (`--gpus 8x80GB`) for gpu mode, where Slurm says nothing of it.
    public var declaredGPUMemoryGB: Double?

    public init(settings: SlurmSettings, gres: SlurmGres, maxShardsPerGPU: Int, maxInFlight: Int, binary: String) {
        self.settings = settings
        self.gres = gres
        self.maxShardsPerGPU = maxShardsPerGPU
        self.maxInFlight = maxInFlight
        self.binary = binary
    }

    /// Shards to request for `gb` of predicted GPU memory (a whole GPU's worth when the job must run alone).
    public func shards(forGB gb: Double, isolate: Bool) -> Int {
        if isolate { return maxShardsPerGPU }
        return max(1, Int((gb / settings.gbPerShard - 1e-9).rounded(.up)))
    }

    /// The GPUs the scheduler reasons about: one per GPU of the cluster, with shards as GB in shard mode.
    public static func gpus(_ nodes: [SlurmNode], gres: SlurmGres, gbPerShard: Double, gpuMemoryGB: Double?) -> [GPU] {
        var out: [GPU] = []
        for n in nodes {
            for i in 0..<n.gpus {
                let gb = gres == .shard ? Double(n.shardsPerGPU) * gbPerShard : (gpuMemoryGB ?? 1024)
                out.append(GPU(index: out.count, uuid: "slurm-\(n.name)-\(i)", model: n.gpuType ?? "slurm gpu", memoryGB: gb))
            }
        }
        return out
    }

    /// Resolves `settings` against the cluster: the controller answers, GPU nodes exist, `gres: auto` becomes shard
    /// (every GPU node has shards) or gpu. `usage` errors are the user's to fix in flags or the manifest.
    public static func resolve(_ settings: SlurmSettings, binary: String, declaredGPUMemoryGB: Double?,
                               client: SlurmClient = SlurmClient()) async throws -> (SlurmRunOptions, [GPU]) {
        guard await client.ping() else {
            throw SlurmError("the Slurm controller does not answer (scontrol ping); is this a Slurm submit host?")
        }
        let nodes = try await client.gpuNodes(partition: settings.partition)
        guard !nodes.isEmpty else {
            throw SlurmError("Slurm lists no node with GPUs\(settings.partition.map { " in partition \($0)" } ?? ""); check `scontrol show node` and gres.conf")
        }
        var gres = settings.gres
        if gres == .auto { gres = nodes.allSatisfy { $0.shards > 0 } ? .shard : .gpu }
        if gres == .shard, let n = nodes.first(where: { $0.shards == 0 }) {
            throw SlurmError("--gres shard: node \(n.name) has GPUs but no shards; define Name=shard in its gres.conf or use --gres gpu", usage: true)
        }
        var o = SlurmRunOptions(settings: settings, gres: gres, maxShardsPerGPU: nodes.map(\.shardsPerGPU).max() ?? 0,
                                maxInFlight: settings.maxInFlight ?? 64, binary: binary)
        o.client = client
        o.declaredGPUMemoryGB = declaredGPUMemoryGB
        return (o, gpus(nodes, gres: gres, gbPerShard: settings.gbPerShard, gpuMemoryGB: declaredGPUMemoryGB))
    }
}

/// The Slurm executor: each attempt is a Slurm job (`sbatch` of `avatar-batch exec-attempt JOBFILE`), placed by
/// Slurm on shards (GB of one GPU) or a whole GPU. A poller follows the jobs with squeue (sacct for those it has
/// forgotten, the node's result file last) and reports each end through `EndClassifier.batchJob`.
///
/// The submitted jobs (`tracked`) are shared with the poller's task, under a lock.
public final class SlurmExecutor: AttemptExecutor, @unchecked Sendable {
    public let kind = ExecutorKind.slurm
    public let gpus: [GPU]
    public let initialHost = ""
    let so: SlurmRunOptions
    let stateDir: String
    let renderer: RendererProfile
    private let lock = NSLock()
    private var tracked: [Int64: Tracked] = [:]
    private var stoppingSince: Date?
    private var events: ExecutorEvents?
    private var poller: Task<Void, Never>?
    /// Attempts whose Slurm job ended and was collected: their job and result files go once the session recorded the end.
    private var collected: Set<Int64> = []
    private var script = ""
    /// Names this store's submissions in their comment, so a submission whose id was never recorded is found again.
    private let token: String

    /// A submitted attempt being followed.
    struct Tracked {
        var jobID: String
        var attemptID: Int64
        var slurmID: String
        var resultPath: String
        var slurmLog: String
        var logPath: String
        var submitted: Date
        var host: String
        /// scancel'd by avatar-batch (this run or, per the store, an earlier one).
        var cancelled = false
    }

    public init(_ options: SlurmRunOptions, gpus: [GPU], storePath: String, renderer: RendererProfile) {
        self.so = options
        self.gpus = gpus
        self.stateDir = (storePath as NSString).deletingLastPathComponent
        self.renderer = renderer
        self.token = String(SHA256.hex(storePath).prefix(12))
    }

    public func describe() -> String {
        "Slurm (--gres=\(so.gres == .shard ? "shard:N, \(so.maxShardsPerGPU) per GPU" : "gpu:1"), at most \(so.maxInFlight) in flight)"
    }

    public func need(_ gb: Double) -> String {
        if so.gres == .shard {
            return String(format: "%.1f GB = %d shards; the largest GPU has %d", gb, so.shards(forGB: gb, isolate: false), so.maxShardsPerGPU)
        }
        return String(format: "%.1f GB, more than the declared %.0f GB GPUs", gb, so.declaredGPUMemoryGB ?? 0)
    }

    public func refusal(_ count: Int) -> String { "\(count) clip(s) fit no GPU of the cluster; nothing was submitted" }

    public func open(_ events: ExecutorEvents, runID: Int64) async throws {
        self.events = events
        script = try writeExecScript()
        poller = Task { [weak self] in
            while !Task.isCancelled, let self {
                try? await Task.sleep(for: .seconds(self.so.pollSeconds))
                await self.pollOnce()
            }
        }
    }

    /// The fixed script every Slurm job starts (sbatch wants a script): it runs its arguments and nothing else.
    func writeExecScript() throws -> String {
        let path = stateDir + "/slurm/exec.sh"
        let text = "#!/bin/sh\n# Written by avatar-batch. Runs its arguments (avatar-batch exec-attempt JOBFILE) and nothing else.\nexec \"$@\"\n"
        if FileManager.default.contents(atPath: path) != Data(text.utf8) {
            try writeAtomically(Data(text.utf8), to: path)
        }
        chmod(path, 0o700)
        return path
    }

    func paths(attemptID: Int64) -> (job: String, result: String) {
        let base = stateDir + "/slurm/attempt-\(attemptID)"
        return (base + ".job.json", base + ".result.json")
    }

    func slurmLog(_ jobID: String, attempt n: Int) -> String { stateDir + "/logs/\(jobID).attempt-\(n).slurm.log" }

    /// A Slurm attempt of an earlier run is followed again (never submitted twice); a local one is stopped.
    public func adopt(_ a: AttemptRecord, known: AdoptedAttempt) async throws -> Adoption {
        guard a.executor == .slurm else {
            await LocalExecutor.stopLeftovers(a, graceSeconds: known.graceSeconds, say: { self.events?.post(.say($0)) })
            return .gone(note: "the orchestrator stopped while it ran")
        }
        var id = a.slurmJobID
        if id == nil {
            // Killed between sbatch and recording its id: find the submission by its name and comment.
            id = try await so.client.find(name: a.jobID).first { $0.comment.hasSuffix("attempt=\(token)-\(a.id)") }?.id
            if let id { events?.record(a.id, .batchJob(id: id)) }
        }
        guard let id, known.inManifest else { return .gone(note: "the orchestrator stopped before the job was submitted") }
        let files = paths(attemptID: a.id)
        let t = Tracked(jobID: a.jobID, attemptID: a.id, slurmID: id, resultPath: files.result, slurmLog: slurmLog(a.jobID, attempt: a.number),
                        logPath: a.logPath ?? "", submitted: Date(timeIntervalSince1970: a.startedAt), host: a.host,
                        cancelled: a.note == EndClassifier.cancelledNote)
        lock.withLock { tracked[a.id] = t }
        events?.post(.say("re-attached \(a.jobID): Slurm job \(id) (attempt \(a.number))"))
        return .tracked
    }

    /// Submits in dispatch order while fewer than `maxInFlight` are queued or running; a job no GPU of the cluster
    /// could ever hold is refused.
    public func admit(_ queue: JobQueue, predictor: Predictor, now: Double) -> Admission {
        var admission = Admission()
        var room = so.maxInFlight - lock.withLock { tracked.count }
        guard room > 0 else { return admission }
        // A clip's gpu_model constrains only where the cluster names its GPU types.
        let typed = gpus.contains { $0.model != "slurm gpu" }
        for q in queue.requests(predictor) {
            guard room > 0 else { break }
            var r = q.request
            if !typed { r.gpuModel = nil }
            if let why = Placer.fitsNoGPU(r, gpus: gpus) {
                admission.never.append((r.jobID, so.gres == .shard
                    ? "needs \(so.shards(forGB: r.memoryGB, isolate: r.isolate)) shards, more than any GPU has (\(so.maxShardsPerGPU))" : why, true))
                continue
            }
            let gres = so.gres == .shard ? "--gres=shard:\(so.shards(forGB: r.memoryGB, isolate: r.isolate))" : "--gres=gpu:1"
            admission.starts.append((r.jobID, Placement(gpu: nil, request: gres)))
            room -= 1
        }
        return admission
    }

    public func start(_ launch: AttemptLaunch) async throws {
        var plan = launch.plan
        var minutes = Int((((plan.timeoutSeconds ?? 0) + plan.graceSeconds + 60) / 60).rounded(.up))
        if let hard = so.settings.timeLimitSeconds {
            // The renderer's own timeout fires first, so a slow job is classified as a timeout, not lost to Slurm's kill.
            plan.timeoutSeconds = min(plan.timeoutSeconds ?? hard, max(30, hard - plan.graceSeconds - 30))
            minutes = Int((hard / 60).rounded(.up))
        }
        // The node's own GPU, as Slurm sets CUDA_VISIBLE_DEVICES; the plan's GPU only names the model and memory.
        plan.inheritDevices = true
        plan.masterPort = 0  // the node picks one
        plan.gpu = GPU(index: 0, uuid: "", model: gpus.first?.model ?? "slurm gpu", memoryGB: gpus.map(\.memoryGB).max() ?? 0)
        let a = launch.attempt
        let files = paths(attemptID: a.id)
        let slurmLog = slurmLog(a.jobID, attempt: a.number)
        try? FileManager.default.removeItem(atPath: files.result)
        try FileManager.default.createDirectory(atPath: stateDir + "/logs", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try SlurmJobFile(plan: plan, resultPath: files.result).write(to: files.job)

        let gres = launch.placement.request ?? "--gres=gpu:1"
        var args = ["--job-name=\(a.jobID)", "--comment=avatar-batch key=\(a.contentKey.prefix(16)) attempt=\(token)-\(a.id)",
                    "--output=\(slurmLog)", "--open-mode=append", "--chdir=\(stateDir)", gres, "--time=\(minutes)"]
        if let v = so.settings.partition { args.append("--partition=\(v)") }
        if let v = so.settings.account { args.append("--account=\(v)") }
        if let v = so.settings.qos { args.append("--qos=\(v)") }
        // Slurm requeues a batch job whose node fails (JobRequeue=1) under the same job id, so the renderer would run
        // again inside this attempt, unseen. Without that, the job ends NODE_FAIL (or PREEMPTED) and avatar-batch
        // submits a new, recorded attempt that does not count against max_attempts. `--sbatch-arg=--requeue` (later
        // on the line, so it wins) gives Slurm the job back.
        args.append("--no-requeue")
        args += so.settings.sbatchArgs
        args += [script, so.binary, "exec-attempt", files.job]

        var slurmID: String?
        var lastError: Error?
        for delay in [0.0, 1, 3, 9] {
            if delay > 0 { try? await Task.sleep(for: .seconds(delay)) }
            do { slurmID = try await so.client.submit(args); break } catch { lastError = error }
        }
        guard let slurmID else {
            throw SlurmError("\(lastError.map { "\($0)" } ?? "sbatch failed"); jobs already submitted keep running: run the same command again to collect them")
        }
        events?.record(a.id, .batchJob(id: slurmID))
        let e = launch.estimate
        events?.post(.say("submitted \(a.jobID) as Slurm job \(slurmID) (attempt \(a.number), \(String(format: "%.1f", e.memoryGB)) GB, \(gres)\(launch.change.isEmpty ? "" : "; " + launch.change))"))
        let t = Tracked(jobID: a.jobID, attemptID: a.id, slurmID: slurmID, resultPath: files.result, slurmLog: slurmLog, logPath: plan.logPath,
                        submitted: Date(), host: "")
        lock.withLock { tracked[a.id] = t }
    }

    /// One poll: statuses of the tracked jobs, the node each runs on, and the end of those that ended.
    func pollOnce() async {
        let now = lock.withLock { tracked }
        guard !now.isEmpty, let events else { return }
        if let since = lock.withLock({ stoppingSince }), Date().timeIntervalSince(since) > so.cancelWaitSeconds {
            for t in now.values {
                let result = AttemptResult(classification: .interrupted, exitCode: nil, signal: nil, seconds: Date().timeIntervalSince(t.submitted),
                                           stderrTail: "", oom: nil, reportedPeakGB: nil, outputDigest: nil,
                                           note: "cancelled; Slurm job \(t.slurmID) did not end in time", leftovers: [])
                finishTracking(t, collected: false)
                events.post(.ended(EndedAttempt(jobID: t.jobID, attemptID: t.attemptID, result: result)))
            }
            events.post(.say("gave up waiting for \(now.count) cancelled Slurm job(s); the next run collects them"))
            return
        }
        let statuses: [String: SlurmJobStatus]
        do { statuses = try await poll(Array(now.values)) } catch {
            events.post(.say("warning: squeue failed (\(error)); trying again at the next poll"))
            return
        }
        for t in now.values {
            guard let status = statuses[t.slurmID] else { continue }
            if status.state == "RUNNING", !status.nodes.isEmpty, t.host != status.nodes {
                lock.withLock { tracked[t.attemptID]?.host = status.nodes }
                events.record(t.attemptID, .host(status.nodes))
                if t.host.isEmpty { events.post(.say("running \(t.jobID) on \(status.nodes) (Slurm job \(t.slurmID))")) }
            }
            guard status.isFinished else { continue }
            let result = collect(t, status, stopping: lock.withLock { stoppingSince != nil })
            finishTracking(t, collected: true)
            events.post(.ended(EndedAttempt(jobID: t.jobID, attemptID: t.attemptID, result: result)))
        }
    }

    /// Stops following a job whose end is reported. Its job and result files stay until the session has recorded the
    /// end (`recorded`): a run killed before that re-attaches and collects the same result, instead of finding the
    /// job COMPLETED without one and rendering the clip again.
    private func finishTracking(_ t: Tracked, collected ended: Bool) {
        lock.withLock {
            tracked.removeValue(forKey: t.attemptID)
            if ended { collected.insert(t.attemptID) }
        }
    }

    public func recorded(_ ended: EndedAttempt) {
        guard lock.withLock({ collected.remove(ended.attemptID) }) != nil else { return }
        let files = paths(attemptID: ended.attemptID)
        try? FileManager.default.removeItem(atPath: files.job)
        try? FileManager.default.removeItem(atPath: files.result)
    }

    /// Statuses of the tracked jobs: squeue first, sacct for those it no longer lists, the result file last.
    func poll(_ jobs: [Tracked]) async throws -> [String: SlurmJobStatus] {
        var out: [String: SlurmJobStatus] = [:]
        let live = try await so.client.queue()
        var missing: [Tracked] = []
        for t in jobs {
            if let s = live[t.slurmID] { out[t.slurmID] = s } else { missing.append(t) }
        }
        if !missing.isEmpty {
            let acct = await so.client.accounting(missing.map(\.slurmID))
            for t in missing {
                if let s = acct[t.slurmID], s.isFinished || s.state != "PENDING" {
                    out[t.slurmID] = s
                } else if FileManager.default.fileExists(atPath: t.resultPath) {
                    out[t.slurmID] = SlurmJobStatus(id: t.slurmID, state: "FINISHED", reason: "", nodes: "", exitCode: nil)
                } else if Date().timeIntervalSince(t.submitted) > 120 {
                    // Neither squeue nor accounting knows it and it left no result: lost (purged, or another cluster's).
                    out[t.slurmID] = SlurmJobStatus(id: t.slurmID, state: "LOST", reason: "", nodes: "", exitCode: nil)
                }
            }
        }
        return out
    }

    /// A finished Slurm job as an attempt result, classified once by `EndClassifier.batchJob`.
    func collect(_ t: Tracked, _ status: SlurmJobStatus, stopping: Bool) -> AttemptResult {
        let fromNode: AttemptResult? = FileManager.default.contents(atPath: t.resultPath).flatMap { try? JSONDecoder().decode(AttemptResult.self, from: $0) }
        let slurmTail = AttemptRunner.lastLines(AttemptRunner.logTail(t.slurmLog, bytes: 16 * 1024), 10)
        let place = "Slurm job \(t.slurmID)\(status.nodes.isEmpty ? "" : " on " + status.nodes)"
        var result = fromNode ?? AttemptResult(classification: .crashed, exitCode: nil, signal: nil, seconds: Date().timeIntervalSince(t.submitted),
                                               stderrTail: slurmTail, oom: nil, reportedPeakGB: nil, outputDigest: nil, note: nil, leftovers: [])
        let node = fromNode.map { ClassifiedEnd($0.classification, note: $0.note, oom: $0.oom) }
        let verdict = EndClassifier.batchJob(BatchJobEnd(state: status.state, exitCode: status.exitCode, place: place, node: node,
                                                         cancelledByUs: t.cancelled, stopping: stopping),
                                             oomPatterns: renderer.oomPatterns) {
            AttemptRunner.logTail(t.logPath, bytes: 256 * 1024) + "\n" + slurmTail
        }
        switch verdict {
        case let .notItsFault(note):
            result.classification = .interrupted
            result.note = note
        case let .cancelledOutside(note):
            result.classification = .cancelled
            result.note = note
        case let .ended(c):
            result.classification = c.classification
            result.note = c.note ?? result.note
            result.oom = c.oom ?? result.oom
            if c.classification == .crashed && fromNode == nil { result.note = (result.note ?? "") + "; see \(t.slurmLog)" }
        }
        return result
    }

    public func settle(_ ended: EndedAttempt) -> AttemptResult { ended.result }

    /// Cancels every tracked job; the poller reports each as it ends (or gives up after `cancelWaitSeconds`).
    public func stopAll() async {
        let ids = lock.withLock { () -> [Tracked] in
            stoppingSince = Date()
            for k in tracked.keys { tracked[k]!.cancelled = true }
            return Array(tracked.values)
        }
        events?.post(.say("stopping: cancelling \(ids.count) Slurm job(s)"))
        for t in ids { events?.record(t.attemptID, .note(EndClassifier.cancelledNote)) }
        try? await so.client.cancel(ids.map(\.slurmID))
    }

    public func abortNow() -> String { "leaving now; run the same command again to collect the cancelled jobs" }

    public func close() async -> [Int: Double] {
        poller?.cancel()
        return [:]
    }
}
