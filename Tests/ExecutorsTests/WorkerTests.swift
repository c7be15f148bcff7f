import Checkpoint
import Executors
import Foundation
import Manifest
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A batch whose profile has a warm worker: the testkit's fake worker, with the fake renderer as its cold command.
func warmBatch(_ clips: [(id: String, mode: String)], gpus: String = "1x24GB", retry: String = "{max_attempts: 3, on_oom: [{online_decode: true}]}",
               worker: String = "", fault: String = "", extraClip: String = "", check: String = "nonempty", ffmpeg: Bool = false) -> Batch {
    let b = Batch(clips: clips, check: check, ffmpeg: ffmpeg, retry: retry, gpus: gpus, extraClip: extraClip)
    let workerYAML = """
        worker:
          command: [python3, "\(PackagePaths.root)/renderers/testkit/fake_worker.py", --ledger, "\(b.ledger)", --offload, "{offload_model}", \(ffmpeg ? "--ffmpeg, " : "")--load-seconds, "0.2"]
          load_settings: [offload_model]
          resident_gb: 4
          ready_timeout: 3
          max_deaths: 2
          env: {FAKE_WORKER_FAULT: "\(fault)"}
        \(worker)
        """
    let profile = b.dir.path + "/test.yaml"
    let text = (try? String(contentsOfFile: profile, encoding: .utf8)) ?? ""
    try? (text + "\n" + workerYAML).write(toFile: profile, atomically: true, encoding: .utf8)
    return b
}

extension Batch {
    func events(_ kind: String) -> [[String: Any]] { ledgerLines().filter { $0["event"] as? String == kind } }
    /// Attempt notes of a job, oldest first.
    func notes(_ id: String) throws -> [String] {
        ((try jobs()[id]?["attempts"] as? [[String: Any]]) ?? []).map { ($0["note"] as? String) ?? "" }
    }
    /// `run` in the background, its output discarded (the tests read the store and the ledger), for a kill or a poll.
    func startRun(_ extra: [String] = []) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: PackagePaths.binary)
        p.environment = CLI.environment()
        p.arguments = ["run", manifest, "--grace", "1"] + extra + ["--quiet"]
        p.standardError = FileHandle.nullDevice
        try p.run()
        return p
    }

    /// The fake worker loads for `load` seconds and its profile says so (`load_s`); requests are predicted at
    /// `msPerFrame`; `readyTimeout` replaces the 3 s the worker has to say ready.
    func tuneWorker(load: Int, msPerFrame: Int, readyTimeout: Int? = nil) throws {
        let profile = dir.path + "/test.yaml"
        var text = try String(contentsOfFile: profile, encoding: .utf8)
        text = text.replacingOccurrences(of: "--load-seconds, \"0.2\"]", with: "--load-seconds, \"\(load)\"]")
            .replacingOccurrences(of: "  resident_gb: 4\n", with: "  resident_gb: 4\n  load_s: \(load)\n")
            .replacingOccurrences(of: "ms_per_frame: 1}", with: "ms_per_frame: \(msPerFrame)}")
        if let readyTimeout { text = text.replacingOccurrences(of: "  ready_timeout: 3\n", with: "  ready_timeout: \(readyTimeout)\n") }
        try text.write(toFile: profile, atomically: true, encoding: .utf8)
    }

    func workerIDs(_ id: String) throws -> [String] {
        ((try jobs()[id]?["attempts"] as? [[String: Any]]) ?? []).map { ($0["worker"] as? String) ?? "-" }
    }
}

