import Manifest
@testable import Scheduler
import TestSupport
import Testing

@Suite struct DispatchDepthTests {
    @Test func smallJobsBehindMoreBigJobsThanTheBaseDepthStillReachIdleSmallCards() {
        // 130 idle 24 GB cards and one busy 80 GB card; at the head of the queue 129 jobs that need the 80 GB card,
        // then one small job. Looking at 128 waiting jobs a round, the small job was never reached and the 24 GB
        // cards stayed idle; at least one waiting job per GPU reaches it.
        let (gpus, loads, queue) = bigJobsAhead()
        let d = Dispatcher(placer: Placer(strategy: Strategy.table["earliest-finish"]!, maxJobsPerGPU: 2, sharing: SharingModel([:])))
        var after = loads
        let now = d.round(queue: queue, loads: &after, now: 0, presorted: true, explain: false, maxWaiting: Dispatcher.waitingDepth(gpus: gpus.count))
        #expect(now.starts.map(\.jobID) == ["small"])
        #expect(now.starts.first.map { $0.gpu < 130 } == true)
    }

    @Test func jobsNoGPUHasRoomForAreNotCountedAgainstTheDepth() {
        // The same queue with the base depth (128): once the round may make no more reservations (8 a round, 16
        // searches), the big jobs no card has room for are passed over without counting, and the small one starts.
        let (_, loads, queue) = bigJobsAhead()
        let d = Dispatcher(placer: Placer(strategy: Strategy.table["earliest-finish"]!, maxJobsPerGPU: 2, sharing: SharingModel([:])))
        var after = loads
        let round = d.round(queue: queue, loads: &after, now: 0, presorted: true, explain: false, maxWaiting: Dispatcher.waitingPerRound)
        #expect(round.starts.map(\.jobID) == ["small"])
        #expect(round.reservations.count == 1, "only the 80 GB card can hold a big job: \(round.reservations)")
        // Jobs that are looked at and wait still count: a depth of 16 ends the round at the searches' last wait.
        var shallow = loads
        let cut = d.round(queue: queue, loads: &shallow, now: 0, presorted: true, explain: false, maxWaiting: 16)
        #expect(cut.starts.isEmpty)
    }

