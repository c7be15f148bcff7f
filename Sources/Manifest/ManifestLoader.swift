import Foundation

/// What a load checks beyond syntax and types.
public struct LoadOptions: Sendable {
    /// Check that image and audio files exist and are readable.
    public var checkFiles = true
    /// Probe audio with this probe (ffprobe); nil skips probing, and `MediaSniffer` reads WAV headers instead.
    public var probe: (any MediaProbe)?
    /// Directories searched for renderer profiles by name; nil uses `ProfileLoader.searchPath`.
    public var rendererSearchPath: [String]?
    /// Overrides the manifest's `gpus:`.
    public var gpus: GPUSelection?
    public var limits = YAMLLimits()
    /// Require the `{env.NAME}` variables the renderer's command reads (off for planning elsewhere).
    public var requireEnvironment = true
    /// The environment `{env.NAME}` reads.
    public var environment: [String: String] = ProcessInfo.processInfo.environment
    /// Treat the manifest as untrusted (a pull request's, in CI): it may only name an installed profile, add only the
    /// profile's `extra_args_allowed`, and include files inside its own folder (docs/security.md).
    public var untrusted = false

    public init(checkFiles: Bool = true, probe: (any MediaProbe)? = nil, rendererSearchPath: [String]? = nil) {
        self.checkFiles = checkFiles
        self.probe = probe
        self.rendererSearchPath = rendererSearchPath
    }
}

/// The outcome of loading: a manifest when there were no errors, and every problem found.
public struct LoadResult: Sendable {
    public var manifest: Manifest?
    public var diagnostics: [Diagnostic]
}

/// Loads and validates a manifest: every problem is collected with its file, line and column.
public struct ManifestLoader {
    static let topLevelKeys = ["version", "name", "output_dir", "renderer", "defaults", "gpus", "retry", "strategy", "slurm", "clips", "include", "clips_from",
                               "notify"]
    static let includeKeys = ["defaults", "clips", "clips_from", "include"]
    /// Every key a clip (or `defaults`) may set.
    public static let clipFields = [
        "id", "image", "audio", "prompt", "size", "num_clip", "infer_frames", "sample_steps", "online_decode", "offload_model",
        "fp8", "seed", "output", "priority", "timeout", "extra_args", "gpu_model",
    ]

    var options: LoadOptions
    var reader = FieldReader()
    var visited: [String] = []
    var profile: RendererProfile?
    var profileDefaults: [String: Sourced] = [:]
    var manifestFile = ""
    var outputDir = ""
    var rawClips: [(fields: [String: Sourced], file: String, position: SourcePosition)] = []
    var probeCache: [String: AudioProbeResult] = [:]
    var fileChecks: [String: String?] = [:]
    /// Absolute directory of each file values came from (every clip's paths resolve against one).
    var directories: [String: String] = [:]
    /// Reference image sizes by path (read once per image).
    var imageSizes: [String: FrameSize?] = [:]
    /// Boolean settings whose flag the renderer's parser source lacks, with the flag (an older checkout).
    var unsupportedFlags: [String: String] = [:]
    /// The parser source read for `unsupportedFlags`, for messages.
    var flagSourcePath = ""

    public init(options: LoadOptions = LoadOptions()) {
        self.options = options
    }

    /// Loads the manifest at `path` (relative paths resolve against the current directory).
    public static func load(path: String, options: LoadOptions = LoadOptions()) -> LoadResult {
        var loader = ManifestLoader(options: options)
        return loader.run(path: path)
    }

    /// Where the batch of the manifest at `path` keeps its store, from the manifest's `name` and `output_dir` alone
    /// (what `status` and `retry` need, without validating every clip). nil when the file does not parse or either key
    /// is not text: then a full load is what says what is wrong.
    public static func statePath(path: String, limits: YAMLLimits = YAMLLimits()) -> String? {
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        guard let data = FileBytes.read(absolute), case let .success(root?) = YAMLReader.parse(data, file: path, limits: limits),
              let entries = root.entries else { return nil }
        func text(_ key: String) -> String?? {
            guard let node = entries.first(where: { $0.key == key })?.value else { return .some(nil) }
            guard let s = node.scalar, !node.isNull else { return nil }
            return .some(s)
        }
        guard case let .some(name) = text("name"), case let .some(output) = text("output_dir") else { return nil }
        let dir = outputDirectory(manifestDir: (absolute as NSString).deletingLastPathComponent, name: name ?? baseName(path), outputDir: output)
        return dir + "/" + Manifest.stateFile
    }

    /// A manifest's default name: its file name without the extension.
    static func baseName(_ path: String) -> String { ((path as NSString).lastPathComponent as NSString).deletingPathExtension }

    /// `output_dir` resolved against the manifest's folder; without one, `out/NAME` beside the manifest.
    static func outputDirectory(manifestDir: String, name: String, outputDir: String?) -> String {
        guard let o = outputDir else { return manifestDir + "/out/" + name }
        return URL(fileURLWithPath: o, relativeTo: URL(fileURLWithPath: manifestDir + "/")).standardizedFileURL.path
    }

