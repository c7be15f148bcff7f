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
    /// Seconds its render ran beside k attempts rendering on its card, itself included, by k (1: alone); nil: not
    /// recorded (then all of it is taken to have run at `colocated`).
    public var stretches: [Int: Double]?

    public init(gpuModel: String, observation: Observation, colocated: Int, wallSeconds: Double? = nil, stretches: [Int: Double]? = nil) {
        self.gpuModel = gpuModel
        self.observation = observation
        self.colocated = colocated
        self.wallSeconds = wallSeconds
        self.stretches = stretches
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
        let ranHere = Set(entries.filter { $0.gpuModel == model }.map(\.observation.bucket))
        for other in Set(entries.map(\.gpuModel)).subtracting([model]).sorted() {
            guard let r = ratios(of: model, to: other, from: entries, minimumCommon: minimumCommon) else { continue }
            let (rt, rm) = (r.time, r.memory)
            let how = "from \(other) (" + [rt.map { String(format: "time x%.2f", $0) }, rm.map { String(format: "memory x%.2f", $0) }]
                .compactMap { $0 }.joined(separator: ", ") + ", learned from \(r.common) shared bucket(s))"
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

    /// `model`'s figures against `other`'s, from the settings buckets (and kinds, `key`) both ran: the median ratio of
    /// their solo seconds per frame (`time`) and of their peaks (`memory`), each where at least `minimumCommon` buckets
    /// have both, and the most buckets either was learned from; nil where neither has enough.
    public static func ratios(of model: String, to other: String, from entries: [HistoryEntry], minimumCommon: Int = 2)
        -> (time: Double?, memory: Double?, common: Int)? {
        let mine = soloFigures(entries.filter { $0.gpuModel == model })
        let theirs = soloFigures(entries.filter { $0.gpuModel == other })
        var timeRatios: [Double] = [], memRatios: [Double] = []
        for b in Set(mine.keys).intersection(theirs.keys) {
            if let a = mine[b]?.rate, let c = theirs[b]?.rate, c > 0 { timeRatios.append(a / c) }
            if let a = mine[b]?.peak, let c = theirs[b]?.peak, c > 0 { memRatios.append(a / c) }
        }
        guard timeRatios.count >= minimumCommon || memRatios.count >= minimumCommon else { return nil }
        return (timeRatios.count >= minimumCommon ? median(timeRatios) : nil, memRatios.count >= minimumCommon ? median(memRatios) : nil,
                max(timeRatios.count, memRatios.count))
    }

    /// How long `other`'s calibration says a render takes against `fit`'s: the median, over `fit`'s time points, of
    /// `other`'s ms per frame there (interpolated along its own points, as predictions are) over `fit`'s. nil when
    /// either has no time points.
    public static func renderRatio(of other: CalibrationFit, to fit: CalibrationFit) -> Double? {
        func curve(_ f: CalibrationFit) -> [(Double, Double)] {
            Predictor.curve(f.timePoints.compactMap { p in FrameSize(p.size).map { (Double($0.pixels * p.inferFrames), p.value) } })
        }
        let theirs = curve(other), mine = curve(fit)
        guard !theirs.isEmpty else { return nil }
        let ratios = mine.compactMap { x, v in v > 0 ? Predictor.interpolate(theirs, at: x, floor: 1).0 / v : nil }.filter { $0 > 0 && $0.isFinite }
        return ratios.isEmpty ? nil : median(ratios)
    }

    /// S(k) learned on `model` from attempts that shared their card, in buckets that also ran alone
    /// (docs/calibration.md). Each such attempt's render alone (the bucket's time alone, less `unshared` for a cold
    /// attempt: its start-up shares nothing; less a warm request's fixed part, which shares nothing either; the
    /// renderer's own figure where it reported one)
    /// equals the sum over its stretches of (seconds rendered beside k, itself included) x S(k)/k. The S(k)/k that fit
    /// every attempt best (`fitSharing`) give S(k) within [1, k], for each k at which at least `minimum` attempts spent
    /// a quarter of their render. An attempt recorded without stretches counts all of its render at the most that shared its card: a
    /// render that overlapped a neighbour for a moment then reads as though shared throughout, which is why the
    /// stretches are kept (on three H200 runs that reading put S(3) at 1.9-2.3 where the stretches say 1.5).
    /// `prior` (the calibration's S(k), else the profile's) weighs as `priorWeight` attempts at each k (`fitSharing`).
    /// `warm`: only warm workers' requests (true) or only attempts that started cold (false); nil: both. `reference`:
    /// an attempt's whole time alone where none of its bucket rendered alone (a packed warm batch leaves none): the
    /// calibration's prediction, whose probes rendered alone on this GPU model; nil: such attempts teach nothing.
    /// `requestUnshared`: a warm request's predicted fixed part (the profile's start-up less its load), which shares
    /// nothing; a warm attempt recorded before 2026-12-02 counted it in its stretches, and has it taken off them here
    /// in proportion (where its stretches leave less than half of it).
    public static func sharing(for model: String, from entries: [HistoryEntry], minimum: Int = 3, unshared: Double = 0,
                               requestUnshared: Double = 0,
                               prior: SharingModel? = nil, priorWeight: Double = sharingPriorWeight, warm: Bool? = nil,
                               reference: ((HistoryEntry) -> Double?)? = nil) -> [Int: Double] {
        let here = entries.filter { $0.gpuModel == model && (warm == nil || $0.observation.warm == warm) }
        let solo = soloFigures(here)
        var rows: [SharingRow] = []
        for e in here where !e.observation.oom {
            guard let wall = e.wallSeconds, e.observation.frames > 0, wall > 0,
                  let whole = solo[key(e)]?.alone.map({ $0 * Double(e.observation.frames) }) ?? reference?(e) else { continue }
            var stretches = e.stretches ?? (e.colocated > 1 ? [e.colocated: wall] : [:])
            // Its start-up: what the stretches leave of its wall time, else as reported or predicted.
            var startUp = e.stretches.map { s in max(wall - s.values.reduce(0, +), 0) }
                ?? (e.observation.warm ? requestUnshared : e.observation.startupSeconds ?? unshared)
            if e.observation.warm, e.stretches != nil, requestUnshared > 0, startUp < requestUnshared / 2 {
                let counted = stretches.values.reduce(0, +), fixed = min(requestUnshared, 0.9 * wall)
                if counted > fixed { stretches = stretches.mapValues { $0 * (counted - fixed) / counted } }
                startUp = wall - stretches.values.reduce(0, +)
            }
            let u = startUp > 0 && startUp < 0.9 * min(whole, wall) ? startUp : 0
            if e.stretches == nil, let k = stretches.keys.first { stretches[k] = wall - u }
            // Whole times when taking the start-up off would leave almost nothing: it ran alone, at solo speed.
            if u == 0 && startUp > 0 && e.stretches != nil { stretches[1, default: 0] += startUp }
            guard stretches.contains(where: { $0.key > 1 && $0.value > 0 }) else { continue }
            rows.append(SharingRow(alone: whole - u, stretches: stretches))
        }
        return fitSharing(rows, minimum: minimum, prior: prior, priorWeight: priorWeight)
    }

    /// What a new warm worker of load settings `key` is expected to take to load: the median of this batch's loads of
    /// that group (`measured`, by key), else the history's for it (`history`), else the median of this batch's loads
    /// of any group (the same disk and page cache), else `otherwise` (the profile's `load_s`). This batch's loads are
    /// start to ready, so the first request's extra (`WorkerSpec.firstRequestSeconds`) is added to them, as it is in
    /// the history's and the profile's figures: without it, the load expected after a batch's first worker was ready
    /// fell by that much (6.2 s for Live Avatar on an H200).
    public static func expectedLoad(_ key: String, measured: [String: [Double]], history: [String: Double], otherwise: Double,
                                    firstRequest: Double = 0) -> Double {
        if let mine = measured[key], !mine.isEmpty { return median(mine) + firstRequest }
        if let known = history[key] { return known }
        let any = measured.values.flatMap { $0 }
        return any.isEmpty ? otherwise : median(any) + firstRequest
    }

    /// How many attempts the prior S(k) weighs as in a batch's fit (`sharing(for:from:minimum:unshared:prior:priorWeight:)`).
    /// A batch rarely leaves more than a few attempts that rendered alone, and every S(k) it learns is measured against
    /// those few: one H200 run's three references of one bucket taught S(3) = 3.00 (its clamp, k), and its next batch
    /// planned 50 s and ran 88 s. Chosen with the replay over the recorded runs (docs/benchmarks.md).
    public static let sharingPriorWeight = 4.0

    /// S(k) from renders whose time alone is known: each with its stretches (seconds rendered beside k rendering,
    /// itself included, by k), fitted as `sharing(for:from:minimum:unshared:)` does, for each k at which at least
    /// `minimum` of them spent a quarter of their render. `calibrate` measures S(k) so.
    public static func sharing(renders: [(alone: Double, stretches: [Int: Double])], minimum: Int) -> [Int: Double] {
        fitSharing(renders.map { SharingRow(alone: $0.alone, stretches: $0.stretches) }, minimum: minimum)
    }

    /// One calibration probe that ran together with others: when it ended, its time, the render its renderer reported
    /// (nil: none), and the same probe's alone (nil: it has none).
    public typealias TogetherProbe = (ended: Double, seconds: Double, render: Double?, alone: (seconds: Double, render: Double?)?)

    /// The renders of probes that ran together, for `sharing(renders:minimum:)`: each cut into its stretches beside the
    /// others, against the same probe's render alone. A cold probe's render (`unshared` > 0: its fitted start-up) is the
    /// one its renderer reported, where every probe together and its reference alone reported one (`byRender`); else
    /// its time less `unshared` (whole when that would leave under a tenth). One probe's start-up differs from the fit
    /// by a second or more, which a short render cannot absorb: S(2) read 1.00 from one H200's cold probes, where the
    /// same host's warm ones read 1.17-1.28. A warm request's `unshared` is its fixed part (set-up, save and mux).
    public static func probeRenders(_ together: [TogetherProbe], unshared: Double) -> (renders: [(alone: Double, stretches: [Int: Double])], byRender: Bool) {
        func cut(_ seconds: Double) -> Double { unshared > 0 && unshared < 0.9 * seconds ? unshared : 0 }
        let byRender = unshared > 0 && together.allSatisfy { $0.render != nil && $0.alone?.render != nil }
        let windows = together.map { p in (from: p.ended - (byRender ? p.render! : p.seconds - cut(p.seconds)), to: p.ended) }
        var renders: [(alone: Double, stretches: [Int: Double])] = []
        for (i, p) in together.enumerated() {
            let (from, to) = windows[i]
            guard let alone = p.alone, to > from else { continue }
            let others = windows.indices.filter { $0 != i }.map { windows[$0] }
            renders.append((byRender ? alone.render! : alone.seconds - cut(alone.seconds), stretches(from: from, to: to, others: others)))
        }
        return (renders, byRender)
    }

    /// The stretches of a render from `from` to `to`: seconds it ran beside k rendering on its card, itself included,
    /// by k, given when each other attempt there rendered (`others`). What a replay or a calibration that knows every
    /// render's window counts; a batch counts them as it goes (`BatchSession.stretches`).
    public static func stretches(from: Double, to: Double, others: [(from: Double, to: Double)]) -> [Int: Double] {
        let cuts = Set([from, to] + others.flatMap { [$0.from, $0.to] }.filter { $0 > from && $0 < to }).sorted()
        var out: [Int: Double] = [:]
        for (a, b) in zip(cuts, cuts.dropFirst()) where b > a {
            let mid = (a + b) / 2
            out[1 + others.filter { $0.from <= mid && $0.to > mid }.count, default: 0] += b - a
        }
        return out
    }

    /// One attempt that shared its card: its render alone, and its stretches (seconds rendered beside k, by k).
    struct SharingRow {
        var alone: Double
        var stretches: [Int: Double]
        var render: Double { stretches.values.reduce(0, +) }
    }

    /// The fit of `sharing(for:from:minimum:unshared:)`: least absolute deviations (iteratively reweighted least
    /// squares), so that an attempt far off the others (a stalled disk, a job that hung for a while) moves it no more
    /// than any other; with every attempt at one k it is the median of their ratios, as S(k) was learned before the
    /// stretches. Each attempt's equation is divided by its render, so none weighs more for having run longer. A k too
    /// few attempts spent a quarter of their render at is not solved for: its moments count at the nearest k that is,
    /// as though S stayed flat between them (how `SharingModel` extends a table), so that they neither go unexplained
    /// nor give it a value of its own from noise. Each S(k) is kept within [1, k]: k jobs together are taken to finish
    /// no later than one after another (a figure below 1 is noise: one H200 run learned S(2) = 0.87, and its next batch
    /// then ran one clip at a time, 2.8 times slower).
    static func fitSharing(_ all: [SharingRow], minimum: Int, prior: SharingModel? = nil, priorWeight: Double = 0) -> [Int: Double] {
        let rows = all.filter { $0.alone > 0 && $0.render > 0 }
        // Each row as x . r = y with r_k = S(k)/k: T_k (folded onto the solved ks) and alone - T_1, over its render.
        func design(_ row: SharingRow, _ ks: [Int]) -> (x: [Double], y: Double) {
            var x = [Double](repeating: 0, count: ks.count)
            for (k, t) in row.stretches where k > 1 {
                let i = ks.lastIndex { $0 <= k } ?? 0
                x[i] += t * Double(ks[i]) / Double(k) / row.render
            }
            return (x, (row.alone - (row.stretches[1] ?? 0)) / row.render)
        }
        // Weighted least squares; nil when the ks cannot be told apart (every attempt saw them in the same proportion).
        func solve(_ eqs: [(x: [Double], y: Double)], _ w: [Double]) -> [Double]? {
            guard let n = eqs.first?.x.count, n > 0 else { return nil }
            var m = [[Double]](repeating: [Double](repeating: 0, count: n + 1), count: n)
            for (e, wi) in zip(eqs, w) {
                for i in 0..<n {
                    for j in 0..<n { m[i][j] += wi * e.x[i] * e.x[j] }
                    m[i][n] += wi * e.x[i] * e.y
                }
            }
            let scale = (0..<n).map { m[$0][$0] }.max() ?? 0
            for c in 0..<n {
                guard let p = (c..<n).max(by: { abs(m[$0][c]) < abs(m[$1][c]) }), abs(m[p][c]) > 1e-6 * scale else { return nil }
                m.swapAt(c, p)
                for r in 0..<n where r != c {
                    let f = m[r][c] / m[c][c]
                    for j in c...n { m[r][j] -= f * m[c][j] }
                }
            }
            return (0..<n).map { m[$0][n] / m[$0][$0] }
        }
        var ks = Set(rows.flatMap { $0.stretches.keys.filter { $0 > 1 } }).sorted().filter { k in
            rows.filter { ($0.stretches[k] ?? 0) >= 0.25 * $0.render }.count >= minimum
        }
        while !ks.isEmpty {
            // The prior, where there is one, as `priorWeight` more equations at each solved k: S(k)/k = its S(k)/k.
            let pseudo: [(x: [Double], y: Double)] = prior.map { p in
                ks.indices.map { i in ((0..<ks.count).map { $0 == i ? 1 : 0 }, p.aggregate(ks[i]) / Double(ks[i])) }
            } ?? []
            let eqs = rows.map { design($0, ks) } + (priorWeight > 0 ? pseudo : [])
            let mass = rows.map { _ in 1.0 } + (priorWeight > 0 ? pseudo.map { _ in priorWeight } : [])
            if var r = solve(eqs, mass) {
                for _ in 0..<50 {
                    let w = zip(eqs, mass).map { e, m in m / max(abs(e.y - zip(e.x, r).map { $0 * $1 }.reduce(0, +)), 1e-6) }
                    guard let next = solve(eqs, w) else { break }
                    let moved = zip(next, r).map { abs($0 - $1) }.max() ?? 0
                    r = next
                    if moved < 1e-9 { break }
                }
                var out: [Int: Double] = [:]
                for (k, rk) in zip(ks, r) { out[k] = min(max(Double(k) * rk, 1), Double(k)) }
                return out
            }
            ks.removeLast()
        }
        return [:]
    }

    /// Per bucket and kind (`key`): mean solo-equivalent seconds per frame over every observation (`rate`), the same over
    /// jobs that rendered alone only (`alone`, the reference S(k) is measured against: `renderedAlone`), and the highest
    /// peak.
    static func soloFigures(_ entries: [HistoryEntry]) -> [String: (rate: Double?, alone: Double?, peak: Double?)] {
        var sums: [String: (sum: Double, n: Int, aSum: Double, aN: Int, peak: Double?)] = [:]
        for e in entries where !e.observation.oom {
            var v = sums[key(e)] ?? (0, 0, 0, 0, nil)
            if let s = e.observation.seconds, e.observation.frames > 0 {
                v.sum += s / Double(e.observation.frames); v.n += 1
                if renderedAlone(e) { v.aSum += s / Double(e.observation.frames); v.aN += 1 }
            }
            if let p = e.observation.peakGB { v.peak = max(v.peak ?? p, p) }
            sums[key(e)] = v
        }
        return sums.mapValues { ($0.n > 0 ? $0.sum / Double($0.n) : nil, $0.aN > 0 ? $0.aSum / Double($0.aN) : nil, $0.peak) }
    }

    /// Whether an attempt rendered alone: nine tenths of its render at k = 1 by its stretches. One recorded without them
    /// rendered alone when nothing was counted rendering beside it (`colocated` 1). That count leaves out neighbours
    /// still in their predicted start-up when it is taken: on an H200 batch, all 19 attempts counted alone had
    /// rendered beside others for most of their render by their stretches, and as references they made S(k) read
    /// what they were.
    static func renderedAlone(_ e: HistoryEntry) -> Bool {
        guard let s = e.stretches else { return e.colocated == 1 }
        let render = s.values.reduce(0, +)
        return render > 0 && (s[1] ?? 0) >= 0.9 * render
    }

    /// What figures are compared by: the bucket, and whether the time is a warm request's (like with like: a request
    /// holds no load).
    static func key(_ e: HistoryEntry) -> String { e.observation.warm ? e.observation.bucket + "|warm" : e.observation.bucket }

    public static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}
