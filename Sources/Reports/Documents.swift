import Checkpoint
import Foundation
import Manifest

/// The one encoder configuration of every JSON the CLI prints or writes: pretty, keys sorted (the same value
/// always prints the same text), slashes as they are.
public enum JSONOutput {
    public static var encoder: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return e
    }

    /// The same rules on one line: for documents written one per line (status's job list).
    public static var lineEncoder: JSONEncoder {
        let e = encoder
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }

    /// The text of `value`, with a final newline.
    public static func text<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try encoder.encode(value), as: UTF8.self) + "\n"
    }

    /// Prints `value` on standard output.
    public static func print<T: Encodable>(_ value: T) throws {
        FileHandle.standardOutput.write(Data(try text(value).utf8))
    }
}

/// Jobs by state, every state present (docs/schemas/counts).
public struct StateCounts: Codable, Sendable, Hashable {
    public var pending = 0, running = 0, succeeded = 0, failed = 0, interrupted = 0, cancelled = 0

    public init(_ counts: [JobState: Int]) {
        for (state, n) in counts {
            switch state {
            case .pending: pending = n
            case .running: running = n
            case .succeeded: succeeded = n
            case .failed: failed = n
            case .interrupted: interrupted = n
            case .cancelled: cancelled = n
            }
        }
    }

    public subscript(_ state: JobState) -> Int {
        switch state {
        case .pending: pending
        case .running: running
        case .succeeded: succeeded
        case .failed: failed
        case .interrupted: interrupted
        case .cancelled: cancelled
        }
    }
}

/// One attempt as `status --json` and the report show it.
public struct AttemptDocument: Codable, Sendable {
    public var number: Int
    /// What differs from the clip's own settings ("isolate, online_decode: true"); empty when nothing does.
    public var settings: String
    public var resolvedSettings: ClipSettings?
    public var isolated: Bool
    public var executor: String
    public var host: String
    /// The GPU index on the host (local attempts); null where the executor's scheduler chose it.
    public var gpu: Int?
    public var startedAt: Double
    public var endedAt: Double?
    /// null while it runs.
    public var classification: String?
    public var exitStatus: Int32?
    public var signal: Int32?
    public var peakGB: Double?
    public var seconds: Double?
    public var log: String?
    public var note: String?
    public var stderrTail: String?
    public var slurmJobID: String?
    /// The warm worker that served it (docs/workers.md); absent for a process of its own.
    public var worker: String?
    /// Where the prediction it was placed with came from (docs/calibration.md).
    public var predictedFrom: String?

    enum CodingKeys: String, CodingKey {
        case number, settings, resolvedSettings = "resolved_settings", isolated, executor, host, gpu, startedAt = "started_at",
             endedAt = "ended_at", classification, exitStatus = "exit_status", signal, peakGB = "peak_gb", seconds, log, note,
             stderrTail = "stderr_tail", slurmJobID = "slurm_job_id", worker, predictedFrom = "predicted_from"
    }

    public init(_ a: AttemptRecord) {
        number = a.number
        settings = a.change
        resolvedSettings = a.settings
        isolated = a.isolated
        executor = a.executor.rawValue
        host = a.host
        gpu = a.gpu
        startedAt = a.startedAt
        endedAt = a.endedAt
        classification = a.classification?.rawValue
        exitStatus = a.exitStatus
        signal = a.signal
        peakGB = a.peakGB
        seconds = a.seconds
        log = a.logPath
        note = a.note
        stderrTail = a.stderrTail
        slurmJobID = a.slurmJobID
        worker = a.workerID
        predictedFrom = a.predictedFrom
    }

    /// `classification`, `gpu` and `exit_status` are always present (null when unknown); the rest only when known.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(number, forKey: .number)
        try c.encode(settings, forKey: .settings)
        try c.encodeIfPresent(resolvedSettings, forKey: .resolvedSettings)
        try c.encode(isolated, forKey: .isolated)
        try c.encode(executor, forKey: .executor)
        try c.encode(host, forKey: .host)
        try c.encode(gpu, forKey: .gpu)
        try c.encode(startedAt, forKey: .startedAt)
        try c.encodeIfPresent(endedAt, forKey: .endedAt)
        try c.encode(classification, forKey: .classification)
        try c.encode(exitStatus, forKey: .exitStatus)
        try c.encodeIfPresent(signal, forKey: .signal)
        try c.encodeIfPresent(peakGB, forKey: .peakGB)
        try c.encodeIfPresent(seconds, forKey: .seconds)
        try c.encodeIfPresent(log, forKey: .log)
        try c.encodeIfPresent(note, forKey: .note)
        try c.encodeIfPresent(stderrTail, forKey: .stderrTail)
        try c.encodeIfPresent(slurmJobID, forKey: .slurmJobID)
        try c.encodeIfPresent(worker, forKey: .worker)
        try c.encodeIfPresent(predictedFrom, forKey: .predictedFrom)
    }
}

