import Manifest

/// One job's planned run.
public struct PlannedRun: Sendable, Hashable, Codable {
    public var jobID: String
    public var gpu: Int
    public var startS: Double
    public var endS: Double
    public var memoryGB: Double
}

/// A job that fits no GPU, with the reason and the settings that would fit.
public struct Unplaceable: Sendable, Hashable, Codable {
    public var jobID: String
    public var reason: String
    /// e.g. "with online_decode: true it needs 18.5 GB".
    public var suggestion: String?
    /// `FILE:LINE` of the clip.
    public var location: String
}

/// The simulated schedule of a batch.
public struct Plan: Sendable, Codable {
    public var gpus: [GPU]
    public var runs: [PlannedRun]
    public var unplaceable: [Unplaceable]
    public var makespanS: Double
    public var lowerBoundS: Double
    /// Why jobs waited, first reason seen for each.
    public var waits: [String: String]
    /// Estimates per job.
    public var estimates: [String: Estimate]
    public var strategy: String

    /// makespan / lower bound (1.0 is optimal).
    public var ratio: Double { lowerBoundS > 0 ? makespanS / lowerBoundS : 1 }
}

/// A job end on one GPU; stale when the GPU's version moved on.
struct Event {
    var time: Double
    var gpu: Int
    var version: Int
}

/// A binary min-heap of events by time.
struct EventHeap {
    private var items: [Event] = []

    /// Earlier first; at the same time, the lower GPU first (so plans never depend on hash-table order).
    static func before(_ a: Event, _ b: Event) -> Bool { a.time < b.time || (a.time == b.time && a.gpu < b.gpu) }

    mutating func push(_ e: Event) {
        items.append(e)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            if !Self.before(items[i], items[parent]) { break }
            items.swapAt(parent, i)
            i = parent
        }
    }

    mutating func pop() -> Event? {
        guard !items.isEmpty else { return nil }
        items.swapAt(0, items.count - 1)
        let top = items.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < items.count && Self.before(items[l], items[m]) { m = l }
            if r < items.count && Self.before(items[r], items[m]) { m = r }
            if m == i { break }
            items.swapAt(i, m)
            i = m
        }
        return top
    }
}

/// The planner's waiting jobs, in dispatch order: a minimum tree over their memory, so that a round finds the next job
/// it may not pass over (`PassOver`) without reading those it may, and a started job leaves in O(log n). A job that a
/// round always looks at counts as needing no memory; a job gone, as needing infinitely much. Within a priority the
/// jobs run longest first, so those short enough to end before a reservation are each priority's last ones.
struct WaitingJobs {
    let jobs: [QueuedJob]
    /// Each job's figure, by position.
    private var least: MinTree
    /// Each priority's positions, in order.
    private let priorities: [Range<Int>]

    init(_ jobs: [QueuedJob], largestGB: Double) {
        self.jobs = jobs
        least = MinTree(count: jobs.count) { PassOver.mayPass(jobs[$0].request, largestGB: largestGB) ? jobs[$0].request.memoryGB : -Double.infinity }
        var blocks: [Range<Int>] = []
        var from = 0
        for i in jobs.indices where i + 1 == jobs.count || jobs[i + 1].priority != jobs[i].priority {
            blocks.append(from..<(i + 1))
            from = i + 1
        }
        priorities = blocks
    }

    func isWaiting(_ p: Int) -> Bool { least.value(p) < .infinity }

    mutating func remove(at p: Int) { least.set(p, .infinity) }

    /// The first waiting job at or after position `p` whose figure is at most `limit`.
    func first(from p: Int, atMost limit: Double) -> Int? { least.first(from: p, atMost: limit) }