    @Test(arguments: [1, 2, 3, 4, 5, 6])
    func thePlannersTreeReadsTheQueueAsASequenceDoes(seed: UInt64) {
        // Random busy cards of three sizes and a random queue (some jobs for a named model, some larger than every
        // card): a round over the planner's tree, which passes over jobs in O(log n), decides exactly as a round
        // that reads the jobs one by one, with some of them already started (gone from the tree).
        var rng = SeededGenerator(seed: seed)
        let gpus = (0..<40).map { GPU(index: $0, model: ["L4", "A100", "H200"][$0 % 3], memoryGB: [24, 80, 141][$0 % 3]) }
        var loads = gpus.map { GPULoad(gpu: $0) }
        for i in loads.indices where Bool.random(using: &rng) {
            let n = Int.random(in: 1...3, using: &rng)
            for k in 0..<n where loads[i].freeGB > 12 {
                loads[i].occupants.append(Occupant(jobID: "run\(i)-\(k)", memoryGB: Double.random(in: 6...(loads[i].freeGB / 2), using: &rng),
                                                   endS: Double.random(in: 10...900, using: &rng)))
            }
        }
        var queue = (0..<600).map { n in
            QueuedJob(request: PlacementRequest(jobID: "j\(n)", memoryGB: Double.random(in: 5...150, using: &rng), seconds: Double.random(in: 20...2000, using: &rng),
                                                gpuModel: n % 50 == 7 ? "A100" : nil),
                      priority: Int.random(in: 0...1, using: &rng), order: n)
        }
        queue.sort(by: QueuedJob.dispatchOrder)
        let largest = gpus.map(\.memoryGB).max()!
        var tree = WaitingJobs(queue, largestGB: largest)
        let gone = Set((0..<queue.count).filter { _ in Int.random(in: 0..<4, using: &rng) == 0 })
        for p in gone { tree.remove(at: p) }
        let left = queue.indices.filter { !gone.contains($0) }.map { queue[$0] }
        // (Cold jobs join where S merely holds on every card, or on the 24 GB cards only, `Placer.holdsUpToGB`.)
        for (strategy, holds) in [("earliest-finish", Double.infinity), ("earliest-finish", 24), ("pack", .infinity)] {
            var d = Dispatcher(placer: Placer(strategy: Strategy.table[strategy]!, maxJobsPerGPU: 4, sharing: SharingModel([2: 1.3, 3: 1.32, 4: 1.33]), coldStarts: true))
            d.placer.holdsUpToGB = holds
            for depth in [16, 40, 128] {
                var a = loads, b = loads
                let smallest = left.map(\.request.memoryGB).min()
                let byTree = d.sortedRound(WaitingJobs.Reader(jobs: tree), loads: &a, now: 0, explain: false, maxReservations: 8, maxWaiting: depth,
                                           smallestGB: smallest, queueCount: left.count)
                let bySequence = d.sortedRound(SequenceRoundQueue(left.makeIterator()), loads: &b, now: 0, explain: false, maxReservations: 8,
                                               maxWaiting: depth, smallestGB: smallest, queueCount: left.count)
                #expect(byTree.starts.map(\.jobID) == bySequence.starts.map(\.jobID) && byTree.starts.map(\.gpu) == bySequence.starts.map(\.gpu),
                        "seed \(seed), \(strategy), holds up to \(holds) GB, depth \(depth)")
                #expect(byTree.never.keys.sorted() == bySequence.never.keys.sorted())
                #expect(byTree.reservations.mapValues(\.jobID) == bySequence.reservations.mapValues(\.jobID))
                #expect(a.map { $0.occupants.map(\.jobID) } == b.map { $0.occupants.map(\.jobID) })
                #expect(!byTree.starts.isEmpty || !byTree.reservations.isEmpty, "a round that decides nothing shows nothing")
            }
        }
    }

    @Test func shortJobsDeepInTheQueueBackfillAReservedCardThroughTheTree() {
        // Six cards with a 40 GB job ending at 100-350 s, six with a 60 GB one ending at 2,000 s; 20 jobs of 70 GB wait
        // and reserve eight cards (the first six, then two more). 300 jobs of 30 GB follow, 10-2,000 s long: the four
        // cards left unreserved have 20 GB of room, so only those short enough to end on a reserved card before its
        // reservation may start. Perfect sharing (S(k) = k) so the jobs already there are not slowed by company.
        var rng = SeededGenerator(seed: 11)
        let gpus = (0..<12).map { GPU(index: $0, model: "H100", memoryGB: 80) }
        var loads = gpus.map { GPULoad(gpu: $0) }
        for i in 0..<12 {
            loads[i].occupants = [Occupant(jobID: "run\(i)", memoryGB: i < 6 ? 40 : 60, endS: i < 6 ? 100 + 50 * Double(i) : 2000)]
        }
        var queue = (0..<20).map { QueuedJob(request: PlacementRequest(jobID: "big\($0)", memoryGB: 70, seconds: 5000), priority: 1, order: $0) }
        queue += (0..<300).map { n in
            QueuedJob(request: PlacementRequest(jobID: "s\(n)", memoryGB: 30, seconds: Double.random(in: 10...2000, using: &rng)), priority: 0, order: 20 + n)
        }
        queue.sort(by: QueuedJob.dispatchOrder)
        let tree = WaitingJobs(queue, largestGB: 80)
        let d = Dispatcher(placer: Placer(strategy: Strategy.table["earliest-finish"]!, maxJobsPerGPU: 4, sharing: SharingModel([2: 2, 3: 3, 4: 4])))
        var a = loads, b = loads
        let byTree = d.sortedRound(WaitingJobs.Reader(jobs: tree), loads: &a, now: 0, explain: false, maxReservations: 8, maxWaiting: 128,
                                   smallestGB: 30, queueCount: queue.count)
        let bySequence = d.sortedRound(SequenceRoundQueue(queue.makeIterator()), loads: &b, now: 0, explain: false, maxReservations: 8, maxWaiting: 128,
                                       smallestGB: 30, queueCount: queue.count)
        #expect(byTree.reservations.count == 8)
        #expect(byTree.starts.map(\.jobID) == bySequence.starts.map(\.jobID) && byTree.starts.map(\.gpu) == bySequence.starts.map(\.gpu))
        // Several backfill, each on a reserved card it ends on in time.
        #expect(byTree.starts.count >= 4, "\(byTree.starts)")
        for (id, gpu) in byTree.starts {
            let job = queue.first { $0.request.jobID == id }!
            #expect(gpu < 6 && job.request.seconds <= 100 + 50 * Double(gpu), "\(id) on \(gpu)")
        }
    }

    @Test func aQueueReadOneByOneStopsAfterPassingOverItsLimit() {
        // Reading a queue costs each job passed over: after `passLimit` of them the round ends, where the tree goes on.
        let jobs = (0..<10).map { QueuedJob(request: PlacementRequest(jobID: "j\($0)", memoryGB: $0 == 9 ? 5 : 50, seconds: 100), priority: 0, order: $0) }
        let passing = PassOver(roomGB: 20, reservedRoomGB: 0, reservedSeconds: -.infinity, largestGB: 80)
        var limited = SequenceRoundQueue(jobs.makeIterator(), passLimit: 5)
        #expect(limited.next(passing: passing) == nil)
        var unlimited = SequenceRoundQueue(jobs.makeIterator())
        #expect(unlimited.next(passing: passing)?.request.jobID == "j9")
        var tree = WaitingJobs.Reader(jobs: WaitingJobs(jobs, largestGB: 80))
        #expect(tree.next(passing: passing)?.request.jobID == "j9")
        #expect(Dispatcher.passLimit(.max) == .max && Dispatcher.passLimit(128) == 2048)
    }

    /// 130 idle 24 GB cards and an 80 GB card with 70 GB taken until t = 1000; 129 jobs of 30 GB, then one of 10 GB.
    func bigJobsAhead() -> ([GPU], [GPULoad], [QueuedJob]) {
        let gpus = (0..<130).map { GPU(index: $0, model: "L4", memoryGB: 24) } + [GPU(index: 130, model: "H100", memoryGB: 80)]
        var loads = gpus.map { GPULoad(gpu: $0) }
        loads[130].occupants = [Occupant(jobID: "running", memoryGB: 70, endS: 1000)]
        let big = (0..<129).map { QueuedJob(request: PlacementRequest(jobID: "big\($0)", memoryGB: 30, seconds: 500), priority: 0, order: $0) }
        let small = QueuedJob(request: PlacementRequest(jobID: "small", memoryGB: 10, seconds: 100), priority: 0, order: 200)
        return (gpus, loads, big + [small])
    }
}
