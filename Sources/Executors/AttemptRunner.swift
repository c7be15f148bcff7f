import Foundation
import Manifest
import Scheduler
#if canImport(Glibc)
import Glibc
#endif

/// Everything one attempt needs.
public struct AttemptPlan: Sendable, Codable {
    public var job: Job
    public var settings: ClipSettings
    public var number: Int
    public var gpu: GPU
    public var renderer: RendererProfile
    public var outputDir: String
    public var manifestDirectory: String
    public var timeoutSeconds: Double?
    public var graceSeconds: Double
    public var logPath: String
    public var workdir: String
    public var masterPort: Int
    /// Log disk cap in bytes (nil: unbounded).
    public var logCapBytes: Int?
    /// Keep the CUDA_VISIBLE_DEVICES the process was given (Slurm sets it on the node) instead of the plan's GPU.
    public var inheritDevices = false
}

/// What an attempt produced.
public struct AttemptResult: Sendable, Codable {
    public var classification: AttemptClassification
    public var exitCode: Int32?
    public var signal: Int32?
    public var seconds: Double
    public var stderrTail: String
    public var oom: OOMReport?
    /// The renderer's own report (AVATAR_BATCH_REPORT), when it wrote one.
    public var reportedPeakGB: Double?
    /// The executor's own sampling of device memory while it ran alone (nil: not sampled, or it shared the GPU).
    public var sampledPeakGB: Double? = nil
    public var outputDigest: String?
    /// Why the output was rejected, or other detail.
    public var note: String?
    public var leftovers: [Int32]
    /// The warm worker that served it (nil: a process of its own).
    public var worker: String? = nil
    /// The renderer's report of how long this clip's own work took once its model was ready (`render_seconds`): what
    /// a warm worker's request would repeat. The rest of `seconds` is the start-up. nil: not reported, or not within
    /// the attempt's wall time.
    public var reportedRenderSeconds: Double? = nil
}

/// Runs one attempt end to end: argv from the template, its own directory, log, port and process group;
/// then the output is validated under a temporary name and renamed into place only once valid.
public enum AttemptRunner {
    /// The argv for a job with these settings (what the renderer's template expands to).
    public static func argv(_ p: AttemptPlan, output: String, environment: [String: String]) -> [String] {
        let s = p.settings
        var values = placeholderValues(p, output: output)
        for (k, v) in environment { values["env." + k] = v }
        let flags = ["online_decode": s.onlineDecode, "offload_model": s.offloadModel, "fp8": s.fp8]
        return ArgvTemplate.expand(p.renderer.command, values: values, flags: flags, extraArgs: s.extraArgs)
    }

    /// Every placeholder's value for one attempt, as the argv template spells it.
    static func placeholderValues(_ p: AttemptPlan, output: String) -> [String: String] {
        let c = p.job.clip
        // {width} and {height} are the frame the renderer generates: `size` itself, or with `framing: fit-area` the
        // reference image fitted under size's area, as Live Avatar frames it (so the preview shows that framing).
        var values = p.settings.placeholderValues(frame: p.renderer.renderedFrame(p.settings))
        values.merge([
            "image": c.image, "audio": c.audio, "prompt": c.prompt, "output": output, "workdir": p.workdir,
            "master_port": String(p.masterPort), "profile_dir": p.renderer.directory.isEmpty ? p.manifestDirectory : p.renderer.directory,
            "clip_id": c.id, "gpu": String(p.gpu.index), "audio_seconds": c.audioSeconds.map { String(format: "%.3f", $0) } ?? "",
        ]) { _, new in new }
        return values
    }

    /// A worker request's `settings`: every resolved clip setting under its placeholder name, typed.
    static func requestSettings(_ p: AttemptPlan) -> [String: WorkerValue] {
        let s = p.settings
        let c = p.job.clip
        let frame = p.renderer.renderedFrame(s)
        var v: [String: WorkerValue] = [
            "image": .string(c.image), "audio": .string(c.audio), "prompt": .string(c.prompt), "size": .string(s.size.description),
            "width": .int(frame.width), "height": .int(frame.height), "num_clip": .int(s.numClip), "infer_frames": .int(s.inferFrames),
            "sample_steps": .int(s.sampleSteps), "seed": .int(s.seed), "online_decode": .bool(s.onlineDecode),
            "offload_model": .bool(s.offloadModel), "fp8": .bool(s.fp8), "extra_args": .strings(s.extraArgs), "clip_id": .string(c.id),
            "workdir": .string(p.workdir),
        ]
        if let a = c.audioSeconds { v["audio_seconds"] = .double((a * 1000).rounded() / 1000) }
        return v
    }