    /// The first waiting job at or after position `p` that `passing` does not pass over.
    func first(from p: Int, passing: PassOver?) -> Int? {
        guard let passing else { return first(from: p, atMost: .greatestFiniteMagnitude) }
        // Within the room of some GPU no job reserved (or always looked at)...
        var best = first(from: p, atMost: passing.roomGB)
        // ... or within a reserved GPU's room and short enough to end there: in each priority, its shortest jobs.
        if passing.reservedRoomGB > passing.roomGB && passing.reservedSeconds > -.infinity {
            for block in priorities where block.upperBound > p && block.lowerBound < (best ?? jobs.count) {
                var lo = max(block.lowerBound, p), hi = block.upperBound
                while lo < hi {
                    let mid = (lo + hi) / 2
                    if jobs[mid].request.seconds > passing.reservedSeconds { lo = mid + 1 } else { hi = mid }
                }
                if lo < block.upperBound, let q = first(from: lo, atMost: passing.reservedRoomGB), q < block.upperBound {
                    best = min(best ?? q, q)
                }
            }
        }
        return best
    }

    /// What a dispatch round reads: the jobs from the start, passing over those it says it may.
    struct Reader: RoundQueue {
        let jobs: WaitingJobs
        var at = 0

        init(jobs: WaitingJobs) { self.jobs = jobs }

        mutating func next(passing: PassOver?) -> QueuedJob? {
            guard let p = jobs.first(from: at, passing: passing) else { return nil }
            at = p + 1
            return jobs.jobs[p]
        }
    }
}

/// A job for the planner: id, request, priority and manifest order.
public struct PlanJob: Sendable {
    public var id: String
    public var settings: ClipSettings
    public var priority: Int
    public var gpuModel: String?
    public var location: String

    public init(id: String, settings: ClipSettings, priority: Int = 0, gpuModel: String? = nil, location: String = "") {
        self.id = id
        self.settings = settings
        self.priority = priority
        self.gpuModel = gpuModel
        self.location = location
    }
}

/// Simulates the dispatch policy on a virtual clock: the same Dispatcher the run loop uses, with jobs
/// slowed by sharing (k jobs on a GPU each progress at S(k)/k of solo speed).
public struct Planner: Sendable {
    public var predictor: Predictor
    public var dispatcher: Dispatcher
    public var maxJobsPerGPU: Int
    /// Waiting jobs that may reserve a GPU per dispatch round (the run's dispatcher uses the same default).
    public var maxReservations = Dispatcher.reservationsPerRound
    /// Waiting jobs a dispatch round looks at before the rest wait for the next round; nil: as the run does,
    /// `Dispatcher.waitingDepth(gpus:)`.
    public var maxWaiting: Int?

    public init(predictor: Predictor, strategy: Strategy, maxJobsPerGPU: Int? = nil) {
        self.predictor = predictor
        let cap = maxJobsPerGPU ?? predictor.profile.maxJobsPerGPU
        self.maxJobsPerGPU = cap
        self.dispatcher = Dispatcher(placer: Placer(strategy: strategy, maxJobsPerGPU: cap, sharing: SharingModel(predictor.profile.sharing),
                                                    coldStarts: !predictor.warm && predictor.profile.time.startupSeconds > 0))
    }

