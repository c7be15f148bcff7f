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
    /// Decodes an image's first frame: nil when it decodes, else why not. A header that reads well can still hide a
    /// truncated body, on which a renderer can fail late or, as ffmpeg's image loop does, never end.
    func decodeImage(at path: String) -> String?
}

extension MediaProbe {
    /// Probes that cannot decode images accept every image whose header reads.
    public func decodeImage(at path: String) -> String? { nil }
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

    /// The pixel size recorded in an image's header (PNG IHDR, JPEG SOFn, WebP VP8/VP8L/VP8X, BMP), or nil when the
    /// header cannot be read. Renderers that fit frames to the image (Live Avatar) need it before any GPU time.
    public static func imageSize(at path: String) -> FrameSize? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        // JPEG's SOF marker follows EXIF and ICC segments, which can be large; 1 MiB covers what cameras write.
        guard let data = try? handle.read(upToCount: 1 << 20), data.count >= 26 else { return nil }
        let b = [UInt8](data)
        func be16(_ i: Int) -> Int { Int(b[i]) << 8 | Int(b[i + 1]) }
        func le16(_ i: Int) -> Int { Int(b[i]) | Int(b[i + 1]) << 8 }
        func be32(_ i: Int) -> Int { be16(i) << 16 | be16(i + 2) }
        func le32(_ i: Int) -> Int { le16(i) | le16(i + 2) << 16 }
        func size(_ w: Int, _ h: Int) -> FrameSize? { w > 0 && h > 0 && w <= 1 << 16 && h <= 1 << 16 ? FrameSize(width: w, height: h) : nil }
        switch imageFormat(at: path) {
        case "png":
            guard b[12..<16] == [0x49, 0x48, 0x44, 0x52][...] else { return nil }
            return size(be32(16), be32(20))
        case "jpeg":
            var i = 2
            while i + 9 < b.count {
                guard b[i] == 0xFF else { return nil }
                let marker = b[i + 1]
                if marker == 0xFF { i += 1; continue }
                if marker == 0xD8 || (0xD0...0xD7).contains(marker) || marker == 0x01 { i += 2; continue }
                // SOF0..SOF15 carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not.
                if (0xC0...0xCF).contains(marker) && ![0xC4, 0xC8, 0xCC].contains(marker) {
                    return size(be16(i + 7), be16(i + 5))
                }
                if marker == 0xD9 || marker == 0xDA { return nil }
                i += 2 + be16(i + 2)
            }
            return nil
        case "webp":
            let chunk = String(decoding: b[12..<16], as: UTF8.self)
            if chunk == "VP8 ", b.count >= 30 { return size(le16(26) & 0x3FFF, le16(28) & 0x3FFF) }
            if chunk == "VP8L", b.count >= 25 {
                let bits = le32(21)
                return size((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
            }
            if chunk == "VP8X", b.count >= 30 {
                return size((Int(b[24]) | Int(b[25]) << 8 | Int(b[26]) << 16) + 1, (Int(b[27]) | Int(b[28]) << 8 | Int(b[29]) << 16) + 1)
            }
            return nil
        case "bmp":
            let h = le32(22)
            return size(le32(18), h > 0x7FFF_FFFF ? (1 << 32) - h : h)
        default:
            return nil
        }
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
