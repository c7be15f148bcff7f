import Foundation

/// How GPU memory is requested from Slurm.
public enum SlurmGres: String, Sendable, Hashable, Codable, CaseIterable {
    /// `shard` where every GPU node defines shards, else `gpu`.
    case auto
    /// `--gres=shard:N`, N = predicted GB / gb_per_shard: several jobs share a GPU, Slurm places them.
    case shard
    /// `--gres=gpu:1`: one job per GPU.
    case gpu
}

/// The manifest's `slurm:` section: what `run --executor slurm` passes to sbatch. Flags override each key.
public struct SlurmSettings: Sendable, Hashable, Codable {
    public var partition: String?
    public var account: String?
    public var qos: String?
    /// A hard limit for every job (seconds); by default each job gets its own timeout plus a margin.
    public var timeLimitSeconds: Double?
    /// Extra sbatch options, each one argv entry (e.g. `--constraint=a100`, `--mem=32G`).
    public var sbatchArgs: [String] = []
    /// At most this many Slurm jobs queued or running at once.
    public var maxInFlight: Int?
    public var gres: SlurmGres = .auto
    /// How much GPU memory one shard stands for (GB). 1 when shards are configured as GB.
    public var gbPerShard: Double = 1
    /// The avatar-batch binary the compute nodes run (on shared storage); default: this binary.
    public var binary: String?

    public init() {}
}

/// Seconds from `90`, `90s`, `15m`, `2h` or `1h30m` (as manifests write durations); nil when it is not one.
public func parseDuration(_ text: String) -> Double? { FieldReader.parseDuration(text) }