    mutating func run(path: String) -> LoadResult {
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        manifestFile = path
        let origin = SourcePosition(line: 1, column: 1)
        guard let data = FileBytes.read(absolute) else {
            reader.error(file: path, at: origin, "cannot read the manifest", fix: "check the path and its permissions")
            return finish(nil)
        }
        let root: YAMLNode
        switch YAMLReader.parse(data, file: path, limits: options.limits) {
        case let .failure(d):
            reader.diagnostics.append(d)
            return finish(nil)
        case .success(nil):
            reader.error(file: path, at: origin, "the manifest is empty", fix: "start from manifests/demo.yaml")
            return finish(nil)
        case let .success(node?):
            root = node
        }
        let top = Sourced(node: root, file: path)
        guard let entries = root.entries else {
            reader.error(top, "a manifest must be a mapping of keys such as version, renderer and clips, not \(root.kindDescription)", fix: "start with version: 1, then renderer:, defaults: and clips: at the left margin")
            return finish(nil)
        }
        reader.rejectUnknownKeys(entries, file: path, known: Self.topLevelKeys, context: "manifest")
        func value(_ key: String) -> Sourced? { entries.first { $0.key == key }.map { Sourced(node: $0.value, file: path) } }

        var version = 1
        if let v = value("version") {
            if let n = reader.int(v, "version", range: 1...Int.max) {
                if n != 1 { reader.error(v, "manifest version \(n) is not supported", fix: "use version: 1") } else { version = n }
            }
        } else {
            reader.error(top, "the manifest has no version", fix: "add version: 1 at the top")
        }
        var name = Self.baseName(path)
        if let v = value("name"), let n = reader.string(v, "name") { name = n }
        let manifestDir = (absolute as NSString).deletingLastPathComponent
        outputDir = Self.outputDirectory(manifestDir: manifestDir, name: name, outputDir: value("output_dir").flatMap { reader.string($0, "output_dir") })

        // The renderer comes first: its sizes and defaults shape every clip.
        if let v = value("renderer") {
            loadRenderer(v, manifestDir: manifestDir)
        } else {
            reader.error(top, "the manifest names no renderer", fix: "add renderer: preview (or liveavatar, or a profile path)")
        }

        var gpus = GPUSelection.auto
        if let v = value("gpus") { gpus = parseGPUs(v) ?? .auto }
        if let override = options.gpus { gpus = override }

        var retry = RetryPolicy()
        if let v = value("retry") { retry = parseRetry(v) }
        // The built-in ladder is a default, not the user's word: drop the rungs this renderer cannot honour.
        if value("retry")?.node.entries?.contains(where: { $0.key == "on_oom" }) != true {
            retry.onOOM = retry.onOOM.filter { rung in
                if case let .change(c) = rung { return rungProblem(c) == nil }
                return true
            }
        }

        var strategy = "earliest-finish"
        if let v = value("strategy"), let s = reader.string(v, "strategy") { strategy = s }

        var slurm = SlurmSettings()
        if let v = value("slurm") { slurm = parseSlurm(v) }

        var notify: [String] = []
        if let v = value("notify") {
            if v.node.scalar != nil {
                reader.error(v, "notify must be a list of arguments, not a shell string",
                             fix: "write it as a list, e.g. notify: [curl, -sS, --data-binary, \"@-\", \"https://chat.example/hook\"]")
            } else if let list = reader.stringList(v, "notify") {
                if list.isEmpty || list[0].isEmpty { reader.error(v, "notify names no program", fix: "start the list with the program to run") } else { notify = list }
            }
        }

        var defaults: [String: Sourced] = [:]
        if let v = value("defaults") { defaults = clipFieldMap(v, context: "defaults", allowID: false) }
        visited = [absolute]
        collectClips(from: entries, file: path, defaults: defaults)
        if rawClips.isEmpty && !reader.diagnostics.hasErrors {
            reader.error(top, "the manifest has no clips", fix: "add a clips: list, clips_from: or include:")
        }

        guard let profile else { return finish(nil) }
        var clips: [ClipSpec] = []
        clips.reserveCapacity(rawClips.count)
        // Clips by output, as positions in `clips` (a 100,000-clip manifest held copies of every clip here).
        var outputs: [String: Int] = [:]
        // Duplicate ids are found on the raw clips, so they are reported in the same pass as every other problem.
        var firstID: [String: Int] = [:]
        var duplicate = Set<Int>()
        for (i, raw) in rawClips.enumerated() {
            guard let v = raw.fields["id"], let id = v.node.scalar else { continue }
            if let first = firstID[id] {
                let f = rawClips[first]
                reader.error(file: raw.file, at: v.node.position, "duplicate clip id \"\(id)\" (first at \(f.file):\(f.position.line))", fix: "give each clip its own id")
                duplicate.insert(i)
            } else {
                firstID[id] = i
            }
        }
        firstID = [:]
        // Each raw clip's fields are let go once resolved, so the raw and the resolved clips are not both held whole.
        var raws = rawClips
        rawClips = []
        for i in raws.indices {
            let raw = raws[i]
            raws[i].fields = [:]
            guard let clip = resolveClip(raw.fields, file: raw.file, position: raw.position, profile: profile), !duplicate.contains(i) else { continue }
            if let first = outputs[clip.output] {
                let pos = raw.fields["output"]?.node.position ?? raw.position
                reader.error(file: raw.file, at: pos, "clips \"\(clips[first].id)\" and \"\(clip.id)\" write the same output \"\(clip.output)\"",
                             fix: "give each clip its own output")
                continue
            }
            outputs[clip.output] = clips.count
            clips.append(clip)
        }
        var manifest = Manifest(version: version, name: name, path: absolute, outputDir: outputDir, renderer: profile, gpus: gpus,
                                retry: retry, strategy: strategy, clips: clips)
        manifest.slurm = slurm
        manifest.notify = notify
        return finish(manifest)
    }

    func finish(_ manifest: Manifest?) -> LoadResult {
        let diagnostics = reader.diagnostics.sortedByPosition()
        return LoadResult(manifest: diagnostics.hasErrors ? nil : manifest, diagnostics: diagnostics)
    }

    // MARK: renderer, gpus, retry

