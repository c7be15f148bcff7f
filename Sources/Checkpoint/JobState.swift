/// Where a job stands. The legal moves between states live here and nowhere else.
public enum JobState: String, Sendable, Hashable, Codable, CaseIterable {
    case pending, running, succeeded, failed, interrupted, cancelled

    /// States a job may move to from this one.
    public var successors: Set<JobState> {
        switch self {
        // pending -> failed: it fits no GPU, or its attempts ran out in an earlier run; it fails without running.
        case .pending: return [.running, .cancelled, .failed]
        // running -> pending: an attempt failed and another one is queued.
        case .running: return [.succeeded, .failed, .pending, .interrupted, .cancelled]
        // succeeded -> pending: its content key changed, or its output disappeared.
        case .succeeded: return [.pending]
        case .failed: return [.pending, .cancelled]
        case .interrupted: return [.pending, .running, .cancelled, .failed]
        case .cancelled: return [.pending]
        }
    }

    /// Whether `self -> next` is legal.
    public func canMove(to next: JobState) -> Bool { successors.contains(next) }

    /// True for states that need no more work in this batch.
    public var isFinal: Bool { self == .succeeded || self == .failed || self == .cancelled }
}

/// Errors of the store. An illegal transition is a bug in avatar-batch, never the user's fault.
public enum CheckpointError: Error, CustomStringConvertible, Sendable {
    case illegalTransition(job: String, from: JobState, to: JobState)
    case unknownJob(String)
    case locked(host: String, pid: Int32, since: String, runID: Int64)
    case notWritable(path: String, reason: String)

    public var description: String {
        switch self {
        case let .illegalTransition(job, from, to):
            return "internal error: job \(job) cannot move from \(from.rawValue) to \(to.rawValue); please report this as a bug with the store file"
        case let .unknownJob(id):
            return "internal error: job \(id) is not in the store; please report this as a bug"
        case let .locked(host, pid, since, runID):
            return "another avatar-batch (run \(runID), pid \(pid) on \(host), since \(since)) is running this batch; wait for it, or stop it (kill -INT \(pid)) and run again"
        case let .notWritable(path, reason):
            return "cannot write the store at \(path): \(reason); free disk space or fix permissions, or pass --state PATH"
        }
    }
}
