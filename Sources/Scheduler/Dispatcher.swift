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
                                      maxReservations: Int = 8, maxWaiting: Int = 128, smallestGB: Double? = nil) -> DispatchRound
    where Jobs.Element == QueuedJob {
        var result = DispatchRound()
        let sharing = placer.sharing
        let jobs: AnySequence<QueuedJob> = presorted ? AnySequence(queue) : AnySequence(queue.sorted(by: QueuedJob.dispatchOrder))
        guard let smallest = smallestGB ?? jobs.lazy.map(\.request.memoryGB).min() else { return result }
        var open = 0, busy = 0
        for i in loads.indices {
            if !placer.saturated(loads[i], smallestGB: smallest) { open += 1 }
            if !loads[i].occupants.isEmpty { busy += 1 }
        }
        var waited = 0
        // Reservations by position in `loads` (read for every GPU a job could use: an array, not a hash lookup).
        var reservedFrom = [Double](repeating: .infinity, count: loads.count)  // .infinity: not reserved
        var reservedFor = [String](repeating: "", count: loads.count)
        for job in jobs {
            // Like Slurm's queue depth: after `maxWaiting` jobs that could not start, the rest wait for the next round.
            if waited >= maxWaiting && !explain { break }
            // Once no GPU can take even the smallest job, the rest wait; only an explanation needs them looked at.
            // (With every GPU idle nothing will free up: look at every job, so those that fit no GPU are found.)
            if open == 0 && !explain && busy > 0 { break }
            let r = job.request
            let decision = placer.decide(r, loads: loads, explain: explain) { i in
                let start = reservedFrom[i]
                guard start < .infinity else { return nil }
                // Backfill only what ends before the reservation, counting how sharing stretches the jobs already
                // there: with k jobs each runs at S(k)/k, with k+1 at S(k+1)/(k+1).
                let k = loads[i].occupants.count
                let stretch = sharing.perJobRate(max(k, 1)) / sharing.perJobRate(k + 1)
                let finish = now + r.seconds / sharing.perJobRate(k + 1)
                let latest = loads[i].occupants.map { now + ($0.endS - now) * stretch }.max() ?? now
                if max(finish, latest) <= start + 1e-9 { return nil }
                return Rejection(dimension: "reservation", permanent: false, reason: .reserved(gpu: loads[i].gpu.index, jobID: reservedFor[i], startS: start))
            }
            switch decision {
            case let .place(gpu):
                let i = loads.firstIndex { $0.gpu.index == gpu }!
                let wasOpen = !placer.saturated(loads[i], smallestGB: smallest)
                let rate = sharing.perJobRate(loads[i].occupants.count + 1)
                loads[i].occupants.append(Occupant(jobID: r.jobID, memoryGB: r.memoryGB, endS: now + r.seconds / rate))
                if r.isolate { loads[i].isolated = true }
                if wasOpen && placer.saturated(loads[i], smallestGB: smallest) { open -= 1 }
                result.starts.append((r.jobID, gpu))
            case let .wait(reasons):
                waited += 1
                if explain { result.waiting[r.jobID] = Dispatcher.summarize(reasons) }
                if result.reservations.count < maxReservations, let (gpu, start) = earliestStart(r, loads: loads, now: now),
                   result.reservations[gpu] == nil, let i = loads.firstIndex(where: { $0.gpu.index == gpu }) {
                    result.reservations[gpu] = (r.jobID, start)
                    reservedFrom[i] = start
                    reservedFor[i] = r.jobID
                }
            case let .never(reasons):
                result.never[r.jobID] = Dispatcher.summarize(reasons)
            }
        }
        return result
    }

    /// When and where a waiting job could start if the running jobs end as predicted: on each GPU that could
    /// hold it once emptied, release occupants in order of their predicted ends until it fits.
    func earliestStart(_ r: PlacementRequest, loads: [GPULoad], now: Double) -> (Int, Double)? {
        var best: (Int, Double)?
        let cap = placer.maxJobsPerGPU
        for load in loads {
            guard r.memoryGB <= load.gpu.memoryGB - load.gpu.foreignUsedGB,
                  r.gpuModel.map({ load.gpu.model.localizedCaseInsensitiveContains($0) }) ?? true else { continue }
            var free = load.freeGB
            var count = load.occupants.count
            var t = now
            if free < r.memoryGB || count >= cap || load.isolated || (r.isolate && count > 0) {
                for o in load.occupants.sorted(by: { $0.endS < $1.endS }) {
                    free += o.memoryGB
                    count -= 1
                    t = max(t, o.endS)
                    if free >= r.memoryGB && count < cap && (!r.isolate || count == 0) { break }
                }
            }
            if best == nil || t < best!.1 { best = (load.gpu.index, t) }
            if t <= now { break }
        }
        return best
    }

    static func summarize(_ reasons: [Int: [Rejection]]) -> String {
        reasons.sorted { $0.key < $1.key }.map { $0.value.map(\.detail).joined(separator: "; ") }.joined(separator: " | ")
    }
}
