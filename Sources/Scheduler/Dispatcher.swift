import Manifest

/// A job waiting to be placed.
public struct QueuedJob: Sendable, Hashable {
    public var request: PlacementRequest
    public var priority: Int
    /// Manifest order, the last tiebreak.
    public var order: Int

    public init(request: PlacementRequest, priority: Int, order: Int) {
        self.request = request
        self.priority = priority
        self.order = order
    }

    /// Priority first, then the longest predicted job, then manifest order.
    public static func dispatchOrder(_ a: QueuedJob, _ b: QueuedJob) -> Bool {
        if a.priority != b.priority { return a.priority > b.priority }
        if a.request.seconds != b.request.seconds { return a.request.seconds > b.request.seconds }
        return a.order < b.order
    }
}

/// What one dispatch round decided.
public struct DispatchRound: Sendable {
    /// Jobs to start now, and on which GPU.
    public var starts: [(jobID: String, gpu: Int)] = []
    /// Why each job still waits.
    public var waiting: [String: String] = [:]
    /// Jobs no GPU can ever take, with every GPU's reason.
    public var never: [String: String] = [:]
    /// Reservations made for blocked jobs: GPU index -> (job, predicted start).
    public var reservations: [Int: (jobID: String, startS: Double)] = [:]
}

/// What a dispatch round may pass over once it may make no more reservations: a job no GPU could take now, being larger
/// than the room on every GPU no job reserved, and larger than the room on every reserved one or too long to end there
/// before its reservation. Jobs for a named GPU model, and jobs larger than every GPU (to be reported as never fitting),
/// are always looked at.
struct PassOver {
    var roomGB: Double
    var reservedRoomGB: Double
    /// The longest job (solo seconds) that could end on some reserved GPU before its reservation.
    var reservedSeconds: Double
    var largestGB: Double

    /// Whether the job may be passed over.
    @inline(__always)
    func passes(_ r: PlacementRequest) -> Bool {
        PassOver.mayPass(r, largestGB: largestGB) && r.memoryGB > roomGB && (r.memoryGB > reservedRoomGB || r.seconds > reservedSeconds)
    }

    /// Whether the job is one a round may ever pass over.
    @inline(__always)
    static func mayPass(_ r: PlacementRequest, largestGB: Double) -> Bool { r.gpuModel == nil && r.memoryGB <= largestGB }
}

/// The queue as a dispatch round reads it, in dispatch order. `next(passing:)` may pass over the jobs `PassOver.passes`
/// names; it must not pass over any other.
protocol RoundQueue {
    mutating func next(passing: PassOver?) -> QueuedJob?
}

/// Any sequence, read one job at a time. Reading costs each job passed over, so a round stops after passing over
/// `passLimit` of them, as the depth limit bounds the jobs it looks at (the run's queue of 100,000 jobs would otherwise
/// be read whole at every event); the planner's tree passes over any number at no cost.
struct SequenceRoundQueue<Iterator: IteratorProtocol>: RoundQueue where Iterator.Element == QueuedJob {
    var iterator: Iterator
    var passLimit: Int
    private var passed = 0

    init(_ iterator: Iterator, passLimit: Int = .max) {
        self.iterator = iterator
        self.passLimit = passLimit
    }

    mutating func next(passing: PassOver?) -> QueuedJob? {
        while let job = iterator.next() {
            guard let passing, passing.passes(job.request) else { return job }
            passed += 1
            if passed >= passLimit { return nil }
        }
        return nil
    }
}

/// Decides which queued jobs start now. Jobs are taken in dispatch order; a job that must wait reserves the
/// GPU where it could start soonest, and later (smaller) jobs may use that GPU only if they are predicted to
/// finish before the reservation (EASY backfilling), so a stream of small jobs cannot starve a big one.
public struct Dispatcher: Sendable {
    public var placer: Placer

    public init(placer: Placer) {
        self.placer = placer
    }