    mutating func loadRenderer(_ v: Sourced, manifestDir: String) {
        if options.untrusted && (v.node.entries != nil || (v.node.scalar.map { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") || $0.contains("/") } ?? false)) {
            let known = ProfileLoader.available(in: options.rendererSearchPath ?? ProfileLoader.searchPath(manifestDirectory: manifestDir, environment: options.environment, installedOnly: true))
            reader.error(v, "an untrusted manifest may only name an installed renderer profile, not \(v.node.entries != nil ? "define one inline" : "a profile file") (a profile is code: it chooses the program)",
                         fix: known.isEmpty ? "name an installed profile" : "use one of \(known.joined(separator: ", "))")
            return
        }
        if v.node.entries != nil {
            let (p, d) = ProfileLoader.parse(v, directory: manifestDir)
            reader.diagnostics += d
            profile = p
        } else if let text = reader.string(v, "renderer") {
            let path: String
            if text.hasSuffix(".yaml") || text.hasSuffix(".yml") || text.contains("/") {
                path = URL(fileURLWithPath: text, relativeTo: URL(fileURLWithPath: v.directory + "/")).standardizedFileURL.path
                guard FileManager.default.isReadableFile(atPath: path) else {
                    reader.error(v, "renderer profile \"\(text)\" does not exist", fix: "check the path (relative to the manifest)")
                    return
                }
            } else {
                let search = options.rendererSearchPath ?? ProfileLoader.searchPath(manifestDirectory: manifestDir, environment: options.environment, installedOnly: options.untrusted)
                guard let found = ProfileLoader.find(name: text, in: search) else {
                    let known = ProfileLoader.available(in: search)
                    var fix = known.isEmpty ? "set AVATAR_BATCH_RENDERERS to the renderers/ directory" : "use one of \(known.joined(separator: ", "))"
                    if let s = didYouMean(text, among: known) { fix = "did you mean \"\(s)\"?" }
                    reader.error(v, "unknown renderer \"\(text)\"", fix: fix)
                    return
                }
                path = found
            }
            let (p, d) = ProfileLoader.load(path: path)
            reader.diagnostics += d
            profile = p
        }
        guard let profile else { return }
        if options.requireEnvironment {
            for name in Set(ArgvTemplate.environmentNames(profile.command)).sorted() where (options.environment[name] ?? "").isEmpty {
                reader.error(v, "renderer \(profile.name) reads $\(name), which is not set",
                             fix: "export \(name)=... before running (see the profile's comments), or use --no-env-check to plan only")
            }
        }
        if options.requireEnvironment && options.checkFiles {
            checkRendererFiles(profile, at: v)
        }
        // Profile defaults are checked like manifest defaults, at the profile's own position.
        for (key, text) in profile.defaults {
            let node: YAMLNode
            if key == "extra_args" {
                node = YAMLNode(value: .sequence(text.split(separator: "\u{1F}").map { YAMLNode(value: .scalar(String($0), quoted: true), position: v.node.position) }), position: v.node.position)
            } else {
                node = YAMLNode(value: .scalar(text, quoted: false), position: v.node.position)
            }
            profileDefaults[key] = Sourced(node: node, file: profile.directory.isEmpty ? v.file : profile.directory + "/" + profile.name + ".yaml")
        }
    }

    mutating func parseGPUs(_ v: Sourced) -> GPUSelection? {
        if let text = v.node.scalar {
            switch GPUSelection.parse(text) {
            case let .success(g): return g
            case let .failure(problem):
                reader.error(v, "gpus: \(problem.message)", fix: "use auto, indices like 0,2, or an inventory like 4x24GB,2x80GB")
                return nil
            }
        }
        guard let items = v.node.items, !items.isEmpty else {
            reader.error(v, "gpus must be auto, a list of indices, or an inventory", fix: "write gpus: auto, gpus: \"0,1\", or gpus: \"4x24GB,2x80GB\"")
            return nil
        }
        if items.allSatisfy({ $0.scalar.flatMap { Int($0) } != nil }) {
            return .indices(items.compactMap { $0.scalar.flatMap { Int($0) } })
        }
        var entries: [GPUInventoryEntry] = []
        for item in items {
            let s = Sourced(node: item, file: v.file)
            guard let fields = item.entries else {
                reader.error(s, "an inventory entry must be a mapping like {count: 2, memory: 80GB, model: A100}", fix: "write each entry as {count: 2, memory: 80GB}")
                continue
            }
            reader.rejectUnknownKeys(fields, file: v.file, known: ["count", "memory", "model"], context: "GPU inventory entry")
            func f(_ k: String) -> Sourced? { fields.first { $0.key == k }.map { Sourced(node: $0.value, file: v.file) } }
            let count = f("count").flatMap { reader.int($0, "count", range: 1...100_000) } ?? 1
            guard let memNode = f("memory") else { reader.error(s, "inventory entry has no memory", fix: "add memory: 80GB"); continue }
            guard let text = memNode.node.scalar, let gb = parseGigabytes(text), gb > 0 else {
                reader.error(memNode, "memory \(memNode.node.kindDescription) is not a size", fix: "write it like 80GB")
                continue
            }
            entries.append(GPUInventoryEntry(count: count, memoryGB: gb, model: f("model").flatMap { reader.string($0, "model") }))
        }
        return entries.isEmpty ? nil : .inventory(entries)
    }

    mutating func parseRetry(_ v: Sourced) -> RetryPolicy {
        var policy = RetryPolicy()
        guard let entries = v.node.entries else {
            reader.error(v, "retry must be a mapping like {max_attempts: 4, on_oom: [isolate, {online_decode: true}]}", fix: "write retry: {max_attempts: 4, on_oom: [isolate]}")
            return policy
        }
        reader.rejectUnknownKeys(entries, file: v.file, known: ["max_attempts", "on_oom"], context: "retry")
        for e in entries {
            let s = Sourced(node: e.value, file: v.file)
            if e.key == "max_attempts", let n = reader.int(s, "max_attempts", range: 1...100) { policy.maxAttempts = n }
            if e.key == "on_oom" {
                guard let items = e.value.items else { reader.error(s, "on_oom must be a list of rungs", fix: "write on_oom: [isolate, {fp8: true}]"); continue }
                policy.onOOM = items.compactMap { parseRung(Sourced(node: $0, file: v.file)) }
            }
        }
        return policy
    }

    mutating func parseSlurm(_ v: Sourced) -> SlurmSettings {
        var out = SlurmSettings()
        guard let entries = v.node.entries else {
            reader.error(v, "slurm must be a mapping like {partition: gpu, account: media, max_in_flight: 64}", fix: "write slurm: {partition: gpu}")
            return out
        }
        let known = ["partition", "account", "qos", "time_limit", "sbatch_args", "max_in_flight", "gres", "gb_per_shard", "binary"]
        reader.rejectUnknownKeys(entries, file: v.file, known: known, context: "slurm")
        for e in entries {
            let s = Sourced(node: e.value, file: v.file)
            switch e.key {
            case "partition": out.partition = reader.string(s, "partition")
            case "account": out.account = reader.string(s, "account")
            case "qos": out.qos = reader.string(s, "qos")
            case "time_limit":
                if let t = reader.string(s, "time_limit") {
                    if let secs = FieldReader.parseDuration(t), secs >= 60 { out.timeLimitSeconds = secs } else {
                        reader.error(s, "time_limit \"\(t)\" is not a duration of at least a minute", fix: "write e.g. 90m, 2h or 1h30m")
                    }
                }
            case "sbatch_args":
                if let list = reader.stringList(s, "sbatch_args") {
                    for (i, a) in list.enumerated() where !a.hasPrefix("-") {
                        reader.error(Sourced(node: e.value.items?[i] ?? e.value, file: v.file), "sbatch_args entry \"\(a)\" is not an option",
                                     fix: "write each option as one entry, e.g. \"--constraint=a100\"")
                    }
                    out.sbatchArgs = list
                }
            case "max_in_flight": if let n = reader.int(s, "max_in_flight", range: 1...100_000) { out.maxInFlight = n }
            case "gres":
                if let t = reader.string(s, "gres") {
                    if let g = SlurmGres(rawValue: t) { out.gres = g } else {
                        reader.error(s, "gres \"\(t)\" is not known", fix: "use auto, shard or gpu")
                    }
                }
            case "gb_per_shard": if let d = reader.double(s, "gb_per_shard", range: 0.01...1024) { out.gbPerShard = d }
            case "binary":
                if let t = reader.string(s, "binary") {
                    out.binary = URL(fileURLWithPath: t, relativeTo: URL(fileURLWithPath: v.directory + "/")).standardizedFileURL.path
                }
            default: break
            }
        }
        return out
    }

    mutating func parseRung(_ s: Sourced) -> RetryRung? {
        if let text = s.node.scalar {
            if text == "isolate" { return .isolate }
            reader.error(s, "retry rung \"\(text)\" is not known", fix: "use isolate or a map of settings such as {online_decode: true}")
            return nil
        }
        guard let entries = s.node.entries else { reader.error(s, "a retry rung must be isolate or a map of settings", fix: "write isolate, or settings such as {online_decode: true}"); return nil }
        let allowed = ["size", "infer_frames", "sample_steps", "online_decode", "offload_model", "fp8"]
        reader.rejectUnknownKeys(entries, file: s.file, known: allowed, context: "retry rung")
        var change = SettingsChange()
        for e in entries {
            let v = Sourced(node: e.value, file: s.file)
            switch e.key {
            case "size":
                if let t = reader.string(v, "size") {
                    if let size = FrameSize(t), profile?.sizes.isEmpty != false || profile!.sizes.contains(size) { change.size = size } else {
                        reader.error(v, "size \"\(t)\" is not supported by \(profile?.name ?? "the renderer")", fix: sizesFix())
                    }
                }
            case "infer_frames": change.inferFrames = inferFrames(v)
            case "sample_steps": change.sampleSteps = reader.int(v, "sample_steps", range: 1...1000)
            case "online_decode": change.onlineDecode = reader.bool(v, "online_decode")
            case "offload_model": change.offloadModel = reader.bool(v, "offload_model")
            case "fp8": change.fp8 = reader.bool(v, "fp8")
            default: break
            }
        }
        if let (message, fix) = rungProblem(change) { reader.error(s, message, fix: fix) }
        return change.isEmpty ? nil : .change(change)
    }

    // MARK: clips, includes, clips_from

    mutating func clipFieldMap(_ v: Sourced, context: String, allowID: Bool) -> [String: Sourced] {
        guard let entries = v.node.entries else {
            reader.error(v, "\(context) must be a mapping of clip settings, not \(v.node.kindDescription)", fix: "write it as key: value lines, e.g. size: \"688*368\"")
            return [:]
        }
        let known = allowID ? Self.clipFields : Self.clipFields.filter { $0 != "id" }
        reader.rejectUnknownKeys(entries, file: v.file, known: known, context: context)
        var map: [String: Sourced] = [:]
        for e in entries where known.contains(e.key) { map[e.key] = Sourced(node: e.value, file: v.file) }
        return map
    }

    mutating func collectClips(from entries: [YAMLEntry], file: String, defaults: [String: Sourced]) {
        func value(_ key: String) -> Sourced? { entries.first { $0.key == key }.map { Sourced(node: $0.value, file: file) } }
        if let v = value("clips") {
            if let items = v.node.items {
                for item in items {
                    let s = Sourced(node: item, file: file)
                    guard item.entries != nil else {
                        reader.error(s, "a clip must be a mapping with id, audio and the settings that differ from defaults, not \(item.kindDescription)", fix: "write each clip as {id: lesson-01, audio: lesson-01.wav}")
                        continue
                    }
                    let fields = clipFieldMap(s, context: "clip", allowID: true)
                    rawClips.append((defaults.merging(fields) { _, new in new }, file, item.position))
                }
            } else if !v.node.isNull {
                reader.error(v, "clips must be a list, not \(v.node.kindDescription)", fix: "write clips: followed by lines starting with \"- \"")
            }
        }
        if let v = value("clips_from") { expandClipsFrom(v, defaults: defaults) }
        if let v = value("include") {
            let paths: [(String, Sourced)]
            if let t = v.node.scalar { paths = [(t, v)] } else if let items = v.node.items {
                paths = items.compactMap { i in i.scalar.map { ($0, Sourced(node: i, file: file)) } }
                for i in items where i.scalar == nil { reader.error(Sourced(node: i, file: file), "include entries must be file paths", fix: "list file paths, e.g. include: [week3-extra.yaml]") }
            } else {
                reader.error(v, "include must be a path or a list of paths", fix: "write include: more.yaml or include: [a.yaml, b.yaml]")
                return
            }
            for (text, node) in paths { include(text, node: node, defaults: defaults) }
        }
    }

    mutating func include(_ text: String, node: Sourced, defaults: [String: Sourced]) {
        let path = URL(fileURLWithPath: text, relativeTo: URL(fileURLWithPath: node.directory + "/")).standardizedFileURL.path
        if options.untrusted {
            // Links resolved on both sides, so a symbolic link inside the folder cannot lead out of it.
            let root = URL(fileURLWithPath: manifestFile).standardizedFileURL.deletingLastPathComponent().resolvingSymlinksInPath().path
            let real = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
            guard real.hasPrefix(root + "/") else {
                reader.error(node, "an untrusted manifest may only include files inside its own folder, not \"\(text)\"",
                             fix: "move the file into \(root)")
                return
            }
        }
        if visited.contains(path) {
            reader.error(node, "include \"\(text)\" forms a cycle", fix: "remove the include that leads back to this file")
            return
        }
        guard let data = FileBytes.read(path) else {
            reader.error(node, "included file \"\(text)\" cannot be read", fix: "check the path (relative to \(node.file))")
            return
        }
        let shown = relativeDisplayPath(path)
        switch YAMLReader.parse(data, file: shown, limits: options.limits) {
        case let .failure(d):
            reader.diagnostics.append(d)
        case .success(nil):
            break
        case let .success(root?):
            guard let entries = root.entries else {
                reader.error(Sourced(node: root, file: shown), "an included file must be a mapping with clips, clips_from or defaults", fix: "give the included file clips:, clips_from: or defaults: at the left margin")
                return
            }
            reader.rejectUnknownKeys(entries, file: shown, known: Self.includeKeys, context: "included file")
            var merged = defaults
            if let d = entries.first(where: { $0.key == "defaults" }) {
                merged.merge(clipFieldMap(Sourced(node: d.value, file: shown), context: "defaults", allowID: false)) { _, new in new }
            }
            visited.append(path)
            collectClips(from: entries, file: shown, defaults: merged)
            visited.removeLast()
        }
    }

    func relativeDisplayPath(_ absolute: String) -> String {
        let cwd = FileManager.default.currentDirectoryPath + "/"
        return absolute.hasPrefix(cwd) ? String(absolute.dropFirst(cwd.count)) : absolute
    }

    mutating func expandClipsFrom(_ v: Sourced, defaults: [String: Sourced]) {
        let specs: [Sourced]
        if v.node.scalar != nil || v.node.entries != nil { specs = [v] } else if let items = v.node.items {
            specs = items.map { Sourced(node: $0, file: v.file) }
        } else {
            reader.error(v, "clips_from must be a glob such as lessons/*.wav, or a list of {audio: GLOB, ...}", fix: "write clips_from: \"lessons/*.wav\"")
            return
        }
        for spec in specs {
            var fields = defaults
            let globNode: Sourced
            if spec.node.scalar != nil {
                globNode = spec
            } else if spec.node.entries != nil {
                let map = clipFieldMap(spec, context: "clips_from entry", allowID: false)
                guard let g = map["audio"] else { reader.error(spec, "clips_from entry has no audio glob", fix: "add audio: lessons/*.wav"); continue }
                globNode = g
                fields.merge(map) { _, new in new }
            } else {
                reader.error(spec, "clips_from entries must be globs or mappings", fix: "write each entry as a glob or {audio: \"lessons/*.wav\"}")
                continue
            }
            guard let pattern = reader.string(globNode, "audio") else { continue }
            let absolutePattern = pattern.hasPrefix("/") ? pattern : URL(fileURLWithPath: globNode.directory).standardizedFileURL.path + "/" + pattern
            let matches = Glob.expand(absolutePattern)
            if matches.isEmpty {
                reader.error(globNode, "clips_from glob \"\(pattern)\" matches no files", fix: "check the pattern (relative to \(globNode.file))")
                continue
            }
            for match in matches {
                var clip = fields
                let stem = ((match as NSString).lastPathComponent as NSString).deletingPathExtension
                let id = String(stem.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "_" || $0 == "-") ? $0 : "_" })
                clip["id"] = Sourced(node: YAMLNode(value: .scalar(id, quoted: true), position: globNode.node.position), file: globNode.file)
                clip["audio"] = Sourced(node: YAMLNode(value: .scalar(match, quoted: true), position: globNode.node.position), file: globNode.file)
                rawClips.append((clip, globNode.file, globNode.node.position))
            }
        }
    }

