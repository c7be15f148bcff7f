import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Reads renderer profiles: built-in ones by name from the search path, user ones by path or inline.
public enum ProfileLoader {
    static let knownKeys = [
        "name", "description", "command", "sizes", "defaults", "env", "workdir", "output_check", "output_extension",
        "oom_patterns", "max_jobs_per_gpu", "uses_gpu", "fps", "auto_online_decode_clips", "memory", "time", "sharing",
        "framing", "limits", "required_files", "flag_source", "extra_args_allowed", "worker",
    ]

    /// Directories searched for `NAME.yaml`, in order: `$AVATAR_BATCH_RENDERERS` (colon-separated),
    /// `renderers/` beside the manifest or in any directory above it, then `renderers/` and
    /// `../share/avatar-batch/renderers` beside the executable.
    /// With `installedOnly` (untrusted manifests), only `$AVATAR_BATCH_RENDERERS` and the executable's directories:
    /// a `renderers/` folder beside an untrusted manifest is the manifest author's, not the installation's.
    public static func searchPath(manifestDirectory: String, environment: [String: String] = ProcessInfo.processInfo.environment,
                                  installedOnly: Bool = false) -> [String] {
        var dirs: [String] = []
        if let extra = environment["AVATAR_BATCH_RENDERERS"] {
            dirs += extra.split(separator: ":").map(String.init)
        }
        var dir = URL(fileURLWithPath: manifestDirectory).standardizedFileURL
        for _ in 0..<(installedOnly ? 0 : 32) {
            dirs.append(dir.appendingPathComponent("renderers").path)
            let parent = dir.deletingLastPathComponent()
            if parent.path == dir.path { break }
            dir = parent
        }
        let exe = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath().deletingLastPathComponent()
        dirs.append(exe.appendingPathComponent("renderers").path)
        dirs.append(exe.appendingPathComponent("../share/avatar-batch/renderers").standardizedFileURL.path)
        var seen = Set<String>()
        return dirs.filter { seen.insert($0).inserted }
    }

    /// Finds a profile file by name: the first directory on the path that has it, else the profile built into the
    /// binary (unpacked on first use, with the files it runs, into a cache folder); nil when neither has it.
    public static func find(name: String, in searchPath: [String]) -> String? {
        for dir in searchPath {
            let candidate = dir + "/" + name + ".yaml"
            if FileManager.default.isReadableFile(atPath: candidate) { return candidate }
        }
        guard builtinNames.contains(name), let dir = unpackedBuiltins else { return nil }
        return dir + "/" + name + ".yaml"
    }

    /// Profile names available on the search path or built in.
    public static func available(in searchPath: [String]) -> [String] {
        var names = Set(builtinNames)
        for dir in searchPath {
            for f in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where f.hasSuffix(".yaml") {
                names.insert(String(f.dropLast(5)))
            }
        }
        return names.sorted()
    }

    /// The profiles built into the binary (scripts/embed-renderers.sh).
    public static let builtinNames: [String] = BuiltinRenderers.files.keys.filter { $0.hasSuffix(".yaml") && !$0.contains("/") }
        .map { String($0.dropLast(5)) }.sorted()

