import Foundation
import Manifest

/// A process, told apart from a later one with the same pid by its start time (clock ticks since boot,
/// field 22 of /proc/PID/stat) and its host.
public struct ProcessIdentity: Sendable, Hashable, Codable {
    public var host: String
    public var pid: Int32
    public var startTime: UInt64

    public init(host: String, pid: Int32, startTime: UInt64) {
        self.host = host
        self.pid = pid
        self.startTime = startTime
    }
}

/// A job as the store knows it.
public struct JobRecord: Sendable, Hashable, Codable {
    public var id: String
    public var contentKey: String
    public var state: JobState
    /// Attempts made, under every content key (numbers keep growing, so logs are never overwritten).
    public var attemptCount: Int
    /// Attempts numbered up to this one came before the last `retry`: the ladder starts afresh after them.
    public var retryFrom: Int
    /// The clip's settings as the manifest resolved them (JSON).
    public var settingsJSON: String
    public var output: String
    public var outputDigest: String?
    /// Size and modification time when the digest was taken: unchanged means the digest still holds.
    public var outputSize: Int?
    public var outputMTime: Double?
    public var predictedGB: Double?
    public var predictedSeconds: Double?
    public var observedPeakGB: Double?
    public var observedSeconds: Double?
    public var priority: Int
    /// False once the clip left the manifest; its history stays.
    public var inManifest: Bool
    public var reason: String?
    public var updatedAt: Double
}

/// Which executor ran an attempt, as the store records it (a typed column, not a marker in another one).
public enum ExecutorKind: String, Sendable, Hashable, Codable, CaseIterable {
    /// A process on this machine's GPUs (`host` says which machine).
    case local
    /// A Slurm job (`slurm_job_id`; `host` is the node once it runs).
    case slurm
}

/// One attempt at a job.
public struct AttemptRecord: Sendable, Hashable, Codable {
    public var id: Int64
    public var jobID: String
    public var number: Int
    public var contentKey: String
    public var runID: Int64
    public var host: String
    /// Which executor ran it; where exactly is `gpu`/`gpuUUID` (local) or `slurmJobID` and `host` (Slurm).
    public var executor: ExecutorKind
    public var gpu: Int?
    public var gpuUUID: String?
    public var pid: Int32?
    public var processStart: UInt64?
    public var processGroup: Int32?
    /// Full settings used (JSON).
    public var settingsJSON: String
    /// What differs from the clip's own settings, e.g. "online_decode: true" or "isolate".
    public var change: String
    public var isolated: Bool
    public var rung: Int
    public var startedAt: Double
    public var endedAt: Double?
    public var exitStatus: Int32?
    public var signal: Int32?
    public var classification: AttemptClassification?
    public var logPath: String?
    public var stderrTail: String?
    public var peakGB: Double?
    public var seconds: Double?
    public var slurmJobID: String?
    public var note: String?
    /// The warm worker that served it (nil: a process of its own).
    public var workerID: String? = nil
    /// Where the prediction it was placed with came from (`Predictor.provenance`).
    public var predictedFrom: String? = nil
    /// A cold attempt's render as its renderer reported it (`render_seconds`): its time less its start-up. nil: not
    /// reported, a warm request, or an attempt recorded before 2026-12-01.
    public var renderSeconds: Double? = nil

    /// Decodes the settings this attempt ran with.
    public var settings: ClipSettings? { try? JSONDecoder().decode(ClipSettings.self, from: Data(settingsJSON.utf8)) }
}

/// What the run loop knows when it launches an attempt.
public struct AttemptStart: Sendable {
    public var executor: ExecutorKind
    public var settings: ClipSettings
    public var change: String
    public var isolated: Bool
    public var rung: Int
    public var gpu: Int?
    public var gpuUUID: String?
    public var logPath: String?
    public var predictedGB: Double?
    public var predictedSeconds: Double?
    public var predictedFrom: String?

    public init(executor: ExecutorKind = .local, settings: ClipSettings, change: String, isolated: Bool, rung: Int, gpu: Int?, gpuUUID: String?,
                logPath: String?, predictedGB: Double? = nil, predictedSeconds: Double? = nil, predictedFrom: String? = nil) {
        self.predictedFrom = predictedFrom
        self.executor = executor
        self.settings = settings
        self.change = change
        self.isolated = isolated
        self.rung = rung
        self.gpu = gpu
        self.gpuUUID = gpuUUID
        self.logPath = logPath
        self.predictedGB = predictedGB
        self.predictedSeconds = predictedSeconds
    }
}

/// How an attempt ended, and where the job goes next.
public struct AttemptEnd: Sendable {
    public var classification: AttemptClassification
    public var exitStatus: Int32?
    public var signal: Int32?
    public var stderrTail: String?
    public var peakGB: Double?
    public var seconds: Double?
    public var outputDigest: String?
    public var outputSize: Int?
    public var outputMTime: Double?
    public var note: String?
    /// A cold attempt's render as its renderer reported it (`AttemptRecord.renderSeconds`).
    public var renderSeconds: Double?
    /// The job's next state: succeeded, pending (retry), failed, interrupted or cancelled.
    public var jobState: JobState
    public var reason: String?

    public init(classification: AttemptClassification, exitStatus: Int32? = nil, signal: Int32? = nil, stderrTail: String? = nil,
                peakGB: Double? = nil, seconds: Double? = nil, outputDigest: String? = nil, outputSize: Int? = nil, outputMTime: Double? = nil,
                note: String? = nil, jobState: JobState, reason: String? = nil) {
        self.outputSize = outputSize
        self.outputMTime = outputMTime
        self.classification = classification
        self.exitStatus = exitStatus
        self.signal = signal
        self.stderrTail = stderrTail
        self.peakGB = peakGB
        self.seconds = seconds
        self.outputDigest = outputDigest
        self.note = note
        self.jobState = jobState
        self.reason = reason
    }
}

/// A job of the manifest, as `sync` receives it.
public struct ManifestJob: Sendable {
    public var id: String
    public var contentKey: String
    public var settingsJSON: String
    public var output: String
    public var priority: Int
    public var predictedGB: Double?
    public var predictedSeconds: Double?

    public init(id: String, contentKey: String, settingsJSON: String, output: String, priority: Int, predictedGB: Double? = nil,
                predictedSeconds: Double? = nil) {
        self.id = id
        self.contentKey = contentKey
        self.settingsJSON = settingsJSON
        self.output = output
        self.priority = priority
        self.predictedGB = predictedGB
        self.predictedSeconds = predictedSeconds
    }
}

/// What `sync` did.
public struct SyncSummary: Sendable, Hashable {
    public var added = 0
    /// Jobs whose content key changed: reset to pending.
    public var changed = 0
    public var unchanged = 0
    /// Jobs in the store that left the manifest.
    public var removed = 0
}

/// The run that holds the store.
public struct RunRecord: Sendable, Hashable, Codable {
    public var id: Int64
    public var host: String
    public var pid: Int32
    public var user: String
    public var manifestPath: String
    public var manifestDigest: String
    public var startedAt: Double
    public var endedAt: Double?
    public var exitStatus: Int32?
    public var command: String
    /// What the run's predictions started from (calibration, history), in words.
    public var predictionBasis: String? = nil
}