    /// Expands a profile path template (`{env.NAME}`, `{profile_dir}`); nil when a variable it reads is unset.
    func expandProfilePath(_ template: String, _ profile: RendererProfile) -> String? {
        var values = ["profile_dir": profile.directory]
        for name in ArgvTemplate.environmentNames([template]) {
            guard let value = options.environment[name], !value.isEmpty else { return nil }
            values["env." + name] = value
        }
        return ArgvTemplate.expand([template], values: values, flags: [:], extraArgs: []).first
    }

    /// The files a profile needs (checkpoints, its entry script) exist, and its parser source is read for the flags
    /// this checkout knows: both before any GPU time is spent.
    mutating func checkRendererFiles(_ profile: RendererProfile, at v: Sourced) {
        for template in profile.requiredFiles {
            guard let path = expandProfilePath(template, profile) else { continue }  // the unset variable is reported already
            if !FileManager.default.fileExists(atPath: path) {
                let names = ArgvTemplate.environmentNames([template])
                let fix = names.isEmpty ? "put the file in place (see the profile's comments)"
                    : "put it where the profile expects it (see the profile's comments), or point $\(names[0]) at a checkout that has it"
                reader.error(v, "renderer \(profile.name) needs \(path), which does not exist", fix: fix)
            }
        }
        guard let template = profile.flagSource, let path = expandProfilePath(template, profile),
              let data = FileBytes.read(path) else { return }
        let source = String(decoding: data, as: UTF8.self)
        flagSourcePath = path
        for entry in profile.command {
            for case let .placeholder(name, conditional?) in ArgvTemplate.tokens(entry) {
                // The flag as the parser declares it: "--fp8" in add_argument("--fp8", ...).
                let flag = conditional.split(separator: "=").first.map(String.init) ?? conditional
                if flag.hasPrefix("-") && !source.contains("\"\(flag)\"") && !source.contains("'\(flag)'") {
                    unsupportedFlags[name] = flag
                }
            }
        }
    }

