import Manifest
import Scheduler
import TestSupport
import Testing

@Suite struct PlacementTests {
    let gpu24 = GPU(index: 0, model: "RTX 4090", memoryGB: 24)
    let gpu80 = GPU(index: 1, model: "H100", memoryGB: 80)

    @Test func memoryFitGivesFiguresAndTellsNotNowFromNever() {
        let f = MemoryFit()
        let big = PlacementRequest(jobID: "big", memoryGB: 30, seconds: 1)
        let never = f.check(big, GPULoad(gpu: gpu24))
        #expect(never.map(\.detail) == ["needs 30.0 GB, GPU 0 (RTX 4090) has 24.0 GB"])
        #expect(never.allSatisfy { $0.permanent })
        let busy = GPULoad(gpu: gpu24, occupants: [Occupant(jobID: "x", memoryGB: 20, endS: 5)])
        let wait = f.check(PlacementRequest(jobID: "s", memoryGB: 10, seconds: 1), busy)
        #expect(wait.map(\.detail) == ["needs 10.0 GB, GPU 0 has 4.0 GB free (20.0 GB reserved by 1 running)"])
        #expect(!wait[0].permanent)
    }

    @Test func foreignMemoryCounts() {
        var g = gpu24
        g.foreignUsedGB = 6
        let r = MemoryFit().check(PlacementRequest(jobID: "j", memoryGB: 20, seconds: 1), GPULoad(gpu: g))
        #expect(r.map(\.detail) == ["needs 20.0 GB, GPU 0 has 18.0 GB after 6.0 GB used by other processes"])
        // Other processes come and go: that is "not now", never "never".
        #expect(r.allSatisfy { !$0.permanent })
    }

    @Test func capIsolationAndModel() {
        let load = GPULoad(gpu: gpu80, occupants: [Occupant(jobID: "a", memoryGB: 1, endS: 1), Occupant(jobID: "b", memoryGB: 1, endS: 1)])
        #expect(JobCap(limit: 2).check(PlacementRequest(jobID: "c", memoryGB: 1, seconds: 1), load).count == 1)
        #expect(Isolation().check(PlacementRequest(jobID: "c", memoryGB: 1, seconds: 1, isolate: true), load).count == 1)
        #expect(ModelConstraint().check(PlacementRequest(jobID: "c", memoryGB: 1, seconds: 1, gpuModel: "A100"), load).first?.permanent == true)
        #expect(ModelConstraint().check(PlacementRequest(jobID: "c", memoryGB: 1, seconds: 1, gpuModel: "h100"), load).isEmpty)
    }

    @Test func bestFitScore() {
        // 24 GB GPU, empty, job 18 GB: free after = 6, score = 100 x (1 - 6/24) = 75.
        #expect(BestFit().score(PlacementRequest(jobID: "j", memoryGB: 18, seconds: 1), GPULoad(gpu: gpu24), sharing: SharingModel([:])) == 75)
        // 80 GB GPU: free after = 62, score = 100 x (1 - 62/80) = 22.5; the 24 GB card wins.
        #expect(abs(BestFit().score(PlacementRequest(jobID: "j", memoryGB: 18, seconds: 1), GPULoad(gpu: gpu80), sharing: SharingModel([:])) - 22.5) < 1e-9)
    }

    @Test func sharingModelInterpolates() {
        let s = SharingModel([2: 1.35, 4: 1.36])
        #expect(s.aggregate(1) == 1)
        #expect(s.aggregate(2) == 1.35)
        #expect(abs(s.aggregate(3) - 1.355) < 1e-12)
        #expect(s.aggregate(8) == 1.36)
        // Each of 2 jobs runs at 1.35 / 2 = 0.675 of solo speed.
        #expect(s.perJobRate(2) == 0.675)
        #expect(s.best(upTo: 4) == 1.36)
    }

    @Test func unknownStrategyListsKnownOnes() {
        #expect(throws: SchedulerError.self) { try Strategy.named("fastest") }
        do { _ = try Strategy.named("fastest") } catch {
            #expect("\(error)" == #"unknown strategy "fastest"; use one of earliest-finish, pack, spread"#)
        }
    }

    @Test func bigJobsGoWhereOnlyTheyFit() {
        let placer = Placer(strategy: Strategy.table["earliest-finish"]!, maxJobsPerGPU: 4, sharing: SharingModel([:]))
        let loads = [GPULoad(gpu: gpu24), GPULoad(gpu: gpu80)]
        guard case let .place(g) = placer.decide(PlacementRequest(jobID: "s", memoryGB: 10, seconds: 1), loads: loads) else {
            Issue.record("small job not placed"); return
        }
        #expect(g == 0)  // best-fit tiebreak keeps the 80 GB card for big jobs
        guard case let .place(g2) = placer.decide(PlacementRequest(jobID: "b", memoryGB: 60, seconds: 1), loads: loads) else {
            Issue.record("big job not placed"); return
        }
        #expect(g2 == 1)
        guard case .never = placer.decide(PlacementRequest(jobID: "huge", memoryGB: 100, seconds: 1), loads: loads) else {
            Issue.record("oversized job not refused"); return
        }
    }

    /// The placer's fast path must accept exactly what the filters accept, over many random loads.
    @Test func fastPathAgreesWithTheFilters() {
        var rng = SeededGenerator(seed: 20261130)  // replayable: a failure names a load that the same seed reproduces
        let placer = Placer(strategy: Strategy.table["pack"]!, maxJobsPerGPU: 3, sharing: SharingModel([:]))
        for _ in 0..<5000 {
            let gpu = GPU(index: 0, model: Bool.random(using: &rng) ? "H100" : "A100", memoryGB: [24, 48, 80].randomElement(using: &rng)!,
                          foreignUsedGB: Double.random(in: 0...10, using: &rng))
            let occupants = (0..<Int.random(in: 0...4, using: &rng)).map { Occupant(jobID: "o\($0)", memoryGB: Double.random(in: 1...30, using: &rng), endS: 1) }
            let load = GPULoad(gpu: gpu, occupants: occupants, isolated: Bool.random(using: &rng) && !occupants.isEmpty)
            let request = PlacementRequest(jobID: "j", memoryGB: Double.random(in: 1...90, using: &rng), seconds: 1, isolate: Bool.random(using: &rng),
                                           gpuModel: [nil, "h100", "A100", "V100"].randomElement(using: &rng)!)
            #expect(placer.fastPathPasses(request, load) == placer.filtersPass(request, load), "\(request) on \(load)")
        }
    }
}