    /// Simulates the batch. `explain` records why each job first waited (costly on huge batches).
    public func plan(_ jobs: [PlanJob], gpus: [GPU], explain: Bool = true) -> Plan {
        var estimates: [String: Estimate] = [:]
        var byID: [String: PlanJob] = [:]
        var queue: [QueuedJob] = []
        queue.reserveCapacity(jobs.count)
        for (i, j) in jobs.enumerated() {
            let e = predictor.estimate(j.settings)
            estimates[j.id] = e
            byID[j.id] = j
            queue.append(QueuedJob(request: PlacementRequest(jobID: j.id, memoryGB: e.memoryGB, seconds: e.seconds, gpuModel: j.gpuModel, unsharedSeconds: e.unsharedSeconds),
                                   priority: j.priority, order: i))
        }
        queue.sort(by: QueuedJob.dispatchOrder)  // once: removals keep the order
        let largestGB = gpus.map { $0.memoryGB - $0.foreignUsedGB }.max() ?? 0
        // Started jobs leave the tree, which keeps the order and finds the next job a round can use in O(log n).
        var waiting = WaitingJobs(queue, largestGB: largestGB)
        // Where each job sits in `queue` (and in the tree).
        let position = Dictionary(uniqueKeysWithValues: queue.enumerated().map { ($1.request.jobID, $0) })
        var live = queue.count
        let smallest = queue.map(\.request.memoryGB).min() ?? 0
        let sharing = dispatcher.placer.sharing
        // Where a cold job may join a card whose S(k) merely holds: cards up to the smallest size that holds the
        // smallest waiting job (`Placer.holdsUpToGB`), as the run's rounds set it. Waiting jobs are counted by their home
        // size, so the limit moves up once a size's last one has started.
        var dispatcher = self.dispatcher
        let cardSizes = Placer.cardSizes(gpus)
        let homeOf = queue.map { Placer.homeGB(of: $0.request.memoryGB, sizes: cardSizes) }
        var waitingAt: [Double: Int] = [:]
        for h in homeOf where h < .infinity { waitingAt[h, default: 0] += 1 }
        func holdsUpTo() -> Double { waitingAt.lazy.filter { $0.value > 0 }.map(\.key).min() ?? .infinity }
        dispatcher.placer.holdsUpToGB = holdsUpTo()
        var loads = gpus.map { GPULoad(gpu: $0) }
        let slot = Dictionary(uniqueKeysWithValues: gpus.enumerated().map { ($1.index, $0) })
        // Which GPUs could take the smallest job, kept up to date as GPUs change (a round would otherwise read all
        // of them, on every event): positions in `loads`, in order.
        var openList = Array(loads.indices).filter { !dispatcher.placer.saturated(loads[$0], smallestGB: smallest) }
        // The most free memory on an open GPU (a minimum tree over the GPUs' free memory negated, +infinity where not
        // open), and each GPU's first job's end (-infinity: none), kept up to date for the rounds as the open list is.
        var roomTree = MinTree(count: gpus.count)
        func setRoom(_ g: Int, _ value: Double) { roomTree.set(g, -value) }
        for g in openList { setRoom(g, loads[g].freeGB) }
        var firstEnds = MinTree(count: gpus.count) { _ in -.infinity }
        func refresh(_ g: Int) {
            let isOpen = !dispatcher.placer.saturated(loads[g], smallestGB: smallest)
            var lo = 0, hi = openList.count
            while lo < hi { let mid = (lo + hi) / 2; if openList[mid] < g { lo = mid + 1 } else { hi = mid } }
            let listed = lo < openList.count && openList[lo] == g
            if isOpen && !listed { openList.insert(g, at: lo) } else if !isOpen && listed { openList.remove(at: lo) }
            setRoom(g, isOpen ? loads[g].freeGB : -.infinity)
        }
        // Every job rendering on a GPU progresses at the same rate, so each GPU keeps a progress clock (solo-seconds
        // done by each of its rendering jobs); a job ends when its GPU's clock reaches the mark set when its render
        // began plus its work. A cold attempt's start-up (`Estimate.unsharedSeconds`) comes first: it neither slows
        // nor is slowed by the others (mark infinite until it ends, at `renderFromS`).
        var progress = [Double](repeating: 0, count: gpus.count)
        var clockAt = [Double](repeating: 0, count: gpus.count)
        var version = [Int](repeating: 0, count: gpus.count)
        var heap = EventHeap()
        var runs: [PlannedRun] = []
        var unplaceable: [Unplaceable] = []
        var waits: [String: String] = [:]
        var now = 0.0
        var running = 0

        /// How many of GPU g's first `first` occupants (all by default) render now.
        func rendering(_ g: Int, first: Int? = nil) -> Int {
            loads[g].occupants.prefix(first ?? loads[g].occupants.count).reduce(0) { $0 + ($1.mark.isFinite ? 1 : 0) }
        }
        /// Each rendering job's progress per second on GPU g beside k rendering: S(k)/k, over the card's `timeScale`
        /// (the clock counts seconds of the predictions' model).
        let speed = gpus.map { 1 / $0.timeScale }
        func rate(_ g: Int, _ k: Int) -> Double { sharing.perJobRate(k) * speed[g] }
        /// Brings GPU g's progress clock to `now`; `k` is how many jobs rendered there since it was last brought up.
        func advance(_ g: Int, jobs k: Int? = nil) {
            let k = k ?? rendering(g)
            if k > 0 { progress[g] += (now - clockAt[g]) * rate(g, k) }
            clockAt[g] = now
        }
        func schedule(_ g: Int) {
            version[g] += 1
            guard !loads[g].occupants.isEmpty else {
                firstEnds.set(g, -.infinity)
                return
            }
            let k = rendering(g)
            var next = Double.infinity
            if k > 0 {
                let mark = loads[g].occupants.lazy.filter { $0.mark.isFinite }.map(\.mark).min()!
                next = now + max(mark - progress[g], 0) / rate(g, k)
            }
            for o in loads[g].occupants where !o.mark.isFinite { next = min(next, o.renderFromS) }
            heap.push(Event(time: next, gpu: g, version: version[g]))
            for o in loads[g].occupants.indices {
                let occupant = loads[g].occupants[o]
                loads[g].occupants[o].endS = occupant.mark.isFinite
                    ? now + max(occupant.mark - progress[g], 0) / rate(g, k)
                    : occupant.renderFromS + occupant.work / rate(g, k + 1)
            }
            firstEnds.set(g, loads[g].firstEndS!)
        }

        while true {
            if live > 0 {
                // A scope of its own: the round's view must be gone before `waiting` changes, or the change copies it.
                let round: DispatchRound = {
                    dispatcher.sortedRound(WaitingJobs.Reader(jobs: waiting), loads: &loads, now: now, explain: explain, maxReservations: maxReservations,
                                                  maxWaiting: maxWaiting ?? Dispatcher.waitingDepth(gpus: gpus.count),
                                                  smallestGB: smallest, queueCount: live,
                                                  hint: Dispatcher.RoundHint(open: openList, anyBusy: running > 0, largestGB: largestGB,
                                                                             roomGB: max(-roomTree.least, 0), firstEnds: firstEnds))
                }()
                for (id, reason) in round.never {
                    let j = byID[id]!
                    unplaceable.append(Unplaceable(jobID: id, reason: reason, suggestion: suggestFit(j, gpus: gpus), location: j.location))
                }
                if explain { for (id, reason) in round.waiting where waits[id] == nil { waits[id] = reason } }
                // The round added the started jobs to `loads`: bring each touched GPU's clock up at its old rate first.
                var added: [Int: Int] = [:]
                for (_, gpu) in round.starts { added[slot[gpu]!, default: 0] += 1 }
                for (g, n) in added.sorted(by: { $0.key < $1.key }) { advance(g, jobs: rendering(g, first: loads[g].occupants.count - n)) }
                var touched = Set<Int>()
                for (id, gpu) in round.starts {
                    let g = slot[gpu]!
                    let e = estimates[id]!
                    // The round appended it to this GPU's occupants; mark it there (no lookups by id later).
                    if let o = loads[g].occupants.lastIndex(where: { $0.jobID == id }) {
                        let unshared = e.startUpSeconds
                        loads[g].occupants[o].startS = now
                        loads[g].occupants[o].renderFromS = now + unshared
                        loads[g].occupants[o].work = e.renderSeconds
                        loads[g].occupants[o].mark = unshared > 0 ? .infinity : progress[g] + e.seconds
                    }
                    running += 1
                    touched.insert(g)
                }
                for g in touched.sorted() { schedule(g); refresh(g) }
                for id in round.starts.map(\.jobID) + Array(round.never.keys) {
                    let p = position[id]!
                    waiting.remove(at: p)
                    if homeOf[p] < .infinity { waitingAt[homeOf[p]]! -= 1 }
                    live -= 1
                }
                if dispatcher.placer.coldStarts, holdsUpTo() != dispatcher.placer.holdsUpToGB {
                    dispatcher.placer.holdsUpToGB = holdsUpTo()
                    for g in loads.indices { refresh(g) }
                }
            }
            if running == 0 {
                // Nothing runs and nothing could start: the rest can never be placed.
                for (i, q) in queue.enumerated() where waiting.isWaiting(i) {
                    let j = byID[q.request.jobID]!
                    unplaceable.append(Unplaceable(jobID: j.id, reason: waits[j.id] ?? "cannot be placed", suggestion: suggestFit(j, gpus: gpus), location: j.location))
                }
                break
            }
            // The next job to end, on any GPU.
            var event = heap.pop()!
            while event.version != version[event.gpu] { event = heap.pop()! }
            now = event.time
            let g = event.gpu
            advance(g)
            // Start-ups that ended now: their render begins at the GPU's clock as it stands.
            for o in loads[g].occupants.indices where !loads[g].occupants[o].mark.isFinite && loads[g].occupants[o].renderFromS <= now + 1e-9 {
                loads[g].occupants[o].mark = progress[g] + loads[g].occupants[o].work
            }
            let done = loads[g].occupants.filter { $0.mark.isFinite && $0.mark - progress[g] <= 1e-9 * max(1, $0.mark) }
            let ids = Set(done.map(\.jobID))
            for o in done {
                runs.append(PlannedRun(jobID: o.jobID, gpu: gpus[g].index, startS: o.startS, endS: now, memoryGB: o.memoryGB))
                running -= 1
            }
            loads[g].occupants.removeAll { ids.contains($0.jobID) }
            if loads[g].occupants.isEmpty { loads[g].isolated = false }
            schedule(g)
            refresh(g)
        }
        runs.sort { ($0.startS, $0.gpu, $0.jobID) < ($1.startS, $1.gpu, $1.jobID) }
        let lost = Set(unplaceable.map(\.jobID))
        let placeable = jobs.filter { !lost.contains($0.id) }
        let lower = lowerBound(placeable.map { estimates[$0.id]! }, gpus: gpus)
        return Plan(gpus: gpus, runs: runs, unplaceable: unplaceable.sorted { $0.jobID < $1.jobID }, makespanS: runs.map(\.endS).max() ?? 0,
                    lowerBoundS: lower, waits: waits, estimates: estimates, strategy: dispatcher.placer.strategy.name)
    }

