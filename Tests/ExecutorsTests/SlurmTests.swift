import Checkpoint
import Executors
import Foundation
import Manifest
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Set by .ci/run once scripts/local-slurm.sh has a single-node Slurm (4 fake GPUs, 24 shards each) up.
let slurmUp = ProcessInfo.processInfo.environment["AVATAR_BATCH_SLURM_TESTS"] == "1"

/// Jobs of this user in squeue (finished ones stay listed for MinJobAge = 300 s on the test cluster).
func squeueJobs(named names: [String]) throws -> [(id: String, name: String, state: String)] {
    let r = try CLI.runProgram("/usr/bin/squeue", ["-h", "--me", "-t", "all", "-n", names.joined(separator: ","), "-o", "%i|%j|%T"])
    return r.stdout.split(separator: "\n").compactMap { line in
        let f = line.split(separator: "|").map(String.init)
        return f.count == 3 ? (f[0], f[1], f[2]) : nil
    }
}

/// Slurm job ids the store recorded, per clip.
func recordedSlurmIDs(_ b: Batch) throws -> [String: [String]] {
    try b.jobs().mapValues { job in ((job["attempts"] as? [[String: Any]]) ?? []).compactMap { $0["slurm_job_id"] as? String } }
}

/// The Slurm executor against a real (local) Slurm: sbatch, shards, squeue/sacct, scancel.
@Suite(.serialized, .enabled(if: slurmUp, "needs the local Slurm that .ci/run starts (AVATAR_BATCH_SLURM_TESTS=1)"))
struct SlurmTests {
    let tag = String(UUID().uuidString.prefix(6)).lowercased()
    let slurmArgs = ["--executor", "slurm", "--poll-interval", "0.3"]

