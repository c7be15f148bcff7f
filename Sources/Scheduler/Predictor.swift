import Foundation
import Manifest

/// What a job is expected to need.
public struct Estimate: Sendable, Hashable, Codable {
    /// GPU memory to reserve, headroom included.
    public var memoryGB: Double
    /// The model's figure before headroom.
    public var rawMemoryGB: Double
    /// Seconds running alone on a GPU.
    public var seconds: Double
    /// True when the settings lie outside the calibration points.
    public var extrapolated: Bool
    /// Where the figures came from: `profile` (its defaults), `calibration`, `history` (earlier batches), `batch`
    /// (this batch's attempts) or `oom` (a lower bound from an out-of-memory attempt). `Predictor.provenance` words it.
    public var source: String
    /// Host RAM the job is expected to peak at, in GB (0 when the profile has no host-RAM model).
    public var hostRAMGB: Double = 0
    /// The part of `seconds` that sharing the GPU does not slow, taken as leading: a cold attempt's start-up (the
    /// interpreter, reading weights, moving them to the card), during which it takes no share of the GPU's compute
    /// either; a warm worker's request's fixed part (the profile's start-up less its worker's load: a request's set-up,
    /// its save and mux, mostly on the CPU). Until 2026-12-02 a request had none; Live Avatar's short requests, 16.8 s
    /// of whose 26 s are that part, then read S(2) 1.33-1.90 by how their fixed parts met (docs/benchmarks.md).
    public var unsharedSeconds: Double = 0

    /// The part of `seconds` that shares the GPU (a render): `seconds` less `unsharedSeconds`, the latter taken within
    /// [0, seconds]. What S(k)/k slows, what a lower bound divides among slots.
    public var renderSeconds: Double { seconds - startUpSeconds }
    /// `unsharedSeconds` within [0, seconds].
    public var startUpSeconds: Double { min(max(unsharedSeconds, 0), seconds) }

    /// The estimate on `gpu`: its render scaled by the card's `GPU.timeScale`, its start-up and memory as they are.
    public func on(_ gpu: GPU) -> Estimate {
        guard gpu.timeScale != 1 else { return self }
        var e = self
        e.seconds = gpu.seconds(seconds, unshared: unsharedSeconds)
        e.unsharedSeconds = startUpSeconds
        return e
    }

    /// An observation's seconds on `gpu` as the predictions' model would have taken them: the inverse of `on`, with
    /// `startUp` the part that is not scaled.
    public static func unscaled(_ seconds: Double, startUp: Double, on gpu: GPU) -> Double {
        guard gpu.timeScale != 1 else { return seconds }
        let u = min(max(startUp, 0), seconds)
        return u + (seconds - u) / gpu.timeScale
    }
}

/// Predicts a job's GPU memory and time from the renderer's calibration, corrected by what was observed.
///
/// Memory: interpolate the calibration points linearly in x = pixels x infer_frames (extrapolating from the
/// nearest two points outside their range), add decode memory (offline: per-clip GB x num_clip; online: a
/// constant), scale by the offload and fp8 factors, then add headroom. Time: startup + ms/frame (interpolated
/// the same way) x frames, scaled by sample_steps and the offload factor.
public struct Predictor: Sendable {
    public var profile: RendererProfile
    /// What was observed, by bucket; it overrides the prior for the same bucket. Kept as running figures: the
    /// run loop estimates every queued job at every event, and filtering each bucket's observations there made a
    /// 1,000-job batch quadratic in its observations.
    private var observed: [String: Observed] = [:]

    struct Observed {
        var peakGB: Double?      // the largest measured peak of runs that did not run out of memory
        var oomGB: Double?       // the largest memory figure of an OOM (a lower bound)
        var cold = Times()       // processes of their own, which paid the whole start-up
        var warm = Times()       // warm workers' requests, which paid the start-up less the load
        var reported = Times()   // cold attempts less the start-up their renderer reported: a request's time each
        var startups = Mean()    // those start-ups
        var batch = 0            // observations of this batch
        var history = 0          // of earlier batches on this GPU model
        var borrowed: [String: Int] = [:]  // of earlier batches on other GPU models, by how they were scaled
    }

