import Manifest

/// A job already placed on a GPU (running, or planned to run until `endS`).
public struct Occupant: Sendable, Hashable {
    public var jobID: String
    public var memoryGB: Double
    /// When the job is predicted to end, on the caller's clock.
    public var endS: Double
    /// The planner's bookkeeping: the GPU's progress clock at which the job is done (infinite while it is still in
    /// its start-up, which shares nothing), when it started, when its start-up ends, and the work left after it.
    public var mark = 0.0
    public var startS = 0.0
    public var renderFromS = 0.0
    public var work = 0.0

    public init(jobID: String, memoryGB: Double, endS: Double) {
        self.jobID = jobID
        self.memoryGB = memoryGB
        self.endS = endS
    }
}

/// What one GPU holds now: reservations of running jobs, and whether a job asked to run alone.
public struct GPULoad: Sendable, Hashable {
    public var gpu: GPU
    public var occupants: [Occupant] = []
    /// A job that must run alone (OOM ladder's `isolate`) holds the GPU.
    public var isolated = false

    public init(gpu: GPU, occupants: [Occupant] = [], isolated: Bool = false) {
        self.gpu = gpu
        self.occupants = occupants
        self.isolated = isolated
    }

    /// GB reserved by the orchestrator's jobs.
    public var reservedGB: Double { occupants.reduce(0) { $0 + $1.memoryGB } }
    /// GB left for another job: capacity less foreign use less reservations.
    public var freeGB: Double { gpu.memoryGB - gpu.foreignUsedGB - reservedGB }
    /// When its first job is predicted to end (nil: it runs none).
    public var firstEndS: Double? { occupants.lazy.map(\.endS).min() }
}

/// What a job asks of a GPU.
public struct PlacementRequest: Sendable, Hashable {
    public var jobID: String
    public var memoryGB: Double
    public var seconds: Double
    /// Run alone on the GPU.
    public var isolate: Bool
    /// Substring the GPU's model must contain.
    public var gpuModel: String?

    /// The leading part of `seconds` that shares nothing (a cold start-up, a warm request's fixed part: `Estimate.unsharedSeconds`).
    public var unsharedSeconds: Double

    public init(jobID: String, memoryGB: Double, seconds: Double, isolate: Bool = false, gpuModel: String? = nil, unsharedSeconds: Double = 0) {
        self.jobID = jobID
        self.memoryGB = memoryGB
        self.seconds = seconds
        self.isolate = isolate
        self.gpuModel = gpuModel
        self.unsharedSeconds = min(max(unsharedSeconds, 0), seconds)
    }

    /// Its solo seconds on `gpu` (`GPU.seconds`: the render scaled by the card's `timeScale`).
    @inline(__always)
    public func seconds(on gpu: GPU) -> Double { gpu.seconds(seconds, unshared: unsharedSeconds) }
}

/// Why a job cannot run on a GPU, with the figures. The text is built only when asked for: the planner
/// rejects millions of (job, GPU) pairs on large inventories and reads few of the reasons.
public struct Rejection: Sendable, Hashable, CustomStringConvertible {
    /// The figures behind a rejection.
    public enum Reason: Sendable, Hashable {
        case tooSmall(needGB: Double, gpu: Int, model: String, capacityGB: Double)
        case busy(needGB: Double, gpu: Int, freeGB: Double, reservedGB: Double, running: Int)
        case foreign(needGB: Double, gpu: Int, availableGB: Double, foreignGB: Double)
        case cap(gpu: Int, running: Int, limit: Int)
        case occupiedByIsolated(gpu: Int)
        case mustRunAlone(gpu: Int, running: Int)
        case model(want: String, gpu: Int, model: String)
        case sharing(gpu: Int, jobs: Int, aggregate: Double)
        case reserved(gpu: Int, jobID: String, startS: Double)
    }

    /// Which dimension: `memory`, `jobs`, `isolation`, `model`, `sharing`, `reservation`.
    public var dimension: String
    /// True when no amount of waiting helps (the GPU is too small or the wrong model).
    public var permanent: Bool
    public var reason: Reason

