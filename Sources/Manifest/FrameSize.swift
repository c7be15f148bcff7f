/// A video size written `W*H` (Live Avatar's notation), e.g. `688*368`.
public struct FrameSize: Sendable, Hashable, Codable, Comparable, CustomStringConvertible {
    public var width: Int
    public var height: Int

    public init(width: Int, height: Int) {
        self.width = width
        self.height = height
    }

    /// Parses `W*H` (also accepts `x` as the separator); nil when malformed or not positive.
    public init?(_ text: String) {
        let parts = text.split(whereSeparator: { $0 == "*" || $0 == "x" || $0 == "X" }).map(String.init)
        guard parts.count == 2, let w = Int(parts[0]), let h = Int(parts[1]), w > 0, h > 0, w <= 16384, h <= 16384 else { return nil }
        width = w
        height = h
    }

    /// Pixels per frame.
    public var pixels: Int { width * height }
    public var description: String { "\(width)*\(height)" }

    public static func < (a: FrameSize, b: FrameSize) -> Bool { (a.pixels, a.width) < (b.pixels, b.width) }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let size = FrameSize(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "bad size \(text)"))
        }
        self = size
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

/// A setting that may be on, off, or decided by avatar-batch.
public enum Switch: String, Sendable, Hashable, Codable {
    case on, off, auto
}

/// The settings of one clip after defaults are applied: what the renderer is asked to do.
public struct ClipSettings: Sendable, Hashable, Codable {
    public var size: FrameSize
    /// Clips (segments of `infer_frames` frames) to render; resolved from the audio when the manifest says `auto`.
    public var numClip: Int
    public var inferFrames: Int
    public var sampleSteps: Int
    public var onlineDecode: Bool
    public var offloadModel: Bool
    public var fp8: Bool
    public var seed: Int
    public var extraArgs: [String]
    /// The reference image's size in pixels, when known: renderers that fit their frames to the image
    /// (`Framing.fitArea`) render, and so use memory, by it. Not part of the content key (the image's digest is).
    public var reference: FrameSize?

    public init(size: FrameSize, numClip: Int, inferFrames: Int, sampleSteps: Int, onlineDecode: Bool,
                offloadModel: Bool, fp8: Bool, seed: Int, extraArgs: [String] = [], reference: FrameSize? = nil) {
        self.reference = reference
        self.size = size
        self.numClip = numClip
        self.inferFrames = inferFrames
        self.sampleSteps = sampleSteps
        self.onlineDecode = onlineDecode
        self.offloadModel = offloadModel
        self.fp8 = fp8
        self.seed = seed
        self.extraArgs = extraArgs
    }

    enum CodingKeys: String, CodingKey {
        case size, numClip = "num_clip", inferFrames = "infer_frames", sampleSteps = "sample_steps"
        case onlineDecode = "online_decode", offloadModel = "offload_model", fp8, seed, extraArgs = "extra_args"
        case reference
    }

    /// Equal when the renderer is asked the same: the reference image's size is derived from the image, whose
    /// digest the content key already holds, and an attempt recorded before it was known must still compare equal.
    public static func == (a: ClipSettings, b: ClipSettings) -> Bool {
        a.size == b.size && a.numClip == b.numClip && a.inferFrames == b.inferFrames && a.sampleSteps == b.sampleSteps
            && a.onlineDecode == b.onlineDecode && a.offloadModel == b.offloadModel && a.fp8 == b.fp8 && a.seed == b.seed
            && a.extraArgs == b.extraArgs
    }

    public func hash(into h: inout Hasher) {
        h.combine(size); h.combine(numClip); h.combine(inferFrames); h.combine(sampleSteps); h.combine(onlineDecode)
        h.combine(offloadModel); h.combine(fp8); h.combine(seed); h.combine(extraArgs)
    }

    /// Frames rendered in total.
    public var totalFrames: Int { numClip * inferFrames }

    /// `key=value` lines in a fixed order; the content key and the store use these.
    public var canonicalParts: [String] {
        [
            "size=\(size)", "num_clip=\(numClip)", "infer_frames=\(inferFrames)", "sample_steps=\(sampleSteps)",
            "online_decode=\(onlineDecode)", "offload_model=\(offloadModel)", "fp8=\(fp8)", "seed=\(seed)",
            "extra_args=\(extraArgs.joined(separator: "\u{1F}"))",
        ]
    }
}

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
