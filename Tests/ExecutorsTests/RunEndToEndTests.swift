import Checkpoint
import Executors
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Manifest
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A batch directory with a test profile around the fake renderer.
final class Batch: @unchecked Sendable {
    let dir = TempDir("batch")
    var ledger: String { dir.path + "/ledger.jsonl" }
    var manifest: String { dir.path + "/m.yaml" }
    var store: String { dir.path + "/out/.avatar-batch/state.sqlite" }

    init(clips: [(id: String, mode: String)], extraProfile: String = "", check: String = "nonempty", ffmpeg: Bool = false,
         retry: String = "{max_attempts: 4, on_oom: [isolate, {online_decode: true}]}", gpus: String = "2x24GB", extraClip: String = "") {
        dir.write("face.png", Media.png)
        dir.write("a.wav", Media.wav(seconds: 1))
        dir.write("test.yaml", """
            name: fake
            command: [python3, "\(PackagePaths.fakeRenderer)", --output, "{output}", --clip, "{clip_id}", --ledger, "\(ledger)",
                      --online-decode, "{online_decode}", --audio, "{audio}", --prompt, "{prompt}", \(ffmpeg ? "--ffmpeg, " : "")"{extra_args}"]
            sizes: ["384*256"]
            output_check: \(check)
            max_jobs_per_gpu: 2
            memory:
              points: [{size: "384*256", infer_frames: 48, gb: 10}]
              headroom: 0
            time:
              points: [{size: "384*256", infer_frames: 48, ms_per_frame: 1}]
            sharing: {2: 1.5}
            \(extraProfile)
            """)
        var yaml = """
            version: 1
            name: t
            output_dir: out
            renderer: test.yaml
            gpus: \(gpus)
            retry: \(retry)
            defaults: {image: face.png, audio: a.wav, prompt: "p", size: "384*256", num_clip: 1, online_decode: false}
            clips:

            """
        for c in clips { yaml += "  - {id: \(c.id), extra_args: [--mode, \(c.mode)]\(extraClip)}\n" }
        dir.write("m.yaml", yaml)
    }

    /// Rewrites the manifest with each (text, replacement) applied in turn (e.g. a clip's extra_args).
    func editManifest(_ replacements: (String, String)...) throws {
        var text = try String(contentsOfFile: manifest, encoding: .utf8)
        for (from, to) in replacements { text = text.replacingOccurrences(of: from, with: to) }
        try text.write(toFile: manifest, atomically: true, encoding: .utf8)
    }

    func run(_ extra: [String] = []) throws -> CLIResult { try CLI.run(["run", manifest, "--grace", "1"] + extra) }

    func status() throws -> [String: Any] {
        let r = try CLI.run(["status", manifest, "--json"])
        return try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
    }

    func jobs() throws -> [String: [String: Any]] {
        let list = try status()["jobs"] as! [[String: Any]]
        return Dictionary(uniqueKeysWithValues: list.map { ($0["id"] as! String, $0) })
    }

    func ledgerLines() -> [[String: Any]] {
        guard let text = try? String(contentsOfFile: ledger, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }
}

func classifications(_ job: [String: Any]?) -> [String] {
    ((job?["attempts"] as? [[String: Any]]) ?? []).compactMap { $0["classification"] as? String }
}

/// Processes whose command line mentions `marker` (to prove nothing was left behind).
func processes(mentioning marker: String) -> [Int32] {
    ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { e -> Int32? in
        guard let pid = Int32(e), let cmd = try? String(contentsOfFile: "/proc/\(e)/cmdline", encoding: .utf8) else { return nil }
        if let stat = try? String(contentsOfFile: "/proc/\(e)/stat", encoding: .utf8), stat.contains(") Z") { return nil }
        return cmd.contains(marker) ? pid : nil
    }
}

@Suite(.serialized) struct RunEndToEndTests {
    @Test func demoRendersAndResumesWithoutRedoingWork() throws {
        let out = TempDir("demo")
        let dir = PackagePaths.root + "/manifests"
        let state = out.path + "/state.sqlite"
        // The demo manifest with its output redirected to a scratch directory.
        let text = try String(contentsOfFile: dir + "/demo.yaml", encoding: .utf8).replacingOccurrences(of: "output_dir: ../demo-out", with: "output_dir: \(out.path)/videos")
        let manifest = dir + "/.demo-test-\(UUID().uuidString.prefix(6)).yaml"
        try text.write(toFile: manifest, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: manifest) }
        let r = try CLI.run(["run", manifest, "--state", state])
        #expect(r.status == 0, "\(r.stderr)")
        for f in ["lesson-01.mp4", "lesson-02.mp4", "goodbye.mp4"] {
            #expect(FileManager.default.fileExists(atPath: out.path + "/videos/" + f))
        }
        #expect(r.stderr.contains("3 succeeded"))
        let again = try CLI.run(["run", manifest, "--state", state])
        #expect(again.status == 0)
        #expect(again.stderr.contains("3 already done, 0 to render"))
        let store = try Store(path: state, readOnly: true)
        #expect(try store.attempts().count == 3)
    }