    /// Why a retry rung cannot be honoured by the renderer, with the fix; nil when it can.
    func rungProblem(_ c: SettingsChange) -> (String, String)? {
        guard let profile else { return nil }
        let l = profile.limits
        if let off = c.offloadModel, let need = l.offloadModel, off != need {
            return ("retry rung sets offload_model: \(off), which \(profile.name) does not support", "remove the rung (offload_model must stay \(need))")
        }
        if let steps = c.sampleSteps, !l.sampleSteps.isEmpty, !l.sampleSteps.contains(steps) {
            return ("retry rung sets sample_steps: \(steps), which \(profile.name) does not support",
                    "use \(l.sampleSteps.map(String.init).joined(separator: " or ")) or remove the rung")
        }
        if let f = c.inferFrames, l.inferFramesMultiple > 0, f % l.inferFramesMultiple != 0 {
            return ("retry rung sets infer_frames: \(f), not a multiple of \(l.inferFramesMultiple) as \(profile.name) needs",
                    "use \(max(l.inferFramesMultiple, f / l.inferFramesMultiple * l.inferFramesMultiple))")
        }
        for (name, on) in [("online_decode", c.onlineDecode), ("fp8", c.fp8), ("offload_model", c.offloadModel)] where on == true {
            if let flag = unsupportedFlags[name] {
                return ("retry rung sets \(name): true, but this \(profile.name) checkout has no \(flag) (\(flagSourcePath))",
                        "update the checkout, or remove the rung")
            }
        }
        return nil
    }

