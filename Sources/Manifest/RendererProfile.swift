/// One measured point of a renderer's memory use.
public struct MemoryPoint: Sendable, Hashable, Codable {
    public var size: FrameSize
    public var inferFrames: Int
    public var gb: Double

    public init(size: FrameSize, inferFrames: Int, gb: Double) {
        self.size = size
        self.inferFrames = inferFrames
        self.gb = gb
    }
}

/// One measured point of a renderer's speed.
public struct TimePoint: Sendable, Hashable, Codable {
    public var size: FrameSize
    public var inferFrames: Int
    public var msPerFrame: Double

    public init(size: FrameSize, inferFrames: Int, msPerFrame: Double) {
        self.size = size
        self.inferFrames = inferFrames
        self.msPerFrame = msPerFrame
    }
}

/// The GPU-memory model a profile carries (`memory:` in YAML).
public struct MemoryModel: Sendable, Hashable, Codable {
    /// Peak GB at a few (size, infer_frames), with few clips.
    public var points: [MemoryPoint]
    /// Extra GB per clip when decoding offline (frames stay on the GPU).
    public var perClipOfflineGB: Double
    /// Extra GB per clip when decoding offline, per million pixels of one clip's frames (rendered width x height x
    /// infer_frames): decoded frames grow with the frame. Used instead of `perClipOfflineGB` when > 0 (a calibration
    /// fits it).
    public var offlinePerMegapixelFrameGB: Double = 0
    /// Constant GB of decoding online.
    public var onlineDecodeGB: Double
    /// Factor applied with `offload_model` (weights live on the host).
    public var offloadFactor: Double
    /// Factor applied with `fp8` weights.
    public var fp8Factor: Double
    /// Fraction added on top of a prediction (0.10 = 10%).
    public var headroom: Double
    /// Host RAM per job in GB (a floor; offline decode adds to it).
    public var hostRAMGB: Double
    /// Host RAM in GB per million pixels of rendered video (frame width x height x frames), on top of `hostRAMGB`.
    public var hostRAMPerMegapixelFrameGB: Double

    /// The resident-plus-cache model (`resident_gb:` in YAML), used instead of `points` when `residentGB` > 0.
    /// Peak = resident weights (fp8 ones with `fp8`) + per_latent_token_gb x latent tokens of one clip + per_job_gb
    /// + per_frame_token_gb x tokens of one latent frame (+ online_decode_gb when decoding online). Tokens come from
    /// the rendered frame (see `Framing`): one latent frame has (H/16)(W/16) tokens and a clip of F frames F/4 latent
    /// frames. Live Avatar's four KV caches are exactly per_latent_token_gb x tokens (measured to the byte).
    public var residentGB: Double
    /// Resident weights with `fp8` (0: the same as `residentGB`).
    public var residentFP8GB: Double
    public var perLatentTokenGB: Double
    public var perJobGB: Double
    public var perFrameTokenGB: Double

    /// GB one offline clip of `pixelFrames` (rendered width x height x infer_frames) keeps on the GPU.
    public func offlineClipGB(pixelFrames: Double) -> Double {
        offlinePerMegapixelFrameGB > 0 ? offlinePerMegapixelFrameGB * pixelFrames / 1e6 : perClipOfflineGB
    }

    public init(points: [MemoryPoint] = [], perClipOfflineGB: Double = 0, onlineDecodeGB: Double = 0, offloadFactor: Double = 1,
                fp8Factor: Double = 1, headroom: Double = 0.10, hostRAMGB: Double = 0, hostRAMPerMegapixelFrameGB: Double = 0,
                residentGB: Double = 0, residentFP8GB: Double = 0, perLatentTokenGB: Double = 0, perJobGB: Double = 0,
                perFrameTokenGB: Double = 0) {
        self.points = points
        self.perClipOfflineGB = perClipOfflineGB
        self.onlineDecodeGB = onlineDecodeGB
        self.offloadFactor = offloadFactor
        self.fp8Factor = fp8Factor
        self.headroom = headroom
        self.hostRAMGB = hostRAMGB
        self.hostRAMPerMegapixelFrameGB = hostRAMPerMegapixelFrameGB
        self.residentGB = residentGB
        self.residentFP8GB = residentFP8GB
        self.perLatentTokenGB = perLatentTokenGB
        self.perJobGB = perJobGB
        self.perFrameTokenGB = perFrameTokenGB
    }

