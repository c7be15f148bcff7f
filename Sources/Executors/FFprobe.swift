import Foundation
#if canImport(Glibc)
import Glibc
#endif
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
                arguments: .init(Self.infoArguments + [path]),
                output: .string(limit: 1 << 20), error: .string(limit: 1 << 16))
            result = ExecutionRecord(ok: r.terminationStatus.isSuccess, out: r.standardOutput, err: r.standardError)
        } catch {
            return .failure(MediaError(message: "ffprobe could not run: \(error)"))
        }
        return Self.parse(result, path: path)
    }

    static let infoArguments = ["-v", "error", "-show_entries", "stream=codec_type,width,height:format=duration", "-of", "json", "--"]

    private static func parse(_ result: ExecutionRecord, path: String) -> Result<MediaInfo, MediaError> {
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

    /// Runs a program to its end with posix_spawn and waitpid on its own pid: no Task (validation is synchronous and can
    /// be called from the cooperative pool, where blocking a thread on a Task that needs one can starve, as it did in
    /// parallel tests on 2 cores) and no Foundation.Process (its child monitoring is process-wide). Nil when it cannot
    /// start or outlives `timeoutSeconds` (then it is killed).
    static func runBlocking(_ program: String, _ arguments: [String], timeoutSeconds: Double) -> ExecutionRecord? {
        var outPipe: [Int32] = [-1, -1], errPipe: [Int32] = [-1, -1]
        guard pipe(&outPipe) == 0 else { return nil }
        guard pipe(&errPipe) == 0 else { close(outPipe[0]); close(outPipe[1]); return nil }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        for fd in [outPipe[0], outPipe[1], errPipe[0], errPipe[1]] { posix_spawn_file_actions_addclose(&actions, fd) }
        let argv = ([program] + arguments).map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, program, &actions, nil, argv, environ)
        close(outPipe[1]); close(errPipe[1])
        guard spawned == 0 else { close(outPipe[0]); close(errPipe[0]); return nil }
        // Both pipes are read while it runs, so a chatty program never blocks on a full one.
        let box = PipeBox()
        let read = DispatchGroup()
        for (i, fd) in [outPipe[0], errPipe[0]].enumerated() {
            read.enter()
            DispatchQueue.global().async {
                var data = [UInt8]()
                var buffer = [UInt8](repeating: 0, count: 1 << 16)
                while true {
                    let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { break }
                    if data.count < 1 << 20 { data += buffer[0..<n] }
                }
                close(fd)
                box.set(i, String(decoding: data, as: UTF8.self))
                read.leave()
            }
        }
        var status: Int32 = 0
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { break }
            if r < 0 && errno != EINTR { return nil }
            if Date() > deadline {
                kill(pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                _ = read.wait(timeout: .now() + 5)
                return nil
            }
            usleep(5_000)
        }
        _ = read.wait(timeout: .now() + 5)
        // Exited normally with status 0: WIFEXITED and WEXITSTATUS, spelled out (Swift does not import the macros).
        let ok = (status & 0x7F) == 0 && ((status >> 8) & 0xFF) == 0
        return ExecutionRecord(ok: ok, out: box.get(0), err: box.get(1))
    }

    /// Decodes the first frame with the ffmpeg beside this ffprobe (`-xerror`: stop at the first decoding error), at
    /// most 20 s; nil when it decodes or when no ffmpeg is there to ask.
    public func decodeImage(at path: String) -> String? {
        let ffmpeg = (executable as NSString).deletingLastPathComponent + "/ffmpeg"
        guard FileManager.default.isExecutableFile(atPath: ffmpeg) else { return nil }
        guard let r = Self.runBlocking(ffmpeg, ["-nostdin", "-v", "error", "-xerror", "-i", path, "-frames:v", "1", "-f", "null", "-"],
                                       timeoutSeconds: 20) else { return "decoding its first frame took more than 20 s" }
        guard !r.ok else { return nil }
        let last = r.err.split(whereSeparator: \.isNewline).last.map(String.init) ?? "ffmpeg failed"
        // "[png @ 0x55d0...] chunk too big" -> "png: chunk too big"
        return last.replacingOccurrences(of: #"^\[(\w+) @ 0x[0-9a-f]+\] "#, with: "$1: ", options: .regularExpression)
            .replacingOccurrences(of: path + ": ", with: "")
    }

    /// Blocking probe for validation (Manifest's protocol is synchronous).
    public func probeAudio(at path: String) -> AudioProbeResult {
        guard let r = Self.runBlocking(executable, Self.infoArguments + [path], timeoutSeconds: 60) else {
            return .unreadable("ffprobe did not answer within 60 s")
        }
        switch Self.parse(r, path: path) {
        case let .failure(e): return .unreadable(e.message)
        case let .success(info):
            guard info.hasAudio else { return .unreadable("it has no audio stream") }
            guard let d = info.duration, d > 0 else { return .unreadable("its duration is unknown") }
            return .duration(d)
        }
    }
}

struct ExecutionRecord {
    var ok: Bool
    var out: String
    var err: String
}

private final class PipeBox: @unchecked Sendable {
    private let lock = NSLock()
    private var texts = ["", ""]
    func set(_ i: Int, _ text: String) { lock.withLock { texts[i] = text } }
    func get(_ i: Int) -> String { lock.withLock { texts[i] } }
}

/// Why ffprobe rejected a file.
public struct MediaError: Error, Sendable, Hashable {
    public var message: String
}
