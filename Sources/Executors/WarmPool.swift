import Checkpoint
import Foundation
import Manifest
import Scheduler
#if canImport(Glibc)
import Glibc
#endif

/// The local executor's warm workers (docs/workers.md): one long-lived renderer process per GPU slot that loads the
/// model once and renders one clip per request over the worker protocol.
///
/// Every request is an attempt the session recorded, ended exactly once through `ExecutorEvents` like a cold one:
/// `done` (its output then validated and renamed as a cold attempt's), `failed` (an OOM restarts the worker), or
/// the worker's death, hang (the clip's timeout), garbage on its socket, or silence past `ready_timeout`, each of
/// which kills the worker's process group. A GPU whose workers die `max_deaths` times in a row with nothing served
/// runs the renderer cold from then on.
///
/// State is guarded by one lock: the session's task asks (`idle`, `assign`, `spawn`, `retire`), and each worker's
/// socket thread and process task report.
final class WarmPool: @unchecked Sendable {
    /// Why the orchestrator stopped a worker, which decides how a request it held ends.
    enum Kill: Sendable {
        case exitAsked, stopped, timeout(Double), garbage(String), readyTimeout(Double), socketClosed(String)
    }

    enum Phase: Sendable { case loading, idle, busy, exiting }

    struct Request {
        var attemptID: Int64
        var jobID: String
        var plan: AttemptPlan
        var temp: String
        /// Where the worker's log stood when the request was handed over (its lines from here are the attempt's).
        var logOffset: UInt64
        var sentAt: Date?
        var timer: Task<Void, Never>?
    }

    final class Worker: @unchecked Sendable {
        let id: String
        let gpu: GPU
        let key: String
        let residentGB: Double
        let logPath: String
        let port: Int
        let channel: WorkerChannel
        let started = Date()
        var phase = Phase.loading
        var pid: Int32?
        var request: Request?
        var served = 0
        var kill: Kill?
        var task: Task<Void, Never>?
        var readyTimer: Task<Void, Never>?

        init(id: String, gpu: GPU, key: String, residentGB: Double, logPath: String, port: Int, channel: WorkerChannel) {
            self.id = id
            self.gpu = gpu
            self.key = key
            self.residentGB = residentGB
            self.logPath = logPath
            self.port = port
            self.channel = channel
        }
    }

    /// What admission sees of a worker that holds GPU memory without a request of its own.
    struct Holding: Sendable {
        var id: String
        var gpu: Int
        var key: String
        var gb: Double
        var idle: Bool
    }

    let profile: RendererProfile
    let spec: WorkerSpec
    let runID: Int64
    let events: ExecutorEvents
    let graceSeconds: Double
    let ports: PortAllocator
    let groups: GroupRegistry
    private let socketDir: String
    private let lock = NSLock()
    private var workers: [String: Worker] = [:]
    /// Loads measured in this batch (start to ready), by load-settings key, for the next worker's expected load.
    private var measuredLoads: [String: [Double]] = [:]
    /// Each load-settings group's expected load from the history (`LocalExecutorOptions.workerLoads`).
    let historyLoads: [String: Double]
    private var deaths: [Int: Int] = [:]
    private var cold: Set<Int> = []
    private var count = 0

    /// Requests go out only once no worker is loading (calibrate's k-together probes: each on a worker of its own,
    /// rendering at the same time, or S(k) measures loads and queues instead of sharing).
    let together: Bool

    init(profile: RendererProfile, spec: WorkerSpec, runID: Int64, events: ExecutorEvents, graceSeconds: Double, ports: PortAllocator,
         groups: GroupRegistry, historyLoads: [String: Double] = [:], together: Bool = false) throws {
        self.together = together
        self.historyLoads = historyLoads
        self.profile = profile
        self.spec = spec
        self.runID = runID
        self.events = events
        self.graceSeconds = graceSeconds
        self.ports = ports
        self.groups = groups
        // Sockets live in a private folder with a short path (a Unix socket path has at most 107 bytes).
        var template = Array((NSTemporaryDirectory() + "avatar-batch-workers-XXXXXX").utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw ExecutorError.launch("cannot create a folder for worker sockets: \(String(cString: strerror(errno)))")
        }
        socketDir = String(cString: made)
    }

