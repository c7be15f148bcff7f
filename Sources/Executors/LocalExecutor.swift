import Checkpoint
import Foundation
import Manifest
import Scheduler
#if canImport(Glibc)
import Glibc
#endif

/// How the local executor places and runs attempts.
public struct LocalExecutorOptions: Sendable {
    public var gpus: [GPU]
    public var strategy: Strategy
    /// At most this many attempts on one GPU.
    public var maxJobsPerGPU: Int
    public var sharing: SharingModel
    /// Host RAM in GB the attempts may use together, by their predicted host RAM (nil: this machine's MemTotal;
    /// 0: not checked). Live Avatar keeps every decoded frame in host memory, so long clips exhaust the host first.
    public var hostRAMGB: Double?
    /// Sample device memory with nvidia-smi this often (real GPUs only).
    public var sampleInterval: Double = 1

    public init(gpus: [GPU], strategy: Strategy, maxJobsPerGPU: Int, sharing: SharingModel) {
        self.gpus = gpus
        self.strategy = strategy
        self.maxJobsPerGPU = maxJobsPerGPU
        self.sharing = sharing
    }
}

/// The process-per-attempt executor: attempts are placed on this machine's GPUs by the dispatcher (filter, score,
/// reservations with backfilling), each runs as its own process group through `AttemptRunner`, and device memory
/// is sampled with nvidia-smi on real GPUs.
///
/// Its state (the GPUs' loads, the attempts it runs) is touched only from the session's task: `admit`, `start`,
/// `settle` and `stopAll`. The attempts' own tasks only post events; `abortNow` only reads the process groups.
public final class LocalExecutor: AttemptExecutor, @unchecked Sendable {
    public let kind = ExecutorKind.local
    public private(set) var gpus: [GPU]
    public let initialHost = ProcFS.hostname
    let options: LocalExecutorOptions
    let dispatcher: Dispatcher
    private var loads: [GPULoad]
    private let ports = PortAllocator()
    private let groups = GroupRegistry()
    private let memory = MemoryTracker()
    private var events: ExecutorEvents?
    private var sampler: Task<Void, Never>?
    private let hostRAM: Double

    /// What the executor holds for each attempt it runs, by attempt id.
    private struct Held {
        var jobID: String
        var gpu: Int
        var port: Int
        var isolate: Bool
        var hostRAMGB: Double
        /// The memory tracker's key.
        var key: String
        var task: Task<Void, Never>
    }
    private var held: [Int64: Held] = [:]

    public init(_ options: LocalExecutorOptions) {
        self.options = options
        self.gpus = options.gpus
        self.dispatcher = Dispatcher(placer: Placer(strategy: options.strategy, maxJobsPerGPU: options.maxJobsPerGPU, sharing: options.sharing))
        self.loads = options.gpus.map { GPULoad(gpu: $0) }
        self.hostRAM = options.hostRAMGB ?? ProcFS.memTotalGB() ?? 0
    }

    public func describe() -> String { "\(gpus.count) GPU(s) [\(options.strategy.name)]" }

    public func open(_ events: ExecutorEvents, runID: Int64) async throws {
        self.events = events
        let real = gpus.contains { !$0.uuid.hasPrefix("virtual-") }
        if real, let used = await GPUDiscovery.memoryUsed() {
            // Read again now that a dead run's leftovers are gone: what remains belongs to other processes.
            for i in gpus.indices { gpus[i].foreignUsedGB = used[gpus[i].index] ?? gpus[i].foreignUsedGB }
            loads = gpus.map { GPULoad(gpu: $0) }
        }
        memory.setBaseline(Dictionary(uniqueKeysWithValues: gpus.map { ($0.index, $0.foreignUsedGB) }))
        if real {
            let tracker = memory, interval = options.sampleInterval
            sampler = Task {
                while !Task.isCancelled {
                    if let used = await GPUDiscovery.memoryUsed() { tracker.sample(used) }
                    try? await Task.sleep(for: .seconds(interval))
                }
            }
        }
    }

    /// A local attempt of a dead run: stop what is left of its process group; a Slurm attempt cannot be collected here.
    public func adopt(_ a: AttemptRecord, known: AdoptedAttempt) async throws -> Adoption {
        guard a.executor == .local else {
            throw ExecutorError.launch("attempt \(a.number) of \(a.jobID) was submitted to Slurm by an earlier run and is not collected yet "
                + "(Slurm job \(a.slurmJobID ?? "?")); run with --executor slurm to collect it first")
        }
        await LocalExecutor.stopLeftovers(a, graceSeconds: known.graceSeconds, say: { self.events?.post(.say($0)) })
        return .gone(note: "the orchestrator stopped while it ran")
    }

