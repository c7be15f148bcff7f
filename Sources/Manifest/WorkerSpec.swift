/// A renderer's warm-worker mode (`worker:` in a profile): a long-lived process that loads the model once and then
/// renders one clip per request over the worker protocol (docs/workers.md).
public struct WorkerSpec: Sendable, Hashable, Codable {
    /// The worker's argv template: the profile's placeholders minus the per-clip ones; the settings listed in
    /// `loadSettings` may be used, since every request a worker serves shares them.
    public var command: [String]
    /// Environment variables added for the worker, after the profile's own `env:`.
    public var env: [String: String]
    /// Seconds a worker has to say `ready` once started.
    public var readyTimeoutSeconds: Double
    /// The settings that need a worker of their own (`offload_model`, `fp8`): requests go only to a worker loaded
    /// with the same values.
    public var loadSettings: [String]
    /// GB an idle worker holds on its GPU (the weights); nil: the profile's `memory.resident_gb` (its fp8 figure
    /// with `fp8`). A busy worker holds its request's whole predicted peak, which includes this.
    public var residentGB: Double?
    /// Seconds to start and load, paid once per worker; nil: the profile's `time.startup_s`.
    public var loadSeconds: Double?
    /// Worker deaths on one GPU, with no clip served in between, after which that GPU runs this renderer cold.
    public var maxDeaths: Int
    /// What a new worker's first request takes more than the requests after it (a calibration's
    /// `CalibrationFit.firstRequestSeconds`; not a profile key). `loadSeconds` includes it; a load measured from start to
    /// ready does not, and `Learning.expectedLoad` adds it there.
    public var firstRequestSeconds: Double?

    public init(command: [String], env: [String: String] = [:], readyTimeoutSeconds: Double = 600, loadSettings: [String] = [],
                residentGB: Double? = nil, loadSeconds: Double? = nil, maxDeaths: Int = 3) {
        self.command = command
        self.env = env
        self.readyTimeoutSeconds = readyTimeoutSeconds
        self.loadSettings = loadSettings
        self.residentGB = residentGB
        self.loadSeconds = loadSeconds
        self.maxDeaths = maxDeaths
    }

    /// Settings that may be load settings: the ones a whole worker can be built for.
    public static let loadableSettings: [String] = ["offload_model", "fp8", "online_decode", "size", "width", "height", "infer_frames",
                                                    "sample_steps", "num_clip", "seed"]
    /// Placeholders every worker command may use.
    public static let workerPlaceholders: Set<String> = ["profile_dir", "workdir", "master_port", "gpu"]

    /// The values of the load settings for these clip settings, in `loadSettings` order: the key a worker is reused by.
    public func loadKey(_ s: ClipSettings, frame: FrameSize) -> [String] {
        let values = s.placeholderValues(frame: frame)
        return loadSettings.map { "\($0)=\(values[$0] ?? "")" }
    }
}

extension RendererProfile {
    /// GB an idle worker of these settings holds on its GPU.
    public func workerResidentGB(_ s: ClipSettings) -> Double {
        if let gb = worker?.residentGB { return gb }
        return s.fp8 && memory.residentFP8GB > 0 ? memory.residentFP8GB : memory.residentGB
    }

    /// The load-settings key of these settings, in words ("offload_model=False, fp8=True"; "" without a worker).
    public func workerKey(_ s: ClipSettings) -> String {
        worker?.loadKey(s, frame: renderedFrame(s)).joined(separator: ", ") ?? ""
    }

    /// Seconds a worker takes to start and load.
    public var workerLoadSeconds: Double { worker?.loadSeconds ?? time.startupSeconds }

    /// What a warm worker's request pays besides its render: the start-up less the load (a request's set-up, its save
    /// and mux), which shares nothing of the GPU (`Estimate.unsharedSeconds`).
    public var requestFixedSeconds: Double { max(time.startupSeconds - workerLoadSeconds, 0) }

    /// The profile with its worker's load set to `seconds` (what loads took lately), and a cold attempt's start-up
    /// moved by as much: the load is part of that start-up, and what a warm request pays besides stays as it was.
    public func withWorkerLoad(_ seconds: Double) -> RendererProfile {
        guard worker != nil else { return self }
        var p = self
        p.time.startupSeconds = max(time.startupSeconds + seconds - workerLoadSeconds, seconds)
        p.worker?.loadSeconds = seconds
        return p
    }
}