    /// `extra_args` may add flags, never override the command's own: argparse keeps an option's last occurrence and
    /// accepts any unique prefix of its name, so `--save_f=/elsewhere` after the profile's `--save_file` moves the
    /// output. A profile's `extra_args_allowed` narrows them to a list; an untrusted manifest needs that list.
    mutating func checkExtraArgs(_ extra: [String], at v: Sourced, profile: RendererProfile) {
        guard profile.command.contains("{extra_args}") else {
            reader.error(v, "extra_args would be dropped: renderer \(profile.name)'s command has no {extra_args}",
                         fix: "remove extra_args, or add \"{extra_args}\" to the profile's command")
            return
        }
        if options.untrusted && profile.extraArgsAllowed == nil {
            reader.error(v, "an untrusted manifest may not pass extra_args to \(profile.name): its profile lists no extra_args_allowed",
                         fix: "remove extra_args, or list the flags in the installed profile's extra_args_allowed")
            return
        }
        let own = profile.commandFlags
        let items = v.node.items ?? []
        for (i, arg) in extra.enumerated() where arg.hasPrefix("-") && arg.count > 1 && Double(arg) == nil {
            let at = i < items.count ? Sourced(node: items[i], file: v.file) : v
            let name = String(arg.split(separator: "=", maxSplits: 1).first ?? Substring(arg))
            if let hit = own.first(where: { $0 == name || ($0.hasPrefix(name) && name.count > 2 && name.hasPrefix("--")) }) {
                reader.error(at, "extra_args \"\(arg)\" would override \(hit), which renderer \(profile.name) sets itself",
                             fix: "remove it: the profile's own \(hit) stands")
            } else if let allowed = profile.extraArgsAllowed, !allowed.contains(name) {
                reader.error(at, "extra_args flag \"\(name)\" is not one renderer \(profile.name) allows",
                             fix: allowed.isEmpty ? "remove it (the profile allows none)" : "use one of \(allowed.joined(separator: ", "))")
            }
        }
    }

    /// Settings the renderer cannot honour, each reported at the field that set it (or the clip).
    mutating func checkLimits(_ s: ClipSettings, fields: [String: Sourced], here: Sourced, profile: RendererProfile) {
        let l = profile.limits
        func at(_ key: String) -> Sourced { fields[key] ?? here }
        if !l.sampleSteps.isEmpty && !l.sampleSteps.contains(s.sampleSteps) {
            reader.error(at("sample_steps"), "sample_steps \(s.sampleSteps) is not supported by \(profile.name)",
                         fix: "use \(l.sampleSteps.map(String.init).joined(separator: " or "))")
        }
        if l.inferFramesMultiple > 0 && s.inferFrames % l.inferFramesMultiple != 0 {
            let m = l.inferFramesMultiple, lower = s.inferFrames / m * m
            reader.error(at("infer_frames"), "infer_frames \(s.inferFrames) is not a multiple of \(m): \(profile.name) denoises in blocks of \(m) frames and leaves the rest of every clip undenoised",
                         fix: lower > 0 ? "use \(lower) or \(lower + m)" : "use \(m)")
        }
        if let need = l.offloadModel, s.offloadModel != need {
            reader.error(at("offload_model"), "offload_model \(s.offloadModel) is not supported by \(profile.name) on one GPU (it fails after all the denoising)",
                         fix: "set offload_model: \(need), or remove it to use the profile's default")
        }
        if l.maxFrameTokens > 0 {
            let frame = profile.renderedFrame(s), tokens = frame.pixels / 256
            if tokens > l.maxFrameTokens {
                let fitting = profile.sizes.sorted(by: >).first { size in
                    var t = s
                    t.size = size
                    return profile.renderedFrame(t).pixels / 256 <= l.maxFrameTokens
                }
                let image = s.reference.map { " from this \($0.width)x\($0.height) image" } ?? ""
                reader.error(at("size"), "size \(s.size) renders \(frame.width)x\(frame.height) frames\(image), \(tokens) tokens a latent frame, over \(profile.name)'s limit of \(l.maxFrameTokens)",
                             fix: fitting.map { "use size \($0) or smaller" } ?? "use a smaller size or image")
            }
        }
        for (name, on) in [("online_decode", s.onlineDecode), ("fp8", s.fp8), ("offload_model", s.offloadModel)] where on {
            if let flag = unsupportedFlags[name] {
                reader.error(at(name), "\(name) needs \(flag), which this \(profile.name) checkout does not have (\(flagSourcePath))",
                             fix: "update the checkout, or set \(name): false")
            }
        }
    }

