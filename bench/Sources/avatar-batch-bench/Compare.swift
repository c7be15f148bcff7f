import Foundation
import Manifest
import Scheduler

/// Schedule quality on the simulator: avatar-batch's plan against the baselines people use today, on the same
/// jobs, predictions and sharing model.
enum Compare {
    struct Outcome {
        var makespan: Double
        var lost: Int  // jobs that never completed (OOM on a card too small, with no retry)
    }

    /// A serial loop, one job at a time, on the first GPU.
    static func serial(_ jobs: [(Estimate, String)], gpus: [GPU]) -> Outcome {
        var t = 0.0, lost = 0
        for (e, _) in jobs {
            if e.memoryGB > gpus[0].memoryGB { lost += 1; t += startupWaste } else { t += e.seconds }
        }
        return Outcome(makespan: t, lost: lost)
    }

    /// GNU parallel's slot trick: one job per GPU, manifest order, no memory awareness; a job on a card too small
    /// dies of OOM after starting up.
    static func slots(_ jobs: [(Estimate, String)], gpus: [GPU]) -> Outcome {
        var free = gpus.map { _ in 0.0 }
        var lost = 0
        for (e, _) in jobs {
            let i = free.indices.min { free[$0] < free[$1] }!
            if e.memoryGB > gpus[i].memoryGB { lost += 1; free[i] += startupWaste } else { free[i] += e.seconds }
        }
        return Outcome(makespan: free.max() ?? 0, lost: lost)
    }

    /// First-fit FIFO: manifest order, the head job goes on the first GPU where its predicted memory fits now
    /// (sharing as memory allows, up to the cap), else everything waits for the next job to end. The planner's model:
    /// a job's start-up runs alone, its render shares the card with the others rendering.
    static func firstFitFIFO(_ jobs: [(Estimate, String)], gpus: [GPU], sharing: SharingModel, cap: Int) -> Outcome {
        struct Run { var gpu: Int; var startUp: Double; var left: Double; var mem: Double }
        var running: [Run] = []
        var queue = jobs.filter { j in gpus.contains { $0.memoryGB >= j.0.memoryGB } }
        let lost = jobs.count - queue.count
        var now = 0.0
        while !queue.isEmpty || !running.isEmpty {
            while let head = queue.first {
                let fit = gpus.indices.first { g in
                    let on = running.filter { $0.gpu == g }
                    return on.count < cap && gpus[g].memoryGB - on.reduce(0) { $0 + $1.mem } >= head.0.memoryGB
                }
                guard let g = fit else { break }
                running.append(Run(gpu: g, startUp: head.0.startUpSeconds, left: head.0.renderSeconds, mem: head.0.memoryGB))
                queue.removeFirst()
            }
            let counts = Dictionary(grouping: running.filter { $0.startUp <= 1e-9 }, by: \.gpu).mapValues(\.count)
            let rate = running.map { $0.startUp > 1e-9 ? 1 : sharing.perJobRate(counts[$0.gpu]!) }
            let dt = zip(running, rate).map { $0.startUp > 1e-9 ? $0.startUp : $0.left / $1 }.min()!
            now += dt
            for i in running.indices {
                if running[i].startUp > 1e-9 { running[i].startUp -= dt } else { running[i].left -= dt * rate[i] }
            }
            running.removeAll { $0.startUp <= 1e-9 && $0.left <= 1e-9 }
        }
        return Outcome(makespan: now, lost: lost)
    }

    static let startupWaste = 90.0  // a job that dies of OOM wastes at least its start-up

    static func run(profile: RendererProfile) {
        let workloads: [(String, [PlanJob])] = [
            ("course week (200 clips)", randomJobs(200, seed: 1, sizes: ["384*256", "688*368", "704*384"], clips: 10...1000)),
            ("CI sample set (20 short)", randomJobs(20, seed: 2, sizes: ["384*256"], clips: 2...10)),
            ("long tail (100 clips)", randomJobs(100, seed: 3, sizes: ["688*368"], clips: 10...50) + randomJobs(5, seed: 4, sizes: ["704*384"], clips: 1000...3000).map {
                var j = $0; j.id = "long-" + j.id; return j
            }),
        ]
        let inventories: [(String, [GPU])] = [
            ("5x24GB", GPU.inventory([GPUInventoryEntry(count: 5, memoryGB: 24)])),
            ("8x80GB", GPU.inventory([GPUInventoryEntry(count: 8, memoryGB: 80)])),
            ("4x24GB+2x80GB", GPU.inventory([GPUInventoryEntry(count: 4, memoryGB: 24), GPUInventoryEntry(count: 2, memoryGB: 80)])),
        ]
        let predictor = Predictor(profile: profile)
        let sharing = SharingModel(profile.sharing)
        print("\nschedule quality (makespan / lower bound; lost = jobs that die of OOM and are never done)")
        print("workload                    GPUs            avatar-batch        serial loop          GNU parallel slots   first-fit FIFO")
        for (wname, jobs) in workloads {
            for (iname, gpus) in inventories {
                let planner = Planner(predictor: predictor, strategy: Strategy.table["earliest-finish"]!)
                let plan = planner.plan(jobs, gpus: gpus)
                let lb = plan.lowerBoundS
                // COMPARE_DETAIL=<workload prefix> COMPARE_GPUS=<inventory>: that row's plan, one line per job.
                if let d = ProcessInfo.processInfo.environment["COMPARE_DETAIL"], wname.hasPrefix(d), iname == ProcessInfo.processInfo.environment["COMPARE_GPUS"] {
                    for r in plan.runs.sorted(by: { ($0.gpu, $0.startS) < ($1.gpu, $1.startS) }) {
                        print(String(format: "  gpu %d %@ %.0f-%.0f %.1fGB work %.0f", r.gpu, r.jobID as NSString, r.startS, r.endS, r.memoryGB, plan.estimates[r.jobID]!.seconds))
                    }
                    print("  makespan", plan.makespanS, "lb", lb)
                }
                let est = jobs.map { (predictor.estimate($0.settings), $0.id) }
                let s = serial(est, gpus: gpus), p = slots(est, gpus: gpus)
                let f = firstFitFIFO(est, gpus: gpus, sharing: sharing, cap: profile.maxJobsPerGPU)
                func cell(_ o: Outcome) -> String { String(format: "%5.2f", o.makespan / lb) + (o.lost > 0 ? " (\(o.lost) lost)" : "") }
                let ours = String(format: "%5.2f", plan.ratio) + (plan.unplaceable.isEmpty ? "" : " (\(plan.unplaceable.count) unplaceable)")
                print(String(format: "%-27@ %-15@ %-19@ %-20@ %-20@ %@", wname as NSString, iname as NSString, ours as NSString,
                             cell(s) as NSString, cell(p) as NSString, cell(f) as NSString))
            }
        }
    }
}
