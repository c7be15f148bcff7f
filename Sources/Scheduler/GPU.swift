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
    /// How long a render takes on this card against the GPU model predictions are made for (1: that model, or none
    /// known better; 1.6: 60% longer). A batch on several GPU models sets it per card from their calibrations or their
    /// shared history (`Knowledge.timeScales`, docs/calibration.md); a start-up is the host's and is not scaled.
    public var timeScale: Double = 1

    public init(index: Int, uuid: String = "", model: String = "GPU", memoryGB: Double, foreignUsedGB: Double = 0, timeScale: Double = 1) {
        self.index = index
        self.uuid = uuid.isEmpty ? "virtual-\(index)" : uuid
        self.model = model
        self.memoryGB = memoryGB
        self.foreignUsedGB = foreignUsedGB
        self.timeScale = timeScale > 0 && timeScale.isFinite ? timeScale : 1
    }

    enum CodingKeys: String, CodingKey { case index, uuid, model, memoryGB, foreignUsedGB, timeScale }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(index: try c.decode(Int.self, forKey: .index), uuid: try c.decode(String.self, forKey: .uuid), model: try c.decode(String.self, forKey: .model),
                  memoryGB: try c.decode(Double.self, forKey: .memoryGB), foreignUsedGB: try c.decodeIfPresent(Double.self, forKey: .foreignUsedGB) ?? 0,
                  timeScale: try c.decodeIfPresent(Double.self, forKey: .timeScale) ?? 1)
    }

    public var id: Int { index }

    /// Seconds on this card of a job predicted at `seconds` on the predictions' model, the first `unshared` of them a
    /// start-up: the start-up as it is, the render scaled.
    public func seconds(_ seconds: Double, unshared: Double) -> Double {
        let u = min(max(unshared, 0), seconds)
        return timeScale == 1 ? seconds : u + (seconds - u) * timeScale
    }

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