    /// One dispatch round at time `now`. `queue` in dispatch order when `presorted`; `explain` asks for the
    /// reasons each waiting job waits; at most `maxReservations` waiting jobs reserve a GPU per round (as Slurm's
    /// backfill bounds the jobs it tests), and scanning stops once no GPU can take even the smallest job, or after
    /// `maxWaiting` jobs that must wait (as Slurm's queue depth), unless explaining.
    /// `smallestGB` (a lower bound on the queue's smallest job) spares a pass over a presorted queue.
    /// Jobs started are added to `loads` (with their predicted ends), so the caller's view stays current.
    public func round<Jobs: Sequence>(queue: Jobs, loads: inout [GPULoad], now: Double, presorted: Bool = false, explain: Bool = true,
                                      maxReservations: Int = Dispatcher.reservationsPerRound, maxWaiting: Int = Dispatcher.waitingPerRound, smallestGB: Double? = nil, queueCount: Int? = nil) -> DispatchRound
    where Jobs.Element == QueuedJob {
        if presorted {
            let smallest = smallestGB ?? queue.lazy.map(\.request.memoryGB).min()
            return sortedRound(SequenceRoundQueue(queue.makeIterator(), passLimit: Dispatcher.passLimit(maxWaiting)), loads: &loads, now: now,
                               explain: explain, maxReservations: maxReservations, maxWaiting: maxWaiting, smallestGB: smallest, queueCount: queueCount)
        }
        let sorted = queue.sorted(by: QueuedJob.dispatchOrder)
        return sortedRound(SequenceRoundQueue(sorted.makeIterator(), passLimit: Dispatcher.passLimit(maxWaiting)), loads: &loads, now: now,
                           explain: explain, maxReservations: maxReservations, maxWaiting: maxWaiting,
                           smallestGB: smallestGB ?? sorted.lazy.map(\.request.memoryGB).min(), queueCount: queueCount)
    }

    /// Defaults of `round`: waiting jobs that may reserve a GPU per round, and waiting jobs looked at per round.
    public static let reservationsPerRound = 8
    public static let waitingPerRound = 128
    /// Jobs a round reading its queue one by one may pass over (`PassOver`), per waiting job it may look at.
    static let passedPerWaiting = 16
    static func passLimit(_ maxWaiting: Int) -> Int {
        let (limit, overflow) = maxWaiting.multipliedReportingOverflow(by: passedPerWaiting)
        return overflow ? .max : limit
    }

    /// Waiting jobs a round looks at on `gpus` GPUs: at least one per GPU. A fixed 128 left 24 GB cards idle on a
    /// 500 x 24 GB + 500 x 80 GB inventory once more than 128 jobs that need an 80 GB card waited at the head of a
    /// 100,000-job queue: the small jobs behind them, which those cards could take, were never looked at, and the
    /// plan came out 8.5% above its lower bound instead of 0.4% (docs/benchmarks.md, `avatar-batch-bench mixed`).
    public static func waitingDepth(gpus: Int) -> Int { max(waitingPerRound, gpus) }

    /// What a caller that tracks the GPUs between rounds (the planner) already knows, so a round on 1,000 GPUs
    /// does not read every one of them again.
    struct RoundHint {
        /// Positions in `loads`, in order, of the GPUs not `saturated` for the round's smallest job.
        var open: [Int]
        /// Whether any GPU runs a job.
        var anyBusy: Bool
        /// The most memory any GPU has for the orchestrator's jobs (capacity less foreign use).
        var largestGB: Double
        /// The most free memory on an open GPU (0 when none is open).
        var roomGB: Double
        /// Per GPU, when its first job ends (-infinity when it runs none).
        var firstEnds: MinTree
    }