    /// Stops what is left of a dead run's local attempt: its process group, if its leader is the process launched
    /// (pid and start time) or gone. Any executor adopting a local attempt calls this.
    static func stopLeftovers(_ a: AttemptRecord, graceSeconds: Double, say: (String) -> Void) async {
        guard let pgid = a.processGroup, a.host == ProcFS.hostname, !ProcFS.members(ofGroup: pgid).isEmpty else { return }
        let leaderMatches = a.pid.map { pid in ProcFS.startTime(of: pid) == nil || ProcFS.startTime(of: pid) == a.processStart } ?? true
        guard leaderMatches else { return }
        say("stopping leftover processes of \(a.jobID) (process group \(pgid))")
        await ProcFS.terminateGroup(pgid, graceSeconds: graceSeconds)
    }

    public func admit(_ queue: JobQueue, predictor: Predictor, now: Double) -> Admission {
        var admission = Admission()
        let round = dispatcher.round(queue: queue.requests(predictor), loads: &loads, now: now, presorted: true, explain: false,
                                     maxWaiting: Dispatcher.waitingDepth(gpus: gpus.count), smallestGB: queue.smallestGB(predictor),
                                     queueCount: queue.count)
        for (id, reason) in round.never.sorted(by: { $0.key < $1.key }) { admission.never.append((id, reason, true)) }
        var hostUsed = held.values.reduce(0) { $0 + $1.hostRAMGB }
        for (id, gpuIndex) in round.starts {
            guard let e = queue.entry(id), let gpu = gpus.first(where: { $0.index == gpuIndex }) else { continue }
            let est = queue.estimate(e, predictor)
            if hostRAM > 0 && est.hostRAMGB > 0 && hostUsed + est.hostRAMGB > hostRAM {
                // The host, not the GPU, is full: release the GPU reservation and wait, or refuse when even an empty
                // host could not hold it.
                release(jobID: id, gpu: gpuIndex, isolate: e.isolate)
                if est.hostRAMGB > hostRAM {
                    admission.never.append((id, String(format: "needs %.0f GB of host RAM (predicted), this machine has %.0f GB (--host-ram)",
                                                       est.hostRAMGB, hostRAM), false))
                }
                continue
            }
            hostUsed += est.hostRAMGB
            admission.starts.append((id, Placement(gpu: gpu)))
        }
        return admission
    }

    private func release(jobID: String, gpu: Int, isolate: Bool) {
        guard let li = loads.firstIndex(where: { $0.gpu.index == gpu }) else { return }
        loads[li].occupants.removeAll { $0.jobID == jobID }
        if isolate { loads[li].isolated = false }
    }

    public func start(_ launch: AttemptLaunch) async throws {
        guard let gpu = launch.placement.gpu, let events else { throw ExecutorError.launch("the local executor needs a GPU and to be opened") }
        var plan = launch.plan
        plan.masterPort = ports.take()
        plan.gpu = gpu
        plan.inheritDevices = false
        let attempt = launch.attempt, id = attempt.jobID
        let key = "\(id)#\(attempt.number)"
        memory.begin(key, gpu: gpu.index)
        let e = launch.estimate
        events.post(.say("start \(id) on GPU \(gpu.index) (attempt \(attempt.number), \(String(format: "%.1f", e.memoryGB)) GB, ~\(ProgressReporter.duration(e.seconds))\(launch.change.isEmpty ? "" : "; " + launch.change))"))
        let groups = self.groups
        let frozen = plan
        let task = Task {
            let leader = PIDBox()
            do {
                let result = try await AttemptRunner.run(frozen) { pid, start in
                    groups.add(pid)
                    leader.set(pid)
                    events.record(attempt.id, .process(pid: pid, start: start, group: pid))
                }
                if let pid = leader.pid { groups.remove(pid) }
                events.post(.ended(EndedAttempt(jobID: id, attemptID: attempt.id, result: result)))
            } catch {
                if let pid = leader.pid { groups.remove(pid) }
                events.post(.failed("\(id): \(error)"))
            }
        }
        held[attempt.id] = Held(jobID: id, gpu: gpu.index, port: plan.masterPort, isolate: launch.isolate, hostRAMGB: e.hostRAMGB, key: key, task: task)
    }

    public func settle(_ ended: EndedAttempt) -> AttemptResult {
        var result = ended.result
        guard let h = held.removeValue(forKey: ended.attemptID) else { return result }
        release(jobID: h.jobID, gpu: h.gpu, isolate: h.isolate)
        ports.release(h.port)
        result.sampledPeakGB = memory.end(h.key)
        return result
    }

    public func stopAll() async {
        // SIGTERM every group now; cancelling each attempt's task then stops its group (SIGTERM, then SIGKILL after
        // the grace period) and reports it interrupted.
        groups.signalAll(SIGTERM)
        for h in held.values { h.task.cancel() }
    }

    public func abortNow() -> String {
        groups.killAll()
        return "killed running jobs; run the same command again to resume"
    }

    /// Stops the sampler; attempts still running (the session stopped on an error) are stopped and waited for, so
    /// no renderer outlives the orchestrator's run.
    public func close() async -> [Int: Double] {
        sampler?.cancel()
        for h in held.values { h.task.cancel() }
        for h in held.values { await h.task.value }
        held.removeAll()
        return memory.peaks
    }
}
