import Checkpoint
import Foundation
import Manifest
import TestSupport
import Testing

@Suite struct StoreTests {
    let me = ProcessIdentity(host: "test-host", pid: 4242, startTime: 100)

    func open(_ dir: TempDir) throws -> Store { try Store(path: dir.path + "/state/state.sqlite") }

    func manifestJobs(_ n: Int, key: String = "k") -> [ManifestJob] {
        (0..<n).map { ManifestJob(id: "job-\($0)", contentKey: "\(key)\($0)", settingsJSON: "{}", output: "job-\($0).mp4", priority: 0) }
    }

    func start(_ store: Store, _ id: String, run: Int64) throws -> AttemptRecord {
        try store.startAttempt(id, runID: run, host: "test-host", AttemptStart(settings: settings(), change: "", isolated: false, rung: 0, gpu: 0, gpuUUID: nil, logPath: nil))
    }

    @Test func transitionsAreEnforced() throws {
        let dir = TempDir()
        let store = try open(dir)
        let run = try store.acquire(me, user: "u", command: "c", manifestPath: "m", manifestDigest: "d", isAlive: { _ in false })
        _ = try store.sync(manifestJobs(1))
        // "succeeded" is only ever written by finishing an attempt: never straight from pending.
        #expect(throws: CheckpointError.self) { try store.transition("job-0", to: .succeeded) }
        do { try store.transition("job-0", to: .succeeded) } catch {
            #expect("\(error)" == "internal error: job job-0 cannot move from pending to succeeded; please report this as a bug with the store file")
        }
        let a = try start(store, "job-0", run: run)
        #expect(a.number == 1)
        #expect(try store.job("job-0")?.state == .running)
        var end = AttemptEnd(classification: .succeeded, exitStatus: 0, seconds: 14, outputDigest: "abc", jobState: .succeeded)
        end.renderSeconds = 8
        try store.finishAttempt(a, end)
        let job = try #require(try store.job("job-0"))
        #expect(job.state == .succeeded && job.outputDigest == "abc")
        #expect(try store.attempts(jobID: "job-0").map(\.classification) == [.succeeded])
        // The render its renderer reported is kept beside its time (calibrate lines up cold probes by it).
        #expect(try store.attempts(jobID: "job-0").map(\.renderSeconds) == [8])
        #expect(JobState.succeeded.canMove(to: .running) == false)
    }

    @Test func syncAddsResetsAndKeepsRemovedHistory() throws {
        let dir = TempDir()
        let store = try open(dir)
        let run = try store.acquire(me, user: "u", command: "c", manifestPath: "m", manifestDigest: "d", isAlive: { _ in false })
        #expect(try store.sync(manifestJobs(3)).added == 3)
        let a = try start(store, "job-0", run: run)
        try store.finishAttempt(a, AttemptEnd(classification: .succeeded, jobState: .succeeded))
        var next = manifestJobs(2)
        next[0].contentKey = "changed"
        let s = try store.sync(next)
        #expect(s.added == 0 && s.changed == 1 && s.unchanged == 1 && s.removed == 1)
        #expect(try store.job("job-0")?.state == .pending)
        #expect(try store.job("job-2")?.inManifest == false)
        #expect(try store.attempts(jobID: "job-0").count == 1)
        #expect(try store.counts()[.pending] == 2)
    }

    @Test func syncUpdatesPriorityAndPredictionsOfUnchangedJobs() throws {
        // Unchanged jobs are only rewritten when what sync records changed: a new priority or prediction, or a
        // job coming back to the manifest.
        let dir = TempDir()
        let store = try open(dir)
        _ = try store.acquire(me, user: "u", command: "c", manifestPath: "m", manifestDigest: "d", isAlive: { _ in false })
        _ = try store.sync(manifestJobs(3))
        #expect(try store.sync(manifestJobs(2)).removed == 1)
        var next = manifestJobs(3)
        next[0].priority = 5
        next[1].predictedGB = 21.5
        next[1].predictedSeconds = 90
        let s = try store.sync(next)
        #expect(s.unchanged == 3 && s.changed == 0 && s.added == 0 && s.removed == 0)
        #expect(try store.job("job-0")?.priority == 5)
        #expect(try store.job("job-1")?.predictedGB == 21.5 && store.job("job-1")?.predictedSeconds == 90)
        #expect(try store.job("job-2")?.inManifest == true)
        // And the same manifest again changes nothing.
        #expect(try store.sync(next).unchanged == 3)
        #expect(try store.job("job-0")?.priority == 5)
    }

    @Test func oneOrchestratorPerStore() throws {
        let dir = TempDir()
        let store = try open(dir)
        _ = try store.acquire(me, user: "u", command: "c", manifestPath: "m", manifestDigest: "d", isAlive: { _ in true })
        let other = ProcessIdentity(host: "test-host", pid: 999, startTime: 5)
        do {
            _ = try store.acquire(other, user: "u", command: "c", manifestPath: "m", manifestDigest: "d", isAlive: { $0 == me })
            Issue.record("a second orchestrator got the store")
        } catch let CheckpointError.locked(host, pid, _, runID) {
            #expect(host == "test-host" && pid == 4242 && runID == 1)
        }
        // The same pid with another start time is another process: the holder is dead, take over.
        let run2 = try store.acquire(other, user: "u", command: "c", manifestPath: "m", manifestDigest: "d", isAlive: { _ in false })
        #expect(run2 == 2)
        #expect(try store.runs().first?.exitStatus == -1)
    }

