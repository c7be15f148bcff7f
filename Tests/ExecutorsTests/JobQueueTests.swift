import Executors
import Manifest
import Scheduler
import TestSupport
import Testing

@Suite struct JobQueueTests {
    func entry(_ i: Int, priority: Int = 0, clips: Int = 10) -> JobQueue.Entry {
        let clip = ClipSpec(id: "j\(i)", image: "i.png", audio: "a.wav", prompt: "p", output: "j\(i).mp4", priority: priority,
                            settings: settings(clips: clips))
        return JobQueue.Entry(job: Job(clip: clip, contentKey: "k\(i)"), settings: clip.settings, isolate: false, rung: 0, change: "", order: i)
    }

    /// Priority first, then the longest predicted first, then manifest order: what the dispatcher expects.
    func inDispatchOrder(_ q: JobQueue, _ p: Predictor) -> Bool {
        let keys = q.all.map { e in (e.job.clip.priority, q.estimate(e, p).seconds, e.order) }
        return zip(keys, keys.dropFirst()).allSatisfy { a, b in a.0 != b.0 ? a.0 > b.0 : (a.1 != b.1 ? a.1 > b.1 : a.2 < b.2) }
    }

    @Test func staysInDispatchOrderThroughRemovalsRetriesAndCompaction() {
        let p = Predictor(profile: testProfile())
        let q = JobQueue()
        var rng = SeededGenerator(seed: 7)
        // Appended out of order: three priorities, clip counts from 1 to 40 (so predicted times differ).
        for i in (0..<3000).shuffled(using: &rng) { q.append(entry(i, priority: i % 3, clips: 1 + i % 40)) }
        q.refresh(p)
        #expect(q.count == 3000 && inDispatchOrder(q, p))
        #expect(q.requests(p).first?.request.jobID == q.all.first?.job.id)
        // Start 2,500 of them, from the front and from the middle (backfilled): the holes are skipped, then compacted.
        let ids = q.all.map(\.job.id)
        for id in ids.prefix(2000) + ids.dropFirst(2200).prefix(500) { #expect(q.remove(id) != nil) }
        #expect(q.count == 500 && inDispatchOrder(q, p))
        #expect(Array(q.requests(p).map(\.request.jobID)) == q.all.map(\.job.id))
        #expect(q.entry(ids[2100])?.job.id == ids[2100] && q.entry(ids[0]) == nil)
        // A retry goes back in, and the next refresh puts it where it belongs.
        q.append(entry(9999, priority: 5))
        q.refresh(p)
        #expect(q.all.first?.job.id == "j9999" && q.count == 501 && inDispatchOrder(q, p))
        // The same job appended twice is one entry.
        q.append(entry(9999, priority: 5, clips: 2))
        q.refresh(p)
        #expect(q.count == 501 && q.all.filter { $0.job.id == "j9999" }.count == 1)
        #expect(q.smallestGB(p) == q.all.map { q.estimate($0, p).memoryGB }.min())
    }
}