    /// The load settings' values for these settings: a request goes only to a worker with the same key.
    func key(_ s: ClipSettings) -> String { profile.workerKey(s) }

    func isCold(_ gpu: Int) -> Bool { lock.withLock { cold.contains(gpu) } }

    /// A worker that will be free for another request of its settings: loading or rendering, not on its way out and
    /// not on a GPU gone cold. `jobID`: the request it holds.
    struct Coming: Sendable {
        var key: String
        var gpu: Int
        var jobID: String?
    }

    func coming() -> [Coming] {
        lock.withLock {
            workers.values.filter { ($0.phase == .loading || $0.phase == .busy) && $0.kill == nil && !cold.contains($0.gpu.index) }.map {
                Coming(key: $0.key, gpu: $0.gpu.index, jobID: $0.request?.jobID)
            }
        }
    }

    /// What a new worker of load settings `key` is expected to take to load (`Learning.expectedLoad`).
    func expectedLoad(_ key: String) -> Double {
        lock.withLock {
            Learning.expectedLoad(key, measured: measuredLoads, history: historyLoads, otherwise: profile.workerLoadSeconds,
                                  firstRequest: profile.worker?.firstRequestSeconds ?? 0)
        }
    }

    /// Workers holding GPU memory beyond their requests' reservations: idle ones (their weights), and ones on their
    /// way out (until their process is gone).
    func holdings() -> [Holding] {
        lock.withLock {
            workers.values.filter { $0.request == nil }.map {
                Holding(id: $0.id, gpu: $0.gpu.index, key: $0.key, gb: $0.residentGB, idle: $0.phase == .idle)
            }
        }
    }

    /// Whether `jobID`'s request waits for its worker to load (it is not rendering yet).
    func waitsForLoad(_ jobID: String) -> Bool {
        lock.withLock { workers.values.contains { $0.request?.jobID == jobID && $0.request?.sentAt == nil } }
    }

    /// Workers busy with a request or loading for one.
    var busyCount: Int { lock.withLock { workers.values.filter { $0.request != nil }.count } }

    /// Live workers, for the progress line.
    var liveCount: Int { lock.withLock { workers.count } }

    // MARK: requests

    /// Hands an attempt to an idle worker. False when the worker is no longer idle (the caller starts one).
    func assign(_ launch: AttemptLaunch, to workerID: String) -> Bool {
        lock.lock()
        guard let w = workers[workerID], w.phase == .idle, w.request == nil else { lock.unlock(); return false }
        w.request = makeRequest(launch)
        lock.unlock()
        if let pid = w.pid { events.record(launch.attempt.id, .process(pid: pid, start: ProcFS.startTime(of: pid) ?? 0, group: pid)) }
        events.record(launch.attempt.id, .worker(w.id))
        send(w)
        return true
    }

