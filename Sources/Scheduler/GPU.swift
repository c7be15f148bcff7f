import Manifest

/// One GPU as the scheduler sees it.
public struct GPU: Sendable, Hashable, Codable, Identifiable {
    /// Index as the orchestrator numbers it (nvidia-smi's index, or the position in a virtual inventory).
    public var index: Int
    /// nvidia-smi's UUID; `virtual-N` for inventory GPUs.
    public var uuid: String
    public var model: String
    public var memoryGB: Double
    /// Memory used by processes the orchestrator does not own (read at discovery).
    public var foreignUsedGB: Double

    public init(index: Int, uuid: String = "", model: String = "GPU", memoryGB: Double, foreignUsedGB: Double = 0) {
        self.index = index
        self.uuid = uuid.isEmpty ? "virtual-\(index)" : uuid
        self.model = model
        self.memoryGB = memoryGB
        self.foreignUsedGB = foreignUsedGB
    }

    public var id: Int { index }

    /// Virtual GPUs for an inventory such as `4x24GB,2x80GB`.
    public static func inventory(_ entries: [GPUInventoryEntry]) -> [GPU] {
        var gpus: [GPU] = []
        for entry in entries {
            for _ in 0..<entry.count {
                let gb = entry.memoryGB
                let name = entry.model ?? "virtual \(gb == gb.rounded() ? String(Int(gb)) : String(gb))GB"
                gpus.append(GPU(index: gpus.count, model: name, memoryGB: gb))
            }
        }
        return gpus
    }
}