    @Test func oomIsRecoveredByTheLadder() throws {
        // 80 GB cards: the OOM message's figures (20.5 GiB held + 12 GiB asked) still fit, so every rung runs.
        let b = Batch(clips: [("needs-online", "oom"), ("fine", "ok")], gpus: "2x80GB")
        let r = try b.run()
        #expect(r.status == 0, "\(r.stderr)")
        let jobs = try b.jobs()
        #expect(classifications(jobs["needs-online"]) == ["oom", "oom", "succeeded"])
        let attempts = jobs["needs-online"]!["attempts"] as! [[String: Any]]
        #expect(attempts.map { $0["settings"] as! String } == ["", "isolate", "isolate, online_decode: true"])
        #expect(classifications(jobs["fine"]) == ["succeeded"])
        #expect(r.stderr.contains("tried to allocate 12.00 GiB"))
    }

    @Test func rungsThatCannotFitAreSkippedWithoutRunning() throws {
        // On 24 GB cards the OOM raises the estimate to 32.5 GB: isolating alone cannot help, so the ladder moves on.
        let b = Batch(clips: [("needs-online", "oom")], gpus: "1x24GB")
        let r = try b.run()
        #expect(r.status == 0, "\(r.stderr)")
        let attempts = try b.jobs()["needs-online"]!["attempts"] as! [[String: Any]]
        #expect(attempts.map { $0["settings"] as! String } == ["", "isolate, online_decode: true"])
        #expect(r.stderr.contains("needs-online: predicted 32.5 GB fits no GPU; skipping to isolate, online_decode: true"))
    }

    @Test func failuresAreClassifiedAndDoNotStopTheQueue() throws {
        let b = Batch(clips: [("crash", "crash"), ("empty", "empty"), ("none", "no-output"), ("oomer", "oom-always"), ("ok", "ok"), ("flaky", "crash-once")],
                      retry: "{max_attempts: 2, on_oom: [isolate]}")
        let r = try b.run(["--report", b.dir.path + "/reports"])
        #expect(r.status == 1)
        let jobs = try b.jobs()
        #expect(classifications(jobs["crash"]) == ["crashed", "crashed"])
        // JUnit: one test case per clip; failures carry the classification; the file is well-formed XML.
        let junit = try XMLDocument(contentsOf: URL(fileURLWithPath: b.dir.path + "/reports/junit.xml"))
        let cases = try junit.nodes(forXPath: "//testcase")
        #expect(cases.count == 6)
        let failureTypes = try junit.nodes(forXPath: "//testcase/failure/@type").compactMap(\.stringValue).sorted()
        #expect(failureTypes == ["crashed", "invalid-output", "invalid-output", "oom"])
        #expect(try junit.nodes(forXPath: "/testsuites/@failures").first?.stringValue == "4")
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: b.dir.path + "/reports/report.json"))) as! [String: Any]
        #expect((report["counts"] as? [String: Int])?["failed"] == 4)
        #expect(report["schema"] as? String == "avatar-batch-report/1")
        #expect(classifications(jobs["empty"]) == ["invalid-output", "invalid-output"])
        #expect(classifications(jobs["none"]) == ["invalid-output", "invalid-output"])
        // Its OOM message says it needs 32.5 GB: running it alone on a 24 GB card cannot help, so it stops there.
        #expect(classifications(jobs["oomer"]) == ["oom"])
        #expect((jobs["oomer"]?["reason"] as? String)?.contains("fits no GPU") == true)
        #expect(classifications(jobs["ok"]) == ["succeeded"])
        #expect(classifications(jobs["flaky"]) == ["crashed", "succeeded"])
        #expect(jobs["crash"]?["state"] as? String == "failed")
        let counts = try b.status()["counts"] as! [String: Int]
        #expect(counts["succeeded"] == 2 && counts["failed"] == 4)
        // retry --failed puts them back; a second run renders them again (and they fail again).
        let retry = try CLI.run(["retry", b.manifest, "--failed"])
        #expect(retry.stdout.contains("requeued 4 job(s)"))
        #expect(try b.jobs()["crash"]?["state"] as? String == "pending")
        // Named after the manifest, a succeeded job is requeued too.
        let named = try CLI.run(["retry", b.manifest, "ok"])
        #expect(named.stdout.contains("requeued 1 job(s): ok"))
        #expect(try b.jobs()["ok"]?["state"] as? String == "pending")
    }

    @Test func timeoutKillsTheWholeGroupIncludingGrandchildrenAndTermIgnorers() throws {
        let marker = "clip-marker-\(UUID().uuidString.prefix(8))"
        let b = Batch(clips: [("\(marker)-hang", "ignore-term"), ("\(marker)-gc", "grandchild")], retry: "{max_attempts: 1}",
                      extraClip: ", timeout: 2")
        let r = try b.run()
        #expect(r.status == 1)
        let jobs = try b.jobs()
        #expect(classifications(jobs["\(marker)-hang"]) == ["timeout"])
        // The grandchild outlives its parent; the group is still ours to stop, and the output still counts.
        #expect(classifications(jobs["\(marker)-gc"]) == ["succeeded"])
        #expect(processes(mentioning: marker).isEmpty)
    }

    @Test func ffprobeRejectsSilentVideo() throws {
        let b = Batch(clips: [("silent", "silent"), ("real", "ok")], check: "ffprobe", ffmpeg: true, retry: "{max_attempts: 1}")
        let r = try b.run()
        #expect(r.status == 1)
        let jobs = try b.jobs()
        #expect(classifications(jobs["silent"]) == ["invalid-output"])
        #expect(classifications(jobs["real"]) == ["succeeded"])
        let note = ((jobs["silent"]?["attempts"] as? [[String: Any]])?.first?["note"] as? String) ?? ""
        #expect(note == "the output has no audio stream (silent video)")
    }

    @Test func hostilePromptReachesTheRendererByteForByte() throws {
        let b = Batch(clips: [("p", "ok")])
        let prompt = "it's \\\"$(touch /tmp/pwned)\\\" `id`; rm -rf ~ \\n --mode crash ünï"
        try b.editManifest(("prompt: \"p\"", "prompt: \"\(prompt)\""), ("[--mode, ok]", "[--mode, ok, --argv-dump, \(b.dir.path)/argv.json]"))
        let r = try b.run()
        #expect(r.status == 0, "\(r.stderr)")
        let argv = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: b.dir.path + "/argv.json"))) as! [String]
        let i = try #require(argv.firstIndex(of: "--prompt"))
        #expect(argv[i + 1] == "it's \"$(touch /tmp/pwned)\" `id`; rm -rf ~ \n --mode crash ünï")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/pwned"))
    }

    @Test func eachJobSeesOnlyItsGPU() throws {
        let b = Batch(clips: (0..<4).map { ("c\($0)", "ok") }, gpus: "2x24GB")
        _ = try b.run()
        let seen = Set(b.ledgerLines().filter { $0["event"] as? String == "start" }.compactMap { $0["cuda_visible_devices"] as? String })
        #expect(seen == ["0", "1"])
    }
}