    /// Starts a worker on `gpu` for this attempt; the request is sent once it says ready.
    func spawn(_ launch: AttemptLaunch, gpu: GPU) throws {
        let plan = launch.plan
        let logsDir = (plan.logPath as NSString).deletingLastPathComponent + "/workers"
        let workRoot = ((plan.workdir as NSString).deletingLastPathComponent as NSString).deletingLastPathComponent + "/workers"
        let (id, socketPath): (String, String) = lock.withLock {
            count += 1
            return ("\(self.runID).\(count)", socketDir + "/\(count).sock")
        }
        let workdir = workRoot + "/" + id
        let fm = FileManager.default
        try fm.createDirectory(atPath: logsDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try fm.createDirectory(atPath: workdir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let channel = try WorkerChannel(path: socketPath)
        let s = plan.settings
        let w = Worker(id: id, gpu: gpu, key: key(s), residentGB: profile.workerResidentGB(s), logPath: logsDir + "/\(id).log",
                       port: ports.take(), channel: channel)
        w.request = makeRequest(launch)

        let inherited = ProcessInfo.processInfo.environment
        var env = inherited
        for (k, v) in profile.env { env[k] = v }
        for (k, v) in spec.env { env[k] = v }
        env["CUDA_VISIBLE_DEVICES"] = gpu.uuid.hasPrefix("virtual-") ? String(gpu.index) : gpu.uuid
        env["AVATAR_BATCH_GPU_UUID"] = gpu.uuid
        env["MASTER_PORT"] = String(w.port)
        env[WorkerProtocol.socketVariable] = socketPath
        env["AVATAR_BATCH_WORKER_ID"] = id
        var values: [String: String] = [
            "profile_dir": profile.directory.isEmpty ? plan.manifestDirectory : profile.directory, "workdir": workdir,
            "master_port": String(w.port), "gpu": String(gpu.index),
        ]
        let settingValues = s.placeholderValues(frame: profile.renderedFrame(s))
        for name in spec.loadSettings { values[name] = settingValues[name] }
        for (k, v) in inherited { values["env." + k] = v }
        let flags = ["online_decode": s.onlineDecode, "offload_model": s.offloadModel, "fp8": s.fp8]
            .filter { spec.loadSettings.contains($0.key) }
        let argv = ArgvTemplate.expand(spec.command, values: values, flags: flags, extraArgs: [])
        let launchSpec = LaunchSpec(argv: argv, environment: env, workdir: workdir, logPath: w.logPath, timeoutSeconds: nil,
                                    graceSeconds: graceSeconds, logCapBytes: plan.logCapBytes)

        lock.withLock { workers[id] = w }
        events.post(.say("worker \(id) starting on GPU \(gpu.index)" + (w.key.isEmpty ? "" : " (\(w.key))") + " for \(launch.attempt.jobID)"))
        let attemptID = launch.attempt.id
        let groups = self.groups, events = self.events, run = self.runID, renderer = profile.name, key = w.key
        w.task = Task { [self] in
            var outcome: LaunchOutcome?
            var failure: String?
            do {
                outcome = try await LocalLauncher.run(launchSpec) { pid, start in
                    groups.add(pid)
                    self.launched(id, pid: pid)
                    events.record(WorkerFact.started(WorkerRecord(
                        id: id, runID: run, host: ProcFS.hostname, gpu: gpu.index, gpuUUID: gpu.uuid, renderer: renderer, loadSettings: key,
                        pid: pid, processStart: start, logPath: w.logPath, startedAt: Date().timeIntervalSince1970)))
                    events.record(attemptID, .process(pid: pid, start: start, group: pid))
                    events.record(attemptID, .worker(id))
                }
            } catch {
                failure = "cannot start \(argv.first ?? "the worker"): \(error)"
            }
            if let pid = outcome?.pid, pid > 0 { groups.remove(pid) }
            self.ended(id, outcome: outcome, failure: failure)
        }
        // The socket is read only once the process task exists, so whatever the worker says can stop it.
        channel.start(onLine: { [weak self] line in self?.heard(line, from: id) },
                      onClose: { [weak self] why in self?.channelClosed(id, why: why) })
        let timeout = spec.readyTimeoutSeconds
        w.readyTimer = Task { [weak self] in
            try? await Task.sleep(for: .seconds(timeout))
            guard !Task.isCancelled else { return }
            self?.stop(id, because: .readyTimeout(timeout), onlyIf: { $0.phase == .loading })
        }
    }

    /// A request not yet sent: its log slice starts at the log's start (a worker that dies while loading for it shows
    /// its whole load); `send` moves it to where the log stands when it is handed over.
    private func makeRequest(_ launch: AttemptLaunch) -> Request {
        Request(attemptID: launch.attempt.id, jobID: launch.attempt.jobID, plan: launch.plan, temp: AttemptRunner.temporaryOutput(launch.plan),
                logOffset: 0)
    }

    private func launched(_ id: String, pid: Int32) {
        lock.withLock { workers[id]?.pid = pid }
    }

    /// With `together`: the loaded workers whose requests wait, once no worker is loading any more (else none). Called
    /// with the lock held.
    private func heldUntilAllLoaded() -> [Worker] {
        guard !workers.values.contains(where: { $0.phase == .loading && $0.kill == nil }) else { return [] }
        return workers.values.filter { $0.phase != .loading && $0.kill == nil && $0.request != nil && $0.request?.sentAt == nil }
    }

    /// Sends the worker its request (it is idle or just became ready).
    private func send(_ w: Worker) {
        lock.lock()
        guard var r = w.request else { lock.unlock(); return }
        w.phase = .busy
        let fm = FileManager.default
        try? fm.removeItem(atPath: r.temp)
        try? fm.createDirectory(atPath: (r.temp as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try? fm.createDirectory(atPath: r.plan.workdir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try? fm.createDirectory(atPath: (r.plan.logPath as NSString).deletingLastPathComponent, withIntermediateDirectories: true,
                                attributes: [.posixPermissions: 0o700])
        if !fm.fileExists(atPath: r.plan.logPath) { fm.createFile(atPath: r.plan.logPath, contents: nil, attributes: [.posixPermissions: 0o600]) }
        r.logOffset = (try? fm.attributesOfItem(atPath: w.logPath)[.size] as? UInt64) ?? r.logOffset
        r.sentAt = Date()
        let id = w.id, attemptID = r.attemptID
        if let timeout = r.plan.timeoutSeconds {
            r.timer = Task { [weak self] in
                try? await Task.sleep(for: .seconds(timeout))
                guard !Task.isCancelled else { return }
                self?.stop(id, because: .timeout(timeout), onlyIf: { $0.request?.attemptID == attemptID })
            }
        }
        w.request = r
        let request = WorkerRequest.render(job: r.jobID, attempt: r.plan.number, output: r.temp, settings: AttemptRunner.requestSettings(r.plan))
        lock.unlock()
        AttemptRunner.appendToLog(r.plan.logPath, "avatar-batch: served by warm worker \(id) on GPU \(w.gpu.index); the worker's log: \(w.logPath)")
        if !w.channel.send(request) {
            stop(id, because: .socketClosed("the request could not be written to its socket"), onlyIf: { _ in true })
        }
    }

    // MARK: what workers say

    private func heard(_ line: WorkerChannel.Incoming, from id: String) {
        lock.lock()
        guard let w = workers[id], w.kill == nil else { lock.unlock(); return }
        switch line {
        case let .garbage(bytes, why):
            lock.unlock()
            AttemptRunner.appendToLog(w.logPath, "avatar-batch: the worker wrote garbage to its socket (\(why)): \(Self.printable(bytes))")
            stop(id, because: .garbage(why), onlyIf: { _ in true })
        case let .message(.ready(pid, load, resident)):
            guard w.phase == .loading else {
                lock.unlock()
                stop(id, because: .garbage("\"ready\" from a worker that is not loading"), onlyIf: { _ in true })
                return
            }
            w.readyTimer?.cancel()
            // A worker that loaded for a request is busy with it from now: between here and `send` an admission round
            // must not see a worker that is neither coming nor idle (it would start another for the next clip).
            w.phase = w.request != nil ? .busy : .idle
            let loaded = load ?? Date().timeIntervalSince(w.started)
            measuredLoads[w.key, default: []].append(loaded)
            let due = together ? heldUntilAllLoaded() : (w.request != nil ? [w] : [])
            lock.unlock()
            events.record(.ready(id: id, loadSeconds: loaded, residentGB: resident, gpuModel: Learning.modelKey(w.gpu), loadSettings: w.key))
            events.post(.say("worker \(id) ready on GPU \(w.gpu.index) (pid \(pid), loaded in \(String(format: "%.1f s", loaded))"
                + (resident.map { String(format: ", %.1f GB resident", $0) } ?? "") + ")"))
            for held in due { send(held) }
            // Admit again: an idle worker takes a clip, a request now renders (it shares its GPU from now on).
            events.post(.changed)
        case let .message(answer):
            // done or failed: only for the request the worker was sent.
            guard let job = answer.job, let r = w.request, r.sentAt != nil, r.jobID == job else {
                lock.unlock()
                stop(id, because: .garbage("\"\(answer.event)\" for \(answer.job ?? "?"), which it was not asked to render"), onlyIf: { _ in true })
                return
            }
            r.timer?.cancel()
            w.request = nil
            w.served += 1
            if w.phase == .busy { w.phase = .idle }
            if case .done = answer { deaths[w.gpu.index] = 0 }
            lock.unlock()
            events.record(.served(id: id))
            answered(answer, r, worker: w)
        }
    }

    /// Ends the attempt an answer closes: `done` once its output is validated (the worker's log lines are taken now,
    /// before it can be handed its next request); `failed` at once, an OOM restarting the worker.
    private func answered(_ answer: WorkerMessage, _ r: Request, worker w: Worker) {
        switch answer {
        case let .done(_, peak, seconds):
            let first = WarmPool.result(.crashed, r, worker: w, peak: peak, seconds: seconds)
            Task { [events] in
                var result = first
                await AttemptRunner.acceptOutput(r.plan, temp: r.temp, into: &result)
                AttemptRunner.conclude(r.plan, temp: r.temp, result: &result)
                events.post(.ended(EndedAttempt(jobID: r.jobID, attemptID: r.attemptID, result: result)))
            }
        case let .failed(_, error, oom, peak, seconds):
            var result = WarmPool.result(oom ? .oom : .crashed, r, worker: w, peak: peak, seconds: seconds)
            result.note = (oom ? "the worker ran out of GPU memory" : "the worker failed the request") + (error.isEmpty ? "" : ": \(Self.oneLine(error))")
            if oom {
                result.oom = OOMReport.parse(error + "\n" + result.stderrTail)
                // Its allocator is suspect after an OOM: the next request gets a fresh worker.
                retire(w.id, note: "restarted after an out-of-memory request")
            }
            AttemptRunner.appendToLog(r.plan.logPath, "avatar-batch: \(result.classification.rawValue): \(result.note ?? "")")
            AttemptRunner.conclude(r.plan, temp: r.temp, result: &result)
            events.post(.ended(EndedAttempt(jobID: r.jobID, attemptID: r.attemptID, result: result)))
        case .ready:
            break
        }
    }


    private func channelClosed(_ id: String, why: String) {
        // The worker closed its socket (it is exiting, or broke): whatever it holds cannot be answered any more.
        // A worker that dies closes its socket a moment before its exit is seen: give the exit two seconds to arrive,
        // so the attempt says how it died; one still there after that has broken its side of the protocol.
        guard why != "closed" else { return }
        Task { [self] in
            try? await Task.sleep(for: .seconds(2))
            self.stop(id, because: .socketClosed(why), onlyIf: { $0.kill == nil })
        }
    }

    // MARK: stopping

    /// Asks an idle worker to exit (its GPU memory is wanted for other settings, or the batch is done); its process
    /// group is stopped if it has not gone after the grace period.
    func retire(_ id: String, note: String) {
        let w: Worker? = lock.withLock {
            guard let w = workers[id], w.kill == nil else { return nil }
            w.kill = .exitAsked
            w.phase = .exiting
            return w
        }
        guard let w else { return }
        events.post(.say("worker \(id) on GPU \(w.gpu.index) exits: \(note)"))
        w.channel.send(.exit)
        let grace = graceSeconds
        Task {
            try? await Task.sleep(for: .seconds(max(grace, 5)))
            w.channel.close()
            w.task?.cancel()
        }
    }

    /// Kills a worker's process group for `reason` when `onlyIf` still holds; its request ends when the process does.
    func stop(_ id: String, because reason: Kill, onlyIf: (Worker) -> Bool) {
        let w: Worker? = lock.withLock {
            guard let w = workers[id], w.kill == nil, onlyIf(w) else { return nil }
            w.kill = reason
            w.phase = .exiting
            return w
        }
        guard let w else { return }
        switch reason {
        case let .timeout(s): events.post(.say("worker \(id): no answer within the clip's timeout of \(Int(s)) s; killing its process group"))
        case let .garbage(why): events.post(.say("worker \(id) broke the protocol (\(why)); killing it"))
        case let .readyTimeout(s): events.post(.say("worker \(id) did not say ready within \(Int(s)) s; killing it"))
        case let .socketClosed(why): events.post(.say("worker \(id): \(why); killing it"))
        case .exitAsked, .stopped: break
        }
        w.channel.close()
        // Cancelling the launcher's task sends SIGTERM to the whole group, then SIGKILL after the grace period.
        if let pid = w.pid { ProcFS.signalGroup(pid, SIGTERM) }
        w.task?.cancel()
    }

    /// The worker's process is gone: end the request it held, free what it held, count a death.
    private func ended(_ id: String, outcome: LaunchOutcome?, failure: String?) {
        lock.lock()
        guard let w = workers.removeValue(forKey: id) else { lock.unlock(); return }
        w.readyTimer?.cancel()
        w.request?.timer?.cancel()
        let kill = w.kill
        let request = w.request
        let wasLoading = w.phase == .loading || (w.phase == .exiting && request?.sentAt == nil && w.served == 0)
        var counted = false
        // A death counts against the GPU when it cost a clip (it held a request) or a load; a worker that served
        // and then went away while idle (it may exit on purpose, to shed memory) does not.
        switch kill {
        case .exitAsked?, .stopped?, .timeout?: break
        default:
            if request != nil || w.served == 0 {
                deaths[w.gpu.index, default: 0] += 1
                counted = true
            }
        }
        let deathsHere = deaths[w.gpu.index] ?? 0
        var fallBack = false
        if counted && deathsHere >= spec.maxDeaths && !cold.contains(w.gpu.index) {
            cold.insert(w.gpu.index)
            fallBack = true
        }
        // The last of the loading workers may be this one: the others' requests wait for nothing now.
        let due = together ? heldUntilAllLoaded() : []
        lock.unlock()
        for held in due { send(held) }
        w.channel.close()
        ports.release(w.port)

        let exit = outcome.map { o in o.signal.map { "signal \($0)" } ?? "exit \(o.exitCode ?? -1)" } ?? "not started"
        let note: String
        switch kill {
        case .exitAsked?: note = "exited when asked (\(exit))"
        case .stopped?: note = "stopped with the run (\(exit))"
        case let .timeout(s)?: note = "killed: a request ran past its timeout of \(Int(s)) s"
        case let .garbage(why)?: note = "killed: it broke the protocol (\(why))"
        case let .readyTimeout(s)?: note = "killed: not ready within \(Int(s)) s"
        case let .socketClosed(why)?: note = "killed: \(why)"
        case nil: note = failure ?? "died \(wasLoading ? "while loading" : request == nil ? "while idle" : "mid-request") (\(exit))"
        }
        events.record(.ended(id: id, note: note))
        if kill == nil || counted { events.post(.say("worker \(id) on GPU \(w.gpu.index): \(note)")) }
        if fallBack {
            events.post(.say("GPU \(w.gpu.index): \(deathsHere) workers died in a row without finishing a clip; \(profile.name) runs cold on it from now on"))
        }
        if let r = request {
            var result = WarmPool.result(.crashed, r, worker: w, peak: nil, seconds: r.sentAt.map { Date().timeIntervalSince($0) })
            result.exitCode = outcome?.exitCode
            result.signal = outcome?.signal
            result.leftovers = outcome?.leftovers ?? []
            switch kill {
            case .stopped?:
                result.classification = .interrupted
            case let .timeout(s)?:
                result.classification = .timeout
                result.note = "ran past its timeout of \(Int(s)) s; the worker's process group was killed"
            case let .garbage(why)?:
                result.note = "the worker broke the protocol (\(why)) and was killed; the bytes are in its log, \(w.logPath)"
            case let .readyTimeout(s)?:
                result.note = "the worker did not say ready within \(Int(s)) s (ready_timeout) and was killed"
            case let .socketClosed(why)?:
                result.note = "the worker's socket failed (\(why)) and it was killed"
            case .exitAsked?, nil:
                let end = ProcessEnd(exitCode: outcome?.exitCode, signal: outcome?.signal, stoppedByUs: false, timedOut: false,
                                     timeoutSeconds: nil, logTail: result.stderrTail)
                if let c = EndClassifier.process(end, oomPatterns: profile.oomPatterns) {
                    result.classification = c.classification == .killed ? .crashed : c.classification
                    result.oom = c.oom
                }
                result.note = failure ?? "the worker died \(r.sentAt == nil ? "while loading" : "mid-request") (\(exit))"
            }
            AttemptRunner.appendToLog(r.plan.logPath, "avatar-batch: \(result.classification.rawValue): \(result.note ?? "")")
            AttemptRunner.conclude(r.plan, temp: r.temp, result: &result)
            events.post(.ended(EndedAttempt(jobID: r.jobID, attemptID: r.attemptID, result: result)))
        }
        events.post(.changed)
    }

    /// First Ctrl-C: stop every worker; requests they hold end interrupted.
    func stopAll() {
        for id in lock.withLock({ Array(workers.keys) }) { stop(id, because: .stopped, onlyIf: { _ in true }) }
    }

    /// Second Ctrl-C: SIGKILL every worker's group now.
    func killAll() {
        for w in lock.withLock({ Array(workers.values) }) { if let pid = w.pid { ProcFS.signalGroup(pid, SIGKILL) } }
    }

    /// The run is over: every worker is asked to exit, stopped after the grace period, and waited for.
    func close() async {
        let all = lock.withLock { Array(workers.values) }
        for w in all {
            let idle = lock.withLock { w.request == nil && w.kill == nil }
            if idle { retire(w.id, note: "the batch is done") } else { stop(w.id, because: .stopped, onlyIf: { _ in true }) }
        }
        for w in all { await w.task?.value }
        try? FileManager.default.removeItem(atPath: socketDir)
    }

    // MARK: results

    /// A result for a request, with the worker's log lines written since it was handed over copied into the
    /// attempt's log (so `avatar-batch logs` and the OOM patterns see them).
    static func result(_ c: AttemptClassification, _ r: Request, worker w: Worker, peak: Double?, seconds: Double?) -> AttemptResult {
        let slice = AttemptRunner.logTail(w.logPath, bytes: 1 << 20, from: r.logOffset)
        if !slice.isEmpty { AttemptRunner.appendToLog(r.plan.logPath, slice.hasSuffix("\n") ? String(slice.dropLast()) : slice) }
        var result = AttemptResult(classification: c, exitCode: nil, signal: nil, seconds: seconds ?? r.sentAt.map { Date().timeIntervalSince($0) } ?? 0,
                                   stderrTail: AttemptRunner.lastLines(slice, 30), oom: nil, reportedPeakGB: peak, outputDigest: nil, note: nil,
                                   leftovers: [])
        result.worker = w.id
        return result
    }

    static func printable(_ bytes: Data) -> String {
        let text = String(decoding: bytes.prefix(512), as: UTF8.self)
        return text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? "\\u{\(String($0.value, radix: 16))}" : String($0) }.joined()
            + (bytes.count > 512 ? "... (\(bytes.count) bytes)" : "")
    }

    static func oneLine(_ text: String) -> String {
        let lines = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        return String((lines.last ?? "").prefix(400))
    }
}
