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

    public func round(queue: [QueuedJob], loads initial: [GPULoad], now: Double) -> DispatchRound {
        var loads = initial
        var result = DispatchRound()
        let sharing = placer.sharing
        for job in queue.sorted(by: QueuedJob.dispatchOrder) {
            let r = job.request
            let reservations = result.reservations
            let decision = placer.decide(r, loads: loads) { load in
                guard let res = reservations[load.gpu.index] else { return nil }
                // Backfill only what ends before the reservation, counting how sharing stretches the jobs already
                // there: with k jobs each runs at S(k)/k, with k+1 at S(k+1)/(k+1).
                let k = load.occupants.count
                let stretch = sharing.perJobRate(max(k, 1)) / sharing.perJobRate(k + 1)
                let finish = now + r.seconds / sharing.perJobRate(k + 1)
                let latest = load.occupants.map { now + ($0.endS - now) * stretch }.max() ?? now
                if max(finish, latest) <= res.startS + 1e-9 { return nil }
                return Rejection(dimension: "reservation", permanent: false,
                                 detail: "GPU \(load.gpu.index) is held for \(res.jobID) from t=\(Int(res.startS))s and this job would not finish first")
            }
            switch decision {
            case let .place(gpu):
                let i = loads.firstIndex { $0.gpu.index == gpu }!
                let rate = sharing.perJobRate(loads[i].occupants.count + 1)
                loads[i].occupants.append(Occupant(jobID: r.jobID, memoryGB: r.memoryGB, endS: now + r.seconds / rate))
                if r.isolate { loads[i].isolated = true }
                result.starts.append((r.jobID, gpu))
            case let .wait(reasons):
                result.waiting[r.jobID] = Dispatcher.summarize(reasons)
                if let (gpu, start) = earliestStart(r, loads: loads, now: now), result.reservations[gpu] == nil {
                    result.reservations[gpu] = (r.jobID, start)
                }
            case let .never(reasons):
                result.never[r.jobID] = Dispatcher.summarize(reasons)
            }
        }
        return result
    }

    /// When and where a waiting job could start if the running jobs end as predicted.
    func earliestStart(_ r: PlacementRequest, loads: [GPULoad], now: Double) -> (Int, Double)? {
        var best: (Int, Double)?
        for load in loads {
            // Only GPUs that could take it once emptied.
            let empty = GPULoad(gpu: load.gpu)
            guard placer.filters.allSatisfy({ $0.check(r, empty).isEmpty }) else { continue }
            var l = load
            var t = now
            for o in load.occupants.sorted(by: { $0.endS < $1.endS }) {
                if placer.filters.allSatisfy({ $0.check(r, l).isEmpty }) { break }
                l.occupants.removeAll { $0.jobID == o.jobID }
                l.isolated = false
                t = max(t, o.endS)
            }
            if best == nil || t < best!.1 { best = (load.gpu.index, t) }
        }
        return best
    }

    static func summarize(_ reasons: [Int: [Rejection]]) -> String {
        reasons.sorted { $0.key < $1.key }.map { $0.value.map(\.detail).joined(separator: "; ") }.joined(separator: " | ")
    }
}