@Suite(.serialized) struct WorkerTests {
    @Test func aWarmWorkerLoadsOnceAndServesEveryClipOfItsSlot() throws {
        let clips = (1...8).map { (id: "c\($0)", mode: "ok") }
        let b = warmBatch(clips, gpus: "2x24GB")
        let r = try b.run()
        #expect(r.status == 0, "\(r.stderr)")
        // 2 GPUs x 2 slots (10 GB jobs on 24 GB cards, max_jobs_per_gpu 2): at most 4 loads for 8 clips.
        let loads = b.events("load").count
        #expect(loads >= 1 && loads <= 4, "\(loads) loads")
        #expect(b.events("render").count == 8)
        let jobs = try b.jobs()
        var served: [String: Int] = [:]
        for c in clips {
            #expect(classifications(jobs[c.id]) == ["succeeded"])
            let w = try b.workerIDs(c.id)
            #expect(w.count == 1 && w[0] != "-", "\(c.id) served by \(w)")
            served[w[0], default: 0] += 1
            // The attempt's log has the worker's lines for this clip.
            let log = (try String(contentsOfFile: b.dir.path + "/out/.avatar-batch/logs/\(c.id).attempt-1.log", encoding: .utf8))
            #expect(log.contains("served by warm worker"))
            #expect(log.contains("rendering \(c.id) (ok)"))
        }
        #expect(served.values.contains { $0 > 1 }, "no worker served twice: \(served)")
        // Every render happened on the GPU its worker was started for, and every worker exited when the batch was done.
        let store = try Store(path: b.store, readOnly: true)
        let workers = try store.workers()
        #expect(workers.count == loads)
        #expect(workers.allSatisfy { $0.endedAt != nil && ($0.endNote ?? "").contains("exited when asked") }, "\(workers.map(\.endNote))")
        #expect(workers.reduce(0) { $0 + $1.served } == 8)
        for e in b.events("render") {
            let w = workers.first { $0.id == e["worker"] as? String }
            #expect(w != nil && String(w!.gpu ?? -1) == e["cuda_visible_devices"] as? String)
        }
        #expect(processes(mentioning: b.ledger).isEmpty)
        // A second run finds everything done and starts no worker.
        let again = try b.run()
        #expect(again.status == 0)
        #expect(b.events("load").count == loads)
    }