    /// `round` over a queue already in dispatch order (generic, so the planner's queue is not boxed).
    func sortedRound<Jobs: RoundQueue>(_ queue: Jobs, loads: inout [GPULoad], now: Double, explain: Bool, maxReservations: Int, maxWaiting: Int,
                                       smallestGB: Double?, queueCount: Int?, hint: RoundHint? = nil) -> DispatchRound {
        var result = DispatchRound()
        guard let smallest = smallestGB else { return result }
        var queue = queue
        // Jobs read ahead by the tail's check below, handed out again first.
        var readAhead: [QueuedJob] = [], readAt = 0
        // The batch's tail: once few jobs are left, they are assigned together (see TailAssignment.swift).
        if placer.strategy.shareOnlyWhenFaster, (queueCount ?? 0) <= Dispatcher.tailLimit {
            var tail: [QueuedJob] = []
            while let j = queue.next(passing: nil) {
                tail.append(j)
                if tail.count > Dispatcher.tailLimit { break }
            }
            readAhead = tail
            if let starts = tailAssignment(tail, loads: loads, now: now) {
                let byID = Dictionary(uniqueKeysWithValues: tail.map { ($0.request.jobID, $0.request) })
                for (id, gpu) in starts {
                    let r = byID[id]!
                    let i = loads.firstIndex { $0.gpu.index == gpu }!
                    place(r, at: i, loads: &loads, now: now)
                    result.starts.append((id, gpu))
                }
                if explain {
                    let started = Set(starts.map(\.jobID))
                    for j in tail where !started.contains(j.request.jobID) {
                        var why = "the last \(tail.count) jobs are placed together and this one waits for a GPU to free up"
                        if case let .wait(reasons) = placer.decide(j.request, loads: loads, explain: true), !reasons.isEmpty {
                            why = Dispatcher.summarize(reasons) + " (" + why + ")"
                        }
                        result.waiting[j.request.jobID] = why
                    }
                }
                return result
            }
        }
        var open = 0, busy = 0
        // The most free memory on a GPU that could take another job and that no waiting job reserved: a job larger
        // than that can only backfill a reserved GPU, so only those are looked at (free memory only shrinks
        // during a round, so this stays an upper bound; a reservation recomputes it).
        var roomGB = 0.0
        let largestGB: Double
        // GPUs that could take some job of the queue: the only ones a placement needs to look at (a GPU only fills
        // up during a round, so none joins them).
        var openIdx: [Int] = []
        if let hint {
            assert(hint.open == loads.indices.filter { !placer.saturated(loads[$0], smallestGB: smallest) }, "stale open GPUs")
            assert(hint.anyBusy == loads.contains { !$0.occupants.isEmpty }, "stale busy flag")
            openIdx = hint.open
            open = openIdx.count
            busy = hint.anyBusy ? 1 : 0
            largestGB = hint.largestGB
            roomGB = hint.roomGB
            assert(roomGB == openIdx.reduce(0) { max($0, loads[$1].freeGB) }, "stale room")
            assert(loads.indices.allSatisfy { hint.firstEnds.value($0) == loads[$0].firstEndS ?? -.infinity }, "stale first ends")
        } else {
            largestGB = loads.map { $0.gpu.memoryGB - $0.gpu.foreignUsedGB }.max() ?? 0
            for i in loads.indices {
                if !placer.saturated(loads[i], smallestGB: smallest) {
                    open += 1
                    openIdx.append(i)
                    roomGB = max(roomGB, loads[i].freeGB)
                }
                if !loads[i].occupants.isEmpty { busy += 1 }
            }
        }
        var waited = 0, searches = 0
        var held = RoundReservations(gpus: loads.count)
        var reserved: [Int] = []
        // Per GPU, when its first job ends (-infinity or `now`: it runs none), computed when a reservation is first sought.
        var nextEnd: MinTree?
        var placedBefore: [Int] = []  // GPUs placed on before that: the hint's first ends are stale there
        // The most free memory on a reserved GPU that could take another job, and the longest job (solo seconds) that
        // could end there before its reservation: a job larger than that and than `roomGB`, or longer, waits without
        // a look at any GPU (both recomputed as reservations are made and filled).
        var reservedRoomGB = 0.0, reservedSeconds = -Double.infinity
        func reservedRoom() {
            reservedRoomGB = 0
            reservedSeconds = -.infinity
            for j in reserved where !placer.saturated(loads[j], smallestGB: smallest) {
                reservedRoomGB = max(reservedRoomGB, loads[j].freeGB)
                reservedSeconds = max(reservedSeconds, backfillSeconds(at: j, loads: loads, now: now, reservations: held))
            }
        }
        func room() -> Double {
            var most = 0.0
            for j in openIdx where !held.isReserved(j) && !placer.saturated(loads[j], smallestGB: smallest) {
                most = max(most, loads[j].freeGB)
            }
            return most
        }
        while true {
            // Like Slurm's queue depth: after `maxWaiting` jobs that could not start, the rest wait for the next round.
            if waited >= maxWaiting && !explain { break }
            // Once no GPU can take even the smallest job, the rest wait; only an explanation needs them looked at.
            // (With every GPU idle nothing will free up: look at every job, so those that fit no GPU are found.)
            if open == 0 && !explain && busy > 0 { break }
            // Each reservation takes a GPU no earlier waiting job holds; the searches per round are bounded, like the
            // reservations themselves (each search reads every GPU).
            let mayReserve = result.reservations.count < maxReservations && searches < 2 * maxReservations
            // Once no more reservations may be made, a job no GPU could take now (`PassOver`) can change nothing this
            // round: it waits, passed over and not counted against `maxWaiting`, so that jobs further down the queue
            // that fit reach the room (the planner's queue finds them in O(log n)). And once no GPU has room for the
            // smallest job, no later job can change anything (jobs too large for every GPU are found once the GPUs
            // empty, as with `maxWaiting`).
            let blocked = PassOver(roomGB: roomGB, reservedRoomGB: reservedRoomGB, reservedSeconds: reservedSeconds, largestGB: largestGB)
            let passing = !explain && busy > 0 && !mayReserve ? blocked : nil
            if passing != nil && max(roomGB, reservedRoomGB) < smallest { break }
            let next: QueuedJob?
            if readAt < readAhead.count {
                next = readAhead[readAt]
                readAt += 1
                if let passing, passing.passes(next!.request) { continue }
            } else {
                next = queue.next(passing: passing)
            }
            guard let job = next else { break }
            let r = job.request
            let decision: Placer.Decision
            if !explain && busy > 0 && r.memoryGB > roomGB && PassOver.mayPass(r, largestGB: largestGB) {
                // Too big for every open GPU no one reserved: only a reserved GPU could take it (by backfilling), and
                // none can when `blocked` says so (the job waits; it is counted, since it was looked at).
                decision = blocked.passes(r) ? .wait([:]) : decide(r, loads: loads, now: now, reservations: held, explain: false, candidates: reserved)
            } else {
                decision = decide(r, loads: loads, now: now, reservations: held, explain: explain,
                                  candidates: explain || busy == 0 || r.memoryGB > largestGB || r.gpuModel != nil ? nil : openIdx)
            }
            switch decision {
            case let .place(gpu):
                let i = loads.firstIndex { $0.gpu.index == gpu }!
                let wasOpen = !placer.saturated(loads[i], smallestGB: smallest)
                place(r, at: i, loads: &loads, now: now)
                if wasOpen && placer.saturated(loads[i], smallestGB: smallest) { open -= 1 }
                // (Free memory is a sum recomputed each time, so it is compared with some slack: a stale, larger
                // `roomGB` would send every later job through a full scan to find no GPU.)
                if wasOpen && !held.isReserved(i) && loads[i].freeGB + r.memoryGB >= roomGB - 1e-9 { roomGB = room() }
                if held.isReserved(i) { reservedRoom() }
                if nextEnd == nil { placedBefore.append(i) }
                result.starts.append((r.jobID, gpu))
            case let .wait(reasons):
                waited += 1
                if explain { result.waiting[r.jobID] = Dispatcher.summarize(reasons) }
                if mayReserve {
                    searches += 1
                    if nextEnd == nil {
                        if var ends = hint?.firstEnds {
                            for i in placedBefore { ends.set(i, loads[i].firstEndS ?? now) }
                            nextEnd = ends
                        } else {
                            nextEnd = MinTree(count: loads.count) { loads[$0].firstEndS ?? now }
                        }
                    }
                    if let (i, start) = earliestStart(r, loads: loads, now: now, nextEnd: nextEnd, skip: { held.isReserved($0) }) {
                        result.reservations[loads[i].gpu.index] = (r.jobID, start)
                        held.reserve(i, for: r.jobID, from: start)
                        reserved.append(i)
                        if loads[i].freeGB >= roomGB - 1e-9 { roomGB = room() }
                        reservedRoom()
                    }
                }
            case let .never(reasons):
                result.never[r.jobID] = Dispatcher.summarize(reasons)
            }
        }
        return result
    }

