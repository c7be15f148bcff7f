/// Lower bounds on the makespan of any schedule of a batch, under the planner's model: jobs never split across
/// GPUs and are never paused, a job fits a card only while the memory of what runs there allows it, and k jobs
/// rendering on one card each progress at S(k)/k of their solo speed, after a cold start-up that shares nothing
/// (`Estimate.unsharedSeconds`). A start-up can overlap another job's render for free, so the bounds on a card's
/// throughput count render work only; a job still takes at least its solo time.
extension Planner {
    /// The largest of: the longest job; for every GPU size class (the jobs that fit only cards at least that
    /// large), their render work over those cards' best throughput (the best S(k) for k up to the job cap and up to
    /// how many of the smallest such jobs fit a card), and their whole solo times over those cards' slots (that
    /// many at once, none faster than alone); the pigeonhole bound; and, where at most two of the class's jobs
    /// fit a card at once and there are few of them, the exact two-slot bound (`twoSlotBound`).
    /// On cards of several speeds (`GPU.timeScale`), a card's throughput is its best S(k) over its scale, and the bounds
    /// that take the cards as alike take them all as fast as the fastest, which keeps them bounds.
    public func lowerBound(_ estimates: [Estimate], gpus: [GPU]) -> Double {
        let fastest = gpus.map(\.timeScale).min() ?? 1
        guard !gpus.isEmpty, let longest = estimates.map({ $0.startUpSeconds + $0.renderSeconds * fastest }).max() else { return 0 }
        let sharing = dispatcher.placer.sharing
        var bound = longest
        for size in Set(gpus.map(\.memoryGB)) {
            // Jobs that need more than every GPU smaller than `size` has.
            let smaller = gpus.filter { $0.memoryGB < size }.map(\.memoryGB).max() ?? 0
            let these = estimates.filter { $0.memoryGB > smaller }
            guard let smallest = these.map(\.memoryGB).min() else { continue }
            let cards = gpus.filter { $0.memoryGB >= size }
            let quickest = cards.map(\.timeScale).min() ?? 1
            // How many of these a card holds at once: the cap, or how many of the smallest fit its memory.
            let lanes = cards.map { g in max(1, min(maxJobsPerGPU, smallest > 0 ? Int(g.memoryGB / smallest) : maxJobsPerGPU)) }
            let best = zip(lanes, cards).map { sharing.best(upTo: $0) / $1.timeScale }
            bound = max(bound, these.reduce(0) { $0 + $1.renderSeconds } / best.reduce(0, +))
            // Lanes: no job runs faster than alone, so their solo times, start-ups included, fill at most that many
            // lanes per card.
            bound = max(bound, these.reduce(0) { $0 + $1.startUpSeconds + $1.renderSeconds * quickest } / Double(lanes.reduce(0, +)))
            // Pigeonhole: of the m x G + 1 longest of these jobs, some card runs at least m + 1, whose work takes at
            // least its sum over the best throughput any card reaches. The lightest such group is the m + 1
            // shortest of those m x G + 1.
            let longestFirst = these.map(\.renderSeconds).sorted(by: >)
            let top = best.max() ?? 1
            var m = 1
            while m * cards.count + 1 <= longestFirst.count {
                let n = m * cards.count + 1
                bound = max(bound, longestFirst[(n - m - 1)..<n].reduce(0, +) / top)
                m += 1
            }
            // At most two at once on every card of the class (by the job cap, or because no card holds the three
            // smallest of them), or one (no card holds the two smallest).
            guard these.count > cards.count, these.count <= Planner.twoSlotJobs else { continue }
            let lightest = these.map(\.memoryGB).sorted()
            let holds = { (n: Int) in n <= lightest.count && cards.contains { $0.memoryGB >= lightest.prefix(n).reduce(0, +) } }
            let slots = maxJobsPerGPU <= 1 || !holds(2) ? 1 : (maxJobsPerGPU <= 2 || !holds(3) ? 2 : 3)
            if slots <= 2, let exact = Planner.twoSlotBound(quickest == 1 ? longestFirst : longestFirst.map { $0 * quickest }, cards: cards.count, slots: slots, sharing: sharing, maxJobsPerGPU: maxJobsPerGPU) {
                bound = max(bound, exact)
            }
        }
        return bound
    }

