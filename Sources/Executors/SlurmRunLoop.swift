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
}

/// The GPU uuid recorded for attempts that went to Slurm (the node and GPU are Slurm's choice).
let slurmGPUMarker = "slurm"

final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}

extension RunLoop {
    /// A submitted attempt being tracked.
    struct Tracked {
        var running: Running
        var slurmID: String
        var resultPath: String
        var slurmLog: String
        var submitted: Date
        /// scancel'd by avatar-batch (this run or, per the store, an earlier one).
        var cancelled = false
    }

    /// The note an attempt carries from the moment avatar-batch cancels its Slurm job until it is collected, so a
    /// run that re-attaches after a second Ctrl-C knows the cancellation was ours.
    static let cancelledNote = "cancelled by avatar-batch (Ctrl-C)"

    /// The Slurm run: the same queue, ladder and store as a local run; Slurm places the jobs.
    func runSlurm(_ so: SlurmRunOptions, runID: Int64, summary: inout RunSummary) async throws {
        let script = try writeExecScript()
        let token = SHA256.hex(store.path).prefix(12)
        var tracked = try await reattach(so, token: String(token))
        try syncJobs()
        var queue = try buildQueue(&summary)
        // Submission order: priority, then the longest predicted job first (what the local dispatcher does).
        let seconds = Dictionary(uniqueKeysWithValues: queue.map { ($0.job.id, predictor.estimate($0.settings, jobID: $0.job.id).seconds) })
        queue.sort { a, b in
            if a.job.clip.priority != b.job.clip.priority { return a.job.clip.priority > b.job.clip.priority }
            if seconds[a.job.id]! != seconds[b.job.id]! { return seconds[a.job.id]! > seconds[b.job.id]! }
            return a.order < b.order
        }
        progress.event("batch \(manifest.name): \(order.count) clips, \(summary.skipped) already done, \(tracked.count) still in Slurm, \(queue.count) to submit "
            + "(--gres=\(so.gres == .shard ? "shard:N, \(so.maxShardsPerGPU) per GPU" : "gpu:1"), at most \(so.maxInFlight) in flight)")

        let stop = StopFlag()
        let client = so.client
        let signals = SignalWatcher(registry: groups) {
            // A second Ctrl-C: cancel at once and leave; the next run collects what is left.
            FileHandle.standardError.write(Data("avatar-batch: leaving now; run the same command again to collect the cancelled jobs\n".utf8))
            _exit(130)
        }
        let watcher = Task { for await _ in signals.stream { stop.set(); break } }
        defer { watcher.cancel(); signals.stop() }
        var stopping = false
        var stopAt: Date?
        var failedForGood = 0

        while true {
            if stop.isSet && !stopping {
                stopping = true
                summary.interrupted = true
                stopAt = Date()
                let ids = tracked.values.map { $0.slurmID }
                progress.event("stopping: cancelling \(ids.count) Slurm job(s)")
                for t in tracked.values { try? store.recordNote(attemptID: t.running.attempt.id, note: RunLoop.cancelledNote) }
                try? await client.cancel(ids)
                for k in tracked.keys { tracked[k]!.cancelled = true }
            }
            // Submit in order while there is room.
            while !stopping && tracked.count < so.maxInFlight, !queue.isEmpty {
                let p = queue.removeFirst()
                let e = predictor.estimate(p.settings, jobID: p.job.id)
                if so.gres == .shard && so.shards(forGB: e.memoryGB, isolate: p.isolate) > so.maxShardsPerGPU {
                    if let next = degradeUntilItFits(p) {
                        progress.event("\(p.job.id): predicted \(String(format: "%.1f", e.memoryGB)) GB is more than one GPU's shards; skipping to \(next.change)")
                        queue.insert(next, at: 0)
                        continue
                    }
                    let why = "needs \(so.shards(forGB: e.memoryGB, isolate: p.isolate)) shards, more than any GPU has (\(so.maxShardsPerGPU))"
                    progress.event("FAILED \(p.job.id): \(why)")
                    try failWithoutAttempt(p, reason: why)
                    summary.failed += 1
                    failedForGood += 1
                    continue
                }
                let t = try await submit(p, estimate: e, so: so, runID: runID, script: script, token: String(token))
                tracked[p.job.id] = t
            }
            if tracked.isEmpty && (queue.isEmpty || stopping) { break }
            if let at = stopAt, Date().timeIntervalSince(at) > so.cancelWaitSeconds {
                for t in tracked.values {
                    try store.finishAttempt(t.running.attempt, AttemptEnd(classification: .interrupted, note: "cancelled; Slurm job \(t.slurmID) did not end in time",
                                                                           jobState: .interrupted, reason: "interrupted"))
                }
                progress.event("gave up waiting for \(tracked.count) cancelled Slurm job(s); the next run collects them")
                tracked.removeAll()
                break
            }
            // Wait for the next poll (a signal cuts it short).
            let deadline = Date().addingTimeInterval(so.pollSeconds)
            while Date() < deadline && !(stop.isSet && !stopping) { try? await Task.sleep(for: .milliseconds(100)) }
            if stop.isSet && !stopping { continue }

            let statuses = try await poll(tracked, client: client)
            for (jobID, t) in tracked {
                guard let status = statuses[t.slurmID] else { continue }
                if status.state == "RUNNING", t.running.attempt.host != status.nodes, !status.nodes.isEmpty {
                    try? store.recordHost(attemptID: t.running.attempt.id, host: status.nodes)
                    tracked[jobID]!.running.attempt.host = status.nodes
                    if t.running.attempt.host == "" || t.running.attempt.host.hasPrefix("slurm") {
                        progress.event("running \(jobID) on \(status.nodes) (Slurm job \(t.slurmID))")
                    }
                }
                guard status.isFinished else { continue }
                tracked.removeValue(forKey: jobID)
                let next = try collect(t, status, stopping: stopping)
                // The store has the outcome now; the job and result files are done with.
                let files = paths(attemptID: t.running.attempt.id)
                try? FileManager.default.removeItem(atPath: files.job)
                try? FileManager.default.removeItem(atPath: files.result)
                // A retry goes to the front: it is submitted before jobs not yet tried.
                if let p = tally(next, &summary, failedForGood: &failedForGood) { queue.insert(p, at: 0) }
            }
            if !stopping && failureLimitReached(failedForGood, &summary, queued: queue.count, still: "submitted jobs finish") { stopping = true }
        }
    }