    /// Running sums of one kind's times, for seconds = fixed + rate x frames with the kind's fixed part known: the
    /// render rate of one observation is (seconds - fixed) / frames, so the sums are of seconds / frames and 1 / frames.
    struct Times {
        var perFrame = 0.0
        var inverse = 0.0
        var count = 0
        var shortest = Double.infinity
        mutating func add(_ seconds: Double, frames: Int) {
            perFrame += seconds / Double(frames)
            inverse += 1 / Double(frames)
            count += 1
            shortest = min(shortest, seconds)
        }
    }

    struct Mean {
        var sum = 0.0
        var count = 0
        mutating func add(_ x: Double) { sum += x; count += 1 }
        var value: Double? { count > 0 ? sum / Double(count) : nil }
    }

    /// Start-ups renderers reported, by load settings (`startupKey`): a bucket no attempt has run yet starts up as
    /// the others did.
    private var startups: [String: Mean] = [:]

    /// What a start-up depends on among the settings: where the weights go, and how they are converted. A bucket ends
    /// with it (`bucket`), so `startupKey(bucket:)` reads it back from an observation's.
    static func startupKey(_ s: ClipSettings) -> String { "offload=\(s.offloadModel)|fp8=\(s.fp8)" }

    /// Predict times as a warm worker's requests (docs/workers.md): the profile's start-up less its worker's load, then
    /// the render. Observations of either kind serve both: each is taken less its own kind's fixed part.
    public var warm = false

    /// Where an observation comes from.
    public enum Origin: Sendable, Hashable {
        /// This batch's own attempts.
        case batch
        /// Earlier batches on the same GPU model (the history store).
        case history
        /// Earlier batches on another GPU model, scaled by a ratio learned from buckets both models ran; the text says
        /// which model and ratio.
        case borrowed(String)
    }

    /// What the profile's figures are: its own defaults, or a calibration's (`calibrated(by:)`), in words.
    public var priorDescription = "profile"
    public var priorIsCalibration = false
    /// OOM lower bounds that apply to one job only, by "job|bucket".
    private var jobFloors: [String: Double] = [:]
    /// The jobs that have a lower bound of their own: the only ones whose estimate differs from their settings'.
    private var jobsWithFloors: Set<String> = []
    /// Goes up with every observation: estimates cached at one generation are current while it stays.
    public private(set) var generation = 0
    /// Fraction added to memory predictions.
    public var headroom: Double
    /// How many observations the prior's render rate counts as beside a bucket's observed times (0: they replace it):
    /// `calibrationWeight` when the profile's time points were measured on this GPU model (a calibration), else 0
    /// (figures from another GPU should not hold back what this one measured).
    public var timePriorWeight: Double
    /// What a calibration's render rate weighs as, in observations. A bucket's observation is one attempt, and one cold
    /// attempt of 7-10 s on an H200 took from 21% less to 20% more in the next batch on the same host; the calibration's
    /// fit averages over its probes. Chosen with the replay over the recorded runs (docs/benchmarks.md).
    public static let calibrationWeight = 2.0

    /// The calibration curves, as (pixels x frames, value) sorted by x with duplicates averaged, built once.
    private let memoryCurve: [(Double, Double)]
    private let timeCurve: [(Double, Double)]

    public init(profile: RendererProfile, observations: [Observation] = [], headroom: Double? = nil) {
        self.profile = profile
        self.headroom = headroom ?? profile.memory.headroom
        timePriorWeight = profile.time.measuredHere ? Predictor.calibrationWeight : 0
        // Calibration points of a fit-area renderer are written at the frame it rendered, so their x needs no fitting.
        memoryCurve = Predictor.curve(profile.memory.points.map { (Double($0.size.pixels * $0.inferFrames), $0.gb) })
        timeCurve = Predictor.curve(profile.time.points.map { (Double($0.size.pixels * $0.inferFrames), $0.msPerFrame) })
        for o in observations { observe(o) }
    }