    @Test func packsTwoTenGigabyteJobsPerTwentyFourShardGPUNeverThree() throws {
        let ids = (0..<12).map { "pack-\(tag)-\($0)" }
        let b = Batch(clips: ids.map { ($0, "ok") })
        try b.editManifest(("[--mode, ok]", "[--mode, ok, --sleep, \"2\"]"))
        let r = try b.run(slurmArgs)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("--gres=shard:10"))
        // From inside the jobs: which GPU each saw, and when it ran.
        var spans: [String: [(Double, Double)]] = [:]
        var open: [String: (String, Double)] = [:]
        for l in b.ledgerLines() {
            let clip = l["clip"] as! String, t = l["t"] as! Double
            if l["event"] as? String == "start" { open[clip] = (l["cuda_visible_devices"] as? String ?? "?", t) }
            if l["event"] as? String == "end", let (gpu, s) = open[clip] { spans[gpu, default: []].append((s, t)) }
        }
        #expect(spans.values.map(\.count).reduce(0, +) == 12)
        var maxTogether: [String: Int] = [:]
        for (gpu, list) in spans {
            maxTogether[gpu] = list.map { s in list.filter { $0.0 <= s.0 + 0.05 && $0.1 > s.0 + 0.05 }.count }.max() ?? 0
        }
        #expect(maxTogether.values.allSatisfy { $0 <= 2 }, "\(maxTogether)")  // never three 10-GB jobs on 24 shards
        #expect(maxTogether.values.contains(2), "\(maxTogether)")               // but two do share a GPU
        #expect(Set(spans.keys).count == 4, "\(spans.keys)")                    // and all four GPUs are used
        // The store knows each clip's one Slurm job, and Slurm knows exactly those.
        let recorded = try recordedSlurmIDs(b)
        #expect(recorded.values.allSatisfy { $0.count == 1 })
        let inSlurm = try squeueJobs(named: ids)
        #expect(Set(inSlurm.map(\.id)) == Set(recorded.values.flatMap { $0 }))
        #expect(inSlurm.allSatisfy { $0.state == "COMPLETED" })
    }

    @Test func refusesAJobLargerThanAnyGPUsShardsBeforeSubmitting() throws {
        let big = "big-\(tag)"
        let b = Batch(clips: [("small-\(tag)", "ok"), (big, "ok")])
        try b.editManifest(("{id: \(big), extra_args", "{id: \(big), infer_frames: 192, extra_args"))
        let r = try b.run(slurmArgs)
        #expect(r.status == 2)
        #expect(r.stderr.contains("m.yaml:"), "\(r.stderr)")
        #expect(r.stderr.contains("clip \(big) needs 40.0 GB = 40 shards; the largest GPU has 24"), "\(r.stderr)")
        #expect(r.stderr.contains("nothing was submitted"))
        #expect(try squeueJobs(named: ["small-\(tag)", big]).isEmpty)
    }

    @Test func anOOMInTheLogIsClassifiedAndRetriedDownTheLadder() throws {
        let id = "oom-\(tag)"
        let b = Batch(clips: [(id, "oom")], retry: "{max_attempts: 4, on_oom: [{online_decode: true}]}")
        let r = try b.run(slurmArgs)
        #expect(r.status == 0, "\(r.stderr)")
        let job = try b.jobs()[id]
        #expect(classifications(job) == ["oom", "succeeded"])
        let attempts = job?["attempts"] as? [[String: Any]] ?? []
        #expect(attempts.last?["settings"] as? String == "online_decode: true")
        #expect((try recordedSlurmIDs(b))[id]?.count == 2)
        #expect(try squeueJobs(named: [id]).map(\.state).sorted() == ["COMPLETED", "FAILED"])
    }

    @Test func aKilledOrchestratorIsResumedWithoutSubmittingTwice() async throws {
        let ids = (0..<8).map { "resume-\(tag)-\($0)" }
        let b = Batch(clips: ids.map { ($0, "ok") })
        try b.editManifest(("[--mode, ok]", "[--mode, ok, --sleep, \"4\"]"))
        // At most 4 in flight, so some jobs are still to be submitted when the orchestrator dies.
        let (p, _, _) = try CLI.start(["run", b.manifest, "--grace", "1", "--max-in-flight", "4"] + slurmArgs)
        for _ in 0..<200 where b.ledgerLines().filter({ $0["event"] as? String == "start" }).count < 4 { usleep(100_000) }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        let before = try recordedSlurmIDs(b)
        #expect(before.values.map(\.count).reduce(0, +) == 4)
        let r = try b.run(slurmArgs)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("re-attached"))
        let jobs = try b.jobs()
        #expect(jobs.values.allSatisfy { $0["state"] as? String == "succeeded" })
        // One Slurm job per clip: the four submitted before the kill were collected, not submitted again.
        let recorded = try recordedSlurmIDs(b)
        #expect(recorded.values.allSatisfy { $0.count == 1 }, "\(recorded)")
        for (clip, list) in before where !list.isEmpty { #expect(recorded[clip] == list) }
        let inSlurm = try squeueJobs(named: ids)
        #expect(inSlurm.count == 8)
        #expect(Set(inSlurm.map(\.id)) == Set(recorded.values.flatMap { $0 }))
        #expect(Dictionary(grouping: inSlurm, by: \.name).values.allSatisfy { $0.count == 1 })
        // Each clip rendered once.
        let starts = b.ledgerLines().filter { $0["event"] as? String == "start" }.map { $0["clip"] as! String }
        #expect(starts.sorted() == ids.sorted())
    }

    @Test func ctrlCCancelsWhatThisRunSubmitted() async throws {
        let ids = (0..<4).map { "cancel-\(tag)-\($0)" }
        let b = Batch(clips: ids.map { ($0, "hang") })
        let (p, _, _) = try CLI.start(["run", b.manifest, "--grace", "1"] + slurmArgs)
        for _ in 0..<200 where b.ledgerLines().count < 4 { usleep(100_000) }
        #expect(b.ledgerLines().count == 4)
        kill(p.processIdentifier, SIGINT)
        p.waitUntilExit()
        #expect(p.terminationStatus == 130)
        let states = try squeueJobs(named: ids).map(\.state)
        #expect(states.count == 4)
        #expect(states.allSatisfy { $0 == "CANCELLED" }, "\(states)")
        let jobs = try b.jobs()
        #expect(jobs.values.allSatisfy { $0["state"] as? String == "interrupted" })
        #expect(jobs.values.allSatisfy { classifications($0) == ["interrupted"] })
        for _ in 0..<50 where !processes(mentioning: b.ledger).isEmpty { usleep(100_000) }
        #expect(processes(mentioning: b.ledger).isEmpty)
    }
}