    /// The fixed script every Slurm job starts (sbatch wants a script): it runs its arguments and nothing else.
    func writeExecScript() throws -> String {
        let path = stateDir() + "/slurm/exec.sh"
        let text = "#!/bin/sh\n# Written by avatar-batch. Runs its arguments (avatar-batch exec-attempt JOBFILE) and nothing else.\nexec \"$@\"\n"
        if FileManager.default.contents(atPath: path) != Data(text.utf8) {
            try writeAtomically(Data(text.utf8), to: path)
        }
        chmod(path, 0o700)
        return path
    }

    func paths(attemptID: Int64) -> (job: String, result: String) {
        let base = stateDir() + "/slurm/attempt-\(attemptID)"
        return (base + ".job.json", base + ".result.json")
    }

    func slurmGPU(_ so: SlurmRunOptions) -> GPU {
        let gb = options.gpus.map(\.memoryGB).max() ?? Double(so.maxShardsPerGPU) * so.settings.gbPerShard
        return GPU(index: 0, uuid: slurmGPUMarker, model: options.gpus.first?.model ?? "slurm gpu", memoryGB: gb)
    }

    func submit(_ p: Pending, estimate e: Estimate, so: SlurmRunOptions, runID: Int64, script: String, token: String) async throws -> Tracked {
        var timeout = self.timeout(p, e)
        var minutes = Int(((timeout + options.graceSeconds + 60) / 60).rounded(.up))
        if let hard = so.settings.timeLimitSeconds {
            // The renderer's own timeout fires first, so a slow job is classified as a timeout, not lost to Slurm's kill.
            timeout = min(timeout, max(30, hard - options.graceSeconds - 30))
            minutes = Int((hard / 60).rounded(.up))
        }
        let number = try nextAttemptNumber(p.job.id)
        let logPath = self.logPath(p.job.id, attempt: number)
        let slurmLog = self.logPath(p.job.id, attempt: number, kind: "slurm.log")
        let attempt = try store.startAttempt(p.job.id, runID: runID, host: "slurm", AttemptStart(
            settings: p.settings, change: p.change, isolated: p.isolate, rung: p.rung, gpu: nil, gpuUUID: slurmGPUMarker, logPath: logPath,
            predictedGB: e.memoryGB, predictedSeconds: e.seconds))
        let gpu = slurmGPU(so)
        let plan = attemptPlan(p, attempt: attempt, gpu: gpu, timeout: timeout, port: 0, inheritDevices: true)  // the node picks the port
        let files = paths(attemptID: attempt.id)
        try? FileManager.default.removeItem(atPath: files.result)
        try FileManager.default.createDirectory(atPath: stateDir() + "/logs", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try SlurmJobFile(plan: plan, resultPath: files.result).write(to: files.job)

        let gres = so.gres == .shard ? "--gres=shard:\(so.shards(forGB: e.memoryGB, isolate: p.isolate))" : "--gres=gpu:1"
        var args = ["--job-name=\(p.job.id)", "--comment=avatar-batch key=\(p.job.contentKey.prefix(16)) attempt=\(token)-\(attempt.id)",
                    "--output=\(slurmLog)", "--open-mode=append", "--chdir=\(stateDir())", gres, "--time=\(minutes)"]
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
            try store.finishAttempt(attempt, AttemptEnd(classification: .interrupted, note: "sbatch failed: \(lastError.map { "\($0)" } ?? "")",
                                                        jobState: .interrupted, reason: "not submitted"))
            throw SlurmError("\(lastError.map { "\($0)" } ?? "sbatch failed"); jobs already submitted keep running: run the same command again to collect them")
        }
        try store.recordSlurmJob(attemptID: attempt.id, slurmJobID: slurmID)
        progress.event("submitted \(p.job.id) as Slurm job \(slurmID) (attempt \(attempt.number), \(String(format: "%.1f", e.memoryGB)) GB, \(gres)\(p.change.isEmpty ? "" : "; " + p.change))")
        let running = Running(pending: p, attempt: attempt, gpu: gpu, estimate: e, started: Date(), port: 0, soloSeconds: .infinity)
        return Tracked(running: running, slurmID: slurmID, resultPath: files.result, slurmLog: slurmLog, submitted: Date())
    }

