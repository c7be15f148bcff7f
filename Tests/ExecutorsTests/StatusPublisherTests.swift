import Checkpoint
import Executors
import Foundation
import Manifest
import Reports
import Scheduler
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The running orchestrator publishes `status --json` for pollers: what a poller reads must be what the store says,
/// at most moments behind, and never outlive the run.
@Suite struct StatusPublisherTests {
    let me = ProcessIdentity(host: "test-host", pid: 4242, startTime: 100)

    func direct(_ store: Store, path: String) throws -> Data {
        var out = Data()
        try StatusListing.write(try StatusListing.summary(store, path: path), store: store) { out.append($0) }
        return out
    }

    /// Polls `published` until `accept` takes what it returns, for at most `seconds`.
    func waitForPublished(_ path: String, seconds: Double = 10, _ accept: (Data) -> Bool) -> Data? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let d = StatusPublisher.published(storePath: path), accept(d) { return d }
            usleep(20_000)
        }
        return nil
    }

    @Test func aPollerReadsWhatTheStoreSaysAndFollowsItsChanges() throws {
        let dir = TempDir()
        let path = dir.path + "/state.sqlite"
        let store = try Store(path: path)
        let run = try store.acquire(me, user: "u", command: "c", manifestPath: "m", manifestDigest: "d", isAlive: { _ in false })
        _ = try store.sync((0..<50).map { ManifestJob(id: "job-\($0)", contentKey: "k\($0)", settingsJSON: "{}", output: "job-\($0).mp4", priority: 0) })
        let publisher = StatusPublisher(storePath: path)
        publisher.start(runID: run)
        defer { publisher.stop() }
        // Nobody has asked yet: nothing is published, and the first poller reads the store.
        usleep(300_000)
        #expect(!FileManager.default.fileExists(atPath: StatusPublisher.snapshotPath(storePath: path)))
        #expect(StatusPublisher.published(storePath: path) == nil)
        // Once asked, the copy is the store's document byte for byte.
        let first = try #require(waitForPublished(path) { _ in true }, "never published")
        #expect(String(decoding: first, as: UTF8.self) == String(decoding: try direct(store, path: path), as: UTF8.self))
        // A change to the store reaches the copy.
        let a = try store.startAttempt("job-7", runID: run, host: "test-host",
                                       AttemptStart(settings: settings(), change: "", isolated: false, rung: 0, gpu: 0, gpuUUID: nil, logPath: nil))
        let after = try #require(waitForPublished(path) { String(decoding: $0, as: UTF8.self).contains("\"running\" : 1") }, "the change never showed")
        #expect(String(decoding: after, as: UTF8.self) == String(decoding: try direct(store, path: path), as: UTF8.self))
        try store.finishAttempt(a, AttemptEnd(classification: .succeeded, exitStatus: 0, outputDigest: "x", jobState: .succeeded))
        #expect(waitForPublished(path) { String(decoding: $0, as: UTF8.self).contains("\"succeeded\" : 1") } != nil)
        // Stopped (the run is letting the store go): the copy and the mark are gone and pollers read the store again.
        publisher.stop()
        #expect(!FileManager.default.fileExists(atPath: StatusPublisher.snapshotPath(storePath: path)))
        #expect(!FileManager.default.fileExists(atPath: StatusPublisher.wantedPath(storePath: path)))
        #expect(StatusPublisher.published(storePath: path) == nil)
    }

    @Test func aCopyNobodyKeepsFreshIsNotRead() throws {
        let dir = TempDir()
        let path = dir.path + "/state.sqlite"
        // What a killed orchestrator leaves: a copy whose heartbeat stopped.
        let snapshot = dir.write("state.sqlite.status.json", "{\"store\": \"stale\"}\n")
        #expect(StatusPublisher.published(storePath: path) != nil, "a fresh copy is read")
        var old = [timespec(tv_sec: time(nil) - 60, tv_nsec: 0), timespec(tv_sec: time(nil) - 60, tv_nsec: 0)]
        #expect(utimensat(AT_FDCWD, snapshot, &old, 0) == 0)
        #expect(StatusPublisher.published(storePath: path) == nil)
    }

    /// Records whether the store had a holder when it was started and stopped.
    final class Witness: RunCompanion, @unchecked Sendable {
        let store: Store
        var heldAtStart: Bool?, heldAtStop: Bool?, runID: Int64?
        init(_ store: Store) { self.store = store }
        func start(runID: Int64) { self.runID = runID; heldAtStart = (try? store.holder())?.map { $0.1 } == runID }
        func stop() { heldAtStop = (try? store.holder())?.map { $0.1 } == runID }
    }

    @Test func companionsRunExactlyWhileTheRunHoldsTheStore() async throws {
        let b = Batch(clips: [("a", "ok")])
        let manifest = try #require(ManifestLoader.load(path: b.manifest, options: LoadOptions()).manifest)
        var builder = JobBuilder(hashInputs: true)
        let jobs = try builder.jobs(for: manifest)
        try FileManager.default.createDirectory(atPath: (b.store as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let store = try Store(path: b.store)
        var options = SessionOptions()
        let witness = Witness(store)
        options.companions = [witness]
        let gpus = try await GPUDiscovery.forBatch(manifest)
        let executor = LocalExecutor(LocalExecutorOptions(gpus: gpus, strategy: try Strategy.named("earliest-finish"), maxJobsPerGPU: 2, sharing: SharingModel(manifest.renderer.sharing)))
        let session = try BatchSession(manifest: manifest, jobs: jobs, store: store, executor: executor, options: options,
                                       progress: ProgressReporter(quiet: true))
        let summary = try await session.run()
        #expect(summary.succeeded == 1)
        #expect(witness.heldAtStart == true && witness.heldAtStop == true, "start \(String(describing: witness.heldAtStart)) stop \(String(describing: witness.heldAtStop))")
        #expect(try store.holder() == nil)
    }

    /// Through the command line: `status --json` beside a running `run` prints the orchestrator's copy (the same
    /// document `--fresh` reads from the store), owner-only, and the copy goes when the run ends.
    @Test func statusPrintsThePublishedCopyOfARunningBatch() throws {
        let b = Batch(clips: [("long", "hang"), ("quick", "ok")])
        let snapshot = StatusPublisher.snapshotPath(storePath: b.store), wanted = StatusPublisher.wantedPath(storePath: b.store)
        let (p, _, _) = try CLI.start(["run", b.manifest, "--grace", "1", "--quiet"])
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() } }
        // Poll as a dashboard would, until the quick clip is done and the copy exists.
        var published = "", fresh = ""
        for _ in 0..<300 {
            let r = try CLI.run(["status", b.manifest, "--json"])
            if r.status == 0, FileManager.default.fileExists(atPath: snapshot), r.stdout.contains("\"succeeded\" : 1") {
                published = r.stdout
                fresh = try CLI.run(["status", b.manifest, "--json", "--fresh"]).stdout
                // The copy may be a rewrite behind the store for a moment; both settle on the same bytes.
                if published == fresh { break }
            }
            usleep(100_000)
        }
        #expect(!published.isEmpty && published == fresh, "the published copy never matched the store")
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(published.utf8)) as? [String: Any])
        #expect(doc["running_orchestrator"] is [String: Any])
        #expect(doc["store"] as? String == URL(fileURLWithPath: b.store).standardizedFileURL.path)
        #expect(((try? FileManager.default.attributesOfItem(atPath: snapshot))?[.posixPermissions] as? Int) == 0o600)
        // What status printed came from the copy, not the store: a copy replaced by a marker is what it prints (the
        // publisher may rewrite it meanwhile if the store changes, hence a few tries), and `--fresh` never is.
        var printedMarker = false
        for i in 0..<5 where !printedMarker {
            let marker = "{\"marker\": \(i)}\n"
            try marker.write(toFile: snapshot + ".test", atomically: false, encoding: .utf8)
            #expect(rename(snapshot + ".test", snapshot) == 0)
            printedMarker = try CLI.run(["status", b.manifest, "--json"]).stdout == marker
            #expect(try CLI.run(["status", b.manifest, "--json", "--fresh"]).stdout.contains("\"jobs\""))
        }
        #expect(printedMarker, "status --json never printed the published copy")
        // The copy is not a second source of truth: a run that ends takes it and the wanted mark away.
        kill(p.processIdentifier, SIGINT)
        p.waitUntilExit()
        #expect(!FileManager.default.fileExists(atPath: snapshot))
        #expect(!FileManager.default.fileExists(atPath: wanted))
        let after = try #require(try JSONSerialization.jsonObject(with: Data(try CLI.run(["status", b.manifest, "--json"]).stdout.utf8)) as? [String: Any])
        #expect(after["running_orchestrator"] is NSNull)
        #expect(!FileManager.default.fileExists(atPath: wanted), "a reader of a finished batch left a file beside its store")
    }
}
