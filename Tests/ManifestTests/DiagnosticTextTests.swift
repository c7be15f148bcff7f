import Foundation
import Manifest
import TestSupport
import Testing

/// What a diagnostic prints is one line a terminal can show safely, however hostile the value it quotes.
@Suite struct DiagnosticTextTests {
    static func messages(_ yaml: String) -> [String] {
        let dir = ManifestLoaderTests.fixture()
        return ManifestLoaderTests.load(dir, yaml).diagnostics.map(\.description)
    }

    @Test func controlCharactersFromAKeyAreEscaped() {
        // YAML's own escapes \e (ESC) and \a (BEL) inside a quoted key.
        let out = Self.messages(ManifestLoaderTests.header + "\"\\e[31mRED\\a\": 1\nclips:\n  - {id: a, audio: a.wav}\n")
        #expect(out.count == 1)
        #expect(out[0].contains("\\u{1B}[31mRED\\u{7}"), "\(out)")
        #expect(!out[0].contains("\u{1B}") && !out[0].contains("\u{07}"))
    }

    @Test func aMultiLineValueStaysOnOneLine() {
        let out = Self.messages(ManifestLoaderTests.header + "clips:\n  - id: a\n    audio: a.wav\n    size: |\n      line1\n      line2\n")
        #expect(out.count == 1 && !out[0].contains("\n"), "\(out)")
        #expect(out[0].contains("line1\\nline2"), "\(out)")
    }

    @Test func aHugeValueIsCut() {
        let huge = String(repeating: "x", count: 1 << 20)
        let out = Self.messages(ManifestLoaderTests.header + "clips:\n  - {id: a, audio: a.wav, size: \"\(huge)\"}\n")
        #expect(out.count == 1)
        #expect(out[0].count < 2 * Diagnostic.maxTextLength + 200, "\(out[0].count) characters")
        #expect(out[0].contains("..."))
    }

    @Test func nestingPastTheParsersLimitGetsOurMessage() {
        let out = Self.messages("a: " + String(repeating: "[", count: 2000) + "1" + String(repeating: "]", count: 2000) + "\n")
        #expect(out == ["m.yaml:1:5: error: nesting deeper than the YAML parser allows (1000 levels); flatten the document"], "\(out)")
    }

    @Test func aGPUListedTwiceIsAnError() {
        #expect(GPUSelection.parse("0,0,0").failureMessage == "GPU index 0 is listed more than once")
        #expect(GPUSelection.parse("0,1").failureMessage == nil)
    }

    /// An unreadable (empty) WAV is one error, not a second one asking to install ffprobe.
    @Test func anEmptyWAVIsOneError() {
        struct Probe: MediaProbe {
            func probeAudio(at path: String) -> AudioProbeResult { .unreadable("no audio stream") }
        }
        let dir = ManifestLoaderTests.fixture()
        dir.write("empty.wav", Data())
        dir.write("m.yaml", ManifestLoaderTests.header + "clips:\n  - {id: a, audio: empty.wav, num_clip: auto}\n")
        var o = LoadOptions(probe: Probe(), rendererSearchPath: [PackagePaths.renderers])
        o.requireEnvironment = false
        let r = ManifestLoader.load(path: dir.path + "/m.yaml", options: o)
        #expect(r.diagnostics.map(\.message) == ["audio \"empty.wav\" cannot be read by ffprobe: no audio stream"])
    }
}

extension Result where Failure == GPUSpecError {
    var failureMessage: String? {
        if case let .failure(e) = self { return e.message }
        return nil
    }
}

@Suite struct OnePassTests {
    /// Five problems, one of them a duplicate id between two clips that have errors of their own: five errors.
    @Test func everyProblemInOnePass() {
        let out = DiagnosticTextTests.messages(ManifestLoaderTests.header + """
            clips:
              - {id: a, audio: a.wav, size: "1*1"}
              - {id: a, audio: missing.wav}
              - {id: b, audio: a.wav, infer_frames: 5}
              - {id: c, audio: a.wav, seed: x}

            """)
        #expect(out.count == 5, "\(out)")
        #expect(out.contains { $0.contains("duplicate clip id \"a\"") })
    }
}
