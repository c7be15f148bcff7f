import Foundation
import Manifest
import TestSupport
import Testing

@Suite struct JobBuilderTests {
    func clip(_ dir: TempDir, audio: String = "a.wav", prompt: String = "x") -> ClipSpec {
        ClipSpec(id: "a", image: dir.path + "/face.png", audio: dir.path + "/" + audio, prompt: prompt, output: "a.mp4", settings: settings())
    }

    @Test func keyIsStableAndExplainsItself() throws {
        let dir = TempDir()
        dir.write("face.png", Media.png)
        dir.write("a.wav", Media.wav(seconds: 1))
        var b = JobBuilder()
        let j1 = try b.job(for: clip(dir), renderer: testProfile())
        let j2 = try b.job(for: clip(dir), renderer: testProfile())
        #expect(j1.contentKey == j2.contentKey)
        // The parts are computed again when asked for (a job does not carry them: 100,000 jobs would hold 100 MB).
        let parts = try b.keyParts(for: j1.clip, renderer: testProfile())
        #expect(parts == parts.sorted())
        #expect(parts.contains("num_clip=10"))
        #expect(parts.contains { $0.hasPrefix("audio.sha256=") })
        #expect(SHA256.hex(parts.joined(separator: "\n")) == j1.contentKey)
    }

    @Test func keyChangesWithAudioContentSettingsAndRenderer() throws {
        let dir = TempDir()
        dir.write("face.png", Media.png)
        dir.write("a.wav", Media.wav(seconds: 1))
        dir.write("b.wav", Media.wav(seconds: 2))
        var b = JobBuilder()
        let base = try b.job(for: clip(dir), renderer: testProfile()).contentKey
        #expect(try b.job(for: clip(dir, audio: "b.wav"), renderer: testProfile()).contentKey != base)
        #expect(try b.job(for: clip(dir, prompt: "y"), renderer: testProfile()).contentKey != base)
        var other = testProfile()
        other.command = ["false"]
        #expect(try b.job(for: clip(dir), renderer: other).contentKey != base)
        var c = clip(dir)
        c.priority = 9  // priority is scheduling, not content
        #expect(try b.job(for: c, renderer: testProfile()).contentKey == base)
    }
}