    /// The first degraded settings under which the job fits the largest GPU, as text.
    public func suggestFit(_ j: PlanJob, gpus: [GPU]) -> String? {
        guard let largest = gpus.map(\.memoryGB).max() else { return nil }
        let s = j.settings
        var candidates: [SettingsChange] = [
            SettingsChange(onlineDecode: true), SettingsChange(offloadModel: true), SettingsChange(fp8: true),
            SettingsChange(onlineDecode: true, offloadModel: true), SettingsChange(onlineDecode: true, offloadModel: true, fp8: true),
        ]
        for frames in [32, 24, 16] where frames < s.inferFrames {
            candidates.append(SettingsChange(inferFrames: frames, onlineDecode: true, offloadModel: true))
        }
        for size in predictor.profile.sizes.sorted(by: >) where size.pixels < s.size.pixels {
            candidates.append(SettingsChange(size: size, onlineDecode: true, offloadModel: true))
        }
        for c in candidates {
            let changed = c.applied(to: s)
            guard changed != s else { continue }
            let e = predictor.estimate(changed)
            if e.memoryGB <= largest {
                return "with \(c) it needs \(String(format: "%.1f", e.memoryGB)) GB (largest GPU: \(String(format: "%.1f", largest)) GB)"
            }
        }
        return "no setting avatar-batch knows fits a \(String(format: "%.1f", largest)) GB GPU"
    }
}