    /// Adds an observation (the run loop calls this as attempts finish; a batch's start adds the history's).
    public mutating func observe(_ o: Observation, origin: Origin = .batch) {
        generation += 1
        if o.oom, let job = o.jobID {
            jobsWithFloors.insert(job)
            jobFloors[job + "|" + o.bucket] = max(jobFloors[job + "|" + o.bucket] ?? 0, o.peakGB ?? 0)
        } else {
            var b = observed[o.bucket] ?? Observed()
            if o.oom {
                if let p = o.peakGB { b.oomGB = max(b.oomGB ?? p, p) }
            } else {
                if let p = o.peakGB { b.peakGB = max(b.peakGB ?? p, p) }
                if o.frames > 0, let sec = o.seconds {
                    if o.warm {
                        b.warm.add(sec, frames: o.frames)
                    } else if let u = o.startupSeconds, u >= 0, u < sec {
                        b.reported.add(sec - u, frames: o.frames)
                        b.startups.add(u)
                        if let key = Predictor.startupKey(bucket: o.bucket) { startups[key, default: Mean()].add(u) }
                    } else {
                        b.cold.add(sec, frames: o.frames)
                    }
                }
            }
            switch origin {
            case .batch: b.batch += 1
            case .history: b.history += 1
            case let .borrowed(how): b.borrowed[how, default: 0] += 1
            }
            observed[o.bucket] = b
        }
    }

    /// `startupKey` read back from a bucket (its last two fields); nil for a bucket of another shape.
    static func startupKey(bucket: String) -> String? {
        let parts = bucket.split(separator: "|")
        guard parts.count >= 2, parts[parts.count - 2].hasPrefix("offload="), parts[parts.count - 1].hasPrefix("fp8=") else { return nil }
        return parts.suffix(2).joined(separator: "|")
    }

    /// Whether `jobID` has an OOM lower bound of its own (else its estimate is its settings').
    public func hasOwnFloor(_ jobID: String) -> Bool { jobsWithFloors.contains(jobID) }

    /// The settings bucket observations are pooled by: everything that changes memory, with num_clip
    /// rounded to a power of two (offline decode grows with it), and sample steps other than the profile's default
    /// (a render's time follows them: `steps8`). A bucket at the default steps reads as it did before they were kept,
    /// so older histories still match.
    public func bucket(_ s: ClipSettings) -> String { bucket(s, frame: profile.renderedFrame(s)) }

    /// The bucket, given the frame `estimate` has already fitted (fitting is up to 100 steps per call).
    func bucket(_ s: ClipSettings, frame: FrameSize) -> String {
        let clips = s.onlineDecode ? 0 : (s.numClip <= 1 ? 1 : 1 << (Int.bitWidth - (s.numClip - 1).leadingZeroBitCount))
        // A fit-area renderer's memory follows the frame it renders, not the size asked for.
        let size = profile.framing == .exact ? "\(s.size)" : "\(s.size)>\(frame)"
        let steps = s.sampleSteps == defaultSteps ? "" : "|steps\(s.sampleSteps)"
        return "\(profile.name)|\(size)|f\(s.inferFrames)|\(s.onlineDecode ? "online" : "offline\(clips)")\(steps)|\(Predictor.startupKey(s))"
    }

    /// The sample steps a clip has unless it says otherwise: the profile's default, else the manifest's.
    var defaultSteps: Int { profile.defaults["sample_steps"].flatMap { Int($0) } ?? ClipSettings.defaultSampleSteps }

