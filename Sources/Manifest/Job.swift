import Foundation

/// A clip ready to schedule: resolved settings and the content key that decides whether it must be rendered.
public struct Job: Sendable, Hashable, Codable, Identifiable {
    public var clip: ClipSpec
    /// SHA-256 over the sorted `name=value` lines of `JobBuilder.keyParts` (`validate --explain-key` prints them; a
    /// job does not carry them: at about 1 KB a job they were most of a 100,000-job batch's memory).
    public var contentKey: String

    public init(clip: ClipSpec, contentKey: String) {
        self.clip = clip
        self.contentKey = contentKey
    }

    public var id: String { clip.id }
    public var settings: ClipSettings { clip.settings }
}

/// Builds jobs and their content keys: a SHA-256 over an explicit, sorted list of the renderer's identity,
/// the resolved settings, the prompt and output name, and the inputs by content digest. Never the GPU
/// or the time, so the same clip on another card or another day has the same key.
public struct JobBuilder {
    private var digests: [String: String] = [:]
    /// Hash input files' contents (off only for planning without the files).
    public var hashInputs: Bool

    public init(hashInputs: Bool = true) {
        self.hashInputs = hashInputs
    }

    /// The jobs of a manifest, in manifest order.
    public mutating func jobs(for manifest: Manifest) throws -> [Job] {
        let identity = manifest.renderer.identityParts  // once, not per clip
        return try manifest.clips.map { try job(for: $0, identity: identity) }
    }

    /// The job for one clip.
    public mutating func job(for clip: ClipSpec, renderer: RendererProfile) throws -> Job {
        try job(for: clip, identity: renderer.identityParts)
    }

    mutating func job(for clip: ClipSpec, identity: [String]) throws -> Job {
        let parts = try keyParts(for: clip, identity: identity)
        return Job(clip: clip, contentKey: SHA256.hex(parts.joined(separator: "\n")))
    }

    /// Every part of a clip's key, sorted.
    public mutating func keyParts(for clip: ClipSpec, renderer: RendererProfile) throws -> [String] {
        try keyParts(for: clip, identity: renderer.identityParts)
    }

    mutating func keyParts(for clip: ClipSpec, identity: [String]) throws -> [String] {
        var parts = identity + clip.settings.canonicalParts
        parts.append("prompt=\(clip.prompt)")
        parts.append("output=\(clip.output)")
        parts.append("image.sha256=\(try digest(clip.image))")
        parts.append("audio.sha256=\(try digest(clip.audio))")
        return parts.sorted()
    }

    private mutating func digest(_ path: String) throws -> String {
        guard hashInputs else { return "unhashed:" + path }
        if let d = digests[path] { return d }
        let d = try SHA256.hex(fileAt: path)
        digests[path] = d
        return d
    }
}
