import Manifest
import TestSupport
import Testing

/// The `memory:` section of a renderer profile: the offline decode cost per pixel-frame, read and range-checked.
@Suite struct ProfileMemoryTests {
    func load(_ memory: String) -> (RendererProfile?, [String]) {
        let dir = TempDir("profile-memory")
        let path = dir.write("p.yaml", """
            name: m
            command: [render, "{output}"]
            memory:
            \(memory)
            """)
        let (p, d) = ProfileLoader.load(path: path)
        return (p, d.map { $0.description.replacingOccurrences(of: dir.path + "/", with: "") })
    }

    @Test func theOfflineCostPerPixelFrameIsReadAndUsed() throws {
        let (p, d) = load("  points: [{size: \"384*256\", infer_frames: 48, gb: 10}]\n  per_clip_offline_gb: 0.05\n  offline_gb_per_megapixel_frame: 0.0113")
        #expect(d.isEmpty, "\(d)")
        let m = try #require(p).memory
        #expect(m.offlinePerMegapixelFrameGB == 0.0113 && m.perClipOfflineGB == 0.05)
        #expect(abs(m.offlineClipGB(pixelFrames: 1280 * 720 * 48) - 0.0113 * 44.2368) < 1e-9)
        // Without it, the constant per clip.
        #expect(try #require(load("  points: [{size: \"384*256\", infer_frames: 48, gb: 10}]\n  per_clip_offline_gb: 0.05").0).memory.offlineClipGB(pixelFrames: 1e9) == 0.05)
    }

    @Test func aNegativeOfflineCostIsRefusedWithItsLine() {
        let (p, d) = load("  points: [{size: \"384*256\", infer_frames: 48, gb: 10}]\n  offline_gb_per_megapixel_frame: -1")
        #expect(p == nil)
        #expect(d.count == 1 && d[0].hasPrefix("p.yaml:5:35: error:") && d[0].contains("offline_gb_per_megapixel_frame"), "\(d)")
    }
}
