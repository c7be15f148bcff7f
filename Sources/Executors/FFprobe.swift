import Foundation
import Manifest
import Subprocess

/// What ffprobe says about a media file.
public struct MediaInfo: Sendable, Hashable {
    public var duration: Double?
    public var hasVideo: Bool
    public var hasAudio: Bool
    public var width: Int?
    public var height: Int?
}

/// ffprobe, for audio durations at validation and output checks after a render.
public struct FFprobe: MediaProbe {
    public var executable: String

    public init(executable: String = "ffprobe") {
        self.executable = executable
    }

    /// The ffprobe on PATH, or nil when it is not installed.
    public static func locate() -> FFprobe? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") where FileManager.default.isExecutableFile(atPath: "\(dir)/ffprobe") {
            return FFprobe(executable: "\(dir)/ffprobe")
        }
        return nil
    }

    /// Reads streams and duration; nil with ffprobe's message when it rejects the file.
    public func info(_ path: String) async -> Result<MediaInfo, MediaError> {
        let result: ExecutionRecord
        do {
            let r = try await Subprocess.run(
                .path(.init(executable)),
                arguments: ["-v", "error", "-show_entries", "stream=codec_type,width,height:format=duration", "-of", "json", "--", path],
                output: .string(limit: 1 << 20), error: .string(limit: 1 << 16))
            result = ExecutionRecord(ok: r.terminationStatus.isSuccess, out: r.standardOutput, err: r.standardError)
        } catch {
            return .failure(MediaError(message: "ffprobe could not run: \(error)"))
        }
        guard result.ok else {
            let why = result.err.split(whereSeparator: \.isNewline).last.map(String.init) ?? "ffprobe failed"
            return .failure(MediaError(message: why.replacingOccurrences(of: path + ": ", with: "")))
        }
        guard let json = try? JSONSerialization.jsonObject(with: Data(result.out.utf8)) as? [String: Any] else {
            return .failure(MediaError(message: "ffprobe printed no JSON"))
        }
        let streams = json["streams"] as? [[String: Any]] ?? []
        let video = streams.first { $0["codec_type"] as? String == "video" }
        let format = json["format"] as? [String: Any]
        return .success(MediaInfo(duration: (format?["duration"] as? String).flatMap(Double.init),
                                  hasVideo: video != nil, hasAudio: streams.contains { $0["codec_type"] as? String == "audio" },
                                  width: video?["width"] as? Int, height: video?["height"] as? Int))
    }

    /// Decodes the first frame with the ffmpeg beside this ffprobe (`-xerror`: stop at the first decoding error), at
    /// most 20 s; nil when it decodes or when no ffmpeg is there to ask.
    public func decodeImage(at path: String) -> String? {
        let ffmpeg = (executable as NSString).deletingLastPathComponent + "/ffmpeg"
        guard FileManager.default.isExecutableFile(atPath: ffmpeg) else { return nil }
        let box = DecodeBox()
        let semaphore = DispatchSemaphore(value: 0)
        Task.detached {
            do {
                let r = try await Subprocess.run(
                    .path(.init(ffmpeg)),
                    arguments: ["-nostdin", "-v", "error", "-xerror", "-i", path, "-frames:v", "1", "-f", "null", "-"],
                    output: .discarded, error: .string(limit: 1 << 16))
                if !r.terminationStatus.isSuccess {
                    let last = r.standardError.split(whereSeparator: \.isNewline).last.map(String.init) ?? "ffmpeg failed"
                    // "[png @ 0x55d0...] chunk too big" -> "png: chunk too big"
                    box.value = last.replacingOccurrences(of: #"^\[(\w+) @ 0x[0-9a-f]+\] "#, with: "$1: ", options: .regularExpression)
                        .replacingOccurrences(of: path + ": ", with: "")
                }
            } catch {
                box.value = nil
            }
            semaphore.signal()
        }
        if semaphore.wait(timeout: .now() + 20) == .timedOut { return "decoding its first frame took more than 20 s" }
        return box.value
    }

    /// Blocking probe for validation (Manifest's protocol is synchronous).
    public func probeAudio(at path: String) -> AudioProbeResult {
        let box = ResultBox()
        let semaphore = DispatchSemaphore(value: 0)
        Task.detached {
            box.value = await self.info(path)
            semaphore.signal()
        }
        semaphore.wait()
        switch box.value! {
        case let .failure(e): return .unreadable(e.message)
        case let .success(info):
            guard info.hasAudio else { return .unreadable("it has no audio stream") }
            guard let d = info.duration, d > 0 else { return .unreadable("its duration is unknown") }
            return .duration(d)
        }
    }
}

private struct ExecutionRecord {
    var ok: Bool
    var out: String
    var err: String
}

private final class ResultBox: @unchecked Sendable {
    var value: Result<MediaInfo, MediaError>?
}

private final class DecodeBox: @unchecked Sendable {
    var value: String?
}

/// Why ffprobe rejected a file.
public struct MediaError: Error, Sendable, Hashable {
    public var message: String
}