    /// Most jobs `twoSlotBound` takes (its search is exponential in them).
    static let twoSlotJobs = 12
    /// Search nodes it may spend; past this it gives no bound rather than a wrong one.
    static let twoSlotNodes = 200_000

    /// The least makespan any schedule can have for `work` (solo seconds, longest first) on `cards` cards of which
    /// none runs more than `slots` (1 or 2) of these jobs at once, with every other job left out; nil when it does
    /// not apply or the search ran out of budget.
    ///
    /// Why it is a bound. Leaving other jobs out only speeds these up, provided S(k)/k never rises with k (it is
    /// checked). On one card, two at a time means the jobs form two chains (an interval graph with no three
    /// intervals overlapping is 2-colourable), of total work X1 >= X2. While both chains run, each progresses at
    /// s/2 with s = S(2); otherwise at most one runs, at speed 1. If chain i progresses A_i alone and P while
    /// paired, X1 - A1 = X2 - A2 = P, and the card's time is at least A1 + A2 + 2P/s
    /// = X1 - X2 + 2 X2/s + 2 A2 (1 - 1/s) >= X1 + X2 - 2 X2 (1 - 1/s) when s >= 1 (and >= X1 + X2 when s < 1).
    /// So a card given the set J needs at least W(J) - 2 c m(J), with c = max(0, 1 - 1/s) and m(J) the smaller
    /// side of J's most even split in two (one slot: W(J)). The batch needs at least the least, over every way of
    /// dealing the jobs to cards, of the largest card's figure: found by branch and bound (a card's figure never
    /// falls when a job is added, since c <= 1/2).
    static func twoSlotBound(_ work: [Double], cards: Int, slots: Int, sharing: SharingModel, maxJobsPerGPU: Int) -> Double? {
        guard cards > 0, slots <= 2, work.count > cards, work.count <= twoSlotJobs else { return nil }
        // Other jobs on the card may only slow these down.
        for k in 1..<max(maxJobsPerGPU, 2) where sharing.perJobRate(k + 1) > sharing.perJobRate(k) + 1e-12 { return nil }
        let c = slots <= 1 ? 0 : max(0, 1 - 1 / sharing.aggregate(2))  // the caller gives one slot where the cap is 1

        /// The least time a card needs for the jobs in `set` (a bit mask over `work`), computed once per set.
        var memo = [Double](repeating: -1, count: 1 << work.count)
        func card(_ set: Int) -> Double {
            if memo[set] >= 0 { return memo[set] }
            let t = cardTime(set)
            memo[set] = t
            return t
        }
        func cardTime(_ set: Int) -> Double {
            var items: [Double] = []
            for i in work.indices where set & (1 << i) != 0 { items.append(work[i]) }
            let total = items.reduce(0, +)
            guard c > 0, items.count > 1 else { return total }
            // The most even split: the largest subset sum not above half (the first item on one side, for symmetry).
            var evenest = 0.0
            let rest = items.count - 1
            for sub in 0..<(1 << rest) {
                var sum = items[0]
                for i in 0..<rest where sub & (1 << i) != 0 { sum += items[i + 1] }
                let low = min(sum, total - sum)
                if low > evenest { evenest = low }
            }
            return total - 2 * c * evenest
        }

        var best = Double.infinity
        var sets = [Int](repeating: 0, count: cards)
        var times = [Double](repeating: 0, count: cards)
        var nodes = 0
        var exhausted = false
        // Longest first; a job goes onto a card already used or onto the first empty one (empty cards are alike).
        func place(_ j: Int, used: Int, worst: Double) {
            if exhausted { return }
            nodes += 1
            if nodes > twoSlotNodes { exhausted = true; return }
            if j == work.count { best = min(best, worst); return }
            for g in 0..<min(used + 1, cards) {
                let before = (sets[g], times[g])
                sets[g] |= 1 << j
                times[g] = card(sets[g])
                let w = max(worst, times[g])
                if w < best - 1e-9 { place(j + 1, used: max(used, g + 1), worst: w) }
                (sets[g], times[g]) = before
            }
        }
        place(0, used: 0, worst: 0)
        return exhausted || !best.isFinite ? nil : best
    }
}