    public init(dimension: String, permanent: Bool, reason: Reason) {
        self.dimension = dimension
        self.permanent = permanent
        self.reason = reason
    }

    public var detail: String {
        switch reason {
        case let .tooSmall(need, gpu, model, capacity):
            return String(format: "needs %.1f GB, GPU %d (%@) has %.1f GB", need, gpu, model, capacity)
        case let .busy(need, gpu, free, reserved, running):
            return String(format: "needs %.1f GB, GPU %d has %.1f GB free (%.1f GB reserved by %d running)", need, gpu, free, reserved, running)
        case let .foreign(need, gpu, available, foreign):
            return String(format: "needs %.1f GB, GPU %d has %.1f GB after %.1f GB used by other processes", need, gpu, available, foreign)
        case let .cap(gpu, running, limit):
            return "GPU \(gpu) already runs \(running) of at most \(limit) jobs"
        case let .occupiedByIsolated(gpu):
            return "GPU \(gpu) runs a job that must be alone"
        case let .mustRunAlone(gpu, running):
            return "job must run alone; GPU \(gpu) runs \(running) job(s)"
        case let .model(want, gpu, model):
            return "job needs a \(want) GPU, GPU \(gpu) is \(model)"
        case let .sharing(gpu, jobs, aggregate):
            return "a job more on GPU \(gpu) would not raise its throughput (S(\(jobs)) = \(String(format: "%.2f", aggregate)))"
        case let .reserved(gpu, job, start):
            return "GPU \(gpu) is held for \(job) from t=\(Int(start))s and this job would not finish first"
        }
    }

    public var description: String { detail }
}

/// A filter answers "can this job run on this GPU now?" and returns every reason it cannot. Filters never rank.
public protocol PlacementFilter: Sendable {
    func check(_ request: PlacementRequest, _ load: GPULoad) -> [Rejection]
}

/// Predicted memory (headroom included) must fit in what the GPU has left.
public struct MemoryFit: PlacementFilter {
    public init() {}
    public func check(_ r: PlacementRequest, _ load: GPULoad) -> [Rejection] {
        // Larger than the whole card: never. Memory used by other processes comes and goes: not now.
        if r.memoryGB > load.gpu.memoryGB {
            return [Rejection(dimension: "memory", permanent: true,
                              reason: .tooSmall(needGB: r.memoryGB, gpu: load.gpu.index, model: load.gpu.model, capacityGB: load.gpu.memoryGB))]
        }
        if load.gpu.foreignUsedGB > 0 && r.memoryGB > load.gpu.memoryGB - load.gpu.foreignUsedGB {
            return [Rejection(dimension: "memory", permanent: false, reason: .foreign(needGB: r.memoryGB, gpu: load.gpu.index,
                              availableGB: load.gpu.memoryGB - load.gpu.foreignUsedGB, foreignGB: load.gpu.foreignUsedGB))]
        }
        if r.memoryGB > load.freeGB {
            return [Rejection(dimension: "memory", permanent: false, reason: .busy(needGB: r.memoryGB, gpu: load.gpu.index, freeGB: load.freeGB,
                                                                                   reservedGB: load.reservedGB, running: load.occupants.count))]
        }
        return []
    }
}

/// At most `limit` jobs share one GPU.
public struct JobCap: PlacementFilter {
    public var limit: Int
    public init(limit: Int) { self.limit = limit }
    public func check(_ r: PlacementRequest, _ load: GPULoad) -> [Rejection] {
        load.occupants.count >= limit
            ? [Rejection(dimension: "jobs", permanent: false, reason: .cap(gpu: load.gpu.index, running: load.occupants.count, limit: limit))]
            : []
    }
}

/// A job that must run alone waits for an empty GPU, and nothing joins it.
public struct Isolation: PlacementFilter {
    public init() {}
    public func check(_ r: PlacementRequest, _ load: GPULoad) -> [Rejection] {
        if load.isolated { return [Rejection(dimension: "isolation", permanent: false, reason: .occupiedByIsolated(gpu: load.gpu.index))] }
        if r.isolate && !load.occupants.isEmpty {
            return [Rejection(dimension: "isolation", permanent: false, reason: .mustRunAlone(gpu: load.gpu.index, running: load.occupants.count))]
        }
        return []
    }
}