    /// Where the output is written before it is validated: beside the final file, so the rename is atomic.
    public static func temporaryOutput(_ p: AttemptPlan) -> String {
        let final = p.outputDir + "/" + p.job.clip.output
        let dir = (final as NSString).deletingLastPathComponent
        let name = (final as NSString).lastPathComponent
        let ext = (name as NSString).pathExtension
        return dir + "/.\(name).partial-\(p.number)" + (ext.isEmpty ? "" : "." + ext)
    }

    public static func run(_ p: AttemptPlan, started: @escaping @Sendable (Int32, UInt64) async -> Void) async throws -> AttemptResult {
        let fm = FileManager.default
        let final = p.outputDir + "/" + p.job.clip.output
        let temp = temporaryOutput(p)
        try fm.createDirectory(atPath: (final as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try fm.createDirectory(atPath: p.workdir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try fm.createDirectory(atPath: (p.logPath as NSString).deletingLastPathComponent, withIntermediateDirectories: true,
                               attributes: [.posixPermissions: 0o700])
        try? fm.removeItem(atPath: temp)
        let reportPath = p.workdir + "/avatar-batch-report.json"
        try? fm.removeItem(atPath: reportPath)

        let inherited = ProcessInfo.processInfo.environment
        var env = inherited
        for (k, v) in p.renderer.env { env[k] = v }
        // One GPU per job: by UUID for real GPUs (immune to index reordering), by index for virtual ones.
        if !p.inheritDevices {
            env["CUDA_VISIBLE_DEVICES"] = p.gpu.uuid.hasPrefix("virtual-") ? String(p.gpu.index) : p.gpu.uuid
        }
        env["MASTER_PORT"] = String(p.masterPort)
        env["AVATAR_BATCH_REPORT"] = reportPath
        env["AVATAR_BATCH_JOB_ID"] = p.job.id
        env["AVATAR_BATCH_ATTEMPT"] = String(p.number)
        if !p.inheritDevices { env["AVATAR_BATCH_GPU_UUID"] = p.gpu.uuid }
        let argv = argv(p, output: temp, environment: inherited)
        let workdir = p.renderer.workdir == .perJob ? p.workdir : p.manifestDirectory
        let spec = LaunchSpec(argv: argv, environment: env, workdir: workdir, logPath: p.logPath, timeoutSeconds: p.timeoutSeconds,
                              graceSeconds: p.graceSeconds, logCapBytes: p.logCapBytes)
        let launched: LaunchOutcome
        do {
            launched = try await LocalLauncher.run(spec, started: started)
        } catch {
            try? fm.removeItem(atPath: temp)
            let text = "cannot start \(argv.first ?? "renderer"): \(error)"
            appendToLog(p.logPath, "avatar-batch: " + text)
            return AttemptResult(classification: .crashed, exitCode: nil, signal: nil, seconds: 0, stderrTail: text, oom: nil,
                                 reportedPeakGB: nil, outputDigest: nil, note: text, leftovers: [])
        }
        if launched.logDroppedBytes > 0 {
            appendToLog(p.logPath, "avatar-batch: the log passed its cap of \((p.logCapBytes ?? 0) >> 20) MB: \(launched.logDroppedBytes) bytes after its start were dropped (they read as NUL bytes and take no disk)")
        }
        let tail = logTail(p.logPath, bytes: 256 * 1024)
        let report = RendererReport.read(reportPath)
        var result = AttemptResult(classification: .crashed, exitCode: launched.exitCode, signal: launched.signal, seconds: launched.seconds,
                                   stderrTail: lastLines(tail, 30), oom: nil, reportedPeakGB: report?.peakGB, outputDigest: nil, note: nil,
                                   leftovers: launched.leftovers)
        if let r = report?.renderSeconds, r > 0, r <= launched.seconds { result.reportedRenderSeconds = r }
        // What the renderer says it saw: exactly one device, the one it was given.
        if let report, report.deviceCount != nil || report.deviceUUID != nil {
            let count = report.deviceCount.map(String.init) ?? "?"
            let uuid = report.deviceUUID ?? "?"
            let matches = report.deviceCount == 1 && (p.gpu.uuid.hasPrefix("virtual-") || p.inheritDevices || uuid == p.gpu.uuid)
            result.note = "renderer saw \(count) device(s), \(uuid): \(matches ? "matches the assignment" : "DOES NOT match \(p.gpu.uuid)")"
        }
        let end = ProcessEnd(exitCode: launched.exitCode, signal: launched.signal, stoppedByUs: launched.cancelled, timedOut: launched.timedOut,
                             timeoutSeconds: p.timeoutSeconds, logTail: tail)
        if let c = EndClassifier.process(end, oomPatterns: p.renderer.oomPatterns) {
            result.classification = c.classification
            result.oom = c.oom
            if let note = c.note { result.note = note }
        } else {
            await acceptOutput(p, temp: temp, into: &result)
        }
        conclude(p, temp: temp, result: &result)
        return result
    }

    /// Exit 0 (or a worker's `done`) is not success until the output is checked (Live Avatar can exit 0 without a
    /// video): validated under its temporary name, digested, then renamed into place.
    static func acceptOutput(_ p: AttemptPlan, temp: String, into result: inout AttemptResult) async {
        let fm = FileManager.default
        let final = p.outputDir + "/" + p.job.clip.output
        let expected = expectedDuration(p)
        switch await OutputValidator.check(temp, mode: p.renderer.outputCheck, expectedSeconds: expected, tolerance: tolerance(p)) {
        case let .failure(why):
            result.classification = .invalidOutput
            result.note = why.message
        case .success:
            do {
                result.outputDigest = try SHA256.hex(fileAt: temp)
                if fm.fileExists(atPath: final) { try fm.removeItem(atPath: final) }
                try fm.moveItem(atPath: temp, toPath: final)
                result.classification = .succeeded
            } catch {
                result.classification = .invalidOutput
                result.note = "cannot move the output into place: \(error.localizedDescription)"
            }
        }
    }

    /// What follows every end: temporaries removed, a hint for known failures, the working directory of a success
    /// removed, the verdict appended to the attempt's log.
    static func conclude(_ p: AttemptPlan, temp: String, result: inout AttemptResult) {
        let fm = FileManager.default
        // A success left at most Live Avatar's known leftover: spare a listing of output_dir (thousands of files) per job.
        removeTemporaries(of: temp, everything: result.classification != .succeeded)
        if result.classification == .crashed || result.classification == .invalidOutput, let hint = videoWriterHint(result.stderrTail) {
            result.note = (result.note.map { $0 + "; " } ?? "") + hint
        }
        if result.classification == .succeeded && p.renderer.workdir == .perJob { try? fm.removeItem(atPath: p.workdir) }
        if let note = result.note { appendToLog(p.logPath, "avatar-batch: \(result.classification.rawValue): \(note)") }
    }

    /// Removes the temporary output and whatever the renderer named after it: Live Avatar muxes the audio into
    /// `<base>_temp.mp4` beside its output, which a kill or timeout leaves in output_dir otherwise. Without
    /// `everything`, only those two names (no listing of the folder).
    static func removeTemporaries(of temp: String, everything: Bool = true) {
        let dir = (temp as NSString).deletingLastPathComponent
        let stem = ((temp as NSString).lastPathComponent as NSString).deletingPathExtension
        guard everything else {
            let ext = (temp as NSString).pathExtension
            for name in [temp, dir + "/" + stem + "_temp" + (ext.isEmpty ? "" : "." + ext)] where FileManager.default.fileExists(atPath: name) {
                try? FileManager.default.removeItem(atPath: name)
            }
            return
        }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where name.hasPrefix(stem) {
            try? FileManager.default.removeItem(atPath: dir + "/" + name)
        }
    }

    /// What to tell the user when the renderer says its own video writing failed (Live Avatar catches those errors,
    /// logs them and exits 0, or fails later at the mux): nearly always no ffmpeg on the renderer's PATH.
    static func videoWriterHint(_ log: String) -> String? {
        let signs = ["save_video failed", "merge_video_audio failed", "No such file or directory: 'ffmpeg'", "imageio_ffmpeg"]
        guard signs.contains(where: log.contains) else { return nil }
        return "the renderer's log says it could not write or mux the video: put ffmpeg on the GPU host's PATH (Live Avatar calls it to add the audio)"
    }

    /// Seconds the video should last: the audio, or num_clip x infer_frames / fps when that is shorter.
    static func expectedDuration(_ p: AttemptPlan) -> Double? {
        let frames = Double(p.settings.totalFrames) / p.renderer.fps
        guard let audio = p.job.clip.audioSeconds else { return nil }
        return min(audio, frames)
    }

    /// Renderers render whole clips: allow one clip's length, 5%, or a second, whichever is most.
    static func tolerance(_ p: AttemptPlan) -> Double {
        let clip = Double(p.settings.inferFrames) / p.renderer.fps
        return max(1.0, clip, 0.05 * (expectedDuration(p) ?? 0))
    }

    /// The last `bytes` of a log, as text; from `offset` on (a warm worker's lines since a request was handed over).
    public static func logTail(_ path: String, bytes: Int, from offset: UInt64 = 0) -> String {
        guard let h = FileHandle(forReadingAtPath: path) else { return "" }
        defer { try? h.close() }
        let size = (try? h.seekToEnd()) ?? 0
        guard size > offset else { return "" }
        try? h.seek(toOffset: max(offset, size > UInt64(bytes) ? size - UInt64(bytes) : 0))
        // NUL bytes (a punched log hole reads as them, and renderers print them) would cut the text where it is stored
        // and reported (SQLite text, JUnit, JSON): they are written out as \0 instead.
        return String(decoding: (try? h.readToEnd()) ?? Data(), as: UTF8.self).replacingOccurrences(of: "\u{0}", with: "\\0")
    }

    static func lastLines(_ text: String, _ n: Int) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).suffix(n + 1).joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func appendToLog(_ path: String, _ line: String) {
        guard let h = FileHandle(forWritingAtPath: path) else { return }
        defer { try? h.close() }
        _ = try? h.seekToEnd()
        try? h.write(contentsOf: Data((line + "\n").utf8))
    }
}

/// The JSON a renderer may write to $AVATAR_BATCH_REPORT: `{"peak_memory_gb": 17.2, "seconds": 120.5, ...}`
/// (docs/running.md).
public struct RendererReport: Sendable, Codable {
    public var peakGB: Double?
    public var seconds: Double?
    /// This clip's own work once the model was ready (reading its inputs, rendering, writing the output): what a warm
    /// worker would repeat per clip. The attempt's wall time less this is its start-up.
    public var renderSeconds: Double?
    public var deviceCount: Int?
    public var deviceUUID: String?

    enum CodingKeys: String, CodingKey {
        case peakGB = "peak_memory_gb", seconds, renderSeconds = "render_seconds", deviceCount = "device_count", deviceUUID = "device_uuid"
    }

    public static func read(_ path: String) -> RendererReport? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? JSONDecoder().decode(RendererReport.self, from: data)
    }
}

/// Output checks: a finished file counts only if it passes.
public enum OutputValidator {
    public static func check(_ path: String, mode: OutputCheck, expectedSeconds: Double?, tolerance: Double) async -> Result<Void, MediaError> {
        let attrs = try? FileManager.default.attributesOfItem(atPath: path)
        guard let attrs else { return .failure(MediaError(message: "the renderer exited 0 but wrote no output")) }
        if attrs[.type] as? FileAttributeType == .typeSymbolicLink { return .failure(MediaError(message: "the output is a symbolic link")) }
        guard let size = attrs[.size] as? Int, size > 0 else { return .failure(MediaError(message: "the output is empty")) }
        if mode == .nonempty { return .success(()) }
        guard let ffprobe = FFprobe.locate() else {
            return .failure(MediaError(message: "ffprobe is not installed, so the output cannot be checked; apt-get install ffmpeg, or set output_check: nonempty"))
        }
        switch await ffprobe.info(path) {
        case let .failure(e): return .failure(MediaError(message: "ffprobe rejects the output: \(e.message)"))
        case let .success(info):
            guard info.hasVideo else { return .failure(MediaError(message: "the output has no video stream")) }
            guard info.hasAudio else { return .failure(MediaError(message: "the output has no audio stream (silent video)")) }
            if let expected = expectedSeconds {
                guard let d = info.duration else { return .failure(MediaError(message: "the output's duration is unknown")) }
                if abs(d - expected) > tolerance {
                    return .failure(MediaError(message: String(format: "the output lasts %.2f s, expected %.2f s (±%.2f)", d, expected, tolerance)))
                }
            }
            return .success(())
        }
    }
}