/// What warm workers add to a plan: the loads, paid once per worker instead of once per job.
public struct WarmPlan: Sendable, Codable, Hashable {
    /// Workers started, over all GPUs: on each GPU, the first of each load-settings group and those the executor's rule
    /// would start.
    public var workers: Int
    /// Seconds one worker takes to start and load (the longest of `loadsBySettings`).
    public var loadSeconds: Double
    /// Each load-settings group's load, when the plan's workers are of more than one (Live Avatar's fp8 workers
    /// convert their weights as they load); empty otherwise.
    public var loadsBySettings: [String: Double] = [:]

    public init(workers: Int, loadSeconds: Double, loadsBySettings: [String: Double] = [:]) {
        self.workers = workers
        self.loadSeconds = loadSeconds
        self.loadsBySettings = loadsBySettings
    }
}

extension Plan {
    /// This plan as warm workers run it. `self` must be planned with requests (a time's fixed part without the load);
    /// `solo` is a job's request time alone; `sharing` the S(k) the plan was made with. Per GPU, in the plan's order,
    /// each job goes to a worker of its load-settings group: one free by the job's planned start, else a new one only
    /// when the executor's rule (docs/workers.md) finds it worth its load (n x (load + the job) < what the group's n
    /// workers have left to render + the group's jobs still to come on this GPU, the job included), never more at once
    /// than the plan runs there; else the job waits for the first of them to free. Those choices made, each worker
    /// renders its jobs one after another, none before its planned start, and the GPU's jobs are timed by stretches:
    /// while k render at once each progresses at S(k)/k of its solo speed (`Plan.shared`), as the planner times them.
    /// Times are reckoned from the GPU's first worker being ready: every run moves out by one load, and a worker
    /// started later is ready a load after its first job's planned start (at once for jobs planned at the start: their
    /// workers load beside the first). A simple model: it does not re-pack jobs around the loads.
    public func warmed(loadSeconds: Double, key: (String) -> String, solo: (String) -> Double, unshared: (String) -> Double = { _ in 0 },
                       sharing: SharingModel) -> (Plan, WarmPlan) {
        warmed(load: { _ in loadSeconds }, key: key, solo: solo, unshared: unshared, sharing: sharing)
    }