    /// True when the profile uses the resident-plus-cache model.
    public var isResidentModel: Bool { residentGB > 0 }
}

/// Settings a renderer cannot honour, refused at validation with the reason (`limits:` in a profile).
public struct RendererLimits: Sendable, Hashable, Codable {
    /// The only sample_steps it accepts; empty means any.
    public var sampleSteps: [Int] = []
    /// infer_frames must be a multiple of this (0: only the general multiple of 4).
    public var inferFramesMultiple = 0
    /// The value offload_model must have, when only one works.
    public var offloadModel: Bool?
    /// The most tokens one latent frame may have: (H/16)(W/16) of the rendered frame (0: no limit).
    public var maxFrameTokens = 0
    /// Substrings an audio path may not contain (the renderer gives them a meaning of its own).
    public var audioPathForbids: [String] = []

    public init() {}

    public var isEmpty: Bool { self == RendererLimits() }
}

/// The time model a profile carries (`time:` in YAML).
public struct TimeModel: Sendable, Hashable, Codable {
    public var points: [TimePoint]
    /// Seconds before the first frame: process start, imports, weight load, compile.
    public var startupSeconds: Double
    /// Factor applied with `offload_model` (the published 800 -> 3200 ms/frame is 4x).
    public var offloadFactor: Double
    /// Time scales with sample_steps relative to this count.
    public var referenceSampleSteps: Int
    /// The points were measured on the GPU model predictions are for (`calibrated(by:)`): a bucket's observed times
    /// are then weighed against them (`Predictor.calibrationWeight`) instead of replacing them.
    public var measuredHere = false

    public init(points: [TimePoint] = [], startupSeconds: Double = 0, offloadFactor: Double = 1, referenceSampleSteps: Int = 0) {
        self.points = points
        self.startupSeconds = startupSeconds
        self.offloadFactor = offloadFactor
        self.referenceSampleSteps = referenceSampleSteps
    }
}

/// How a finished output is checked before it counts as done.
public enum OutputCheck: String, Sendable, Hashable, Codable, CaseIterable {
    /// ffprobe must read it, with a video stream, an audio stream and about the audio's duration.
    case ffprobe
    /// The file must exist and not be empty.
    case nonempty
}

/// Where a job's renderer runs.
public enum WorkdirPolicy: String, Sendable, Hashable, Codable, CaseIterable {
    /// A fresh directory per attempt (renderers that write fixed relative paths need this).
    case perJob = "per-job"
    /// The manifest's directory.
    case manifest
}

/// A renderer: how to run it for one clip and what it costs.
public struct RendererProfile: Sendable, Hashable, Codable {
    public var name: String
    public var description: String
    /// The argv template; see `ArgvTemplate` for placeholders.
    public var command: [String]
    /// Sizes it accepts; empty means any.
    public var sizes: [FrameSize]
    /// Clip settings the profile fills in when the manifest does not.
    public var defaults: [String: String]
    /// Environment variables added for the renderer.
    public var env: [String: String]
    public var workdir: WorkdirPolicy
    public var outputCheck: OutputCheck
    public var outputExtension: String
    /// Substrings of stderr that mean the process ran out of GPU memory.
    public var oomPatterns: [String]
    public var maxJobsPerGPU: Int
    /// Whether it needs a GPU at all (the ffmpeg preview does not).
    public var usesGPU: Bool
    /// Frames per second of the output; with infer_frames this turns audio length into num_clip.
    public var fps: Double
    /// num_clip above which `online_decode: auto` turns online decoding on.
    public var autoOnlineDecodeClips: Int
    public var memory: MemoryModel
    public var time: TimeModel
    /// Aggregate throughput of k jobs sharing a GPU, relative to one job (1.0 = pure time slicing).
    public var sharing: [Int: Double]
    /// The directory the profile file lives in (`{profile_dir}`); empty for inline profiles.
    public var directory: String
    /// How `size` and the reference image become the rendered frame.
    public var framing: Framing = .exact
    /// Settings the renderer cannot honour.
    public var limits = RendererLimits()
    /// Files (templates with `{env.NAME}`) that must exist before any GPU time is spent: checkpoints, the entry script.
    public var requiredFiles: [String] = []
    /// The flags a manifest may add through `extra_args` (nil: any flag the command does not already set; an untrusted
    /// manifest may then add none).
    public var extraArgsAllowed: [String]?
    /// The renderer's argument-parser source (a template with `{env.NAME}`): a conditional flag of the command
    /// (`{fp8:--fp8}`) that a clip turns on must appear in it, so an older checkout is caught at validation.
    public var flagSource: String?
    /// The warm-worker mode, when the renderer has one (`worker:`; docs/workers.md).
    public var worker: WorkerSpec?

