import Manifest
import Scheduler
import TestSupport
import Testing

@Suite struct PredictorTests {
    @Test func interpolatesByPixelsTimesFrames() {
        let p = Predictor(profile: testProfile())
        // 384*256*48 = 4,718,592 -> 10 GB; plus offline decode 10 clips x 0.1 GB = 11 GB.
        let small = p.estimate(settings("384*256", clips: 10))
        #expect(abs(small.rawMemoryGB - 11) < 1e-9)
        #expect(small.extrapolated == false)
        // Online decode: 10 GB + 1 GB constant.
        #expect(abs(p.estimate(settings("384*256", clips: 500, online: true)).rawMemoryGB - 11) < 1e-9)
        // 688*368 -> 20 GB + 1 GB.
        #expect(abs(p.estimate(settings("688*368", clips: 10)).rawMemoryGB - 21) < 1e-9)
    }

    @Test func offlineFramesScaleWithTheFrameWhenTheProfileSaysPerPixelFrame() {
        var prof = testProfile()
        prof.memory.offlinePerMegapixelFrameGB = 0.01
        let p = Predictor(profile: prof)
        // 10 clips of 384*256 x48 (4.72 million pixel-frames each): 10 GB + 10 x 0.0472 GB, not 10 x 0.1.
        #expect(abs(p.estimate(settings("384*256", clips: 10)).rawMemoryGB - (10 + 10 * 0.01 * 4.718592)) < 1e-9)
        // 688*368 keeps 2.6 times as much a clip; online decoding keeps its constant.
        #expect(abs(p.estimate(settings("688*368", clips: 10)).rawMemoryGB - (20 + 10 * 0.01 * 12.152832)) < 1e-9)
        #expect(abs(p.estimate(settings("688*368", clips: 10, online: true)).rawMemoryGB - 21) < 1e-9)
        // A calibration brings it; one stored before it existed leaves the constant.
        var fit = CalibrationFit(memoryPoints: [], timePoints: [], startupSeconds: nil, perClipOfflineGB: 0.137, onlineDecodeGB: nil, sharing: [:],
                                 gpuMemoryGB: 140, probes: 7, oomProbes: 0, seconds: 60)
        #expect(testProfile().calibrated(by: fit).memory.offlineClipGB(pixelFrames: 44_236_800) == 0.137)
        fit.offlinePerMegapixelFrameGB = 0.0113
        #expect(abs(testProfile().calibrated(by: fit).memory.offlineClipGB(pixelFrames: 44_236_800) - 0.0113 * 44.2368) < 1e-9)
    }

    @Test func extrapolationIsFlagged() {
        var prof = testProfile()
        prof.sizes = []
        let e = Predictor(profile: prof).estimate(settings("1280*720", clips: 1))
        #expect(e.extrapolated)
        // Beyond 688*368 the slope of the last two points continues:
        // x1 = 4,718,592 (10 GB), x2 = 12,152,832 (20 GB), x = 1280*720*48 = 44,236,800.
        let slope = 10.0 / (12_152_832.0 - 4_718_592.0)
        #expect(abs(e.rawMemoryGB - (20 + slope * (44_236_800 - 12_152_832) + 0.1)) < 1e-6)
    }

    @Test func aFrameBelowTheSmallestTimePointCostsWhatItCostThere() {
        // Time points at 384*256 x48 (2.3 ms a frame) and 688*368 x48 (5.4), as an H200 calibration measured them. A
        // 384*256 x32 clip lies below the first: it is predicted at 2.3 ms a frame, not at the 1.6 the slope gives
        // (its clips took more than either). Memory below its first point still follows its slope, down to a quarter.
        var prof = testProfile()
        prof.time.points = [TimePoint(size: FrameSize("384*256")!, inferFrames: 48, msPerFrame: 2.28),
                            TimePoint(size: FrameSize("688*368")!, inferFrames: 48, msPerFrame: 5.43)]
        let p = Predictor(profile: prof)
        var x32 = settings("384*256", clips: 16)
        x32.inferFrames = 32
        let e = p.estimate(x32)
        #expect(e.extrapolated)
        #expect(abs(e.seconds - 2.28e-3 * 512) < 1e-9, "\(e.seconds)")
        // Between and above the points, as before.
        #expect(abs(p.estimate(settings("688*368", clips: 10)).seconds - 5.43e-3 * 480) < 1e-9)
        let memorySlope = 10.0 / (12_152_832.0 - 4_718_592.0)
        #expect(abs(e.rawMemoryGB - (10 - memorySlope * (4_718_592.0 - 3_145_728.0) + 16 * 0.1)) < 1e-9, "\(e.rawMemoryGB)")
    }

