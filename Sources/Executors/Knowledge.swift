import Checkpoint
import Foundation
import Manifest
import Scheduler

/// What a batch's predictions start from (docs/calibration.md): the profile, replaced by a calibration of the
/// renderer on this GPU model when there is one, then corrected by the history of earlier batches (this model's
/// figures as they are, another model's only through learned ratios), S(k) learned from co-located runs, and finally
/// this batch's own attempts. It also writes what this batch learns back to the history.
public final class Knowledge: @unchecked Sendable {
    /// The profile as predictions use it: calibrated, with learned sharing.
    public let profile: RendererProfile
    public let history: History?
    /// The GPU model predictions are made for (the batch's most common one).
    public let gpuModel: String?
    /// The batch's other GPU models.
    public let otherModels: [String]
    /// How long a render takes on each of `otherModels` against `gpuModel` (`GPU.timeScale`, set by `scaled`), and
    /// where that comes from: both models' calibrations (`Learning.renderRatio`), else the settings both ran in earlier
    /// batches (`Learning.ratios`, at least two). A model with neither is absent: it is planned as fast as `gpuModel`.
    /// Memory is predicted alike on every model (the same code holds the same tensors; a calibration's memory figures
    /// differ between GPU models by the CUDA context, well within the headroom).
    public let timeScales: [String: (scale: Double, from: String)]
    public let calibration: CalibrationRecord?
    /// A complete calibration newer than `calibration`, passed over because its probes ran cold and `calibration`'s
    /// warm (`History.calibration`); the basis names it.
    public let passedOver: CalibrationRecord?
    let entries: [(Observation, Predictor.Origin)]
    public let learnedSharing: [Int: Double]
    /// The S(k) the learning started from (the calibration's, else the profile's): a learned S(k) that the batches'
    /// attempts did not move from it is named as such (`basis`).
    let priorSharing: SharingModel
    /// The worker load this batch expects from the history: the median of the newest `recentLoads` loads on this GPU
    /// model since its calibration, of the batch's load settings where the history has some (Live Avatar's fp8
    /// workers convert their weights as they load), and how many that was (nil: the calibration's or the profile's
    /// `load_s`).
    public let learnedLoad: (seconds: Double, count: Int)?
    /// The load settings `learnedLoad` is of (`RendererProfile.workerKey`); nil: of any (the batch named none, or the
    /// history has none of the batch's yet).
    public let learnedLoadSettings: String?
    /// The load settings the batch asked for (`init`'s `loadSettings`).
    let loadSettings: String?
    /// Each load-settings group's expected load from the history, as `learnedLoad` is the batch's common group's:
    /// the median of its newest `recentLoads` loads on this GPU model since the calibration.
    public let loadsBySettings: [String: Double]
    /// How many of the newest loads the expected load is the median of: loads follow the page cache and the disk of
    /// the day, so the last few say more than the window.
    public static let recentLoads = 5
    /// Why the history is not used, or is used read-only (printed as warnings).
    public let warnings: [String]
    /// The batch's name in the history.
    let batch: String
    /// The batch runs on warm workers (`init`'s `warm`).
    let warm: Bool

