@testable import avatar_batch
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
}
