/// Which GPUs a batch may use, as written in `gpus:` or `--gpus`.
public enum GPUSelection: Sendable, Hashable, Codable, CustomStringConvertible {
    /// Every GPU nvidia-smi lists (restricted by CUDA_VISIBLE_DEVICES when set).
    case auto
    /// These indices of the GPUs nvidia-smi lists.
    case indices([Int])
    /// Virtual GPUs of these sizes: for planning elsewhere, and for CPU renderers and tests.
    case inventory([GPUInventoryEntry])

    public var description: String {
        switch self {
        case .auto: return "auto"
        case let .indices(i): return i.map(String.init).joined(separator: ",")
        case let .inventory(e): return e.map(\.description).joined(separator: ",")
        }
    }

    /// Parses `auto`, `0,2`, `5x24GB` or `4x24GB,2x80GB:A100`; nil with a reason when malformed.
    public static func parse(_ text: String) -> Result<GPUSelection, GPUSpecError> {
        let t = text.trimmingCharacters(in: .whitespaces)
        if t.isEmpty || t == "auto" { return .success(.auto) }
        let parts = t.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        if parts.allSatisfy({ Int($0) != nil }) {
            let indices = parts.compactMap { Int($0) }
            if let bad = indices.first(where: { $0 < 0 }) { return .failure(GPUSpecError(message: "GPU index \(bad) is negative")) }
            if let twice = indices.first(where: { i in indices.filter { $0 == i }.count > 1 }) {
                return .failure(GPUSpecError(message: "GPU index \(twice) is listed more than once"))
            }
            return .success(.indices(indices))
        }
        var entries: [GPUInventoryEntry] = []
        for part in parts {
            // COUNTxMEMORY[:MODEL], e.g. 4x24GB or 2x80GB:A100
            let modelSplit = part.split(separator: ":", maxSplits: 1).map(String.init)
            let lower = modelSplit[0].lowercased()
            guard let x = lower.firstIndex(of: "x"), let count = Int(lower[..<x]), count > 0,
                  let gb = parseGigabytes(String(lower[lower.index(after: x)...])), gb > 0 else {
                return .failure(GPUSpecError(message: "\"\(part)\" is not a GPU index or an inventory entry like 4x24GB"))
            }
            entries.append(GPUInventoryEntry(count: count, memoryGB: gb, model: modelSplit.count > 1 ? modelSplit[1] : nil))
        }
        return .success(.inventory(entries))
    }
}

/// Why a GPU selection could not be parsed.
public struct GPUSpecError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// `count` virtual GPUs of `memoryGB` each.
public struct GPUInventoryEntry: Sendable, Hashable, Codable, CustomStringConvertible {
    public var count: Int
    public var memoryGB: Double
    public var model: String?

    public init(count: Int, memoryGB: Double, model: String? = nil) {
        self.count = count
        self.memoryGB = memoryGB
        self.model = model
    }

    public var description: String {
        let gb = memoryGB == memoryGB.rounded() ? String(Int(memoryGB)) : String(memoryGB)
        return "\(count)x\(gb)GB" + (model.map { ":\($0)" } ?? "")
    }
}

/// Parses `24GB`, `24 GiB`, `24g`, `24` (GB) or `24576MB`.
public func parseGigabytes(_ text: String) -> Double? {
    let t = text.trimmingCharacters(in: .whitespaces).lowercased()
    let units: [(String, Double)] = [("gib", 1), ("gb", 1), ("g", 1), ("mib", 1.0 / 1024), ("mb", 1.0 / 1024), ("tb", 1024)]
    for (suffix, factor) in units where t.hasSuffix(suffix) {
        return Double(t.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)).map { $0 * factor }
    }
    return Double(t)
}

/// One clip after defaults are applied and paths resolved.
public struct ClipSpec: Sendable, Hashable, Codable {
    public var id: String
    /// Absolute path of the reference image.
    public var image: String
    /// Absolute path of the speech audio.
    public var audio: String
    public var prompt: String
    /// File name under output_dir.
    public var output: String
    public var priority: Int
    public var timeoutSeconds: Double?
    /// Substring a GPU's model name must contain (e.g. `H100`).
    public var gpuModel: String?
    public var settings: ClipSettings
    /// Seconds of audio, when it could be measured.
    public var audioSeconds: Double?
    /// The file and position of the clip's entry, for messages about it.
    public var file: String
    public var position: SourcePosition

    public init(id: String, image: String, audio: String, prompt: String, output: String, priority: Int = 0,
                timeoutSeconds: Double? = nil, gpuModel: String? = nil, settings: ClipSettings, audioSeconds: Double? = nil,
                file: String = "", position: SourcePosition = SourcePosition(line: 1, column: 1)) {
        self.id = id
        self.image = image
        self.audio = audio
        self.prompt = prompt
        self.output = output
        self.priority = priority
        self.timeoutSeconds = timeoutSeconds
        self.gpuModel = gpuModel
        self.settings = settings
        self.audioSeconds = audioSeconds
        self.file = file
        self.position = position
    }

    /// `FILE:LINE` of the clip, for messages.
    public var location: String { "\(file):\(position.line)" }
}

/// A loaded, validated manifest.
public struct Manifest: Sendable, Codable {
    public var version: Int
    public var name: String
    /// Absolute path of the manifest file.
    public var path: String
    /// Absolute output directory.
    public var outputDir: String
    public var renderer: RendererProfile
    public var gpus: GPUSelection
    public var retry: RetryPolicy
    /// Placement strategy name (`earliest-finish` unless the manifest says otherwise).
    public var strategy: String
    public var clips: [ClipSpec]
    /// What `run --executor slurm` passes to sbatch.
    public var slurm = SlurmSettings()
    /// An argv run when the batch ends or stops on --max-failures, with the report JSON on its standard input.
    public var notify: [String] = []

    public init(version: Int = 1, name: String, path: String, outputDir: String, renderer: RendererProfile, gpus: GPUSelection = .auto,
                retry: RetryPolicy = RetryPolicy(), strategy: String = "earliest-finish", clips: [ClipSpec]) {
        self.version = version
        self.name = name
        self.path = path
        self.outputDir = outputDir
        self.renderer = renderer
        self.gpus = gpus
        self.retry = retry
        self.strategy = strategy
        self.clips = clips
    }

    /// The default store: `<output_dir>/.avatar-batch/state.sqlite`.
    public var defaultStatePath: String { outputDir + "/" + Manifest.stateFile }
    /// The store's place under output_dir.
    public static let stateFile = ".avatar-batch/state.sqlite"
}

import Foundation
