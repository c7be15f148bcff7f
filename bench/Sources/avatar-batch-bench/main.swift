// avatar-batch's benchmarks: wall-clock timings of the core paths, and schedule quality on the simulator.
// Results and the machine they ran on go to docs/benchmarks.md.
import Checkpoint
import Foundation
import Manifest
import Scheduler

let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path
let selected = Set(CommandLine.arguments.dropFirst())
func wanted(_ name: String) -> Bool { selected.isEmpty || selected.contains(name) }

/// Runs `body` `repeats` times and prints min / median / max seconds.
@discardableResult
func measure(_ name: String, repeats: Int, note: String = "", _ body: () throws -> Void) rethrows -> Double {
    var times: [Double] = []
    for _ in 0..<repeats {
        let start = ContinuousClock.now
        try body()
        let d = ContinuousClock.now - start
        times.append(Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18)
    }
    times.sort()
    print(String(format: "%-28@ min %.3f s  median %.3f s  max %.3f s  (%d runs)%@", name as NSString, times[0], times[times.count / 2],
                 times[times.count - 1], repeats, note.isEmpty ? "" : "  " + note))
    return times[times.count / 2]
}

func scratch(_ name: String) -> String {
    let p = NSTemporaryDirectory() + "avatar-batch-bench-\(name)-\(getpid())"
    try? FileManager.default.removeItem(atPath: p)
    try! FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
    return p
}

/// A deterministic generator (SplitMix64), so workloads are the same on every run.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

// MARK: validation of a 10,000-clip manifest, probing off

if wanted("validate") {
    let dir = scratch("validate")
    try! FileManager.default.copyItem(atPath: root + "/manifests/demo-assets", toPath: dir + "/assets")
    var yaml = "version: 1\nname: big\nrenderer: preview\ndefaults: {image: assets/teacher.png, prompt: \"A teacher\", num_clip: auto}\nclips:\n"
    let sizes = ["384*256", "688*368", "704*384"]
    for i in 0..<10_000 {
        yaml += "  - {id: lesson-\(i), audio: assets/lesson-0\(i % 3 + 1).wav, size: \"\(sizes[i % 3])\", seed: \(i)}\n"
    }
    try! yaml.write(toFile: dir + "/big.yaml", atomically: true, encoding: .utf8)
    var options = LoadOptions(rendererSearchPath: [root + "/renderers"])
    options.probe = nil
    measure("validate 10,000 clips", repeats: 5, note: "load + checks + content keys, probing off") {
        let r = ManifestLoader.load(path: dir + "/big.yaml", options: options)
        guard let m = r.manifest else { fatalError("\(r.diagnostics.prefix(3))") }
        var b = JobBuilder()
        let jobs = try! b.jobs(for: m)
        precondition(jobs.count == 10_000)
    }
}

// MARK: the store

func manifestJobs(_ n: Int) -> [ManifestJob] {
    (0..<n).map { ManifestJob(id: "job-\($0)", contentKey: "key-\($0)", settingsJSON: "{\"size\":\"688*368\"}", output: "job-\($0).mp4", priority: 0) }
}
let me = ProcessIdentity(host: "bench", pid: getpid(), startTime: 1)
let settings = ClipSettings(size: FrameSize("688*368")!, numClip: 10, inferFrames: 48, sampleSteps: 4, onlineDecode: false, offloadModel: false, fp8: false, seed: 1)

if wanted("store") {
    let dir = scratch("store")
    let n = 5_000
    var count = 0
    let t = measure("store: 5,000 jobs x 2 transitions", repeats: 3, note: "start (pending->running) + finish (running->succeeded), one transaction each") {
        try? FileManager.default.removeItem(atPath: dir + "/s.sqlite")
        let store = try! Store(path: dir + "/s.sqlite")
        let run = try! store.acquire(me, user: "b", command: "b", manifestPath: "m", manifestDigest: "d", isAlive: { _ in false })
        _ = try! store.sync(manifestJobs(n))
        for i in 0..<n {
            let a = try! store.startAttempt("job-\(i)", runID: run, host: "bench", AttemptStart(settings: settings, change: "", isolated: false, rung: 0, gpu: 0, gpuUUID: nil, logPath: nil))
            try! store.finishAttempt(a, AttemptEnd(classification: .succeeded, exitStatus: 0, jobState: .succeeded))
        }
        count = 2 * n
    }
    print(String(format: "  -> %.0f durable transitions/s (sync included in the time)", Double(count) / t))

    let big = dir + "/big.sqlite"
    do {
        let store = try! Store(path: big)
        _ = try! store.acquire(me, user: "b", command: "b", manifestPath: "m", manifestDigest: "d", isAlive: { _ in false })
        _ = try! store.sync(manifestJobs(100_000))
    }
    let jobs = manifestJobs(100_000)
    measure("store: open + reconcile 100k", repeats: 3, note: "open, take the lock, open attempts, sync 100,000 unchanged jobs, read all jobs") {
        let store = try! Store(path: big)
        _ = try! store.acquire(me, user: "b", command: "b", manifestPath: "m", manifestDigest: "d", isAlive: { _ in false })
        _ = try! store.openAttempts()
        let s = try! store.sync(jobs)
        precondition(s.unchanged == 100_000)
        precondition(try! store.jobs().count == 100_000)
    }
}

// MARK: planning at scale

