import Manifest
import Scheduler
import TestSupport
import Testing

/// The lower bound must hold for every schedule, or the ratios in docs/benchmarks.md mean nothing. Checked against
/// the best schedule an exhaustive search finds on small batches.
@Suite struct LowerBoundTests {
    /// The best makespan of `work` on `cards` cards, at most two jobs at once per card (k jobs each at S(k)/k):
    /// every way of dealing the jobs to cards, every start order on each card, a job starting when a slot frees.
    func bestSchedule(_ work: [Double], cards: Int, s2: Double) -> Double {
        func card(_ order: [Double]) -> Double {
            var active: [Double] = [], waiting = order, t = 0.0
            while !waiting.isEmpty || !active.isEmpty {
                while !waiting.isEmpty && active.count < 2 { active.append(waiting.removeFirst()) }
                let rate = active.count == 2 ? s2 / 2 : 1
                let step = active.min()!
                t += step / rate
                active = active.map { $0 - step }.filter { $0 > 1e-9 }
            }
            return t
        }
        func orders(_ xs: [Double]) -> [[Double]] {
            guard xs.count > 1 else { return [xs] }
            return xs.indices.flatMap { i in orders(Array(xs[..<i] + xs[(i + 1)...])).map { [xs[i]] + $0 } }
        }
        func bestCard(_ xs: [Double]) -> Double { orders(xs).map(card).min() ?? 0 }
        var best = Double.infinity
        var deal = [Int](repeating: 0, count: work.count)
        func go(_ j: Int) {
            if j == work.count {
                let t = (0..<cards).map { c in bestCard(work.indices.filter { deal[$0] == c }.map { work[$0] }) }.max()!
                best = min(best, t)
                return
            }
            for c in 0..<cards { deal[j] = c; go(j + 1) }
        }
        go(0)
        return best
    }

    @Test(arguments: 1...12 as ClosedRange<UInt64>)
    func twoAtATimeBoundIsTheBestSchedule(seed: UInt64) {
        // 688*368 with online decode: 21 GB each, so a 48 GB card holds two and never three.
        var rng = SeededGenerator(seed: seed)
        let n = Int.random(in: 3...6, using: &rng)
        let cards = Int.random(in: 1...2, using: &rng)
        let s2 = [1.0, 1.2, 1.35, 1.8][Int.random(in: 0...3, using: &rng)]
        let jobs = (0..<n).map { PlanJob(id: "j\($0)", settings: settings("688*368", clips: Int.random(in: 5...60, using: &rng), online: true)) }
        let planner = Planner(predictor: Predictor(profile: testProfile(sharing: [2: s2, 4: s2 + 0.01])), strategy: Strategy.table["earliest-finish"]!)
        let gpus = (0..<cards).map { GPU(index: $0, memoryGB: 48) }
        let plan = planner.plan(jobs, gpus: gpus)
        let best = bestSchedule(jobs.map { plan.estimates[$0.id]!.seconds }, cards: cards, s2: s2)
        // Every job is in the class, so the bound is the best schedule itself: never above it (it would not be a
        // bound), and here not below it either.
        #expect(abs(plan.lowerBoundS - best) <= 1e-6 * best, "seed \(seed): bound \(plan.lowerBoundS), best \(best)")
        #expect(plan.makespanS >= best - 1e-6 * best)
    }

    @Test(arguments: 1...16 as ClosedRange<UInt64>)
    func startUpsThatShareNothingKeepThePlanAboveTheBound(seed: UInt64) {
        // With a cold start-up, a planned schedule can beat the whole-attempt work bound (start-ups overlap renders
        // for free): the bound counts render work only, so no plan may come in under it.
        var rng = SeededGenerator(seed: seed)
        var prof = testProfile(sharing: [2: [1.2, 1.5, 1.9][Int.random(in: 0...2, using: &rng)], 4: 2.2])
        prof.time.startupSeconds = Double.random(in: 1...8, using: &rng)
        let jobs = (0..<Int.random(in: 4...20, using: &rng)).map {
            PlanJob(id: "j\($0)", settings: settings(Bool.random(using: &rng) ? "384*256" : "688*368", clips: Int.random(in: 1...20, using: &rng),
                                                   online: Bool.random(using: &rng)))
        }
        // Cards of several speeds too (`GPU.timeScale`): the bound takes each at its own.
        let gpus = (0..<Int.random(in: 1...3, using: &rng)).map {
            GPU(index: $0, memoryGB: [24.0, 48, 80][Int.random(in: 0...2, using: &rng)], timeScale: [1, 1, 0.6, 1.7, 3][Int.random(in: 0...4, using: &rng)])
        }
        for strategy in ["earliest-finish", "pack"] {
            let plan = Planner(predictor: Predictor(profile: prof), strategy: Strategy.table[strategy]!).plan(jobs, gpus: gpus)
            #expect(plan.makespanS >= plan.lowerBoundS - 1e-6, "\(strategy): makespan \(plan.makespanS) under the bound \(plan.lowerBoundS)")
        }
    }

    @Test func smallJobsBesideTheClassDoNotBreakTheBound() {
        // Three 21 GB jobs that fit only the 48 GB card, and small 10 GB jobs for the 12 GB cards (and the big one).
        var jobs = [30, 25, 20].enumerated().map { PlanJob(id: "big\($0.offset)", settings: settings("688*368", clips: $0.element, online: true)) }
        jobs += (0..<6).map { PlanJob(id: "s\($0)", settings: settings("384*256", clips: 5, online: true)) }
        let planner = Planner(predictor: Predictor(profile: testProfile(sharing: [2: 1.35, 4: 1.36])), strategy: Strategy.table["earliest-finish"]!)
        let gpus = [GPU(index: 0, memoryGB: 12), GPU(index: 1, memoryGB: 12), GPU(index: 2, memoryGB: 48)]
        let plan = planner.plan(jobs, gpus: gpus)
        let bigs = jobs.prefix(3).map { plan.estimates[$0.id]!.seconds }
        let best = bestSchedule(bigs, cards: 1, s2: 1.35)
        #expect(plan.unplaceable.isEmpty)
        #expect(abs(plan.lowerBoundS - best) <= 1e-6 * best)
        #expect(plan.makespanS >= plan.lowerBoundS - 1e-6)
        // Tighter than the work over throughput and the pigeonhole bound: (30 + 25 + 20) x 48 x 10 ms x (688*368 / 384*256) / 1.35.
        #expect(plan.lowerBoundS > bigs.reduce(0, +) / 1.35 * 1.05)
    }

    @Test func noBoundFromTheSearchWhenThreeFit() {
        // On 80 GB cards three 21 GB jobs fit at once: the two-slot argument does not hold and must not be used.
        let jobs = [40, 30, 30, 20].enumerated().map { PlanJob(id: "j\($0.offset)", settings: settings("688*368", clips: $0.element, online: true)) }
        let planner = Planner(predictor: Predictor(profile: testProfile(sharing: [2: 1.35, 3: 1.6])), strategy: Strategy.table["earliest-finish"]!)
        let plan = planner.plan(jobs, gpus: [GPU(index: 0, memoryGB: 80)])
        let work = jobs.map { plan.estimates[$0.id]!.seconds }
        // Work over the best throughput (S(3) = 1.6), as before.
        #expect(abs(plan.lowerBoundS - work.reduce(0, +) / 1.6) <= 1e-6 * plan.lowerBoundS)
    }
}