/// The GPU's model must contain the clip's `gpu_model`.
public struct ModelConstraint: PlacementFilter {
    public init() {}
    public func check(_ r: PlacementRequest, _ load: GPULoad) -> [Rejection] {
        guard let want = r.gpuModel, !load.gpu.model.localizedCaseInsensitiveContains(want) else { return [] }
        return [Rejection(dimension: "model", permanent: true, reason: .model(want: want, gpu: load.gpu.index, model: load.gpu.model))]
    }
}

/// A scorer ranks GPUs that passed every filter: higher is better. It never rejects.
public protocol PlacementScorer: Sendable {
    /// A score in 0...100.
    func score(_ request: PlacementRequest, _ load: GPULoad, sharing: SharingModel) -> Double
}

/// Prefers the GPU the job fills most tightly (least free memory left after it), keeping big GPUs for big jobs.
/// Score = 100 x (1 - free_after / usable), in 0...100.
public struct BestFit: PlacementScorer {
    public init() {}
    public func score(_ r: PlacementRequest, _ load: GPULoad, sharing: SharingModel) -> Double {
        let usable = max(load.gpu.memoryGB - load.gpu.foreignUsedGB, 0.001)
        return 100 * (1 - max(load.freeGB - r.memoryGB, 0) / usable)
    }
}

/// Prefers the emptiest GPU: fewest jobs, then most free memory. Score = 100 / (1 + jobs) - free-memory tiebreak, in 0...100.
public struct LeastLoaded: PlacementScorer {
    public init() {}
    public func score(_ r: PlacementRequest, _ load: GPULoad, sharing: SharingModel) -> Double {
        let usable = max(load.gpu.memoryGB, 0.001)
        return 100 / Double(1 + load.occupants.count) * (0.9 + 0.1 * max(load.freeGB, 0) / usable)
    }
}

/// Prefers the GPU where the job is predicted to finish first, given how sharing slows co-located jobs and how fast
/// the card renders. With k jobs already there, the job runs at S(k+1)/(k+1) of its solo speed (S = aggregate
/// throughput) on a card whose renders take `timeScale` times the predicted. Score = 99 x rate / timeScale (in
/// 0...99 on cards no faster than the predictions' model); ties are broken by best fit, so big GPUs stay free for big jobs.
public struct EarliestFinish: PlacementScorer {
    public init() {}
    public func score(_ r: PlacementRequest, _ load: GPULoad, sharing: SharingModel) -> Double {
        let rate = sharing.perJobRate(load.occupants.count + 1)
        return 99 * rate / load.gpu.timeScale + BestFit().score(r, load, sharing: sharing) / 100
    }
}

/// A named placement policy: filters, a scorer, and whether to share a GPU only when it raises throughput.
public struct Strategy: Sendable {
    public var name: String
    public var summary: String
    public var scorer: any PlacementScorer
    /// Share a GPU only when S(k+1) > S(k) (packing that slows everyone down for no gain waits instead).
    public var shareOnlyWhenFaster: Bool

    /// Every strategy by name.
    public static let table: [String: Strategy] = [
        "pack": Strategy(name: "pack", summary: "best fit: fill GPUs as tightly as memory allows", scorer: BestFit(), shareOnlyWhenFaster: false),
        "spread": Strategy(name: "spread", summary: "least loaded: one job per GPU first, then share", scorer: LeastLoaded(), shareOnlyWhenFaster: false),
        "earliest-finish": Strategy(name: "earliest-finish", summary: "where the job finishes soonest; share only when sharing raises throughput (default)", scorer: EarliestFinish(), shareOnlyWhenFaster: true),
    ]

