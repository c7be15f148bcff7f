import Foundation
import Manifest
import Scheduler
import Subprocess

/// Finds the GPUs a batch may use.
public enum GPUDiscovery {
    /// Parses nvidia-smi's `index, uuid, name, memory.total, memory.used` CSV (MiB, no units).
    public static func parse(_ csv: String) -> [GPU] {
        csv.split(whereSeparator: \.isNewline).compactMap { line in
            let f = line.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            guard f.count >= 5, let index = Int(f[0]), let total = Double(f[3]) else { return nil }
            let used = Double(f[4]) ?? 0
            return GPU(index: index, uuid: f[1], model: f[2], memoryGB: total / 1024, foreignUsedGB: used / 1024)
        }
    }

    /// Keeps the GPUs that CUDA_VISIBLE_DEVICES (indices or UUIDs) allows, in its order.
    public static func restrict(_ gpus: [GPU], cudaVisibleDevices: String?) -> [GPU] {
        guard let cvd = cudaVisibleDevices?.trimmingCharacters(in: .whitespaces), !cvd.isEmpty else { return gpus }
        var out: [GPU] = []
        for token in cvd.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            if let i = Int(token), let g = gpus.first(where: { $0.index == i }) { out.append(g) } else if let g = gpus.first(where: { $0.uuid == token || $0.uuid.hasPrefix(token) }) {
                out.append(g)
            }
        }
        return out
    }

    /// Runs nvidia-smi; nil when it is not installed or fails.
    public static func query() async -> String? {
        let result = try? await Subprocess.run(
            .name("nvidia-smi"),
            arguments: ["--query-gpu=index,uuid,name,memory.total,memory.used", "--format=csv,noheader,nounits"],
            output: .string(limit: 1 << 20), error: .discarded)
        guard let result, result.terminationStatus.isSuccess else { return nil }
        return result.standardOutput
    }

    /// The GPUs for a selection: virtual for an inventory, nvidia-smi's otherwise.
    public static func discover(_ selection: GPUSelection, environment: [String: String] = ProcessInfo.processInfo.environment) async throws -> [GPU] {
        if case let .inventory(entries) = selection { return GPU.inventory(entries) }
        guard let csv = await query() else {
            throw ExecutorError.noGPUs("no GPUs found: nvidia-smi is not installed or failed; pass --gpus 2x24GB (a virtual inventory) to plan, or to run a CPU renderer")
        }
        let all = restrict(parse(csv), cudaVisibleDevices: environment["CUDA_VISIBLE_DEVICES"])
        if all.isEmpty { throw ExecutorError.noGPUs("nvidia-smi lists no GPUs (CUDA_VISIBLE_DEVICES=\(environment["CUDA_VISIBLE_DEVICES"] ?? "unset"))") }
        if case let .indices(wanted) = selection {
            return try wanted.map { i in
                guard let g = all.first(where: { $0.index == i }) else { throw ExecutorError.badGPUIndex(i, available: all.map(\.index)) }
                return g
            }
        }
        return all
    }

    /// The GPUs a batch runs on: the manifest's selection; a CPU renderer without an inventory gets one slot per core.
    public static func forBatch(_ manifest: Manifest) async throws -> [GPU] {
        if !manifest.renderer.usesGPU, case .auto = manifest.gpus {
            let slots = max(1, ProcessInfo.processInfo.activeProcessorCount)
            return (0..<slots).map { GPU(index: $0, model: "cpu slot", memoryGB: 1024) }
        }
        return try await discover(manifest.gpus)
    }

    /// Why a real GPU is not free for measuring on (nil when it is, or is virtual): more than 1 GB of it is used by
    /// processes the orchestrator does not own (read at discovery).
    public static func busyReason(_ g: GPU) -> String? {
        guard !g.uuid.hasPrefix("virtual-"), g.foreignUsedGB > 1 else { return nil }
        return String(format: "GPU %d already has %.1f GB in use by other processes", g.index, g.foreignUsedGB)
    }

    /// Device-level memory.used (GB) per GPU index; nil when nvidia-smi is absent.
    public static func memoryUsed() async -> [Int: Double]? {
        let result = try? await Subprocess.run(
            .name("nvidia-smi"), arguments: ["--query-gpu=index,memory.used", "--format=csv,noheader,nounits"],
            output: .string(limit: 1 << 16), error: .discarded)
        guard let result, result.terminationStatus.isSuccess else { return nil }
        let out = result.standardOutput
        var used: [Int: Double] = [:]
        for line in out.split(whereSeparator: \.isNewline) {
            let f = line.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            if f.count == 2, let i = Int(f[0]), let mib = Double(f[1]) { used[i] = mib / 1024 }
        }
        return used
    }
}