/// One job with its attempts, the same in `status --json` and the report.
public struct JobDocument: Codable, Sendable {
    public var id: String
    public var state: String
    public var output: String
    public var inManifest: Bool
    public var contentKey: String
    public var attemptCount: Int
    public var reason: String?
    public var predictedGB: Double?
    public var predictedS: Double?
    public var observedPeakGB: Double?
    public var observedS: Double?
    public var attempts: [AttemptDocument]

    enum CodingKeys: String, CodingKey {
        case id, state, output, inManifest = "in_manifest", contentKey = "content_key", attemptCount = "attempt_count", reason,
             predictedGB = "predicted_gb", predictedS = "predicted_s", observedPeakGB = "observed_peak_gb", observedS = "observed_s", attempts
    }

    public init(_ j: JobRecord, attempts: [AttemptRecord]) {
        id = j.id
        state = j.state.rawValue
        output = j.output
        inManifest = j.inManifest
        contentKey = j.contentKey
        attemptCount = j.attemptCount
        reason = j.reason
        predictedGB = j.predictedGB
        predictedS = j.predictedSeconds
        observedPeakGB = j.observedPeakGB
        observedS = j.observedSeconds
        self.attempts = attempts.map(AttemptDocument.init)
    }
}

/// One run of the orchestrator on the batch.
public struct RunDocument: Codable, Sendable {
    public var id: Int64
    public var host: String
    public var pid: Int32
    public var command: String
    public var startedAt: Double
    public var endedAt: Double?
    public var exitStatus: Int32?

    enum CodingKeys: String, CodingKey {
        case id, host, pid, command, startedAt = "started_at", endedAt = "ended_at", exitStatus = "exit_status"
    }

    public init(_ r: RunRecord) {
        id = r.id
        host = r.host
        pid = r.pid
        command = r.command
        startedAt = r.startedAt
        endedAt = r.endedAt
        exitStatus = r.exitStatus
    }
}

/// `report --json` (docs/schemas/report.schema.json).
public struct ReportDocument: Codable, Sendable {
    public var schema = "avatar-batch-report/1"
    public var name: String
    public var wallS: Double
    public var counts: StateCounts
    public var runs: [RunDocument]
    public var jobs: [JobDocument]
    /// Warm workers' lives, load times and clips served (empty when none ran).
    public var workers: [WorkerDocument] = []
    /// Set in the copy given to a `notify:` command: the run's exit status, and whether --max-failures stopped it.
    public var exitStatus: Int32?
    public var stoppedByMaxFailures: Bool?

    enum CodingKeys: String, CodingKey {
        case schema, name, wallS = "wall_s", counts, runs, jobs, workers, exitStatus = "exit_status", stoppedByMaxFailures = "stopped_by_max_failures"
    }
}

/// The orchestrator that holds a store now.
public struct HolderDocument: Codable, Sendable {
    public var host: String
    public var pid: Int32
    public var runID: Int64
    public var since: Double

    enum CodingKeys: String, CodingKey { case host, pid, runID = "run_id", since }

    public init(host: String, pid: Int32, runID: Int64, since: Double) {
        self.host = host
        self.pid = pid
        self.runID = runID
        self.since = since
    }
}

/// `status --json` without its job list (`--summary`); the full form adds `jobs`, streamed (docs/schemas/status.schema.json).
public struct StatusSummaryDocument: Codable, Sendable {
    public var store: String
    /// null when no orchestrator holds the store.
    public var runningOrchestrator: HolderDocument?
    public var counts: StateCounts
    /// The running orchestrator's live warm workers (empty when none runs).
    public var workers: [WorkerDocument]
    /// What the latest run's predictions started from (calibration, history); absent before any run said.
    public var predictionBasis: String?

    enum CodingKeys: String, CodingKey { case store, runningOrchestrator = "running_orchestrator", counts, workers, predictionBasis = "prediction_basis" }