    /// As `warmed(loadSeconds:key:solo:sharing:)`, with each load-settings group's own load (`load`, by key). Times
    /// are reckoned from the GPU's first worker being ready; a worker of a slower group loading beside it is ready the
    /// difference later. `unshared`: the part of a job's request that shares nothing (`Estimate.unsharedSeconds`, its
    /// fixed part), taken as leading.
    public func warmed(load: (String) -> Double, key: (String) -> String, solo: (String) -> Double, unshared: (String) -> Double = { _ in 0 },
                       sharing: SharingModel) -> (Plan, WarmPlan) {
        var plan = self
        var workers = 0
        var used: [String: Double] = [:]
        for g in gpus {
            let idx = plan.runs.indices.filter { plan.runs[$0].gpu == g.index }.sorted { plan.runs[$0].startS < plan.runs[$1].startS }
            guard let firstRun = idx.first else { continue }
            let base = load(key(plan.runs[firstRun].jobID))
            // Each request on this card, read once (the worker rule below sums the ones still to come at every job): its
            // load-settings key, its solo time with its render scaled by the card's `timeScale` (`GPU.seconds`), and its
            // unshared part.
            let requests = idx.map { i -> (key: String, own: Double, unshared: Double) in
                let id = plan.runs[i].jobID, u = max(unshared(id), 0), own = g.seconds(solo(id), unshared: u)
                return (key(id), own, min(u, own))
            }
            // The most jobs the plan runs here at once: the most workers that fit beside each other.
            let most = idx.map { i in idx.filter { plan.runs[$0].startS <= plan.runs[i].startS && plan.runs[$0].endS > plan.runs[i].startS }.count }.max() ?? 1
            // The worker rule's choices, made on rough times (a job alone takes its solo time, one beside others its
            // planned time), as the executor makes them on what it knows when a job comes up.
            var lanes: [(key: String, freeAt: Double, readyAt: Double, jobs: [SharedRequest])] = []
            var ends: [Double] = []
            var slotOf: [Int: (lane: Int, position: Int)] = [:]
            for (n, i) in idx.enumerated() {
                let k = requests[n].key, at = plan.runs[i].startS
                let own = requests[n].own, planned = plan.runs[i].endS - plan.runs[i].startS
                let mine = lanes.indices.filter { lanes[$0].key == k }
                let first = mine.min { lanes[$0].freeAt < lanes[$1].freeAt }
                var lane: Int, start: Double
                if let f = first, lanes[f].freeAt <= at + 1e-9 {
                    (lane, start) = (f, at)
                } else {
                    let left = mine.reduce(0) { $0 + max(lanes[$1].freeAt - at, 0) }
                    let queued = requests[n...].filter { $0.key == k }.reduce(0) { $0 + $1.own }
                    let loadSeconds = load(k)
                    used[k] = loadSeconds
                    let worth = first == nil || (lanes.count < most && Double(mine.count) * (loadSeconds + own) < left + queued)
                    if worth {
                        // The GPU's first worker, and any for a job planned at the start, load with the first.
                        let withTheFirst = lanes.isEmpty || at <= 1e-9
                        let ready = withTheFirst ? at + max(loadSeconds - base, 0) : at + loadSeconds
                        lanes.append((k, 0, ready, []))
                        (lane, start) = (lanes.count - 1, ready)
                    } else {
                        (lane, start) = (first!, lanes[first!].freeAt)
                    }
                }
                let alone = !ends.contains { $0 > start + 1e-9 }
                let end = start + (alone ? own : planned)
                lanes[lane].freeAt = end
                slotOf[i] = (lane, lanes[lane].jobs.count)
                lanes[lane].jobs.append(SharedRequest(release: at, work: own, unshared: requests[n].unshared))
                ends.append(end)
            }
            let timed = Plan.shared(lanes.map { (readyAt: $0.readyAt, jobs: $0.jobs) }, sharing: sharing)
            for i in idx {
                let (lane, position) = slotOf[i]!
                plan.runs[i].startS = timed[lane][position].start + base
                plan.runs[i].endS = timed[lane][position].end + base
            }
            workers += lanes.count
        }
        plan.makespanS = plan.runs.map(\.endS).max() ?? 0
        plan.lowerBoundS += used.values.min() ?? 0
        let longest = used.values.max() ?? load("")
        return (plan, WarmPlan(workers: workers, loadSeconds: longest, loadsBySettings: used.count > 1 ? used : [:]))
    }