    /// Adds a job to a GPU's load: the jobs already there slow down by its company, so their predicted ends move out.
    func place(_ r: PlacementRequest, at i: Int, loads: inout [GPULoad], now: Double) {
        let sharing = placer.sharing
        let k = loads[i].occupants.count
        let rate = sharing.perJobRate(k + 1)
        if k > 0 {
            let stretch = sharing.perJobRate(k) / rate
            for o in loads[i].occupants.indices { loads[i].occupants[o].endS = now + (loads[i].occupants[o].endS - now) * stretch }
        }
        loads[i].occupants.append(Occupant(jobID: r.jobID, memoryGB: r.memoryGB, endS: now + r.seconds(on: loads[i].gpu) / rate))
        if r.isolate { loads[i].isolated = true }
    }

    /// An upper bound on the solo seconds of a job that could backfill reserved GPU `i` (see `decide`): -infinity when
    /// the jobs already there, stretched by another's company, end after the reservation. Bounded on the safe side (a
    /// card's `timeScale` below 1 at most shortens a job to that share; a little slack for rounding).
    func backfillSeconds(at i: Int, loads: [GPULoad], now: Double, reservations: RoundReservations) -> Double {
        let start = reservations.start(i)
        guard start < .infinity else { return .infinity }
        let sharing = placer.sharing
        let k = loads[i].occupants.count
        let stretch = sharing.perJobRate(max(k, 1)) / sharing.perJobRate(k + 1)
        let latest = loads[i].occupants.map { now + ($0.endS - now) * stretch }.max() ?? now
        guard latest <= start + 1e-9 else { return -.infinity }
        return (start + 1e-9 - now) * sharing.perJobRate(k + 1) / min(loads[i].gpu.timeScale, 1) * (1 + 1e-9) + 1e-6
    }