    public init(store: String, runningOrchestrator: HolderDocument?, counts: StateCounts, workers: [WorkerDocument] = [], predictionBasis: String? = nil) {
        self.store = store
        self.runningOrchestrator = runningOrchestrator
        self.counts = counts
        self.workers = workers
        self.predictionBasis = predictionBasis
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(store, forKey: .store)
        try c.encode(runningOrchestrator, forKey: .runningOrchestrator)
        try c.encode(counts, forKey: .counts)
        try c.encode(workers, forKey: .workers)
        try c.encodeIfPresent(predictionBasis, forKey: .predictionBasis)
    }
}

/// One warm worker (docs/workers.md), as `status` and reports show it.
public struct WorkerDocument: Codable, Sendable {
    public var id: String
    public var host: String
    public var gpu: Int?
    public var pid: Int32?
    /// `name=value, ...` of the settings it was loaded with ("" when the renderer has none).
    public var loadSettings: String
    /// loading, ready (waiting or serving), or ended.
    public var state: String
    /// The job it renders now, if any.
    public var serving: String?
    /// Requests it finished.
    public var served: Int
    public var residentGB: Double?
    public var loadSeconds: Double?
    public var startedAt: Double
    public var readyAt: Double?
    public var endedAt: Double?
    public var endNote: String?
    public var log: String?

    enum CodingKeys: String, CodingKey {
        case id, host, gpu, pid, loadSettings = "load_settings", state, serving, served, residentGB = "resident_gb",
             loadSeconds = "load_seconds", startedAt = "started_at", readyAt = "ready_at", endedAt = "ended_at", endNote = "end_note", log
    }

    public init(_ w: WorkerRecord, serving: String? = nil) {
        id = w.id
        host = w.host
        gpu = w.gpu
        pid = w.pid
        loadSettings = w.loadSettings
        state = w.endedAt != nil ? "ended" : w.readyAt != nil ? "ready" : "loading"
        self.serving = serving
        served = w.served
        residentGB = w.residentGB
        loadSeconds = w.loadSeconds
        startedAt = w.startedAt
        readyAt = w.readyAt
        endedAt = w.endedAt
        endNote = w.endNote
        log = w.logPath
    }
}

/// `validate --json` (docs/schemas/validate.schema.json): a valid manifest's jobs, or the diagnostics of an invalid one.
public struct ValidationDocument: Codable, Sendable {
    public var valid: Bool
    public var name: String?
    public var renderer: String?
    public var outputDir: String?
    public var jobs: [JobPlanEntry]?
    public var diagnostics: [DiagnosticDocument]?

    enum CodingKeys: String, CodingKey { case valid, name, renderer, outputDir = "output_dir", jobs, diagnostics }

    public init(valid: Bool, name: String? = nil, renderer: String? = nil, outputDir: String? = nil, jobs: [JobPlanEntry]? = nil,
                diagnostics: [DiagnosticDocument]? = nil) {
        self.valid = valid
        self.name = name
        self.renderer = renderer
        self.outputDir = outputDir
        self.jobs = jobs
        self.diagnostics = diagnostics
    }

    /// One clip of a valid manifest, resolved.
    public struct JobPlanEntry: Codable, Sendable {
        public var id, contentKey, output, image, audio, size: String
        public var numClip, inferFrames, sampleSteps, seed, priority: Int
        public var onlineDecode, offloadModel, fp8: Bool
        public var location: String

        enum CodingKeys: String, CodingKey {
            case id, contentKey = "content_key", output, image, audio, size, numClip = "num_clip", inferFrames = "infer_frames",
                 sampleSteps = "sample_steps", seed, priority, onlineDecode = "online_decode", offloadModel = "offload_model", fp8, location
        }

        public init(_ j: Job) {
            id = j.id
            contentKey = j.contentKey
            output = j.clip.output
            image = j.clip.image
            audio = j.clip.audio
            size = j.settings.size.description
            numClip = j.settings.numClip
            inferFrames = j.settings.inferFrames
            sampleSteps = j.settings.sampleSteps
            seed = j.settings.seed
            priority = j.clip.priority
            onlineDecode = j.settings.onlineDecode
            offloadModel = j.settings.offloadModel
            fp8 = j.settings.fp8
            location = "\(j.clip.location)"
        }
    }
}

/// One diagnostic: where, how bad, what, and the fix.
public struct DiagnosticDocument: Codable, Sendable {
    public var severity, file, message: String
    public var line, column: Int
    public var fix: String?

    public init(_ d: Diagnostic) {
        severity = d.severity.rawValue
        file = d.file
        line = d.position.line
        column = d.position.column
        message = d.message
        fix = d.fix
    }
}
