// The replay benchmark (docs/calibration.md): how well predictions match what GPUs did, held out, from recorded runs
// in bench/results, under three starting points: the profile alone, a calibration, and the history of an earlier batch.
import Checkpoint
import Executors
import Foundation
import Manifest
import Scheduler

enum Replay {
    /// One finished job of a recorded run.
    struct Job {
        var id: String
        var settings: ClipSettings
        var peakGB: Double?
        var seconds: Double?
        /// Time-weighted mean number of attempts on its GPU while it ran (1: alone); nil when the run did not record times.
        var sharedBy: Double?
        /// Served by a warm worker: its time is a request's (no load).
        var warm = false
        /// When it rendered (a cold attempt: from its start, start-up included), and every other attempt on its GPU:
        /// the job it was for (to predict its start-up) and when it rendered.
        var window: (from: Double, to: Double)?
        var others: [(id: String, warm: Bool, from: Double, to: Double)] = []
        /// What the renderer reported as its own work once loaded (`render_seconds`; for logs older than that key, its
        /// report's seconds less its startup_s and load_s): a cold attempt's wall time less this is its start-up.
        var renderSeconds: Double?
    }

    /// Each cold attempt's render as its renderer reported it, from a run's kept logs (a .tgz of
    /// logs/<job>.attempt-<n>.log), by job: the last report line of its last attempt's log.
    static func reportedRenders(_ tgz: String) -> [String: Double] {
        guard FileManager.default.fileExists(atPath: tgz) else { return [:] }
        let dir = NSTemporaryDirectory() + "replay-logs-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        guard untar(tgz, into: dir) else { return [:] }
        var out: [String: (attempt: Int, seconds: Double)] = [:]
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dir + "/logs")) ?? [] {
            let parts = name.components(separatedBy: ".attempt-")
            guard parts.count == 2, let n = Int(parts[1].replacingOccurrences(of: ".log", with: "")),
                  let text = try? String(contentsOfFile: dir + "/logs/" + name, encoding: .utf8) else { continue }
            for line in text.split(separator: "\n").reversed() where line.hasPrefix("{") && line.contains("startup_s") {
                guard let d = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { continue }
                let render = d["render_seconds"] as? Double
                    ?? (d["seconds"] as? Double).flatMap { t in (d["startup_s"] as? Double).flatMap { u in (d["load_s"] as? Double).map { t - u - $0 } } }
                if let render, render > 0, n >= (out[parts[0]]?.attempt ?? 0) { out[parts[0]] = (n, render) }
                break
            }
        }
        return out.mapValues(\.seconds)
    }

    struct Errors {
        var memory: [Double] = []
        var under = 0
        var solo: [Double] = []
        var colocated: [Double] = []
    }

    /// Jobs of a status document (`status --json`); settings from the attempt when it has them, else from the manifest's
    /// clip lines (older documents), adjusted by the ladder's recorded change.
    static func jobs(status path: String, manifest: String?, logs: String? = nil) throws -> [Job] {
        let renders = logs.map(reportedRenders) ?? [:]
        let doc = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
        var clips: [String: ClipSettings] = [:]
        if let manifest, let text = try? String(contentsOfFile: manifest, encoding: .utf8) {
            for line in text.split(separator: "\n") where line.contains("{id: ") {
                func field(_ k: String) -> String? {
                    guard let r = line.range(of: k + ": ") else { return nil }
                    return String(line[r.upperBound...].prefix { $0 != "," && $0 != "}" }).replacingOccurrences(of: "\"", with: "")
                }
                guard let id = field("id"), let size = field("size").flatMap(FrameSize.init) else { continue }
                clips[id] = ClipSettings(size: size, numClip: Int(field("num_clip") ?? "1") ?? 1, inferFrames: Int(field("infer_frames") ?? "48") ?? 48,
                                         sampleSteps: 4, onlineDecode: field("online_decode") == "true", offloadModel: false, fp8: false, seed: 420)
            }
        }
        let list = doc["jobs"] as? [[String: Any]] ?? []
        // When an attempt rendered: from start to end, except on a warm worker, whose attempt starts when its worker
        // is asked for (a new worker's load included) and which rendered for its last `seconds`.
        func rendering(_ a: [String: Any]) -> (Double, Double)? {
            guard let s = a["started_at"] as? Double, let e = a["ended_at"] as? Double else { return nil }
            if a["worker"] is String, let t = a["seconds"] as? Double, t > 0 { return (max(s, e - t), e) }
            return (s, e)
        }
        // Every attempt's interval per GPU, for co-location.
        var intervals: [Int: [(Double, Double)]] = [:]
        var tenants: [Int: [(id: String, attempt: Int, warm: Bool, from: Double, to: Double)]] = [:]
        for j in list {
            for a in j["attempts"] as? [[String: Any]] ?? [] {
                if let g = a["gpu"] as? Int, let r = rendering(a) {
                    intervals[g, default: []].append(r)
                    tenants[g, default: []].append((j["id"] as? String ?? "", a["number"] as? Int ?? 0, a["worker"] is String, r.0, r.1))
                }
            }
        }
        var out: [Job] = []
        for j in list {
            guard let id = j["id"] as? String,
                  let a = (j["attempts"] as? [[String: Any]] ?? []).last(where: { $0["classification"] as? String == "succeeded" }) else { continue }
            var s: ClipSettings
            if let r = a["resolved_settings"], let data = try? JSONSerialization.data(withJSONObject: r),
               let decoded = try? JSONDecoder().decode(ClipSettings.self, from: data) {
                s = decoded
            } else if let c = clips[id] {
                s = c
                let change = a["settings"] as? String ?? ""
                if change.contains("online_decode: true") { s.onlineDecode = true }
                if change.contains("offload_model: true") { s.offloadModel = true }
            } else { continue }
            var job = Job(id: id, settings: s, peakGB: a["peak_gb"] as? Double, seconds: a["seconds"] as? Double, warm: a["worker"] is String)
            if !job.warm, let r = renders[id], let t = job.seconds, r <= t { job.renderSeconds = r }
            if let g = a["gpu"] as? Int, let (st, en) = rendering(a), en > st {
                // Integrate the number of intervals covering each moment of this one.
                var points = [st, en]
                for (s2, e2) in intervals[g] ?? [] { points += [s2, e2].filter { $0 > st && $0 < en } }
                points.sort()
                var area = 0.0
                for (x0, x1) in zip(points, points.dropFirst()) where x1 > x0 {
                    let mid = (x0 + x1) / 2
                    area += Double((intervals[g] ?? []).filter { $0.0 <= mid && $0.1 > mid }.count) * (x1 - x0)
                }
                job.sharedBy = area / (en - st)
                job.window = (st, en)
                let number = a["number"] as? Int ?? 0
                job.others = (tenants[g] ?? []).filter { !($0.id == id && $0.attempt == number) && $0.to > st && $0.from < en }
                    .map { ($0.id, $0.warm, $0.from, $0.to) }
            }
            out.append(job)
        }
        return out
    }

    /// Observations a later batch would start from, as the history keeps them: a co-located job's time made
    /// solo-equivalent as the batch that ran it counts it (its start-up at full speed, its render weighted by S(k)/k of
    /// the k attempts rendering beside it), and no time where sharing is unknown (a run that recorded no times).
    /// `reported`: take each cold attempt's start-up from its renderer's report where the logs had one, as a batch does
    /// since 2026-12-01 (false: as before, the predicted start-up).
    static func observations(_ jobs: [Job], predictor: Predictor, context: [Job] = [], reported: Bool = false) -> [Observation] {
        let byID = Dictionary((jobs + context).map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        return jobs.map { j in
            var seconds: Double?
            let startup = reported ? j.seconds.flatMap { t in j.renderSeconds.map { t - $0 } } : nil
            if j.sharedBy != nil, let t = j.seconds { seconds = soloEquivalent(j, wall: t, predictor: predictor, jobs: byID, startup: startup) }
            return Observation(bucket: predictor.bucket(j.settings), peakGB: j.peakGB, seconds: seconds, frames: j.settings.totalFrames, warm: j.warm,
                               startupSeconds: startup)
        }
    }

    /// When each other attempt on a job's GPU rendered: after its predicted unshared part (a cold attempt's start-up,
    /// a warm request's fixed part).
    static func renderWindows(_ j: Job, predictor: Predictor, jobs: [String: Job]) -> [(Double, Double)] {
        j.others.map { o in
            let startUp = jobs[o.id].map { predictor.estimate($0.settings).unsharedSeconds } ?? 0
            return (o.from + startUp, o.to)
        }
    }

    /// Walks a job's render through the pieces of time in which the same number of attempts rendered beside it:
    /// `step(from, to, rate)` for each piece from `from` on; stops when it returns false.
    static func walk(from: Double, windows: [(Double, Double)], sharing: SharingModel, _ step: (Double, Double, Double) -> Bool) {
        let cuts = Set(windows.flatMap { [$0.0, $0.1] }.filter { $0 > from }).sorted() + [.infinity]
        var t = from
        for next in cuts {
            let k = 1 + windows.filter { $0.0 <= t && $0.1 > t }.count
            if !step(t, next, sharing.perJobRate(k)) { return }
            t = next
        }
    }

    /// How long a cold job's render ran beside how many rendering on its GPU (itself included), by k: its render from
    /// the start its renderer reported, each other attempt's from its own reported start (else its predicted start-up;
    /// a warm request's whole time); nil without a window or a reported render.
    static func stretches(_ j: Job, predictor: Predictor, jobs: [String: Job]) -> [Int: Double]? {
        guard let (_, en) = j.window, let render = j.renderSeconds else { return nil }
        let others = j.others.map { o -> (from: Double, to: Double) in
            if o.warm { return (o.from, o.to) }
            if let other = jobs[o.id], let t = other.seconds, let r = other.renderSeconds { return (o.from + max(t - r, 0), o.to) }
            return (o.from + (jobs[o.id].map { predictor.estimate($0.settings).unsharedSeconds } ?? 0), o.to)
        }
        return Learning.stretches(from: en - render, to: en, others: others)
    }

    static func soloEquivalent(_ j: Job, wall: Double, predictor: Predictor, jobs: [String: Job], startup: Double? = nil) -> Double {
        guard let (st, _) = j.window else { return wall }
        let startUp = min(startup ?? predictor.estimate(j.settings).unsharedSeconds, wall)
        var solo = startUp
        walk(from: st + startUp, windows: renderWindows(j, predictor: predictor, jobs: jobs), sharing: SharingModel(predictor.profile.sharing)) { a, b, rate in
            let until = min(b, st + wall)
            solo += max(until - a, 0) * rate
            return b < st + wall
        }
        return solo
    }

    /// The wall time the predictor gives a job beside the attempts that really shared its GPU: its start-up alone,
    /// then its render at S(k)/k of the k rendering (each neighbour rendering after its own predicted start-up).
    static func predictedWall(_ j: Job, _ est: Estimate, predictor: Predictor, jobs: [String: Job]) -> Double {
        guard let (st, _) = j.window else { return est.seconds }
        let startUp = est.startUpSeconds
        var left = est.renderSeconds, wall = startUp
        walk(from: st + startUp, windows: renderWindows(j, predictor: predictor, jobs: jobs), sharing: SharingModel(predictor.profile.sharing)) { a, b, rate in
            if left <= (b - a) * rate {
                wall = a + left / rate - st
                return false
            }
            left -= (b - a) * rate
            return true
        }
        return wall
    }

    static func errors(_ p: Predictor, on jobs: [Job], serial: Bool, context: [Job] = []) -> Errors {
        var p = p
        // REPLAY_TIME_PRIOR: what a calibration's render rate weighs as (Predictor.calibrationWeight), for the sweep.
        if let w = ProcessInfo.processInfo.environment["REPLAY_TIME_PRIOR"].flatMap(Double.init), p.profile.time.measuredHere { p.timePriorWeight = w }
        var e = Errors()
        let byID = Dictionary((jobs + context).map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        for j in jobs {
            let est = p.estimate(j.settings)
            if let peak = j.peakGB, peak > 0 {
                e.memory.append(abs(est.rawMemoryGB - peak) / peak)
                if peak > est.memoryGB + 1e-9 {
                    e.under += 1
                    if ProcessInfo.processInfo.environment["REPLAY_DETAIL"] != nil {
                        print(String(format: "  under-predicted: %@ %@ x%d c%d: %.1f GB predicted with headroom, %.1f GB peak", j.id, "\(j.settings.size)",
                                     j.settings.inferFrames, j.settings.numClip, est.memoryGB, peak))
                    }
                }
            }
            guard let t = j.seconds, t > 0 else { continue }
            let k = serial ? 1 : (j.sharedBy ?? 1)
            if k < 1.05 {
                e.solo.append(abs(est.seconds - t) / t)
                if ProcessInfo.processInfo.environment["REPLAY_DETAIL"] != nil {
                    print(String(format: "  solo %@ %@ x%d c%d %@: predicted %.1f s (start-up %.1f), observed %.1f s", j.id,
                                 "\(j.settings.size)", j.settings.inferFrames, j.settings.numClip, j.settings.onlineDecode ? "online" : "offline",
                                 est.seconds, est.unsharedSeconds, t))
                }
            } else {
                let wall = predictedWall(j, est, predictor: p, jobs: byID)
                e.colocated.append(abs(wall - t) / t)
                if ProcessInfo.processInfo.environment["REPLAY_DETAIL"] != nil {
                    print(String(format: "  %@ %@ x%d c%d %@: k %.2f, predicted solo %.1f s (start-up %.1f), wall %.1f s predicted, %.1f s observed", j.id,
                                 "\(j.settings.size)", j.settings.inferFrames, j.settings.numClip, j.settings.onlineDecode ? "online" : "offline", k,
                                 est.seconds, est.unsharedSeconds, wall, t))
                }
            }
        }
        return e
    }

    /// How long a run's attempts took from the first start to the last end (nil: none has a window).
    static func span(_ jobs: [Job]) -> Double? {
        let w = jobs.compactMap(\.window)
        guard let a = w.map(\.from).min(), let b = w.map(\.to).max() else { return nil }
        return b - a
    }

    /// The q-quantile of `xs`: the nearest rank (nil: none).
    static func quantile(_ xs: [Double], _ q: Double) -> Double? {
        guard !xs.isEmpty else { return nil }
        let s = xs.sorted()
        return s[min(Int((Double(s.count - 1) * q).rounded()), s.count - 1)]
    }

    static func pct(_ xs: [Double], _ q: Double) -> String {
        quantile(xs, q).map { String(format: "%.0f%%", $0 * 100) } ?? "–"
    }

    /// Unpacks `tgz` (only `members`, when given: tar's own arguments) into `dir`, which it creates; false if tar did not run.
    static func untar(_ tgz: String, into dir: String, _ members: [String] = []) -> Bool {
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let tar = Process()
        tar.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        tar.arguments = ["tar", "xzf", tgz, "-C", dir] + members
        guard (try? tar.run()) != nil else { return false }
        tar.waitUntilExit()
        return true
    }

    static func row(_ name: String, _ e: Errors, jobs: Int) -> String {
        "| \(name) | \(jobs) | \(pct(e.memory, 0.5)) / \(pct(e.memory, 0.95)) | \(e.under) | \(pct(e.solo, 0.5)) / \(pct(e.solo, 0.95)) (\(e.solo.count)) | "
            + "\(pct(e.colocated, 0.5)) / \(pct(e.colocated, 0.95)) (\(e.colocated.count)) |"
    }

    /// The H200 runs of the proof manifest as calibrate, batch 1, batch 2 (and warm batches), oldest first
    /// (calibration-proof.sh, bench/results/).
    static let h200Proofs = ["h200-2026-12-01-second-batch", "h200-2026-12-01-rerun", "h200-2026-12-01-together", "h200-2026-12-01-scaled",
                             "h200-2026-12-01-warm", "h200-2026-12-01-reported", "h200-2026-12-01-final", "h200-2026-12-01-warmup",
                             "h200-2026-12-01-stretches", "h200-2026-12-01-alone", "h200-2026-12-01-shifted", "h200-2026-12-01-solo",
                             "h200-2026-12-01-weights", "h200-2026-12-01-warm2", "h200-2026-12-01-warm3", "h200-2026-12-01-final6",
                             "h200-2026-12-01-final7"]

    /// The same proof with `calibrate --cold` (CALIBRATE_ARGS=--cold): each probe its own process, as batches 1 and 2
    /// run; kept apart from `h200Proofs`, whose sections read a warm calibration's worker loads.
    static let h200ColdCalibrations = ["h200-2026-12-01-coldcal", "h200-2026-12-01-coldcal2"]

    /// The header of `row`'s tables.
    static let header = "| starting point | held-out jobs | memory error p50 / p95 | under-predicted beyond headroom | solo time error p50 / p95 (n) | co-located time error p50 / p95 (n) |\n| --- | --- | --- | --- | --- | --- |"

    static func run(root: String) {
        let (profile, _) = ProfileLoader.load(path: root + "/renderers/synthetic-dit.yaml")
        guard let profile else { print("replay: cannot load renderers/synthetic-dit.yaml"); return }

        // H100 (2026-11-24): the profile was calibrated on this model; history = the packed run, held out = the serial run.
        let h100 = root + "/bench/results/h100-2026-11-24"
        if let earlier = try? jobs(status: h100 + "/packed-status.json", manifest: h100 + "/gpu-proof.yaml"),
           let later = try? jobs(status: h100 + "/serial-status.json", manifest: h100 + "/gpu-proof.yaml") {
            print("replay H100 80GB: 24 clips run one at a time (bench/results/h100-2026-11-24/serial-status.json)")
            print(header)
            let base = Predictor(profile: profile)
            print(row("profile alone", errors(base, on: later, serial: true), jobs: later.count))
            var learned = base
            for o in observations(earlier, predictor: base) { learned.observe(o, origin: .history) }
            print(row("history of the packed run (memory only: it recorded no times to tell sharing from)", errors(learned, on: later, serial: true), jobs: later.count))
        }

        // H200 (2026-11-30, and again 2026-12-01 with start-ups unshared): calibrate --quick, then the proof manifest packed; history = the first half of that run.
        // The rerun (2026-12-01, later): the same with offline memory per pixel-frame; its warm calibration's S(2) was
        // measured serially (2.00), a bug fixed for the next one (together: S(2) of two probes rendering at once).
        for dir in ["h200-2026-11-30-calibration", "h200-2026-12-01-calibration", "h200-2026-12-01-rerun", "h200-2026-12-01-together", "h200-2026-12-01-scaled", "h200-2026-12-01-warm", "h200-2026-12-01-reported", "h200-2026-12-01-final"] + h200ColdCalibrations {
        let h200 = root + "/bench/results/" + dir
        if let run = try? jobs(status: h200 + "/run-status.json", manifest: nil), !run.isEmpty {
            let fit = storedFit(h200 + "/history.sqlite", profile: profile)
            let half = run.count / 2
            let first = Array(run.prefix(half)), second = Array(run.dropFirst(half))
            print("\nreplay NVIDIA H200: the \(run.count)-clip proof run, packed (bench/results/\(dir)), held out: its second half (\(second.count) clips)")
            print(header)
            let base = Predictor(profile: profile)
            print(row("profile alone", errors(base, on: second, serial: false, context: run), jobs: second.count))
            var calibrated = base
            if let fit {
                calibrated = Predictor(profile: profile.calibrated(by: fit))
                print(row("calibration (calibrate --quick)", errors(calibrated, on: second, serial: false, context: run), jobs: second.count))
            }
            var learned = calibrated
            for o in observations(first, predictor: calibrated, context: run) { learned.observe(o, origin: .history) }
            print(row("calibration + history of the first half", errors(learned, on: second, serial: false, context: run), jobs: second.count))
            print("\nall \(run.count) clips of the run:")
            print(header)
            print(row("profile alone", errors(base, on: run, serial: false), jobs: run.count))
            if fit != nil { print(row("calibration", errors(calibrated, on: run, serial: false), jobs: run.count)) }
        }
        }

        // H200 (2026-12-01): the proof manifest as two batches on one host: calibrate --quick, batch 1, then the same
        // clips as batch 2 planned by the product from the calibration and batch 1's history (its history file).
        for dir in h200Proofs + h200ColdCalibrations {
        let second = root + "/bench/results/" + dir
        if let b2 = try? jobs(status: second + "/second-status.json", manifest: nil), !b2.isEmpty {
            let h200 = [GPU(index: 0, model: "NVIDIA H200", memoryGB: 140.4)]
            print("\nreplay NVIDIA H200: the proof manifest as a second batch (bench/results/\(dir)), all \(b2.count) clips held out")
            print(header)
            print(row("profile alone", errors(Predictor(profile: profile), on: b2, serial: false, context: b2), jobs: b2.count))
            let fit = storedFit(second + "/history.sqlite", profile: profile)
            if let fit {
                print(row("calibration (calibrate --quick)", errors(Predictor(profile: profile.calibrated(by: fit)), on: b2, serial: false, context: b2), jobs: b2.count))
            }
            // What the product planned batch 2 from: its Knowledge over the history file as batch 1 left it.
            let knowledge = productKnowledge(second + "/history.sqlite", fit: fit, profile: profile, gpus: h200)
            print(row("calibration + history of batch 1, S(k) learned (as the product planned batch 2)", errors(knowledge.predictor(), on: b2, serial: false, context: b2),
                      jobs: b2.count))
            print("  S(k) learned: \(knowledge.learnedSharing.sorted { $0.key < $1.key }.map { "\($0.key): \(String(format: "%.2f", $0.value))" }.joined(separator: ", ")); the profile as planned: \(knowledge.profile.sharing.sorted { $0.key < $1.key }.map { "\($0.key): \(String(format: "%.2f", $0.value))" }.joined(separator: ", "))")
            // The plan of batch 2 the product would make from that knowledge, against the span its attempts took.
            let planner = Planner(predictor: knowledge.predictor(), strategy: Strategy.table["earliest-finish"]!)
            let plan = planner.plan(b2.map { PlanJob(id: $0.id, settings: $0.settings) }, gpus: h200)
            if let observed = span(b2) {
                print(String(format: "  plan of batch 2 from it: makespan %.1f s (lower bound %.1f s); its attempts took %.1f s from the first start to the last end",
                             plan.makespanS, plan.lowerBoundS, observed))
            }
        }
        }

        // H200 (2026-12-01): the start-up each cold attempt's renderer reported (synthetic-dit's report: its seconds less
        // startup_s and load_s is its own work once loaded), against the predicted one, on the runs that kept their logs.
        // Same observations either way; only how each cold time splits into start-up and render differs.
        for dir in h200Proofs where FileManager.default.fileExists(atPath: root + "/bench/results/" + dir + "/logs.tgz") {
            let base = root + "/bench/results/" + dir
            guard let b1 = try? jobs(status: base + "/run-status.json", manifest: nil, logs: base + "/logs.tgz"), !b1.isEmpty,
                  let fit = storedFit(base + "/history.sqlite", profile: profile) else { continue }
            let b2 = (try? jobs(status: base + "/second-status.json", manifest: nil, logs: base + "/second-logs.tgz")) ?? []
            let calibrated = Predictor(profile: profile.calibrated(by: fit))
            let reportedCount = b1.filter { $0.renderSeconds != nil }.count
            print("\nreplay NVIDIA H200: start-ups as reported against as predicted (bench/results/\(dir), \(reportedCount) of \(b1.count) batch-1 attempts reported)")
            print(header)
            let half = b1.count / 2
            let first = Array(b1.prefix(half)), second = Array(b1.dropFirst(half))
            for reported in [false, true] {
                var learned = calibrated
                for o in observations(first, predictor: calibrated, context: b1, reported: reported) { learned.observe(o, origin: .history) }
                print(row("calibration + history of the first half, start-ups \(reported ? "reported" : "predicted"); held out: the second half",
                          errors(learned, on: second, serial: false, context: b1), jobs: second.count))
            }
            // S(k) as batch 1 taught it (its history file), each co-located time less the predicted start-up, then less
            // the one its renderer reported (matched to its attempt by its wall time).
            if let h = try? History(path: base + "/history.sqlite", readOnly: true), let rows = try? h.observations(rendererIdentity: profile.identityDigest) {
                let renders = Dictionary(b1.compactMap { j in j.seconds.flatMap { t in j.renderSeconds.map { (t, $0) } } }, uniquingKeysWith: { a, _ in a })
                let model = rows.first?.gpuModel ?? ""
                let unshared = profile.calibrated(by: fit).time.startupSeconds
                func entries(_ reported: Bool) -> [HistoryEntry] {
                    rows.map { r in
                        let startup = reported ? r.wallSeconds.flatMap { w in renders[w].map { w - $0 } } : nil
                        return HistoryEntry(gpuModel: r.gpuModel, observation: Observation(bucket: r.bucket, gpuModel: r.gpuModel, peakGB: r.peakGB, seconds: r.seconds,
                                                                                         frames: r.frames, oom: r.oom, warm: r.warm, startupSeconds: startup),
                                            colocated: r.colocated, wallSeconds: r.wallSeconds)
                    }
                }
                func text(_ k: [Int: Double]) -> String { k.sorted { $0.key < $1.key }.map { String(format: "%d: %.2f", $0.key, $0.value) }.joined(separator: ", ") }
                print("  S(k) learned from batch 1, start-ups predicted (\(String(format: "%.1f", unshared)) s): \(text(Learning.sharing(for: model, from: entries(false), unshared: unshared)))"
                      + "; reported (\(entries(true).filter { $0.observation.startupSeconds != nil }.count) matched): \(text(Learning.sharing(for: model, from: entries(true), unshared: unshared)))")
            }
            // S(k) learned from batch 1 two ways from the same attempts and the same references (its attempts that
            // rendered alone): each attempt counted whole at the most that rendered beside it, as before 2026-12-01, and
            // by its stretches (how long it rendered beside how many, from each render's reported start); then batch 2
            // held out, planned with each.
            if !b2.isEmpty {
                let model = "NVIDIA H200 140GB"
                let obs = observations(b1, predictor: calibrated, context: b1, reported: true)
                let byID = Dictionary(b1.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
                var whole: [HistoryEntry] = [], stretched: [HistoryEntry] = []
                for (j, o) in zip(b1, obs) {
                    guard let st = stretches(j, predictor: calibrated, jobs: byID), let wall = j.seconds else { continue }
                    let most = st.filter { $0.value > 0 }.keys.max() ?? 1
                    whole.append(HistoryEntry(gpuModel: model, observation: o, colocated: most, wallSeconds: wall))
                    stretched.append(HistoryEntry(gpuModel: model, observation: o, colocated: most, wallSeconds: wall, stretches: st))
                }
                let unshared = profile.calibrated(by: fit).time.startupSeconds
                func text(_ k: [Int: Double]) -> String { k.isEmpty ? "none" : k.sorted { $0.key < $1.key }.map { String(format: "%d: %.2f", $0.key, $0.value) }.joined(separator: ", ") }
                let byMost = Learning.sharing(for: model, from: whole, unshared: unshared), byStretches = Learning.sharing(for: model, from: stretched, unshared: unshared)
                print("  S(k) learned from batch 1 (\(stretched.filter { $0.colocated == 1 }.count) attempts alone as references): counted at the most that "
                      + "shared \(text(byMost)); by stretches \(text(byStretches)); the calibration's \(text(fit.sharing))")
                for (name, learnedS) in [("counted at the most that shared", byMost), ("by stretches", byStretches)] {
                    var p = Predictor(profile: profile.calibrated(by: fit).withSharing(learnedS))
                    for o in obs { p.observe(o, origin: .history) }
                    print(row("calibration + history of batch 1, S(k) learned \(name); held out: batch 2", errors(p, on: b2, serial: false, context: b2), jobs: b2.count))
                }
            }
            var fromBatch1: [Predictor] = []
            for reported in [false, true] {
                var learned = calibrated
                for o in observations(b1, predictor: calibrated, context: b1, reported: reported) { learned.observe(o, origin: .history) }
                fromBatch1.append(learned)
                if !b2.isEmpty {
                    print(row("calibration + history of batch 1 (S(k) not learned), start-ups \(reported ? "reported" : "predicted"); held out: batch 2",
                              errors(learned, on: b2, serial: false, context: b2), jobs: b2.count))
                }
            }
            // The warm batch (its requests, alone or beside others) predicted from both cold batches' history.
            if let w = try? jobs(status: base + "/warm-status.json", manifest: nil), !w.isEmpty {
                for (i, reported) in [false, true].enumerated() {
                    var learned = fromBatch1[i]
                    for o in observations(b2, predictor: calibrated, context: b2, reported: reported) { learned.observe(o, origin: .history) }
                    learned.warm = true
                    let e = errors(learned, on: w, serial: false, context: w)
                    // One request at a time: their sum is the batch's work, predicted against observed.
                    let alone = w.allSatisfy { ($0.sharedBy ?? 1) < 1.05 }
                    let predicted = w.map { learned.estimate($0.settings).seconds }.reduce(0, +), observed = w.compactMap(\.seconds).reduce(0, +)
                    print(row("calibration + history of batches 1 and 2, start-ups \(reported ? "reported" : "predicted"); held out: the warm batch's requests", e, jobs: w.count)
                          + (alone ? String(format: " requests %.1f s predicted, %.1f s observed", predicted, observed) : ""))
                }
            }
        }

        // H200 (2026-11-30): Live Avatar's real code (random weights), calibrate --quick on one warm worker, then a
        // 4-clip check batch run warm twice. Requests are predicted as a warm worker pays them: the start-up less the load.
        let la = root + "/bench/results/h200-2026-11-30-la-calibration"
        let (laProfile, _) = ProfileLoader.load(path: root + "/renderers/liveavatar.yaml")
        let runs = ["calcheck", "calcheck2"].compactMap { try? jobs(status: la + "/\($0)-status.json", manifest: nil) }
        if let laProfile, runs.count == 2, let fit = (try? History(path: la + "/calibration-history.sqlite", readOnly: true))
            .flatMap({ try? $0.calibrations().first { $0.state == "complete" }?.fit }) {
            func warm(_ p: RendererProfile) -> Predictor {
                var w = Predictor(profile: p)
                w.warm = true
                return w
            }
            let both = runs[0] + runs[1]
            print("\nreplay NVIDIA H200, Live Avatar: the 4-clip check run twice on warm workers (bench/results/h200-2026-11-30-la-calibration), 8 requests")
            print(header)
            print(row("profile alone", errors(warm(laProfile), on: both, serial: false), jobs: both.count))
            let calibrated = warm(laProfile.calibrated(by: fit))
            print(row("calibration (calibrate --quick, one warm worker)", errors(calibrated, on: both, serial: false), jobs: both.count))
            // The history keeps a warm request's time marked warm (it holds no load); until 2026-11-30 it kept only the
            // peak, which the first of these rows shows.
            var peaksOnly = calibrated, learned = calibrated
            for var o in observations(runs[0], predictor: calibrated) {
                learned.observe(o, origin: .history)
                o.seconds = nil
                peaksOnly.observe(o, origin: .history)
            }
            print(row("calibration + history of the first run, peaks only (held out: the second; as kept before)", errors(peaksOnly, on: runs[1], serial: false), jobs: runs[1].count))
            print(row("calibration + history of the first run, request times kept warm (held out: the second; as kept now)", errors(learned, on: runs[1], serial: false), jobs: runs[1].count))
            // The same check run again later (hist1, then hist2 planned from hist1's history; one worker each, fresh hosts).
            let later = root + "/bench/results/h200-2026-11-30-la-history"
            if let h1 = try? jobs(status: later + "/hist1-status.json", manifest: nil), let h2 = try? jobs(status: later + "/hist2-status.json", manifest: nil) {
                print(row("calibration, on the later pair (hist1 + hist2, bench/results/h200-2026-11-30-la-history)", errors(calibrated, on: h1 + h2, serial: false), jobs: h1.count + h2.count))
                var fromH1 = calibrated
                for o in observations(h1, predictor: calibrated) { fromH1.observe(o, origin: .history) }
                print(row("calibration + history of hist1 (held out: hist2)", errors(fromH1, on: h2, serial: false), jobs: h2.count))
            }
            // The other way round: warm request times predicting cold attempts (a batch run with --workers off).
            var cold = Predictor(profile: laProfile.calibrated(by: fit))
            for o in observations(runs[0], predictor: calibrated) { cold.observe(o, origin: .history) }
            for j in runs[1] {
                let e = cold.estimate(j.settings)
                print(String(format: "  cold prediction of %@ from the first run's warm history: %.1f s (its request %.1f s + load %.1f s)", j.id, e.seconds,
                             j.seconds ?? 0, laProfile.calibrated(by: fit).workerLoadSeconds))
            }
            loads(root: root, profile: laProfile)
            firstRequest(root: root, profile: laProfile)
            firstRequestFixed(root: root, profile: laProfile)
            colocated(root: root, profile: laProfile)
            colocated(root: root, profile: laProfile, dir: "h200-2026-12-02-fixedpart", names: ["colob1", "colob2"],
                      heading: "Live Avatar two at a time, a request's fixed part unshared (2026-12-02, twelfth session): the same ten clips, run twice"
                        + " (colob1 planned from the calibration and 4-clip checks, colob2 from colob1's history)")
        }
        priorWeights(root: root, profile: profile)
        sampleSteps(root: root, profile: profile)
        calibrationLoads(root: root, profile: profile)
        calibrationKinds(root: root, profile: profile)
        sameHostCalibrations(root: root, profile: profile)
        coldSharing(root: root)
    }

    /// S(k) of each calibration in a recorded run's probe stores (calibration-stores.tgz), read two ways: by the renders
    /// the cold probes reported (as calibrate does since 0ac7d39), and by their times less the calibration's fitted
    /// start-up (as it did before). A warm calibration's requests have no start-up, so both read the same there.
    static func coldSharing(root: String) {
        let dir = "h200-2026-12-01-coldrender", base = root + "/bench/results/" + dir
        let tmp = NSTemporaryDirectory() + "replay-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        guard untar(base + "/calibration-stores.tgz", into: tmp) else { return }
        guard let h = try? History(path: base + "/history.sqlite", readOnly: true),
              let calibrations = try? h.calibrations().filter({ $0.state == "complete" }).sorted(by: { $0.id < $1.id }) else { return }
        typealias Probe = (settings: ClipSettings, seconds: Double, render: Double?, ended: Double)
        func probes(_ path: String) -> [String: Probe] {
            let attempts = (try? Store(path: path, readOnly: true).attempts()) ?? []
            return Dictionary(attempts.compactMap { a -> (String, Probe)? in
                guard a.classification == .succeeded, let s = a.settings, let t = a.seconds, let e = a.endedAt else { return nil }
                return (a.jobID, (s, t, a.renderSeconds, e))
            }, uniquingKeysWith: { a, _ in a })
        }
        func text(_ s: [Int: Double]) -> String { s.sorted { $0.key < $1.key }.map { String(format: "%.2f", $0.value) }.joined(separator: ", ") }
        print("\nreplay NVIDIA H200: cold calibrations' S(k) by the renders their probes reported, against their times less the fitted start-up (bench/results/\(dir))")
        print("| calibration | probes | S(2), S(3), S(4) by reported renders | by time less the fitted start-up | as stored |")
        print("| --- | --- | --- | --- | --- |")
        for c in calibrations {
            guard let fit = c.fit else { continue }
            let folder = tmp + "/calibrations/" + (c.workDir as NSString).lastPathComponent
            let alone = probes(folder + "/solo/.avatar-batch/state.sqlite").filter { !$0.key.hasPrefix("warmup") }.values
            let unshared = fit.ranWarm ? 0 : (fit.startupSeconds ?? 0)
            var cells: [String] = []
            // As calibrate does (`Learning.probeRenders`), then with the reported renders left out (as it did before).
            for byRender in [true, false] {
                var renders: [(alone: Double, stretches: [Int: Double])] = []
                for k in 2...4 {
                    let together = probes(folder + "/shared-\(k)/.avatar-batch/state.sqlite").filter { $0.key.hasPrefix("together-") }.values
                    let these: [Learning.TogetherProbe] = together.map { f in
                        let a = alone.first { $0.settings == f.settings }
                        return (f.ended, f.seconds, byRender ? f.render : nil, a.map { ($0.seconds, byRender ? $0.render : nil) })
                    }
                    renders += Learning.probeRenders(these, unshared: unshared).renders
                }
                cells.append(text(Learning.sharing(renders: renders, minimum: 1)))
            }
            print("| \(c.id) | \(fit.ranWarm ? "warm" : String(format: "cold, start-up %.1f s", unshared)) | \(cells[0]) | \(cells[1]) | \(text(fit.sharing)) |")
        }
    }

    /// Three calibrations on one host (kinds: calibrate, calibrate again, calibrate --cold, MORE_CALIBRATIONS=" ;--cold";
    /// coldrender: two --cold with S(k) by reported renders, then a warm one), then batch 1 (cold) and a warm batch:
    /// each batch predicted from each calibration alone. Kept out of `h200Proofs`,
    /// whose sections take a run's newest calibration (here the cold one, which batches pass over).
    static func sameHostCalibrations(root: String, profile: RendererProfile) {
        for dir in ["h200-2026-12-01-kinds", "h200-2026-12-01-coldrender"] {
        let base = root + "/bench/results/" + dir
        guard let h = try? History(path: base + "/history.sqlite", readOnly: true),
              let b1 = try? jobs(status: base + "/run-status.json", manifest: nil), !b1.isEmpty,
              let warmBatch = try? jobs(status: base + "/warm-status.json", manifest: nil), !warmBatch.isEmpty else { continue }
        let complete = ((try? h.calibrations()) ?? []).filter { $0.state == "complete" }.reversed()
        let h200 = [GPU(index: 0, model: "NVIDIA H200", memoryGB: 140.4)]
        print("\nreplay NVIDIA H200: three calibrations on one host, each predicting that host's batch 1 and warm batch alone (bench/results/\(dir))")
        print("| calibration | S(2), S(3), S(4) | batch 1: co-located p50 / p95 | batch 1: plan against span | warm batch: co-located p50 / p95 |")
        print("| --- | --- | --- | --- | --- |")
        for c in complete {
            guard let fit = c.fit else { continue }
            let cold = Predictor(profile: profile.calibrated(by: fit))
            var warm = cold
            warm.warm = true
            let e1 = errors(cold, on: b1, serial: false), eW = errors(warm, on: warmBatch, serial: false)
            let plan = Planner(predictor: cold, strategy: Strategy.table["earliest-finish"]!).plan(b1.map { PlanJob(id: $0.id, settings: $0.settings) }, gpus: h200)
            let against = span(b1).map { String(format: "%+.0f%% (%.0f s, ran %.1f s)", (plan.makespanS - $0) / $0 * 100, plan.makespanS, $0) } ?? "–"
            let sharing = [2, 3, 4].map { k in fit.sharing[k].map { String(format: "%.2f", $0) } ?? "–" }.joined(separator: ", ")
            print("| \(c.id) (\(fit.ranWarm ? "warm" : "cold")) | \(sharing) | \(pct(e1.colocated, 0.5)) / \(pct(e1.colocated, 0.95)) | \(against) | "
                  + "\(pct(eW.colocated, 0.5)) / \(pct(eW.colocated, 0.95)) |")
        }
        }
    }

    /// Whether a batch predicts better from a calibration of its own kind: each run's batch 1 (cold: one process per
    /// clip) and first warm batch (requests to warm workers), predicted from every other host's calibration alone,
    /// warm (`calibrate --quick`) or cold (`calibrate --quick --cold`). Calibrations of one GPU model on other hosts
    /// stand in for the one the batch's own host would have made of the other kind.
    static func calibrationKinds(root: String, profile: RendererProfile) {
        let dirs = h200Proofs + h200ColdCalibrations
        let fits = dirs.compactMap { d in storedFit(root + "/bench/results/" + d + "/history.sqlite", profile: profile).map { (d, $0) } }
        print("\nreplay NVIDIA H200: each batch predicted from the calibrations of the other hosts, warm or cold (calibration alone, all clips held out)")
        print("| run | batch | co-located p95 from warm calibrations: median (min-max, n) | from cold calibrations: median (min-max, n) |")
        print("| --- | --- | --- | --- |")
        var medians: [String: [Double]] = [:]
        for dir in dirs {
            for (file, batch, warmBatch) in [("run-status.json", "1 (cold)", false), ("warm-status.json", "warm", true)] {
                guard let jobs = try? jobs(status: root + "/bench/results/" + dir + "/" + file, manifest: nil), !jobs.isEmpty else { continue }
                var cells: [String] = []
                for kind in [true, false] {
                    let p95s: [Double] = fits.filter { $0.0 != dir && $0.1.ranWarm == kind }.compactMap { _, fit in
                        var p = Predictor(profile: profile.calibrated(by: fit))
                        p.warm = warmBatch
                        return quantile(errors(p, on: jobs, serial: false).colocated, 0.95)
                    }.sorted()
                    guard !p95s.isEmpty else { cells.append("–"); continue }
                    let median = Learning.median(p95s)
                    medians[batch + (kind ? " warm" : " cold"), default: []].append(median)
                    cells.append(String(format: "%.0f%% (%.0f-%.0f%%, %d)", median * 100, p95s.first! * 100, p95s.last! * 100, p95s.count))
                }
                if cells.contains(where: { $0 != "–" }) { print("| \(dir) | \(batch) | \(cells[0]) | \(cells[1]) |") }
            }
        }
        for (k, v) in medians.sorted(by: { $0.key < $1.key }) {
            print(String(format: "  batch %@ calibrations: median of the runs' medians %.0f%% (%d runs)", k, Learning.median(v) * 100, v.count))
        }
    }

    /// What a warm calibration takes as its worker load, and so as a cold job's start-up (the load plus a request's fixed
    /// part): the load of the one worker that served the probes alone (as calibrate does; on a fresh host the first process,
    /// which reads the renderer's libraries from a cold disk), against the median load of every worker it started (its
    /// calibrate.log has them all; tried 2026-12-01 and not kept, docs/benchmarks.md). Batch 1 is planned from the
    /// calibration alone, the first warm batch from it and two cold batches (which record no loads).
    static func calibrationLoads(root: String, profile: RendererProfile) {
        let h200 = [GPU(index: 0, model: "NVIDIA H200", memoryGB: 140.4)]
        var plans1: [[Double]] = [[], [], []], plansW: [[Double]] = [[], [], []], errs: [[Double]] = [[], [], []]
        // A cold process renders slower than a warm worker's request after its warm-up (kernels loaded on first use, the
        // allocator's pool grown from nothing, the encoder's first start): the solo run's cold attempts, each alone, against
        // its own calibration's prediction of their render (the third variant scales every render by this ratio).
        var coldFactor = 1.0, coldText = ""
        let soloDir = root + "/bench/results/h200-2026-12-01-solo"
        if let fit = storedFit(soloDir + "/history.sqlite", profile: profile), let alone = try? jobs(status: soloDir + "/run-status.json", manifest: nil, logs: soloDir + "/logs.tgz") {
            let p = Predictor(profile: profile.calibrated(by: fit))
            let ratios = alone.compactMap { j in j.renderSeconds.map { $0 / max(p.estimate(j.settings).renderSeconds, 0.001) } }
            if !ratios.isEmpty { coldFactor = Learning.median(ratios) }
            coldText = String(format: "  cold renders alone against the calibration's (warm) renders, h200-2026-12-01-solo: x%.2f on the median of %d (x%.2f-x%.2f)",
                              coldFactor, ratios.count, ratios.min() ?? 0, ratios.max() ?? 0)
        }
        print("\nreplay NVIDIA H200: the calibration's worker load and cold start-up from its first worker (as calibrate does), against the median of all its workers (not kept)")
        print("| run | calibrate's loads: first / median (workers) | batch 1's start-ups (median) | batch 1 co-located p50 / p95: first; median; median, cold renders | batch 1 plan against span: first / median / median, cold renders | first warm batch plan against span: first / median |")
        print("| --- | --- | --- | --- | --- | --- |")
        for dir in h200Proofs {
            let base = root + "/bench/results/" + dir
            guard let log = try? String(contentsOfFile: base + "/calibrate.log", encoding: .utf8), let first = storedFit(base + "/history.sqlite", profile: profile),
                  let recordedLoad = first.loadSeconds, let b1 = try? jobs(status: base + "/run-status.json", manifest: nil, logs: base + "/logs.tgz"), !b1.isEmpty,
                  let observed1 = span(b1) else { continue }
            let loads = log.split(separator: "\n").compactMap { line -> Double? in
                guard let r = line.range(of: "loaded in ") else { return nil }
                return Double(line[r.upperBound...].prefix { $0 != " " })
            }
            guard loads.count > 1 else { continue }
            var all = first
            all.loadSeconds = Learning.median(loads)
            all.startupSeconds = first.startupSeconds.map { $0 - recordedLoad + Learning.median(loads) }
            let startUps = b1.compactMap { j in j.seconds.flatMap { t in j.renderSeconds.map { t - $0 } } }
            var cells: [String] = []
            var p1: [Double] = [], pw: [Double] = [], e: [String] = []
            var scaled = all
            scaled.timePoints = all.timePoints.map { var q = $0; q.value *= coldFactor; return q }
            for (i, fit) in [first, all, scaled].enumerated() {
                let calibrated = Predictor(profile: profile.calibrated(by: fit))
                let c = errors(calibrated, on: b1, serial: false, context: b1).colocated
                errs[i] += c
                e.append("\(pct(c, 0.5)) / \(pct(c, 0.95))")
                let plan = Planner(predictor: calibrated, strategy: Strategy.table["earliest-finish"]!).plan(b1.map { PlanJob(id: $0.id, settings: $0.settings) }, gpus: h200)
                p1.append(plan.makespanS / observed1 - 1)
                plans1[i].append(plan.makespanS / observed1 - 1)
                if i < 2, let held = try? jobs(status: base + "/warm-status.json", manifest: nil), !held.isEmpty, let observed = span(held),
                   FileManager.default.fileExists(atPath: base + "/history-after-second.sqlite") {
                    let knowledge = productKnowledge(base + "/history-after-second.sqlite", fit: fit, profile: profile, gpus: h200, warm: true)
                    var predictor = knowledge.predictor()
                    predictor.warm = true
                    let settings = Dictionary(held.map { ($0.id, $0.settings) }, uniquingKeysWith: { a, _ in a })
                    let cold = Planner(predictor: predictor, strategy: Strategy.table["earliest-finish"]!).plan(held.map { PlanJob(id: $0.id, settings: $0.settings) }, gpus: h200)
                    let warm = cold.warmed(load: knowledge.expectedLoad, key: { settings[$0].map(profile.workerKey) ?? "" },
                                           solo: { settings[$0].map { predictor.estimate($0).seconds } ?? 0 },
                                           unshared: { settings[$0].map { predictor.estimate($0).unsharedSeconds } ?? 0 },
                                           sharing: SharingModel(predictor.profile.sharing)).0
                    pw.append(warm.makespanS / observed - 1)
                    plansW[i].append(warm.makespanS / observed - 1)
                }
            }
            cells.append(String(format: "%.1f / %.1f s (%d)", recordedLoad, Learning.median(loads), loads.count))
            cells.append(startUps.isEmpty ? "–" : String(format: "%.1f s", Learning.median(startUps)))
            cells.append(e.joined(separator: "; "))
            cells.append(p1.map { String(format: "%+.0f%%", 100 * $0) }.joined(separator: " / "))
            cells.append(pw.isEmpty ? "–" : pw.map { String(format: "%+.0f%%", 100 * $0) }.joined(separator: " / "))
            print("| \(dir) | " + cells.joined(separator: " | ") + " |")
        }
        func summary(_ v: [Double]) -> String {
            guard !v.isEmpty else { return "–" }
            return String(format: "%+.0f%% (worst %+.0f%%)", 100 * Learning.median(v), 100 * v.max { abs($0) < abs($1) }!)
        }
        print("| all runs, median | | | \(pct(errs[0], 0.5)) / \(pct(errs[0], 0.95)); \(pct(errs[1], 0.5)) / \(pct(errs[1], 0.95)) | "
              + "\(summary(plans1[0])) / \(summary(plans1[1])) | \(summary(plansW[0])) / \(summary(plansW[1])) |")
        print(String(format: "  the median load with every render x%.2f (cold renders, the third figures above): batch 1 co-located %@ / %@, plans %@",
                     coldFactor, pct(errs[2], 0.5), pct(errs[2], 0.95), summary(plans1[2])))
        if !coldText.isEmpty { print(coldText) }
    }

    /// Clips at 8 sample steps run from a history of the same clips at 4 (bench/results/h200-2026-12-01-steps, planned
    /// from h200-2026-12-01-warm3's history after its two cold batches): predicted as the product does now (a bucket of
    /// their own, so the calibration's rate scaled by the steps) and as it did while a bucket pooled every step count
    /// (the 4-step clips' times counted as theirs).
    static func sampleSteps(root: String, profile: RendererProfile) {
        let base = root + "/bench/results/h200-2026-12-01-steps", earlier = root + "/bench/results/h200-2026-12-01-warm3"
        guard let held = try? jobs(status: base + "/status.json", manifest: nil), !held.isEmpty,
              let recorded = try? History(path: earlier + "/history-after-second.sqlite", readOnly: true).observations(rendererIdentity: profile.identityDigest)
        else { return }
        let h200 = [GPU(index: 0, model: "NVIDIA H200", memoryGB: 140.4)]
        let knowledge = productKnowledge(earlier + "/history-after-second.sqlite", fit: storedFit(earlier + "/history.sqlite", profile: profile),
                                         profile: profile, gpus: h200)
        let now = knowledge.predictor()
        var pooled = now
        for s in Set(held.map(\.settings)) {
            var atDefault = s
            atDefault.sampleSteps = ClipSettings.defaultSampleSteps
            for r in recorded where r.bucket == now.bucket(atDefault) {
                pooled.observe(Observation(bucket: now.bucket(s), gpuModel: r.gpuModel, peakGB: r.peakGB, seconds: r.seconds, frames: r.frames, oom: r.oom,
                                           warm: r.warm, startupSeconds: r.startupSeconds), origin: .history)
            }
        }
        print("\nreplay NVIDIA H200: \(held.count) clips at \(held[0].settings.sampleSteps) sample steps from a history of the same clips at 4 (bench/results/h200-2026-12-01-steps)")
        print(header)
        print(row("a bucket per step count (now): the calibration's rate x steps / 4", errors(now, on: held, serial: false, context: held), jobs: held.count))
        print(row("one bucket for every step count (before): the 4-step clips' times", errors(pooled, on: held, serial: false, context: held), jobs: held.count))
        for (name, p) in [("now", now), ("before", pooled)] {
            let plan = Planner(predictor: p, strategy: Strategy.table["earliest-finish"]!).plan(held.map { PlanJob(id: $0.id, settings: $0.settings) }, gpus: h200)
            print(String(format: "  plan %@: makespan %.1f s; the attempts took %.1f s from the first start to the last end", name, plan.makespanS,
                         span(held) ?? 0))
        }
    }

    /// How much the calibration's S(k) should weigh against what a batch's history teaches (`Learning.sharingPriorWeight`):
    /// each recorded run's batch 2 planned from the history batch 1 left, and its warm batch from the history both cold
    /// batches left, as the product plans them (its Knowledge over a copy of the history file), at each weight.
    /// REPLAY_DETAIL=1 prints each run's plan, span and learned S(k).
    static func priorWeights(root: String, profile: RendererProfile) {
        let h200 = [GPU(index: 0, model: "NVIDIA H200", memoryGB: 140.4)]
        let weights: [(String, Double)] = [("0 (none)", 0), ("1", 1), ("2", 2), ("4", 4), ("8", 8), ("16", 16), ("S(k) not learned", 1e9)]
        print("\nreplay NVIDIA H200: the prior weight of S(k) (Learning.sharingPriorWeight); each later batch as the product plans it")
        print("| weight | batch 2: co-located p50 / p95 (runs) | batch 2: plan against span, median / worst | warm batch: co-located p50 / p95 | warm batch: plan against span, median / worst |")
        print("| --- | --- | --- | --- | --- |")
        // The solo run planned every clip alone (--max-jobs-per-gpu 1), which these plans do not.
        let dirs = h200Proofs.filter { $0 != "h200-2026-12-01-solo" }
        for (name, weight) in weights {
            var errs2: [Double] = [], errsW: [Double] = [], plan2: [Double] = [], planW: [Double] = [], errsW2: [Double] = [], planW2: [Double] = []
            var runs2 = 0, runsW = 0
            for dir in dirs {
                let base = root + "/bench/results/" + dir
                // Later warm batches (WARM2=1, WARM3=1 runs) learn S(k) from the earlier ones' requests: their own line below the table.
                for (history, status, kind) in [("history.sqlite", "second-status.json", "batch2"), ("history-after-second.sqlite", "warm-status.json", "warm"),
                                                ("history-after-warm.sqlite", "warm2-status.json", "warm2"), ("history-after-warm2.sqlite", "warm3-status.json", "warm3")] {
                    let warm = kind != "batch2"
                    guard let held = try? jobs(status: base + "/" + status, manifest: nil), !held.isEmpty,
                          FileManager.default.fileExists(atPath: base + "/" + history), let observed = span(held) else { continue }
                    let knowledge = productKnowledge(base + "/" + history, fit: storedFit(base + "/history.sqlite", profile: profile), profile: profile,
                                                     gpus: h200, sharingPriorWeight: weight, warm: warm)
                    var predictor = knowledge.predictor()
                    predictor.warm = warm
                    let e = errors(predictor, on: held, serial: false, context: held).colocated
                    let makespan = plannedAsPlanDoes(held, knowledge: knowledge, predictor: predictor, profile: profile, gpus: h200).plan.makespanS
                    if warm {
                        if kind == "warm" {
                            errsW += e; planW.append(makespan / observed - 1); runsW += 1
                        } else {
                            errsW2 += e; planW2.append(makespan / observed - 1)
                        }
                        if ProcessInfo.processInfo.environment["REPLAY_DETAIL"] != nil { print(String(format: "    %@ %@ %@: plan %.1f s, span %.1f s, learned %@", name, kind, dir, makespan, observed, "\(knowledge.learnedSharing.sorted { $0.key < $1.key })")) }
                    } else {
                        errs2 += e; plan2.append(makespan / observed - 1); runs2 += 1
                        if ProcessInfo.processInfo.environment["REPLAY_DETAIL"] != nil { print(String(format: "    %@ batch2 %@: plan %.1f s, span %.1f s, learned %@", name, dir, makespan, observed, "\(knowledge.learnedSharing.sorted { $0.key < $1.key })")) }
                    }
                }
            }
            func planText(_ v: [Double]) -> String {
                guard !v.isEmpty else { return "–" }
                let worst = v.max { abs($0) < abs($1) }!
                return String(format: "%+.0f%% / %+.0f%%", 100 * Learning.median(v), 100 * worst)
            }
            print("| \(name) | \(pct(errs2, 0.5)) / \(pct(errs2, 0.95)) (\(runs2)) | \(planText(plan2)) | \(pct(errsW, 0.5)) / \(pct(errsW, 0.95)) (\(runsW)) | \(planText(planW)) |")
            if !planW2.isEmpty {
                print("|   later warm batches (\(planW2.count)) | | | \(pct(errsW2, 0.5)) / \(pct(errsW2, 0.95)) | \(planText(planW2)) |")
            }
        }
    }

    /// The product's Knowledge over a recorded history file, read from a copy whose complete calibration is given `fit`
    /// (the figure calibrate fits now: `storedFit`), so the replay plans as the product does today.
    /// A recorded run planned as `plan` plans it: the predictor's plan on `gpus`, then, for a warm predictor, its
    /// workers' loads (`Plan.warmed`, each load-settings group's from `knowledge.expectedLoad`).
    static func plannedAsPlanDoes(_ run: [Job], knowledge: Knowledge, predictor: Predictor, profile: RendererProfile, gpus: [GPU]) -> (plan: Plan, warm: WarmPlan?) {
        let plan = Planner(predictor: predictor, strategy: Strategy.table["earliest-finish"]!).plan(run.map { PlanJob(id: $0.id, settings: $0.settings) }, gpus: gpus)
        guard predictor.warm else { return (plan, nil) }
        let settings = Dictionary(run.map { ($0.id, $0.settings) }, uniquingKeysWith: { a, _ in a })
        let (warmed, workers) = plan.warmed(load: knowledge.expectedLoad, key: { settings[$0].map(profile.workerKey) ?? "" },
                                            solo: { settings[$0].map { predictor.estimate($0).seconds } ?? 0 },
                                            unshared: { settings[$0].map { predictor.estimate($0).unsharedSeconds } ?? 0 },
                                            sharing: SharingModel(predictor.profile.sharing))
        return (warmed, workers)
    }

    static func productKnowledge(_ historyFile: String, fit: CalibrationFit?, profile: RendererProfile, gpus: [GPU],
                                 sharingPriorWeight: Double = Learning.sharingPriorWeight, warm: Bool = false) -> Knowledge {
        let copy = NSTemporaryDirectory() + "replay-knowledge-\(UUID().uuidString).sqlite"
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: copy + suffix) } }
        try? FileManager.default.copyItem(atPath: historyFile, toPath: copy)
        if let fit, let h = try? History(path: copy), let c = try? h.calibrations().first(where: { $0.state == "complete" }) {
            try? h.completeCalibration(c.id, fit: fit, now: c.finishedAt ?? c.startedAt)
        }
        return Knowledge(profile: profile, gpus: gpus, historyPath: copy, batch: "replay", readOnly: true, sharingPriorWeight: sharingPriorWeight, warm: warm)
    }

    /// The complete calibration stored in a recorded history. Those recorded before 2026-12-01 have the per-clip offline
    /// cost only; it is given the per-pixel-frame figure `calibrate` now fits from the same two probes (at the profile's
    /// default size and frames).
    static func storedFit(_ path: String, profile: RendererProfile) -> CalibrationFit? {
        guard var fit = (try? History(path: path, readOnly: true)).flatMap({ try? $0.calibrations().first { $0.state == "complete" }?.fit }) else { return nil }
        if fit.offlinePerMegapixelFrameGB == nil, let perClip = fit.perClipOfflineGB, let size = profile.defaults["size"].flatMap(FrameSize.init),
           let frames = profile.defaults["infer_frames"].flatMap({ Int($0) }) {
            fit.offlinePerMegapixelFrameGB = perClip / (Double(size.pixels * frames) / 1e6)
        }
        return fit
    }

    /// The workers' loads of a recorded run (start to ready, and when it was ready), from the batch store in its tgz.
    static func workerLoads(_ tgz: String) -> [(seconds: Double, at: Double)] {
        let dir = NSTemporaryDirectory() + "replay-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // The store with its WAL: a run cut off by the copy may hold everything there.
        guard untar(tgz, into: dir, ["--wildcards", "./out/.avatar-batch/state.sqlite*"]) else { return [] }
        let workers = (try? Store(path: dir + "/out/.avatar-batch/state.sqlite", readOnly: true).workers()) ?? []
        return workers.compactMap { w in w.loadSeconds.map { ($0, w.readyAt ?? w.startedAt) } }
    }

    /// Live Avatar's worker loads across batches: what the next batch expects (the product's Knowledge over a copy of
    /// the history the runs used, with the earlier run's loads added as the run would now add them) against the
    /// calibration's load and what the next run's worker took; and the plan of hist2 either way against its wall time.
    static func loads(root: String, profile: RendererProfile) {
        let h200 = [GPU(index: 0, model: "NVIDIA H200", memoryGB: 140.4)]
        let fm = FileManager.default
        print("\nreplay NVIDIA H200, Live Avatar: worker loads across batches (each batch expects what the earlier batches' loads took)")
        print("| earlier run (its loads) | next run | expected from the calibration | expected from the history | the next run's loads | error: calibration / history |")
        print("| --- | --- | --- | --- | --- | --- |")
        for (dir, history, earlier, next) in [("h200-2026-11-30-la-calibration", "calibration-history.sqlite", "calcheck", "calcheck2"),
                                              ("h200-2026-11-30-la-history", "history-after-hist1.sqlite", "hist1", "hist2")] {
            let base = root + "/bench/results/" + dir
            let before = workerLoads(base + "/\(earlier).tgz"), after = workerLoads(base + "/\(next).tgz")
            let copy = NSTemporaryDirectory() + "replay-history-\(UUID().uuidString).sqlite"
            defer { try? fm.removeItem(atPath: copy) }
            guard !before.isEmpty, !after.isEmpty, (try? fm.copyItem(atPath: base + "/" + history, toPath: copy)) != nil,
                  let h = try? History(path: copy) else { continue }
            let calibrated = Knowledge(profile: profile, gpus: h200, historyPath: copy, batch: "replay", readOnly: true)
            for l in before {
                try? h.recordLoad(HistoryLoad(rendererIdentity: profile.identityDigest, renderer: profile.name, gpuModel: "NVIDIA H200 140GB",
                                              loadSettings: "", seconds: l.seconds, batch: earlier, recordedAt: l.at))
            }
            let learned = Knowledge(profile: profile, gpus: h200, historyPath: copy, batch: "replay", readOnly: true)
            let c = calibrated.profile.workerLoadSeconds, l = learned.profile.workerLoadSeconds
            let observed = after.map(\.seconds)
            let err = { (x: Double) in observed.map { abs(x - $0) / $0 }.max() ?? 0 }
            print(String(format: "| %@ (%@) | %@ | %.1f s | %.1f s | %@ | %.0f%% / %.0f%% |", earlier, before.map { String(format: "%.1f", $0.seconds) }.joined(separator: ", "),
                         next, c, l, observed.map { String(format: "%.1f", $0) }.joined(separator: ", "), 100 * err(c), 100 * err(l)))
            // The plan of the next run either way, as `plan` makes it (warm requests, then the workers' loads).
            guard next == "hist2", let runJobs = try? jobs(status: base + "/\(next)-status.json", manifest: nil),
                  let doc = try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: base + "/\(next)-status.json"))) as? [String: Any] else { continue }
            let attempts = (doc["jobs"] as? [[String: Any]] ?? []).flatMap { $0["attempts"] as? [[String: Any]] ?? [] }
            guard let first = attempts.compactMap({ $0["started_at"] as? Double }).min(), let last = attempts.compactMap({ $0["ended_at"] as? Double }).max() else { continue }
            for (name, k) in [("the calibration and hist1's request times", calibrated), ("those and hist1's load", learned)] {
                var predictor = k.predictor()
                predictor.warm = true
                let (warmed, w) = plannedAsPlanDoes(runJobs, knowledge: k, predictor: predictor, profile: profile, gpus: h200)
                guard let workers = w else { continue }
                print(String(format: "  plan of %@ from %@: %.1f s (%d worker(s), load %.1f s); its attempts took %.1f s from the first start to the last end",
                             next, name, warmed.makespanS, workers.workers, workers.loadSeconds, last - first))
            }
        }
    }

    /// Live Avatar on an H200 (2026-12-02): `calibrate liveavatar --quick` with the build of the day, then the 4-clip check
    /// twice on one warm worker each (calcheck2 planned from the calibration, calcheck3 from it and calcheck2's history).
    /// The calibration measured a fresh worker's first request at 3.7 s more than the same probe after it, and stored it
    /// in the start-up only: every warm request was predicted with it. Rows: the requests from the stored calibration,
    /// and from the same calibration with that extra paid once per worker (`CalibrationFit.firstRequestSeconds`, read back
    /// from the calibration's note, as a calibration now stores it); then each batch's plan either way, as `plan` makes
    /// it from the history the batch had (the product's Knowledge over a copy, the fixed calibration added as the newer).
    static func firstRequest(root: String, profile: RendererProfile) {
        let base = root + "/bench/results/h200-2026-12-02-la"
        let h200 = [GPU(index: 0, model: "NVIDIA H200", memoryGB: 140.4)]
        guard let runs = Optional(["calcheck2", "calcheck3"].compactMap({ try? jobs(status: base + "/\($0)-status.json", manifest: nil) })), runs.count == 2,
              let stored = (try? History(path: base + "/history-calibrated.sqlite", readOnly: true))
                .flatMap({ try? $0.calibrations().first { $0.state == "complete" } }), let fit = stored.fit,
              let note = fit.notes.first(where: { $0.hasPrefix("a fresh worker's first request took ") }),
              let extra = Double(note.dropFirst("a fresh worker's first request took ".count).prefix { $0.isNumber || $0 == "." }) else { return }
        var fixed = fit
        fixed.firstRequestSeconds = extra
        func warm(_ f: CalibrationFit) -> Predictor {
            var w = Predictor(profile: profile.calibrated(by: f))
            w.warm = true
            return w
        }
        let both = runs[0] + runs[1]
        print("\nreplay NVIDIA H200, Live Avatar (2026-12-02): the 4-clip check run twice on one warm worker each (bench/results/h200-2026-12-02-la), 8 requests;"
              + String(format: " a fresh worker's first request: %.1f s more", extra))
        print(header)
        var alone = Predictor(profile: profile)
        alone.warm = true
        print(row("profile alone", errors(alone, on: both, serial: false), jobs: both.count))
        print(row("calibration as stored (the first request's extra in every request)", errors(warm(fit), on: both, serial: false), jobs: both.count))
        print(row("calibration, the first request's extra paid once per worker (as stored since 2026-12-02)", errors(warm(fixed), on: both, serial: false), jobs: both.count))
        for (name, f) in [("as stored", fit), ("the extra once per worker", fixed)] {
            var learned = warm(f)
            for o in observations(runs[0], predictor: learned) { learned.observe(o, origin: .history) }
            print(row("calibration (\(name)) + history of calcheck2 (held out: calcheck3)", errors(learned, on: runs[1], serial: false), jobs: runs[1].count))
        }
        // Each batch's plan, as `plan` makes it from the history that batch had: the calibration as stored, or fixed.
        let fm = FileManager.default
        for (run, history) in [("calcheck2", "history-before-calcheck2.sqlite"), ("calcheck3", "history-after-calcheck2.sqlite")] {
            guard let doc = try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: base + "/\(run)-status.json"))) as? [String: Any],
                  let runJobs = try? jobs(status: base + "/\(run)-status.json", manifest: nil) else { continue }
            let attempts = (doc["jobs"] as? [[String: Any]] ?? []).flatMap { $0["attempts"] as? [[String: Any]] ?? [] }
            let requests = attempts.compactMap { $0["seconds"] as? Double }.reduce(0, +)
            var out: [String] = []
            for f in [fit, fixed] {
                let copy = NSTemporaryDirectory() + "replay-history-\(UUID().uuidString).sqlite"
                defer { try? fm.removeItem(atPath: copy) }
                guard (try? fm.copyItem(atPath: base + "/" + history, toPath: copy)) != nil, let h = try? History(path: copy) else { continue }
                if f.firstRequestSeconds != nil, let c = try? h.beginCalibration(rendererIdentity: profile.identityDigest, renderer: profile.name,
                                                                                  gpuModel: "NVIDIA H200 140GB", workDir: copy + ".fixed", now: (stored.finishedAt ?? 0) + 1) {
                    try? h.completeCalibration(c.id, fit: f, now: (stored.finishedAt ?? 0) + 2)
                }
                let k = Knowledge(profile: profile, gpus: h200, historyPath: copy, batch: "replay", readOnly: true, warm: true)
                var predictor = k.predictor()
                predictor.warm = true
                let (warmed, planned) = plannedAsPlanDoes(runJobs, knowledge: k, predictor: predictor, profile: profile, gpus: h200)
                guard let w = planned else { continue }
                let predictedRequests = runJobs.map { predictor.estimate($0.settings).seconds }.reduce(0, +)
                out.append(String(format: "%.1f s (load %.1f s, requests %.1f s)", warmed.makespanS, w.loadSeconds, predictedRequests))
            }
            let loads = workerLoads(base + "/\(run).tgz").map { String(format: "%.1f", $0.seconds) }.joined(separator: ", ")
            print(String(format: "  plan of %@ from its history, the calibration as stored: %@; the extra once per worker: %@; it ran: load %@ s, requests %.1f s",
                         run, out.first ?? "-", out.last ?? "-", loads, requests))
        }
    }
    /// Live Avatar two at a time on one H200 (2026-12-02, eleventh session): ten short clips (8 x 384*256, 2 x 688*368)
    /// on two warm workers, run three times (colo1 planned from the calibration and the history of h200-2026-12-02-la2,
    /// each later one from that and the batches before it). Rows: each starting point's errors, the co-located ones against S(k) as the starting point
    /// has it; then each batch's plan, as its run printed it, against its wall time.
    /// `dir`, `names`: another set of such batches (the first planned from the same history as colo1).
    static func colocated(root: String, profile: RendererProfile, dir results: String = "h200-2026-12-02-colo", names: [String] = ["colo1", "colo2", "colo3"],
                          heading: String = "Live Avatar two at a time (2026-12-02, eleventh session): ten short clips on two warm workers, run three times") {
        let base = root + "/bench/results/" + results
        let dir = NSTemporaryDirectory() + "replay-colo-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var runs: [[Job]] = []
        for run in names {
            guard untar(base + "/\(run).tgz", into: dir + "/" + run, ["./status.json"]),
                  let js = try? jobs(status: dir + "/\(run)/status.json", manifest: nil), !js.isEmpty else { return }
            runs.append(js)
        }
        guard let fit = storedFit(base + "/history-after-\(names[0]).sqlite", profile: profile) else { return }
        let h200 = [GPU(index: 0, model: "NVIDIA H200", memoryGB: 140.4013671875)]
        var alone = Predictor(profile: profile)
        alone.warm = true
        var calibrated = Predictor(profile: profile.calibrated(by: fit))
        calibrated.warm = true
        let both = runs.flatMap { $0 }
        print("\nreplay NVIDIA H200, " + heading + " (bench/results/\(results)); S(2) from the calibration: " + String(format: "%.2f", fit.sharing[2] ?? 0))
        print(header)
        print(row("profile alone", errors(alone, on: both, serial: false, context: both), jobs: both.count))
        print(row("calibration", errors(calibrated, on: both, serial: false, context: both), jobs: both.count))
        // What each batch planned from: the product's Knowledge over the history file as it was when the batch began.
        let before = [root + "/bench/results/h200-2026-12-02-la2/history-after-calcheck5.sqlite"] + names.dropLast().map { base + "/history-after-\($0).sqlite" }
        var plans: [String] = []
        for (i, run) in names.enumerated() {
            let knowledge = productKnowledge(before[i], fit: fit, profile: profile, gpus: h200, warm: true)
            var predictor = knowledge.predictor()
            predictor.warm = true
            let held = i == 0 ? "calibration + 4-clip checks' history (as \(run) planned)"
                : "calibration + history to " + names[i - 1] + " (as \(run) planned)"
            print(row(held + String(format: ", S(2) %.2f", SharingModel(predictor.profile.sharing).aggregate(2)),
                      errors(predictor, on: runs[i], serial: false, context: runs[i]), jobs: runs[i].count))
            guard let plan = try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: base + "/\(run)-plan.json"))) as? [String: Any],
                  let makespan = plan["makespan_s"] as? Double, let observed = span(runs[i]) else { continue }
            let load = ((plan["warm"] as? [String: Any])?["load_seconds"] as? Double) ?? 0
            // As this build plans it from the same history (the plan file holds what the build that ran it planned).
            let (now, warmNow) = plannedAsPlanDoes(runs[i], knowledge: knowledge, predictor: predictor, profile: profile, gpus: h200)
            plans.append(String(format: "  %@: planned %.1f s (the workers' load %.1f s, then the requests %.1f s); this build plans %.1f s (load %.1f s);"
                                + " its requests ran %.1f s from the first one's start (the wall time, loads included: summary*.txt)",
                                run, makespan, load, makespan - load, now.makespanS, warmNow?.loadSeconds ?? 0, observed))
        }
        plans.forEach { print($0) }
        // The prior weight of S(k) (Learning.sharingPriorWeight) on these batches: each later one as it would have planned.
        print("  prior weight of S(k): colo2 / colo3 as planned from the history before each, co-located p50 / p95, and the S(2) each planned from")
        for weight in [0.0, 1, 2, 4, 8] {
            var cells: [String] = []
            for i in 1..<names.count {
                var predictor = productKnowledge(before[i], fit: fit, profile: profile, gpus: h200, sharingPriorWeight: weight, warm: true).predictor()
                predictor.warm = true
                let e = errors(predictor, on: runs[i], serial: false, context: runs[i]).colocated
                cells.append("\(pct(e, 0.5)) / \(pct(e, 0.95)) (S(2) " + String(format: "%.2f", SharingModel(predictor.profile.sharing).aggregate(2)) + ")")
            }
            print(String(format: "    weight %g: ", weight) + cells.joined(separator: "; "))
        }
        for file in names.map({ "history-after-\($0).sqlite" }) {
            let knowledge = productKnowledge(base + "/" + file, fit: fit, profile: profile, gpus: h200, warm: true)
            print(String(format: "  S(2) a batch after %@ plans from: %.2f (learned: %@)", file, SharingModel(knowledge.profile.sharing).aggregate(2),
                         knowledge.learnedSharing.sorted { $0.key < $1.key }.map { "S(\($0.key)) \(String(format: "%.2f", $0.value))" }.joined(separator: ", ")))
        }
    }

    /// Live Avatar on an H200 again (2026-12-02, later): `calibrate liveavatar --quick` with the first request's extra kept
    /// apart (d172a9b), then the 4-clip check twice on one warm worker each (calcheck4 from the calibration alone,
    /// calcheck5 from it and calcheck4's history). Rows: each starting point's errors on the requests it did not see;
    /// then each batch's plan, as its run printed it, against the run.
    static func firstRequestFixed(root: String, profile: RendererProfile) {
        let base = root + "/bench/results/h200-2026-12-02-la2"
        let history = NSTemporaryDirectory() + "replay-la2-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: history) }
        guard let runs = Optional(["calcheck4", "calcheck5"].compactMap({ try? jobs(status: base + "/\($0)-status.json", manifest: nil) })), runs.count == 2,
              untar(base + "/calibration.tgz", into: history, ["./history.sqlite"]),
              let fit = (try? History(path: history + "/history.sqlite", readOnly: true))
                .flatMap({ try? $0.calibrations().first { $0.state == "complete" } })?.fit else { return }
        var alone = Predictor(profile: profile)
        alone.warm = true
        var calibrated = Predictor(profile: profile.calibrated(by: fit))
        calibrated.warm = true
        let both = runs[0] + runs[1]
        print("\nreplay NVIDIA H200, Live Avatar (2026-12-02, the build with the first request's extra apart): the 4-clip check run twice on one warm worker"
              + String(format: " each (bench/results/h200-2026-12-02-la2); a fresh worker's first request: %.1f s more", fit.firstRequestSeconds ?? 0))
        print(header)
        print(row("profile alone", errors(alone, on: both, serial: false), jobs: both.count))
        print(row("calibration", errors(calibrated, on: both, serial: false), jobs: both.count))
        var learned = calibrated
        for o in observations(runs[0], predictor: calibrated) { learned.observe(o, origin: .history) }
        print(row("calibration + history of calcheck4 (held out: calcheck5)", errors(learned, on: runs[1], serial: false), jobs: runs[1].count))
        for run in ["calcheck4", "calcheck5"] {
            guard let plan = try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: base + "/\(run)-plan.json"))) as? [String: Any],
                  let status = try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: base + "/\(run)-status.json"))) as? [String: Any],
                  let makespan = plan["makespan_s"] as? Double, let load = (plan["warm"] as? [String: Any])?["load_seconds"] as? Double else { continue }
            let attempts = (status["jobs"] as? [[String: Any]] ?? []).flatMap { $0["attempts"] as? [[String: Any]] ?? [] }
            let took = attempts.compactMap { $0["seconds"] as? Double }.reduce(0, +)
            let planned = (plan["placements"] as? [[String: Any]] ?? []).compactMap { $0["predicted_solo_s"] as? Double }.reduce(0, +)
            let loads = workerLoads(base + "/\(run).tgz").map { String(format: "%.1f", $0.seconds) }.joined(separator: ", ")
            print(String(format: "  %@: planned %.1f s (load %.1f s, requests %.1f s); it ran: load %@ s, requests %.1f s (the wall time: %@-console.txt)",
                         run, makespan, load, planned, loads, took, run))
        }
    }
}

