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

    public init(predictor: Predictor, strategy: Strategy, maxJobsPerGPU: Int? = nil) {
        self.predictor = predictor
        let cap = maxJobsPerGPU ?? predictor.profile.maxJobsPerGPU
        self.maxJobsPerGPU = cap
        self.dispatcher = Dispatcher(placer: Placer(strategy: strategy, maxJobsPerGPU: cap, sharing: SharingModel(predictor.profile.sharing)))
    }

    public func plan(_ jobs: [PlanJob], gpus: [GPU]) -> Plan {
        var estimates: [String: Estimate] = [:]
        var queue: [QueuedJob] = []
        var byID: [String: PlanJob] = [:]
        for (i, j) in jobs.enumerated() {
            let e = predictor.estimate(j.settings)
            estimates[j.id] = e
            byID[j.id] = j
            queue.append(QueuedJob(request: PlacementRequest(jobID: j.id, memoryGB: e.memoryGB, seconds: e.seconds, gpuModel: j.gpuModel),
                                   priority: j.priority, order: i))
        }
        var loads = gpus.map { GPULoad(gpu: $0) }
        var remaining: [String: Double] = [:]  // solo-seconds of work left per running job
        var startS: [String: (gpu: Int, start: Double)] = [:]
        var runs: [PlannedRun] = []
        var unplaceable: [Unplaceable] = []
        var waits: [String: String] = [:]
        var now = 0.0
        let sharing = dispatcher.placer.sharing

        while !queue.isEmpty || !remaining.isEmpty {
            let round = dispatcher.round(queue: queue, loads: loads, now: now)
            for (id, reason) in round.never {
                let j = byID[id]!
                unplaceable.append(Unplaceable(jobID: id, reason: reason, suggestion: suggestFit(j, gpus: gpus), location: j.location))
            }
            for (id, reason) in round.waiting where waits[id] == nil { waits[id] = reason }
            let started = Set(round.starts.map(\.jobID))
            for (id, gpu) in round.starts {
                let e = estimates[id]!
                let i = loads.firstIndex { $0.gpu.index == gpu }!
                loads[i].occupants.append(Occupant(jobID: id, memoryGB: e.memoryGB, endS: now + e.seconds))
                remaining[id] = e.seconds
                startS[id] = (gpu, now)
            }
            queue.removeAll { started.contains($0.request.jobID) || round.never[$0.request.jobID] != nil }
            if remaining.isEmpty {
                if queue.isEmpty { break }
                // Nothing runs and nothing can start: the rest can never be placed.
                for q in queue {
                    let j = byID[q.request.jobID]!
                    unplaceable.append(Unplaceable(jobID: j.id, reason: round.waiting[j.id] ?? "cannot be placed", suggestion: suggestFit(j, gpus: gpus), location: j.location))
                }
                break
            }
            // Advance to the next completion; every job on a GPU with k jobs runs at S(k)/k.
            var rate: [String: Double] = [:]
            for l in loads { for o in l.occupants { rate[o.jobID] = sharing.perJobRate(l.occupants.count) } }
            let dt = remaining.map { $0.value / rate[$0.key]! }.min()!
            now += dt
            var finished: [String] = []
            for (id, left) in remaining {
                let l = left - dt * rate[id]!
                if l <= 1e-6 * max(1, estimates[id]!.seconds) { finished.append(id) } else { remaining[id] = l }
            }
            for id in finished {
                remaining[id] = nil
                let (gpu, start) = startS[id]!
                runs.append(PlannedRun(jobID: id, gpu: gpu, startS: start, endS: now, memoryGB: estimates[id]!.memoryGB))
                let i = loads.firstIndex { $0.gpu.index == gpu }!
                loads[i].occupants.removeAll { $0.jobID == id }
                loads[i].isolated = false
            }
            // Refresh predicted ends of the survivors (their speed changed).
            for i in loads.indices {
                let r = sharing.perJobRate(loads[i].occupants.count)
                for k in loads[i].occupants.indices {
                    loads[i].occupants[k].endS = now + (remaining[loads[i].occupants[k].jobID] ?? 0) / r
                }
            }
        }
        runs.sort { ($0.startS, $0.gpu, $0.jobID) < ($1.startS, $1.gpu, $1.jobID) }
        let placeable = jobs.filter { j in !unplaceable.contains { $0.jobID == j.id } }
        let lower = lowerBound(placeable.map { estimates[$0.id]!.seconds }, gpus: gpus)
        return Plan(gpus: gpus, runs: runs, unplaceable: unplaceable.sorted { $0.jobID < $1.jobID }, makespanS: runs.map(\.endS).max() ?? 0,
                    lowerBoundS: lower, waits: waits, estimates: estimates, strategy: dispatcher.placer.strategy.name)
    }

    /// max(longest job, total work / the GPUs' best aggregate throughput), sharing gains counted.
    public func lowerBound(_ seconds: [Double], gpus: [GPU]) -> Double {
        guard !gpus.isEmpty, let longest = seconds.max() else { return 0 }
        let capacity = Double(gpus.count) * dispatcher.placer.sharing.best(upTo: maxJobsPerGPU)
        return max(longest, seconds.reduce(0, +) / capacity)
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
