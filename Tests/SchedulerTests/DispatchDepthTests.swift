import Manifest
import Scheduler
import TestSupport
import Testing

@Suite struct DispatchDepthTests {
    @Test func smallJobsBehindMoreBigJobsThanTheBaseDepthStillReachIdleSmallCards() {
        // 130 idle 24 GB cards and one busy 80 GB card; at the head of the queue 129 jobs that need the 80 GB card,
        // then one small job. Looking at 128 waiting jobs a round, the small job was never reached and the 24 GB
        // cards stayed idle; at least one waiting job per GPU reaches it.
        let gpus = (0..<130).map { GPU(index: $0, model: "L4", memoryGB: 24) } + [GPU(index: 130, model: "H100", memoryGB: 80)]
        var loads = gpus.map { GPULoad(gpu: $0) }
        loads[130].occupants = [Occupant(jobID: "running", memoryGB: 70, endS: 1000)]
        let big = (0..<129).map { QueuedJob(request: PlacementRequest(jobID: "big\($0)", memoryGB: 30, seconds: 500), priority: 0, order: $0) }
        let small = QueuedJob(request: PlacementRequest(jobID: "small", memoryGB: 10, seconds: 100), priority: 0, order: 200)
        let d = Dispatcher(placer: Placer(strategy: Strategy.table["earliest-finish"]!, maxJobsPerGPU: 2, sharing: SharingModel([:])))
        var before = loads
        let old = d.round(queue: big + [small], loads: &before, now: 0, presorted: true, explain: false, maxWaiting: Dispatcher.waitingPerRound)
        #expect(old.starts.isEmpty, "the base depth reached the small job: this test shows nothing")
        let now = d.round(queue: big + [small], loads: &loads, now: 0, presorted: true, explain: false,
                          maxWaiting: Dispatcher.waitingDepth(gpus: gpus.count))
        #expect(now.starts.map(\.jobID) == ["small"])
        #expect(now.starts.first.map { $0.gpu < 130 } == true)
    }
}