    /// Open attempts of an earlier run: Slurm jobs are tracked again (never submitted twice); a local attempt is
    /// stopped and requeued as a local run would.
    func reattach(_ so: SlurmRunOptions, token: String) async throws -> [String: Tracked] {
        var tracked: [String: Tracked] = [:]
        for a in try store.openAttempts() {
            guard a.gpuUUID == slurmGPUMarker else {
                try await reconcileLocal(a)
                continue
            }
            var id = a.slurmJobID
            if id == nil {
                // Killed between sbatch and recording its id: find the submission by its name and comment.
                id = try await so.client.find(name: a.jobID).first { $0.comment.hasSuffix("attempt=\(token)-\(a.id)") }?.id
                if let id { try store.recordSlurmJob(attemptID: a.id, slurmJobID: id) }
            }
            guard let id, let job = jobs[a.jobID] else {
                try store.finishAttempt(a, AttemptEnd(classification: .interrupted, note: "the orchestrator stopped before the job was submitted",
                                                      jobState: .interrupted, reason: "interrupted"))
                continue
            }
            let settings = a.settings ?? job.settings
            let p = Pending(job: job, settings: settings, isolate: a.isolated, rung: a.rung, change: a.change, order: order.firstIndex(of: job.id) ?? 0)
            let e = predictor.estimate(settings, jobID: job.id)
            let running = Running(pending: p, attempt: a, gpu: slurmGPU(so), estimate: e, started: Date(timeIntervalSince1970: a.startedAt), port: 0,
                                  soloSeconds: .infinity)
            let files = paths(attemptID: a.id)
            let slurmLog = logPath(a.jobID, attempt: a.number, kind: "slurm.log")
            tracked[a.jobID] = Tracked(running: running, slurmID: id, resultPath: files.result, slurmLog: slurmLog,
                                       submitted: Date(timeIntervalSince1970: a.startedAt), cancelled: a.note == RunLoop.cancelledNote)
            progress.event("re-attached \(a.jobID): Slurm job \(id) (attempt \(a.number))")
        }
        return tracked
    }

    /// What an interrupted attempt is requeued as: itself, unless the manifest changed the clip since it was
    /// submitted (a job re-attached after the orchestrator stopped): then the clip as the manifest has it now, from
    /// the start of its ladder, as a local run does once its sync has reset the job.
    func requeued(_ r: Running) -> Pending {
        guard let job = jobs[r.pending.job.id], job.contentKey != r.attempt.contentKey else { return r.pending }
        try? syncJobs()  // the job is no longer running: the store takes its new content key (and resets it)
        return Pending(job: job, settings: job.settings, isolate: false, rung: 0, change: "", order: r.pending.order)
    }