// The scheduler's benchmarks plan against the profile as it was when their figures were recorded (its published-figure
// calibration: 11-24 GB jobs that pack onto 24 GB cards), so the rows stay comparable; renderers/liveavatar.yaml now
// holds the measured model, under which every job needs an 80 GB card and most of these packings do not arise.
let liveavatar: RendererProfile = {
    let (p, d) = ProfileLoader.load(path: root + "/bench/profiles/liveavatar-published-figures.yaml")
    guard let p else { fatalError("\(d)") }
    return p
}()

func randomJobs(_ n: Int, seed: UInt64, sizes: [String], clips: ClosedRange<Double>, online: Bool? = nil) -> [PlanJob] {
    var rng = SplitMix(state: seed)
    return (0..<n).map { i in
        let size = FrameSize(sizes[Int.random(in: 0..<sizes.count, using: &rng)])!
        // log-uniform clip counts
        let numClip = Int(exp(Double.random(in: log(clips.lowerBound)...log(clips.upperBound), using: &rng)).rounded())
        let s = ClipSettings(size: size, numClip: numClip, inferFrames: 48, sampleSteps: 4, onlineDecode: online ?? (numClip > 100),
                             offloadModel: false, fp8: false, seed: 420)
        return PlanJob(id: "clip-\(i)", settings: s)
    }
}

if wanted("plan") {
    let jobs = randomJobs(Int(ProcessInfo.processInfo.environment["PLAN_JOBS"] ?? "100000")!, seed: 7, sizes: ["384*256", "688*368", "704*384"], clips: 10...1000)
    let gpus = (0..<Int(ProcessInfo.processInfo.environment["PLAN_GPUS"] ?? "1000")!).map { GPU(index: $0, model: "H100", memoryGB: 80) }
    let planner = Planner(predictor: Predictor(profile: liveavatar), strategy: Strategy.table["earliest-finish"]!)
    var plan: Plan?
    measure("plan 100,000 jobs / 1,000 GPUs", repeats: 3) { plan = planner.plan(jobs, gpus: gpus, explain: false) }
    print(String(format: "  -> makespan %.0f s, lower bound %.0f s, ratio %.3f", plan!.makespanS, plan!.lowerBoundS, plan!.ratio))
    // Which job starts when and where, in one figure: a change meant to speed planning up must leave it as it was.
    print(String(format: "  -> %d runs, placement checksum %.4f", plan!.runs.count, plan!.runs.reduce(0.0) { $0 + $1.startS * Double($1.gpu + 1) }))
}

if wanted("mixed") {
    // The liveavatar mix on half 24 GB, half 80 GB cards at two scales, with the dispatcher's reservations per round
    // as shipped and raised: why the makespan / lower bound ratio grows with the batch (docs/benchmarks.md).
    let half = Int(ProcessInfo.processInfo.environment["PLAN_GPUS"] ?? "1000")! / 2
    let gpus = (0..<half).map { GPU(index: $0, model: "L4", memoryGB: 24) } + (0..<half).map { GPU(index: half + $0, model: "H100", memoryGB: 80) }
    let sizes = (ProcessInfo.processInfo.environment["MIXED_JOBS"] ?? "10000,100000").split(separator: ",").compactMap { Int($0) }
    for n in sizes {
        let jobs = randomJobs(n, seed: 7, sizes: ["384*256", "688*368", "704*384"], clips: 10...1000)
        for (reservations, waiting) in [(Dispatcher.reservationsPerRound, Dispatcher.waitingPerRound), (64, Dispatcher.waitingPerRound),
                                         (Dispatcher.reservationsPerRound, Dispatcher.waitingDepth(gpus: gpus.count)),
                                         (Dispatcher.reservationsPerRound, 1_000_000)] {
            var planner = Planner(predictor: Predictor(profile: liveavatar), strategy: Strategy.table["earliest-finish"]!)
            planner.maxReservations = reservations
            planner.maxWaiting = waiting
            let started = Date()
            let plan = planner.plan(jobs, gpus: gpus, explain: false)
            let big = Set(plan.runs.filter { planner.predictor.estimate(jobs[Int($0.jobID.dropFirst(5))!].settings).memoryGB > 24 }.map(\.jobID))
            let smallOnBig = plan.runs.filter { !big.contains($0.jobID) && $0.gpu >= half }.map { $0.endS - $0.startS }.reduce(0, +)
            let lastBigEnd = plan.runs.filter { big.contains($0.jobID) }.map(\.endS).max() ?? 0
            let lastSmallEnd = plan.runs.filter { !big.contains($0.jobID) }.map(\.endS).max() ?? 0
            print(String(format: "%7d jobs, %4d reservations and %7d waiting jobs looked at per round: ratio %.3f (makespan %.0f s, bound %.0f s); last 80GB-only job ends %.0f s, last small %.0f s; small jobs' time on 80 GB cards %.0f card-s; %.1f s",
                         n, reservations, waiting, plan.ratio, plan.makespanS, plan.lowerBoundS, lastBigEnd, lastSmallEnd, smallOnBig, Date().timeIntervalSince(started)))
        }
    }
}

if wanted("compare") {
    Compare.run(profile: liveavatar)
}

// MARK: replay of recorded GPU runs (only when asked: `avatar-batch-bench replay`)

if selected.contains("replay") { Replay.run(root: root) }
