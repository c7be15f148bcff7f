import Manifest

/// The end of a batch: once few jobs are left (at most `tailLimit`), placing them one by one, each where it alone
/// finishes soonest, leaves some cards with more work than others, and the batch waits for the most loaded one.
/// Here the whole tail is assigned together, each card modelled with what runs there: a cold start-up alone, then
/// processor sharing at S(k)/k among the k rendering, at most as many jobs as raise its throughput (S(k) > S(k-1),
/// up to the cap; or do not lower it, for jobs that start up first) and as its memory holds,
/// assigned jobs starting in order as room frees (a higher priority first, then the longest). Longest job first (by
/// priority first) onto the card that would then be done soonest,
/// then moves and swaps while the latest card's finish gets earlier. The jobs the assignment starts now are
/// started; the others wait, and the next round assigns again with what it knows then.
/// Used by `earliest-finish` only.
extension Dispatcher {
    /// At most this many queued jobs are assigned together (the search is quadratic in them).
    static let tailLimit = 64
    /// ... and only while jobs x GPUs stays below this (each job is tried on every GPU).
    static let tailWork = 4_096
    /// Card simulations one assignment may spend (the greedy start always completes; the improvement stops here).
    static let tailBudget = 20_000

    /// The jobs to start now and their GPUs (possibly none), or nil when the tail is too large to assign together
    /// or some job fits no GPU (the one-by-one path then decides, and reports it).
    func tailAssignment(_ queue: [QueuedJob], loads: [GPULoad], now: Double) -> [(jobID: String, gpu: Int)]? {
        let sharing = placer.sharing
        guard placer.strategy.shareOnlyWhenFaster, !queue.isEmpty, queue.count <= Dispatcher.tailLimit,
              queue.count * loads.count <= Dispatcher.tailWork else { return nil }
        // The most jobs a card may hold: up to the cap, while each added job raises the card's throughput. Jobs that
        // start up first (cold) may also join while it merely holds (to within `SharingModel.spread`): a start-up shares
        // nothing, so a job starting up beside others rendering gains its start-up and costs them nothing until it renders too.
        // Cold starts only, as the one-by-one rule (`Placer.coldStarts`): a warm request's fixed part shares nothing
        // either, but a warm batch's cards take company only where it gains.
        let startUps = placer.coldStarts && queue.contains { $0.request.unsharedSeconds > 0 }
        var kmax = 1
        while kmax < placer.maxJobsPerGPU
                && (sharing.aggregate(kmax + 1) > sharing.aggregate(kmax) * (1 + 1e-9)
                    || (startUps && sharing.holds(kmax + 1))) { kmax += 1 }

        struct Card {
            var index: Int
            var capacityGB: Double
            var model: String
            var timeScale: Double                        // the card's `GPU.timeScale`: its renders take this times the predicted
            var running: [(work: Double, gb: Double)]   // what runs there now: remaining solo seconds on this card, memory
            var assigned: [Int]                          // queued jobs given to it, in the order they would start
            var isolatedNow: Bool
        }
        var cards: [Card] = []
        for l in loads {
            let k = l.occupants.count
            let rate = sharing.perJobRate(max(k, 1))
            cards.append(Card(index: l.gpu.index, capacityGB: l.gpu.memoryGB - l.gpu.foreignUsedGB, model: l.gpu.model, timeScale: l.gpu.timeScale,
                              running: l.occupants.map { (max($0.endS - now, 0) * rate, $0.memoryGB) }, assigned: [], isolatedNow: l.isolated))
        }

        /// When the card is done with what runs and what is assigned: each assigned job's start-up alone, then
        /// processor sharing at S(k)/k among the k rendering, at most `kmax` jobs and its memory at once, assigned
        /// jobs starting in order as room frees (an isolated job alone). Also returns how many assigned jobs start at once.
        var spent = 0
        func simulate(_ c: Card) -> (finish: Double, startNow: Int) {
            spent += 1
            var active: [(startUp: Double, left: Double, gb: Double, alone: Bool)] = c.running.map { (0, $0.work, $0.gb, c.isolatedNow) }
            var waiting = c.assigned.map { j in
                let r = queue[j].request
                return (startUp: r.unsharedSeconds, left: (r.seconds - r.unsharedSeconds) * c.timeScale, gb: r.memoryGB, alone: r.isolate)
            }
            var t = 0.0, startNow = 0, first = true
            while true {
                // Admit in order while the next fits.
                while let next = waiting.first {
                    let used = active.reduce(0) { $0 + $1.gb }
                    let blocked = active.contains { $0.alone } || (next.alone && !active.isEmpty)
                    guard !blocked, active.count < kmax, used + next.gb <= c.capacityGB + 1e-9 else { break }
                    active.append(waiting.removeFirst())
                    if first { startNow += 1 }
                }
                first = false
                guard !active.isEmpty else { break }
                let rendering = active.reduce(0) { $0 + ($1.startUp > 1e-9 ? 0 : 1) }
                let rate = sharing.perJobRate(max(rendering, 1))
                let dt = active.map { $0.startUp > 1e-9 ? $0.startUp : $0.left / rate }.min()!
                t += dt
                active = active.map { $0.startUp > 1e-9 ? ($0.startUp - dt, $0.left, $0.gb, $0.alone) : ($0.startUp, $0.left - dt * rate, $0.gb, $0.alone) }
                    .filter { $0.startUp > 1e-9 || $0.left > 1e-9 }
                if active.isEmpty && waiting.isEmpty { break }
            }
            return (t, startNow)
        }
        func allowed(_ j: Int, _ c: Card) -> Bool {
            let r = queue[j].request
            if r.memoryGB > c.capacityGB { return false }
            if let m = r.gpuModel, !c.model.localizedCaseInsensitiveContains(m) { return false }
            return true
        }

        // The order jobs start in on a card, and are assigned in: a higher priority first (a manifest's `priority` holds
        // at the end of a batch too), then the longest.
        func before(_ a: Int, _ b: Int) -> Bool {
            queue[a].priority != queue[b].priority ? queue[a].priority > queue[b].priority : queue[a].request.seconds > queue[b].request.seconds
        }
        // Longest first, each onto the card that would then be done soonest (ties: the smaller card).
        let order = queue.indices.sorted(by: before)
        var times = cards.map { simulate($0).finish }
        for j in order {
            var best: (c: Int, t: Double)?
            for ci in cards.indices where allowed(j, cards[ci]) {
                var c = cards[ci]
                c.assigned.append(j)
                let t = simulate(c).finish
                if best == nil || t < best!.t - 1e-9 || (abs(t - best!.t) <= 1e-9 && c.capacityGB < cards[best!.c].capacityGB) { best = (ci, t) }
            }
            guard let best else { return nil }
            cards[best.c].assigned.append(j)
            times[best.c] = best.t
        }

        // Improve: move one job of the latest card elsewhere, or swap it with a shorter one, while that card's
        // finish gets earlier.
        var where_ = [Int](repeating: 0, count: queue.count)
        for (ci, c) in cards.enumerated() { for j in c.assigned { where_[j] = ci } }
        for _ in 0..<(4 * queue.count) where spent < Dispatcher.tailBudget {
            guard let worst = times.indices.max(by: { times[$0] < times[$1] }) else { break }
            let target = times[worst]
            var improved = false
            search: for j in cards[worst].assigned {
                var from = cards[worst]
                from.assigned.removeAll { $0 == j }
                let tf = simulate(from).finish
                for ci in cards.indices where ci != worst && allowed(j, cards[ci]) {
                    var to = cards[ci]
                    to.assigned.append(j)
                    to.assigned.sort(by: before)
                    let tt = simulate(to).finish
                    if max(tf, tt) < target - 1e-6 {
                        cards[worst] = from; cards[ci] = to; times[worst] = tf; times[ci] = tt; where_[j] = ci
                        improved = true
                        break search
                    }
                }
                for k in queue.indices where where_[k] != worst && queue[k].request.seconds < queue[j].request.seconds && allowed(k, cards[worst]) && allowed(j, cards[where_[k]]) {
                    let ci = where_[k]
                    var a = from, b = cards[ci]
                    b.assigned.removeAll { $0 == k }
                    a.assigned.append(k)
                    b.assigned.append(j)
                    a.assigned.sort(by: before)
                    b.assigned.sort(by: before)
                    let ta = simulate(a).finish, tb = simulate(b).finish
                    if max(ta, tb) < target - 1e-6 {
                        cards[worst] = a; cards[ci] = b; times[worst] = ta; times[ci] = tb; where_[j] = ci; where_[k] = worst
                        improved = true
                        break search
                    }
                }
            }
            if !improved { break }
        }
        // Start what the assignment starts now; the rest wait for the next round, which assigns again.
        var starts: [(jobID: String, gpu: Int)] = []
        for c in cards {
            let n = simulate(c).startNow
            for j in c.assigned.prefix(n) { starts.append((queue[j].request.jobID, c.index)) }
        }
        let rank = Dictionary(uniqueKeysWithValues: queue.enumerated().map { ($1.request.jobID, $0) })
        return starts.sorted { rank[$0.jobID]! < rank[$1.jobID]! }
    }
}