    /// Looks a strategy up by name; the error lists the known ones.
    public static func named(_ name: String) throws -> Strategy {
        guard let s = table[name] else { throw SchedulerError.unknownStrategy(name, known: table.keys.sorted()) }
        return s
    }
}

/// Errors of the scheduler module.
public enum SchedulerError: Error, CustomStringConvertible, Sendable {
    case unknownStrategy(String, known: [String])
    case noGPUs

    public var description: String {
        switch self {
        case let .unknownStrategy(name, known): return "unknown strategy \"\(name)\"; use one of \(known.joined(separator: ", "))"
        case .noGPUs: return "no GPUs to place jobs on"
        }
    }
}

/// Aggregate throughput of k jobs sharing one GPU relative to one job, from the profile's `sharing` table:
/// S(1) = 1, linear between given points, flat after the last. Each of k jobs runs at S(k)/k of solo speed.
public struct SharingModel: Sendable, Hashable {
    var points: [(Int, Double)]
    /// S(k) for k < 65, computed once: the planner asks for it millions of times.
    var table: [Double] = []

    public static func == (a: SharingModel, b: SharingModel) -> Bool { a.points.elementsEqual(b.points) { $0 == $1 } }
    public func hash(into h: inout Hasher) { for (k, s) in points { h.combine(k); h.combine(s) } }

    /// `holds(k)` for k < 65, computed once: the placer asks for it on every GPU of every round.
    var holding: [Bool] = []

    public init(_ table: [Int: Double]) {
        points = [(1, 1.0)] + table.filter { $0.key >= 2 }.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        self.table = (0..<65).map { interpolate($0) }
        var best = 0.0
        holding = self.table.indices.map { k in
            defer { best = max(best, self.table[k]) }
            return k <= 1 || SharingModel.keeps(self.table[k], best)
        }
    }

    /// S(k).
    public func aggregate(_ k: Int) -> Double {
        k < table.count ? table[max(k, 0)] : interpolate(k)
    }

    func interpolate(_ k: Int) -> Double {
        guard k > 1 else { return 1 }
        for i in 1..<points.count where k <= points[i].0 {
            let (a, b) = (points[i - 1], points[i])
            return a.1 + (b.1 - a.1) * Double(k - a.0) / Double(b.0 - a.0)
        }
        return points.last!.1
    }

    /// S(k)/k: each job's speed relative to running alone.
    public func perJobRate(_ k: Int) -> Double { aggregate(k) / Double(max(k, 1)) }

    /// The best S(k) for k up to `limit`: the most a GPU can do, for the lower bound.
    public func best(upTo limit: Int) -> Double { (1...max(limit, 1)).map(aggregate).max() ?? 1 }

    /// How far apart the same S(k) reads when measured again: `calibrate --quick` on four H200 hosts read S(2)
    /// 1.16-1.19, S(3) 1.22-1.26 and S(4) 1.28-1.33, 3-4% apart (docs/benchmarks.md).
    public static let spread = 0.03

    /// Whether k jobs keep the throughput of fewer, to within what S(k) is measured to (`spread`), against the best of
    /// S(1..k-1) so that small dips do not add up: a cold job may join then, since its start-up shares nothing. A cold
    /// calibration that read S(2..4) 1.63, 1.61, 1.61 on an H200 let a strict S(3) >= S(2) hold the card to two jobs at
    /// once, and the 32-clip proof ran 180 s where four at once had run it in about 100 s (docs/benchmarks.md, "A cold
    /// calibration").
    public func holds(_ k: Int) -> Bool {
        if k < holding.count { return holding[max(k, 0)] }
        return k <= 1 || SharingModel.keeps(aggregate(k), best(upTo: k - 1))
    }

    /// The one comparison behind `holds`: S within `spread` of the best before it.
    static func keeps(_ s: Double, _ best: Double) -> Bool { s >= best * (1 - spread) }
}

