import Checkpoint
import Foundation
import Manifest
import TestSupport
import Testing

@Suite struct HistoryTests {
    func observation(_ bucket: String = "b", gpu: String = "H200 140GB", seconds: Double = 10, colocated: Int = 1) -> HistoryObservation {
        HistoryObservation(rendererIdentity: "r1", renderer: "synthetic-dit", gpuModel: gpu, bucket: bucket, peakGB: 12, seconds: seconds, frames: 48,
                           oom: false, colocated: colocated, batch: "t")
    }

    @Test func eachKeyKeepsItsNewestWindow() throws {
        let dir = TempDir("history")
        let h = try History(path: dir.path + "/h.sqlite")
        for i in 0..<(History.window + 7) { try h.record(observation(seconds: Double(i))) }
        try h.record(observation("other"))
        let all = try h.observations(rendererIdentity: "r1")
        #expect(all.filter { $0.bucket == "b" }.count == History.window)
        #expect(all.filter { $0.bucket == "b" }.map { $0.seconds ?? 0 }.min() == 7)
        #expect(all.filter { $0.bucket == "other" }.count == 1)
        // Owner-only, like the batch store.
        let mode = try FileManager.default.attributesOfItem(atPath: dir.path + "/h.sqlite")[.posixPermissions] as? Int
        #expect(mode == 0o600)
    }

    /// A history as a version from before `migration` left it: without `column`, one observation of r1 in it
    /// (`colocated` attempts on its card).
    func historyBefore(_ migration: String, column: String, at path: String, colocated: Int = 1) throws {
        try History(path: path).executeRaw("""
            DELETE FROM grdb_migrations WHERE identifier = '\(migration)';
            ALTER TABLE observations DROP COLUMN \(column);
            INSERT INTO observations (renderer_identity, renderer, gpu_model, bucket, peak_gb, seconds, frames, oom, colocated, batch, recorded_at)
            VALUES ('r1', 'synthetic-dit', 'H200 140GB', 'b', 12, 10, 48, 0, \(colocated), 'old', 1);
            """)
    }

    @Test func aReportedStartUpIsKeptAndAnOlderHistoryReadsWithoutOne() throws {
        let dir = TempDir("history")
        let h = try History(path: dir.path + "/h.sqlite")
        var o = observation()
        o.startupSeconds = 3.5
        try h.record(o)
        try h.record(observation("unreported"))
        let back = try h.observations(rendererIdentity: "r1")
        #expect(back.map(\.startupSeconds) == [3.5, nil])
        // A history from before the column: migrated on open for writing, read as "not reported".
        let old = dir.path + "/old.sqlite"
        try historyBefore("history-2026-12-01-startup", column: "startup_s", at: old)
        #expect(try History(path: old, readOnly: true).observations(rendererIdentity: "r1").map(\.startupSeconds) == [nil])
        let migrated = try History(path: old)
        try migrated.record(o)
        #expect(try migrated.observations(rendererIdentity: "r1").map(\.startupSeconds) == [nil, 3.5])
    }

