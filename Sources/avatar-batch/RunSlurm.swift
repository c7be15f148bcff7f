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

        // In gpu mode Slurm says nothing of GPU memory: a virtual inventory (--gpus 8x80GB) tells it.
        var declared: Double?
        if case let .inventory(entries) = manifest.gpus { declared = entries.map(\.memoryGB).max() }
        let binary = s.binary ?? ((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
        var so: SlurmRunOptions
        let gpus: [GPU]
        do { (so, gpus) = try await SlurmRunOptions.resolve(s, binary: binary, declaredGPUMemoryGB: declared) } catch let e as SlurmError {
            throw fail(e.message, code: e.usage ? 2 : 1)
        } catch { throw fail("\(error)", code: 1) }
        let strat = try strategyOrExit(manifest)
        if so.gres == .gpu && declared == nil {
            FileHandle.standardError.write(Data("note: --gres gpu: Slurm does not say how much memory its GPUs have, so predictions were not checked against them; pass --gpus NxGB to check\n".utf8))
        }
        so.pollSeconds = max(0.2, slurmFlags.pollInterval)
        let statePath = state ?? manifest.defaultStatePath
        if workers == "auto" && manifest.renderer.worker != nil {
            FileHandle.standardError.write(Data("note: the Slurm executor runs one job per attempt; warm workers are local only (docs/slurm.md)\n".utf8))
        }
        try await execute(manifest, jobs, executor: SlurmExecutor(so, gpus: gpus, storePath: statePath, renderer: manifest.renderer), strategy: strat,
                          knowledge: knowledge(manifest, gpus: gpus))
    }
}