extension SlurmTests {
    @Test func aJobCancelledOutsideAvatarBatchIsReportedNotRetried() async throws {
        let victim = "ext-\(tag)-victim", other = "ext-\(tag)-ok"
        let b = Batch(clips: [(victim, "hang"), (other, "ok")])
        let (p, _, _) = try CLI.start(["run", b.manifest, "--grace", "1"] + slurmArgs)
        for _ in 0..<200 where b.ledgerLines().count < 2 { usleep(100_000) }
        _ = try CLI.runProgram("/usr/bin/scancel", ["--me", "-n", victim])
        p.waitUntilExit()
        #expect(p.terminationStatus == 1)
        let jobs = try b.jobs()
        #expect(jobs[victim]?["state"] as? String == "cancelled")
        #expect((jobs[victim]?["reason"] as? String ?? "").contains("avatar-batch retry"))
        #expect(jobs[other]?["state"] as? String == "succeeded")
        #expect(try squeueJobs(named: [victim]).count == 1)  // not resubmitted
    }

    @Test func aFailedNodeGetsTheJobANewUncountedAttempt() async throws {
        // The node goes down under a running job: Slurm ends it NODE_FAIL (submitted with --no-requeue, it is not
        // requeued behind avatar-batch's back); avatar-batch records the attempt interrupted, without counting it,
        // and submits the clip again, which runs once the node is back.
        let id = "nodefail-\(tag)"
        let b = Batch(clips: [(id, "ok")], retry: "{max_attempts: 1}")
        try b.editManifest(("[--mode, ok]", "[--mode, ok, --sleep, \"3\"]"))
        let node = try #require(try CLI.runProgram("/usr/bin/sinfo", ["-h", "-N", "-o", "%N"]).stdout.split(separator: "\n").first.map(String.init))
        let (p, _, _) = try CLI.start(["run", b.manifest, "--grace", "1"] + slurmArgs)
        // The test cluster's ReturnToService=2 brings the node back as soon as its slurmd registers again; resume it
        // in any case.
        defer { _ = try? CLI.runProgram("/usr/bin/scontrol", ["update", "nodename=\(node)", "state=resume"]) }
        for _ in 0..<200 where b.ledgerLines().isEmpty { usleep(100_000) }
        try #require(b.ledgerLines().count == 1, "the Slurm job never started")
        _ = try CLI.runProgram("/usr/bin/scontrol", ["update", "nodename=\(node)", "state=down", "reason=avatar-batch test"])
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        let job = try b.jobs()[id]
        #expect(job?["state"] as? String == "succeeded")
        #expect(classifications(job) == ["interrupted", "succeeded"])  // with max_attempts 1: the first did not count
        let notes = ((job?["attempts"] as? [[String: Any]]) ?? []).compactMap { $0["note"] as? String }
        #expect(notes.first?.contains("NODE_FAIL") == true, "\(notes)")
        // Two Slurm jobs, each run once: the first ended NODE_FAIL and was not requeued by Slurm.
        let inSlurm = try squeueJobs(named: [id])
        #expect(inSlurm.count == 2 && Set(inSlurm.map(\.state)) == ["NODE_FAIL", "COMPLETED"], "\(inSlurm)")
        #expect(b.ledgerLines().filter { $0["event"] as? String == "start" }.count == 2)
    }

