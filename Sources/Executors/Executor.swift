import Checkpoint
import Foundation
import Manifest
import Scheduler

/// The seam between a batch session and the places attempts run. See docs/executors.md for the contract in words.
///
/// The session owns the batch: the store, the queue, the outcome policy (the OOM ladder, the failure limit, what
/// the predictor learns) and every write to the store. An executor owns where and how one attempt runs: it is
/// asked which queued jobs it can start now (`admit`), to start an attempt the session has already recorded
/// (`start`), to stop them all (`stopAll`), and to take back attempts an earlier orchestrator left open (`adopt`).
/// It reports through the `ExecutorEvents` it is opened with: facts the store must hold about a running attempt
/// (its process group, its batch job id, its node), which the session records at once, and each attempt's end,
/// classified by `EndClassifier` with its evidence (exit status, signal, log tail, peak memory, output digest).
///
/// An executor never writes the store and never decides a retry: an OOM, a crash or a preemption is reported as
/// what it was, and the session decides what follows. Everything but `abortNow` is called from the session's one
/// task, in order; `settle` is called once for each `ended` event, before the session acts on it.
public protocol AttemptExecutor: AnyObject, Sendable {
    /// What the store records as the attempt's executor.
    var kind: ExecutorKind { get }
    /// The GPUs placement reasons about: this machine's, or a cluster's as its scheduler shares them out. The one
    /// "fits no GPU" rule (`Placer.fitsNoGPU`) reads them.
    var gpus: [GPU] { get }
    /// The host an attempt is recorded on when it starts ("" when the executor's scheduler picks it later).
    var initialHost: String { get }
    /// Whether attempts run as requests to warm workers (their times are predicted without the load).
    var servesWarm: Bool { get }
    /// Whether a running attempt is rendering: not while its warm worker still loads (then it does not share its GPU's
    /// compute, and its own progress has not begun). Asked when the session accounts for sharing.
    func isRendering(_ jobID: String) -> Bool

    /// Starts the executor's own tasks (samplers, pollers) once the session holds the store.
    func open(_ events: ExecutorEvents, runID: Int64) async throws
    /// An attempt an earlier orchestrator left open. `.tracked`: it still runs and the executor now reports its end
    /// like one it started; `.gone(note)`: nothing of it runs any more (the session records it interrupted).
    /// Throws when this executor cannot take it back (a Slurm attempt in a local run).
    func adopt(_ attempt: AttemptRecord, known: AdoptedAttempt) async throws -> Adoption
    /// Which queued jobs start now, and where; and which can never run here. Called after every event.
    func admit(_ queue: JobQueue, predictor: Predictor, now: Double) -> Admission
    /// Starts an attempt the session recorded (its row exists, its job is `running`). Returns once it is under way;
    /// throws when it could not be started at all (the session records it interrupted and stops).
    func start(_ attempt: AttemptLaunch) async throws
    /// The session took an attempt's end: free what it held (its GPU reservation, its port) and return the result
    /// with what only the executor knows added (a sampled memory peak).
    func settle(_ ended: EndedAttempt) -> AttemptResult
    /// The session has recorded the attempt's end in the store: what the executor kept only so a later run could
    /// learn that end (the Slurm node's result file) may go now, and not before, or a run killed in between would
    /// find the attempt open and its evidence gone.
    func recorded(_ ended: EndedAttempt)
    /// First Ctrl-C: stop every attempt; each still reports its end, as `interrupted`.
    func stopAll() async
    /// Second Ctrl-C, on the signal thread, just before the process exits 130: act at once, never wait. Returns
    /// what to tell the user.
    func abortNow() -> String
    /// The run is over, or stopped on an error: stop the executor's own tasks and what it can of its attempts
    /// (the local executor stops and waits for its process groups; Slurm jobs keep running, for the next run to
    /// collect); returns the highest device memory seen per GPU (GB).
    func close() async -> [Int: Double]

    /// Where the batch runs, for its opening line ("8 GPU(s) [earliest-finish]").
    func describe() -> String
    /// How `gb` of predicted memory reads against these GPUs, for a clip that fits none ("40.0 GB = 40 shards; the
    /// largest GPU has 24").
    func need(_ gb: Double) -> String
    /// The closing line of a preflight that refused `count` clips.
    func refusal(_ count: Int) -> String
}

extension AttemptExecutor {
    public func recorded(_ ended: EndedAttempt) {}
    public var servesWarm: Bool { false }
    public func isRendering(_ jobID: String) -> Bool { true }

    public func need(_ gb: Double) -> String { String(format: "%.1f GB, more than any GPU has", gb) }
    public func refusal(_ count: Int) -> String {
        "\(count) clip(s) fit no GPU; change their settings (see above) or run on larger GPUs"
    }
}

/// Where an attempt runs.
public struct Placement: Sendable, Hashable {
    /// The GPU of this machine; nil when the executor's scheduler picks the node and GPU (Slurm).
    public var gpu: GPU?
    /// What was asked of that scheduler, in its words ("--gres=shard:10").
    public var request: String?

    public init(gpu: GPU?, request: String? = nil) {
        self.gpu = gpu
        self.request = request
    }
}

