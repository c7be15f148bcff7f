import TestSupport
import Manifest
import Scheduler
import Testing

@Suite struct LearningTests {
    func entry(_ model: String, _ bucket: String, seconds: Double, peak: Double, k: Int = 1, wall: Double? = nil,
               stretches: [Int: Double]? = nil) -> HistoryEntry {
        HistoryEntry(gpuModel: model, observation: Observation(bucket: bucket, gpuModel: model, peakGB: peak, seconds: seconds, frames: 100), colocated: k,
                     wallSeconds: wall, stretches: stretches)
    }

    @Test func theSameModelsFiguresAreUsedAsTheyAre() {
        let out = Learning.observations(for: "H200 140GB", from: [entry("H200 140GB", "a", seconds: 10, peak: 20), entry("H200 140GB", "a", seconds: 11, peak: 21, k: 2)])
        #expect(out.count == 2 && out.allSatisfy { $0.1 == .history })
        // A co-located attempt's time is kept as recorded: solo-equivalent, as its batch counted it.
        #expect(out[1].0.seconds == 11 && out[1].0.peakGB == 21)
    }

    @Test func anotherModelsFiguresComeOnlyThroughALearnedRatio() {
        // The A100 is twice as slow on the two buckets both ran; its third bucket is borrowed at x0.5 time.
        var entries = [entry("H200 140GB", "a", seconds: 10, peak: 20), entry("H200 140GB", "b", seconds: 20, peak: 30),
                       entry("A100 80GB", "a", seconds: 20, peak: 20), entry("A100 80GB", "b", seconds: 40, peak: 30),
                       entry("A100 80GB", "c", seconds: 60, peak: 40)]
        var out = Learning.observations(for: "H200 140GB", from: entries)
        let borrowed = out.filter { if case .borrowed = $0.1 { return true } else { return false } }
        #expect(borrowed.count == 1)
        #expect(borrowed[0].0.bucket == "c" && borrowed[0].0.seconds == 30 && borrowed[0].0.peakGB == 40)
        if case let .borrowed(how) = borrowed[0].1 { #expect(how.contains("from A100 80GB") && how.contains("time x0.50")) }
        // One shared bucket is not enough to learn a ratio: the other model's figures are not used at all.
        entries.remove(at: 3)
        out = Learning.observations(for: "H200 140GB", from: entries)
        #expect(out.allSatisfy { $0.1 == .history })
        // A predictor says so.
        var p = Predictor(profile: testProfile())
        for (o, origin) in Learning.observations(for: "H200 140GB", from: [entry("H200 140GB", "x", seconds: 1, peak: 1)]) { p.observe(o, origin: origin) }
        let s = settings()
        p.observe(Observation(bucket: p.bucket(s), peakGB: 9, seconds: 4.8, frames: 480), origin: .history)
        #expect(p.estimate(s).source == "history")
        #expect(p.provenance(s) == "history: 1 observation(s) on this GPU model")
        p.observe(Observation(bucket: p.bucket(s), peakGB: 9.5, seconds: 4.8, frames: 480), origin: .batch)
        #expect(p.estimate(s).source == "batch" && p.estimate(s).rawMemoryGB == 9.5)
        #expect(p.provenance(s) == "history: 1 observation(s) on this GPU model; this batch: 1 observation(s)")
        #expect(Predictor(profile: testProfile()).provenance(s) == "profile")
    }

    @Test func howMuchLongerAnotherModelRendersComesFromTheSettingsBothRanOrFromBothCalibrations() {
        // From the history: the A100 took twice as long on both buckets the H200 ran (its peaks the same).
        let entries = [entry("H200 140GB", "a", seconds: 10, peak: 20), entry("H200 140GB", "b", seconds: 20, peak: 30),
                       entry("A100 80GB", "a", seconds: 20, peak: 20), entry("A100 80GB", "b", seconds: 40, peak: 30)]
        let r = Learning.ratios(of: "A100 80GB", to: "H200 140GB", from: entries)
        #expect(r?.time == 2 && r?.memory == 1 && r?.common == 2)
        #expect(Learning.ratios(of: "A100 80GB", to: "H200 140GB", from: Array(entries.prefix(3))) == nil)
        // From two calibrations: at the first's points, the other's ms per frame (interpolated on its own points) over its own.
        let point = { (size: String, ms: Double) in CalibrationFit.Point(size: size, inferFrames: 48, value: ms) }
        func fit(_ points: [CalibrationFit.Point]) -> CalibrationFit {
            CalibrationFit(memoryPoints: [], timePoints: points, startupSeconds: 5, perClipOfflineGB: nil, onlineDecodeGB: nil, sharing: [:],
                           gpuMemoryGB: 80, probes: 5, oomProbes: 0, seconds: 60)
        }
        let h200 = fit([point("384*256", 2), point("688*368", 5)])
        // 1.5 times at 384*256 and 2.5 times at 688*368 (points of its own at those sizes): the median of the two.
        #expect(Learning.renderRatio(of: fit([point("384*256", 3), point("688*368", 12.5)]), to: h200) == 2)
        // One point of the other: it scales with the pixel-frames, as predictions do (3 ms at 384*256 is 7.7 at 688*368).
        let one = try! #require(Learning.renderRatio(of: fit([point("384*256", 3)]), to: h200))
        #expect(abs(one - Learning.median([1.5, 3 * (688.0 * 368) / (384 * 256) / 5])) < 1e-9, "\(one)")
        #expect(Learning.renderRatio(of: fit([]), to: h200) == nil)
    }

    @Test func sharingIsLearnedFromCoLocatedRunsOnly() {
        var entries = [entry("H200 140GB", "a", seconds: 10, peak: 20)]
        // Two at once took 12.5 s each (wall): S(2) = 2 x 10 / 12.5 = 1.6; only with at least three such runs.
        for _ in 0..<2 { entries.append(entry("H200 140GB", "a", seconds: 10, peak: 20, k: 2, wall: 12.5)) }
        #expect(Learning.sharing(for: "H200 140GB", from: entries).isEmpty)
        entries.append(entry("H200 140GB", "a", seconds: 10, peak: 20, k: 2, wall: 12.5))
        #expect(Learning.sharing(for: "H200 140GB", from: entries) == [2: 1.6])
        #expect(Learning.sharing(for: "A100 80GB", from: entries).isEmpty)
        // With a 4 s start-up that shares nothing, the renders took 8.5 s together against 6 alone: S(2) = 2 x 6 / 8.5.
        #expect(abs(Learning.sharing(for: "H200 140GB", from: entries, unshared: 4)[2]! - 2 * 6.0 / 8.5) < 1e-9)
        #expect(Learning.modelKey(GPU(index: 0, model: "NVIDIA H200", memoryGB: 140.4)) == "NVIDIA H200 140GB")
        #expect(Learning.primaryModel([GPU(index: 0, model: "A", memoryGB: 80), GPU(index: 1, model: "B", memoryGB: 24), GPU(index: 2, model: "B", memoryGB: 24)]) == "B 24GB")
    }

    @Test func sharingIsLearnedFromHowLongEachRenderRanBesideHowMany() {
        // Bucket "a": 10 s alone (no start-up). The card's true S(2) is 1.6 (each of two renders at 0.8), S(3) 1.5 (0.5).
        // Four attempts overlapped a neighbour for only part of their render: 4 s alone then 7.5 s beside one
        // (4 + 7.5 x 0.8 = 10), and each also saw a third for a moment (1 s: 0.5 s of progress), so their wall time is
        // 4 + 6.875 + 1 = 11.875 s. Counted whole at the most that shared (3), as before, S(3) would read 3 x 10 / 11.875
        // = 2.5; by the stretches S(2) is 1.6 and S(3) is not reported (no attempt spent a quarter of its render at 3: its
        // moments count as at 2, so S(2) reads 1.6 within 0.02).
        var entries = [entry("H200 140GB", "a", seconds: 10, peak: 20)]
            + Array(repeating: entry("H200 140GB", "a", seconds: 10, peak: 20, k: 3, wall: 11.875, stretches: [1: 4, 2: 6.875, 3: 1]), count: 4)
        // Counted alone when recorded (a neighbour was still in its predicted start-up), but its stretches say it rendered
        // beside one throughout, and its solo-equivalent time was taken from that: it is no reference for time alone.
        entries.append(entry("H200 140GB", "a", seconds: 7, peak: 20, k: 1, wall: 12.5, stretches: [2: 12.5]))
        var learned = Learning.sharing(for: "H200 140GB", from: entries)
        #expect(learned.count == 1 && abs(learned[2]! - 1.6) < 0.02, "\(learned)")
        // Three attempts rendered mostly beside two others (2 s at 2, 8 s at 3: 2 x 0.8 + 8 x 0.5 = 5.6 of 10 s, so the
        // rest, 4.4 s, alone): S(3) = 1.5 is found beside S(2), and one attempt far off (a stall: 25 s beside one) does
        // not move them (least absolute deviations; least squares read S(2) = 1.0 and S(3) = 1.86 with it).
        entries += Array(repeating: entry("H200 140GB", "a", seconds: 10, peak: 20, k: 3, wall: 14.4, stretches: [1: 4.4, 2: 2, 3: 8]), count: 3)
        entries.append(entry("H200 140GB", "a", seconds: 10, peak: 20, k: 2, wall: 25, stretches: [2: 25]))
        learned = Learning.sharing(for: "H200 140GB", from: entries)
        #expect(abs(learned[2]! - 1.6) < 1e-4 && abs(learned[3]! - 1.5) < 1e-4, "\(learned)")
        // A cold attempt's start-up is what its stretches leave of its wall time: the same attempts with a 3 s start-up
        // each (alone: 13 s) read the same.
        let cold = entries.map { e -> HistoryEntry in
            var c = e
            c.observation.seconds = (e.observation.seconds ?? 0) + 3
            c.wallSeconds = e.wallSeconds.map { $0 + 3 }
            return c
        }
        learned = Learning.sharing(for: "H200 140GB", from: cold, unshared: 3)
        #expect(abs(learned[2]! - 1.6) < 1e-4 && abs(learned[3]! - 1.5) < 1e-4, "\(learned)")
    }

    @Test func aWarmRequestsFixedPartIsNoPartOfItsSharing() {
        // Warm bucket "a": 10 s alone, 4 s of it the request's fixed part (set-up, save and mux), 6 s its render. Beside
        // one other the render runs at S(2)/2 = 0.8: 4 + 6 / 0.8 = 11.5 s. Recorded since 2026-12-02, its stretches
        // hold the render only (7.5 s at 2).
        func warm(_ seconds: Double, wall: Double, _ stretches: [Int: Double]) -> HistoryEntry {
            var e = entry("H200 140GB", "a", seconds: seconds, peak: 20, k: stretches.keys.max() ?? 1, wall: wall, stretches: stretches)
            e.observation.warm = true
            return e
        }
        let alone = warm(10, wall: 10, [1: 6])
        let now = [alone] + Array(repeating: warm(10, wall: 11.5, [2: 7.5]), count: 4)
        let learned = Learning.sharing(for: "H200 140GB", from: now, requestUnshared: 4)[2]
        #expect(abs((learned ?? 0) - 1.6) < 1e-4, "\(String(describing: learned))")
        // Recorded before, the whole request was counted as rendering beside one (11.5 s at 2): the fixed part is taken
        // off in proportion, and the same S(2) is read. Read as all render, it would be 2 x 10 / 11.5 = 1.74.
        let before = [warm(10, wall: 10, [1: 10])] + Array(repeating: warm(10, wall: 11.5, [2: 11.5]), count: 4)
        let converted = Learning.sharing(for: "H200 140GB", from: before, requestUnshared: 4)[2]
        #expect(abs((converted ?? 0) - 1.6) < 1e-4, "\(String(describing: converted))")
        let whole = Learning.sharing(for: "H200 140GB", from: before)[2]
        #expect(abs((whole ?? 0) - 20 / 11.5) < 1e-4, "\(String(describing: whole))")
    }

    @Test func aWorkersLoadIsExpectedFromItsOwnGroupFirst() {
        let measured = ["fp8=True": [150.0, 140, 160], "fp8=False": [80.0]]
        // This batch's loads of the group, then the history's for it, then this batch's of any group, then the profile's.
        #expect(Learning.expectedLoad("fp8=True", measured: measured, history: ["fp8=True": 130], otherwise: 99) == 150)
        #expect(Learning.expectedLoad("fp8=True", measured: ["fp8=False": [80]], history: ["fp8=True": 130], otherwise: 99) == 130)
        #expect(Learning.expectedLoad("offload=True", measured: measured, history: ["fp8=True": 130], otherwise: 99) == 145)
        #expect(Learning.expectedLoad("fp8=True", measured: [:], history: [:], otherwise: 99) == 99)
        // A load measured in this batch is start to ready: a first request's extra is added to it, and only to it (the
        // history's and the profile's figures hold it already).
        #expect(Learning.expectedLoad("fp8=True", measured: measured, history: [:], otherwise: 99, firstRequest: 6) == 156)
        #expect(Learning.expectedLoad("offload=True", measured: measured, history: [:], otherwise: 99, firstRequest: 6) == 151)
        #expect(Learning.expectedLoad("fp8=True", measured: ["fp8=False": [80]], history: ["fp8=True": 130], otherwise: 99, firstRequest: 6) == 130)
        #expect(Learning.expectedLoad("fp8=True", measured: [:], history: [:], otherwise: 99, firstRequest: 6) == 99)
    }

    @Test func aFewAttemptsDoNotOverruleTheCalibrationsSharing() {
        // Bucket "a": 10 s alone. The calibration measured S(2) = 1.2. Two attempts rendered beside one throughout in
        // 10 s (S(2) = 2.0: a neighbour that hardly used the card, or a reference that ran slow).
        let prior = SharingModel([2: 1.2, 3: 1.3])
        let few = [entry("H200 140GB", "a", seconds: 10, peak: 20)]
            + Array(repeating: entry("H200 140GB", "a", seconds: 10, peak: 20, k: 2, wall: 10, stretches: [2: 10]), count: 2)
        // Alone, the two teach 2.0; beside the prior, weighing as four attempts, they do not carry it.
        #expect(Learning.sharing(for: "H200 140GB", from: few, minimum: 2)[2] == 2.0)
        #expect(Learning.sharing(for: "H200 140GB", from: few, minimum: 2, prior: prior, priorWeight: 0)[2] == 2.0)
        let held = Learning.sharing(for: "H200 140GB", from: few, minimum: 2, prior: prior)[2]!
        #expect(abs(held - 1.2) < 0.05, "\(held)")
        // Twelve attempts that agree on 1.6 (12.5 s each beside one) outweigh it.
        let many = few + Array(repeating: entry("H200 140GB", "a", seconds: 10, peak: 20, k: 2, wall: 12.5, stretches: [2: 12.5]), count: 12)
        let moved = Learning.sharing(for: "H200 140GB", from: many, minimum: 2, prior: prior)[2]!
        #expect(abs(moved - 1.6) < 0.01, "\(moved)")
    }

    @Test func aPackedBatchLearnsSharingAgainstAReferenceWhereNothingRanAlone() {
        // Six requests of bucket "a", each 16 s beside one other throughout; none rendered alone. The calibration says
        // 10 s alone: S(2) = 2 x 10 / 16 = 1.25.
        let packed = Array(repeating: entry("H200 140GB", "a", seconds: 10, peak: 20, k: 2, wall: 16, stretches: [2: 16]), count: 6)
        #expect(Learning.sharing(for: "H200 140GB", from: packed, minimum: 2).isEmpty)
        let learned = Learning.sharing(for: "H200 140GB", from: packed, minimum: 2, reference: { $0.observation.bucket == "a" ? 10 : nil })[2]
        #expect(abs((learned ?? 0) - 1.25) < 1e-6, "\(String(describing: learned))")
        // A bucket's own time alone, where it has one, comes first: 8 s alone (per 100 frames) says S(2) = 1.0.
        let withOwn = packed + [entry("H200 140GB", "a", seconds: 8, peak: 20, k: 1, wall: 8, stretches: [1: 8])]
        let own = Learning.sharing(for: "H200 140GB", from: withOwn, minimum: 2, reference: { _ in 10 })[2]
        #expect(abs((own ?? 0) - 1.0) < 1e-6, "\(String(describing: own))")
    }

    @Test func aCalibrationReplacesTheProfilesFigures() {
        let fit = CalibrationFit(memoryPoints: [.init(size: "384*256", inferFrames: 48, value: 7)], timePoints: [.init(size: "384*256", inferFrames: 48, value: 5)],
                                 startupSeconds: 2, perClipOfflineGB: 0.2, onlineDecodeGB: 0.5, sharing: [2: 1.8], gpuMemoryGB: 80, probes: 5, oomProbes: 0, seconds: 60)
        let p = testProfile().calibrated(by: fit)
        #expect(p.memory.points == [MemoryPoint(size: FrameSize(width: 384, height: 256), inferFrames: 48, gb: 7)])
        #expect(p.time.startupSeconds == 2 && p.sharing[2] == 1.8 && p.memory.perClipOfflineGB == 0.2 && p.memory.onlineDecodeGB == 0.5)
        #expect(p.identityDigest == testProfile().identityDigest)
        let e = Predictor(profile: p).estimate(settings(clips: 1))
        #expect(abs(e.rawMemoryGB - 7.2) < 1e-9 && abs(e.seconds - (2 + 0.005 * 48)) < 1e-9)
    }

    @Test func aMeasuredSBelowOneIsTakenAsOne() {
        // Two together took longer than one after the other would have: noise, or nothing to gain; never a loss.
        #expect(Learning.sharing(renders: [(alone: 10, stretches: [2: 25])], minimum: 1) == [2: 1])
        #expect(abs(Learning.sharing(renders: [(alone: 10, stretches: [2: 12])], minimum: 1)[2]! - 2 * 10.0 / 12) < 1e-6)
    }

    @Test func measuredSharingScalesTheProfilesFiguresBeyondIt() {
        let prior = testProfile(sharing: [2: 1.57, 3: 2.12, 4: 2.57])
        // S(2) measured 1.08 on this GPU (the H200, render together): S(3) and S(4) come down by as much.
        let low = prior.withSharing([2: 1.08]).sharing
        #expect(low[2] == 1.08 && abs(low[3]! - 2.12 * 1.08 / 1.57) < 1e-9 && abs(low[4]! - 2.57 * 1.08 / 1.57) < 1e-9, "\(low)")
        // Learned for 2 and 3: only 4 is scaled, by what 3 measured, so S(4)/4 no longer promises more than S(3)/3.
        let learned = prior.withSharing([2: 1.33, 3: 1.63]).sharing
        #expect(learned[2] == 1.33 && learned[3] == 1.63 && abs(learned[4]! - 2.57 * 1.63 / 2.12) < 1e-9)
        #expect(learned[4]! / 4 < learned[3]! / 3)
        // Never below the measured k, never above k; nothing measured leaves the table; so does a k the profile lacks.
        #expect(testProfile(sharing: [2: 1.2, 3: 2.9]).withSharing([2: 1.9]).sharing[3] == 3)
        #expect(testProfile(sharing: [2: 1.9, 3: 1.5]).withSharing([2: 1.2]).sharing[3] == 1.2)
        #expect(prior.withSharing([:]).sharing == prior.sharing)
        #expect(testProfile(sharing: [2: 1.5]).withSharing([3: 2]).sharing == [2: 1.5, 3: 2])
        // A calibration's S(2) does the same.
        let fit = CalibrationFit(memoryPoints: [], timePoints: [], startupSeconds: nil, perClipOfflineGB: nil, onlineDecodeGB: nil, sharing: [2: 1.08],
                                 gpuMemoryGB: 140, probes: 7, oomProbes: 0, seconds: 19)
        #expect(prior.calibrated(by: fit).sharing == low)
    }

    @Test func aCalibrationMovesAResidentModelByItsOffsetAndSetsTheWorkersLoad() throws {
        let (loaded, diags) = ProfileLoader.load(path: PackagePaths.renderers + "/liveavatar.yaml")
        let profile = try #require(loaded, "\(diags)")
        let s = ClipSettings(size: FrameSize(width: 688, height: 368), numClip: 2, inferFrames: 48, sampleSteps: 4, onlineDecode: false,
                             offloadModel: true, fp8: false, seed: 1)
        let fit = CalibrationFit(memoryPoints: [.init(size: "688*368", inferFrames: 48, value: 99)], timePoints: [], startupSeconds: 110,
                                 perClipOfflineGB: 3, onlineDecodeGB: nil, sharing: [:], gpuMemoryGB: 140, probes: 5, oomProbes: 0, seconds: 300,
                                 loadSeconds: 95, residentOffsetGB: 1.25)
        let p = profile.calibrated(by: fit)
        // The structure stays (no points, no per-clip charge); the constant term moves by the measured offset.
        #expect(p.memory.points == profile.memory.points && p.memory.perClipOfflineGB == profile.memory.perClipOfflineGB)
        #expect(abs(p.memory.perJobGB - (profile.memory.perJobGB + 1.25)) < 1e-9)
        let before = Predictor(profile: profile).estimate(s).rawMemoryGB, after = Predictor(profile: p).estimate(s).rawMemoryGB
        #expect(abs(after - before - 1.25) < 1e-9, "\(before) -> \(after)")
        #expect(p.workerLoadSeconds == 95 && p.time.startupSeconds == 110 && profile.workerLoadSeconds == 109)
        // A points model ignores the offset; a profile without a worker ignores the load.
        let t = testProfile().calibrated(by: fit)
        #expect(t.memory.perJobGB == testProfile().memory.perJobGB && t.worker == nil)
    }
}

@Suite struct WarmLearningTests {
    @Test func warmAndColdTimesAreComparedLikeWithLike() {
        func e(_ seconds: Double, warm: Bool, k: Int = 1, wall: Double? = nil) -> HistoryEntry {
            HistoryEntry(gpuModel: "H200 140GB", observation: Observation(bucket: "a", gpuModel: "H200 140GB", peakGB: 20, seconds: seconds, frames: 100, warm: warm),
                         colocated: k, wallSeconds: wall)
        }
        // Cold alone 110 s (a 100 s start-up in it), warm requests alone 10 s; two requests at once took 16 s each:
        // S(2) is 2 x 10 / 16 = 1.25 against the warm requests, not 2 x 110 / 16 against the cold ones.
        let entries = [e(110, warm: false), e(10, warm: true)] + (0..<3).map { _ in e(10, warm: true, k: 2, wall: 16) }
        #expect(Learning.sharing(for: "H200 140GB", from: entries) == [2: 1.25])
        #expect(Learning.observations(for: "H200 140GB", from: entries).filter { $0.0.warm }.count == 4)
    }