    // MARK: one clip

    func sizesFix() -> String {
        guard let profile, !profile.sizes.isEmpty else { return "write it like 688*368" }
        return "use one of \(profile.sizes.sorted(by: >).map(\.description).joined(separator: ", "))"
    }

    mutating func inferFrames(_ v: Sourced) -> Int? {
        guard let n = reader.int(v, "infer_frames", range: 4...1024) else { return nil }
        guard n % 4 == 0 else {
            let lower = n / 4 * 4
            reader.error(v, "infer_frames \(n) is not a multiple of 4", fix: "use \(max(4, lower)) or \(lower + 4)")
            return nil
        }
        return n
    }

    mutating func resolveClip(_ given: [String: Sourced], file: String, position: SourcePosition, profile: RendererProfile) -> ClipSpec? {
        let fields = profileDefaults.merging(given) { _, new in new }
        let before = reader.diagnostics.count
        let here = Sourced(node: YAMLNode(value: .scalar("", quoted: false), position: position), file: file)
        func required(_ key: String, fix: String) -> Sourced? {
            if let v = fields[key] { return v }
            reader.error(here, "clip has no \(key)", fix: fix)
            return nil
        }

        var id = ""
        if let v = required("id", fix: "add id: lesson-01"), let text = reader.string(v, "id") {
            if text.isEmpty || text.count > 128 || text == "." || text == ".." || text.hasPrefix("-")
                || !text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "_" || $0 == "-") }) {
                reader.error(v, "clip id \"\(text)\" may use only letters, digits, '.', '_' and '-' (at most 128, not starting with '-')",
                             fix: "rename it, e.g. \"\(String(text.map { $0.isASCII && ($0.isLetter || $0.isNumber) ? $0 : "-" }).trimmingCharacters(in: CharacterSet(charactersIn: "-")))\"")
            } else { id = text }
        }
        let image = required("image", fix: "add image: path/to/portrait.png (or set it in defaults)").flatMap { inputFile($0, key: "image") }
        let audio = required("audio", fix: "add audio: path/to/speech.wav").flatMap { inputFile($0, key: "audio") }
        var prompt = ""
        if let v = required("prompt", fix: "add prompt: \"A teacher speaking to the camera\" (or set it in defaults)"),
           let text = reader.string(v, "prompt") {
            if text.allSatisfy(\.isWhitespace) {
                reader.error(v, "prompt is empty", fix: "describe the speaker and scene")
            } else { prompt = text }
        }
        var size = profile.sizes.first ?? FrameSize(width: 688, height: 368)
        if let v = required("size", fix: "add size: \(size)"), let text = reader.string(v, "size") {
            if let s = FrameSize(text) {
                if !profile.sizes.isEmpty && !profile.sizes.contains(s) {
                    reader.error(v, "size \"\(text)\" is not supported by \(profile.name)", fix: sizesFix())
                } else { size = s }
            } else {
                reader.error(v, "size \"\(text)\" is not W*H", fix: sizesFix())
            }
        }
        var inferFramesValue = 48
        if let v = fields["infer_frames"], let n = inferFrames(v) { inferFramesValue = n }
        var sampleSteps = ClipSettings.defaultSampleSteps
        if let v = fields["sample_steps"], let n = reader.int(v, "sample_steps", range: 1...1000) { sampleSteps = n }
        var seed = 420
        if let v = fields["seed"], let n = reader.int(v, "seed", range: -1...Int(Int32.max)) { seed = n }
        let offload = fields["offload_model"].flatMap { reader.bool($0, "offload_model") } ?? false
        let fp8 = fields["fp8"].flatMap { reader.bool($0, "fp8") } ?? false
        let priority = fields["priority"].flatMap { reader.int($0, "priority", range: -1_000_000...1_000_000) } ?? 0
        let extra = fields["extra_args"].flatMap { reader.stringList($0, "extra_args") } ?? []
        if let v = fields["extra_args"], !extra.isEmpty { checkExtraArgs(extra, at: v, profile: profile) }
        let gpuModel = fields["gpu_model"].flatMap { reader.string($0, "gpu_model") }
        var timeout: Double?
        if let v = fields["timeout"], let text = reader.string(v, "timeout") {
            if let t = FieldReader.parseDuration(text), t > 0 { timeout = t } else {
                reader.error(v, "timeout \"\(text)\" is not a duration", fix: "write seconds (900) or a duration such as 15m or 2h")
            }
        }
        var decode = Switch.auto
        if let v = fields["online_decode"], let text = v.node.scalar {
            if text == "auto" { decode = .auto } else if let b = FieldReader.parseBool(text) { decode = b ? .on : .off } else {
                reader.error(v, "online_decode must be true, false or auto, not \"\(text)\"", fix: "write online_decode: true, false or auto")
            }
        } else if let v = fields["online_decode"] {
            reader.error(v, "online_decode must be true, false or auto, not \(v.node.kindDescription)", fix: "write online_decode: true, false or auto")
        }

        // Audio seconds: ffprobe when given; otherwise the WAV header when there is one.
        var audioSeconds: Double?
        var audioUnreadable = false
        if let audio, options.checkFiles {
            if let probe = options.probe {
                let result = probeCache[audio] ?? probe.probeAudio(at: audio)
                probeCache[audio] = result
                switch result {
                case let .duration(d): audioSeconds = d
                case let .unreadable(why):
                    audioUnreadable = true
                    reader.error(fields["audio"]!, "audio \"\(fields["audio"]!.node.scalar ?? "")\" cannot be read by ffprobe: \(why)",
                                 fix: "convert it to WAV or MP3")
                }
            } else {
                audioSeconds = MediaSniffer.wavDuration(at: audio)
            }
        }
        var numClip = 0
        if let v = required("num_clip", fix: "add num_clip: auto (as long as the audio) or a number") {
            if v.node.scalar == "auto" {
                if let seconds = audioSeconds {
                    numClip = max(1, Int((seconds * profile.fps / Double(inferFramesValue)).rounded(.up)))
                } else if options.checkFiles && audio != nil && !audioUnreadable {
                    reader.error(v, "num_clip: auto needs the audio's duration, and it could not be measured",
                                 fix: "install ffprobe (apt-get install ffmpeg), use WAV audio, or give a number")
                } else {
                    numClip = 1
                }
            } else if let n = reader.int(v, "num_clip", range: 1...100_000) {
                numClip = n
            }
        }
        let onlineDecode: Bool
        switch decode {
        case .on: onlineDecode = true
        case .off: onlineDecode = false
        case .auto: onlineDecode = numClip > profile.autoOnlineDecodeClips
        }

        var output = id + "." + profile.outputExtension
        if let v = fields["output"], let text = reader.string(v, "output") {
            let expanded = text.replacingOccurrences(of: "{id}", with: id)
            if let problem = OutputPath.problem(expanded, outputDir: outputDir) {
                reader.error(v, problem, fix: "use a file name inside output_dir, such as \(id).\(profile.outputExtension)")
            } else { output = expanded }
        } else if let problem = OutputPath.problem(output, outputDir: outputDir) {
            reader.error(here, problem, fix: "remove the file or link that is in the way")
        }

        if let audio, let v = fields["audio"] {
            for bad in profile.limits.audioPathForbids where audio.contains(bad) {
                reader.error(v, "audio path \"\(v.node.scalar ?? audio)\" contains \"\(bad)\", which \(profile.name) reads as a separator between several files",
                             fix: "rename or link the file to a path without \"\(bad)\"")
            }
        }
        var reference: FrameSize?
        if let image, options.checkFiles, profile.framing != .exact {
            if let known = imageSizes[image] { reference = known } else {
                reference = MediaSniffer.imageSize(at: image)
                imageSizes[image] = reference
            }
            if reference == nil, let v = fields["image"] {
                reader.error(v, "image \"\(v.node.scalar ?? image)\" has no readable size in its header, which \(profile.name) needs to frame the video",
                             fix: "re-save it as PNG or JPEG")
            }
        }
        let settings = ClipSettings(size: size, numClip: numClip, inferFrames: inferFramesValue, sampleSteps: sampleSteps,
                                    onlineDecode: onlineDecode, offloadModel: offload, fp8: fp8, seed: seed, extraArgs: extra,
                                    reference: reference)
        checkLimits(settings, fields: fields, here: here, profile: profile)
        guard reader.diagnostics.count == before, let image, let audio else { return nil }
        return ClipSpec(id: id, image: image, audio: audio, prompt: prompt, output: output, priority: priority, timeoutSeconds: timeout,
                        gpuModel: gpuModel, settings: settings, audioSeconds: audioSeconds, file: file, position: position)
    }

    /// Resolves an input path against the file that wrote it and checks it can be read.
    mutating func inputFile(_ v: Sourced, key: String) -> String? {
        guard let text = reader.string(v, key) else { return nil }
        if text.isEmpty { reader.error(v, "\(key) is empty", fix: "give a file path"); return nil }
        let dir: String
        if text.hasPrefix("/") { dir = "/" } else if let d = directories[v.file] { dir = d } else { dir = v.directory; directories[v.file] = dir }
        let path = LexicalPath.absolute(text, in: dir).string
        guard options.checkFiles else { return path }
        let problem: String?
        if let cached = fileChecks[path] { problem = cached } else {
            var isDir: ObjCBool = false
            if !FileManager.default.fileExists(atPath: path, isDirectory: &isDir) {
                problem = "\(key) \"\(text)\" does not exist"
            } else if isDir.boolValue {
                problem = "\(key) \"\(text)\" is a directory"
            } else if !FileManager.default.isReadableFile(atPath: path) {
                problem = "\(key) \"\(text)\" is not readable"
            } else if key == "image" && MediaSniffer.imageFormat(at: path) == nil {
                problem = "image \"\(text)\" is not a PNG, JPEG, WebP or BMP file"
            } else if key == "image", let why = options.probe?.decodeImage(at: path) {
                problem = "image \"\(text)\" cannot be decoded (\(why))"
            } else {
                problem = nil
            }
            fileChecks[path] = problem
        }
        if let problem {
            let unusable = problem.contains("cannot be decoded") || problem.contains("is not a PNG")
            reader.error(v, problem, fix: unusable ? "re-save it as PNG or JPEG" : "check the path (relative to \((v.file as NSString).lastPathComponent))")
            return nil
        }
        return path
    }
}

/// Keeps outputs inside output_dir.
public enum OutputPath {
    /// Why `name` may not be used as an output under `outputDir`, or nil when it may.
    public static func problem(_ name: String, outputDir: String) -> String? {
        if name.isEmpty { return "output is empty" }
        if name.hasPrefix("/") { return "output \"\(name)\" is an absolute path; outputs stay inside output_dir" }
        let parts = name.split(separator: "/", omittingEmptySubsequences: false)
        if parts.contains(where: { $0 == ".." || $0 == "." || $0.isEmpty }) {
            return "output \"\(name)\" leaves output_dir or has an empty part; outputs stay inside output_dir"
        }
        if name.hasPrefix("-") { return "output \"\(name)\" starts with '-'" }
        if name.contains(where: { $0 == "\0" || $0 == "\n" }) { return "output \"\(name)\" contains a control character" }
        // A symlink planted anywhere on the way would let a write land outside output_dir.
        var path = outputDir
        for part in parts {
            path += "/" + part
            if let type = try? FileManager.default.attributesOfItem(atPath: path)[.type] as? FileAttributeType, type == .typeSymbolicLink {
                return "output \"\(name)\" passes through the symbolic link \(path); outputs stay inside output_dir"
            }
        }
        return nil
    }
}