    /// Settings in `bucket` that render `frames` frames: what the bucket's time alone is predicted from where no
    /// observation of it rendered alone. nil for a bucket of another renderer or shape, or one these settings would not
    /// fall into again.
    public func settings(bucket text: String, frames: Int) -> ClipSettings? {
        var parts = text.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 6 else { return nil }
        let startup = parts.suffix(2)
        parts.removeLast(2)
        var steps = defaultSteps
        if let last = parts.last, last.hasPrefix("steps") {
            guard let n = Int(last.dropFirst(5)), n > 0 else { return nil }
            steps = n
            parts.removeLast()
        }
        guard parts.count >= 4, parts.dropLast(3).joined(separator: "|") == profile.name else { return nil }
        let (sizeText, framesText, decode) = (parts[parts.count - 3], parts[parts.count - 2], parts[parts.count - 1])
        let sizes = sizeText.split(separator: ">").map(String.init)
        guard let size = sizes.first.flatMap(FrameSize.init), framesText.hasPrefix("f"), let inferFrames = Int(framesText.dropFirst()), inferFrames > 0,
              frames > 0, frames % inferFrames == 0, decode == "online" || decode.hasPrefix("offline") else { return nil }
        let s = ClipSettings(size: size, numClip: frames / inferFrames, inferFrames: inferFrames, sampleSteps: steps, onlineDecode: decode == "online",
                             offloadModel: startup.first == "offload=true", fp8: startup.last == "fp8=true", seed: 0,
                             reference: sizes.count == 2 ? FrameSize(sizes[1]) : nil)
        return bucket(s) == text ? s : nil
    }

    /// The estimate for these settings; with `jobID`, that job's own OOM lower bounds count too.
    public func estimate(_ s: ClipSettings, jobID: String? = nil) -> Estimate {
        let m = profile.memory
        let frame = profile.renderedFrame(s)
        let x = Double(frame.pixels * s.inferFrames)
        var raw: Double
        var memExtra = false
        if m.isResidentModel {
            // Weights stay for the whole job; the KV caches follow the latent tokens of one clip (F/4 latent frames of
            // (H/16)(W/16) tokens); activations follow one latent frame's tokens. Measured on an H200: within 0.6 GB of
            // every peak from 256x384 to 384x704, bf16 and fp8 (docs/benchmarks.md).
            let frameTokens = Double(frame.pixels) / 256
            let latentTokens = Double(s.inferFrames) / 4 * frameTokens
            raw = (s.fp8 && m.residentFP8GB > 0 ? m.residentFP8GB : m.residentGB) + m.perLatentTokenGB * latentTokens + m.perJobGB
                + m.perFrameTokenGB * frameTokens + (s.onlineDecode ? m.onlineDecodeGB : 0)
            if s.offloadModel { raw *= m.offloadFactor }
        } else {
            let (base, extra) = Predictor.interpolate(memoryCurve, at: x)
            memExtra = extra
            raw = base + (s.onlineDecode ? m.onlineDecodeGB : m.offlineClipGB(pixelFrames: x) * Double(s.numClip))
            if s.offloadModel { raw *= m.offloadFactor }
            if s.fp8 { raw *= m.fp8Factor }
        }
        let hostRAM = m.hostRAMGB + m.hostRAMPerMegapixelFrameGB * Double(frame.pixels) * Double(s.totalFrames) / 1e6
        let t = profile.time
        // Below the smallest point measured, a frame costs what it cost there: fewer frames a clip do not make each frame
        // cheaper (each clip has costs of its own), where extrapolating the slope down did. On the H200 proof runs,
        // synthetic-dit's 384*256 x32 clips, below a calibration's 384*256 x48 point, were predicted at 1.6 ms a frame
        // where the x48 point says 2.3 and they took more (docs/benchmarks.md, "Time below the smallest point").
        let (msPerFrame, timeExtra) = Predictor.interpolate(timeCurve, at: x, floor: 1)
        var perFrame = msPerFrame / 1000
        if t.referenceSampleSteps > 0 { perFrame *= Double(s.sampleSteps) / Double(t.referenceSampleSteps) }
        if s.offloadModel { perFrame *= t.offloadFactor }
        // The fixed part of a cold attempt (the whole start-up) and of a warm request (the start-up less the load). Where
        // renderers reported their start-ups, a cold attempt's is theirs on top of a request's.
        let hot = profile.requestFixedSeconds
        let reportedStartup = startups[Predictor.startupKey(s)]?.value
        let fixed = (cold: reportedStartup.map { $0 + hot } ?? t.startupSeconds, warm: hot)
        var seconds = (warm ? fixed.warm : fixed.cold) + perFrame * Double(s.totalFrames)
        var unshared = warm ? fixed.warm : reportedStartup ?? fixed.cold
        let prior = priorIsCalibration ? "calibration" : "profile"
        var source = prior

        let key = bucket(s, frame: frame)
        if let obs = observed[key] {
            let learned = obs.batch > 0 ? "batch" : "history"
            if let peak = obs.peakGB { raw = peak; source = learned }
            // An OOM is a lower bound: never predict less than what already failed.
            if let floor = obs.oomGB, floor > raw { raw = floor; source = "oom" }
            if let (learnedSeconds, learnedUnshared) = Predictor.seconds(obs, fixed: fixed, warm: warm, frames: s.totalFrames,
                                                                       prior: (perFrame, timePriorWeight)) {
                seconds = learnedSeconds
                unshared = learnedUnshared
                if source == prior { source = learned }
            }
        }
        if let job = jobID, let floor = jobFloors[job + "|" + key], floor > raw {
            raw = floor
            source = "oom"
        }
        let extrapolated = (source == "profile" || source == "calibration") && (memExtra || timeExtra)
        return Estimate(memoryGB: raw * (1 + headroom), rawMemoryGB: raw, seconds: max(seconds, 0.001), extrapolated: extrapolated, source: source,
                        hostRAMGB: hostRAM, unsharedSeconds: min(max(unshared, 0), max(seconds, 0.001)))
    }

