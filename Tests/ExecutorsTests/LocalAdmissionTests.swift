import Executors
import Manifest
import Scheduler
import TestSupport
import Testing

@Suite struct LocalAdmissionTests {
    func entry(_ i: Int, _ size: String, clips: Int) -> JobQueue.Entry {
        let clip = ClipSpec(id: "j\(i)", image: "i.png", audio: "a.wav", prompt: "p", output: "j\(i).mp4", priority: 0,
                            settings: settings(size, clips: clips))
        return JobQueue.Entry(job: Job(clip: clip, contentKey: "k\(i)"), settings: clip.settings, isolate: false, rung: 0, change: "", order: i)
    }

    /// The run's rounds apply the planner's rule: a cold job joins a card where S(k) merely holds (S(3) = 1.355 against
    /// S(2) = 1.35) only on the smallest waiting job's home size. 10.2 GB jobs have a 24 GB card for home, so the 80 GB
    /// card takes two of them at once, not four; with only 25 GB jobs waiting, it is their home and takes three.
    @Test func aColdJobJoinsWhereSharingMerelyHoldsOnlyOnItsHomeSize() {
        var prof = testProfile(sharing: [2: 1.35, 4: 1.36])
        prof.time.startupSeconds = 10
        let predictor = Predictor(profile: prof)
        let gpus = [GPU(index: 0, memoryGB: 24), GPU(index: 1, memoryGB: 80)]
        func admitted(_ size: String, clips: Int) -> [Int] {
            var options = LocalExecutorOptions(gpus: gpus, strategy: Strategy.table["earliest-finish"]!, maxJobsPerGPU: 4, sharing: SharingModel(prof.sharing))
            options.hostRAMGB = 0
            let executor = LocalExecutor(options)
            let queue = JobQueue()
            for i in 0..<100 { queue.append(entry(i, size, clips: clips)) }
            queue.refresh(predictor)
            return executor.admit(queue, predictor: predictor, now: 0).starts.compactMap { $0.placement.gpu?.index }.sorted()
        }
        #expect(admitted("384*256", clips: 2) == [0, 0, 1, 1])
        #expect(admitted("688*368", clips: 50) == [1, 1, 1])
    }
}