    @Test func workersOffRunsEveryClipAsItsOwnProcess() throws {
        let b = warmBatch([("a", "ok"), ("b", "ok")])
        let r = try b.run(["--workers", "off"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(b.events("load").isEmpty)
        #expect(b.events("start").count == 2)  // the fake renderer's own ledger lines
        #expect(try b.workerIDs("a") == ["-"])
        let bad = try b.run(["--workers", "sometimes"])
        #expect(bad.status != 0 && bad.stderr.contains("--workers must be auto or off"))
    }

    @Test func loadSettingsGetWorkersOfTheirOwn() throws {
        let b = warmBatch([("off-1", "ok"), ("on-1", "ok"), ("off-2", "ok"), ("on-2", "ok")], extraClip: "")
        try b.editManifest(("{id: on-1,", "{id: on-1, offload_model: true,"), ("{id: on-2,", "{id: on-2, offload_model: true,"))
        let r = try b.run(["--max-jobs-per-gpu", "1"])
        #expect(r.status == 0, "\(r.stderr)")
        for e in b.events("render") {
            let clip = e["clip"] as? String ?? ""
            #expect(e["offload"] as? String == (clip.hasPrefix("on") ? "True" : "False"), "\(clip) rendered by a worker loaded with \(e["offload"] ?? "?")")
        }
        // One slot: a worker of the other settings exits to make room, saying why.
        #expect(r.stderr.contains("needs its place for other load settings") || b.events("load").count == 2, "\(r.stderr)")
    }

    @Test func aPlanExpectsEachLoadSettingsGroupsOwnLoad() throws {
        let b = warmBatch([("off-1", "ok"), ("off-2", "ok"), ("on-1", "ok")])
        try b.editManifest(("{id: on-1,", "{id: on-1, offload_model: true,"))
        // Earlier batches on this GPU model loaded offloading workers in 9 s and the others in 3 s.
        let home = b.dir.path + "/home"
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
        let profile = try #require(ProfileLoader.load(path: b.dir.path + "/test.yaml").0)
        let h = try History(path: home + "/history.sqlite")
        for (group, seconds) in [("offload_model=False", 3.0), ("offload_model=True", 9.0)] {
            try h.recordLoad(HistoryLoad(rendererIdentity: profile.identityDigest, renderer: profile.name, gpuModel: "virtual 24GB", loadSettings: group,
                                         seconds: seconds, batch: "earlier"))
        }
        let text = try CLI.run(["plan", b.manifest], env: ["AVATAR_BATCH_HOME": home])
        #expect(text.status == 0 && text.stdout.contains("2 worker(s)"), "\(text.stdout)\(text.stderr)")
        let line = try #require(text.stdout.split(separator: "\n").first { $0.hasPrefix("warm workers:") })
        #expect(line.contains("for offload_model=False") && line.contains("for offload_model=True"), "\(line)")
        let json = try CLI.run(["plan", b.manifest, "--json"], env: ["AVATAR_BATCH_HOME": home])
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let warm = try #require(doc["warm"] as? [String: Any])
        #expect(warm["load_seconds"] as? Double == 9 && warm["load_seconds_by_settings"] as? [String: Double] == ["offload_model=False": 3, "offload_model=True": 9],
                "\(warm)")
        var validator = SchemaValidator(folder: SchemaTests.folder)
        #expect(try validator.errors(try JSONValue.parse(Data(json.stdout.utf8)), against: "plan.schema.json").isEmpty)
        // The offloading clip's worker is ready 6 s after the first: the plan's last end is at least its load and clip.
        let ends = (doc["placements"] as? [[String: Any]] ?? []).compactMap { p -> Double? in p["job"] as? String == "on-1" ? p["end_s"] as? Double : nil }
        #expect((ends.first ?? 0) >= 9, "\(doc["placements"] ?? "")")
    }

    @Test func aWorkerThatNeverSaysReadyIsKilledAndTheGPUFallsBackToColdProcesses() throws {
        let b = warmBatch([("a", "ok")], fault: "never-ready")
        let r = try b.run()
        #expect(r.status == 0, "\(r.stderr)")
        #expect(classifications(try b.jobs()["a"]) == ["crashed", "crashed", "succeeded"])
        #expect(try b.notes("a")[0].contains("did not say ready within 3 s"))
        #expect(r.stderr.contains("runs cold on it from now on"))
        #expect(try b.workerIDs("a").last == "-")
        #expect(processes(mentioning: b.ledger).isEmpty)
    }

    @Test func aWorkerThatDiesWhileLoadingFailsItsRequestWithTheExit() throws {
        let b = warmBatch([("a", "ok")], retry: "{max_attempts: 1}", fault: "die-loading")
        let r = try b.run()
        #expect(r.status == 1)
        #expect(classifications(try b.jobs()["a"]) == ["crashed"])
        let note = try b.notes("a")[0]
        #expect(note.contains("died while loading (exit 4)"), "\(note)")
        let job = try b.jobs()["a"]!["attempts"] as! [[String: Any]]
        #expect((job[0]["stderr_tail"] as? String)?.contains("dying while loading") == true)
    }

    @Test func aWorkerThatDiesMidRequestIsReplacedAndTheClipRetried() throws {
        let b = warmBatch([("a", "die-once"), ("b", "ok")])
        let r = try b.run(["--max-jobs-per-gpu", "1"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(classifications(try b.jobs()["a"]) == ["crashed", "succeeded"])
        #expect(try b.notes("a")[0].contains("died mid-request (exit 3)"))
        let ids = try b.workerIDs("a")
        #expect(ids[0] != ids[1])
    }

    @Test func aHungRequestTimesOutAndItsWorkerGroupIsKilled() throws {
        let b = warmBatch([("h", "hang")], retry: "{max_attempts: 1}", extraClip: ", timeout: 2")
        let r = try b.run()
        #expect(r.status == 1)
        #expect(classifications(try b.jobs()["h"]) == ["timeout"])
        #expect(try b.notes("h")[0].contains("process group was killed"))
        #expect(processes(mentioning: b.ledger).isEmpty)
    }

    @Test func garbageOnTheSocketKillsTheWorkerAndKeepsTheBytes() throws {
        let b = warmBatch([("g", "garbage")], retry: "{max_attempts: 1}")
        let r = try b.run()
        #expect(r.status == 1)
        #expect(classifications(try b.jobs()["g"]) == ["crashed"])
        #expect(try b.notes("g")[0].contains("broke the protocol"))
        let logs = try FileManager.default.contentsOfDirectory(atPath: b.dir.path + "/out/.avatar-batch/logs/workers")
        let text = try logs.map { try String(contentsOfFile: b.dir.path + "/out/.avatar-batch/logs/workers/" + $0, encoding: .utf8) }.joined()
        #expect(text.contains("not json at all"))
        #expect(processes(mentioning: b.ledger).isEmpty)
    }

    @Test func doneWithoutAValidOutputIsInvalidOutputAndTheWorkerServesOn() throws {
        let b = warmBatch([("n", "no-output"), ("ok", "ok")], retry: "{max_attempts: 1}")
        let r = try b.run(["--max-jobs-per-gpu", "1"])
        #expect(r.status == 1)
        #expect(classifications(try b.jobs()["n"]) == ["invalid-output"])
        #expect(classifications(try b.jobs()["ok"]) == ["succeeded"])
        #expect(b.events("load").count == 1)
    }

    @Test func anOOMRestartsTheWorkerAndTheLadderApplies() throws {
        let b = warmBatch([("o", "oom")])
        let r = try b.run()
        #expect(r.status == 0, "\(r.stderr)")
        #expect(classifications(try b.jobs()["o"]) == ["oom", "succeeded"])
        #expect(r.stderr.contains("restarted after an out-of-memory request"))
        #expect(r.stderr.contains("tried to allocate 12.00 GiB"))
        // The worker that ran out of memory is not used again.
        let ids = try b.workerIDs("o")
        #expect(ids.count == 2 && ids[0] != ids[1])
        #expect(b.events("exit").count >= 1)
    }

    @Test func aFailedRequestLeavesTheWorkerServing() throws {
        let b = warmBatch([("f", "fail"), ("ok", "ok")], retry: "{max_attempts: 1}")
        let r = try b.run(["--max-jobs-per-gpu", "1"])
        #expect(r.status == 1)
        #expect(classifications(try b.jobs()["f"]) == ["crashed"])
        #expect(try b.notes("f")[0].contains("ValueError: bad prompt"))
        #expect(b.events("load").count == 1)
    }

    @Test func warmOutputsPassFFprobeAndReportsShowWorkers() throws {
        let b = warmBatch([("a", "ok"), ("b", "ok")], check: "ffprobe", ffmpeg: true)
        let r = try b.run(["--report", b.dir.path + "/reports", "--max-jobs-per-gpu", "1"])
        #expect(r.status == 0, "\(r.stderr)")
        let html = try String(contentsOfFile: b.dir.path + "/reports/report.html", encoding: .utf8)
        #expect(html.contains("<g class=\"worker\">") && html.contains("worker loading"))
        // The report's JSON lists the worker, and it and status conform to their schemas.
        var v = SchemaValidator(folder: SchemaTests.folder)
        let report = try String(contentsOfFile: b.dir.path + "/reports/report.json", encoding: .utf8)
        #expect(try v.errors(try JSONValue.parse(Data(report.utf8)), against: "report.schema.json").isEmpty)
        let doc = try JSONSerialization.jsonObject(with: Data(report.utf8)) as! [String: Any]
        let workers = doc["workers"] as? [[String: Any]] ?? []
        #expect(workers.count == 1 && workers[0]["served"] as? Int == 2 && workers[0]["state"] as? String == "ended", "\(workers)")
        #expect(try v.errors(try JSONValue.parse(Data(try CLI.run(["status", b.manifest, "--json"]).stdout.utf8)), against: "status.schema.json").isEmpty)
        let plan = try CLI.run(["plan", b.manifest])
        #expect(plan.stdout.contains("warm workers:"), "\(plan.stdout)")
        let cold = try CLI.run(["plan", b.manifest, "--workers", "off"])
        #expect(!cold.stdout.contains("warm workers:"))
    }

    @Test func sigkillOfTheOrchestratorLeavesNoWorkerAndNothingFinishedRendersAgain() throws {
        let clips = (1...6).map { (id: "k\($0)", mode: "ok") }
        let b = warmBatch(clips)
        try b.editManifest(("--mode, ok]", "--mode, ok, --sleep, \"0.7\"]"))
        let p = try b.startRun(["--max-jobs-per-gpu", "1"])
        // Kill once two clips are answered.
        let deadline = Date().addingTimeInterval(30)
        while b.events("answer").count < 2 && Date() < deadline { usleep(50_000) }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        let answered = Set(b.events("answer").compactMap { $0["clip"] as? String })
        // The worker sees its socket close and exits by itself.
        let gone = Date().addingTimeInterval(5)
        while !processes(mentioning: b.ledger).isEmpty && Date() < gone { usleep(100_000) }
        #expect(processes(mentioning: b.ledger).isEmpty)
        let store = try Store(path: b.store, readOnly: true)
        let doneBefore = Set(try store.jobs().filter { $0.state == .succeeded }.map(\.id))
        #expect(doneBefore.isSubset(of: answered))
        let r = try b.run()
        #expect(r.status == 0, "\(r.stderr)")
        let renders = b.events("render").compactMap { $0["clip"] as? String }
        for id in doneBefore { #expect(renders.filter { $0 == id }.count == 1, "\(id) rendered again") }
        for c in clips { #expect(try b.jobs()[c.id]?["state"] as? String == "succeeded") }
        // The dead run's worker is recorded ended.
        #expect(try Store(path: b.store, readOnly: true).openWorkers().isEmpty)
    }

    @Test func theNextRunStopsAWorkerThatOutlivedItsOrchestrator() throws {
        // A worker stuck in a request does not read its socket, so it does not see it close: the next run finds it
        // by the attempt's process group and the workers table, stops it, and renders the clip again.
        let b = warmBatch([("stuck", "hang")], extraClip: ", timeout: 60")
        let p = try b.startRun()
        let deadline = Date().addingTimeInterval(20)
        while b.events("render").isEmpty && Date() < deadline { usleep(50_000) }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        usleep(500_000)
        #expect(!processes(mentioning: b.ledger).isEmpty, "the stuck worker should still be running")
        try b.editManifest(("[--mode, hang]", "[--mode, ok]"))
        let r = try b.run()
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("stopping leftover"), "\(r.stderr)")
        #expect(processes(mentioning: b.ledger).isEmpty)
        let store = try Store(path: b.store, readOnly: true)
        #expect(try store.openWorkers().isEmpty)
        #expect(try store.workers().contains { ($0.endNote ?? "").contains("stopped by the next run") || ($0.endNote ?? "").contains("gone when") })
        #expect(try b.jobs()["stuck"]?["state"] as? String == "succeeded")
    }

    @Test func twoHundredShortLessonsLoadTheModelAHandfulOfTimes() throws {
        // The issue's bar: a 200-clip batch loads once per worker slot (2 GPUs x 2 slots here), not 200 times.
        let clips = (1...200).map { (id: String(format: "lesson-%03d", $0), mode: "ok") }
        let b = warmBatch(clips, gpus: "2x24GB")
        let r = try b.run(["--quiet"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(b.events("render").count == 200)
        #expect(b.events("load").count <= 4, "\(b.events("load").count) loads")
        #expect(try b.status()["counts"] as? [String: Int] == ["pending": 0, "running": 0, "succeeded": 200, "failed": 0, "interrupted": 0, "cancelled": 0])
    }

    @Test func aSecondWorkerStartsOnlyWhenTheWorkWaitingIsWorthItsLoad() throws {
        // One 24 GB card, two 10 GB slots, a 2 s load. Four clips predicted at 0.05 s each: a second worker would load
        // for 2 s to finish its clip long after the first finished all four, so one worker renders them. The same clips
        // predicted at 4.8 s each (a second worker's load and clip, 6.8 s, against 19.2 s of work): a second starts.
        func batch(msPerFrame: Int) throws -> Batch {
            let b = warmBatch((1...4).map { (id: "c\($0)", mode: "ok") }, gpus: "1x24GB")
            try b.tuneWorker(load: 2, msPerFrame: msPerFrame)
            return b
        }
        let short = try batch(msPerFrame: 1)
        var r = try short.run()
        #expect(r.status == 0, "\(r.stderr)")
        #expect(short.events("load").count == 1 && short.events("render").count == 4, "\(short.events("load").count) loads")
        let long = try batch(msPerFrame: 100)
        r = try long.run()
        #expect(r.status == 0, "\(r.stderr)")
        #expect(long.events("load").count == 2 && long.events("render").count == 4, "\(long.events("load").count) loads")
    }

    @Test func aClipWeighedRoundAfterRoundDoesNotTalkItselfIntoASecondWorker() throws {
        // Measured on an H200 (Live Avatar, 4 clips): each admission round placed the next clip beside the running one,
        // found a new worker not worth its load and withdrew it, but the running clip's predicted end stayed pushed out
        // by that company; round after round its end moved out until a second worker looked worth it. Here: a 6 s load,
        // four clips predicted at 1.92 s: a second worker would finish its first clip at 7.92 s, the first worker all
        // four at 7.68 s (6 + 3 x 1.92 after its own): one worker, however many rounds its load lasts.
        let b = warmBatch((1...4).map { (id: "c\($0)", mode: "ok") }, gpus: "1x24GB")
        try b.tuneWorker(load: 6, msPerFrame: 40, readyTimeout: 30)
        let r = try b.run()
        #expect(r.status == 0, "\(r.stderr)")
        #expect(b.events("load").count == 1 && b.events("render").count == 4, "\(b.events("load").count) loads: \(r.stderr)")
    }

    @Test func aWorkerLoadingBesideARenderDoesNotCountAsSharingTheGPU() throws {
        // c1's request takes 1.5 s, so after it the others are predicted at 1.5 s and a second worker (2 s load) starts
        // for c3 while the first renders c2. c2 rendered alone: the loading worker takes no share of the GPU's compute,
        // so its history row says it ran alone and its time is kept as it was.
        let b = warmBatch((1...5).map { (id: "c\($0)", mode: "ok") }, gpus: "1x24GB")
        try b.tuneWorker(load: 2, msPerFrame: 10)
        let profile = b.dir.path + "/test.yaml"
        try b.editManifest(("[--mode, ok]", "[--mode, ok, --sleep, \"1.5\"]"))
        let r = try b.run()
        #expect(r.status == 0, "\(r.stderr)")
        #expect(b.events("load").count == 2, "\(b.events("load").count) loads: \(r.stderr)")
        let identity = try #require(ProfileLoader.load(path: profile).0).identityDigest
        let rows = try History(path: CLI.testHome + "/history.sqlite", readOnly: true).observations(rendererIdentity: identity)
        let attempts = try Store(path: b.store, readOnly: true).attempts()
        // The second worker's first request (c3) and what the first rendered while it loaded: alone, their times kept.
        // The history has a row per attempt, in the order they ended.
        let ended = attempts.sorted { ($0.endedAt ?? 0) < ($1.endedAt ?? 0) }
        #expect(rows.count == ended.count)
        let i = try #require(ended.firstIndex { $0.jobID == "c2" })
        let row = rows[i], c2 = ended[i]
        #expect(row.colocated == 1 && row.warm && abs((row.seconds ?? 0) - (c2.seconds ?? 0)) < 1e-6, "\(row) \(c2)")
    }

    @Test func aRequestsFixedPartIsNotCountedAsRendering() throws {
        // The profile's start-up is 1.2 s more than its worker's load: each request's first 1.2 s (set-up, save and
        // mux) shares nothing, so the history keeps only the rest of each request's time as render (its stretches) and
        // the 1.2 s apart. Until 2026-12-02 the whole request was counted as render.
        let b = warmBatch([(id: "c1", mode: "ok"), (id: "c2", mode: "ok")], gpus: "1x24GB")
        try b.tuneWorker(load: 1, msPerFrame: 10)
        let profile = b.dir.path + "/test.yaml"
        let text = try String(contentsOfFile: profile, encoding: .utf8)
        try text.replacingOccurrences(of: "ms_per_frame: 10}]", with: "ms_per_frame: 10}]\n  startup_s: 2.2")
            .write(toFile: profile, atomically: true, encoding: .utf8)
        try b.editManifest(("[--mode, ok]", "[--mode, ok, --sleep, \"2\"]"))
        let r = try b.run()
        #expect(r.status == 0, "\(r.stderr)")
        let identity = try #require(ProfileLoader.load(path: profile).0).identityDigest
        let rows = try History(path: CLI.testHome + "/history.sqlite", readOnly: true).observations(rendererIdentity: identity)
        #expect(rows.count == 2 && rows.allSatisfy(\.warm), "\(rows)")
        for row in rows {
            let wall = try #require(row.wallSeconds), rendered = try #require(row.stretches).values.reduce(0, +)
            #expect(wall >= 2 && abs(wall - rendered - 1.2) < 1e-6, "\(row)")
        }
    }

    @Test func statusListsLiveWorkers() throws {
        let b = warmBatch([("s", "ok")])
        try b.editManifest(("--mode, ok]", "--mode, ok, --sleep, \"3\"]"))
        let p = try b.startRun()
        defer { if p.isRunning { p.terminate() }; p.waitUntilExit() }
        let deadline = Date().addingTimeInterval(20)
        var listed: [[String: Any]] = []
        while Date() < deadline {
            if let s = try? b.status(), let w = s["workers"] as? [[String: Any]], !w.isEmpty, w[0]["serving"] as? String == "s",
               w[0]["state"] as? String == "ready" { listed = w; break }
            usleep(100_000)
        }
        #expect(listed.count == 1, "no live worker listed")
        #expect(listed.first?["state"] as? String == "ready")
        #expect(listed.first?["load_settings"] as? String == "offload_model=False")
        #expect(listed.first?["resident_gb"] as? Double == 4)
        var v = SchemaValidator(folder: SchemaTests.folder)
        let live = try CLI.run(["status", b.manifest, "--json"]).stdout
        #expect(try v.errors(try JSONValue.parse(Data(live.utf8)), against: "status.schema.json").isEmpty, "\(live)")
        let text = try CLI.run(["status", b.manifest])
        #expect(text.stdout.contains("worker ") && text.stdout.contains("rendering s"), "\(text.stdout)")
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
    }
}

@Suite struct WorkerProtocolTests {
    func parse(_ s: String) throws -> WorkerMessage { try WorkerMessage.parse(Data(s.utf8)) }

    @Test func theThreeEventsParse() throws {
        #expect(try parse(#"{"event": "ready", "pid": 42, "load_seconds": 3.5, "resident_gb": 31}"#) == .ready(pid: 42, loadSeconds: 3.5, residentGB: 31))
        #expect(try parse(#"{"event": "done", "job": "a"}"#) == .done(job: "a", peakGB: nil, seconds: nil))
        #expect(try parse(#"{"event": "failed", "job": "a", "error": "boom", "oom": true, "peak_memory_gb": 70.5}"#)
            == .failed(job: "a", error: "boom", oom: true, peakGB: 70.5, seconds: nil))
        // Unknown fields are ignored (a later worker may say more).
        #expect(try parse(#"{"event": "done", "job": "a", "frames": 45}"#) == .done(job: "a", peakGB: nil, seconds: nil))
    }

    @Test func anythingElseIsMalformed() {
        let bad = [
            "not json", "[1, 2]", "42", #"{"job": "a"}"#, #"{"event": "hello"}"#, #"{"event": "ready"}"#, #"{"event": "ready", "pid": -1}"#,
            #"{"event": "ready", "pid": 1.5}"#, #"{"event": "ready", "pid": "7"}"#, #"{"event": "done"}"#, #"{"event": "done", "job": ""}"#,
            #"{"event": "done", "job": 7}"#, #"{"event": "failed", "job": "a"}"#, #"{"event": "failed", "job": "a", "oom": 1}"#,
            #"{"event": "done", "job": "a", "seconds": -3}"#, #"{"event": "done", "job": "a", "peak_memory_gb": "big"}"#,
            String(repeating: "x", count: WorkerProtocol.maxLineBytes + 1),
        ]
        for line in bad {
            #expect(throws: WorkerMessage.Malformed.self, "\(line.prefix(60))") { try WorkerMessage.parse(Data(line.utf8)) }
        }
        #expect(throws: WorkerMessage.Malformed.self) { try WorkerMessage.parse(Data([0xFF, 0xFE, 0x7B])) }
    }

    @Test func requestsAreOneLineOfTypedSettings() throws {
        let line = WorkerRequest.render(job: "a/b", attempt: 2, output: "/o/x.mp4",
                                        settings: ["num_clip": .int(3), "fp8": .bool(true), "extra_args": .strings(["--t5_cpu"]), "prompt": .string("line\nbreak")]).line()
        #expect(line.last == 0x0A)
        #expect(line.dropLast().firstIndex(of: 0x0A) == nil)
        let o = try JSONSerialization.jsonObject(with: line) as! [String: Any]
        #expect(o["request"] as? String == "render" && o["job"] as? String == "a/b" && o["attempt"] as? Int == 2 && o["output"] as? String == "/o/x.mp4")
        let s = o["settings"] as! [String: Any]
        #expect(s["num_clip"] as? Int == 3 && s["fp8"] as? Bool == true && s["extra_args"] as? [String] == ["--t5_cpu"] && s["prompt"] as? String == "line\nbreak")
        #expect(String(decoding: WorkerRequest.exit.line(), as: UTF8.self) == "{\"request\":\"exit\"}\n")
    }
}
