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
    /// Run this renderer's attempts on warm workers (its profile's `worker:` section); nil: one process per attempt.
    public var warm: RendererProfile?
    /// Each load-settings group's expected worker load from the history (`Knowledge.loadsBySettings`); a group not
    /// in it expects `warm`'s `load_s` until this batch measures one.
    public var workerLoads: [String: Double] = [:]
    /// Seconds between SIGTERM and SIGKILL for workers.
    public var graceSeconds: Double = 10
    /// A worker for every clip started, its request sent once no worker is loading: calibrate's k probes that must
    /// render together (the worker rule would serve them one after another on one worker).
    public var workersTogether = false

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
    public var servesWarm: Bool { options.warm != nil }
    public func isRendering(_ jobID: String) -> Bool { pool?.waitsForLoad(jobID) != true }
    var dispatcher: Dispatcher
    private var loads: [GPULoad]
    /// The GPUs' sizes, for the smallest waiting job's home (`Placer.homeGB`).
    private let cardSizes: [Double]
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
        var task: Task<Void, Never>?
    }
    private var held: [Int64: Held] = [:]
    /// Warm workers, once opened with a profile that has them.
    private var pool: WarmPool?
    /// Jobs admitted to an idle worker this round: job id to worker id, taken by `start`.
    private var assigned: [String: String] = [:]
    /// What a worker's own reservation is called in the GPUs' loads.
    private static let workerPrefix = "\u{1}worker:"

    public init(_ options: LocalExecutorOptions) {
        self.options = options
        self.gpus = options.gpus
        self.dispatcher = Dispatcher(placer: Placer(strategy: options.strategy, maxJobsPerGPU: options.maxJobsPerGPU, sharing: options.sharing,
                                                    coldStarts: options.warm == nil))
        self.loads = options.gpus.map { GPULoad(gpu: $0) }
        self.cardSizes = Placer.cardSizes(options.gpus)
        self.hostRAM = options.hostRAMGB ?? ProcFS.memTotalGB() ?? 0
    }

    public func describe() -> String {
        "\(gpus.count) GPU(s) [\(options.strategy.name)]" + (options.warm != nil ? ", warm workers" : "")
    }

    public func open(_ events: ExecutorEvents, runID: Int64) async throws {
        self.events = events
        if let profile = options.warm, let spec = profile.worker {
            pool = try WarmPool(profile: profile, spec: spec, runID: runID, events: events, graceSeconds: options.graceSeconds, ports: ports, groups: groups,
                                historyLoads: options.workerLoads,
                                together: options.workersTogether)
        }
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
        guard let pgid = ProcFS.leftoverGroup(a.processGroup, leader: a.pid, start: a.processStart, host: a.host) else { return }
        say("stopping leftover processes of \(a.jobID) (process group \(pgid))")
        await ProcFS.terminateGroup(pgid, graceSeconds: graceSeconds)
    }

    public func admit(_ queue: JobQueue, predictor: Predictor, now: Double) -> Admission {
        var admission = Admission()
        let depth = Dispatcher.waitingDepth(gpus: gpus.count)
        let matched = pool.map { matchIdleWorkers($0, queue: queue, predictor: predictor, now: now, depth: depth) } ?? [:]
        // What each running job has left before this round's placements stretch it (the worker rule's measure).
        let ends = Dictionary(loads.flatMap { l in l.occupants.map { ($0.jobID, $0.endS) } }, uniquingKeysWith: { a, _ in a })
        let requests = queue.requests(predictor).lazy.filter { matched[$0.request.jobID] == nil }
        let smallest = queue.smallestGB(predictor)
        // A cold job joins where S(k) merely holds only on cards of the smallest waiting job's home size (`Placer.holdsUpToGB`).
        dispatcher.placer.holdsUpToGB = Placer.homeGB(of: smallest, sizes: cardSizes)
        let round = dispatcher.round(queue: requests, loads: &loads, now: now, presorted: true, explain: false,
                                     maxWaiting: depth, smallestGB: smallest, queueCount: queue.count - matched.count)
        for (id, reason) in round.never.sorted(by: { $0.key < $1.key }) { admission.never.append((id, reason, true)) }
        var hostUsed = held.values.reduce(0) { $0 + $1.hostRAMGB }
        let reused = matched.keys.sorted().compactMap { id in loads.first { l in l.occupants.contains { $0.jobID == id } }.map { (id, $0.gpu.index) } }
        let fresh = options.workersTogether ? round.starts
            : pool.map { worthStarting($0, round.starts, matched: matched, ends: ends, queue: queue, predictor: predictor, now: now) } ?? round.starts
        for (id, gpuIndex) in reused + fresh {
            guard let e = queue.entry(id), let gpu = gpus.first(where: { $0.index == gpuIndex }) else { continue }
            let est = queue.estimate(e, predictor)
            if hostRAM > 0 && est.hostRAMGB > 0 && hostUsed + est.hostRAMGB > hostRAM {
                // The host, not the GPU, is full: release the GPU reservation and wait, or refuse when even an empty
                // host could not hold it.
                withdraw(jobID: id, gpu: gpuIndex, isolate: e.isolate, now: now)
                if est.hostRAMGB > hostRAM {
                    admission.never.append((id, String(format: "needs %.0f GB of host RAM (predicted), this machine has %.0f GB (--host-ram)",
                                                       est.hostRAMGB, hostRAM), false))
                }
                continue
            }
            hostUsed += est.hostRAMGB
            admission.starts.append((id, Placement(gpu: gpu)))
            if let w = matched[id] { assigned[id] = w }
        }
        if let pool { retireUnwanted(pool, queue: queue, predictor: predictor, depth: depth, matched: matched, admission: &admission) }
        return admission
    }

    /// Brings the GPUs' loads in line with the workers that hold memory without a request (idle ones hold their
    /// weights, exiting ones until their process is gone), then gives each idle worker the first queued job of its
    /// load settings that fits in its place. Returns job id to worker id; those jobs are placed in `loads`.
    private func matchIdleWorkers(_ pool: WarmPool, queue: JobQueue, predictor: Predictor, now: Double, depth: Int) -> [String: String] {
        let holdings = pool.holdings()
        for i in loads.indices {
            loads[i].occupants.removeAll { $0.jobID.hasPrefix(LocalExecutor.workerPrefix) }
            for h in holdings where h.gpu == loads[i].gpu.index {
                loads[i].occupants.append(Occupant(jobID: LocalExecutor.workerPrefix + h.id, memoryGB: h.gb, endS: now))
            }
        }
        var idle = holdings.filter(\.idle)
        var matched: [String: String] = [:]
        guard !idle.isEmpty else { return matched }
        for q in queue.requests(predictor).prefix(depth) {
            guard !idle.isEmpty else { break }
            guard let e = queue.entry(q.request.jobID) else { continue }
            let key = pool.key(e.settings)
            for (k, h) in idle.enumerated() where h.key == key && !pool.isCold(h.gpu) {
                guard let li = loads.firstIndex(where: { $0.gpu.index == h.gpu }) else { continue }
                // In the worker's place: its reservation gives way to the request's, which includes the weights.
                var trial = loads[li]
                trial.occupants.removeAll { $0.jobID == LocalExecutor.workerPrefix + h.id }
                guard case .place = dispatcher.placer.decide(q.request, loads: [trial], explain: false) else { continue }
                trial.occupants.append(Occupant(jobID: q.request.jobID, memoryGB: q.request.memoryGB, endS: now + q.request.seconds(on: trial.gpu)))
                if q.request.isolate { trial.isolated = true }
                loads[li] = trial
                matched[q.request.jobID] = h.id
                idle.remove(at: k)
                break
            }
        }
        return matched
    }

    /// The dispatcher's starts that are worth a new worker. A new worker pays a load before its first clip, so one
    /// starts only when it would finish that clip before the n workers of its load settings already coming (loading
    /// or rendering, on a GPU the clip fits) would finish their work without it: n x (load + the clip) < what they
    /// still have to render + the queued clips of those settings. Otherwise the clip waits for one of them. The first
    /// worker of its settings always starts, and so does a clip that needs a card to itself (an OOM retry). Queued
    /// clips are predicted as requests: without the part of the start-up that is the load (profile, calibration);
    /// what this batch measured is as it is.
    private func worthStarting(_ pool: WarmPool, _ starts: [(String, Int)], matched: [String: String], ends: [String: Double], queue: JobQueue,
                               predictor: Predictor, now: Double) -> [(String, Int)] {
        let coming = pool.coming()
        var request = predictor
        request.warm = true
        var workers: [String: [(gpu: Int, left: Double)]] = [:]
        for c in coming {
            // What it still has to render; the rest of a load counts for nothing (loads side by side overlap).
            let left = c.jobID.flatMap { ends[$0] }.map { max($0 - now, 0) } ?? 0
            workers[c.key, default: []].append((c.gpu, left))
        }
        // Idle workers given a clip this round are coming too, and so are idle ones not given one: a worker whose clip
        // just ended is idle before the session has taken that end (its clip still holds its place on the GPU, so it
        // could not be matched this round); it takes the next clip of its settings then, without a new load.
        let holdings = pool.holdings()
        for (job, worker) in matched {
            guard let h = holdings.first(where: { $0.id == worker }), let e = queue.entry(job) else { continue }
            let est = request.estimate(e.settings)
            workers[h.key, default: []].append((h.gpu, gpus.first { $0.index == h.gpu }.map { est.on($0).seconds } ?? est.seconds))
        }
        let given = Set(matched.values)
        for h in holdings where h.idle && !given.contains(h.id) && !pool.isCold(h.gpu) { workers[h.key, default: []].append((h.gpu, 0)) }
        var kept: [(String, Int)] = []
        var started = Set(matched.keys)
        for (id, gpuIndex) in starts {
            guard let e = queue.entry(id), !e.isolate else { kept.append((id, gpuIndex)); continue }
            let key = pool.key(e.settings)
            let need = queue.estimate(e, predictor).memoryGB
            let able = (workers[key] ?? []).filter { w in gpus.first { $0.index == w.gpu }.map { need <= $0.memoryGB } ?? false }
            let alone = request.estimate(e.settings)
            let own = gpus.first { $0.index == gpuIndex }.map { alone.on($0).seconds } ?? alone.seconds
            var worth = able.isEmpty
            if !worth {
                // Stop adding once the queued work is past the bar: a long queue costs a few estimates, not all of them.
                let bar = Double(able.count) * (pool.expectedLoad(key) + own) - able.reduce(0) { $0 + $1.left }
                var waiting = 0.0
                for q in queue.requests(predictor) where !started.contains(q.request.jobID) {
                    guard let other = queue.entry(q.request.jobID), pool.key(other.settings) == key else { continue }
                    waiting += request.estimate(other.settings).seconds
                    if waiting > bar { worth = true; break }
                }
            }
            if worth {
                kept.append((id, gpuIndex))
                started.insert(id)
                workers[key, default: []].append((gpuIndex, own))
            } else {
                withdraw(jobID: id, gpu: gpuIndex, isolate: e.isolate, now: now)
            }
        }
        return kept
    }

    /// Idle workers that no waiting job near the head of the queue wants are asked to exit while jobs wait, so their
    /// memory goes to workers of other settings; and when nothing runs and nothing started, every idle worker goes
    /// (the jobs waiting for them did not fit beside the others).
    private func retireUnwanted(_ pool: WarmPool, queue: JobQueue, predictor: Predictor, depth: Int, matched: [String: String],
                                admission: inout Admission) {
        let started = Set(admission.starts.map(\.jobID))
        let waiting = queue.requests(predictor).prefix(depth).filter { !started.contains($0.request.jobID) }
        guard !waiting.isEmpty else { return }
        let keyed = waiting.compactMap { q in queue.entry(q.request.jobID).map { (request: q.request, key: pool.key($0.settings)) } }
        let wanted = Set(keyed.map(\.key))
        let used = Set(matched.values)
        let stalled = admission.starts.isEmpty && held.isEmpty
        var served = Set<String>()
        for h in pool.holdings() where h.idle && !used.contains(h.id) {
            if stalled {
                pool.retire(h.id, note: "the clips waiting do not fit beside it")
                continue
            }
            guard !wanted.contains(h.key), let li = loads.firstIndex(where: { $0.gpu.index == h.gpu }) else { continue }
            // Only for a waiting clip of other settings that its leaving would let start on this GPU.
            var without = loads[li]
            without.occupants.removeAll { $0.jobID == LocalExecutor.workerPrefix + h.id }
            let placer = dispatcher.placer
            func fits(_ r: PlacementRequest) -> Bool {
                if case .place = placer.decide(r, loads: [without], explain: false) { return true }
                return false
            }
            guard let taker = keyed.first(where: { !served.contains($0.request.jobID) && fits($0.request) }) else { continue }
            served.insert(taker.request.jobID)
            pool.retire(h.id, note: "\(taker.request.jobID) needs its place for other load settings (\(taker.key))")
        }
        // Memory held by workers on their way out frees when they are gone: the session waits for that.
        if pool.holdings().contains(where: { !$0.idle }) { admission.awaiting = true }
    }

    private func release(jobID: String, gpu: Int, isolate: Bool) {
        guard let li = loads.firstIndex(where: { $0.gpu.index == gpu }) else { return }
        loads[li].occupants.removeAll { $0.jobID == jobID }
        if isolate { loads[li].isolated = false }
    }

    /// Takes back a placement made this round and not started: the jobs it would have shared the GPU with get back the
    /// ends they had without its company (the dispatcher moved them out when it placed it). Without this, a clip
    /// placed and withdrawn round after round pushed its neighbours' predicted ends out each time, until a new worker
    /// looked worth its load (measured on an H200: a second Live Avatar worker for a 21 s clip).
    private func withdraw(jobID: String, gpu: Int, isolate: Bool, now: Double) {
        guard let li = loads.firstIndex(where: { $0.gpu.index == gpu }), loads[li].occupants.contains(where: { $0.jobID == jobID }) else { return }
        release(jobID: jobID, gpu: gpu, isolate: isolate)
        let k = loads[li].occupants.count
        guard k > 0 else { return }
        let sharing = dispatcher.placer.sharing
        let shrink = sharing.perJobRate(k + 1) / sharing.perJobRate(k)
        for o in loads[li].occupants.indices { loads[li].occupants[o].endS = now + (loads[li].occupants[o].endS - now) * shrink }
    }

    public func start(_ launch: AttemptLaunch) async throws {
        guard let gpu = launch.placement.gpu, let events else { throw ExecutorError.launch("the local executor needs a GPU and to be opened") }
        let workerID = assigned.removeValue(forKey: launch.attempt.jobID)
        if let pool, !pool.isCold(gpu.index) {
            try startWarm(launch, gpu: gpu, pool: pool, workerID: workerID, events: events)
            return
        }
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

    /// A request to a warm worker: the idle one admission chose, else a new worker started for it.
    private func startWarm(_ launch: AttemptLaunch, gpu: GPU, pool: WarmPool, workerID: String?, events: ExecutorEvents) throws {
        var l = launch
        l.plan.gpu = gpu
        l.plan.inheritDevices = false
        let attempt = launch.attempt, id = attempt.jobID
        let key = "\(id)#\(attempt.number)"
        memory.begin(key, gpu: gpu.index)
        let e = launch.estimate
        let reused = workerID.map { pool.assign(l, to: $0) } ?? false
        events.post(.say("start \(id) on GPU \(gpu.index) (attempt \(attempt.number), \(String(format: "%.1f", e.memoryGB)) GB, "
            + (reused ? "warm worker \(workerID!)" : "new worker") + (launch.change.isEmpty ? "" : "; " + launch.change) + ")"))
        // A new worker's memory is the request's reservation until it is ready: the whole peak, weights included.
        if !reused { try pool.spawn(l, gpu: gpu) }
        held[attempt.id] = Held(jobID: id, gpu: gpu.index, port: 0, isolate: launch.isolate, hostRAMGB: e.hostRAMGB, key: key, task: nil)
    }

    public func settle(_ ended: EndedAttempt) -> AttemptResult {
        var result = ended.result
        guard let h = held.removeValue(forKey: ended.attemptID) else { return result }
        release(jobID: h.jobID, gpu: h.gpu, isolate: h.isolate)
        if h.port > 0 { ports.release(h.port) }
        result.sampledPeakGB = memory.end(h.key)
        return result
    }

    public func stopAll() async {
        // SIGTERM every group now; cancelling each attempt's task then stops its group (SIGTERM, then SIGKILL after
        // the grace period) and reports it interrupted.
        groups.signalAll(SIGTERM)
        for h in held.values { h.task?.cancel() }
        pool?.stopAll()
    }

    public func abortNow() -> String {
        groups.killAll()
        pool?.killAll()
        return "killed running jobs; run the same command again to resume"
    }

    /// Stops the sampler; attempts still running (the session stopped on an error) are stopped and waited for, so
    /// no renderer outlives the orchestrator's run.
    public func close() async -> [Int: Double] {
        sampler?.cancel()
        for h in held.values { h.task?.cancel() }
        for h in held.values { await h.task?.value }
        await pool?.close()
        held.removeAll()
        return memory.peaks
    }
}