    @Test func sharingIsOfTheRenderWhenAStartUpSharesNothing() {
        // Attempts recorded without stretches: one alone, three beside one other, each whole time as given.
        func s2(alone: Double, together: Double, unshared: Double = 0) -> Double? {
            func entry(k: Int = 1, wall: Double? = nil) -> HistoryEntry {
                HistoryEntry(gpuModel: "H200 140GB", observation: Observation(bucket: "a", gpuModel: "H200 140GB", peakGB: 20, seconds: alone, frames: 100),
                             colocated: k, wallSeconds: wall)
            }
            let entries = [entry()] + (0..<3).map { _ in entry(k: 2, wall: together) }
            return Learning.sharing(for: "H200 140GB", from: entries, unshared: unshared)[2]
        }
        // 4 s of start-up and 6 s of render alone; two together took 13 s each: the renders took 9 s against 6, so
        // S(2) = 2 x 6 / 9 = 1.33, where whole times (2 x 10 / 13 = 1.54) credit the start-ups' overlap to sharing.
        #expect(abs(s2(alone: 10, together: 13, unshared: 4)! - 2 * 6.0 / 9) < 1e-6)
        #expect(abs(s2(alone: 10, together: 13)! - 2 * 10.0 / 13) < 1e-6)
        // A start-up as long as the job leaves nothing to compare: whole times.
        #expect(abs(s2(alone: 4, together: 5, unshared: 4)! - 2 * 4.0 / 5) < 1e-6)
        // Never above k.
        #expect(s2(alone: 10, together: 4.5, unshared: 4) == 2)
    }
}