/// Filter, then score: the one place a job meets the GPUs.
public struct Placer: Sendable {
    public var strategy: Strategy
    public var filters: [any PlacementFilter]
    public var sharing: SharingModel
    public var maxJobsPerGPU: Int
    /// The jobs start up first (cold processes): a start-up shares nothing, so a job may join a card whose S(k+1)
    /// merely equals S(k): it gains its start-up and costs the others nothing until it renders. Only on cards no
    /// larger than `holdsUpToGB`.
    public var coldStarts: Bool
    /// Cards no larger than this (GB) take a cold job where S(k) merely holds; larger ones only where S(k+1) > S(k).
    /// The dispatcher's callers set it to the smallest card size that holds the smallest waiting job (`homeGB`), so a
    /// uniform inventory is unaffected. On a mixed one, a larger card's memory may be the only place for the jobs
    /// too large for the smaller cards, and company there gains only a start-up: on 500 x 24 GB + 500 x 80 GB cards,
    /// joining where S merely holds on the 80 GB cards planned 10,000 clips at 1.31 x their lower bound, against 1.02
    /// without (docs/benchmarks.md, "Why the ratio grew").
    public var holdsUpToGB = Double.infinity

    public init(strategy: Strategy, maxJobsPerGPU: Int, sharing: SharingModel, coldStarts: Bool = false) {
        self.strategy = strategy
        self.filters = [ModelConstraint(), MemoryFit(), JobCap(limit: maxJobsPerGPU), Isolation()]
        self.sharing = sharing
        self.maxJobsPerGPU = maxJobsPerGPU
        self.coldStarts = coldStarts
    }

    /// The outcome of trying to place one job.
    public enum Decision: Sendable {
        case place(gpu: Int)
        /// Not now; each GPU's reasons (empty unless asked to explain).
        case wait([Int: [Rejection]])
        /// Never on these GPUs; each GPU's permanent reasons.
        case never([Int: [Rejection]])
    }

    /// The smallest of the card sizes `sizes` (GB, ascending: `cardSizes`) that holds a job of `jobGB`: the job's home
    /// size. Infinity when no card holds it, or no job is given.
    public static func homeGB(of jobGB: Double?, sizes: [Double]) -> Double {
        guard let jobGB else { return .infinity }
        return sizes.first { $0 >= jobGB } ?? .infinity
    }

    /// The distinct card sizes (GB) of `gpus`, ascending.
    public static func cardSizes(_ gpus: [GPU]) -> [Double] { Array(Set(gpus.map(\.memoryGB))).sorted() }

    /// Decides where `request` runs given the loads; `allowed` restricts GPUs (reservations), given the
    /// position of a load in `loads`. With `explain` false, a job that must wait gets no reasons (the planner
    /// asks once per job, not on every event).
    /// `candidates` (positions in `loads`), when given, are the only GPUs that could take the job now: the caller
    /// knows the others are too full.
    public func decide(_ request: PlacementRequest, loads: [GPULoad], explain: Bool = true, candidates: [Int]? = nil,
                       allowed: (Int) -> Rejection? = { _ in nil }) -> Decision {
        var best: (gpu: Int, score: Double)?
        func consider(_ i: Int) {
            // The filters' conditions, read in place: on a large inventory this loop is the scheduler's hot path
            // (copying a load costs more than checking it). `filtersAgree` in the tests keeps it equal to the
            // filters, which remain the source of the reasons below.
            guard fastPathPasses(request, loads[i]), sharingPays(jobs: loads[i].occupants.count, cardGB: loads[i].gpu.memoryGB), allowed(i) == nil else { return }
            let s = strategy.scorer.score(request, loads[i], sharing: sharing)
            if best == nil || s > best!.score { best = (loads[i].gpu.index, s) }
        }
        if let candidates { for i in candidates { consider(i) } } else { for i in loads.indices { consider(i) } }
        if let best { return .place(gpu: best.gpu) }
        if candidates != nil && !explain { return .wait([:]) }
        let permanent = !loads.contains { Placer.canEverRun(request, on: $0.gpu) }  // = fitsNoGPU(request, gpus) != nil, without the words
        guard explain || permanent else { return .wait([:]) }
        var reasons: [Int: [Rejection]] = [:]
        for (i, load) in loads.enumerated() {
            var r = filters.flatMap { $0.check(request, load) }
            if r.isEmpty, let blocked = allowed(i) { r = [blocked] }
            if r.isEmpty, !sharingPays(load) {
                let k = load.occupants.count
                r = [Rejection(dimension: "sharing", permanent: false, reason: .sharing(gpu: load.gpu.index, jobs: k + 1, aggregate: sharing.aggregate(k + 1)))]
            }
            if !r.isEmpty { reasons[load.gpu.index] = r }
        }
        return permanent ? .never(reasons) : .wait(reasons)
    }

