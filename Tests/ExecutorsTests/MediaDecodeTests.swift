import Executors
import Foundation
import Manifest
import TestSupport
import Testing

/// Validation decodes each image's first frame with ffmpeg, so a file whose header is fine and whose body is cut
/// fails before any render (ffmpeg's image loop in the preview renderer never ended on one).
@Suite struct MediaDecodeTests {
    @Test func aTruncatedPNGIsAnErrorAtValidation() throws {
        let probe = try #require(FFprobe.locate(), "ffprobe is needed (scripts/deps.sh installs ffmpeg)")
        let dir = TempDir()
        let png = try #require(FileManager.default.contents(atPath: PackagePaths.root + "/manifests/demo-assets/teacher.png"))
        dir.write("good.png", png)
        dir.write("bad.png", png.prefix(200))
        dir.write("a.wav", Media.wav(seconds: 1))
        dir.write("m.yaml", """
            version: 1
            renderer: preview
            defaults: {prompt: p, num_clip: 1, audio: a.wav}
            clips:
              - {id: good, image: good.png}
              - {id: bad, image: bad.png}
            """)
        let result = ManifestLoader.load(path: dir.path + "/m.yaml", options: LoadOptions(probe: probe, rendererSearchPath: [PackagePaths.renderers]))
        #expect(result.diagnostics.map(\.description) == [
            "\(dir.path)/m.yaml:6:22: error: image \"bad.png\" cannot be decoded (png: chunk too big); re-save it as PNG or JPEG",
        ])
    }
}