    /// Statuses of the tracked jobs: squeue first, sacct for those it no longer lists, the result file last.
    func poll(_ tracked: [String: Tracked], client: SlurmClient) async throws -> [String: SlurmJobStatus] {
        guard !tracked.isEmpty else { return [:] }
        var out: [String: SlurmJobStatus] = [:]
        let live = try await client.queue()
        var missing: [Tracked] = []
        for t in tracked.values {
            if let s = live[t.slurmID] { out[t.slurmID] = s } else { missing.append(t) }
        }
        if !missing.isEmpty {
            let acct = await client.accounting(missing.map(\.slurmID))
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

    /// Turns a finished Slurm job into an attempt result and applies the same policy as a local run.
    func collect(_ t: Tracked, _ status: SlurmJobStatus, stopping: Bool) throws -> Next {
        let id = t.running.pending.job.id
        let fromNode: AttemptResult? = FileManager.default.contents(atPath: t.resultPath).flatMap { try? JSONDecoder().decode(AttemptResult.self, from: $0) }
        let slurmTail = AttemptRunner.lastLines(AttemptRunner.logTail(t.slurmLog, bytes: 16 * 1024), 10)
        let where_ = "Slurm job \(t.slurmID)\(status.nodes.isEmpty ? "" : " on " + status.nodes)"
        var result = fromNode ?? AttemptResult(classification: .crashed, exitCode: nil, signal: nil, seconds: Date().timeIntervalSince(t.running.started),
                                               stderrTail: slurmTail, oom: nil, reportedPeakGB: nil, outputDigest: nil, note: nil, leftovers: [])
        let requeueStates: Set<String> = ["NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "LOST"]
        // Cancelled by avatar-batch (now or before a second Ctrl-C): not the job's fault, unless it had finished.
        let cancelledByUs = t.cancelled && fromNode?.classification != .succeeded
        if requeueStates.contains(status.state) || cancelledByUs || (fromNode?.classification == .interrupted && stopping) {
            // Not the job's fault: no attempt counted; requeued now (or by the next run when stopping).
            let note = cancelledByUs ? RunLoop.cancelledNote : "\(where_) ended \(status.state)"
            try store.finishAttempt(t.running.attempt, AttemptEnd(classification: .interrupted, stderrTail: result.stderrTail, note: note,
                                                                  jobState: .interrupted, reason: "interrupted"))
            removePartials(id)
            progress.event("interrupted \(id): \(note)")
            return stopping ? .interrupted : .requeue(requeued(t.running))
        }
        // Slurm's word on how the job ended wins over a node result that only says "stopped by a signal".
        let endedBySlurm = ["TIMEOUT", "DEADLINE", "CANCELLED", "OUT_OF_MEMORY"].contains(status.state)
        if fromNode == nil || fromNode?.classification == .interrupted || (endedBySlurm && fromNode?.classification != .succeeded) {
            switch status.state {
            case "TIMEOUT", "DEADLINE":
                result.classification = .timeout
                result.note = "\(where_) reached its time limit"
            case "CANCELLED":
                try store.finishAttempt(t.running.attempt, AttemptEnd(classification: .cancelled, stderrTail: result.stderrTail,
                    note: "\(where_) was cancelled outside avatar-batch", jobState: .cancelled,
                    reason: "cancelled with scancel; `avatar-batch retry` renders it again"))
                removePartials(id)
                progress.event("FAILED \(id): \(where_) was cancelled outside avatar-batch; `avatar-batch retry MANIFEST \(id)` renders it again")
                return .failed
            case "OUT_OF_MEMORY":
                result.classification = .killed
                result.note = "\(where_) ran out of host memory (raise --mem in sbatch_args)"
            default:
                let tail = AttemptRunner.logTail(t.running.attempt.logPath ?? "", bytes: 256 * 1024) + "\n" + slurmTail
                if manifest.renderer.oomPatterns.contains(where: { tail.contains($0) }) {
                    result.classification = .oom
                    result.oom = OOMReport.parse(tail)
                } else {
                    result.classification = .crashed
                    result.note = "\(where_) ended \(status.state)\(status.exitCode.map { " (exit \($0))" } ?? "") without a result; see \(t.slurmLog)"
                }
            }
        }
        return try finish(t.running, result, stopping: stopping)
    }
}
