import Foundation
import Scheduler

/// `plan --json` (docs/schemas/plan.schema.json).
public struct PlanDocument: Codable, Sendable {
    public var strategy: String
    public var makespanS, lowerBoundS, ratio: Double
    public var gpus: [GPUEntry]
    public var placements: [PlacementEntry]
    public var unplaceable: [UnplaceableEntry]
    /// Why jobs waited, by job (with --explain).
    public var waits: [String: String]
    /// Warm workers' loads, when the plan is for them (absent: one process per job).
    public var warm: WarmEntry?
    /// What the predictions start from (docs/calibration.md).
    public var predictionBasis: String?

    enum CodingKeys: String, CodingKey {
        case strategy, makespanS = "makespan_s", lowerBoundS = "lower_bound_s", ratio, gpus, placements, unplaceable, waits, warm,
             predictionBasis = "prediction_basis"
    }

    public struct WarmEntry: Codable, Sendable {
        public var workers: Int
        /// The longest expected load among the plan's load-settings groups.
        public var loadSeconds: Double
        /// Each group's expected load, when the plan's workers are of more than one group (nil otherwise).
        public var loadSecondsBySettings: [String: Double]?
        enum CodingKeys: String, CodingKey { case workers, loadSeconds = "load_seconds", loadSecondsBySettings = "load_seconds_by_settings" }
        public init(workers: Int, loadSeconds: Double, loadSecondsBySettings: [String: Double]? = nil) {
            self.workers = workers
            self.loadSeconds = loadSeconds
            self.loadSecondsBySettings = loadSecondsBySettings
        }
    }

    public struct GPUEntry: Codable, Sendable {
        public var index: Int
        public var uuid, model: String
        public var memoryGB: Double
        /// Its renders against the predictions' GPU model (`GPU.timeScale`: 1 for that model and for models of no known speed).
        public var timeScale: Double
        enum CodingKeys: String, CodingKey { case index, uuid, model, memoryGB = "memory_gb", timeScale = "time_scale" }
    }

    public struct PlacementEntry: Codable, Sendable {
        public var job: String
        public var gpu: Int
        public var startS, endS, memoryGB, predictedSoloS, hostRAMGB: Double
        public var extrapolated: Bool
        /// Where its prediction comes from, in words.
        public var predictedFrom: String?
        enum CodingKeys: String, CodingKey {
            case job, gpu, startS = "start_s", endS = "end_s", memoryGB = "memory_gb", predictedSoloS = "predicted_solo_s",
                 hostRAMGB = "host_ram_gb", extrapolated, predictedFrom = "predicted_from"
        }
    }

    public struct UnplaceableEntry: Codable, Sendable {
        public var job, reason, location: String
        public var suggestion: String?
    }

    public init(_ plan: Plan) {
        strategy = plan.strategy
        makespanS = plan.makespanS
        lowerBoundS = plan.lowerBoundS
        ratio = plan.ratio
        gpus = plan.gpus.map { GPUEntry(index: $0.index, uuid: $0.uuid, model: $0.model, memoryGB: $0.memoryGB, timeScale: $0.timeScale) }
        let card = Dictionary(plan.gpus.map { ($0.index, $0) }, uniquingKeysWith: { a, _ in a })
        placements = plan.runs.map { r in
            // Its time alone on the card it is placed on.
            let e = plan.estimates[r.jobID].map { e in card[r.gpu].map { e.on($0) } ?? e }
            return PlacementEntry(job: r.jobID, gpu: r.gpu, startS: r.startS, endS: r.endS, memoryGB: r.memoryGB, predictedSoloS: e?.seconds ?? 0,
                                  hostRAMGB: e?.hostRAMGB ?? 0, extrapolated: e?.extrapolated ?? false)
        }
        unplaceable = plan.unplaceable.map { UnplaceableEntry(job: $0.jobID, reason: $0.reason, location: "\($0.location)", suggestion: $0.suggestion) }
        waits = plan.waits
    }
}