    @Test func headroomAndFactors() {
        var prof = testProfile()
        prof.memory.headroom = 0.1
        var s = settings("384*256", clips: 10)
        s.offloadModel = true
        // (10 + 1) x 0.5 offload = 5.5; + 10% headroom = 6.05.
        let e = Predictor(profile: prof).estimate(s)
        #expect(abs(e.memoryGB - 6.05) < 1e-9)
    }

    @Test func observationsOverrideThePriorAndOOMsRaiseIt() {
        var p = Predictor(profile: testProfile())
        let s = settings("384*256", clips: 10)
        p.observe(Observation(bucket: p.bucket(s), peakGB: 7.5, seconds: 48, frames: 480))
        #expect(p.estimate(s).rawMemoryGB == 7.5)
        #expect(p.estimate(s).source == "batch")
        // 48 s over 480 frames = 0.1 s/frame.
        #expect(abs(p.estimate(s).seconds - 48) < 1e-9)
        p.observe(Observation(bucket: p.bucket(s), peakGB: 32.5, seconds: nil, frames: 480, oom: true))
        #expect(p.estimate(s).rawMemoryGB == 32.5)
        #expect(p.estimate(s).source == "oom")
    }

    @Test func clipsAtOtherSampleStepsKeepTheirTimesApart() throws {
        // A course team renders previews at 2 steps and finals at 8 from the same images: one bucket for both would
        // predict each from the other's times (synthetic-dit's render time follows the steps).
        let (profile, diags) = ProfileLoader.load(path: PackagePaths.renderers + "/synthetic-dit.yaml")
        var p = Predictor(profile: try #require(profile, "\(diags)"))
        var final = settings("688*368", clips: 4)
        final.sampleSteps = 8
        var preview = final
        preview.sampleSteps = 2
        var usual = final
        usual.sampleSteps = 4
        // The default steps' bucket reads as before steps were kept (older histories match it); others name theirs.
        #expect(p.bucket(usual) == "synthetic-dit|688*368|f48|offline4|offload=false|fp8=false")
        #expect(p.bucket(final) == "synthetic-dit|688*368|f48|offline4|steps8|offload=false|fp8=false")
        #expect(Set([p.bucket(usual), p.bucket(final), p.bucket(preview)]).count == 3)
        let before = p.estimate(preview).seconds
        p.observe(Observation(bucket: p.bucket(final), peakGB: 15, seconds: 60, frames: final.totalFrames))
        #expect(p.estimate(preview).seconds == before && abs(p.estimate(final).seconds - 60) < 1e-6, "\(p.estimate(final).seconds)")
        // The bucket reads back with its steps, and so predicts what they take.
        let back = try #require(p.settings(bucket: p.bucket(final), frames: final.totalFrames))
        #expect(back.sampleSteps == 8 && p.bucket(back) == p.bucket(final))
        #expect(p.settings(bucket: "synthetic-dit|688*368|f48|offline4|stepsX|offload=false|fp8=false", frames: 192) == nil)
    }

    @Test func parsesPyTorchOOMMessage() {
        let text = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 200.00 GiB. GPU 0 has a total capacity of 79.18 GiB of which 78.66 GiB is free. Including non-PyTorch memory, this process has 518.00 MiB memory in use."
        let r = OOMReport.parse(text)
        #expect(r.triedGiB == 200)
        #expect(r.capacityGiB == 79.18)
        #expect(abs((r.processInUseGiB ?? 0) - 0.505859375) < 1e-9)
        #expect(abs((r.lowerBoundGB ?? 0) - 200.505859375) < 1e-9)
    }

    /// The profile against the peaks measured on an H200 with the real pipeline (nvidia-smi, GiB; docs/benchmarks.md),
    /// each at the frame the real code rendered from a 1280x720 image.
    @Test(arguments: [
        ("384*256", false, 49.95), ("688*368", false, 72.05), ("704*384", false, 75.41), ("688*368", true, 57.15), ("704*384", true, 59.96),
    ])
    func liveavatarProfilePredictsTheMeasuredPeaks(_ size: String, _ fp8: Bool, _ measured: Double) throws {
        let (profile, diags) = ProfileLoader.load(path: PackagePaths.renderers + "/liveavatar.yaml")
        let p = Predictor(profile: try #require(profile, "\(diags)"))
        var s = ClipSettings(size: FrameSize(size)!, numClip: 1, inferFrames: 48, sampleSteps: 4, onlineDecode: false, offloadModel: true,
                             fp8: fp8, seed: 1, reference: FrameSize(width: 1280, height: 720))
        let e = p.estimate(s)
        // The model is within 0.6 GiB of every measured peak, and with its headroom never below it.
        #expect(abs(e.rawMemoryGB - measured) < 0.6, "\(e.rawMemoryGB)")
        #expect(e.memoryGB > measured)
        // GPU memory does not grow with clips (measured: 51.43, 51.44, 51.50 GB for 1, 3, 10 clips); host RAM does.
        s.numClip = 10
        #expect(p.estimate(s).rawMemoryGB == e.rawMemoryGB)
        #expect(p.estimate(s).hostRAMGB > e.hostRAMGB)
    }

    /// Default clips on one 80 GB card run one at a time: two bf16 jobs never share it. On an H200, two fp8 jobs do.
    @Test func liveavatarNeverPacksTwoBF16JobsOnAnEightyGigabyteCard() throws {
        let (profile, diags) = ProfileLoader.load(path: PackagePaths.renderers + "/liveavatar.yaml")
        let profileValue = try #require(profile, "\(diags)")
        let planner = Planner(predictor: Predictor(profile: profileValue), strategy: Strategy.table["earliest-finish"]!)
        func clip(_ id: String, fp8: Bool) -> PlanJob {
            PlanJob(id: id, settings: ClipSettings(size: FrameSize("688*368")!, numClip: 3, inferFrames: 48, sampleSteps: 4, onlineDecode: false,
                                                   offloadModel: true, fp8: fp8, seed: 1, reference: FrameSize(width: 1280, height: 720)))
        }
        let plan = planner.plan((0..<4).map { clip("c\($0)", fp8: false) }, gpus: [GPU(index: 0, memoryGB: 80)])
        let spans = plan.runs.map { ($0.startS, $0.endS) }.sorted { $0.0 < $1.0 }
        #expect(spans.count == 4)
        for (a, b) in zip(spans, spans.dropFirst()) { #expect(b.0 >= a.1 - 1e-9, "\(spans)") }
        let h200 = planner.plan((0..<2).map { clip("f\($0)", fp8: true) }, gpus: [GPU(index: 0, memoryGB: 140)])
        #expect(h200.runs.allSatisfy { $0.startS == 0 }, "\(h200.runs)")
    }

    /// A history keeps a bucket and a frame count; settings that fall into that bucket again are what its time alone is
    /// predicted from (a packed warm batch's reference, docs/calibration.md).
    @Test func aBucketReadsBackAsSettingsThatFallIntoIt() throws {
        let exact = Predictor(profile: testProfile())
        for s in [settings("688*368", clips: 3), settings("384*256", clips: 20, online: true)] {
            var offload = s
            offload.offloadModel = true
            offload.fp8 = true
            for t in [s, offload] {
                let back = try #require(exact.settings(bucket: exact.bucket(t), frames: t.totalFrames), "\(exact.bucket(t))")
                #expect(back.size == t.size && back.inferFrames == t.inferFrames && back.numClip == t.numClip && back.onlineDecode == t.onlineDecode
                        && back.offloadModel == t.offloadModel && back.fp8 == t.fp8)
                #expect(exact.estimate(back).seconds == exact.estimate(t).seconds && exact.estimate(back).rawMemoryGB == exact.estimate(t).rawMemoryGB)
            }
        }
        // Live Avatar fits the frame to the reference image under the size's area: the bucket names both.
        let la = Predictor(profile: try #require(ProfileLoader.load(path: PackagePaths.renderers + "/liveavatar.yaml").0))
        let portrait = ClipSettings(size: FrameSize("688*368")!, numClip: 2, inferFrames: 48, sampleSteps: 4, onlineDecode: false, offloadModel: false,
                                    fp8: false, seed: 1, reference: FrameSize(width: 1080, height: 1920))
        let bucket = la.bucket(portrait)
        #expect(bucket.contains(">"), "\(bucket)")
        let back = try #require(la.settings(bucket: bucket, frames: 96))
        #expect(la.bucket(back) == bucket && abs(la.estimate(back).seconds - la.estimate(portrait).seconds) < 1e-9)
        // Another renderer's bucket, a frame count the bucket's frames do not divide, and garbage read as nothing.
        #expect(exact.settings(bucket: bucket, frames: 96) == nil)
        #expect(la.settings(bucket: bucket, frames: 50) == nil)
        #expect(exact.settings(bucket: "test|688*368|fx|online|offload=false|fp8=false", frames: 48) == nil)
        #expect(exact.settings(bucket: "test", frames: 48) == nil)
        // A clip count the bucket does not hold (offline 8 holds 5 to 8 clips).
        #expect(exact.settings(bucket: exact.bucket(settings("688*368", clips: 8)), frames: 48 * 3) == nil)
    }
}

/// Times are a fixed part plus a render rate: a cold attempt's fixed part is the whole start-up, a warm request's the
/// start-up less the worker's load. Either kind of observation predicts both.
@Suite struct WarmAndColdTimeTests {
    /// Start-up 100 s of which 90 s is the load; 10 ms a frame.
    func profile() -> RendererProfile {
        var p = testProfile()
        p.time.startupSeconds = 100
        p.worker = WorkerSpec(command: ["true"], loadSeconds: 90)
        return p
    }

    @Test func aCalibrationsRateWeighsAsTwoObservationsAProfilesAsNone() {
        // The profile: 10 ms a frame at 384*256, measured elsewhere. A batch here saw 0.1 s a frame (48 s for 480 frames).
        let s = settings("384*256", clips: 10)
        let observation = { (p: Predictor) in Observation(bucket: p.bucket(s), peakGB: 7.5, seconds: 48, frames: 480) }
        var profile = Predictor(profile: testProfile())
        profile.observe(observation(profile))
        #expect(profile.timePriorWeight == 0 && abs(profile.estimate(s).seconds - 48) < 1e-9)
        // Calibrated on this GPU model at 10 ms a frame: one observation of 0.1 s a frame moves it a third of the way,
        // (0.1 + 2 x 0.01) / 3 = 0.04 s a frame; ten observations nearly all the way.
        let fit = CalibrationFit(memoryPoints: [], timePoints: [.init(size: "384*256", inferFrames: 48, value: 10)], startupSeconds: 0, perClipOfflineGB: nil,
                                 onlineDecodeGB: nil, sharing: [:], gpuMemoryGB: 80, probes: 4, oomProbes: 0, seconds: 10)
        var calibrated = Predictor(profile: testProfile().calibrated(by: fit))
        #expect(calibrated.timePriorWeight == Predictor.calibrationWeight && Predictor.calibrationWeight == 2)
        #expect(abs(calibrated.estimate(s).seconds - 4.8) < 1e-9)
        calibrated.observe(observation(calibrated))
        #expect(abs(calibrated.estimate(s).seconds - 480 * (0.1 + 2 * 0.01) / 3) < 1e-9, "\(calibrated.estimate(s).seconds)")
        for _ in 0..<9 { calibrated.observe(observation(calibrated)) }
        #expect(abs(calibrated.estimate(s).seconds - 480 * (10 * 0.1 + 2 * 0.01) / 12) < 1e-9)
    }

    @Test func aWarmRequestsTimeTeachesTheRenderRateForBothKinds() {
        let s = settings(clips: 10)  // 480 frames
        var p = Predictor(profile: profile())
        #expect(abs(p.estimate(s).seconds - (100 + 4.8)) < 1e-9)
        p.warm = true
        #expect(abs(p.estimate(s).seconds - (10 + 4.8)) < 1e-9)
        // A request of 240 frames took 34 s: 10 s fixed + 24 s of render, 0.1 s a frame.
        p.observe(Observation(bucket: p.bucket(s), peakGB: 9, seconds: 34, frames: 240, warm: true), origin: .history)
        #expect(abs(p.estimate(s).seconds - (10 + 48)) < 1e-9 && p.estimate(s).source == "history")
        // The same rate, cold: the whole start-up.
        var cold = p
        cold.warm = false
        #expect(abs(cold.estimate(s).seconds - (100 + 48)) < 1e-9)
        // A cold attempt of 480 frames in 148 s says the same rate: nothing moves.
        p.observe(Observation(bucket: p.bucket(s), peakGB: 9, seconds: 148, frames: 480), origin: .batch)
        #expect(abs(p.estimate(s).seconds - (10 + 48)) < 1e-9 && p.estimate(s).source == "batch")
    }

    @Test func aTimeShorterThanItsFixedPartBringsTheFixedPartsDown() {
        let s = settings(clips: 10)
        var p = Predictor(profile: profile())
        // 60 s cold for 480 frames: the start-up is at most 60 s here; the observation predicts itself.
        p.observe(Observation(bucket: p.bucket(s), peakGB: 9, seconds: 60, frames: 480), origin: .batch)
        #expect(abs(p.estimate(s).seconds - 60) < 1e-9)
        // Warm, the fixed part came down by the same 40 s, to nothing: never below zero.
        p.warm = true
        #expect(p.estimate(s).seconds >= 0.001 && p.estimate(s).seconds < 60)
    }

    @Test func aReportedStartUpSplitsAColdAttemptIntoItsStartUpAndARequest() {
        let s = settings(clips: 10)  // 480 frames
        var p = Predictor(profile: profile())
        // 130 s cold, of which the renderer says 70 s were its start-up: a request of 60 s (10 s fixed, 0.104 s a frame).
        p.observe(Observation(bucket: p.bucket(s), peakGB: 9, seconds: 130, frames: 480, startupSeconds: 70), origin: .history)
        #expect(abs(p.estimate(s).seconds - 130) < 1e-9)
        // Only the reported start-up shares nothing, not the profile's 100 s.
        #expect(abs(p.estimate(s).unsharedSeconds - 70) < 1e-9)
        var warm = p
        warm.warm = true
        #expect(abs(warm.estimate(s).seconds - 60) < 1e-9)
        // A size never run starts up as the others did: 70 s and a request's 10 s, not the profile's 100 s.
        let other = settings(clips: 1)
        #expect(abs(p.estimate(other).seconds - (70 + 10 + 0.48)) < 1e-9)
        #expect(abs(p.estimate(other).unsharedSeconds - 70) < 1e-9)
        // Without the report the same attempt is taken less the profile's start-up: a request of 10 + 30 s, not 60 s.
        var unreported = Predictor(profile: profile())
        unreported.observe(Observation(bucket: p.bucket(s), peakGB: 9, seconds: 130, frames: 480), origin: .history)
        unreported.warm = true
        #expect(abs(unreported.estimate(s).seconds - 40) < 1e-9)
        // A start-up of other load settings is not borrowed.
        var offload = other
        offload.offloadModel = true
        #expect(abs(p.estimate(offload).unsharedSeconds - 100) < 1e-9)
    }

    @Test func aWarmRequestHasNoStartUpEvenWhenOneIsGiven() {
        let o = Observation(bucket: "b", peakGB: 1, seconds: 5, frames: 10, warm: true, startupSeconds: 3)
        #expect(o.startupSeconds == nil)
    }
}
