import Checkpoint
import Executors
import Foundation
import Manifest
import Scheduler
import TestSupport
import Testing

/// What a batch starts from (docs/calibration.md), here: the worker load the history has seen lately.
@Suite struct KnowledgeTests {
    let gpus = [GPU(index: 0, model: "NVIDIA H200", memoryGB: 140)]
    let settings = ClipSettings(size: FrameSize("688*368")!, numClip: 2, inferFrames: 48, sampleSteps: 4, onlineDecode: false, offloadModel: false,
                                fp8: false, seed: 1)

    func liveAvatar() throws -> RendererProfile { try #require(ProfileLoader.load(path: PackagePaths.renderers + "/liveavatar.yaml").0) }

    func load(_ p: RendererProfile, _ s: Double, at: Double) -> HistoryLoad {
        HistoryLoad(rendererIdentity: p.identityDigest, renderer: p.name, gpuModel: "NVIDIA H200 140GB", loadSettings: "", seconds: s, batch: "b", recordedAt: at)
    }

    func seconds(_ p: RendererProfile, warm: Bool) -> Double {
        var predictor = Predictor(profile: p)
        predictor.warm = warm
        return predictor.estimate(settings).seconds
    }

    @Test func loadsSinceTheCalibrationSetTheLoadAndMoveTheColdStartUpButNotARequest() throws {
        let dir = TempDir("knowledge")
        let path = dir.path + "/history.sqlite"
        let la = try liveAvatar()
        let h = try History(path: path)
        let c = try h.beginCalibration(rendererIdentity: la.identityDigest, renderer: la.name, gpuModel: "NVIDIA H200 140GB", workDir: dir.path, now: 900)
        let fit = CalibrationFit(memoryPoints: [], timePoints: [], startupSeconds: 112, perClipOfflineGB: nil, onlineDecodeGB: nil, sharing: [:],
                                 gpuMemoryGB: 140, probes: 5, oomProbes: 0, seconds: 345, loadSeconds: 99.6)
        try h.completeCalibration(c.id, fit: fit, now: 1000)
        // One load before the calibration (not counted), then three after it.
        try h.recordLoad(load(la, 300, at: 500))
        for (i, s) in [76.1, 61.6, 80.0].enumerated() { try h.recordLoad(load(la, s, at: 2000 + Double(i))) }

        let calibrated = la.calibrated(by: fit)
        let k = Knowledge(profile: la, gpus: gpus, historyPath: path, batch: "next", readOnly: true)
        #expect(k.warnings.isEmpty, "\(k.warnings)")
        let learned = try #require(k.learnedLoad)
        #expect(learned.seconds == 76.1 && learned.count == 3)
        #expect(k.profile.workerLoadSeconds == 76.1)
        #expect(abs(k.profile.time.startupSeconds - (112 - 99.6 + 76.1)) < 1e-9, "\(k.profile.time.startupSeconds)")
        #expect(k.basis.contains("worker load 76.1 s: the median of the last 3 load(s) on NVIDIA H200 140GB"), "\(k.basis)")
        // A warm request pays what it paid; a clip started cold pays the shorter load.
        #expect(abs(seconds(k.profile, warm: true) - seconds(calibrated, warm: true)) < 1e-9)
        #expect(abs(seconds(calibrated, warm: false) - seconds(k.profile, warm: false) - (99.6 - 76.1)) < 1e-9)

        // Only the newest `recentLoads` count.
        for s in [50.0, 51, 52, 53, 54] { try h.recordLoad(load(la, s, at: 3000 + s)) }
        #expect(Knowledge(profile: la, gpus: gpus, historyPath: path, batch: "later", readOnly: true).learnedLoad?.seconds == 52)
        // Another GPU model's loads are not this one's.
        #expect(Knowledge(profile: la, gpus: [GPU(index: 0, model: "NVIDIA A100", memoryGB: 80)], historyPath: path, batch: "a100", readOnly: true).learnedLoad == nil)
    }

    @Test func withoutAWorkerOrALoadTheProfileStandsAsItIs() throws {
        let dir = TempDir("knowledge")
        let path = dir.path + "/history.sqlite"
        let la = try liveAvatar()
        _ = try History(path: path)
        let k = Knowledge(profile: la, gpus: gpus, historyPath: path, batch: "b", readOnly: true)
        #expect(k.learnedLoad == nil && k.profile.workerLoadSeconds == la.workerLoadSeconds && k.profile.time.startupSeconds == la.time.startupSeconds)
        #expect(!k.basis.contains("worker load"))
        var plain = la
        plain.worker = nil
        #expect(plain.withWorkerLoad(10) == plain)
    }
}
