import Foundation

/// One change a retry rung makes to a job's settings.
public struct SettingsChange: Sendable, Hashable, Codable, CustomStringConvertible {
    public var size: FrameSize?
    public var inferFrames: Int?
    public var sampleSteps: Int?
    public var onlineDecode: Bool?
    public var offloadModel: Bool?
    public var fp8: Bool?

    public init(size: FrameSize? = nil, inferFrames: Int? = nil, sampleSteps: Int? = nil, onlineDecode: Bool? = nil,
                offloadModel: Bool? = nil, fp8: Bool? = nil) {
        self.size = size
        self.inferFrames = inferFrames
        self.sampleSteps = sampleSteps
        self.onlineDecode = onlineDecode
        self.offloadModel = offloadModel
        self.fp8 = fp8
    }

    enum CodingKeys: String, CodingKey {
        case size, inferFrames = "infer_frames", sampleSteps = "sample_steps", onlineDecode = "online_decode"
        case offloadModel = "offload_model", fp8
    }

    /// True when it changes nothing.
    public var isEmpty: Bool { self == SettingsChange() }

    /// The settings with this change applied. `num_clip` keeps the same video length when frames shrink.
    public func applied(to s: ClipSettings) -> ClipSettings {
        var r = s
        if let size { r.size = size }
        if let inferFrames, inferFrames != s.inferFrames {
            r.inferFrames = inferFrames
            r.numClip = max(1, (s.totalFrames + inferFrames - 1) / inferFrames)
        }
        if let sampleSteps { r.sampleSteps = sampleSteps }
        if let onlineDecode { r.onlineDecode = onlineDecode }
        if let offloadModel { r.offloadModel = offloadModel }
        if let fp8 { r.fp8 = fp8 }
        return r
    }

    /// `online_decode: true, infer_frames: 32` style text.
    public var description: String {
        var parts: [String] = []
        if let size { parts.append("size: \(size)") }
        if let inferFrames { parts.append("infer_frames: \(inferFrames)") }
        if let sampleSteps { parts.append("sample_steps: \(sampleSteps)") }
        if let onlineDecode { parts.append("online_decode: \(onlineDecode)") }
        if let offloadModel { parts.append("offload_model: \(offloadModel)") }
        if let fp8 { parts.append("fp8: \(fp8)") }
        return parts.isEmpty ? "no change" : parts.joined(separator: ", ")
    }
}

/// One step of the OOM ladder: run alone on a GPU, or change settings.
public enum RetryRung: Sendable, Hashable, Codable, CustomStringConvertible {
    case isolate
    case change(SettingsChange)

    public var description: String {
        switch self {
        case .isolate: return "isolate"
        case let .change(c): return "{\(c)}"
        }
    }
}

/// How failed attempts are retried.
public struct RetryPolicy: Sendable, Hashable, Codable {
    /// Attempts per job that may fail (OOMs and crashes count; interruptions do not).
    public var maxAttempts: Int
    /// Rungs tried in order after OOMs.
    public var onOOM: [RetryRung]

    public init(maxAttempts: Int = 4, onOOM: [RetryRung] = RetryPolicy.defaultLadder) {
        self.maxAttempts = maxAttempts
        self.onOOM = onOOM
    }

    /// Run alone, then decode online, then offload the model: each cuts memory without changing the video.
    public static let defaultLadder: [RetryRung] = [
        .isolate, .change(SettingsChange(onlineDecode: true)), .change(SettingsChange(offloadModel: true)),
    ]
}