    /// `readOnly` (plan, status): a missing history is no history, and nothing is created or written. `loadSettings`:
    /// the load settings most of the batch's clips need (`commonLoadSettings`), whose loads it expects.
    /// `sharingPriorWeight`: how much the calibration's (else the profile's) S(k) weighs against what the history's
    /// attempts teach (`Learning.sharingPriorWeight`; the replay benchmark varies it). `warm`: the batch runs on warm
    /// workers, and learns S(k) from earlier warm requests only; else from attempts started cold only. A cold
    /// attempt's reference alone rendered while neighbours started up beside it, which a warm batch has none of: on an
    /// H200, S(2) = 2.00 learned from two cold batches planned their warm batch at 56 s, and it ran 85 s. The
    /// calibration's S(k) is measured on warm requests, and so are its times alone, against which a warm batch's
    /// requests teach S(k) where their bucket never rendered alone here.
    public init(profile: RendererProfile, gpus: [GPU], historyPath: String?, batch: String, readOnly: Bool = false, loadSettings: String? = nil,
                sharingPriorWeight: Double = Learning.sharingPriorWeight, warm: Bool = false) {
        var warnings: [String] = []
        var history: History?
        if let path = historyPath, !readOnly || FileManager.default.fileExists(atPath: path) {
            do {
                history = try History(path: path, readOnly: readOnly)
                if !readOnly && history!.readOnly { warnings.append("the history at \(path) is read-only: this batch learns from it but adds nothing to it") }
            } catch {
                warnings.append("\(error)")
            }
        }
        let model = Learning.primaryModel(gpus)
        let others = Set(gpus.map(Learning.modelKey)).subtracting(model.map { [$0] } ?? []).sorted()
        var otherFits: [String: (fit: CalibrationFit, day: String)] = [:]
        for other in others {
            if let r = try? history?.calibration(rendererIdentity: profile.identityDigest, gpuModel: other), let fit = r.fit { otherFits[other] = (fit, Knowledge.day(r)) }
        }
        var scales: [String: (scale: Double, from: String)] = [:]
        var p = profile
        var calibration: CalibrationRecord?
        var passedOver: CalibrationRecord?
        var entries: [(Observation, Predictor.Origin)] = []
        var sharing: [Int: Double] = [:]
        var prior = SharingModel(profile.sharing)
        var load: (seconds: Double, count: Int)?
        var loadOf: String?
        var byGroup: [String: Double] = [:]
        if let h = history, let model {
            do {
                let complete = try h.completeCalibrations(rendererIdentity: profile.identityDigest, gpuModel: model)
                calibration = History.preferred(complete)
                if let newest = complete.first, newest.id != calibration?.id { passedOver = newest }
                if let fit = calibration?.fit { p = p.calibrated(by: fit) }
                if p.worker != nil {
                    // Only loads since the calibration: a new calibration (a new driver, a new disk) starts the count again.
                    let since = calibration.map { $0.finishedAt ?? $0.startedAt } ?? 0
                    let all = try h.loads(rendererIdentity: profile.identityDigest, gpuModel: model, since: since)
                    // Newest first, in each group as in all.
                    let groups = Dictionary(grouping: all, by: \.loadSettings)
                    let mine = loadSettings.flatMap { groups[$0] } ?? []
                    loadOf = mine.isEmpty ? nil : loadSettings
                    let recent = (mine.isEmpty ? all : mine).prefix(Knowledge.recentLoads).map(\.seconds)
                    // A load is start to ready; a new worker's first request then pays what the calibration measured it
                    // to cost more (`CalibrationFit.firstRequestSeconds`), which a worker's `load_s` holds.
                    let first = calibration?.fit?.firstRequestSeconds ?? 0
                    if !recent.isEmpty {
                        let expected = Learning.median(recent)
                        load = (expected, recent.count)
                        p = p.withWorkerLoad(expected + first)
                    }
                    byGroup = groups.mapValues { Learning.median($0.prefix(Knowledge.recentLoads).map(\.seconds)) + first }
                }
                let all = try h.observations(rendererIdentity: profile.identityDigest).map {
                    HistoryEntry(gpuModel: $0.gpuModel, observation: Observation(bucket: $0.bucket, gpuModel: $0.gpuModel, peakGB: $0.peakGB,
                                                                                 seconds: $0.seconds, frames: $0.frames, oom: $0.oom, warm: $0.warm,
                                                                                 startupSeconds: $0.startupSeconds),
                                 colocated: $0.colocated, wallSeconds: $0.wallSeconds, stretches: $0.stretches)
                }
                entries = Learning.observations(for: model, from: all)
                // A warm batch packs its requests, so few or none render alone: each is measured against the calibration's
                // time for it alone (its probes rendered alone on this model) where its bucket has no time alone of its own.
                let alone = { var q = Predictor(profile: p); q.warm = true; return q }()
                // Only a calibration whose probes were warm requests measured one alone: a cold one's are processes.
                let reference: ((HistoryEntry) -> Double?)? = warm && calibration?.fit?.ranWarm == true
                    ? { e in alone.settings(bucket: e.observation.bucket, frames: e.observation.frames).map { alone.estimate($0).seconds } } : nil
                prior = SharingModel(p.sharing)
                sharing = Learning.sharing(for: model, from: all, unshared: p.time.startupSeconds,
                                           requestUnshared: p.requestFixedSeconds, prior: prior,
                                           priorWeight: sharingPriorWeight, warm: warm, reference: reference)
                p = p.withSharing(sharing)
                for other in others {
                    if let mine = calibration?.fit, let theirs = otherFits[other], let r = Learning.renderRatio(of: theirs.fit, to: mine) {
                        scales[other] = (r, "its calibration of \(theirs.day) against \(model)'s")
                    } else if let r = Learning.ratios(of: other, to: model, from: all), let t = r.time {
                        scales[other] = (t, "learned from \(r.common) setting(s) both ran in earlier batches")
                    }
                }
            } catch {
                warnings.append("the history at \(h.path) could not be read (\(error)); predictions start from the profile")
                entries = []
                calibration = nil
                passedOver = nil
                scales = [:]
                load = nil
                p = profile
            }
        }
        self.profile = p
        self.history = history
        self.gpuModel = model
        self.otherModels = others
        self.timeScales = scales
        self.calibration = calibration
        self.passedOver = passedOver
        self.entries = entries
        self.learnedSharing = sharing
        self.priorSharing = prior
        self.learnedLoad = load
        self.learnedLoadSettings = load == nil ? nil : loadOf
        self.loadSettings = loadSettings
        self.loadsBySettings = byGroup
        self.warm = warm
        self.warnings = warnings
        self.batch = batch
    }