@Suite(.serialized) struct InterruptAndResumeTests {
    @Test func ctrlCInterruptsAndTheSameCommandResumes() async throws {
        let b = Batch(clips: (0..<4).map { ("slow-\($0)", "ok") }, extraClip: "")
        try b.editManifest(("[--mode, ok]", "[--mode, ok, --sleep, \"30\"]"))
        let (p, _, _) = try CLI.start(["run", b.manifest, "--grace", "1"])
        // Wait until renderers run, then Ctrl-C (on a loaded machine that can take more than 10 s). Polls sleep the thread,
        // not the task: suites running beside this one block the cooperative pool's two threads for long stretches, and a
        // Task.sleep woke up 30 s late once, after the batch had finished (CI, 2026-11-30).
        for _ in 0..<600 where b.ledgerLines().count < 2 { usleep(100_000) }
        try #require(b.ledgerLines().count >= 2, "the renderers never started")
        kill(p.processIdentifier, SIGINT)
        p.waitUntilExit()
        #expect(p.terminationStatus == 130)
        let jobs = try b.jobs()
        // Every renderer that had started is interrupted (one launched a moment before the signal may not have
        // reached its first line yet, so the store can hold more interrupted jobs than the ledger has starts).
        let started = Set(b.ledgerLines().map { $0["clip"] as! String })
        #expect(started.count >= 2)
        #expect(started.isSubset(of: Set(jobs.filter { $0.value["state"] as? String == "interrupted" }.keys)))
        #expect(jobs.values.allSatisfy { classifications($0).allSatisfy { $0 == "interrupted" } })
        #expect(processes(mentioning: b.ledger).isEmpty)
        // Resume without the sleep: every job completes, the interrupted ones with a second attempt.
        try b.editManifest((", --sleep, \"30\"", ""))
        let r = try b.run()
        #expect(r.status == 0, "\(r.stderr)")
        let after = try b.jobs()
        #expect(after.values.allSatisfy { $0["state"] as? String == "succeeded" })
    }

