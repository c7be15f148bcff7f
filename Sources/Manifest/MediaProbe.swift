import Foundation

/// What probing an audio file found.
public enum AudioProbeResult: Sendable, Hashable {
    /// A readable audio stream of this many seconds.
    case duration(Double)
    /// The file is not audio the renderer can read; the text says why.
    case unreadable(String)
}

/// Reads audio durations (ffprobe in production); injected so Manifest stays free of processes.
public protocol MediaProbe: Sendable {
    /// Probes one audio file.
    func probeAudio(at path: String) -> AudioProbeResult
}

/// Reads what can be read without ffprobe: the duration in a RIFF/WAVE header, and image signatures.
public enum MediaSniffer {
    /// Seconds of PCM audio in a WAV file from its header; nil when not a WAV file.
    public static func wavDuration(at path: String) -> Double? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        guard let header = try? handle.read(upToCount: 4096), header.count >= 44 else { return nil }
        let b = [UInt8](header)
        guard b[0..<4] == [0x52, 0x49, 0x46, 0x46][...], b[8..<12] == [0x57, 0x41, 0x56, 0x45][...] else { return nil }
        func u32(_ i: Int) -> Int { Int(b[i]) | Int(b[i + 1]) << 8 | Int(b[i + 2]) << 16 | Int(b[i + 3]) << 24 }
        var i = 12, byteRate = 0
        while i + 8 <= b.count {
            let id = String(decoding: b[i..<i + 4], as: UTF8.self), size = u32(i + 4)
            if id == "fmt ", i + 16 <= b.count { byteRate = u32(i + 16) }
            if id == "data" {
                guard byteRate > 0 else { return nil }
                var dataSize = size
                // Streaming writers (ffmpeg to a pipe) leave 0 or 0xFFFFFFFF: fall back to the file size.
                if dataSize == 0 || dataSize == 0xFFFF_FFFF,
                   let fileSize = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? nil {
                    dataSize = fileSize - (i + 8)
                }
                return Double(dataSize) / Double(byteRate)
            }
            i += 8 + size + (size & 1)
        }
        return nil
    }

    /// The image format from the file's first bytes (`png`, `jpeg`, `webp`, `bmp`), or nil.
    public static func imageFormat(at path: String) -> String? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        guard let head = try? handle.read(upToCount: 12), head.count >= 4 else { return nil }
        let b = [UInt8](head)
        if b.starts(with: [0x89, 0x50, 0x4E, 0x47]) { return "png" }
        if b.starts(with: [0xFF, 0xD8, 0xFF]) { return "jpeg" }
        if b.count >= 12, b.starts(with: [0x52, 0x49, 0x46, 0x46]), b[8..<12] == [0x57, 0x45, 0x42, 0x50][...] { return "webp" }
        if b.starts(with: [0x42, 0x4D]) { return "bmp" }
        return nil
    }
}