    @Test func readerNeverFailsDuringHeavyWrites() async throws {
        let dir = TempDir()
        let store = try open(dir)
        let run = try store.acquire(me, user: "u", command: "c", manifestPath: "m", manifestDigest: "d", isAlive: { _ in false })
        _ = try store.sync(manifestJobs(200))
        let reader = try Store(path: store.path, readOnly: true)
        try await withThrowingTaskGroup(of: Int.self) { group in
            group.addTask {
                for i in 0..<200 {
                    let a = try start(store, "job-\(i)", run: run)
                    try store.finishAttempt(a, AttemptEnd(classification: .succeeded, jobState: .succeeded))
                }
                return 0
            }
            group.addTask {
                var reads = 0
                for _ in 0..<300 {
                    let c = try reader.counts()
                    let total: Int = c.values.reduce(0, +)
                    #expect(total == 200)
                    reads += 1
                }
                return reads
            }
            try await group.waitForAll()
        }
        #expect(try reader.counts()[.succeeded] == 200)
        #expect(try store.integrityCheck() == "ok")
    }

    @Test func retryStartsAFreshLadder() throws {
        let dir = TempDir()
        let store = try open(dir)
        let run = try store.acquire(me, user: "u", command: "c", manifestPath: "m", manifestDigest: "d", isAlive: { _ in false })
        _ = try store.sync(manifestJobs(2))
        let a = try start(store, "job-0", run: run)
        try store.finishAttempt(a, AttemptEnd(classification: .oom, jobState: .failed, reason: "ladder exhausted"))
        #expect(try store.requeue(nil, includeSucceeded: false) == ["job-0"])
        let j = try #require(try store.job("job-0"))
        #expect(j.state == .pending && j.retryFrom == 1)
    }

    @Test func storeFilesAreOwnerOnly() throws {
        let dir = TempDir()
        let store = try open(dir)
        let mode = try FileManager.default.attributesOfItem(atPath: store.path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        let dmode = try FileManager.default.attributesOfItem(atPath: dir.path + "/state")[.posixPermissions] as? Int
        #expect(dmode == 0o700)
        #expect(try store.appliedMigrations() == ["2026-11-24-initial", "2026-11-24-jobs-by-state", "2026-11-30-attempt-executor", "2026-11-30-observation-warm", "2026-11-30-prediction-source", "2026-11-30-workers", "2026-12-01-attempt-render", "2026-12-01-observation-startup"])
    }

    @Test func anOlderStoreMigratesForwardKeepingItsJobs() throws {
        let dir = TempDir()
        let path = dir.path + "/state/state.sqlite"
        do {
            let old = try Store(path: path, migratingUpTo: "2026-11-24-initial")
            _ = try old.acquire(me, user: "u", command: "c", manifestPath: "m", manifestDigest: "d", isAlive: { _ in false })
            _ = try old.sync(manifestJobs(3))
            #expect(try old.appliedMigrations() == ["2026-11-24-initial"])
            #expect(try !old.indexNames().contains("jobs_by_state"))
        }
        let store = try open(dir)
        #expect(try store.appliedMigrations() == ["2026-11-24-initial", "2026-11-24-jobs-by-state", "2026-11-30-attempt-executor", "2026-11-30-observation-warm", "2026-11-30-prediction-source", "2026-11-30-workers", "2026-12-01-attempt-render", "2026-12-01-observation-startup"])
        #expect(try store.indexNames().contains("jobs_by_state"))
        #expect(try store.jobs().map(\.id) == ["job-0", "job-1", "job-2"])
        #expect(try store.integrityCheck() == "ok")
    }

    @Test func slurmAttemptsOfAnOlderStoreGetTheirExecutorNotAMarkerUUID() throws {
        // Before 2026-11-30 a Slurm attempt was a GPU UUID of "slurm"; the migration makes it a typed executor.
        let dir = TempDir()
        let path = dir.path + "/state/state.sqlite"
        do {
            let old = try Store(path: path, migratingUpTo: "2026-11-24-jobs-by-state")
            let run = try old.acquire(me, user: "u", command: "c", manifestPath: "m", manifestDigest: "d", isAlive: { _ in false })
            _ = try old.sync(manifestJobs(2))
            for (i, (gpu, uuid)) in [("NULL", "slurm"), ("0", "GPU-1234")].enumerated() {
                try old.executeRaw("""
                    INSERT INTO attempts (job_id, number, content_key, run_id, host, gpu, gpu_uuid, settings_json, change, isolated, rung, started_at)
                    VALUES ('job-\(i)', 1, 'k', \(run), 'h', \(gpu), '\(uuid)', '{}', '', 0, 0, 0)
                    """)
            }
        }
        let store = try open(dir)
        let byJob = Dictionary(uniqueKeysWithValues: try store.attempts().map { ($0.jobID, $0) })
        #expect(byJob["job-0"]?.executor == .slurm && byJob["job-0"]?.gpuUUID == nil)
        #expect(byJob["job-1"]?.executor == .local && byJob["job-1"]?.gpuUUID == "GPU-1234")
        #expect(try store.integrityCheck() == "ok")
    }
}