/// One admission round: jobs to start now with their placements, and jobs no placement can ever take.
public struct Admission: Sendable {
    public var starts: [(jobID: String, placement: Placement)] = []
    /// `fitsNoGPU`: the job's GPU memory is the reason, so a lower rung of the OOM ladder may fit (the session tries
    /// that first); otherwise (host RAM, say) the job fails with `reason` as it is.
    public var never: [(jobID: String, reason: String, fitsNoGPU: Bool)] = []
    /// Nothing started, yet something the executor holds frees soon (an idle warm worker asked to exit): the session
    /// waits for the executor's next event instead of giving up on a queue that nothing seems to run.
    public var awaiting = false
    public init() {}
}

/// An attempt the session recorded and asks the executor to start.
public struct AttemptLaunch: Sendable {
    /// The attempt's row as recorded.
    public var attempt: AttemptRecord
    /// Everything the renderer needs (`masterPort` 0: the executor picks one).
    public var plan: AttemptPlan
    public var placement: Placement
    public var estimate: Estimate
    /// Run alone on its GPU (the OOM ladder's `isolate`).
    public var isolate: Bool
    /// What differs from the clip's own settings, for the progress line.
    public var change: String
}

/// What the session knows of an attempt left open, for `adopt`.
public struct AdoptedAttempt: Sendable {
    /// Whether its clip is still in the manifest (a batch job of a clip that left it is not followed again).
    public var inManifest: Bool
    /// Seconds between SIGTERM and SIGKILL when what is left of it is stopped (`--grace`).
    public var graceSeconds: Double
}

public enum Adoption: Sendable {
    case tracked
    case gone(note: String)
}

/// An attempt's end as an executor reports it.
public struct EndedAttempt: Sendable {
    public var jobID: String
    public var attemptID: Int64
    /// Classified by `EndClassifier`: `interrupted` when it was not the job's fault (stopped by us, a node failure,
    /// a preemption), `cancelled` when someone else cancelled it.
    public var result: AttemptResult

    public init(jobID: String, attemptID: Int64, result: AttemptResult) {
        self.jobID = jobID
        self.attemptID = attemptID
        self.result = result
    }
}

/// A fact about a running attempt that the store must hold, so a later run can find or stop it.
public enum AttemptFact: Sendable, Hashable {
    /// The renderer's process: its pid, start time (jiffies since boot) and process group.
    case process(pid: Int32, start: UInt64, group: Int32)
    /// The batch scheduler's job id.
    case batchJob(id: String)
    /// The node it runs on, once known.
    case host(String)
    /// A note kept until the attempt ends (the end replaces it).
    case note(String)
    /// The warm worker that serves it.
    case worker(String)
}

/// What the store keeps of a warm worker's life (docs/workers.md).
public enum WorkerFact: Sendable {
    /// Launched: its process is known, so a later run can stop what is left of it.
    case started(WorkerRecord)
    /// Loaded: `gpuModel` (`Learning.modelKey`) and `loadSettings` say what the load was of, for the history.
    case ready(id: String, loadSeconds: Double?, residentGB: Double?, gpuModel: String, loadSettings: String)
    /// It finished a request (done or failed).
    case served(id: String)
    /// Its process is gone.
    case ended(id: String, note: String)
}

/// What an executor reports.
public enum ExecutorEvent: Sendable {
    case ended(EndedAttempt)
    /// A line for the progress log.
    case say(String)
    /// The executor cannot go on; the session stops the run with this error.
    case failed(String)
    /// Something the executor holds changed (a worker became ready, or exited and freed its GPU memory): admit again.
    case changed
}

/// Where an executor reports. Events from one task arrive in the order they were posted; `record` is written by
/// the session's recorder before it returns, so a fact is in the store before the executor acts on it (a
/// cancellation noted before the scancel that a second Ctrl-C could cut short).
public final class ExecutorEvents: Sendable {
    let continuation: AsyncStream<SessionEvent>.Continuation
    let recorder: @Sendable (Int64, AttemptFact) throws -> Void
    let workerRecorder: @Sendable (WorkerFact) throws -> Void

    init(_ continuation: AsyncStream<SessionEvent>.Continuation, recorder: @escaping @Sendable (Int64, AttemptFact) throws -> Void,
         workerRecorder: @escaping @Sendable (WorkerFact) throws -> Void = { _ in }) {
        self.continuation = continuation
        self.recorder = recorder
        self.workerRecorder = workerRecorder
    }

    /// Has the session record a worker's fact now (the same way as `record`).
    public func record(_ fact: WorkerFact) {
        do { try workerRecorder(fact) } catch { post(.failed("cannot record \(fact): \(error)")) }
    }

    public func post(_ event: ExecutorEvent) { continuation.yield(.executor(event)) }

    /// Has the session record a fact about a running attempt now. A store that cannot take it stops the run.
    public func record(_ attemptID: Int64, _ fact: AttemptFact) {
        do { try recorder(attemptID, fact) } catch { post(.failed("cannot record \(fact) for attempt \(attemptID): \(error)")) }
    }
}

/// What wakes the session.
enum SessionEvent: Sendable {
    case executor(ExecutorEvent)
    case signal
    case tick
}
