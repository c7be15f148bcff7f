@testable import avatar_batch
import Checkpoint
import Foundation
import Manifest
import Testing

/// How calibrate reads S(k) from its probes together (`CalibrationFitter.addSharing`).
@Suite struct CalibrationSharingTests {
    let settings = ClipSettings(size: FrameSize("688*368")!, numClip: 8, inferFrames: 48, sampleSteps: 4, onlineDecode: false, offloadModel: false,
                                fp8: false, seed: 1)

    func emptyFit() -> CalibrationFit {
        CalibrationFit(memoryPoints: [], timePoints: [], startupSeconds: 4, perClipOfflineGB: nil, onlineDecodeGB: nil, sharing: [:],
                       gpuMemoryGB: 140, probes: 0, oomProbes: 0, seconds: 0)
    }

    /// Alone: 4 s of start-up and 6 s of render. Together: two probes whose start-ups took 6 s (they started side by side)
    /// and whose renders, started together, took 8 s each.
    func figures(reported: Bool) -> (alone: [String: CalibrationFitter.Figure], together: [String: CalibrationFitter.Figure]) {
        let alone = ["p": CalibrationFitter.Figure(settings: settings, peak: 20, seconds: 10, oom: false, ended: 100, render: reported ? 6 : nil)]
        let together = (1...2).map { i in
            ("together-2-\(i)", CalibrationFitter.Figure(settings: settings, peak: 20, seconds: 14, oom: false, ended: 214, render: reported ? 8 : nil))
        }
        return (alone, Dictionary(uniqueKeysWithValues: together))
    }

    @Test func coldProbesAreLinedUpByTheRendersTheyReported() {
        // Reported: each rendered 8 s beside the other against 6 s alone, so S(2) = 2 x 6 / 8 = 1.5.
        let (alone, together) = figures(reported: true)
        var fit = emptyFit()
        CalibrationFitter.addSharing(&fit, ran: [2: together], alone: alone, unsharedSeconds: 4)
        #expect(abs((fit.sharing[2] ?? 0) - 1.5) < 1e-6, "\(fit.sharing)")
        #expect(fit.notes.contains("S(2) from the renders the probes reported (their start-ups left out)"), "\(fit.notes)")
        // Not reported: the fitted 4 s start-up comes off each, and the 2 s its start-up took longer beside the other is
        // counted as render (10 s against 6: S(2) = 1.2).
        let (alone2, together2) = figures(reported: false)
        var guessed = emptyFit()
        CalibrationFitter.addSharing(&guessed, ran: [2: together2], alone: alone2, unsharedSeconds: 4)
        #expect(abs((guessed.sharing[2] ?? 0) - 1.2) < 1e-6, "\(guessed.sharing)")
        #expect(guessed.notes.isEmpty, "\(guessed.notes)")
        // A warm calibration's requests have no start-up: their time is their render, whatever a report says.
        var warm = emptyFit()
        CalibrationFitter.addSharing(&warm, ran: [2: together], alone: alone, unsharedSeconds: 0)
        #expect(abs((warm.sharing[2] ?? 0) - 2 * 10.0 / 14) < 1e-6 && warm.notes.isEmpty, "\(warm.sharing)")
    }

    @Test func aResumedCalibrationsSecondsAreItsProbesInAllNotTheTimeItLayDead() throws {
        // A probe store whose first run was killed 5 s in (its last probe done at 5 s, the one it was rendering then
        // interrupted) and taken over at 100 s, which ran 10 s more: 15 s, not 10 (this session's, as stored until
        // 2026-12-02) nor 110 (to the takeover).
        let dir = NSTemporaryDirectory() + "runseconds-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try Store(path: dir + "/state.sqlite")
        let first = try store.acquire(ProcessIdentity(host: "h", pid: 1, startTime: 1), user: "u", command: "c", manifestPath: "m", manifestDigest: "d",
                                      isAlive: { _ in false }, now: 0)
        _ = try store.sync(["a", "b"].map { ManifestJob(id: $0, contentKey: $0, settingsJSON: "{}", output: "\($0).mp4", priority: 0) }, now: 0)
        let start = AttemptStart(settings: settings, change: "", isolated: false, rung: 0, gpu: 0, gpuUUID: nil, logPath: nil)
        let a = try store.startAttempt("a", runID: first, host: "h", start, now: 1)
        try store.finishAttempt(a, AttemptEnd(classification: .succeeded, exitStatus: 0, seconds: 4, jobState: .succeeded), now: 5)
        let b = try store.startAttempt("b", runID: first, host: "h", start, now: 5)
        // The next session takes over at 100 s, closes the dead run and the attempt it left open, and runs 10 s.
        let second = try store.acquire(ProcessIdentity(host: "h", pid: 2, startTime: 2), user: "u", command: "c", manifestPath: "m", manifestDigest: "d",
                                       isAlive: { _ in false }, now: 100)
        try store.finishAttempt(b, AttemptEnd(classification: .interrupted, jobState: .interrupted, reason: "interrupted"), now: 100)
        try store.release(runID: second, exitStatus: 0, now: 110)
        #expect(try CalibrationFitter.runSeconds(dir + "/state.sqlite") == 15)
        #expect(try CalibrationFitter.runSeconds(dir + "/none.sqlite") == 0)
    }
}
