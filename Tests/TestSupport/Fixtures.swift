import Foundation
import Manifest
import Scheduler

/// A scratch directory removed when the value goes away.
public final class TempDir: @unchecked Sendable {
    public let path: String

    public init(_ name: String = "avatar-batch-test") {
        path = NSTemporaryDirectory() + "\(name)-\(UUID().uuidString.prefix(8))"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// Writes text to a file under the directory (creating folders) and returns its path.
    @discardableResult
    public func write(_ relative: String, _ text: String) -> String {
        write(relative, Data(text.utf8))
    }

    @discardableResult
    public func write(_ relative: String, _ data: Data) -> String {
        let p = path + "/" + relative
        try! FileManager.default.createDirectory(atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: p, contents: data)
        return p
    }
}

/// Media made in memory: a silent 16-bit mono WAV of a given length, and a tiny valid PNG.
public enum Media {
    public static func wav(seconds: Double, rate: Int = 16000) -> Data {
        let samples = Int(Double(rate) * seconds)
        var d = Data()
        func u32(_ v: Int) { var x = UInt32(v).littleEndian; d.append(Data(bytes: &x, count: 4)) }
        func u16(_ v: Int) { var x = UInt16(v).littleEndian; d.append(Data(bytes: &x, count: 2)) }
        d.append(contentsOf: Array("RIFF".utf8)); u32(36 + samples * 2); d.append(contentsOf: Array("WAVE".utf8))
        d.append(contentsOf: Array("fmt ".utf8)); u32(16); u16(1); u16(1); u32(rate); u32(rate * 2); u16(2); u16(16)
        d.append(contentsOf: Array("data".utf8)); u32(samples * 2)
        // A quiet tone, so encoders keep an audio stream with content.
        for i in 0..<samples {
            var s = Int16(2000 * sin(Double(i) * 2 * Double.pi * 220 / Double(rate))).littleEndian
            d.append(Data(bytes: &s, count: 2))
        }
        return d
    }

    /// A 1x1 PNG.
    public static let png = Data([
        0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53, 0xDE, 0x00, 0x00, 0x00, 0x0C, 0x49, 0x44, 0x41,
        0x54, 0x08, 0xD7, 0x63, 0xF8, 0xCF, 0xC0, 0x00, 0x00, 0x03, 0x01, 0x01, 0x00, 0x18, 0xDD, 0x8D, 0xB0, 0x00, 0x00, 0x00,
        0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
    ])
}

/// Paths inside this package.
public enum PackagePaths {
    /// The package root (found from this file's location).
    public static var root: String {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.path + "/Package.swift") { return url.path }
        }
        return FileManager.default.currentDirectoryPath
    }

    /// The built `avatar-batch` beside the test bundle (SwiftPM builds it: the Executors tests depend on it).
    public static var binary: String {
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for dir in [beside, beside.deletingLastPathComponent(), URL(fileURLWithPath: root + "/.build/debug")] {
            let p = dir.appendingPathComponent("avatar-batch").path
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return root + "/.build/debug/avatar-batch"
    }

    public static var renderers: String { root + "/renderers" }
    public static var fakeRenderer: String { root + "/renderers/testkit/fake_renderer.py" }
}

/// A profile for tests with a fixed memory model: 10 GB at 384*256 x48, 20 GB at 688*368 x48; 10 ms/frame.
public func testProfile(sharing: [Int: Double] = [:], maxJobs: Int = 4) -> RendererProfile {
    RendererProfile(
        name: "test", command: ["true"], sizes: [FrameSize(width: 384, height: 256), FrameSize(width: 688, height: 368)],
        maxJobsPerGPU: maxJobs,
        memory: MemoryModel(points: [MemoryPoint(size: FrameSize(width: 384, height: 256), inferFrames: 48, gb: 10),
                                     MemoryPoint(size: FrameSize(width: 688, height: 368), inferFrames: 48, gb: 20)],
                            perClipOfflineGB: 0.1, onlineDecodeGB: 1, offloadFactor: 0.5, fp8Factor: 0.6, headroom: 0),
        time: TimeModel(points: [TimePoint(size: FrameSize(width: 384, height: 256), inferFrames: 48, msPerFrame: 10)], startupSeconds: 0),
        sharing: sharing)
}

/// Settings with the given size and clips (48 frames, offline decode).
public func settings(_ size: String = "384*256", clips: Int = 10, online: Bool = false) -> ClipSettings {
    ClipSettings(size: FrameSize(size)!, numClip: clips, inferFrames: 48, sampleSteps: 4, onlineDecode: online, offloadModel: false, fp8: false, seed: 1)
}

/// A seeded generator (SplitMix64) for tests that must replay: the same seed gives the same sequence.
public struct SeededGenerator: RandomNumberGenerator {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