    /// The placer's decision, with reservations: a GPU reserved for an earlier job takes this one only if it, and
    /// the jobs already there slowed by its company, end before the reservation (EASY backfilling).
    func decide(_ r: PlacementRequest, loads: [GPULoad], now: Double, reservations: RoundReservations, explain: Bool,
                candidates: [Int]? = nil) -> Placer.Decision {
        let sharing = placer.sharing
        return placer.decide(r, loads: loads, explain: explain, candidates: candidates) { i in
            let start = reservations.start(i)
            guard start < .infinity else { return nil }
            // Backfill only what ends before the reservation, counting how sharing stretches the jobs already
            // there: with k jobs each runs at S(k)/k, with k+1 at S(k+1)/(k+1).
            let k = loads[i].occupants.count
            let stretch = sharing.perJobRate(max(k, 1)) / sharing.perJobRate(k + 1)
            let finish = now + r.seconds(on: loads[i].gpu) / sharing.perJobRate(k + 1)
            let latest = loads[i].occupants.map { now + ($0.endS - now) * stretch }.max() ?? now
            if max(finish, latest) <= start + 1e-9 { return nil }
            return Rejection(dimension: "reservation", permanent: false, reason: .reserved(gpu: loads[i].gpu.index, jobID: reservations.job(i), startS: start))
        }
    }

