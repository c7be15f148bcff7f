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

    /// Records `n` warm requests of `settings` that each rendered beside one other throughout, in 1.6 times what `fit`
    /// predicts for one alone (so S(2) = 2 / 1.6 = 1.25 against that prediction).
    func recordPackedRequests(_ n: Int, in h: History, profile la: RendererProfile, model: String, fit: CalibrationFit) throws {
        var alone = Predictor(profile: la.calibrated(by: fit))
        alone.warm = true
        // Each request's fixed part (the calibration's start-up less its load) shares nothing; its render took 1.6 times.
        let seconds = alone.estimate(settings).seconds, fixed = alone.estimate(settings).unsharedSeconds
        let render = 1.6 * (seconds - fixed)
        for _ in 0..<n {
            _ = try h.record(HistoryObservation(rendererIdentity: la.identityDigest, renderer: la.name, gpuModel: model, bucket: alone.bucket(settings),
                                                peakGB: 60, seconds: seconds, wallSeconds: fixed + render, frames: settings.totalFrames, oom: false,
                                                warm: true, startupSeconds: nil, stretches: [2: render], batch: "warm"))
        }
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

    @Test func aBatchOnSeveralGPUModelsTimesEachAtItsOwnSpeed() throws {
        // Two H200s and an A100. The batch predicts for the H200 (its most common model); the A100's renders are scaled
        // by what says how much longer they take there, and the basis names where that comes from.
        let dir = TempDir("knowledge")
        let path = dir.path + "/history.sqlite"
        let la = try liveAvatar()
        let h = try History(path: path)
        let point = { (size: String, ms: Double) in CalibrationFit.Point(size: size, inferFrames: 48, value: ms) }
        func fit(_ ms: [CalibrationFit.Point]) -> CalibrationFit {
            CalibrationFit(memoryPoints: [], timePoints: ms, startupSeconds: 112, perClipOfflineGB: nil, onlineDecodeGB: nil, sharing: [:],
                           gpuMemoryGB: 80, probes: 5, oomProbes: 0, seconds: 345, loadSeconds: 99.6)
        }
        func calibrate(_ model: String, _ f: CalibrationFit, at: Double) throws {
            let c = try h.beginCalibration(rendererIdentity: la.identityDigest, renderer: la.name, gpuModel: model, workDir: dir.path + "/\(at)", now: at)
            try h.completeCalibration(c.id, fit: f, now: at + 100)
        }
        let mixed = [GPU(index: 0, model: "NVIDIA H200", memoryGB: 140), GPU(index: 1, model: "NVIDIA A100", memoryGB: 80),
                     GPU(index: 2, model: "NVIDIA H200", memoryGB: 140)]
        // Only the A100 calibrated: nothing to compare it with, so it is planned as an H200.
        try calibrate("NVIDIA A100 80GB", fit([point("384*256", 300), point("688*368", 700)]), at: 900)
        var k = Knowledge(profile: la, gpus: mixed, historyPath: path, batch: "mixed", readOnly: true)
        #expect(k.gpuModel == "NVIDIA H200 140GB" && k.calibration == nil && k.timeScales.isEmpty)
        #expect(k.basis == "profile defaults; renders on NVIDIA A100 80GB are planned as on NVIDIA H200 140GB: no calibration of both, nor settings both ran, says otherwise",
                "\(k.basis)")
        #expect(k.scaled(mixed).map(\.timeScale) == [1, 1, 1])
        // Both calibrated: 1.5 and 1.75 times the H200's ms per frame, so x1.62.
        try calibrate("NVIDIA H200 140GB", fit([point("384*256", 200), point("688*368", 400)]), at: 2000)
        k = Knowledge(profile: la, gpus: mixed, historyPath: path, batch: "mixed", readOnly: true)
        #expect(abs((k.timeScales["NVIDIA A100 80GB"]?.scale ?? 0) - 1.625) < 1e-9)
        #expect(k.basis.hasSuffix("renders on NVIDIA A100 80GB take x1.62 of NVIDIA H200 140GB's (its calibration of 1970-01-01 against NVIDIA H200 140GB's)"),
                "\(k.basis)")
        #expect(k.scaled(mixed).map(\.timeScale) == [1, 1.625, 1])
        // One model: nothing to say.
        #expect(Knowledge(profile: la, gpus: gpus, historyPath: path, batch: "one", readOnly: true).basis.hasPrefix("calibration of 1970-01-01 on NVIDIA H200 140GB"))
        #expect(!Knowledge(profile: la, gpus: gpus, historyPath: path, batch: "one", readOnly: true).basis.contains("renders on"))
        // Without a history the other models are still named.
        #expect(Knowledge(profile: la, gpus: mixed, historyPath: nil, batch: "none").basis
                == "profile defaults; renders on NVIDIA A100 80GB are planned as on NVIDIA H200 140GB: no calibration of both, nor settings both ran, says otherwise")
        // No calibration of either, but two settings both models ran in earlier batches: the A100 took 2.5 times as long.
        let other = dir.path + "/other.sqlite"
        let h2 = try History(path: other)
        for (model, seconds) in [("NVIDIA H200 140GB", 10.0), ("NVIDIA A100 80GB", 25.0)] {
            for (bucket, frames) in [("b1", 48), ("b2", 96)] {
                _ = try h2.record(HistoryObservation(rendererIdentity: la.identityDigest, renderer: la.name, gpuModel: model, bucket: bucket, peakGB: 60,
                                                     seconds: seconds * Double(frames) / 48, wallSeconds: nil, frames: frames, oom: false, colocated: 1,
                                                     warm: false, startupSeconds: nil, stretches: nil, batch: "earlier"))
            }
        }
        k = Knowledge(profile: la, gpus: mixed, historyPath: other, batch: "mixed", readOnly: true)
        #expect(k.timeScales["NVIDIA A100 80GB"]?.scale == 2.5)
        #expect(k.basis.hasSuffix("renders on NVIDIA A100 80GB take x2.50 of NVIDIA H200 140GB's (learned from 2 setting(s) both ran in earlier batches)"), "\(k.basis)")
    }

    @Test func aBatchExpectsTheLoadsOfItsOwnLoadSettings() throws {
        let dir = TempDir("knowledge")
        let path = dir.path + "/history.sqlite"
        let la = try liveAvatar()
        let h = try History(path: path)
        func load(_ s: Double, _ key: String, at: Double) -> HistoryLoad {
            HistoryLoad(rendererIdentity: la.identityDigest, renderer: la.name, gpuModel: "NVIDIA H200 140GB", loadSettings: key, seconds: s, batch: "b", recordedAt: at)
        }
        var fp8 = settings
        fp8.fp8 = true
        // bf16 workers load in about 80 s; fp8 ones convert their weights too (keys as the warm pool records them).
        for (i, s) in [80.0, 82, 78].enumerated() { try h.recordLoad(load(s, la.workerKey(settings), at: 10 + Double(i))) }
        for (i, s) in [130.0, 126].enumerated() { try h.recordLoad(load(s, la.workerKey(fp8), at: 20 + Double(i))) }
        let key = try #require(Knowledge.commonLoadSettings(la, [fp8, fp8, settings]))
        #expect(key == la.workerKey(fp8) && key.contains("fp8=") && key != la.workerKey(settings), "\(key)")
        let k = Knowledge(profile: la, gpus: gpus, historyPath: path, batch: "fp8", readOnly: true, loadSettings: key)
        #expect(k.learnedLoad?.seconds == 128 && k.learnedLoad?.count == 2, "\(String(describing: k.learnedLoad))")
        #expect(k.basis.contains("worker load 128.0 s: the median of the last 2 load(s) of \(key) on NVIDIA H200 140GB"), "\(k.basis)")
        let bf16 = Knowledge(profile: la, gpus: gpus, historyPath: path, batch: "bf16", readOnly: true, loadSettings: la.workerKey(settings))
        #expect(bf16.learnedLoad?.seconds == 80)
        // Settings the history has no load of yet: every load counts, and the basis says so.
        let other = Knowledge(profile: la, gpus: gpus, historyPath: path, batch: "other", readOnly: true, loadSettings: "fp8=never-seen")
        #expect(other.learnedLoad?.seconds == 82 && other.learnedLoadSettings == nil)
        #expect(other.basis.contains("(none yet of this batch's load settings)"), "\(other.basis)")
        // A batch that mixes the two expects each group's own load, whichever is the majority (before 2026-12-01 both
        // expected the majority's: an fp8 worker 80 s in a mostly bf16 batch); a group with no load yet, the profile's.
        for knowledge in [k, bf16] {
            #expect(knowledge.expectedLoad(la.workerKey(fp8)) == 128 && knowledge.expectedLoad(la.workerKey(settings)) == 80, "\(knowledge.loadsBySettings)")
        }
        #expect(bf16.expectedLoad("fp8=never-seen") == bf16.profile.workerLoadSeconds && bf16.profile.workerLoadSeconds == 80)
        // Without a worker there are no load settings to name.
        var plain = la
        plain.worker = nil
        #expect(Knowledge.commonLoadSettings(plain, [settings]) == nil)
    }

    @Test func aWarmBatchLearnsSharingFromWarmRequestsAndAColdOneFromColdAttempts() throws {
        let dir = TempDir("knowledge")
        let path = dir.path + "/history.sqlite"
        let la = try liveAvatar()
        let h = try History(path: path)
        let model = "NVIDIA H200 140GB"
        // One bucket, 10 s a render alone either way, after a cold attempt's 5 s start-up or a warm request's 16 s fixed
        // part (the profile's start-up less its load), neither of which shares the GPU. Cold attempts' renders beside one
        // neighbour took 10 s (S(2) = 2.0: their references ran beside neighbours starting up); warm requests' 16 s
        // (S(2) = 1.25).
        func row(warm: Bool, render: Double, stretches: [Int: Double]) -> HistoryObservation {
            HistoryObservation(rendererIdentity: la.identityDigest, renderer: la.name, gpuModel: model, bucket: "b", peakGB: 60,
                               seconds: render + (warm ? 16 : 5), wallSeconds: render + (warm ? 16 : 5), frames: 96, oom: false, warm: warm,
                               startupSeconds: warm ? nil : 5, stretches: stretches, batch: warm ? "warm" : "cold")
        }
        for warm in [false, true] {
            _ = try h.record(row(warm: warm, render: 10, stretches: [1: 10]))
            for _ in 0..<6 { _ = try h.record(row(warm: warm, render: warm ? 16 : 10, stretches: [2: warm ? 16 : 10])) }
        }
        let cold = Knowledge(profile: la, gpus: gpus, historyPath: path, batch: "next", readOnly: true)
        let warm = Knowledge(profile: la, gpus: gpus, historyPath: path, batch: "next", readOnly: true, warm: true)
        #expect(abs((cold.learnedSharing[2] ?? 0) - 2.0) < 0.01, "\(cold.learnedSharing)")
        #expect(abs((warm.learnedSharing[2] ?? 0) - 1.25) < 0.01, "\(warm.learnedSharing)")
        #expect(warm.basis.contains("S(k) learned from warm requests: 2: 1.25"), "\(warm.basis)")
    }

    @Test func aPackedWarmBatchLearnsSharingAgainstTheCalibrationsTimesAlone() throws {
        // A warm batch packs its requests: on an H200 run none of 32 rendered alone, so the next warm batch learned no
        // S(k) and kept the calibration's (all probes in step, the worst phase) and planned 12% long
        // (bench/results/h200-2026-12-01-warm2). Here six requests each rendered beside one other throughout, in 1.6 times
        // what the calibration predicts alone, their fixed parts apart: S(2) = 2 / 1.6 = 1.25.
        let dir = TempDir("knowledge")
        let path = dir.path + "/history.sqlite"
        let la = try liveAvatar()
        let h = try History(path: path)
        let model = "NVIDIA H200 140GB"
        let fit = CalibrationFit(memoryPoints: [], timePoints: [], startupSeconds: 112, perClipOfflineGB: nil, onlineDecodeGB: nil, sharing: [2: 1.1],
                                 gpuMemoryGB: 140, probes: 5, oomProbes: 0, seconds: 345, loadSeconds: 99.6)
        try recordPackedRequests(3, in: h, profile: la, model: model, fit: fit)
        // Without a calibration nothing rendered alone on this model to measure them against: no S(k) is learned.
        #expect(Knowledge(profile: la, gpus: gpus, historyPath: path, batch: "next", readOnly: true, warm: true).learnedSharing.isEmpty)
        let c = try h.beginCalibration(rendererIdentity: la.identityDigest, renderer: la.name, gpuModel: model, workDir: dir.path, now: 900)
        try h.completeCalibration(c.id, fit: fit, now: 1000)
        // Three requests do not outweigh the calibration's S(2) (it weighs as four): the basis says it held.
        let few = Knowledge(profile: la, gpus: gpus, historyPath: path, batch: "next", readOnly: true, warm: true)
        #expect(abs((few.learnedSharing[2] ?? 0) - 1.1) < 0.01, "\(few.learnedSharing)")
        #expect(few.basis.contains("S(k) learned from warm requests: 2: 1.10 (as calibrated)"), "\(few.basis)")
        try recordPackedRequests(3, in: h, profile: la, model: model, fit: fit)
        let warm = Knowledge(profile: la, gpus: gpus, historyPath: path, batch: "next", readOnly: true, warm: true)
        #expect(abs((warm.learnedSharing[2] ?? 0) - 1.25) < 0.01, "\(warm.learnedSharing)")
        #expect(abs(SharingModel(warm.profile.sharing).aggregate(2) - 1.25) < 0.01)
        #expect(warm.basis.contains("S(k) learned from warm requests: 2: 1.25") && !warm.basis.contains("as calibrated"), "\(warm.basis)")
        // A cold batch learns from cold attempts only: these teach it nothing. Its basis says the probes ran warm.
        let cold = Knowledge(profile: la, gpus: gpus, historyPath: path, batch: "next", readOnly: true)
        #expect(cold.learnedSharing.isEmpty)
        #expect(cold.basis.hasPrefix("calibration of 1970-01-01 on NVIDIA H200 140GB (its probes ran on warm workers)"), "\(cold.basis)")
        #expect(!warm.basis.contains("its probes ran"), "\(warm.basis)")
    }

    @Test func aColdCalibrationIsNoWarmRequestsTimeAlone() throws {
        // `calibrate --cold` runs each probe as its own process: its times alone are a process's (on an H200 a cold render
        // took 1.4 times a warm one), not a warm request's, so packed warm requests learn no S(k) against them, and the
        // basis of a warm batch says which kind of probes it plans from.
        let dir = TempDir("knowledge")
        let path = dir.path + "/history.sqlite"
        let la = try liveAvatar()
        let h = try History(path: path)
        let model = "NVIDIA H200 140GB"
        var fit = CalibrationFit(memoryPoints: [], timePoints: [], startupSeconds: 112, perClipOfflineGB: nil, onlineDecodeGB: nil, sharing: [2: 1.1],
                                 gpuMemoryGB: 140, probes: 5, oomProbes: 0, seconds: 345)
        fit.warm = false
        #expect(!fit.ranWarm)
        try recordPackedRequests(6, in: h, profile: la, model: model, fit: fit)
        let c = try h.beginCalibration(rendererIdentity: la.identityDigest, renderer: la.name, gpuModel: model, workDir: dir.path, now: 900)
        try h.completeCalibration(c.id, fit: fit, now: 1000)
        let warm = Knowledge(profile: la, gpus: gpus, historyPath: path, batch: "next", readOnly: true, warm: true)
        #expect(warm.learnedSharing.isEmpty, "\(warm.learnedSharing)")
        #expect(warm.basis.hasPrefix("calibration of 1970-01-01 on NVIDIA H200 140GB (its probes ran cold)"), "\(warm.basis)")
        // A cold batch plans from it as it was measured, and says nothing more.
        #expect(Knowledge(profile: la, gpus: gpus, historyPath: path, batch: "next", readOnly: true).basis.hasPrefix("calibration of 1970-01-01 on NVIDIA H200 140GB;"))
        // Calibrations stored before `warm` was kept: a recorded load means warm probes.
        var old = fit
        old.warm = nil
        #expect(!old.ranWarm)
        old.loadSeconds = 99.6
        #expect(old.ranWarm)
    }

    @Test func aNewerColdCalibrationIsNamedAndPassedOver() throws {
        // A warm calibration, then `calibrate --cold`: both kinds of batch keep planning from the warm one (it predicted
        // cold batches better too, docs/benchmarks.md), and the basis names the newer one it does not use.
        let dir = TempDir("knowledge")
        let path = dir.path + "/history.sqlite"
        let la = try liveAvatar()
        let h = try History(path: path)
        let model = "NVIDIA H200 140GB"
        for (warm, at) in [(true, 86_400.0), (false, 2 * 86_400.0)] {
            var fit = CalibrationFit(memoryPoints: [], timePoints: [], startupSeconds: warm ? 100 : 130, perClipOfflineGB: nil, onlineDecodeGB: nil,
                                     sharing: [2: 1.1], gpuMemoryGB: 140, probes: 5, oomProbes: 0, seconds: 345)
            fit.warm = warm
            let c = try h.beginCalibration(rendererIdentity: la.identityDigest, renderer: la.name, gpuModel: model, workDir: dir.path, now: at - 100)
            try h.completeCalibration(c.id, fit: fit, now: at)
        }
        for warm in [true, false] {
            let k = Knowledge(profile: la, gpus: gpus, historyPath: path, batch: "next", readOnly: true, warm: warm)
            #expect(k.calibration?.fit?.ranWarm == true && k.profile.time.startupSeconds == 100, "\(k.profile.time)")
            #expect(k.basis.hasPrefix("calibration of 1970-01-02 on NVIDIA H200 140GB" + (warm ? "; " : " (its probes ran on warm workers); ")
                                      + "the newer calibration of 1970-01-03 is not used: its probes ran cold"), "\(k.basis)")
        }
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