    @Test func aPreemptedJobGetsANewRecordedAttemptNeverLostNorCountedTwice() async throws {
        // The test cluster preempts the debug partition's jobs for the urgent one's (PreemptMode=CANCEL): each
        // running clip's Slurm job ends PREEMPTED; avatar-batch records that attempt interrupted (not counted against
        // max_attempts 1) and submits the clip again as a new attempt, which runs once the urgent job is done.
        let ids = (0..<3).map { "preempt-\(tag)-\($0)" }
        let b = Batch(clips: ids.map { ($0, "ok") }, retry: "{max_attempts: 1}")
        try b.editManifest(("[--mode, ok]", "[--mode, ok, --sleep, \"6\"]"))
        let partitions = try CLI.runProgram("/usr/bin/sinfo", ["-h", "-o", "%P"]).stdout
        try #require(partitions.contains("urgent"), "the test cluster has no urgent partition (scripts/local-slurm.sh configures it): \(partitions)")
        let (p, _, _) = try CLI.start(["run", b.manifest, "--grace", "1"] + slurmArgs)
        for _ in 0..<300 where b.ledgerLines().filter({ $0["event"] as? String == "start" }).count < ids.count {
            usleep(100_000)
        }
        try #require(b.ledgerLines().filter { $0["event"] as? String == "start" }.count == ids.count, "the clips never all started")
        let urgent = "urgent-\(tag)"
        let sub = try CLI.runProgram("/usr/bin/sbatch", ["-p", "urgent", "--exclusive", "-J", urgent, "-o", "/dev/null", "--wrap", "sleep 2"])
        #expect(sub.status == 0, "\(sub.stderr)")
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        let jobs = try b.jobs()
        for id in ids {
            #expect(jobs[id]?["state"] as? String == "succeeded")
            #expect(classifications(jobs[id]) == ["interrupted", "succeeded"], "\(id)")
            let attempts = (jobs[id]?["attempts"] as? [[String: Any]]) ?? []
            #expect((attempts.first?["note"] as? String)?.contains("PREEMPTED") == true, "\(attempts.first ?? [:])")
            // Two Slurm jobs for the clip: the preempted one and the new attempt's; Slurm requeued neither itself.
            let slurmIDs = attempts.compactMap { $0["slurm_job_id"] as? String }
            #expect(slurmIDs.count == 2 && Set(slurmIDs).count == 2)
            let inSlurm = try squeueJobs(named: [id])
            #expect(Set(inSlurm.map(\.state)) == ["PREEMPTED", "COMPLETED"], "\(inSlurm)")
        }
        // Counted once each: three succeeded, nothing failed.
        let counts = try b.status()["counts"] as? [String: Int]
        #expect(counts?["succeeded"] == ids.count && counts?["failed"] == 0)
    }

