import ArgumentParser
import Executors
import Foundation
import Manifest
import Scheduler

/// `run --executor slurm` options; each overrides the manifest's `slurm:` key of the same name.
struct SlurmFlags: ParsableArguments {
    @Option(help: "Slurm partition.")
    var partition: String?

    @Option(help: "Slurm account.")
    var account: String?

    @Option(help: "Slurm QoS.")
    var qos: String?

    @Option(help: "A hard time limit for every Slurm job (90m, 2h); default: each job's own timeout plus a minute.")
    var timeLimit: String?

    @Option(name: .customLong("sbatch-arg"), help: ArgumentHelp("An extra sbatch option, one argv entry (repeat for more), e.g. --sbatch-arg=--mem=32G.", valueName: "OPTION"))
    var sbatchArgs: [String] = []

    @Option(help: "At most this many Slurm jobs queued or running at once (default 64).")
    var maxInFlight: Int?

    @Option(help: "shard (--gres=shard:N, N = predicted GB), gpu (--gres=gpu:1) or auto (shard where every GPU node has shards).")
    var gres: String?

    @Option(help: "GB of GPU memory one shard stands for (default 1).")
    var gbPerShard: Double?

    @Option(help: "The avatar-batch binary the compute nodes run, on shared storage (default: this binary).")
    var slurmBinary: String?

    @Option(help: "Seconds between squeue polls.")
    var pollInterval: Double = 5
}

extension Run {
    func runSlurm(_ manifest: Manifest, _ jobs: [Job]) async throws {
        var s = manifest.slurm
        let f = slurmFlags
        if let v = f.partition { s.partition = v }
        if let v = f.account { s.account = v }
        if let v = f.qos { s.qos = v }
        if let v = f.timeLimit {
            guard let secs = parseDuration(v), secs >= 60 else { throw fail("--time-limit \(v) is not a duration of at least a minute (90m, 2h)") }
            s.timeLimitSeconds = secs
        }
        s.sbatchArgs += f.sbatchArgs
        if let v = f.maxInFlight {
            guard v >= 1 else { throw fail("--max-in-flight must be at least 1") }
            s.maxInFlight = v
        }
        if let v = f.gres {
            guard let g = SlurmGres(rawValue: v) else { throw fail("--gres must be auto, shard or gpu, not \(v)") }
            s.gres = g
        }
        if let v = f.gbPerShard {
            guard v > 0 else { throw fail("--gb-per-shard must be positive") }
            s.gbPerShard = v
        }
        if let v = f.slurmBinary { s.binary = URL(fileURLWithPath: v).standardizedFileURL.path }

        let client = SlurmClient()
        guard await client.ping() else {
            throw fail("the Slurm controller does not answer (scontrol ping); is this a Slurm submit host?", code: 1)
        }
        let nodes: [SlurmNode]
        do { nodes = try await client.gpuNodes(partition: s.partition) } catch { throw fail("\(error)", code: 1) }
        guard !nodes.isEmpty else {
            throw fail("Slurm lists no node with GPUs\(s.partition.map { " in partition \($0)" } ?? ""); check `scontrol show node` and gres.conf", code: 1)
        }
        var gres = s.gres
        if gres == .auto { gres = nodes.allSatisfy { $0.shards > 0 } ? .shard : .gpu }
        if gres == .shard, let n = nodes.first(where: { $0.shards == 0 }) {
            throw fail("--gres shard: node \(n.name) has GPUs but no shards; define Name=shard in its gres.conf or use --gres gpu")
        }
        let maxShards = nodes.map(\.shardsPerGPU).max() ?? 0
        // In gpu mode Slurm says nothing of GPU memory: a virtual inventory (--gpus 8x80GB) tells it.
        var declared: Double?
        if case let .inventory(entries) = manifest.gpus { declared = entries.map(\.memoryGB).max() }
        let gpus = SlurmRunOptions.gpus(nodes, gres: gres, gbPerShard: s.gbPerShard, gpuMemoryGB: declared)

        let strat: Scheduler.Strategy
        do { strat = try Scheduler.Strategy.named(strategy ?? manifest.strategy) } catch { throw fail("\(error)") }
        let binary = s.binary ?? ((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
        let so0 = SlurmRunOptions(settings: s, gres: gres, maxShardsPerGPU: maxShards, maxInFlight: s.maxInFlight ?? 64, binary: binary)

        // A job Slurm would accept and leave pending forever is refused before anything is submitted.
        let planner = Planner(predictor: Predictor(profile: manifest.renderer), strategy: strat, maxJobsPerGPU: maxJobsPerGPU)
        let unplaceable = jobs.compactMap { j -> String? in
            let e = planner.predictor.estimate(j.settings)
            if gres == .shard {
                let shards = so0.shards(forGB: e.memoryGB, isolate: false)
                guard shards > maxShards else { return nil }
                let hint = planner.suggestFit(PlanJob(id: j.id, settings: j.settings), gpus: gpus).map { "; \($0)" } ?? ""
                return "\(j.clip.location): error: clip \(j.id) needs \(String(format: "%.1f", e.memoryGB)) GB = \(shards) shards; the largest GPU has \(maxShards)\(hint)"
            }
            guard let declared, e.memoryGB > declared else { return nil }
            return "\(j.clip.location): error: clip \(j.id) needs \(String(format: "%.1f", e.memoryGB)) GB, more than the declared \(String(format: "%.0f", declared)) GB GPUs"
        }
        if !unplaceable.isEmpty {
            for u in unplaceable { FileHandle.standardError.write(Data("\(u)\n".utf8)) }
            throw fail("\(unplaceable.count) clip(s) fit no GPU of the cluster; nothing was submitted")
        }
        if gres == .gpu && declared == nil {
            FileHandle.standardError.write(Data("note: --gres gpu: Slurm does not say how much memory its GPUs have, so predictions were not checked against them; pass --gpus NxGB to check\n".utf8))
        }
        var so = so0
        so.pollSeconds = max(0.2, slurmFlags.pollInterval)
        var runOptions = RunOptions(gpus: gpus, strategy: strat, maxFailures: maxFailures)
        runOptions.slurm = so
        try await execute(manifest, jobs, runOptions)
    }
}
