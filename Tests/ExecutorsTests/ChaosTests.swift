import Checkpoint
import Foundation
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Kill the orchestrator with SIGKILL at seeded random moments, again and again, then let it finish: nothing
/// lost, nothing that had succeeded rendered again, every renderer start accounted for, no process left.
@Suite(.serialized) struct ChaosTests {
    @Test func sigkillAgainAndAgainLosesNothing() async throws {
        try chaos(warm: false)
    }

    /// The same with warm workers: kills land while requests are in flight in long-lived workers.
    @Test func sigkillOfWarmWorkerRunsAgainAndAgainLosesNothing() async throws {
        try chaos(warm: true)
    }

    func chaos(warm: Bool) throws {
        let clips = Int(ProcessInfo.processInfo.environment["AVATAR_BATCH_CHAOS_CLIPS"] ?? "") ?? 60
        let kills = Int(ProcessInfo.processInfo.environment["AVATAR_BATCH_CHAOS_KILLS"] ?? "") ?? 8
        let seed = UInt64(ProcessInfo.processInfo.environment["AVATAR_BATCH_CHAOS_SEED"] ?? "") ?? 7
        var rng = SeededGenerator(seed: seed)
        let list = (0..<clips).map { (id: "c\($0)", mode: "ok") }
        let b = warm ? warmBatch(list, gpus: "4x24GB") : Batch(clips: list, gpus: "4x24GB")
        try b.editManifest(("[--mode, ok]", "[--mode, ok, --sleep, \"1\"]"))
        // A renderer start: the fake renderer's "start", or a request reaching a fake worker.
        let startEvent = warm ? "render" : "start"

        var doneAtKill: [(time: Double, done: Set<String>)] = []
        for k in 0..<kills {
            let (p, _, _) = try CLI.start(["run", b.manifest, "--grace", "1"])
            // A thread sleep, not Task.sleep: other tests block the cooperative pool's few threads (waiting on
            // processes), which can delay a task's wake-up by seconds on a 2-core machine, past the batch's end.
            usleep(UInt32(Int.random(in: 300...1500, using: &rng)) * 1000)
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            let now = Date().timeIntervalSince1970
            // Killed before it had made the store and its tables (a loaded machine can take longer than the shortest
            // delay to get there): nothing was done yet. (The final run opens the store strictly.)
            guard FileManager.default.fileExists(atPath: b.store), let store = try? Store(path: b.store, readOnly: true),
                  let jobs = try? store.jobs() else { doneAtKill.append((now, [])); continue }
            doneAtKill.append((now, Set(jobs.filter { $0.state == .succeeded }.map(\.id))))
            #expect(try store.integrityCheck() == "ok", "seed \(seed), kill \(k)")
        }
        let final = try b.run()
        #expect(final.status == 0, "seed \(seed): \(final.stderr)")

        let store = try Store(path: b.store, readOnly: true)
        #expect(try store.integrityCheck() == "ok")
        let jobs = try store.jobs()
        #expect(jobs.count == clips && jobs.allSatisfy { $0.state == .succeeded }, "seed \(seed)")
        for j in jobs { #expect(FileManager.default.fileExists(atPath: b.dir.path + "/out/" + j.output)) }
        let attempts = Dictionary(grouping: try store.attempts(), by: \.jobID)
        let starts = Dictionary(grouping: b.ledgerLines().filter { $0["event"] as? String == startEvent }, by: { $0["clip"] as! String })
        for j in jobs {
            let mine = attempts[j.id] ?? []
            #expect(mine.filter { $0.classification == .succeeded }.count == 1, "seed \(seed): \(j.id)")
            // Every renderer start has an attempt in the store (an attempt is recorded before launch).
            #expect((starts[j.id] ?? []).count <= mine.count, "seed \(seed): \(j.id) started more often than the store knows")
        }
        // Nothing recorded as done before a kill was started again after it.
        for (time, done) in doneAtKill {
            let again = b.ledgerLines().filter { ($0["event"] as? String) == startEvent && ($0["t"] as? Double ?? 0) > time + 0.05 && done.contains($0["clip"] as! String) }
            #expect(again.isEmpty, "seed \(seed): \(again.map { $0["clip"]! }) rendered again")
        }
        #expect(processes(mentioning: b.ledger).isEmpty)
        if warm {
            #expect(try store.attempts().contains { $0.workerID != nil }, "seed \(seed): no request went to a worker")
            #expect(try store.openWorkers().isEmpty, "seed \(seed): a worker's end was never recorded")
        }
        #expect(doneAtKill.first!.done.count < clips, "the first kill came after the batch was done: the test proved nothing")
    }
}