    /// The load settings most of `settings` need a worker of (the first among equals); nil without a worker.
    public static func commonLoadSettings(_ profile: RendererProfile, _ settings: [ClipSettings]) -> String? {
        guard profile.worker != nil, !settings.isEmpty else { return nil }
        let keys = settings.map(profile.workerKey)
        let counts = Dictionary(keys.map { ($0, 1) }, uniquingKeysWith: +)
        return keys.first { counts[$0] == counts.values.max() }
    }

    /// The profile alone: no history (tests, `--no-history`).
    public convenience init(profile: RendererProfile) {
        self.init(profile: profile, gpus: [], historyPath: nil, batch: "")
    }

    /// A predictor starting from all of it, then this batch's own observations.
    public func predictor(batch observations: [Observation] = []) -> Predictor {
        var p = Predictor(profile: profile)
        p.priorDescription = priorDescription
        p.priorIsCalibration = calibration?.fit != nil
        for (o, origin) in entries { p.observe(o, origin: origin) }
        for o in observations { p.observe(o, origin: .batch) }
        return p
    }

    var priorDescription: String {
        guard let c = calibration, let fit = c.fit else { return "profile defaults" }
        let day = Knowledge.day(c)
        // Where the batch runs otherwise than the probes did, their figures are of the other kind: a cold process
        // renders slower alone than a warm request and shares the card better (docs/benchmarks.md).
        let kind = profile.worker == nil || fit.ranWarm == warm ? "" : (fit.ranWarm ? " (its probes ran on warm workers)" : " (its probes ran cold)")
        return "calibration of \(day) on \(c.gpuModel)\(kind)"
    }

    /// The day a calibration finished, as the basis and `calibrate` name it.
    public static func day(_ c: CalibrationRecord) -> String {
        Date(timeIntervalSince1970: c.finishedAt ?? c.startedAt).formatted(.iso8601.year().month().day())
    }