    public init(name: String, description: String = "", command: [String], sizes: [FrameSize] = [], defaults: [String: String] = [:],
                env: [String: String] = [:], workdir: WorkdirPolicy = .perJob, outputCheck: OutputCheck = .ffprobe,
                outputExtension: String = "mp4", oomPatterns: [String] = RendererProfile.defaultOOMPatterns, maxJobsPerGPU: Int = 4,
                usesGPU: Bool = true, fps: Double = 25, autoOnlineDecodeClips: Int = 100, memory: MemoryModel = MemoryModel(),
                time: TimeModel = TimeModel(), sharing: [Int: Double] = [:], directory: String = "") {
        self.name = name
        self.description = description
        self.command = command
        self.sizes = sizes
        self.defaults = defaults
        self.env = env
        self.workdir = workdir
        self.outputCheck = outputCheck
        self.outputExtension = outputExtension
        self.oomPatterns = oomPatterns
        self.maxJobsPerGPU = maxJobsPerGPU
        self.usesGPU = usesGPU
        self.fps = fps
        self.autoOnlineDecodeClips = autoOnlineDecodeClips
        self.memory = memory
        self.time = time
        self.sharing = sharing
        self.directory = directory
    }

    /// PyTorch's and CUDA's ways of saying a GPU ran out of memory.
    public static let defaultOOMPatterns = [
        "torch.OutOfMemoryError", "torch.cuda.OutOfMemoryError", "CUDA out of memory", "CUBLAS_STATUS_ALLOC_FAILED",
        "CUDA error: out of memory", "cudaErrorMemoryAllocation", "RESOURCE_EXHAUSTED",
    ]

    /// The frame the renderer generates for these settings: `size` itself, or the reference image fitted under
    /// `size`'s area (`Framing.fitArea`; `size`'s own shape when the image's size is unknown).
    public func renderedFrame(_ s: ClipSettings) -> FrameSize {
        switch framing {
        case .exact: return s.size
        case .fitArea: return FrameFit.fit(image: s.reference ?? s.size, area: s.size.pixels)
        }
    }

    /// The options the command sets itself (`--size`, `--save_file=...`, `{fp8:--fp8}`): an `extra_args` flag may never
    /// repeat one, since argparse keeps the last occurrence.
    public var commandFlags: [String] {
        var flags: [String] = []
        for entry in command {
            let text: String?
            switch ArgvTemplate.tokens(entry).first {
            case let .text(t)?: text = t
            case let .placeholder(_, conditional?)?: text = conditional
            default: text = nil
            }
            if let t = text, t.hasPrefix("-"), t.count > 1 {
                flags.append(String(t.split(separator: "=", maxSplits: 1).first ?? Substring(t)))
            }
        }
        return flags
    }

    /// What identifies the profile in a content key: name, argv template, environment and output check.
    public var identityParts: [String] {
        ["renderer.name=\(name)", "renderer.command=\(command.joined(separator: "\u{1F}"))",
         "renderer.env=\(env.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "\u{1F}"))",
         "renderer.output_check=\(outputCheck.rawValue)"]
    }
}
