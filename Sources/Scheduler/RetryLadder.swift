import Manifest

/// One past attempt, as the ladder needs it.
public struct AttemptHistoryEntry: Sendable, Hashable {
    public var classification: AttemptClassification
    public var settings: ClipSettings
    public var isolated: Bool
    /// How many OOM rungs had been applied for this attempt.
    public var rung: Int

    public init(classification: AttemptClassification, settings: ClipSettings, isolated: Bool, rung: Int) {
        self.classification = classification
        self.settings = settings
        self.isolated = isolated
        self.rung = rung
    }
}

/// What to do next with a job.
public enum RetryAction: Sendable, Hashable {
    /// Run (again) with these settings; `rung` counts the OOM rungs applied.
    case run(settings: ClipSettings, isolate: Bool, rung: Int, reason: String)
    /// Stop: the job failed for good.
    case giveUp(reason: String)
    /// Nothing to do: it succeeded.
    case done
}

/// The OOM fallback ladder: attempt history in, next action out. Pure; executors do the waiting.
///
/// - No attempts: run with the clip's settings.
/// - Last attempt interrupted or cancelled: run it again as it was (not a failure).
/// - OOM: apply the next rung of `retry.on_oom` (rungs that would change nothing are skipped); `isolate`
///   and every settings change accumulate, so each step only ever uses less memory.
/// - Crash, kill, timeout, invalid output: run again unchanged.
/// - Give up when failures reach `max_attempts` or the OOM ladder is exhausted.
public enum RetryLadder {
    public static func next(history: [AttemptHistoryEntry], base: ClipSettings, policy: RetryPolicy) -> RetryAction {
        guard let last = history.last else {
            return .run(settings: base, isolate: false, rung: 0, reason: "first attempt")
        }
        let failures = history.filter { $0.classification.countsAsFailure }.count
        switch last.classification {
        case .succeeded:
            return .done
        case .interrupted, .cancelled:
            return .run(settings: last.settings, isolate: last.isolated, rung: last.rung, reason: "resuming after \(last.classification.rawValue)")
        default:
            break
        }
        if failures >= policy.maxAttempts {
            return .giveUp(reason: "\(failures) failed attempt\(failures == 1 ? "" : "s") (max_attempts \(policy.maxAttempts)); last: \(last.classification.rawValue)")
        }
        guard last.classification == .oom else {
            return .run(settings: last.settings, isolate: last.isolated, rung: last.rung, reason: "retry after \(last.classification.rawValue), unchanged")
        }
        var rung = last.rung
        while rung < policy.onOOM.count {
            let (settings, isolate) = apply(policy.onOOM, upTo: rung + 1, to: base)
            rung += 1
            if settings != last.settings || (isolate && !last.isolated) {
                return .run(settings: settings, isolate: isolate, rung: rung, reason: "OOM: rung \(rung) \(policy.onOOM[rung - 1])")
            }
        }
        return .giveUp(reason: "out of memory with every rung of the OOM ladder applied (\(policy.onOOM.map(\.description).joined(separator: ", ")))")
    }

    /// The settings and isolation after the first `count` rungs.
    public static func apply(_ rungs: [RetryRung], upTo count: Int, to base: ClipSettings) -> (ClipSettings, Bool) {
        var settings = base
        var isolate = false
        for rung in rungs.prefix(count) {
            switch rung {
            case .isolate: isolate = true
            case let .change(c): settings = c.applied(to: settings)
            }
        }
        return (settings, isolate)
    }
}

extension RetryLadder {
    /// "Degrade until it fits": from rung `from`, the first later rung of `rungs` whose settings `fits` accepts
    /// (what an OOM taught makes a clip too big for every GPU as it is: go down the ladder without running it).
    /// nil when no rung fits.
    public static func degradeUntilItFits(_ rungs: [RetryRung], base: ClipSettings, from rung: Int,
                                          fits: (ClipSettings, Bool) -> Bool) -> (settings: ClipSettings, isolate: Bool, rung: Int)? {
        guard rung < rungs.count else { return nil }
        for next in (rung + 1)...rungs.count {
            let (settings, isolate) = apply(rungs, upTo: next, to: base)
            if fits(settings, isolate) { return (settings, isolate, next) }
        }
        return nil
    }

    /// The change from the clip's own settings, in words ("isolate, size: 384*256"); empty when none.
    public static func describeChange(_ base: ClipSettings, _ s: ClipSettings, _ isolate: Bool) -> String {
        var parts: [String] = []
        if isolate { parts.append("isolate") }
        if s.size != base.size { parts.append("size: \(s.size)") }
        if s.inferFrames != base.inferFrames { parts.append("infer_frames: \(s.inferFrames)") }
        if s.sampleSteps != base.sampleSteps { parts.append("sample_steps: \(s.sampleSteps)") }
        if s.onlineDecode != base.onlineDecode { parts.append("online_decode: \(s.onlineDecode)") }
        if s.offloadModel != base.offloadModel { parts.append("offload_model: \(s.offloadModel)") }
        if s.fp8 != base.fp8 { parts.append("fp8: \(s.fp8)") }
        return parts.joined(separator: ", ")
    }
}
