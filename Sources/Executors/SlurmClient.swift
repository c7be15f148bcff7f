import Foundation
import Manifest
import Subprocess

/// One node as `scontrol show node -o` describes it.
public struct SlurmNode: Sendable, Hashable {
    public var name: String
    public var state: String
    public var partitions: [String]
    public var gpus: Int
    /// Shards on the node (all GPUs together).
    public var shards: Int
    /// The GPU type from `gpu:TYPE:N`, when the cluster names one.
    public var gpuType: String?

    /// Shards of one GPU (Slurm spreads a node's shards evenly over its GPUs unless gres.conf says otherwise).
    public var shardsPerGPU: Int { gpus > 0 ? shards / gpus : 0 }
}

/// A Slurm job's state as squeue, scontrol or sacct report it.
public struct SlurmJobStatus: Sendable, Hashable {
    public var id: String
    /// PENDING, RUNNING, COMPLETED, FAILED, TIMEOUT, CANCELLED, OUT_OF_MEMORY, NODE_FAIL, PREEMPTED, ...
    public var state: String
    public var reason: String
    public var nodes: String
    /// `exit:signal` (sacct and scontrol), when known.
    public var exitCode: String?

    public init(id: String, state: String, reason: String, nodes: String, exitCode: String? = nil) {
        self.id = id
        self.state = state
        self.reason = reason
        self.nodes = nodes
        self.exitCode = exitCode
    }

    public var isFinished: Bool { !SlurmJobStatus.liveStates.contains(state) }

    static let liveStates: Set<String> = ["PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_HOLD",
                                          "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD", "SPECIAL_EXIT"]
}

/// Errors talking to Slurm.
public struct SlurmError: Error, CustomStringConvertible, Sendable {
    public var message: String
    /// The user's flags or manifest are at fault (exit 2), not the cluster (exit 1).
    public var usage: Bool
    public init(_ message: String, usage: Bool = false) {
        self.message = message
        self.usage = usage
    }
    public var description: String { message }
}

/// The Slurm commands avatar-batch uses, always with argv arrays. Live state comes from squeue (sacct lags by
/// seconds); sacct is asked only for jobs squeue has forgotten (older than MinJobAge).
public struct SlurmClient: Sendable {
    /// Where the Slurm commands live (default: found on PATH).
    public var binDir: String?

    public init(binDir: String? = ProcessInfo.processInfo.environment["AVATAR_BATCH_SLURM_BIN"]) {
        self.binDir = binDir
    }

    func executable(_ name: String) -> Executable {
        if let binDir { return .path(.init(binDir + "/" + name)) }
        return .name(name)
    }

    /// Runs a Slurm command: (status, stdout, stderr). Throws only when it cannot be started.
    func call(_ name: String, _ args: [String]) async throws -> (Int32, String, String) {
        do {
            let r = try await Subprocess.run(executable(name), arguments: Arguments(args), output: .string(limit: 16 << 20),
                                             error: .string(limit: 1 << 20))
            let status: Int32
            switch r.terminationStatus {
            case let .exited(c): status = c
            case let .signaled(s): status = 128 + s
            }
            return (status, r.standardOutput, r.standardError)
        } catch {
            throw SlurmError("cannot run \(name): \(error); is Slurm's client (slurm-client) installed and on PATH?")
        }
    }

    /// Whether the controller answers.
    public func ping() async -> Bool {
        guard let r = try? await call("scontrol", ["ping"]) else { return false }
        return r.0 == 0 && r.1.contains("UP")
    }

    // MARK: cluster

    /// Parses `scontrol show node -o` (one line per node).
    public static func parseNodes(_ text: String) -> [SlurmNode] {
        text.split(whereSeparator: \.isNewline).compactMap { line in
            let fields = keyValues(String(line))
            guard let name = fields["NodeName"] else { return nil }
            var gpus = 0, shards = 0
            var type: String?
            for item in splitGres(fields["Gres"] ?? "") {
                // gpu:4, gpu:a100:4, gpu:a100:4(S:0-1), shard:96, shard:a100:96(S:0)
                let noSocket = item.split(separator: "(").first.map(String.init) ?? item
                let parts = noSocket.split(separator: ":").map(String.init)
                guard parts.count >= 2, let n = Int(parts.last!) else { continue }
                if parts[0] == "gpu" {
                    gpus += n
                    if parts.count == 3 { type = parts[1] }
                } else if parts[0] == "shard" {
                    shards += n
                }
            }
            let partitions = (fields["Partitions"] ?? "").split(separator: ",").map(String.init)
            return SlurmNode(name: name, state: fields["State"] ?? "", partitions: partitions, gpus: gpus, shards: shards, gpuType: type)
        }
    }