    @Test func aRendersStretchesAreKeptAndAnOlderHistoryReadsWithoutThem() throws {
        let dir = TempDir("history")
        let h = try History(path: dir.path + "/h.sqlite")
        var o = observation()
        o.stretches = [1: 2.5, 2: 8.25, 3: 0.125]
        try h.record(o)
        try h.record(observation("not kept"))
        #expect(try h.observations(rendererIdentity: "r1").map(\.stretches) == [[1: 2.5, 2: 8.25, 3: 0.125], nil])
        // Readable with sqlite3 as it is.
        #expect(History.stretchesText([2: 8.25, 1: 2.5]) == "1:2.500 2:8.250")
        // A column someone edited into something else reads as "not recorded", never as a wrong figure.
        for text in ["", "2", "0:1.0", "2:-1", "2:x", "a:1", "2:inf"] { #expect(History.stretches(text) == nil, "\(text)") }
        #expect(History.stretches("2:1.5 2:0.5") == [2: 2])
        // A history from before the column: migrated on open for writing, read as "not recorded".
        let old = dir.path + "/old.sqlite"
        try historyBefore("history-2026-12-01-stretches", column: "stretches", at: old, colocated: 2)
        #expect(try History(path: old, readOnly: true).observations(rendererIdentity: "r1").map(\.stretches) == [nil])
        let migrated = try History(path: old)
        try migrated.record(o)
        #expect(try migrated.observations(rendererIdentity: "r1").map(\.stretches) == [nil, [1: 2.5, 2: 8.25, 3: 0.125]])
    }

    @Test func workerLoadsAreKeptPerRendererAndModelNewestFirstWithinTheWindow() throws {
        let dir = TempDir("history")
        let h = try History(path: dir.path + "/h.sqlite")
        func load(_ s: Double, gpu: String = "H200 140GB", at: Double) -> HistoryLoad {
            HistoryLoad(rendererIdentity: "r1", renderer: "liveavatar", gpuModel: gpu, loadSettings: "fp8=False", seconds: s, batch: "t", recordedAt: at)
        }
        for i in 0..<(History.window + 3) { try h.recordLoad(load(Double(i), at: Double(100 + i))) }
        try h.recordLoad(load(7, gpu: "A100 80GB", at: 1))
        let kept = try h.loads(rendererIdentity: "r1", gpuModel: "H200 140GB")
        #expect(kept.count == History.window && kept.first?.seconds == Double(History.window + 2) && kept.last?.seconds == 3, "\(kept.map(\.seconds))")
        #expect(kept.first?.loadSettings == "fp8=False" && kept.first?.renderer == "liveavatar")
        // `since`: only what was recorded after it (a calibration's end).
        #expect(try h.loads(rendererIdentity: "r1", gpuModel: "H200 140GB", since: 150).map(\.seconds) == [52, 51])
        #expect(try h.loads(rendererIdentity: "r1", gpuModel: "A100 80GB").map(\.seconds) == [7])
        #expect(try h.loads(rendererIdentity: "r2", gpuModel: "H200 140GB").isEmpty)
        // Read-only, a history written before loads were kept has none (and is not migrated).
        let old = dir.path + "/old.sqlite"
        try History(path: old).executeRaw("DROP TABLE worker_loads; DELETE FROM grdb_migrations WHERE identifier = 'history-2026-12-01-loads'")
        try FileManager.default.setAttributes([.posixPermissions: 0o400], ofItemAtPath: old)
        let ro = try History(path: old, readOnly: true)
        #expect(try ro.loads(rendererIdentity: "r1", gpuModel: "H200 140GB").isEmpty)
        #expect(try ro.recordLoad(load(1, at: 1)) == false)
    }

    @Test func twoWritersAtOnceLoseNothing() async throws {
        let dir = TempDir("history")
        let path = dir.path + "/h.sqlite"
        _ = try History(path: path)
        // Two handles, as two batches would have, writing at the same time.
        try await withThrowingTaskGroup(of: Void.self) { g in
            for w in 0..<2 {
                g.addTask {
                    let h = try History(path: path)
                    for i in 0..<40 { try h.record(self.observation("w\(w)-\(i)")) }
                }
            }
            try await g.waitForAll()
        }
        #expect(try History(path: path, readOnly: true).observations(rendererIdentity: "r1").count == 80)
    }

    @Test func aCalibrationIsResumedUntilCompleteAndOnlyThenUsed() throws {
        let dir = TempDir("history")
        let h = try History(path: dir.path + "/h.sqlite")
        let a = try h.beginCalibration(rendererIdentity: "r1", renderer: "x", gpuModel: "H200 140GB", workDir: "/w")
        let again = try h.beginCalibration(rendererIdentity: "r1", renderer: "x", gpuModel: "H200 140GB", workDir: "/w")
        #expect(a.id == again.id && a.state == "running")
        #expect(try h.calibration(rendererIdentity: "r1", gpuModel: "H200 140GB") == nil)
        let fit = CalibrationFit(memoryPoints: [.init(size: "688*368", inferFrames: 48, value: 14.2)], timePoints: [], startupSeconds: 3.1,
                                 perClipOfflineGB: 0.13, onlineDecodeGB: 0.6, sharing: [2: 1.7], gpuMemoryGB: 140, probes: 6, oomProbes: 0, seconds: 90)
        try h.completeCalibration(a.id, fit: fit)
        #expect(try h.calibration(rendererIdentity: "r1", gpuModel: "H200 140GB")?.fit == fit)
        #expect(try h.calibration(rendererIdentity: "r1", gpuModel: "A100 80GB") == nil)
        let b = try h.beginCalibration(rendererIdentity: "r1", renderer: "x", gpuModel: "H200 140GB", workDir: "/w")
        #expect(b.id != a.id)
        try h.discardCalibration(b.id, note: "test")
        #expect(try h.calibration(rendererIdentity: "r1", gpuModel: "H200 140GB")?.id == a.id)
    }

    @Test func aWarmCalibrationIsPreferredToANewerColdOne() throws {
        // Over 18 H200 runs a warm calibration predicted cold batches better than a cold one too (docs/benchmarks.md):
        // `calibrate --cold` after `calibrate` does not displace it, and a cold one is used only where none ran warm.
        let dir = TempDir("history")
        let h = try History(path: dir.path + "/h.sqlite")
        func calibrate(warm: Bool, startup: Double) throws -> Int64 {
            var fit = CalibrationFit(memoryPoints: [], timePoints: [], startupSeconds: startup, perClipOfflineGB: nil, onlineDecodeGB: nil,
                                     sharing: [2: 1.2], gpuMemoryGB: 140, probes: 5, oomProbes: 0, seconds: 60)
            fit.warm = warm
            let c = try h.beginCalibration(rendererIdentity: "r1", renderer: "x", gpuModel: "H200 140GB", workDir: "/w")
            try h.completeCalibration(c.id, fit: fit)
            return c.id
        }
        let cold1 = try calibrate(warm: false, startup: 7)
        #expect(try h.calibration(rendererIdentity: "r1", gpuModel: "H200 140GB")?.id == cold1)
        let warm = try calibrate(warm: true, startup: 5)
        let cold2 = try calibrate(warm: false, startup: 8)
        #expect(try h.calibration(rendererIdentity: "r1", gpuModel: "H200 140GB")?.id == warm)
        #expect(try h.completeCalibrations(rendererIdentity: "r1", gpuModel: "H200 140GB").map(\.id) == [cold2, warm, cold1])
        let warm2 = try calibrate(warm: true, startup: 4)
        #expect(try h.calibration(rendererIdentity: "r1", gpuModel: "H200 140GB")?.id == warm2)
    }

    @Test func unusableHistoriesSayWhyAndHowToFixIt() throws {
        let dir = TempDir("history")
        let corrupt = dir.write("bad.sqlite", "not a database")
        #expect { try History(path: corrupt) } throws: { "\($0)".contains("cannot be used") && "\($0)".contains("AVATAR_BATCH_HOME") }
        let path = dir.path + "/h.sqlite"
        try History(path: path).executeRaw("INSERT INTO grdb_migrations (identifier) VALUES ('history-2099-01-01')")
        #expect { try History(path: path) } throws: { "\($0)".contains("newer avatar-batch") }
        // Read-only: readable, and writes are skipped, not failed.
        let ro = dir.path + "/ro.sqlite"
        try History(path: ro).record(observation())
        let h = try History(path: ro, readOnly: true)
        #expect(h.readOnly)
        #expect(try h.record(observation()) == false)
        #expect(try h.observations(rendererIdentity: "r1").count == 1)
        #expect { try History(path: dir.path + "/missing.sqlite", readOnly: true) } throws: { "\($0)".contains("does not exist") }
    }
}
