import Foundation

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

    /// A clip's sample steps when neither it, the manifest's defaults nor the renderer's say.
    public static let defaultSampleSteps = 4

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

    /// The settings' placeholders as an argv template spells them: `size`, `width` and `height` (of `frame`, the frame
    /// the renderer generates), the counts and the seed, and the booleans as Python's `True`/`False`.
    public func placeholderValues(frame: FrameSize) -> [String: String] {
        let py: (Bool) -> String = { $0 ? "True" : "False" }
        return [
            "size": size.description, "width": String(frame.width), "height": String(frame.height), "num_clip": String(numClip),
            "infer_frames": String(inferFrames), "sample_steps": String(sampleSteps), "seed": String(seed),
            "offload_model": py(offloadModel), "online_decode": py(onlineDecode), "fp8": py(fp8),
        ]
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