    /// `Key=Value Key2=Value2 ...` (values without spaces; `OS=Linux 6.1 ...` style values are cut at the space).
    static func keyValues(_ line: String) -> [String: String] {
        var out: [String: String] = [:]
        for token in line.split(separator: " ") {
            guard let eq = token.firstIndex(of: "=") else { continue }
            let key = String(token[..<eq])
            if out[key] == nil { out[key] = String(token[token.index(after: eq)...]) }
        }
        return out
    }

    /// Splits `gpu:a100:4(S:0-1),shard:96` at the commas outside parentheses.
    static func splitGres(_ text: String) -> [String] {
        if text == "(null)" { return [] }
        var out: [String] = [], cur = "", depth = 0
        for c in text {
            if c == "(" { depth += 1 } else if c == ")" { depth -= 1 }
            if c == "," && depth == 0 { out.append(cur); cur = ""; continue }
            cur.append(c)
        }
        if !cur.isEmpty { out.append(cur) }
        return out
    }

    /// The nodes (of `partition`, when given) that have GPUs.
    public func gpuNodes(partition: String?) async throws -> [SlurmNode] {
        let (status, out, err) = try await call("scontrol", ["show", "node", "-o"])
        guard status == 0 else { throw SlurmError("scontrol show node failed: \(err.trimmingCharacters(in: .whitespacesAndNewlines))") }
        return SlurmClient.parseNodes(out).filter { $0.gpus > 0 && (partition == nil || $0.partitions.contains(partition!)) }
    }

    // MARK: jobs

    /// `sbatch --parsable ARGS`: the job id.
    public func submit(_ args: [String]) async throws -> String {
        let (status, out, err) = try await call("sbatch", ["--parsable"] + args)
        let id = out.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ";").first.map(String.init) ?? ""
        guard status == 0, !id.isEmpty, id.allSatisfy(\.isNumber) else {
            throw SlurmError("sbatch failed (exit \(status)): \(err.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return id
    }

    /// Live states of this user's jobs from squeue (finished ones stay listed for MinJobAge).
    public func queue() async throws -> [String: SlurmJobStatus] {
        let (status, out, err) = try await call("squeue", ["-h", "--me", "-t", "all", "-o", "%i|%T|%r|%N|%j|%k"])
        guard status == 0 else { throw SlurmError("squeue failed: \(err.trimmingCharacters(in: .whitespacesAndNewlines))") }
        var jobs: [String: SlurmJobStatus] = [:]
        for line in out.split(whereSeparator: \.isNewline) {
            let f = line.split(separator: "|", maxSplits: 5, omittingEmptySubsequences: false).map(String.init)
            guard f.count >= 4 else { continue }
            jobs[f[0]] = SlurmJobStatus(id: f[0], state: f[1], reason: f[2], nodes: f[3], exitCode: nil)
        }
        return jobs
    }

    /// Jobs of this user whose name is `name`, with their comments (to find a submission that was not recorded).
    public func find(name: String) async throws -> [(id: String, comment: String, state: String)] {
        let (status, out, _) = try await call("squeue", ["-h", "--me", "-t", "all", "-n", name, "-o", "%i|%T|%k"])
        guard status == 0 else { return [] }
        return out.split(whereSeparator: \.isNewline).compactMap { line in
            let f = line.split(separator: "|", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
            return f.count == 3 ? (f[0], f[2], f[1]) : nil
        }
    }

    /// Final states from accounting, for jobs squeue no longer lists. Empty when accounting is not available.
    public func accounting(_ ids: [String]) async -> [String: SlurmJobStatus] {
        guard !ids.isEmpty, let r = try? await call("sacct", ["-n", "-P", "-X", "-j", ids.joined(separator: ","), "-o", "JobID,State,ExitCode,NodeList"]),
              r.0 == 0 else { return [:] }
        var jobs: [String: SlurmJobStatus] = [:]
        for line in r.1.split(whereSeparator: \.isNewline) {
            let f = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            guard f.count >= 4 else { continue }
            // "CANCELLED by 0" -> CANCELLED
            let state = f[1].split(separator: " ").first.map(String.init) ?? f[1]
            jobs[f[0]] = SlurmJobStatus(id: f[0], state: state, reason: "", nodes: f[3], exitCode: f[2])
        }
        return jobs
    }

    /// `scancel ID...` (an unknown id is not an error).
    public func cancel(_ ids: [String]) async throws {
        guard !ids.isEmpty else { return }
        let (status, _, err) = try await call("scancel", ids)
        if status != 0 { throw SlurmError("scancel failed: \(err.trimmingCharacters(in: .whitespacesAndNewlines))") }
    }
}