    /// Whether the filters pass, by their own checks (the fast path in `decide` must agree with this).
    public func filtersPass(_ request: PlacementRequest, _ load: GPULoad) -> Bool {
        filters.allSatisfy { $0.check(request, load).isEmpty }
    }

    /// Whether the job could run on this GPU when it is empty: it fits the whole card and the model matches
    /// (the permanent half of MemoryFit and ModelConstraint).
    public static func canEverRun(_ request: PlacementRequest, on gpu: GPU) -> Bool {
        request.memoryGB <= gpu.memoryGB && (request.gpuModel.map { gpu.model.localizedCaseInsensitiveContains($0) } ?? true)
    }

    /// The one "fits no GPU" rule: nil when some GPU of `gpus` could run the job once empty, else why none can.
    /// The run's preflight, the dispatcher's `never`, the planner's unplaceable jobs, the Slurm executor's admission
    /// and "degrade until it fits" all ask this.
    public static func fitsNoGPU(_ request: PlacementRequest, gpus: [GPU]) -> String? {
        if gpus.contains(where: { canEverRun(request, on: $0) }) { return nil }
        if gpus.isEmpty { return "there are no GPUs" }
        if let model = request.gpuModel, !gpus.contains(where: { $0.model.localizedCaseInsensitiveContains(model) }) {
            return "it needs a \(model) GPU and none is one (\(Set(gpus.map(\.model)).sorted().joined(separator: ", ")))"
        }
        let largest = gpus.filter { g in request.gpuModel.map { g.model.localizedCaseInsensitiveContains($0) } ?? true }.map(\.memoryGB).max() ?? 0
        return String(format: "it needs %.1f GB, more than any GPU has (the largest: %.1f GB)", request.memoryGB, largest)
    }

    /// The fast path's reading of the filters' conditions.
    @inline(__always)
    public func fastPathPasses(_ request: PlacementRequest, _ load: GPULoad) -> Bool {
        !(load.isolated || load.occupants.count >= maxJobsPerGPU || request.memoryGB > load.freeGB || (request.isolate && !load.occupants.isEmpty))
            && (request.gpuModel.map { load.gpu.model.localizedCaseInsensitiveContains($0) } ?? true)
    }

    /// With `earliest-finish`, a job joins a busy GPU only when that raises the GPU's throughput: S(k+1) > S(k); or,
    /// with `coldStarts` on a card no larger than `holdsUpToGB`, keeps it to within what S(k) is measured to:
    /// S(k+1) >= S(k) x (1 - `SharingModel.spread`) (as the tail assignment does, `SharingModel.holds`).
    func sharingPays(_ load: GPULoad) -> Bool { sharingPays(jobs: load.occupants.count, cardGB: load.gpu.memoryGB) }

    @inline(__always)
    func sharingPays(jobs k: Int, cardGB: Double) -> Bool {
        guard strategy.shareOnlyWhenFaster, k > 0 else { return true }
        return coldStarts && cardGB <= holdsUpToGB ? sharing.holds(k + 1) : sharing.aggregate(k + 1) > sharing.aggregate(k) * 1.01
    }

    /// True when the GPU can take no job of at least `smallestGB`: at its cap, isolated, or too full.
    func saturated(_ load: GPULoad, smallestGB: Double) -> Bool {
        // The sum over occupants last: this runs for every GPU on every round.
        load.isolated || load.occupants.count >= maxJobsPerGPU || !sharingPays(load) || load.freeGB < smallestGB
    }
}