    @Test func sigkillDuringSubmissionNeverSubmitsAnAttemptTwiceNorLosesOne() async throws {
        // The orchestrator is killed at seeded random moments while it submits (more clips than --max-in-flight, so
        // every run submits), then run to the end: each clip has one succeeded attempt and was rendered once, and
        // every Slurm job the store knows is one submission (a kill between sbatch and recording the id is found
        // again by the job's comment). AVATAR_BATCH_SLURM_CHAOS_KILLS / _CLIPS / _SEED make it a soak.
        let env = ProcessInfo.processInfo.environment
        let clips = Int(env["AVATAR_BATCH_SLURM_CHAOS_CLIPS"] ?? "") ?? 12
        let kills = Int(env["AVATAR_BATCH_SLURM_CHAOS_KILLS"] ?? "") ?? 5
        let seed = UInt64(env["AVATAR_BATCH_SLURM_CHAOS_SEED"] ?? "") ?? 11
        var rng = SeededGenerator(seed: seed)
        let ids = (0..<clips).map { "skill-\(tag)-\($0)" }
        let b = Batch(clips: ids.map { ($0, "ok") })
        for k in 0..<kills {
            let (p, _, _) = try CLI.start(["run", b.manifest, "--grace", "1", "--max-in-flight", "3"] + slurmArgs)
            usleep(UInt32(Int.random(in: 150...1200, using: &rng)) * 1000)
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            if FileManager.default.fileExists(atPath: b.store) {
                #expect(try Store(path: b.store, readOnly: true).integrityCheck() == "ok", "seed \(seed), kill \(k)")
            }
        }
        // The kills came while it submitted: some clips were in Slurm, not all of them done.
        let before = FileManager.default.fileExists(atPath: b.store) ? try recordedSlurmIDs(b).values.flatMap { $0 }.count : 0
        #expect(before > 0, "seed \(seed): no kill came after a submission: the test proved nothing")
        let r = try b.run(slurmArgs)
        #expect(r.status == 0, "seed \(seed): \(r.stderr)")
        let jobs = try b.jobs()
        #expect(jobs.count == clips && jobs.values.allSatisfy { $0["state"] as? String == "succeeded" })
        for id in ids { #expect(classifications(jobs[id]).filter { $0 == "succeeded" }.count == 1, "seed \(seed): \(id)") }
        // Rendered once each: no clip's renderer started twice.
        let starts = b.ledgerLines().filter { $0["event"] as? String == "start" }.map { $0["clip"] as! String }
        #expect(starts.sorted() == ids.sorted(), "seed \(seed): \(Dictionary(grouping: starts, by: { $0 }).filter { $0.value.count > 1 }.keys)")
        // Every recorded Slurm id is a distinct job, and every job Slurm ran for these clips is recorded.
        let recorded = try recordedSlurmIDs(b).values.flatMap { $0 }
        #expect(Set(recorded).count == recorded.count)
        let ran = try squeueJobs(named: ids).filter { $0.state == "COMPLETED" }.map(\.id)
        #expect(Set(ran).isSubset(of: Set(recorded)), "seed \(seed): Slurm ran jobs the store does not know")
    }

    @Test func aSecondCtrlCLeavesAndTheNextRunRequeuesWhatItCancelled() async throws {
        // The first Ctrl-C cancels the jobs and waits for them to end (renderers that ignore SIGTERM: until Slurm's
        // KillWait); the second leaves at once. The next run re-attaches, finds them CANCELLED, and knows from the
        // store that avatar-batch cancelled them: interrupted and rendered again, not "cancelled outside".
        let ids = (0..<2).map { "twice-\(tag)-\($0)" }
        let b = Batch(clips: ids.map { ($0, "ignore-term") })
        let (p, _, _) = try CLI.start(["run", b.manifest, "--grace", "60"] + slurmArgs)
        for _ in 0..<200 where b.ledgerLines().count < 2 { usleep(100_000) }
        try #require(b.ledgerLines().count == 2, "the Slurm jobs never started")
        kill(p.processIdentifier, SIGINT)
        func noted() throws -> Bool {
            try b.jobs().values.allSatisfy { (($0["attempts"] as? [[String: Any]]) ?? []).last?["note"] as? String == "cancelled by avatar-batch (Ctrl-C)" }
        }
        for _ in 0..<50 where try !noted() { usleep(100_000) }
        #expect(try noted())
        kill(p.processIdentifier, SIGINT)
        p.waitUntilExit()
        #expect(p.terminationStatus == 130)
        try b.editManifest(("ignore-term", "ok"))
        let r = try b.run(slurmArgs)
        #expect(r.status == 0, "\(r.stderr)")
        let jobs = try b.jobs()
        #expect(jobs.values.allSatisfy { classifications($0) == ["interrupted", "succeeded"] }, "\(jobs.values.map(classifications))")
        #expect(try squeueJobs(named: ids).count == 4)  // one cancelled and one completed Slurm job per clip
    }

    @Test func slurmsOwnTimeLimitIsATimeout() throws {
        // A renderer that ignores SIGTERM under a one-minute --time-limit and a 60 s grace: the renderer's own
        // timeout (30 s) cannot stop it before Slurm's limit does. Slurm ends the job TIMEOUT; the attempt is a
        // timeout, counted (max_attempts 1: the clip fails, exit 1).
        let id = "limit-\(tag)"
        let b = Batch(clips: [(id, "ignore-term")], retry: "{max_attempts: 1}")
        let r = try CLI.run(["run", b.manifest, "--grace", "60", "--time-limit", "1m"] + slurmArgs)
        #expect(r.status == 1, "\(r.stderr)")
        #expect(r.stderr.contains("--gres=shard:"), "\(r.stderr)")
        let job = try b.jobs()[id]
        #expect(job?["state"] as? String == "failed")
        #expect(classifications(job) == ["timeout"])
        let notes = ((job?["attempts"] as? [[String: Any]]) ?? []).compactMap { $0["note"] as? String }
        #expect(notes.first?.contains("reached its time limit") == true, "\(notes)")
        #expect(try squeueJobs(named: [id]).map(\.state) == ["TIMEOUT"])
    }

    @Test func aLocalRunRefusesWhileSlurmAttemptsAreOpen() async throws {
        let id = "open-\(tag)"
        let b = Batch(clips: [(id, "hang")])
        let (p, _, _) = try CLI.start(["run", b.manifest, "--grace", "1"] + slurmArgs)
        for _ in 0..<200 where b.ledgerLines().isEmpty { usleep(100_000) }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        // Only with the job really in Slurm does the local run have something to refuse (else it would run the
        // hanging renderer itself).
        try #require(b.ledgerLines().count == 1, "the Slurm job never started")
        let r = try b.run()
        #expect(r.status == 1)
        #expect(r.stderr.contains("submitted to Slurm by an earlier run"), "\(r.stderr)")
        #expect(r.stderr.contains("--executor slurm"))
        _ = try CLI.runProgram("/usr/bin/scancel", ["--me", "-n", id])
    }
}

/// Parsing what Slurm prints (no cluster needed).
@Suite struct SlurmParsingTests {
    @Test func nodesWithTypedAndPlainGres() {
        let text = """
            NodeName=gpu01 Arch=x86_64 CoresPerSocket=32 CPUAlloc=0 Gres=gpu:a100:4(S:0-1),shard:a100:320(S:0-1) NodeAddr=gpu01 State=IDLE Partitions=gpu,long OS=Linux 6.1.0
            NodeName=gpu02 Gres=gpu:2,shard:48 State=MIXED Partitions=gpu
            NodeName=cpu01 Gres=(null) State=IDLE Partitions=cpu
            """
        let nodes = SlurmClient.parseNodes(text)
        #expect(nodes.count == 3)
        #expect(nodes[0].gpus == 4 && nodes[0].shards == 320 && nodes[0].shardsPerGPU == 80 && nodes[0].gpuType == "a100")
        #expect(nodes[0].partitions == ["gpu", "long"])
        #expect(nodes[1].gpus == 2 && nodes[1].shardsPerGPU == 24 && nodes[1].gpuType == nil)
        #expect(nodes[2].gpus == 0)
        let gpus = SlurmRunOptions.gpus(nodes, gres: .shard, gbPerShard: 1, gpuMemoryGB: nil)
        #expect(gpus.map(\.memoryGB) == [80, 80, 80, 80, 24, 24])
    }

    @Test func shardsRoundUpAndIsolationTakesAWholeGPU() {
        var s = SlurmSettings()
        s.gbPerShard = 2
        let o = SlurmRunOptions(settings: s, gres: .shard, maxShardsPerGPU: 40, maxInFlight: 8, binary: "/bin/true")
        #expect(o.shards(forGB: 10, isolate: false) == 5)
        #expect(o.shards(forGB: 10.1, isolate: false) == 6)
        #expect(o.shards(forGB: 0.2, isolate: false) == 1)
        #expect(o.shards(forGB: 3, isolate: true) == 40)
    }

    @Test func liveAndFinishedStates() {
        for live in ["PENDING", "RUNNING", "COMPLETING", "REQUEUED"] {
            #expect(!SlurmJobStatus(id: "1", state: live, reason: "", nodes: "").isFinished)
        }
        for done in ["COMPLETED", "FAILED", "TIMEOUT", "CANCELLED", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED"] {
            #expect(SlurmJobStatus(id: "1", state: done, reason: "", nodes: "").isFinished)
        }
    }
}