    /// The folder holding the built-in renderer files: `$XDG_CACHE_HOME/avatar-batch/renderers-<digest>` (else
    /// `~/.cache/...`, else the temporary folder). Named by the files' digest, so binaries of different versions never
    /// share one; written under a temporary name and renamed, so a reader never sees half of it. Nil when it cannot be
    /// written.
    static let unpackedBuiltins: String? = {
        let env = ProcessInfo.processInfo.environment
        let names = BuiltinRenderers.files.keys.sorted()
        let digest = SHA256.hex(names.map { $0 + "\u{0}" + BuiltinRenderers.files[$0]! }.joined(separator: "\u{0}"))
        let base = (env["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? env["HOME"].map { $0 + "/.cache" } ?? NSTemporaryDirectory())
            + "/avatar-batch"
        let dir = base + "/renderers-" + digest.prefix(16)
        let fm = FileManager.default
        if fm.fileExists(atPath: dir + "/.complete") { return dir }
        let temp = base + "/.renderers-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        do {
            for name in names {
                let path = temp + "/" + name
                try fm.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try Data((BuiltinRenderers.files[name]! + "\n").utf8).write(to: URL(fileURLWithPath: path))
            }
            try Data().write(to: URL(fileURLWithPath: temp + "/.complete"))
            if rename(temp, dir) != 0 {
                // Another process unpacked the same files first: use theirs.
                try? fm.removeItem(atPath: temp)
                return fm.fileExists(atPath: dir + "/.complete") ? dir : nil
            }
            return dir
        } catch {
            try? fm.removeItem(atPath: temp)
            return nil
        }
    }()

    /// Loads a profile file.
    public static func load(path: String) -> (RendererProfile?, [Diagnostic]) {
        guard let data = FileBytes.read(path) else {
            return (nil, [Diagnostic(file: path, at: SourcePosition(line: 1, column: 1), "cannot read renderer profile", fix: "check the path and its permissions")])
        }
        switch YAMLReader.parse(data, file: path) {
        case let .failure(d):
            return (nil, [d])
        case .success(nil):
            return (nil, [Diagnostic(file: path, at: SourcePosition(line: 1, column: 1), "renderer profile is empty", fix: "write name: and command: at least")])
        case let .success(root?):
            return parse(Sourced(node: root, file: path), directory: (path as NSString).deletingLastPathComponent)
        }
    }

    /// Parses a profile mapping; `directory` becomes `{profile_dir}`.
    static func parse(_ s: Sourced, directory: String) -> (RendererProfile?, [Diagnostic]) {
        var r = FieldReader()
        guard let entries = s.node.entries else {
            r.error(s, "a renderer profile must be a mapping, not \(s.node.kindDescription)", fix: "write the profile as key: value lines: name:, command:, ...")
            return (nil, r.diagnostics)
        }
        r.rejectUnknownKeys(entries, file: s.file, known: knownKeys, context: "renderer profile")
        func value(_ key: String) -> Sourced? {
            entries.first { $0.key == key }.map { Sourced(node: $0.value, file: s.file) }
        }
        guard let nameNode = value("name"), let name = r.string(nameNode, "name") else {
            if value("name") == nil { r.error(s, "renderer profile has no name", fix: "add name: my-renderer") }
            return (nil, r.diagnostics)
        }
        var profile = RendererProfile(name: name, command: [], directory: directory)
        if let v = value("description"), let d = r.string(v, "description") { profile.description = d }
        if let v = value("command") {
            if v.node.scalar != nil {
                r.error(v, "command must be a list of arguments, not a shell string",
                        fix: "write it as a list, e.g. [python3, render.py, --image, \"{image}\"]")
            } else if let cmd = r.stringList(v, "command") {
                if cmd.isEmpty { r.error(v, "command is empty", fix: "name the program to run") }
                let items = v.node.items ?? []
                for problem in ArgvTemplate.check(cmd) {
                    r.error(Sourced(node: items[problem.index], file: s.file), problem.message, fix: problem.fix)
                }
                profile.command = cmd
            }
        } else {
            r.error(s, "renderer profile \"\(name)\" has no command", fix: "add command: [program, args...]")
        }
        if let v = value("sizes"), let sizes = r.stringList(v, "sizes") {
            for (i, text) in sizes.enumerated() {
                if let size = FrameSize(text) { profile.sizes.append(size) } else {
                    r.error(Sourced(node: v.node.items![i], file: s.file), "size \"\(text)\" is not W*H", fix: "write it like 688*368")
                }
            }
        }
        if let v = value("defaults") {
            if let d = v.node.entries {
                r.rejectUnknownKeys(d, file: s.file, known: ManifestLoader.clipFields.filter { $0 != "id" }, context: "renderer defaults")
                for e in d {
                    if let text = e.value.scalar { profile.defaults[e.key] = text } else if let list = e.value.items {
                        profile.defaults[e.key] = list.compactMap(\.scalar).joined(separator: "\u{1F}")
                    }
                }
            } else { r.error(v, "defaults must be a mapping", fix: "write defaults: {size: \"688*368\", infer_frames: 48}") }
        }
        if let v = value("env") { profile.env = parseEnv(v, &r, what: "env") }
        if let v = value("workdir"), let text = r.string(v, "workdir") {
            if let w = WorkdirPolicy(rawValue: text) { profile.workdir = w } else {
                r.error(v, "workdir \"\(text)\" is not known", fix: "use one of \(WorkdirPolicy.allCases.map(\.rawValue).joined(separator: ", "))")
            }
        }
        if let v = value("output_check"), let text = r.string(v, "output_check") {
            if let c = OutputCheck(rawValue: text) { profile.outputCheck = c } else {
                r.error(v, "output_check \"\(text)\" is not known", fix: "use one of \(OutputCheck.allCases.map(\.rawValue).joined(separator: ", "))")
            }
        }
        if let v = value("output_extension"), let text = r.string(v, "output_extension") { profile.outputExtension = text }
        if let v = value("oom_patterns"), let list = r.stringList(v, "oom_patterns") { profile.oomPatterns = list }
        if let v = value("max_jobs_per_gpu"), let n = r.int(v, "max_jobs_per_gpu", range: 1...64) { profile.maxJobsPerGPU = n }
        if let v = value("uses_gpu"), let b = r.bool(v, "uses_gpu") { profile.usesGPU = b }
        if let v = value("fps"), let f = r.double(v, "fps", range: 1...240) { profile.fps = f }
        if let v = value("auto_online_decode_clips"), let n = r.int(v, "auto_online_decode_clips", range: 1...1_000_000) {
            profile.autoOnlineDecodeClips = n
        }
        if let v = value("framing"), let text = r.string(v, "framing") {
            if let f = Framing(rawValue: text) { profile.framing = f } else {
                r.error(v, "framing \"\(text)\" is not known", fix: "use one of \(Framing.allCases.map(\.rawValue).joined(separator: ", "))")
            }
        }
        if let v = value("limits") { profile.limits = parseLimits(v, &r) }
        if let v = value("required_files"), let list = r.stringList(v, "required_files") {
            for (i, entry) in list.enumerated() {
                for problem in ArgvTemplate.check([entry]) {
                    r.error(Sourced(node: v.node.items![i], file: s.file), problem.message, fix: problem.fix)
                }
            }
            profile.requiredFiles = list
        }
        if let v = value("extra_args_allowed"), let list = r.stringList(v, "extra_args_allowed") {
            for (i, flag) in list.enumerated() where !flag.hasPrefix("-") || flag.contains("=") {
                r.error(Sourced(node: v.node.items![i], file: s.file), "extra_args_allowed entry \"\(flag)\" is not a flag",
                        fix: "list option names such as --offload_kv_cache")
            }
            profile.extraArgsAllowed = list
        }
        if let v = value("flag_source"), let text = r.string(v, "flag_source") {
            for problem in ArgvTemplate.check([text]) { r.error(v, problem.message, fix: problem.fix) }
            profile.flagSource = text
        }
        if let v = value("memory") { profile.memory = parseMemory(v, &r) }
        if let v = value("worker") { profile.worker = parseWorker(v, &r) }
        if let v = value("time") { profile.time = parseTime(v, &r) }
        if let v = value("sharing") {
            if let d = v.node.entries {
                for e in d {
                    let node = Sourced(node: e.value, file: s.file)
                    guard let k = Int(e.key), k >= 2 else {
                        r.error(file: s.file, at: e.keyPosition, "sharing keys are job counts of 2 or more, not \"\(e.key)\"", fix: "use 2, 3, 4 ... as keys")
                        continue
                    }
                    if let x = r.double(node, "sharing[\(k)]", range: 0.1...Double(k)) { profile.sharing[k] = x }
                }
            } else { r.error(v, "sharing must map job counts to throughput, e.g. {2: 1.35, 4: 1.36}", fix: "write sharing: {2: 1.35, 4: 1.36}") }
        }
        if let w = profile.worker, w.residentGB == nil, !profile.memory.isResidentModel, let v = value("worker") {
            r.error(v, "the worker has no resident memory: say how many GB an idle worker holds on its GPU (its weights)",
                    fix: "add resident_gb: under worker:, or use the memory model's resident_gb")
        }
        return (r.diagnostics.hasErrors ? nil : profile, r.diagnostics)
    }

    /// An environment mapping (`env:` of a profile or of its worker): names to strings.
    static func parseEnv(_ v: Sourced, _ r: inout FieldReader, what: String) -> [String: String] {
        guard let entries = v.node.entries else {
            r.error(v, "\(what) must be a mapping of names to strings", fix: "write env: {NAME: \"value\"}")
            return [:]
        }
        var env: [String: String] = [:]
        for e in entries {
            if let text = e.value.scalar { env[e.key] = text } else {
                r.error(Sourced(node: e.value, file: v.file), "\(what) \(e.key) must be a string", fix: "quote the value, e.g. \"1\"")
            }
        }
        return env
    }

    static func parseWorker(_ s: Sourced, _ r: inout FieldReader) -> WorkerSpec? {
        guard let entries = s.node.entries else {
            r.error(s, "worker must be a mapping", fix: "write worker: {command: [python3, worker.py], load_settings: [offload_model, fp8]}")
            return nil
        }
        r.rejectUnknownKeys(entries, file: s.file, known: ["command", "env", "ready_timeout", "load_settings", "resident_gb", "load_s", "max_deaths"],
                            context: "worker")
        func value(_ key: String) -> Sourced? { entries.first { $0.key == key }.map { Sourced(node: $0.value, file: s.file) } }
        var w = WorkerSpec(command: [])
        if let v = value("load_settings"), let list = r.stringList(v, "load_settings") {
            for (i, name) in list.enumerated() where !WorkerSpec.loadableSettings.contains(name) {
                var fix = "use settings a whole worker can be loaded with: \(WorkerSpec.loadableSettings.joined(separator: ", "))"
                if let m = didYouMean(name, among: WorkerSpec.loadableSettings) { fix = "did you mean \(m)?" }
                r.error(Sourced(node: v.node.items![i], file: s.file), "\"\(name)\" cannot be a load setting", fix: fix)
            }
            w.loadSettings = list
        }
        if let v = value("command") {
            if v.node.scalar != nil {
                r.error(v, "the worker's command must be a list of arguments, not a shell string", fix: "write it as a list, e.g. [python3, worker.py]")
            } else if let cmd = r.stringList(v, "command") {
                if cmd.isEmpty { r.error(v, "the worker's command is empty", fix: "name the program to run") }
                let items = v.node.items ?? []
                let allowed = WorkerSpec.workerPlaceholders.union(w.loadSettings)
                for problem in ArgvTemplate.check(cmd, allowed: allowed, perClip: "and a worker serves many clips") {
                    r.error(Sourced(node: items[problem.index], file: s.file), problem.message, fix: problem.fix)
                }
                w.command = cmd
            }
        } else {
            r.error(s, "worker has no command", fix: "add command: [program, args...] under worker:")
        }
        if let v = value("env") { w.env = parseEnv(v, &r, what: "worker env") }
        if let v = value("ready_timeout") {
            if let text = v.node.scalar, let d = parseDuration(text), d > 0 { w.readyTimeoutSeconds = d } else {
                r.error(v, "ready_timeout must be a duration such as 600, \"90s\" or \"10m\"", fix: "write ready_timeout: 10m")
            }
        }
        if let v = value("resident_gb") { w.residentGB = r.double(v, "resident_gb", range: 0...10_000) }
        if let v = value("load_s") { w.loadSeconds = r.double(v, "load_s", range: 0...86_400) }
        if let v = value("max_deaths"), let n = r.int(v, "max_deaths", range: 1...100) { w.maxDeaths = n }
        return w
    }

    static func sizeFramePoint(_ e: YAMLNode, file: String, _ r: inout FieldReader, valueKey: String) -> (FrameSize, Int, Double)? {
        let s = Sourced(node: e, file: file)
        guard let entries = e.entries else { r.error(s, "a calibration point must be a mapping {size, infer_frames, \(valueKey)}", fix: "write points as {size: \"688*368\", infer_frames: 48, ...}"); return nil }
        r.rejectUnknownKeys(entries, file: file, known: ["size", "infer_frames", valueKey], context: "calibration point")
        func v(_ k: String) -> Sourced? { entries.first { $0.key == k }.map { Sourced(node: $0.value, file: file) } }
        guard let sizeNode = v("size"), let frames = v("infer_frames"), let value = v(valueKey) else {
            r.error(s, "a calibration point needs size, infer_frames and \(valueKey)", fix: "add the missing keys")
            return nil
        }
        guard let sizeText = r.string(sizeNode, "size") else { return nil }
        guard let size = FrameSize(sizeText) else { r.error(sizeNode, "size \"\(sizeText)\" is not W*H", fix: "write it like 688*368"); return nil }
        guard let f = r.int(frames, "infer_frames", range: 1...4096), let x = r.double(value, valueKey, range: 0...100_000) else { return nil }
        return (size, f, x)
    }

    static func parseMemory(_ s: Sourced, _ r: inout FieldReader) -> MemoryModel {
        var m = MemoryModel()
        guard let entries = s.node.entries else { r.error(s, "memory must be a mapping", fix: "write memory: {points: [...], headroom: 0.1}"); return m }
        let known = ["points", "per_clip_offline_gb", "offline_gb_per_megapixel_frame", "online_decode_gb", "offload_factor", "fp8_factor", "headroom", "host_ram_gb",
                     "host_ram_per_megapixel_frame_gb", "resident_gb", "resident_fp8_gb", "per_latent_token_gb", "per_job_gb",
                     "per_frame_token_gb"]
        r.rejectUnknownKeys(entries, file: s.file, known: known, context: "memory model")
        for e in entries {
            let v = Sourced(node: e.value, file: s.file)
            switch e.key {
            case "points":
                for item in e.value.items ?? [] {
                    if let (size, f, gb) = sizeFramePoint(item, file: s.file, &r, valueKey: "gb") {
                        m.points.append(MemoryPoint(size: size, inferFrames: f, gb: gb))
                    }
                }
            case "per_clip_offline_gb": m.perClipOfflineGB = r.double(v, e.key, range: 0...100) ?? 0
            case "offline_gb_per_megapixel_frame": m.offlinePerMegapixelFrameGB = r.double(v, e.key, range: 0...10) ?? 0
            case "online_decode_gb": m.onlineDecodeGB = r.double(v, e.key, range: 0...1000) ?? 0
            case "offload_factor": m.offloadFactor = r.double(v, e.key, range: 0.01...10) ?? 1
            case "fp8_factor": m.fp8Factor = r.double(v, e.key, range: 0.01...10) ?? 1
            case "headroom": m.headroom = r.double(v, e.key, range: 0...2) ?? 0.1
            case "host_ram_gb": m.hostRAMGB = r.double(v, e.key, range: 0...100_000) ?? 0
            case "host_ram_per_megapixel_frame_gb": m.hostRAMPerMegapixelFrameGB = r.double(v, e.key, range: 0...100) ?? 0
            case "resident_gb": m.residentGB = r.double(v, e.key, range: 0...10_000) ?? 0
            case "resident_fp8_gb": m.residentFP8GB = r.double(v, e.key, range: 0...10_000) ?? 0
            case "per_latent_token_gb": m.perLatentTokenGB = r.double(v, e.key, range: 0...10) ?? 0
            case "per_job_gb": m.perJobGB = r.double(v, e.key, range: 0...10_000) ?? 0
            case "per_frame_token_gb": m.perFrameTokenGB = r.double(v, e.key, range: 0...10) ?? 0
            default: break
            }
        }
        return m
    }

    static func parseLimits(_ s: Sourced, _ r: inout FieldReader) -> RendererLimits {
        var l = RendererLimits()
        guard let entries = s.node.entries else { r.error(s, "limits must be a mapping", fix: "write limits: {sample_steps: [4]}"); return l }
        r.rejectUnknownKeys(entries, file: s.file, known: ["sample_steps", "infer_frames_multiple", "offload_model", "max_frame_tokens",
                                                          "audio_path_forbids"], context: "renderer limits")
        for e in entries {
            let v = Sourced(node: e.value, file: s.file)
            switch e.key {
            case "sample_steps":
                for (i, text) in (r.stringList(v, e.key) ?? []).enumerated() {
                    if let n = Int(text), n >= 1 { l.sampleSteps.append(n) } else {
                        r.error(Sourced(node: e.value.items![i], file: s.file), "sample_steps limit \"\(text)\" is not a positive integer", fix: "use whole numbers of 1 or more")
                    }
                }
            case "infer_frames_multiple": l.inferFramesMultiple = r.int(v, e.key, range: 1...1024) ?? 0
            case "offload_model": l.offloadModel = r.bool(v, e.key)
            case "max_frame_tokens": l.maxFrameTokens = r.int(v, e.key, range: 1...10_000_000) ?? 0
            case "audio_path_forbids": l.audioPathForbids = r.stringList(v, e.key) ?? []
            default: break
            }
        }
        return l
    }

    static func parseTime(_ s: Sourced, _ r: inout FieldReader) -> TimeModel {
        var t = TimeModel()
        guard let entries = s.node.entries else { r.error(s, "time must be a mapping", fix: "write time: {points: [...], startup_s: 10}"); return t }
        r.rejectUnknownKeys(entries, file: s.file, known: ["points", "startup_s", "offload_factor", "reference_sample_steps"], context: "time model")
        for e in entries {
            let v = Sourced(node: e.value, file: s.file)
            switch e.key {
            case "points":
                for item in e.value.items ?? [] {
                    if let (size, f, ms) = sizeFramePoint(item, file: s.file, &r, valueKey: "ms_per_frame") {
                        t.points.append(TimePoint(size: size, inferFrames: f, msPerFrame: ms))
                    }
                }
            case "startup_s": t.startupSeconds = r.double(v, e.key, range: 0...86400) ?? 0
            case "offload_factor": t.offloadFactor = r.double(v, e.key, range: 0.01...100) ?? 1
            case "reference_sample_steps": t.referenceSampleSteps = r.int(v, e.key, range: 0...10000) ?? 0
            default: break
            }
        }
        return t
    }
}