    /// The basis in one line, for the run's opening and `status`.
    public var basis: String {
        var parts = [priorDescription]
        if let newer = passedOver, calibration?.fit != nil, newer.fit?.ranWarm == false {
            parts.append("the newer calibration of \(Knowledge.day(newer)) is not used: its probes ran cold, and a warm calibration predicts cold batches better too")
        }
        let same = entries.filter { $0.1 == .history }.count
        let borrowed = entries.count - same
        if same > 0 { parts.append("history: \(same) observation(s) on \(gpuModel ?? "this GPU model")") }
        if borrowed > 0 { parts.append("history: \(borrowed) observation(s) from other GPU models, scaled by learned ratios") }
        if let l = learnedLoad {
            let of = learnedLoadSettings.map { $0.isEmpty ? "" : " of \($0)" } ?? (loadSettings == nil ? "" : " (none yet of this batch's load settings)")
            parts.append(String(format: "worker load %.1f s: the median of the last %d load(s)%@ on %@", l.seconds, l.count, of, gpuModel ?? "this GPU model"))
        }
        if !learnedSharing.isEmpty {
            // The fit is a weighted median with the prior among its rows: where the attempts did not move it, say so.
            let held = calibration?.fit != nil ? " (as calibrated)" : " (the profile's)"
            parts.append("S(k) learned\(warm ? " from warm requests" : ""): " + learnedSharing.sorted { $0.key < $1.key }.map {
                String(format: "%d: %.2f", $0.key, $0.value) + (abs($0.value - priorSharing.aggregate($0.key)) < 0.005 ? held : "")
            }.joined(separator: ", "))
        }
        if let model = gpuModel, !otherModels.isEmpty {
            // Predictions are of the batch's most common model; the others' renders are scaled (`scaled`).
            for other in otherModels {
                if let t = timeScales[other] {
                    parts.append(String(format: "renders on %@ take x%.2f of %@'s (%@)", other, t.scale, model, t.from))
                } else {
                    parts.append("renders on \(other) are planned as on \(model): no calibration of both, nor settings both ran, says otherwise")
                }
            }
        }
        return parts.joined(separator: "; ")
    }

    /// `gpus` with each card's `timeScale` set from `timeScales` (1 for the batch's own model and for models of no known
    /// speed): what the planner, the dispatcher and the executor place and time jobs on.
    public func scaled(_ gpus: [GPU]) -> [GPU] {
        gpus.map { g in
            var g = g
            g.timeScale = timeScales[Learning.modelKey(g)]?.scale ?? 1
            return g
        }
    }

    /// What a worker of these load settings (`RendererProfile.workerKey`) is expected to take to load: its group's
    /// loads in the history, else the profile's (calibrated, and moved to the batch's common group's loads).
    public func expectedLoad(_ settings: String) -> Double {
        loadsBySettings[settings] ?? profile.workerLoadSeconds
    }

    /// Adds a warm worker's load to the history, as `record` does an attempt's figures.
    public func recordLoad(_ seconds: Double, gpuModel: String, loadSettings: String) -> String? {
        write { h in
            try h.recordLoad(HistoryLoad(rendererIdentity: profile.identityDigest, renderer: profile.name, gpuModel: gpuModel, loadSettings: loadSettings,
                                         seconds: seconds, batch: batch))
        }
    }

    /// Adds what an attempt showed to the history (nothing when there is none, or it is read-only). A failure to
    /// write is a warning for the caller, never a stop: the batch's own store is what resume depends on.
    public func record(_ o: Observation, gpuModel: String, colocated: Int, wallSeconds: Double?, stretches: [Int: Double]? = nil) -> String? {
        write { h in
            try h.record(HistoryObservation(rendererIdentity: profile.identityDigest, renderer: profile.name, gpuModel: gpuModel, bucket: o.bucket,
                                            peakGB: o.peakGB, seconds: o.seconds, wallSeconds: wallSeconds, frames: o.frames, oom: o.oom,
                                            colocated: colocated, warm: o.warm, startupSeconds: o.startupSeconds, stretches: stretches, batch: batch))
        }
    }

    /// One write to a writable history; its failure in words (nil: written, or no history to write to).
    private func write(_ body: (History) throws -> Void) -> String? {
        guard let h = history, !h.readOnly else { return nil }
        do {
            try body(h)
            return nil
        } catch {
            return "could not add to the history at \(h.path): \(error)"
        }
    }
}