    /// Seconds for `frames` from a bucket's observed times: the mode's fixed part plus the mean render rate (the
    /// prior's rate, `prior.perFrame`, counted as `prior.weight` more observations), each
    /// observation taken less its own kind's fixed part (a cold attempt whose renderer reported its start-up counts
    /// as the request it holds). A time shorter than its kind's fixed part shows the profile's start-up is too long on
    /// this machine: the fixed parts come down by the difference (the observations then predict themselves, as a plain
    /// mean rate would). A cold attempt's fixed part is the mean reported start-up of the bucket, where there is one,
    /// on top of a request's. Also returns what shares nothing: a cold attempt's start-up, a warm request's fixed part.
    /// nil without observed times.
    static func seconds(_ obs: Observed, fixed: (cold: Double, warm: Double), warm: Bool, frames: Int,
                        prior: (perFrame: Double, weight: Double)) -> (Double, Double)? {
        let n = obs.cold.count + obs.warm.count + obs.reported.count
        guard n > 0 else { return nil }
        var over = 0.0
        if obs.cold.count > 0 { over = max(over, fixed.cold - obs.cold.shortest) }
        if obs.warm.count > 0 { over = max(over, fixed.warm - obs.warm.shortest) }
        if obs.reported.count > 0 { over = max(over, fixed.warm - obs.reported.shortest) }
        let cold = max(fixed.cold - over, 0), hot = max(fixed.warm - over, 0)
        let rendered = obs.cold.perFrame - cold * obs.cold.inverse + (obs.warm.perFrame - hot * obs.warm.inverse)
            + (obs.reported.perFrame - hot * obs.reported.inverse)
        let startup = obs.startups.value ?? cold
        let coldFixed = obs.startups.value.map { $0 + hot } ?? cold
        let rate = (rendered + prior.weight * prior.perFrame) / (Double(n) + prior.weight)
        return ((warm ? hot : coldFixed) + max(rate, 0) * Double(frames), warm ? hot : startup)
    }