    /// When and where (a position in `loads`) a waiting job could start if the running jobs end as predicted, among
    /// the GPUs `skip` leaves: on each GPU that could hold it once emptied, release occupants in order of their
    /// predicted ends until it fits.
    /// `nextEnd`, when given, holds when each GPU's first job ends as the round first read it (a GPU that runs none: any
    /// time up to `now`): the search jumps over the GPUs whose first job ends no sooner than the best start found.
    func earliestStart(_ r: PlacementRequest, loads: [GPULoad], now: Double, nextEnd: MinTree? = nil, skip: (Int) -> Bool = { _ in false }) -> (Int, Double)? {
        var best: (Int, Double)?
        let cap = placer.maxJobsPerGPU
        var ends: [(endS: Double, memoryGB: Double)] = []
        var i = -1
        while true {
            i += 1
            // A GPU whose first job ends no sooner than the best start found cannot beat it (the best start is later
            // than `now`, or the search has ended).
            if let b = best, let nextEnd {
                guard let j = nextEnd.first(from: i, atMost: b.1.nextDown) else { break }
                i = j
            }
            guard i < loads.count else { break }
            if skip(i) { continue }
            guard r.memoryGB <= loads[i].gpu.memoryGB - loads[i].gpu.foreignUsedGB,
                  r.gpuModel.map({ loads[i].gpu.model.localizedCaseInsensitiveContains($0) }) ?? true else { continue }
            var free = loads[i].freeGB
            var count = loads[i].occupants.count
            var t = now
            if free < r.memoryGB || count >= cap || loads[i].isolated || (r.isolate && count > 0) {
                // A GPU that cannot beat the best found so far is not worth sorting.
                if let b = best, let soonest = loads[i].firstEndS, soonest >= b.1 { continue }
                ends.removeAll(keepingCapacity: true)
                for o in loads[i].occupants { ends.append((o.endS, o.memoryGB)) }
                ends.sort { $0.endS < $1.endS }
                for o in ends {
                    free += o.memoryGB
                    count -= 1
                    t = max(t, o.endS)
                    if free >= r.memoryGB && count < cap && (!r.isolate || count == 0) { break }
                }
            }
            if best == nil || t < best!.1 { best = (i, t) }
            if t <= now { break }
        }
        return best
    }

    /// The reservations made during one round, by position in `loads`. Read for every GPU a job could use, so an
    /// array rather than a hash lookup, allocated at the first reservation: most rounds make none, and a round on
    /// 1,000 GPUs that allocated (and freed) a slot per GPU spent more time on that than on placing jobs.
    struct RoundReservations {
        private var from: [Double] = []  // .infinity: not reserved
        private var jobs: [Int: String] = [:]
        private let gpus: Int

        init(gpus: Int) { self.gpus = gpus }

        /// When the job holding GPU `i` is predicted to start; .infinity when none does.
        func start(_ i: Int) -> Double { from.isEmpty ? .infinity : from[i] }
        func isReserved(_ i: Int) -> Bool { !from.isEmpty && from[i] < .infinity }
        func job(_ i: Int) -> String { jobs[i] ?? "" }

        mutating func reserve(_ i: Int, for jobID: String, from start: Double) {
            if from.isEmpty { from = [Double](repeating: .infinity, count: gpus) }
            from[i] = start
            jobs[i] = jobID
        }
    }

    static func summarize(_ reasons: [Int: [Rejection]]) -> String {
        reasons.sorted { $0.key < $1.key }.map { $0.value.map(\.detail).joined(separator: "; ") }.joined(separator: " | ")
    }
}
