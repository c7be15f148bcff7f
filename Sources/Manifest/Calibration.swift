import Foundation

/// What `avatar-batch calibrate` measured and fitted for a renderer on one GPU model, in the profile's own terms
/// (docs/calibration.md): on that GPU model it replaces the profile's calibration points, start-up, decode costs and
/// sharing table.
public struct CalibrationFit: Sendable, Hashable, Codable {
    public struct Point: Sendable, Hashable, Codable {
        public var size: String
        public var inferFrames: Int
        public var value: Double
        public init(size: String, inferFrames: Int, value: Double) {
            self.size = size
            self.inferFrames = inferFrames
            self.value = value
        }
    }
    /// Peak GB with one clip decoded offline, by (size, infer_frames).
    public var memoryPoints: [Point]
    /// ms of solo render time per frame after start-up, by (size, infer_frames).
    public var timePoints: [Point]
    public var startupSeconds: Double?
    /// A warm worker's load, when the probes ran on one (the profile has a `worker:` section): start to ready.
    public var loadSeconds: Double?
    /// What a fresh worker's first request took more than the same request once warm (CUDA kernels loaded on first use,
    /// library handles): paid once per worker, so a worker's `load_s` is `loadSeconds` plus this, and a request after it
    /// pays none of it. nil in calibrations stored before 2026-12-02, which added it to `startupSeconds` only (so every
    /// warm request was predicted that much too long: 3.7 s of Live Avatar's 22-52 s requests on an H200).
    public var firstRequestSeconds: Double?
    /// The probes ran as requests to warm workers (false: each as its own process, `--cold` or a profile without a
    /// worker). nil in calibrations stored before 2026-12-01: `ranWarm` reads it from `loadSeconds`.
    public var warm: Bool?
    /// For a resident memory model (structured, not points): the median of measured peak minus the model at the
    /// probes, added to its `per_job_gb` (CUDA context and allocator slack differ between GPU models and drivers).
    public var residentOffsetGB: Double?
    public var perClipOfflineGB: Double?
    /// The same per million pixels of one clip's frames (its width x height x infer_frames), measured at the default
    /// size: what `perClipOfflineGB` becomes at other sizes. nil in calibrations stored before 2026-12-01.
    public var offlinePerMegapixelFrameGB: Double?
    public var onlineDecodeGB: Double?
    /// S(k): aggregate throughput of k jobs rendering on one GPU against one alone.
    public var sharing: [Int: Double]
    /// The GPU's memory in GB; the probes run, those that ran out of memory (upper bounds, kept as notes), and the
    /// calibration's seconds in all.
    public var gpuMemoryGB: Double
    public var probes: Int
    public var oomProbes: Int
    public var seconds: Double
    /// What to know about the figures ("probe 384*256 x48 x6 offline ran out of memory: above 20 GB").
    public var notes: [String]

    public init(memoryPoints: [Point], timePoints: [Point], startupSeconds: Double?, perClipOfflineGB: Double?, onlineDecodeGB: Double?,
                sharing: [Int: Double], gpuMemoryGB: Double, probes: Int, oomProbes: Int, seconds: Double, notes: [String] = [],
                loadSeconds: Double? = nil, residentOffsetGB: Double? = nil) {
        self.loadSeconds = loadSeconds
        self.residentOffsetGB = residentOffsetGB
        self.memoryPoints = memoryPoints
        self.timePoints = timePoints
        self.startupSeconds = startupSeconds
        self.perClipOfflineGB = perClipOfflineGB
        self.onlineDecodeGB = onlineDecodeGB
        self.sharing = sharing
        self.gpuMemoryGB = gpuMemoryGB
        self.probes = probes
        self.oomProbes = oomProbes
        self.seconds = seconds
        self.notes = notes
    }

    /// Whether the probes ran on warm workers (`warm`, else whether a worker's load was recorded).
    public var ranWarm: Bool { warm ?? (loadSeconds != nil) }
}

extension RendererProfile {
    /// This profile with a calibration's figures in place of its own where the calibration has them. A resident
    /// memory model (Live Avatar's, measured to the byte) keeps its structure: its constant term moves by the offset
    /// the probes measured, and its points-based parts change. A warm calibration's load becomes the worker's `load_s`.
    public func calibrated(by fit: CalibrationFit) -> RendererProfile {
        var p = self
        let memory = fit.memoryPoints.compactMap { pt in FrameSize(pt.size).map { MemoryPoint(size: $0, inferFrames: pt.inferFrames, gb: pt.value) } }
        if !memory.isEmpty && !p.memory.isResidentModel { p.memory.points = memory }
        if let g = fit.perClipOfflineGB, !p.memory.isResidentModel { p.memory.perClipOfflineGB = g }
        if let g = fit.offlinePerMegapixelFrameGB, !p.memory.isResidentModel { p.memory.offlinePerMegapixelFrameGB = g }
        if let o = fit.residentOffsetGB, p.memory.isResidentModel { p.memory.perJobGB = max(p.memory.perJobGB + o, 0) }
        if let g = fit.onlineDecodeGB { p.memory.onlineDecodeGB = g }
        let time = fit.timePoints.compactMap { pt in FrameSize(pt.size).map { TimePoint(size: $0, inferFrames: pt.inferFrames, msPerFrame: pt.value) } }
        if !time.isEmpty {
            p.time.points = time
            p.time.measuredHere = true
        }
        if let s = fit.startupSeconds { p.time.startupSeconds = s }
        if let l = fit.loadSeconds, p.worker != nil {
            p.worker?.loadSeconds = l + (fit.firstRequestSeconds ?? 0)
            p.worker?.firstRequestSeconds = fit.firstRequestSeconds
        }
        return p.withSharing(fit.sharing)
    }

    /// This profile with S(k) measured for some k (a calibration's, or learned from the history). Beyond the largest k
    /// measured, the profile's own figures are scaled by what that k measured against the profile (never below it):
    /// a table of whole attempts on another GPU, say, is as optimistic at k = 4 as at k = 3, and left as it was it
    /// would promise more per job at 4 than at 3.
    public func withSharing(_ measured: [Int: Double]) -> RendererProfile {
        var p = self
        for (k, s) in measured { p.sharing[k] = s }
        guard let top = measured.keys.max(), let mine = sharing[top], mine > 0, let at = measured[top] else { return p }
        for (k, s) in sharing where k > top && measured[k] == nil { p.sharing[k] = min(max(s * at / mine, at), Double(k)) }
        return p
    }

    /// What identifies the renderer across batches (history, calibrations): a digest of `identityParts`.
    public var identityDigest: String { String(SHA256.hex(Data(identityParts.joined(separator: "\n").utf8)).prefix(16)) }
}