    /// Where an estimate for these settings comes from, in words: "profile defaults", "calibration (...)", "history:
    /// 7 observation(s)", "this batch: 2 observation(s)", with an OOM's lower bound when one applies.
    public func provenance(_ s: ClipSettings, jobID: String? = nil) -> String {
        let e = estimate(s, jobID: jobID)
        var parts: [String] = []
        if let obs = observed[bucket(s)] {
            if obs.history > 0 { parts.append("history: \(obs.history) observation(s) on this GPU model") }
            for (how, n) in obs.borrowed.sorted(by: { $0.key < $1.key }) { parts.append("history: \(n) observation(s) \(how)") }
            if obs.batch > 0 { parts.append("this batch: \(obs.batch) observation(s)") }
        }
        if parts.isEmpty { parts.append(priorDescription) }
        if e.source == "oom" { parts.append("raised to an out-of-memory attempt's lower bound") }
        return parts.joined(separator: "; ")
    }

    /// Points sorted by x, duplicates at the same x averaged.
    static func curve(_ points: [(Double, Double)]) -> [(Double, Double)] {
        var byX: [Double: [Double]] = [:]
        for (px, py) in points { byX[px, default: []].append(py) }
        return byX.map { ($0.key, $0.value.reduce(0, +) / Double($0.value.count)) }.sorted { $0.0 < $1.0 }
    }

    /// Linear interpolation over a `curve`; flags values outside the points. With one point, y scales with x.
    /// `floor`: below the first point, never less than this fraction of its value (memory does not go to zero; a frame's
    /// time does not fall below the smallest point's).
    static func interpolate(_ p: [(Double, Double)], at x: Double, floor: Double = 0.25) -> (Double, Bool) {
        guard let first = p.first, let last = p.last else { return (0, true) }
        if p.count == 1 { return (first.0 > 0 ? first.1 * x / first.0 : first.1, x != first.0) }
        if x < first.0 || x > last.0 {
            let (a, b) = x < first.0 ? (p[0], p[1]) : (p[p.count - 2], p[p.count - 1])
            let slope = (b.1 - a.1) / (b.0 - a.0)
            return (max(a.1 + slope * (x - a.0), first.1 * floor), true)
        }
        for i in 1..<p.count where x <= p[i].0 {
            let (a, b) = (p[i - 1], p[i])
            return (a.1 + (b.1 - a.1) * (x - a.0) / (b.0 - a.0), false)
        }
        return (last.1, false)
    }
}

/// The figures in PyTorch's OOM message: a lower bound on what the job needs.
public struct OOMReport: Sendable, Hashable, Codable {
    /// "Tried to allocate X GiB".
    public var triedGiB: Double?
    /// "total capacity of Y GiB".
    public var capacityGiB: Double?
    /// "this process has Z GiB memory in use".
    public var processInUseGiB: Double?

    public init(triedGiB: Double? = nil, capacityGiB: Double? = nil, processInUseGiB: Double? = nil) {
        self.triedGiB = triedGiB
        self.capacityGiB = capacityGiB
        self.processInUseGiB = processInUseGiB
    }

    /// Parses `torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 200.00 GiB. GPU 0 has a total
    /// capacity of 79.18 GiB of which ... this process has 518.00 MiB memory in use`.
    public static func parse(_ text: String) -> OOMReport {
        func figure(after marker: String) -> Double? {
            guard let r = text.range(of: marker) else { return nil }
            let rest = text[r.upperBound...].drop(while: { $0 == " " })
            let number = rest.prefix(while: { $0.isNumber || $0 == "." })
            guard let value = Double(number) else { return nil }
            let unit = rest.dropFirst(number.count).drop(while: { $0 == " " }).prefix(3)
            switch unit {
            case "MiB": return value / 1024
            case "KiB": return value / (1024 * 1024)
            case "TiB": return value * 1024
            default: return value
            }
        }
        return OOMReport(triedGiB: figure(after: "Tried to allocate"), capacityGiB: figure(after: "total capacity of"),
                         processInUseGiB: figure(after: "this process has"))
    }

    /// GB (GiB, as everywhere in avatar-batch) the job needed at least: what it held plus what it asked for.
    public var lowerBoundGB: Double? {
        guard let tried = triedGiB else { return nil }
        return tried + (processInUseGiB ?? 0)
    }
}
