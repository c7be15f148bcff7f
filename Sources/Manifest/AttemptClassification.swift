/// How an attempt ended. Shared by the scheduler's retry ladder, the store and the executors.
public enum AttemptClassification: String, Sendable, Hashable, Codable, CaseIterable {
    case succeeded
    /// The renderer ran out of GPU memory (PyTorch/CUDA patterns in its stderr).
    case oom
    /// It ran past its timeout and was stopped.
    case timeout
    /// Non-zero exit that is not an OOM.
    case crashed
    /// Ended by a signal the orchestrator did not send.
    case killed
    /// Exit 0 but the output is missing, empty, unreadable, silent or the wrong length.
    case invalidOutput = "invalid-output"
    /// The orchestrator stopped or died while it ran; does not count as a failure.
    case interrupted
    /// A user cancelled it.
    case cancelled

    /// Whether the attempt counts against `max_attempts`.
    public var countsAsFailure: Bool {
        switch self {
        case .oom, .timeout, .crashed, .killed, .invalidOutput: return true
        case .succeeded, .interrupted, .cancelled: return false
        }
    }
}
