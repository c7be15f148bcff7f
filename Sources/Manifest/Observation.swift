/// A measurement from a finished attempt, as the store keeps it.
public struct Observation: Sendable, Hashable, Codable {
    public var bucket: String
    public var gpuModel: String
    /// Peak GPU memory in GB; nil when not measured.
    public var peakGB: Double?
    /// Seconds the renderer ran; nil when not measured.
    public var seconds: Double?
    /// Frames the attempt rendered (scales durations between clips of one bucket).
    public var frames: Int
    /// True when the attempt ran out of memory; then `peakGB` is a lower bound.
    public var oom: Bool
    /// For an OOM while sharing a GPU: the job it applies to (a co-tenant's OOM says little about other clips).
    /// nil: it applies to the whole bucket.
    public var jobID: String?
    /// True when `seconds` is a warm worker's request: the model was loaded already, so the time holds only the part
    /// of the start-up a request pays (the profile's start-up less its load) besides the render.
    public var warm: Bool
    /// The part of `seconds` before the clip's own work began (interpreter, imports, model load), as the renderer's
    /// report measured it (`render_seconds`, docs/running.md): `seconds` less it is what a warm worker's request would
    /// take. nil: not reported (the predictor takes the profile's start-up), and always nil for a warm request.
    public var startupSeconds: Double?

    public init(bucket: String, gpuModel: String = "", peakGB: Double?, seconds: Double?, frames: Int, oom: Bool = false, jobID: String? = nil,
                warm: Bool = false, startupSeconds: Double? = nil) {
        self.jobID = jobID
        self.startupSeconds = warm ? nil : startupSeconds
        self.warm = warm
        self.bucket = bucket
        self.gpuModel = gpuModel
        self.peakGB = peakGB
        self.seconds = seconds
        self.frames = frames
        self.oom = oom
    }
}

