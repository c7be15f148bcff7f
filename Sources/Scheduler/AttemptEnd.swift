import Manifest

/// One attempt's end, classified: what every executor reports and the session's outcome policy reads.
public struct ClassifiedEnd: Sendable, Hashable, Codable {
    public var classification: AttemptClassification
    /// Why, in words (the timeout, the signal, the exit status, the batch scheduler's state).
    public var note: String?
    /// PyTorch's figures when it was an OOM.
    public var oom: OOMReport?

    public init(_ classification: AttemptClassification, note: String? = nil, oom: OOMReport? = nil) {
        self.classification = classification
        self.note = note
        self.oom = oom
    }
}

/// What a process left when it ended, before any policy: the facts an executor gathers.
public struct ProcessEnd: Sendable, Hashable {
    public var exitCode: Int32?
    public var signal: Int32?
    /// The orchestrator stopped it (Ctrl-C, or the run is stopping).
    public var stoppedByUs: Bool
    /// It ran past its timeout and was stopped for that.
    public var timedOut: Bool
    public var timeoutSeconds: Double?
    /// The end of its log (stdout and stderr), where OOM messages are looked for.
    public var logTail: String

    public init(exitCode: Int32?, signal: Int32?, stoppedByUs: Bool = false, timedOut: Bool = false, timeoutSeconds: Double? = nil, logTail: String) {
        self.exitCode = exitCode
        self.signal = signal
        self.stoppedByUs = stoppedByUs
        self.timedOut = timedOut
        self.timeoutSeconds = timeoutSeconds
        self.logTail = logTail
    }
}

/// How a batch scheduler's job (Slurm's) ended, with what the node reported, if it reported.
public struct BatchJobEnd: Sendable, Hashable {
    /// The scheduler's state: COMPLETED, FAILED, TIMEOUT, NODE_FAIL, PREEMPTED, CANCELLED, OUT_OF_MEMORY, ...
    /// (LOST: neither the queue nor accounting knows the job and it left no result).
    public var state: String
    /// The scheduler's exit code as it prints it ("1:0").
    public var exitCode: String?
    /// "Slurm job 12 on node3": how the notes name it.
    public var place: String
    /// The node's own classification of the attempt (nil: it wrote no result).
    public var node: ClassifiedEnd?
    /// The orchestrator cancelled the job (this run or, per the store, an earlier one).
    public var cancelledByUs: Bool
    /// The run is stopping (Ctrl-C).
    public var stopping: Bool

    public init(state: String, exitCode: String? = nil, place: String, node: ClassifiedEnd?, cancelledByUs: Bool = false, stopping: Bool = false) {
        self.state = state
        self.exitCode = exitCode
        self.place = place
        self.node = node
        self.cancelledByUs = cancelledByUs
        self.stopping = stopping
    }
}

/// What to make of a batch job's end.
public enum BatchJobVerdict: Sendable, Hashable {
    /// Not the job's fault (node failure, preemption, our own cancellation): the attempt ends `interrupted`, is not
    /// counted, and the job is queued again (by the next run when this one is stopping).
    case notItsFault(note: String)
    /// Cancelled by someone else (scancel): the job ends `cancelled`; `retry` renders it again.
    case cancelledOutside(note: String)
    /// The attempt's own end, classified like any other: the outcome policy (the ladder) applies.
    case ended(ClassifiedEnd)
}

/// The one classification of an attempt's end, used by every executor.
public enum EndClassifier {
    /// A process's end. nil when it exited 0 on its own: then only its output decides (`succeeded` once the output
    /// is checked and in place, `invalid-output` otherwise).
    ///
    /// Order matters: stopped by us beats everything (it is not the job's fault), a timeout beats the signal that
    /// ended it, an OOM message in the log beats the exit status it caused.
    public static func process(_ e: ProcessEnd, oomPatterns: [String]) -> ClassifiedEnd? {
        if e.stoppedByUs { return ClassifiedEnd(.interrupted) }
        if e.timedOut { return ClassifiedEnd(.timeout, note: "ran past its timeout of \(Int(e.timeoutSeconds ?? 0)) s") }
        if let oom = oom(in: e.logTail, oomPatterns: oomPatterns) { return oom }
        if let sig = e.signal { return ClassifiedEnd(.killed, note: "ended by signal \(sig)") }
        if e.exitCode != 0 { return ClassifiedEnd(.crashed, note: "exit status \(e.exitCode ?? -1)") }
        return nil
    }

    /// An OOM, with PyTorch's figures, when the log shows one of the renderer's OOM patterns.
    static func oom(in logTail: String, oomPatterns: [String]) -> ClassifiedEnd? {
        guard oomPatterns.contains(where: { logTail.contains($0) }) else { return nil }
        return ClassifiedEnd(.oom, oom: OOMReport.parse(logTail))
    }

    /// Scheduler states after which the job is given a new, uncounted attempt.
    public static let notTheJobsFault: Set<String> = ["NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "LOST"]
    /// Scheduler states that say how the job was ended, and win over a node result that only says "stopped by a signal".
    public static let endedByScheduler: Set<String> = ["TIMEOUT", "DEADLINE", "CANCELLED", "OUT_OF_MEMORY"]

    /// A batch job's end. `logTail` is read only when the node wrote no usable result (it died before it could).
    public static func batchJob(_ j: BatchJobEnd, oomPatterns: [String], logTail: () -> String) -> BatchJobVerdict {
        let nodeSucceeded = j.node?.classification == .succeeded
        let cancelledByUs = j.cancelledByUs && !nodeSucceeded
        if notTheJobsFault.contains(j.state) || cancelledByUs || (j.node?.classification == .interrupted && j.stopping) {
            return .notItsFault(note: cancelledByUs ? cancelledNote : "\(j.place) ended \(j.state)")
        }
        if let node = j.node, node.classification != .interrupted, !(endedByScheduler.contains(j.state) && !nodeSucceeded) {
            return .ended(node)
        }
        switch j.state {
        case "TIMEOUT", "DEADLINE":
            return .ended(ClassifiedEnd(.timeout, note: "\(j.place) reached its time limit"))
        case "CANCELLED":
            return .cancelledOutside(note: "\(j.place) was cancelled outside avatar-batch")
        case "OUT_OF_MEMORY":
            return .ended(ClassifiedEnd(.killed, note: "\(j.place) ran out of host memory (raise --mem in sbatch_args)"))
        default:
            if let oom = oom(in: logTail(), oomPatterns: oomPatterns) { return .ended(oom) }
            return .ended(ClassifiedEnd(.crashed, note: "\(j.place) ended \(j.state)\(j.exitCode.map { " (exit \($0))" } ?? "") without a result"))
        }
    }

    /// The note an attempt carries from the moment avatar-batch cancels its batch job until it is collected, so a
    /// run that re-attaches after a second Ctrl-C knows the cancellation was ours.
    public static let cancelledNote = "cancelled by avatar-batch (Ctrl-C)"
}
