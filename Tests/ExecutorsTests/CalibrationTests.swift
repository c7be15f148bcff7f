import Checkpoint
import Executors
import Scheduler
import Foundation
import Manifest
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A renderer that reports its own peak (the fake renderer's --model), a manifest for it, and a history of its own.
final class CalibrationBench: @unchecked Sendable {
    let dir = TempDir("calibration")
    var home: String { dir.path + "/home" }
    var profile: String { dir.path + "/fake-model.yaml" }
    var manifest: String { dir.path + "/m.yaml" }
    var historyPath: String { home + "/history.sqlite" }

    init(env: String = "", clips: [String] = ["688*368", "384*256", "704*384"], startup: Double = 1, worker: String = "") {
        dir.write("fake-model.yaml", """
            name: fake-model
            command: [python3, "\(PackagePaths.fakeRenderer)", --output, "{output}", --clip, "{clip_id}", --audio, "{audio}", --model,
                      --size, "{size}", --infer-frames, "{infer_frames}", --num-clip, "{num_clip}", --online-decode, "{online_decode}", --report]
            sizes: ["384*256", "688*368", "704*384"]
            output_check: nonempty
            max_jobs_per_gpu: 3
            defaults: {size: "688*368", infer_frames: 48, sample_steps: 4}
            env: {PYTHONUNBUFFERED: "1"\(env)}
            memory:
              points: [{size: "384*256", infer_frames: 48, gb: 5}, {size: "688*368", infer_frames: 48, gb: 8}]
              headroom: 0.1
            time:
              points: [{size: "384*256", infer_frames: 48, ms_per_frame: 10}]
              startup_s: \(startup)
            sharing: {2: 1.5}
            \(worker)
            """)
        dir.write("face.png", Media.png)
        dir.write("a.wav", Media.wav(seconds: 2))
        var yaml = """
            version: 1
            name: calm
            output_dir: out
            renderer: fake-model.yaml
            gpus: 1x24GB
            defaults: {image: face.png, audio: a.wav, prompt: p, num_clip: 1}
            clips:

            """
        for (i, size) in clips.enumerated() { yaml += "  - {id: c\(i), size: \"\(size)\"}\n" }
        dir.write("m.yaml", yaml)
    }

    func run(_ args: [String]) throws -> CLIResult { try CLI.run(args, env: ["AVATAR_BATCH_HOME": home]) }
    func calibrate(_ extra: [String] = []) throws -> CLIResult { try run(["calibrate", profile, "--gpus", "1x24GB", "--quick", "--grace", "1"] + extra) }
}

@Suite(.serialized) struct CalibrationTests {
    @Test func aCalibrationIsFittedStoredAndUsedByLaterBatches() throws {
        let b = CalibrationBench()
        let before = try b.run(["plan", b.manifest, "--explain"])
        #expect(before.stdout.contains("predictions: profile defaults"), "\(before.stdout)")
        let r = try b.calibrate()
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("5 probes alone, then 2, 3 at once; about"), "\(r.stderr)")
        let h = try History(path: b.historyPath, readOnly: true)
        let c = try #require(try h.calibrations().first)
        #expect(c.state == "complete" && c.gpuModel == "virtual 24GB")
        let fit = try #require(c.fit)
        // The fake's model: 2 GB + 0.25 GB per megapixel-frame of one clip; 0.004 GB per megapixel-frame of each offline
        // clip (0.049 GB a 688*368 x48 clip); 0.3 GB online.
        let mpf = { (w: Double, h: Double) in w * h * 48 / 1e6 }
        let m688 = try #require(fit.memoryPoints.first { $0.size == "688*368" })
        #expect(abs(m688.value - (2 + 0.25 * mpf(688, 368))) < 0.05, "\(m688)")
        let m384 = try #require(fit.memoryPoints.first { $0.size == "384*256" })
        #expect(abs(m384.value - (2 + 0.25 * mpf(384, 256))) < 0.02, "\(m384)")
        #expect(abs((fit.perClipOfflineGB ?? 0) - 0.004 * mpf(688, 368)) < 0.01 && abs((fit.onlineDecodeGB ?? 0) - 0.3) < 0.01, "\(fit)")
        #expect(abs((fit.offlinePerMegapixelFrameGB ?? 0) - 0.004) < 0.0008, "\(fit)")
        #expect(r.stdout.contains("GB per million pixel-frames at other sizes"), "\(r.stdout)")
        // Start-up: 0.3 s of sleep plus Python's own; a 2-core machine co-locating 2 CPU-bound probes gets S(2) in (0.8, 2].
        #expect((fit.startupSeconds ?? -1) > 0.2 && (fit.startupSeconds ?? 9) < 2, "\(fit)")
        let s2 = try #require(fit.sharing[2])
        #expect(s2 > 0.8 && s2 <= 2)
        // The fake reports its render: the probes together are lined up by it (kept in each attempt's record).
        #expect(fit.notes.contains("S(2), S(3) from the renders the probes reported (their start-ups left out)"), "\(fit.notes)")
        // Later batches plan from it, then from their own history.
        let after = try b.run(["plan", b.manifest, "--explain"])
        #expect(after.stdout.contains("predictions: calibration of") && after.stdout.contains("from: calibration of"), "\(after.stdout)")
        // With a second GPU model, not calibrated, the plan says that its renders are planned as this one's
        // (`eachGPUModelOfAMixedInventoryIsPlannedAndRunAtTheSpeedItsCalibrationMeasured` calibrates it).
        let mixed = try b.run(["plan", b.manifest, "--explain", "--gpus", "1x24GB,1x80GB"])
        #expect(mixed.stdout.contains("renders on virtual 80GB are planned as on virtual 24GB"), "\(mixed.stdout)")
        let planned = try JSONSerialization.jsonObject(with: Data(try b.run(["plan", b.manifest, "--json"]).stdout.utf8)) as! [String: Any]
        let c0 = (planned["placements"] as! [[String: Any]]).first { $0["job"] as? String == "c0" }!
        #expect(abs((c0["memory_gb"] as! Double) - (m688.value + 0.004 * mpf(688, 368)) * 1.1) < 0.01, "\(c0)")
        // An offline clip of another size keeps its own frames: 20 clips at 384*256 hold 0.38 GB of them, not 20 x the
        // default size's 0.049 GB (what a constant per-clip figure predicted: 0.6 GB too much here, and too little for
        // frames larger than the default's).
        b.dir.write("long.yaml", try String(contentsOfFile: b.manifest, encoding: .utf8) + "  - {id: long, size: \"384*256\", num_clip: 20}\n")
        let long = try JSONSerialization.jsonObject(with: Data(try b.run(["plan", b.dir.path + "/long.yaml", "--json"]).stdout.utf8)) as! [String: Any]
        let placed = (long["placements"] as! [[String: Any]]).first { $0["job"] as? String == "long" }!
        let truth = 2 + 0.25 * mpf(384, 256) + 0.004 * mpf(384, 256) * 20
        #expect(abs((placed["memory_gb"] as! Double) / 1.1 - truth) < 0.05, "\(placed) against \(truth)")
        let run = try b.run(["run", b.manifest, "--grace", "1"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stderr.contains("predictions: calibration of"))
        let status = try b.run(["status", b.manifest, "--json"])
        let doc = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as! [String: Any]
        #expect((doc["prediction_basis"] as? String)?.contains("calibration of") == true)
        let attempts = ((doc["jobs"] as! [[String: Any]])[0]["attempts"] as! [[String: Any]])
        #expect((attempts[0]["predicted_from"] as? String)?.contains("calibration of") == true, "\(attempts)")
        let history = try b.run(["plan", b.manifest, "--explain"])
        #expect(history.stdout.contains("from: history: 1 observation(s) on this GPU model"), "\(history.stdout)")
        #expect(try History(path: b.historyPath, readOnly: true).observations(rendererIdentity: try #require(c.rendererIdentity as String?)).count == 3)
    }

    @Test func aProfileWithAWorkerIsCalibratedWarmItsLoadMeasuredOnce() throws {
        let b = CalibrationBench(worker: """
            worker:
              command: [python3, "\(PackagePaths.root)/renderers/testkit/fake_worker.py", --model, --load-seconds, "1.5", --resident-gb, "2",
                        --first-request-seconds, "1.5"]
              load_s: 9
              resident_gb: 2
            """)
        let r = try b.calibrate()
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("5 probes alone on one warm worker, then 2, 3 at once, each worker's first request a warm-up"), "\(r.stderr)")
        let fit = try #require(try History(path: b.historyPath, readOnly: true).calibrations().first?.fit)
        // One worker served the five probes alone: one load, measured (1.5 s of sleep plus Python's start), not load_s.
        let solo = try Store(path: try #require(FileManager.default.contentsOfDirectory(atPath: b.home + "/calibrations").first
            .map { b.home + "/calibrations/" + $0 + "/solo/.avatar-batch/state.sqlite" }), readOnly: true)
        let workers = try solo.workers(), attempts = try solo.attempts()
        // Its first request is a warm-up, ahead of the five probes: each worker's first request pays 1.5 s more here.
        #expect(workers.count == 1 && attempts.count == 6 && attempts.allSatisfy { $0.workerID != nil }, "\(workers)")
        let firstRequest = try #require(attempts.min { ($0.startedAt) < ($1.startedAt) })
        #expect(firstRequest.jobID.hasPrefix("warmup-"), "\(attempts.map(\.jobID))")
        // S(2): two workers, their requests rendering at the same time (the worker rule alone would have served both
        // on one worker, one after the other, and S(2) would have read 2.0: seen on an H200).
        let shared = try Store(path: try #require(FileManager.default.contentsOfDirectory(atPath: b.home + "/calibrations").first
            .map { b.home + "/calibrations/" + $0 + "/shared-2/.avatar-batch/state.sqlite" }), readOnly: true)
        let pair = try shared.attempts().filter { $0.jobID.hasPrefix("together-") }
        let pairWorkers = try shared.workers()
        #expect(pairWorkers.count == 2 && Set(pair.compactMap(\.workerID)).count == 2, "\(pairWorkers)")
        let renders = pair.compactMap { a in a.endedAt.flatMap { e in a.seconds.map { (e - $0, e) } } }
        #expect(renders.count == 2 && renders.map(\.0).max()! < renders.map(\.1).min()!, "the two requests did not overlap: \(renders)")
        // Each pair ran after its workers' warm-ups: the fake's requests take the same wall time side by side (work until a
        // deadline), so S(2) reads 2. Timed on the first requests, as before 2026-12-01, it read about 1.0 (2 x 1.6 / 3.1).
        let s2 = try #require(fit.sharing[2])
        #expect(s2 > 1.8, "\(fit.sharing); \(pair.map { ($0.jobID, $0.seconds ?? -1) })")
        // The long probes of two sizes take turns together, and S(3) is measured too, from how long each rendered beside
        // how many: the fake's requests do not slow, so it reads about 3 although the probes differ in length.
        let threes = try Store(path: try #require(FileManager.default.contentsOfDirectory(atPath: b.home + "/calibrations").first
            .map { b.home + "/calibrations/" + $0 + "/shared-3/.avatar-batch/state.sqlite" }), readOnly: true).attempts().filter { $0.jobID.hasPrefix("together-") }
        #expect(threes.count == 3 && Set(threes.compactMap { $0.settings.map { "\($0.size)" } }).count == 2, "\(threes.map(\.jobID))")
        let s3 = try #require(fit.sharing[3], "\(fit.sharing) \(fit.notes)")
        #expect(s3 > 2.5, "\(fit.sharing)")
        let load = try #require(fit.loadSeconds)
        #expect(load >= 1.5 && load < 5, "\(fit)")
        // The start-up of a cold job is that load plus a request's own fixed time (0.1 s of work and the round trip),
        // plus the first request's extra 1.5 s, measured against the same probe once warm.
        let startup = try #require(fit.startupSeconds)
        #expect(startup >= load + 1.4 && startup < load + 2.5, "\(fit)")
        #expect(fit.notes.contains { $0.contains("first request took 1.") }, "\(fit.notes)")
        // Each new worker pays it once, with its load; the requests after the first do not (until 2026-12-02 every warm
        // request was predicted with it: 3.7 s too long for each of Live Avatar's on an H200).
        let extra = try #require(fit.firstRequestSeconds)
        #expect(extra > 1.2 && extra < 2.5, "\(fit)")
        let calibrated = try #require(ProfileLoader.load(path: b.profile).0).calibrated(by: fit)
        #expect(abs(calibrated.workerLoadSeconds - (load + extra)) < 1e-9)
        // The worker keeps it apart too, so a pool adds it to the loads it measures from start to ready.
        #expect(calibrated.worker?.firstRequestSeconds == extra)
        // The rates and peaks are the requests': the fake's 0.004 s per frame at 384*256 is 4 ms/frame (the CPU work).
        let rate = try #require(fit.timePoints.first { $0.size == "384*256" }).value
        #expect(rate > 3 && rate < 12, "\(fit.timePoints)")
        let m688 = try #require(fit.memoryPoints.first { $0.size == "688*368" })
        #expect(abs(m688.value - (2 + 0.25 * 688 * 368 * 48 / 1e6)) < 0.05, "\(m688)")
        #expect(abs((fit.onlineDecodeGB ?? 0) - 0.3) < 0.01, "\(fit)")
        #expect(fit.notes.contains { $0.contains("ran on one warm worker") }, "\(fit.notes)")
        // Later warm plans pay the measured load and first request, not the profile's 9 s; a request, neither.
        let json = try JSONSerialization.jsonObject(with: Data(try b.run(["plan", b.manifest, "--json"]).stdout.utf8)) as! [String: Any]
        let warmPlan = try #require(json["warm"] as? [String: Any], "\(json.keys)")
        #expect(abs((warmPlan["load_seconds"] as? Double ?? 0) - (load + extra)) < 0.01, "\(warmPlan)")
        let small = try #require((json["placements"] as? [[String: Any]])?.first { $0["job"] as? String == "c1" }?["predicted_solo_s"] as? Double)
        #expect(small < 1.2, "a 384*256 request predicted at \(small) s, with the first request's \(extra) s in it")
        // --cold calibrates each probe as its own process (the fake renderer's command): no worker, no load.
        let cold = try b.calibrate(["--cold", "--discard"])
        #expect(cold.status == 0 && !cold.stderr.contains("warm worker"), "\(cold.stderr)")
        // Each calibration says which kind of probes it ran.
        #expect(fit.warm == true)
        let complete = try History(path: b.historyPath, readOnly: true).calibrations().filter { $0.state == "complete" }
        let newest = try #require(complete.max { $0.id < $1.id })
        #expect(newest.fit?.warm == false && newest.fit?.ranWarm == false, "\(newest)")
        // Batches keep planning from the warm one, which predicted cold batches better too; calibrate and the basis say so.
        let warmID = try #require(complete.min { $0.id < $1.id }?.id)
        #expect(cold.stdout.contains("keep planning from calibration \(warmID) of ") && cold.stdout.contains("whose probes ran on warm workers"),
                "\(cold.stdout)")
        let warmPlan2 = try b.run(["plan", b.manifest, "--explain"]), coldPlan = try b.run(["plan", b.manifest, "--explain", "--workers", "off"])
        for p in [warmPlan2, coldPlan] {
            #expect(p.stdout.contains("is not used: its probes ran cold") && !p.stdout.contains("(its probes ran cold)"), "\(p.stdout)")
        }
        #expect(coldPlan.stdout.contains("(its probes ran on warm workers)"), "\(coldPlan.stdout)")
        // --list shows both, newest first, and marks the one batches plan from.
        let listed = try b.run(["calibrate", b.profile, "--list"])
        let lines = listed.stdout.split(separator: "\n").map(String.init)
        let warmLine = try #require(lines.first { $0.hasPrefix("    \(warmID)  complete  warm") }, "\(listed.stdout)")
        let coldLine = try #require(lines.first { $0.hasPrefix("    \(newest.id)  complete  cold") }, "\(listed.stdout)")
        #expect(warmLine.hasSuffix("<- batches on virtual 24GB plan from it") && !coldLine.contains("plan from it"), "\(listed.stdout)")
        #expect(try #require(lines.firstIndex(of: coldLine)) < (try #require(lines.firstIndex(of: warmLine))))
        let again = try #require(JSONSerialization.jsonObject(with: Data(try b.run(["plan", b.manifest, "--json"]).stdout.utf8)) as? [String: Any])
        #expect(abs(((again["warm"] as? [String: Any])?["load_seconds"] as? Double ?? 0) - (load + extra)) < 0.01, "\(again)")
    }

    @Test func warmRequestTimesAreKeptAndPredictTheNextBatchWarmAndCold() throws {
        // Start-up 3 s, of which the worker's load is 2.5 s: a request's fixed part is 0.5 s.
        let b = CalibrationBench(startup: 3, worker: """
            worker:
              command: [python3, "\(PackagePaths.root)/renderers/testkit/fake_worker.py", --model, --load-seconds, "0.2", --resident-gb, "2"]
              load_s: 2.5
              resident_gb: 2
            """)
        let run = try b.run(["run", b.manifest, "--grace", "1", "--max-jobs-per-gpu", "1"])
        #expect(run.status == 0, "\(run.stderr)")
        let identity = try #require(ProfileLoader.load(path: b.profile).0).identityDigest
        let kept = try History(path: b.historyPath, readOnly: true).observations(rendererIdentity: identity)
        #expect(kept.count == 3 && kept.allSatisfy { $0.warm && ($0.seconds ?? 0) > 0 }, "\(kept)")
        // The batch leaves its writes in the history file itself, not in its write-ahead log: a copy of the file alone
        // (what `cp history.sqlite` takes) has them. On an H200 a warm batch's were left in the log, and a copy lost them.
        let copy = b.dir.path + "/copy.sqlite"
        try FileManager.default.copyItem(atPath: b.historyPath, toPath: copy)
        #expect(try History(path: copy, readOnly: true).observations(rendererIdentity: identity).count == 3)
        let store = try Store(path: b.dir.path + "/out/.avatar-batch/state.sqlite", readOnly: true)
        #expect(try store.observations(renderer: "fake-model").allSatisfy(\.warm))
        // The worker's load is kept too (the 0.2 s the fake reports, not the profile's 2.5 s): the next batch
        // expects it, on a warm worker and inside a cold attempt's start-up.
        let loads = try History(path: b.historyPath, readOnly: true).loads(rendererIdentity: identity, gpuModel: "virtual 24GB")
        let measured = try #require(try store.workers().first?.loadSeconds)
        #expect(measured == 0.2 && loads.map(\.seconds) == [measured] && loads.first?.batch.hasPrefix("calm (") == true, "\(loads)")
        // The next batch plans each clip from its request: warm, the request's time; cold, that plus the load.
        func planned(_ extra: [String]) throws -> [String: Double] {
            let doc = try JSONSerialization.jsonObject(with: Data(try b.run(["plan", b.manifest, "--json", "--max-jobs-per-gpu", "1"] + extra).stdout.utf8)) as! [String: Any]
            return Dictionary(uniqueKeysWithValues: (doc["placements"] as! [[String: Any]]).map { ($0["job"] as! String, $0["predicted_solo_s"] as! Double) })
        }
        let warm = try planned([]), cold = try planned(["--workers", "off"])
        // The history keeps a request's solo-equivalent time: its wall time, less a few milliseconds when the next clip
        // was already admitted beside it as it ended (the session counts it as sharing for that moment).
        for a in try store.attempts() {
            let seconds = try #require(a.seconds)
            let w = try #require(warm[a.jobID]), c = try #require(cold[a.jobID])
            #expect(abs(w - seconds) <= 0.02, "\(a.jobID): \(warm) vs \(seconds); kept \(kept.map { ($0.bucket, $0.seconds ?? -1, $0.wallSeconds ?? -1) })")
            #expect(abs(c - w - measured) < 1e-6, "\(a.jobID): \(cold) vs \(warm)")
        }
        let explain = try b.run(["plan", b.manifest, "--explain"])
        #expect(explain.stdout.contains("from: history: 1 observation(s) on this GPU model"), "\(explain.stdout)")
        #expect(explain.stdout.contains(String(format: "worker load %.1f s: the median of the last 1 load(s)", measured)), "\(explain.stdout)")
        #expect(explain.stdout.contains(String(format: "each loading once (~%@)", ProgressReporter.duration(measured))), "\(explain.stdout)")
    }

    @Test func aColdAttemptsReportedStartUpIsKeptAndTheNextBatchPredictsFromIt() throws {
        // The profile says a 6 s start-up; the fake renderer starts in 0.3 s of sleep plus Python's own, and reports
        // the rest of its time as `render_seconds`.
        let b = CalibrationBench(startup: 6)
        let run = try b.run(["run", b.manifest, "--grace", "1", "--max-jobs-per-gpu", "1"])
        #expect(run.status == 0, "\(run.stderr)")
        let identity = try #require(ProfileLoader.load(path: b.profile).0).identityDigest
        let kept = try History(path: b.historyPath, readOnly: true).observations(rendererIdentity: identity)
        let store = try Store(path: b.dir.path + "/out/.avatar-batch/state.sqlite", readOnly: true)
        let attempts = try store.attempts()
        #expect(kept.count == 3 && attempts.count == 3)
        for o in kept {
            let startup = try #require(o.startupSeconds, "\(kept)")
            let seconds = try #require(o.seconds)
            #expect(!o.warm && startup >= 0.3 && startup < seconds && startup < 3, "\(o)")
            // Alone on its card: its render, from the moment the renderer says it began, is one stretch at k = 1.
            let stretches = try #require(o.stretches, "\(o)")
            let wall = try #require(o.wallSeconds)
            #expect(stretches.keys.sorted() == [1] && abs(stretches[1]! - (wall - startup)) < 0.05, "\(o)")
        }
        #expect(try store.observations(renderer: "fake-model").allSatisfy { ($0.startupSeconds ?? 0) >= 0.3 })
        // The next batch predicts each clip as it ran (start-up and render as reported), not stretched by the
        // profile's 6 s, for the sizes it ran; alone on the card, solo-equivalent is wall time.
        let doc = try JSONSerialization.jsonObject(with: Data(try b.run(["plan", b.manifest, "--json", "--max-jobs-per-gpu", "1"]).stdout.utf8)) as! [String: Any]
        let planned = Dictionary(uniqueKeysWithValues: (doc["placements"] as! [[String: Any]]).map { ($0["job"] as! String, $0["predicted_solo_s"] as! Double) })
        for a in attempts {
            let seconds = try #require(a.seconds)
            let p = try #require(planned[a.jobID])
            #expect(abs(p - seconds) <= 0.02, "\(a.jobID): planned \(p) against \(seconds)")
        }
        // A size no attempt ran starts up as the others did: the reported start-ups, not the profile's 6 s.
        b.dir.write("other.yaml", try String(contentsOfFile: b.manifest, encoding: .utf8).replacingOccurrences(of: "c2, size: \"704*384\"", with: "c2, size: \"704*384\", num_clip: 3"))
        let other = try JSONSerialization.jsonObject(with: Data(try b.run(["plan", b.dir.path + "/other.yaml", "--json"]).stdout.utf8)) as! [String: Any]
        let c2 = try #require((other["placements"] as! [[String: Any]]).first { $0["job"] as? String == "c2" })
        let solo = try #require(c2["predicted_solo_s"] as? Double)
        let startups = kept.compactMap(\.startupSeconds)
        let prior = Predictor(profile: try #require(ProfileLoader.load(path: b.profile).0)).estimate(settings("704*384", clips: 3))
        let expected = prior.seconds - 6 + startups.reduce(0, +) / Double(startups.count)
        #expect(abs(solo - expected) < 0.01, "\(c2) against \(expected), start-ups \(startups)")
        // Three at once on the card: each render's stretches hold time beside the others, and no more than its render.
        b.dir.write("together.yaml", try String(contentsOfFile: b.manifest, encoding: .utf8).replacingOccurrences(of: "output_dir: out", with: "output_dir: together"))
        let together = try b.run(["run", b.dir.path + "/together.yaml", "--grace", "1", "--max-jobs-per-gpu", "3"])
        #expect(together.status == 0, "\(together.stderr)")
        let shared = try History(path: b.historyPath, readOnly: true).observations(rendererIdentity: identity).dropFirst(3)
        #expect(shared.count == 3)
        for o in shared {
            let stretches = try #require(o.stretches, "\(o)")
            let render = try #require(o.wallSeconds) - (o.startupSeconds ?? 0)
            #expect(stretches.keys.contains { $0 > 1 } && abs(stretches.values.reduce(0, +) - render) < 0.05, "\(o)")
        }
    }

    @Test func anInterruptedCalibrationResumesAndIsNeverHalfUsed() throws {
        let b = CalibrationBench()
        let (p, _, _) = try CLI.start(["calibrate", b.profile, "--gpus", "1x24GB", "--quick", "--grace", "1"], env: ["AVATAR_BATCH_HOME": b.home])
        // Kill it once the first probe is recorded done.
        let deadline = Date().addingTimeInterval(30)
        var done = 0
        while Date() < deadline {
            if let store = try? FileManager.default.contentsOfDirectory(atPath: b.home + "/calibrations").first.map({ b.home + "/calibrations/" + $0 + "/solo/.avatar-batch/state.sqlite" }),
               let s = try? Store(path: store, readOnly: true), let n = try? s.counts()[.succeeded], n >= 1 { done = n; break }
            usleep(50_000)
        }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        #expect(done >= 1, "no probe finished before the kill")
        let h = try History(path: b.historyPath, readOnly: true)
        #expect(try h.calibrations().first?.state == "running")
        // Not half-used: plans still start from the profile.
        #expect(try b.run(["plan", b.manifest]).stdout.contains("predictions: profile defaults"))
        let r = try b.calibrate()
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("resuming calibration"), "\(r.stderr)")
        #expect(r.stderr.contains("already done") && !r.stderr.contains(" 0 already done, 5 to render"), "\(r.stderr)")
        let resumed = try #require(try History(path: b.historyPath, readOnly: true).calibrations().first)
        #expect(resumed.state == "complete")
        // Its seconds are the probes' in all, the killed session's too: its run up to its last finished probe (the resumed
        // run closed it when it took over, exit status -1), and not the time it lay dead.
        let solo = try Store(path: b.home + "/calibrations/" + (try #require(FileManager.default.contentsOfDirectory(atPath: b.home + "/calibrations").first))
                             + "/solo/.avatar-batch/state.sqlite", readOnly: true)
        let killedRun = try #require(try solo.runs().first { $0.exitStatus == -1 })
        let killedFor = try #require(try solo.attempts().filter { $0.runID == killedRun.id && $0.classification == .succeeded }.compactMap(\.endedAt).max())
            - killedRun.startedAt
        let endedRuns = try solo.runs().filter { $0.exitStatus != -1 }.compactMap { r in r.endedAt.map { $0 - r.startedAt } }.reduce(0, +)
        #expect(killedFor > 0.2 && (resumed.fit?.seconds ?? 0) >= killedFor + endedRuns - 0.01, "\(resumed.fit?.seconds ?? -1) against \(killedFor) + \(endedRuns)")
        // A calibration resumes only with the options it began with: probes of another design are never fitted with its own.
        let (p2, _, _) = try CLI.start(["calibrate", b.profile, "--gpus", "1x24GB", "--quick", "--grace", "1"], env: ["AVATAR_BATCH_HOME": b.home])
        let begun = Date().addingTimeInterval(30)
        // Its own folder (the first one's has its options too).
        func optionsWritten() -> Int {
            ((try? FileManager.default.contentsOfDirectory(atPath: b.home + "/calibrations")) ?? []).filter {
                FileManager.default.fileExists(atPath: b.home + "/calibrations/" + $0 + "/options.txt")
            }.count
        }
        while Date() < begun, optionsWritten() < 2 { usleep(50_000) }
        kill(p2.processIdentifier, SIGKILL)
        p2.waitUntilExit()
        let full = try b.run(["calibrate", b.profile, "--gpus", "1x24GB", "--grace", "1"])
        #expect(full.status == 2 && full.stderr.contains("was begun as cold, --quick, not cold, full") && full.stderr.contains("--discard"), "\(full.stderr)")
        #expect(try History(path: b.historyPath, readOnly: true).calibrations().first?.state == "running")
        let listed = try b.run(["calibrate", b.profile, "--list"])
        #expect(listed.status == 0 && listed.stdout.contains("  virtual 24GB:\n"), "\(listed.stdout)")
        #expect(listed.stdout.contains("running  begun ") && listed.stdout.contains(" as cold, --quick: unfinished, never used"), "\(listed.stdout)")
        #expect(listed.stdout.contains("    1  complete  cold  finished ") && listed.stdout.contains("<- batches on virtual 24GB plan from it"), "\(listed.stdout)")
        // --discard starts afresh: the old one is never resumed.
        let again = try b.calibrate(["--discard"])
        #expect(again.status == 0)
        let states = try History(path: b.historyPath, readOnly: true).calibrations().map(\.state)
        #expect(states == ["complete", "discarded", "complete"], "\(states)")
    }

    @Test func calibratingAgainRendersItsOwnProbes() throws {
        // A second calibration (a new driver, a new disk) measures afresh: until 2026-12-01 both used one folder, and the
        // second found the first one's probes done and stored their figures again.
        let b = CalibrationBench()
        let first = try b.calibrate(), second = try b.calibrate()
        #expect(first.status == 0 && second.status == 0, "\(second.stderr)")
        #expect(!second.stderr.contains("resuming") && second.stderr.contains("5 clips, 0 already done, 5 to render"), "\(second.stderr)")
        let done = try History(path: b.historyPath, readOnly: true).calibrations()
        #expect(done.map(\.state) == ["complete", "complete"] && Set(done.map(\.workDir)).count == 2, "\(done.map(\.workDir))")
        #expect(done[0].fit != nil && done[0].fit?.seconds != done[1].fit?.seconds)
    }

    @Test func eachGPUModelOfAMixedInventoryIsPlannedAndRunAtTheSpeedItsCalibrationMeasured() throws {
        // The 24 GB card is calibrated as it is; the 80 GB card renders three times as slowly (the fake's FAKE_SLOW_GPUS)
        // and is calibrated on its own. A batch on both plans each card at its own speed.
        let b = CalibrationBench(clips: Array(repeating: "688*368", count: 6))
        // One clip a card at a time, so that the plan's choice is which card, not how many at once.
        let mixed = ["--gpus", "1x24GB,1x80GB", "--max-jobs-per-gpu", "1"]
        let unknown = try b.run(["plan", b.manifest, "--explain"] + mixed)
        #expect(unknown.stdout.contains("renders on virtual 80GB are planned as on virtual 24GB: no calibration of both"), "\(unknown.stdout)")
        #expect(try b.calibrate().status == 0)
        // Through a copy of the profile in a file of another name (the same renderer: its identity is its content). Until
        // 2026-12-02 calibrate named the profile in its probes' manifests by `<name>.yaml` beside it, and this failed.
        try FileManager.default.createDirectory(atPath: b.dir.path + "/cards", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: b.profile, toPath: b.dir.path + "/cards/slow-card.yaml")
        let slow = try CLI.run(["calibrate", b.dir.path + "/cards/slow-card.yaml", "--gpus", "1x80GB", "--quick", "--grace", "1"],
                               env: ["AVATAR_BATCH_HOME": b.home, "FAKE_SLOW_GPUS": "virtual-0:3"])
        #expect(slow.status == 0, "\(slow.stderr)")
        let plan = try b.run(["plan", b.manifest, "--explain"] + mixed)
        #expect(plan.stdout.contains("renders on virtual 80GB take x") && plan.stdout.contains("(its calibration of "), "\(plan.stdout)")
        let doc = try JSONSerialization.jsonObject(with: Data(try b.run(["plan", b.manifest, "--json"] + mixed).stdout.utf8)) as! [String: Any]
        let cards = doc["gpus"] as! [[String: Any]]
        let scale = try #require(cards.first { $0["index"] as? Int == 1 }?["time_scale"] as? Double)
        // The render is three times as long; the fixed part of each probe is not, and two cores measure loosely.
        #expect(scale > 1.8 && scale < 4.5 && cards.first { $0["index"] as? Int == 0 }?["time_scale"] as? Double == 1, "\(cards)")
        #expect(plan.stdout.contains(String(format: "renders x%.2f", scale)), "\(plan.stdout)")
        let placements = doc["placements"] as! [[String: Any]]
        let on = { (g: Int) in placements.filter { $0["gpu"] as? Int == g } }
        // The slower card is given fewer clips, and each is predicted to take longer there.
        #expect(on(0).count > on(1).count && !on(1).isEmpty, "\(placements)")
        let solo = { (g: Int) in on(g).compactMap { $0["predicted_solo_s"] as? Double }.max() ?? 0 }
        #expect(solo(1) > solo(0) * 1.5, "\(placements)")
        // The run agrees: the slow card's attempts were predicted slower, and the batch's predictor learns each card's
        // times as the 24 GB model's (a second run's plan does not move the scale).
        let run = try CLI.run(["run", b.manifest, "--grace", "1"] + mixed, env: ["AVATAR_BATCH_HOME": b.home, "FAKE_SLOW_GPUS": "virtual-1:3"])
        #expect(run.status == 0 && run.stderr.contains("renders on virtual 80GB take x"), "\(run.stderr)")
        let status = try JSONSerialization.jsonObject(with: Data(try b.run(["status", b.manifest, "--json"]).stdout.utf8)) as! [String: Any]
        let jobs = status["jobs"] as! [[String: Any]]
        let predicted = { (g: Int) in
            jobs.filter { (($0["attempts"] as! [[String: Any]]).last?["gpu"] as? Int) == g }.compactMap { $0["predicted_s"] as? Double }
        }
        #expect(!predicted(0).isEmpty && !predicted(1).isEmpty && (predicted(1).min() ?? 0) > (predicted(0).max() ?? .infinity), "\(jobs)")
    }

    @Test func aProbeThatRunsOutOfMemoryIsAnUpperBoundNotAFailure() throws {
        // A 4 GB card: the 688*368 probes (5 GB) run out of memory; the 384*256 one (3.2 GB) does not.
        let b = CalibrationBench(env: ", FAKE_GPU_GB: \"4\"")
        let r = try b.calibrate()
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("ran out of memory") && r.stdout.contains("an upper bound"), "\(r.stdout)")
        let fit = try #require(try History(path: b.historyPath, readOnly: true).calibrations().first?.fit)
        #expect(fit.oomProbes >= 2)
        #expect(fit.memoryPoints.map(\.size) == ["384*256"])
    }

    @Test func aBrokenHistoryIsAWarningNeverACrash() throws {
        let b = CalibrationBench(clips: ["384*256"])
        try FileManager.default.createDirectory(atPath: b.home, withIntermediateDirectories: true)
        // Corrupt.
        try Data("this is not a database, just text".utf8).write(to: URL(fileURLWithPath: b.historyPath))
        let r = try b.run(["run", b.manifest, "--grace", "1"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("warning: the history at \(b.historyPath) cannot be used") && r.stderr.contains("predictions: profile defaults"), "\(r.stderr)")
        #expect(try b.run(["plan", b.manifest]).status == 0)
        let cal = try b.calibrate()
        #expect(cal.status == 1 && cal.stderr.contains("cannot be used"), "\(cal.stderr)")
        // From a newer version.
        try FileManager.default.removeItem(atPath: b.historyPath)
        _ = try History(path: b.historyPath)
        try History(path: b.historyPath).executeRaw("INSERT INTO grdb_migrations (identifier) VALUES ('history-2099-01-01')")
        let newer = try b.run(["run", b.manifest, "--grace", "1", "--state", b.dir.path + "/other.sqlite"])
        #expect(newer.status == 0, "\(newer.stderr)")
        #expect(newer.stderr.contains("written by a newer avatar-batch"), "\(newer.stderr)")
        // --no-history: neither read nor written.
        let none = try b.run(["run", b.manifest, "--grace", "1", "--no-history", "--state", b.dir.path + "/third.sqlite"])
        #expect(none.status == 0 && !none.stderr.contains("newer"), "\(none.stderr)")
    }
}

@Suite struct BusyGPUTests {
    @Test func aGPUOthersUseIsNamedWithWhatTheyHold() {
        let busy = GPU(index: 1, uuid: "GPU-1234", model: "NVIDIA H200", memoryGB: 140, foreignUsedGB: 23.5)
        #expect(GPUDiscovery.busyReason(busy) == "GPU 1 already has 23.5 GB in use by other processes")
        #expect(GPUDiscovery.busyReason(GPU(index: 0, uuid: "GPU-1234", model: "NVIDIA H200", memoryGB: 140, foreignUsedGB: 0.4)) == nil)
        // Virtual GPUs are never busy.
        #expect(GPUDiscovery.busyReason(GPU(index: 0, model: "virtual", memoryGB: 24, foreignUsedGB: 30)) == nil)
    }
}
