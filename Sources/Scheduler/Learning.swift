import Foundation
import Manifest

/// One observation of an earlier batch, as the history hands it back.
public struct HistoryEntry: Sendable, Hashable {
    public var gpuModel: String
    public var observation: Observation
    /// How many attempts shared the GPU while it ran (1: alone). `observation.seconds` is solo-equivalent.
    public var colocated: Int
    /// Its wall time (a co-located attempt's S(k) evidence); nil: the same as `observation.seconds`.
    public var wallSeconds: Double?

    public init(gpuModel: String, observation: Observation, colocated: Int, wallSeconds: Double? = nil) {
        self.gpuModel = gpuModel
        self.observation = observation
        self.colocated = colocated
        self.wallSeconds = wallSeconds
    }
}

/// How earlier batches' figures become this batch's starting point (docs/calibration.md). Pure: the history store
/// reads, the session writes, this decides.
public enum Learning {
    /// A GPU model as history and calibrations key it: its name and its memory ("NVIDIA H200 140GB").
    public static func modelKey(_ gpu: GPU) -> String {
        let memory = "\(Int(gpu.memoryGB.rounded()))GB"
        return gpu.model.hasSuffix(memory) ? gpu.model : "\(gpu.model) \(memory)"
    }

    /// The GPU model most of `gpus` are (the first among equals): the one a batch's predictions are made for.
    public static func primaryModel(_ gpus: [GPU]) -> String? {
        let counts = Dictionary(gpus.map { (modelKey($0), 1) }, uniquingKeysWith: +)
        return gpus.map(modelKey).first { counts[$0] == counts.values.max() }
    }

    /// The observations a predictor for `model` starts from. The same model's are used as they are (their times are
    /// solo-equivalent already: a co-located attempt's wall time weighted by S(k)/k, as its batch counted it).
    /// Another model's are used only through ratios learned from settings buckets both models ran (at least
    /// `minimumCommon` of them), only for buckets `model` has not run, and are marked with the model and the ratios;
    /// without such ratios they are not used.
    public static func observations(for model: String, from entries: [HistoryEntry], minimumCommon: Int = 2) -> [(Observation, Predictor.Origin)] {
        var out: [(Observation, Predictor.Origin)] = []
        for e in entries where e.gpuModel == model { out.append((e.observation, .history)) }
        let mine = soloFigures(entries.filter { $0.gpuModel == model })
        let ranHere = Set(entries.filter { $0.gpuModel == model }.map(\.observation.bucket))
        for other in Set(entries.map(\.gpuModel)).subtracting([model]).sorted() {
            let theirs = soloFigures(entries.filter { $0.gpuModel == other })
            let common = Set(mine.keys).intersection(theirs.keys)
            var timeRatios: [Double] = [], memRatios: [Double] = []
            for b in common {
                if let a = mine[b]?.rate, let c = theirs[b]?.rate, c > 0 { timeRatios.append(a / c) }
                if let a = mine[b]?.peak, let c = theirs[b]?.peak, c > 0 { memRatios.append(a / c) }
            }
            guard timeRatios.count >= minimumCommon || memRatios.count >= minimumCommon else { continue }
            let rt = timeRatios.count >= minimumCommon ? median(timeRatios) : nil
            let rm = memRatios.count >= minimumCommon ? median(memRatios) : nil
            let how = "from \(other) (" + [rt.map { String(format: "time x%.2f", $0) }, rm.map { String(format: "memory x%.2f", $0) }]
                .compactMap { $0 }.joined(separator: ", ") + ", learned from \(max(timeRatios.count, memRatios.count)) shared bucket(s))"
            for e in entries where e.gpuModel == other && !e.observation.oom && !ranHere.contains(e.observation.bucket) {
                var o = e.observation
                o.gpuModel = model
                o.seconds = rt.flatMap { r in o.seconds.map { $0 * r } }
                o.startupSeconds = rt.flatMap { r in o.startupSeconds.map { $0 * r } }
                o.peakGB = rm.flatMap { r in o.peakGB.map { $0 * r } }
                guard o.seconds != nil || o.peakGB != nil else { continue }
                out.append((o, .borrowed(how)))
            }
        }
        return out
    }

