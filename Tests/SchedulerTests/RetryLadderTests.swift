import Manifest
import Scheduler
import TestSupport
import Testing

@Suite struct RetryLadderTests {
    let base = settings("688*368", clips: 50)
    let policy = RetryPolicy(maxAttempts: 5, onOOM: [.isolate, .change(SettingsChange(onlineDecode: true)), .change(SettingsChange(inferFrames: 32))])

    func entry(_ c: AttemptClassification, _ s: ClipSettings, isolated: Bool = false, rung: Int = 0) -> AttemptHistoryEntry {
        AttemptHistoryEntry(classification: c, settings: s, isolated: isolated, rung: rung)
    }

    @Test func walksTheLadderOnOOM() {
        #expect(RetryLadder.next(history: [], base: base, policy: policy) == .run(settings: base, isolate: false, rung: 0, reason: "first attempt"))
        guard case let .run(s1, iso1, r1, _) = RetryLadder.next(history: [entry(.oom, base)], base: base, policy: policy) else { Issue.record("no run"); return }
        #expect(s1 == base && iso1 && r1 == 1)
        guard case let .run(s2, iso2, r2, _) = RetryLadder.next(history: [entry(.oom, base), entry(.oom, base, isolated: true, rung: 1)], base: base, policy: policy) else { Issue.record("no run"); return }
        #expect(s2.onlineDecode && iso2 && r2 == 2)
        guard case let .run(s3, _, r3, _) = RetryLadder.next(history: [entry(.oom, s2, isolated: true, rung: 2)], base: base, policy: policy) else { Issue.record("no run"); return }
        // infer_frames 48 -> 32 keeps the video length: 50 x 48 = 2400 frames = 75 clips of 32.
        #expect(s3.inferFrames == 32 && s3.numClip == 75 && s3.onlineDecode && r3 == 3)
        guard case .giveUp = RetryLadder.next(history: [entry(.oom, s3, isolated: true, rung: 3)], base: base, policy: policy) else { Issue.record("did not give up"); return }
    }

    @Test func skipsRungsThatChangeNothing() {
        let online = settings("688*368", clips: 50, online: true)
        let p = RetryPolicy(maxAttempts: 5, onOOM: [.change(SettingsChange(onlineDecode: true)), .isolate])
        guard case let .run(_, iso, rung, _) = RetryLadder.next(history: [entry(.oom, online)], base: online, policy: p) else { Issue.record("no run"); return }
        #expect(iso && rung == 2)
    }

    @Test func crashesRetryUnchangedUntilMaxAttempts() {
        guard case let .run(s, _, _, reason) = RetryLadder.next(history: [entry(.crashed, base)], base: base, policy: policy) else { Issue.record("no run"); return }
        #expect(s == base && reason == "retry after crashed, unchanged")
        let five = Array(repeating: entry(.crashed, base), count: 5)
        #expect(RetryLadder.next(history: five, base: base, policy: policy) == .giveUp(reason: "5 failed attempts (max_attempts 5); last: crashed"))
    }

    @Test func interruptionsDoNotCount() {
        let history = Array(repeating: entry(.interrupted, base), count: 10)
        guard case .run = RetryLadder.next(history: history, base: base, policy: policy) else { Issue.record("gave up on interruptions"); return }
        #expect(RetryLadder.next(history: [entry(.succeeded, base)], base: base, policy: policy) == .done)
    }
}