    /// One request on a worker: not before `release`, `work` solo seconds.
    public struct SharedRequest: Sendable, Hashable {
        public var release: Double
        public var work: Double
        /// The leading part of `work` that shares nothing (a request's fixed part: set-up, save and mux).
        public var unshared: Double

        public init(release: Double, work: Double, unshared: Double = 0) {
            self.release = release
            self.work = work
            self.unshared = min(max(unshared, 0), work)
        }
    }

    /// When each worker's requests start and end on one GPU. A worker takes its requests in order, the first at
    /// `readyAt` at the earliest and each at its release at the earliest. A request's unshared part runs at full speed
    /// and takes no share of the GPU; while k requests render at once, each progresses at S(k)/k of its solo speed.
    /// Indexed as `workers`.
    public static func shared(_ workers: [(readyAt: Double, jobs: [SharedRequest])], sharing: SharingModel) -> [[(start: Double, end: Double)]] {
        var out = workers.map { [(start: Double, end: Double)](repeating: (0, 0), count: $0.jobs.count) }
        var next = [Int](repeating: 0, count: workers.count)        // each worker's next request
        var freeAt = workers.map(\.readyAt)
        // The request each worker holds, if any: its unshared part left, then its render left.
        var left = [(fixed: Double, render: Double)?](repeating: nil, count: workers.count)
        var now = 0.0
        while true {
            // Workers with nothing running take their next request when it may start.
            var arrival = Double.infinity
            for w in workers.indices where left[w] == nil && next[w] < workers[w].jobs.count {
                let job = workers[w].jobs[next[w]]
                let at = max(job.release, freeAt[w])
                if at <= now + 1e-9 {
                    left[w] = (job.unshared, job.work - job.unshared)
                    out[w][next[w]].start = now
                } else {
                    arrival = min(arrival, at)
                }
            }
            let busy = workers.indices.filter { left[$0] != nil }
            if busy.isEmpty {
                guard arrival.isFinite else { break }
                now = arrival
                continue
            }
            let rendering = busy.filter { left[$0]!.fixed <= 1e-12 }
            let rate = sharing.perJobRate(max(rendering.count, 1))
            let soonest = busy.map { left[$0]!.fixed > 1e-12 ? left[$0]!.fixed : left[$0]!.render / rate }.min()!
            let step = min(soonest, arrival - now)
            for w in busy {
                if left[w]!.fixed > 1e-12 { left[w]!.fixed = max(left[w]!.fixed - step, 0) } else { left[w]!.render -= step * rate }
            }
            now += step
            for w in busy where left[w]!.fixed <= 1e-12 && left[w]!.render <= 1e-9 * max(1, workers[w].jobs[next[w]].work) {
                out[w][next[w]].end = now
                freeAt[w] = now
                left[w] = nil
                next[w] += 1
            }
        }
        return out
    }
}
