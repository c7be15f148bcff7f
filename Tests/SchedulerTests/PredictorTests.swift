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
        #expect(p.estimate(s).source == "observed")
        // 48 s over 480 frames = 0.1 s/frame.
        #expect(abs(p.estimate(s).seconds - 48) < 1e-9)
        p.observe(Observation(bucket: p.bucket(s), peakGB: 32.5, seconds: nil, frames: 480, oom: true))
        #expect(p.estimate(s).rawMemoryGB == 32.5)
        #expect(p.estimate(s).source == "oom")
    }

    @Test func parsesPyTorchOOMMessage() {
        let text = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 200.00 GiB. GPU 0 has a total capacity of 79.18 GiB of which 78.66 GiB is free. Including non-PyTorch memory, this process has 518.00 MiB memory in use."
        let r = OOMReport.parse(text)
        #expect(r.triedGiB == 200)
        #expect(r.capacityGiB == 79.18)
        #expect(abs((r.processInUseGiB ?? 0) - 0.505859375) < 1e-9)
        #expect(abs((r.lowerBoundGB ?? 0) - 200.505859375) < 1e-9)
    }

    @Test func liveavatarProfilePredictsThePublishedFigures() throws {
        let (profile, diags) = ProfileLoader.load(path: PackagePaths.renderers + "/liveavatar.yaml")
        let p = Predictor(profile: try #require(profile, "\(diags)"), headroom: 0)
        // Published: 688*368 x48 = 20.1 GB (+0.015 GB x 1 clip offline).
        let s = ClipSettings(size: FrameSize("688*368")!, numClip: 1, inferFrames: 48, sampleSteps: 4, onlineDecode: false, offloadModel: false, fp8: false, seed: 1)
        #expect(abs(p.estimate(s).rawMemoryGB - 20.115) < 1e-9)
        // 1000 clips: offline 17.8 + 15 = 32.8 GB at 32 frames; online 17.8 + 0.8 = 18.6 GB (published: 32 -> 18.5).
        var long = s
        long.inferFrames = 32
        long.numClip = 1000
        #expect(abs(p.estimate(long).rawMemoryGB - 32.8) < 1e-9)
        long.onlineDecode = true
        #expect(abs(p.estimate(long).rawMemoryGB - 18.6) < 1e-9)
        // Time: 810 ms/frame x 48 frames + 90 s startup.
        #expect(abs(p.estimate(s).seconds - (90 + 0.81 * 48)) < 1e-9)
    }
}