    @Test func sigkilledOrchestratorIsResumedWithoutDuplicates() async throws {
        let b = Batch(clips: (0..<6).map { ("k-\($0)", "ok") })
        try b.editManifest(("[--mode, ok]", "[--mode, ok, --sleep, \"1\"]"))
        let (p, _, _) = try CLI.start(["run", b.manifest, "--grace", "1"])
        for _ in 0..<200 where b.ledgerLines().filter({ $0["event"] as? String == "end" }).count < 2 { usleep(50_000) }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        // What the store recorded as done when the orchestrator died (a renderer can have finished without that record:
        // such a clip is rightly rendered again).
        let doneBefore = Set(try Store(path: b.store, readOnly: true).jobs().filter { $0.state == .succeeded }.map(\.id))
        // A second orchestrator while renderers of the dead one may still run: it stops them and resumes.
        let r = try b.run()
        #expect(r.status == 0, "\(r.stderr)")
        let ends = b.ledgerLines().filter { $0["event"] as? String == "end" }.map { $0["clip"] as! String }
        let store = try Store(path: b.store, readOnly: true)
        #expect(try store.integrityCheck() == "ok")
        let succeeded = try store.jobs().filter { $0.state == .succeeded }.map(\.id)
        #expect(Set(succeeded) == Set((0..<6).map { "k-\($0)" }))
        // Nothing the store had recorded as done was rendered again.
        let recordedDone = try store.attempts().filter { $0.classification == .succeeded }
        #expect(recordedDone.count == 6)
        for clip in doneBefore { #expect(ends.filter { $0 == clip }.count == 1, "\(clip) was rendered again") }
        #expect(processes(mentioning: b.ledger).isEmpty)
    }

    @Test func secondRunOnTheSameBatchIsRefused() async throws {
        let b = Batch(clips: [("long", "ok")])
        try b.editManifest(("[--mode, ok]", "[--mode, ok, --sleep, \"20\"]"))
        let (p, _, _) = try CLI.start(["run", b.manifest, "--grace", "1"])
        for _ in 0..<100 where b.ledgerLines().isEmpty { usleep(100_000) }
        let second = try b.run()
        #expect(second.status == 1)
        #expect(second.stderr.contains("another avatar-batch (run 1, pid \(p.processIdentifier) on"))
        // status reads while the run holds the store.
        #expect(try b.jobs()["long"]?["state"] as? String == "running")
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        #expect(p.terminationStatus == 130)
    }

    @Test func twoOrchestratorsRacingForOneBatchLeaveOneRunning() async throws {
        let b = Batch(clips: [("race", "ok")])
        try b.editManifest(("[--mode, ok]", "[--mode, ok, --sleep, \"2\"]"))
        // Started together: exactly one takes the store, the other exits 1 naming it (or finds the work done).
        let first = try CLI.start(["run", b.manifest, "--grace", "1"])
        let second = try CLI.start(["run", b.manifest, "--grace", "1"])
        first.0.waitUntilExit()
        second.0.waitUntilExit()
        let statuses = [first.0.terminationStatus, second.0.terminationStatus].sorted()
        #expect(statuses == [0, 1])
        #expect(b.ledgerLines().filter { $0["event"] as? String == "start" }.count == 1)
        let store = try Store(path: b.store, readOnly: true)
        #expect(try store.integrityCheck() == "ok")
        #expect(try store.attempts().count == 1)
    }

    @Test func maxFailuresStopsDispatching() throws {
        let b = Batch(clips: (0..<6).map { ("bad-\($0)", "crash") }, retry: "{max_attempts: 1}", gpus: "1x24GB")
        let r = try b.run(["--max-failures", "2", "--max-jobs-per-gpu", "1"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("stopping: 2 job(s) failed (--max-failures 2)"))
        let counts = try b.status()["counts"] as! [String: Int]
        #expect(counts["failed"] == 2)
        #expect(counts["pending"] == 4)
    }

    @Test func stderrFloodIsLoggedAndTheQueueGoesOn() throws {
        // 64 MB of stderr: the renderer is not blocked by a full pipe (its output goes to a file), the job
        // succeeds, only the log's tail is read, and the next job runs.
        let b = Batch(clips: [("noisy", "flood"), ("quiet", "ok")], gpus: "1x24GB")
        try b.editManifest(("[--mode, flood]", "[--mode, flood, --flood-mb, \"64\"]"))
        let r = try b.run(["--max-log-mb", "8"])
        #expect(r.status == 0, "\(r.stderr)")
        let jobs = try b.jobs()
        #expect(classifications(jobs["noisy"]) == ["succeeded"])
        #expect(classifications(jobs["quiet"]) == ["succeeded"])
        let log = ((jobs["noisy"]?["attempts"] as? [[String: Any]])?.first?["log"] as? String) ?? ""
        var st = stat()
        #expect(stat(log, &st) == 0)
        #expect(Int(st.st_size) >= 64 << 20)           // the renderer wrote all of it, unblocked
        #expect(Int(st.st_blocks) * 512 <= 9 << 20)    // but the log takes at most the 8 MB cap on disk
        let h = FileHandle(forReadingAtPath: log)!
        #expect(String(decoding: try h.read(upToCount: 4096) ?? Data(), as: UTF8.self).hasPrefix("xxxx"))  // its first MB is kept
        try h.close()
        let end = AttemptRunner.logTail(log, bytes: 4096)
        #expect(end.contains("the log passed its cap of 8 MB"))
        let tail = ((jobs["noisy"]?["attempts"] as? [[String: Any]])?.first?["stderr_tail"] as? String) ?? ""
        #expect(tail.count < 64 * 1024)
    }

    @Test func aWriteOutsideTheOutputPathIsReportedAndTheQueueGoesOn() throws {
        // Renderers are trusted, not sandboxed: a file written beside the output is reported on the attempt,
        // the clip's own (valid) output is still accepted, and the next job runs.
        let b = Batch(clips: [("stray", "outside"), ("fine", "ok")], gpus: "1x24GB")
        let r = try b.run(["--max-jobs-per-gpu", "1"])
        #expect(r.status == 0, "\(r.stderr)")
        let jobs = try b.jobs()
        #expect(classifications(jobs["stray"]) == ["succeeded"])
        #expect(classifications(jobs["fine"]) == ["succeeded"])
        let note = ((jobs["stray"]?["attempts"] as? [[String: Any]])?.first?["note"] as? String) ?? ""
        #expect(note.contains("no clip owns"), "\(note)")
        #expect(note.contains("escaped-stray"))
        #expect(((jobs["fine"]?["attempts"] as? [[String: Any]])?.first?["note"] as? String) == nil)
        #expect(r.stderr.contains("warning: stray:"))
    }

    @Test func durationsLearnedOnASharedGPUAreSoloEquivalents() throws {
        // Two jobs share one GPU whose profile says S(2) = 1.5: each runs at 0.75 of its solo speed, so what the
        // predictor learns is about 0.75 of the wall time, not the wall time.
        let b = Batch(clips: [("x", "ok"), ("y", "ok")], gpus: "1x24GB")
        try b.editManifest(("[--mode, ok]", "[--mode, ok, --sleep, \"1\"]"))
        let r = try b.run()
        #expect(r.status == 0, "\(r.stderr)")
        let store = try Store(path: b.store, readOnly: true)
        let wall = try store.attempts().compactMap(\.seconds)
        let learned = try store.observations(renderer: "fake").compactMap(\.seconds)
        #expect(wall.count == 2 && learned.count == 2)
        for (w, l) in zip(wall.sorted(), learned.sorted()) {
            #expect(l < w * 0.9 && l > w * 0.6, "learned \(l) s from \(w) s of wall time")
        }
    }

    @Test func aColdStartUpIsLearnedAtFullSpeed() throws {
        // The same two jobs sharing the GPU, but the profile says a cold start-up takes 30 s: the whole of each
        // attempt falls in its predicted start-up, which shares nothing, so what is learned is the wall time itself.
        let b = Batch(clips: [("x", "ok"), ("y", "ok")], gpus: "1x24GB")
        try b.editManifest(("[--mode, ok]", "[--mode, ok, --sleep, \"1\"]"))
        let profile = b.dir.path + "/test.yaml"
        let text = try String(contentsOfFile: profile, encoding: .utf8)
        try text.replacingOccurrences(of: "ms_per_frame: 1}]", with: "ms_per_frame: 1}]\n  startup_s: 30").write(toFile: profile, atomically: true, encoding: .utf8)
        let r = try b.run()
        #expect(r.status == 0, "\(r.stderr)")
        let store = try Store(path: b.store, readOnly: true)
        let attempts = try store.attempts()
        // Both ran on the one card at the same time (else this would prove nothing).
        #expect(attempts.count == 2 && Set(attempts.compactMap(\.gpu)).count == 1)
        if attempts.count == 2, let e0 = attempts[0].endedAt, let e1 = attempts[1].endedAt {
            #expect(attempts[0].startedAt < e1 && attempts[1].startedAt < e0, "the two attempts did not overlap")
        }
        let wall = attempts.compactMap(\.seconds), learned = try store.observations(renderer: "fake").compactMap(\.seconds)
        #expect(wall.count == 2 && learned.count == 2)
        for (w, l) in zip(wall.sorted(), learned.sorted()) {
            #expect(l > w * 0.97 && l <= w + 1e-6, "learned \(l) s from \(w) s of wall time")
        }
    }

    @Test func unwritableStateIsAClearErrorBeforeAnythingRuns() throws {
        let b = Batch(clips: [("a", "ok")])
        // /proc is read-only for everyone, root included.
        let r = try b.run(["--state", "/proc/avatar-batch-test/state.sqlite"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("avatar-batch: error: cannot write the store at /proc/avatar-batch-test/state.sqlite"))
        #expect(r.stderr.contains("pass --state PATH"))
        #expect(b.ledgerLines().isEmpty)
    }

    @Test func outputDirectoryVanishingMidRunRecordsNothingFalse() async throws {
        let b = Batch(clips: (0..<4).map { ("v\($0)", "ok") }, retry: "{max_attempts: 3}", gpus: "2x24GB")
        try b.editManifest(("[--mode, ok]", "[--mode, ok, --sleep, \"1\"]"))
        let state = b.dir.path + "/state.sqlite"
        let (p, _, _) = try CLI.start(["run", b.manifest, "--grace", "1", "--state", state])
        for _ in 0..<100 where b.ledgerLines().count < 2 { usleep(50_000) }
        try FileManager.default.removeItem(atPath: b.dir.path + "/out")
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        let store = try Store(path: state, readOnly: true)
        // The running renderers lost their directory: those attempts failed and were retried.
        #expect(try store.attempts().contains { $0.classification != .succeeded })
        for j in try store.jobs() {
            #expect(j.state == .succeeded)
            // Whatever was recorded as done is there.
            #expect(FileManager.default.fileExists(atPath: b.dir.path + "/out/" + j.output), "\(j.id) recorded done without its output")
        }
    }

    /// Whether this machine lets the tests mount a small tmpfs (root in a sandbox that allows it).
    static let canMount: Bool = {
        let probe = NSTemporaryDirectory() + "avatar-batch-mount-probe-\(getpid())"
        try? FileManager.default.createDirectory(atPath: probe, withIntermediateDirectories: true)
        defer { _ = try? runProgram("/bin/umount", [probe]); try? FileManager.default.removeItem(atPath: probe) }
        return (try? runProgram("/bin/mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", probe]))?.0 == 0
    }()

    @Test(.enabled(if: canMount, "needs to mount a small tmpfs")) func fullDiskFailsTheJobNotTheRecord() throws {
        // output_dir on a 3 MB filesystem; each output is 2 MB: the first fits, the second runs out of space.
        let b = Batch(clips: [("first", "ok"), ("second", "ok")], retry: "{max_attempts: 2}", gpus: "1x24GB")
        try b.editManifest(("[--mode, ok]", "[--mode, ok, --output-mb, \"2\"]"))
        let out = b.dir.path + "/out"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        #expect(try runProgram("/bin/mount", ["-t", "tmpfs", "-o", "size=3m", "tmpfs", out]).0 == 0)
        defer { _ = try? runProgram("/bin/umount", [out]) }
        let state = b.dir.path + "/state.sqlite"
        let r = try b.run(["--state", state, "--max-jobs-per-gpu", "1"])
        #expect(r.status == 1)
        let store = try Store(path: state, readOnly: true)
        let jobs = Dictionary(uniqueKeysWithValues: try store.jobs().map { ($0.id, $0) })
        #expect(jobs.values.filter { $0.state == .succeeded }.count == 1)
        #expect(jobs.values.filter { $0.state == .failed }.count == 1)
        for j in jobs.values where j.state == .succeeded {
            #expect(FileManager.default.fileExists(atPath: out + "/" + j.output))
        }
        let failed = jobs.values.first { $0.state == .failed }!
        let tails = try store.attempts(jobID: failed.id).compactMap(\.stderrTail).joined()
        #expect(tails.contains("No space left on device"))
        // No partial output is left behind to be mistaken for a result.
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: out).filter { $0.contains(".partial-") }
        #expect(leftovers.isEmpty)
    }

    @Test(.enabled(if: canMount, "needs to mount a small tmpfs")) func fullStoreFilesystemStopsCleanlyAndResumes() throws {
        // The store (and the logs beside it) on a 1 MB filesystem; a renderer's 3 MB of stderr fills it, so the
        // next commit fails. The run must stop with a clear error, record nothing false, leave no process, and
        // once space is freed the same command finishes without rendering the finished clip again.
        let b = Batch(clips: [("a", "ok"), ("noisy", "flood"), ("c", "ok")], gpus: "1x24GB")
        try b.editManifest(("[--mode, flood]", "[--mode, flood, --flood-mb, \"3\"]"))
        let st = b.dir.path + "/st"
        try FileManager.default.createDirectory(atPath: st, withIntermediateDirectories: true)
        #expect(try runProgram("/bin/mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", st]).0 == 0)
        defer { _ = try? runProgram("/bin/umount", [st]) }
        let r = try b.run(["--state", st + "/state.sqlite", "--max-jobs-per-gpu", "1"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("the store's filesystem is full"), "\(r.stderr)")
        #expect(r.stderr.contains("run the same command again to resume"))
        #expect(processes(mentioning: b.ledger).isEmpty)
        // Free the space (the flood's log), calm the renderer, resume.
        for f in (try FileManager.default.contentsOfDirectory(atPath: st + "/logs")) where f.hasPrefix("noisy") {
            try FileManager.default.removeItem(atPath: st + "/logs/" + f)
        }
        try b.editManifest(("[--mode, flood, --flood-mb, \"3\"]", "[--mode, ok]"))
        let again = try b.run(["--state", st + "/state.sqlite", "--max-jobs-per-gpu", "1"])
        #expect(again.status == 0, "\(again.stderr)")
        let store = try Store(path: st + "/state.sqlite", readOnly: true)
        #expect(try store.integrityCheck() == "ok")
        #expect(try store.jobs().allSatisfy { $0.state == .succeeded })
        for j in try store.jobs() { #expect(FileManager.default.fileExists(atPath: b.dir.path + "/out/" + j.output)) }
        let starts = b.ledgerLines().filter { $0["event"] as? String == "start" }.map { $0["clip"] as! String }
        #expect(starts.filter { $0 == "a" }.count == 1)  // finished before the disk filled: not rendered again
    }

    @Test func secondCtrlCKillsAtOnce() async throws {
        // Renderers that ignore SIGTERM and a 600 s grace period: the first Ctrl-C waits on them, the second kills
        // their groups and exits 130 at once, leaving nothing behind; the next run requeues them.
        let b = Batch(clips: [("stubborn-1", "ignore-term"), ("stubborn-2", "ignore-term")])
        // A grace period far longer than the test may take: only the second Ctrl-C can end the run in time.
        let (p, _, _) = try CLI.start(["run", b.manifest, "--grace", "600"])
        for _ in 0..<600 where b.ledgerLines().count < 2 { usleep(100_000) }
        try #require(b.ledgerLines().count >= 2, "the renderers never started")
        kill(p.processIdentifier, SIGINT)
        usleep(500_000)
        #expect(p.isRunning)  // still waiting out the grace period
        let second = Date()
        kill(p.processIdentifier, SIGINT)
        p.waitUntilExit()
        // Waiting out the grace would take 600 s; a tenth of it separates "at once" from "after the grace" on any machine.
        #expect(Date().timeIntervalSince(second) < 60)
        #expect(p.terminationStatus == 130)
        for _ in 0..<50 where !processes(mentioning: b.ledger).isEmpty { usleep(100_000) }
        #expect(processes(mentioning: b.ledger).isEmpty)
        // The hard stop left the attempts open; the next run reconciles them as interrupted.
        try b.editManifest(("ignore-term", "ok"))
        let r = try b.run()
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try b.jobs().values.allSatisfy { classifications($0) == ["interrupted", "succeeded"] })
    }

    /// Predicted host RAM holds jobs back when the host, not the GPUs, is full, and a job no host of this size can
    /// hold fails before it starts (Live Avatar keeps every decoded frame in host memory).
    @Test func hostRAMHoldsJobsBackAndRefusesWhatNeverFits() throws {
        let b = Batch(clips: [("a", "ok, --sleep, \"1\""), ("b", "ok, --sleep, \"1\"")])
        let profile = b.dir.path + "/test.yaml"
        // Each job predicts 10 GB of host RAM; two idle GPUs could run both at once.
        let text = try String(contentsOfFile: profile, encoding: .utf8)
        try text.replacingOccurrences(of: "  headroom: 0", with: "  headroom: 0\n  host_ram_gb: 10").write(toFile: profile, atomically: true, encoding: .utf8)
        let r = try b.run(["--host-ram", "15"])
        #expect(r.status == 0, "\(r.stderr)")
        let events = b.ledgerLines()
        func t(_ clip: String, _ event: String) -> Double { events.first { $0["clip"] as? String == clip && $0["event"] as? String == event }?["t"] as? Double ?? .nan }
        let (first, second) = t("a", "start") < t("b", "start") ? ("a", "b") : ("b", "a")
        #expect(t(second, "start") >= t(first, "end"), "\(events)")

        let big = Batch(clips: [("a", "ok")])
        let bigProfile = big.dir.path + "/test.yaml"
        let bigText = try String(contentsOfFile: bigProfile, encoding: .utf8)
        try bigText.replacingOccurrences(of: "  headroom: 0", with: "  headroom: 0\n  host_ram_gb: 100").write(toFile: bigProfile, atomically: true, encoding: .utf8)
        let refused = try big.run(["--host-ram", "15"])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("FAILED a: needs 100 GB of host RAM (predicted), this machine has 15 GB (--host-ram)"), "\(refused.stderr)")
        #expect(big.ledgerLines().isEmpty)
    }

    /// A NUL byte in a renderer's log is kept, escaped, in the stored tail, the JSON status and the JUnit report,
    /// instead of cutting the text there.
    @Test func aNULInTheLogIsEscapedNotTruncated() throws {
        let b = Batch(clips: [("a", "nul-crash")], retry: "{max_attempts: 1}")
        let r = try b.run()
        #expect(r.status == 1)
        let attempt = try #require((try b.jobs()["a"]?["attempts"] as? [[String: Any]])?.first)
        #expect((attempt["stderr_tail"] as? String)?.contains("before\\0after the NUL") == true, "\(attempt)")
        let report = try CLI.run(["report", b.manifest, "--junit", b.dir.path + "/junit.xml"])
        #expect(report.status == 0, "\(report.stderr)")
        let xml = try String(contentsOfFile: b.dir.path + "/junit.xml", encoding: .utf8)
        #expect(xml.contains("before\\0after the NUL"))
        #expect(!xml.contains("<testsuites name=\"t\" tests=\"1\" failures=\"1\" errors=\"0\" skipped="))
    }

    /// --max-log-mb 1 keeps 1 MB on disk (half of it the log's start), not the 2 MB it used to round up to.
    @Test func aOneMegabyteLogCapKeepsOneMegabyte() throws {
        let b = Batch(clips: [("noisy", "flood")], gpus: "1x24GB")
        try b.editManifest(("[--mode, flood]", "[--mode, flood, --flood-mb, \"16\"]"))
        let r = try b.run(["--max-log-mb", "1"])
        #expect(r.status == 0, "\(r.stderr)")
        let log = ((try b.jobs()["noisy"]?["attempts"] as? [[String: Any]])?.first?["log"] as? String) ?? ""
        var st = stat()
        #expect(stat(log, &st) == 0)
        #expect(Int(st.st_size) >= 16 << 20)
        // The cap, plus the hole's 4 KiB alignment and the closing note avatar-batch appends.
        #expect(Int(st.st_blocks) * 512 <= (1 << 20) + (16 << 10), "\(Int(st.st_blocks) * 512) bytes on disk")
        #expect(AttemptRunner.logTail(log, bytes: 4096).contains("the log passed its cap of 1 MB"))
    }

    /// notify: runs an argv (no shell) when the batch ends, with the report JSON on its standard input; --notify
    /// overrides it; a failing notifier is reported and leaves the batch's exit status alone.
    @Test func notifyGetsTheReportAndNeverFailsTheBatch() throws {
        let b = Batch(clips: [("good", "ok"), ("bad", "crash")], retry: "{max_attempts: 1}")
        let got = b.dir.path + "/notified.json"
        let script = "import json, sys; d = json.load(sys.stdin); open(sys.argv[1], 'w').write(json.dumps(d))"
        try b.editManifest(("retry: {max_attempts: 1}", "retry: {max_attempts: 1}\nnotify: [python3, -c, \"\(script)\", \"\(got)\"]"))
        let r = try b.run()
        #expect(r.status == 1, "\(r.stderr)")
        let d = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: got))) as! [String: Any]
        #expect(d["exit_status"] as? Int == 1)
        #expect(d["stopped_by_max_failures"] as? Bool == false)
        #expect(((d["jobs"] as? [[String: Any]]) ?? []).count == 2, "\(d)")

        // --notify wins over the manifest's, and its failure is only reported: the status is what the same run gives
        // with a notifier that succeeds.
        try FileManager.default.removeItem(atPath: got)
        let failing = try CLI.run(["run", b.manifest, "--grace", "1", "--notify", "python3", "-c", "import sys; sys.exit(3)"])
        #expect(failing.stderr.contains("notify: python3 exited with status 3 (the batch's own status stands)"), "\(failing.stderr)")
        #expect(!FileManager.default.fileExists(atPath: got))  // the manifest's notifier did not run
        let again = try b.run()
        #expect(failing.status == again.status, "\(failing.stderr)")
        #expect(FileManager.default.fileExists(atPath: got))
    }

    @Test func notifyAsAShellStringIsRefused() throws {
        let b = Batch(clips: [("a", "ok")])
        try b.editManifest(("retry: {max_attempts: 4, on_oom: [isolate, {online_decode: true}]}",
                            "retry: {max_attempts: 4}\nnotify: \"curl -d @- https://chat.example/hook\""))
        let r = try CLI.run(["validate", b.manifest])
        #expect(r.status == 2)
        #expect(r.stderr.contains("error: notify must be a list of arguments, not a shell string; write it as a list"), "\(r.stderr)")
    }
}