    /// S(k) learned on `model`: for each k with at least `minimum` co-located observations in buckets that also ran
    /// alone, k x the median of (its time alone / its wall time co-located), each less `unshared` for a cold attempt
    /// (its start-up, which shares nothing: S(k) is of the render; a warm request has none; the renderer's own figure
    /// where it reported one), within [1, k] (see
    /// `sharing(k:alone:together:unshared:)`). Only what was seen.
    public static func sharing(for model: String, from entries: [HistoryEntry], minimum: Int = 3, unshared: Double = 0) -> [Int: Double] {
        let here = entries.filter { $0.gpuModel == model }
        let solo = soloFigures(here)
        var ratios: [Int: [Double]] = [:]
        for e in here where e.colocated > 1 && !e.observation.oom {
            guard let s = e.wallSeconds, e.observation.frames > 0, s > 0, let alone = solo[key(e)]?.alone else { continue }
            ratios[e.colocated, default: []].append(renderRatio(alone: alone * Double(e.observation.frames), together: s,
                                                                unshared: e.observation.warm ? 0 : e.observation.startupSeconds ?? unshared))
        }
        var out: [Int: Double] = [:]
        for (k, r) in ratios where r.count >= minimum { out[k] = min(max(Double(k) * median(r), 1), Double(k)) }
        return out
    }

    /// S(k) from one job's time alone and the mean time of k identical jobs together: k x alone / together, each less
    /// `unshared` (a cold start-up, which shares nothing, so S(k) is of the render alone); whole times when taking it
    /// off would leave almost nothing. Within [1, k]: k jobs together are taken to finish no later than one after
    /// another (a figure below 1 is noise: one H200 run learned S(2) = 0.87, and its next batch then ran one clip at a
    /// time, 2.8 times slower).
    public static func sharing(k: Int, alone: Double, together: Double, unshared: Double = 0) -> Double {
        min(max(Double(k) * renderRatio(alone: alone, together: together, unshared: unshared), 1), Double(k))
    }

    /// alone / together, each less `unshared` (a cold start-up), or whole when taking it off would leave almost nothing.
    static func renderRatio(alone: Double, together: Double, unshared: Double) -> Double {
        let u = unshared > 0 && unshared < 0.9 * min(alone, together) ? unshared : 0
        return (alone - u) / (together - u)
    }

    /// Per bucket and kind (`key`): mean solo-equivalent seconds per frame over every observation (`rate`), the same over
    /// jobs that ran alone only (`alone`, the reference S(k) is measured against), and the highest peak.
    static func soloFigures(_ entries: [HistoryEntry]) -> [String: (rate: Double?, alone: Double?, peak: Double?)] {
        var sums: [String: (sum: Double, n: Int, aSum: Double, aN: Int, peak: Double?)] = [:]
        for e in entries where !e.observation.oom {
            var v = sums[key(e)] ?? (0, 0, 0, 0, nil)
            if let s = e.observation.seconds, e.observation.frames > 0 {
                v.sum += s / Double(e.observation.frames); v.n += 1
                if e.colocated == 1 { v.aSum += s / Double(e.observation.frames); v.aN += 1 }
            }
            if let p = e.observation.peakGB { v.peak = max(v.peak ?? p, p) }
            sums[key(e)] = v
        }
        return sums.mapValues { ($0.n > 0 ? $0.sum / Double($0.n) : nil, $0.aN > 0 ? $0.aSum / Double($0.aN) : nil, $0.peak) }
    }

    /// What figures are compared by: the bucket, and whether the time is a warm request's (like with like: a request
    /// holds no load).
    static func key(_ e: HistoryEntry) -> String { e.observation.warm ? e.observation.bucket + "|warm" : e.observation.bucket }

    public static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}
