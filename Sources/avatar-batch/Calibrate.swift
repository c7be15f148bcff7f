import ArgumentParser
import Checkpoint
import Executors
import Foundation
import Manifest
import Scheduler

struct Calibrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure a renderer on this machine's GPU model; every later batch on that model plans from the figures.",
        discussion: """
            Runs a designed set of probe jobs with the real renderer on one GPU: alone at several sizes, frame and clip \
            counts, decoded offline and online, then k long probes of two sizes at once for S(k). It fits the profile's memory and \
            time model and sharing table and stores them in the history (docs/calibration.md), keyed by the renderer \
            and the GPU model. It says how long it will take before it starts; Ctrl-C or a kill leaves it resumable: \
            run the same command again, with the same options (or add --discard to start afresh). A probe that runs out of memory is data: an \
            upper bound. When the profile has a worker: section, the probes alone run as requests to one warm worker: \
            the model loads once, its load is measured as the start-up, and each probe's time is its render alone \
            (--cold runs each probe as its own process instead; batches keep planning from a warm calibration where \
            there is one, since it predicts cold batches better too). With --gpus (a virtual inventory) the renderer must \
            report its own peak memory ($AVATAR_BATCH_REPORT, or the worker's done message), as the tests' fakes do.
            """)

    @Argument(help: "A renderer profile: a name on the search path (liveavatar, synthetic-dit) or a path to its YAML.")
    var renderer: String

    @Option(help: "A virtual inventory (e.g. 1x24GB) instead of this machine's GPUs, for renderers that report their own peak.")
    var gpus: String?

    @Option(help: "The GPU to calibrate on, by nvidia-smi index (default: the first).")
    var gpu: Int?

    @Flag(help: "A few probes: finishes in minutes on one GPU.")
    var quick = false

    @Flag(help: "Run each probe as its own process even when the profile has a warm worker (each one then pays the load).")
    var cold = false

    @Flag(help: "Discard an unfinished calibration of this renderer and GPU model and start again.")
    var discard = false

    @Flag(help: "Calibrate on a GPU other processes already use (their memory is set aside; their compute still slows the probes).")
    var allowBusy = false

    @Option(help: "Co-locate at most this many jobs for S(k) (default: the profile's max_jobs_per_gpu, up to 4).")
    var maxShared: Int?

    @Option(help: ArgumentHelp("The history to store the calibration in (default: $AVATAR_BATCH_HOME/history.sqlite, else $XDG_DATA_HOME/avatar-batch/ or ~/.local/share/avatar-batch/).", valueName: "PATH"))
    var history: String?

    @Option(help: "Seconds between SIGTERM and SIGKILL when stopping a probe.")
    var grace: Double = 10

    @Flag(help: "Print only the summary.")
    var quiet = false

    @Flag(help: "List this renderer's calibrations in the history (each GPU model's, and which one its batches plan from); run nothing.")
    var list = false

    func run() async throws {
        let (profile, profilePath) = try loadProfile()
        if list { return try listCalibrations(profile) }
        let selected = try await targetGPU(profile)
        let historyPath = history ?? History.defaultPath()
        let store: History
        do { store = try History(path: historyPath) } catch { throw fail("\(error)", code: 1) }
        guard !store.readOnly else { throw fail("the history at \(historyPath) is read-only; a calibration cannot be stored there (set AVATAR_BATCH_HOME)", code: 1) }
        let model = Learning.modelKey(selected)
        let identity = profile.identityDigest
        let safe = model.map { $0.isLetter || $0.isNumber ? $0 : "-" }
        let folder = (historyPath as NSString).deletingLastPathComponent + "/calibrations/\(profile.name)-\(identity)-\(String(safe))"
        if discard, let open = try store.calibrations().first(where: { $0.rendererIdentity == identity && $0.gpuModel == model && $0.state == "running" }) {
            try store.discardCalibration(open.id, note: "discarded by calibrate --discard")
            try? FileManager.default.removeItem(atPath: open.workDir)
            say("discarded the unfinished calibration \(open.id) (started \(Date(timeIntervalSince1970: open.startedAt).formatted(.iso8601)))")
        }
        // Each calibration has a folder of its own (an unfinished one resumes in its own): one begun later never finds an
        // earlier one's probes done. Until 2026-12-01 they shared one, and calibrating again refitted the old probes.
        let record = try store.beginCalibration(rendererIdentity: identity, renderer: profile.name, gpuModel: model,
                                                workDir: folder + "-" + String(Int64(Date().timeIntervalSince1970 * 1000)))
        let work = record.workDir
        let resumed = FileManager.default.fileExists(atPath: work + "/solo.yaml")
        let warm = profile.worker != nil && !cold
        // A calibration resumes only as it began: probes of another design (cold against warm, quick against full)
        // would be fitted together with the ones already done.
        let options = [warm ? "warm" : "cold", quick ? "--quick" : "full"] + (maxShared.map { ["--max-shared \($0)"] } ?? [])
        let optionsFile = work + "/options.txt"
        let begun = (try? String(contentsOfFile: optionsFile, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        if let begun, begun != options.joined(separator: ", ") {
            throw fail("calibration \(record.id) of \(profile.name) on \(model) was begun as \(begun), not \(options.joined(separator: ", ")): "
                       + "run calibrate with the options it began with to resume it, or add --discard to start afresh", code: 2)
        }
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try options.joined(separator: ", ").write(toFile: optionsFile, atomically: true, encoding: .utf8)
        let design = CalibrationDesign(profile: profile, gpu: selected, quick: quick, maxShared: maxShared, warm: warm, profilePath: profilePath)
        try design.writeInputs(to: work)
        let estimate = design.predictedSeconds()
        say("calibrating \(profile.name) on GPU \(selected.index) (\(model)): \(design.solo.count) probes alone\(warm ? " on one warm worker" : "")"
            + (design.shared.isEmpty ? " (no two fit at once)" : ", then \(design.shared.map { "\($0)" }.joined(separator: ", ")) at once")
            + (warm ? ", each worker's first request a warm-up" : "") + "; "
            + "about \(ProgressReporter.duration(estimate)) by the profile's own predictions" + (resumed ? "; resuming calibration \(record.id)" : ""))
        let began = Date()

        // Alone: one probe at a time on the one GPU.
        let workerProfile = warm ? profile : nil
        let solo = try await runBatch(work + "/solo.yaml", gpu: selected, maxJobs: 1, sharing: [:], knowledge: nil, warm: workerProfile)
        if solo.interrupted { throw interrupted() }
        let soloStore = work + "/solo/.avatar-batch/state.sqlite"
        let ran = try CalibrationFitter.figures(soloStore)
        let alone = ran.filter { !$0.key.hasPrefix("warmup-") }
        var fit = CalibrationFitter.fit(design: design, solo: alone, gpu: selected, load: warm ? try CalibrationFitter.loadSeconds(soloStore) : nil)
        fit.warm = warm
        fit.probes += ran.count - alone.count
        if let w = design.warmUp, let first = design.solo.first {
            CalibrationFitter.addFirstRequest(&fit, warmUp: ran[w.id]?.seconds, same: alone[first.id]?.seconds)
        }
        // Together: k long probes at once (`CalibrationDesign.together`), placed with what the probes alone measured.
        var sharedStores: [Int: String] = [:]
        let calibrated = profile.calibrated(by: fit)
        let measured = Knowledge(profile: calibrated)
        for k in design.shared {
            let need = design.together(k).map { measured.predictor().estimate($0).memoryGB }.reduce(0, +)
            guard need <= selected.memoryGB - selected.foreignUsedGB else {
                fit.notes.append(String(format: "S(%d) not measured: %d probes of %.1f GB in all do not fit on %.0f GB", k, k, need, selected.memoryGB))
                continue
            }
            let r = try await runBatch(work + "/shared-\(k).yaml", gpu: selected, maxJobs: k, sharing: [k: Double(k)], knowledge: measured, warm: workerProfile,
                                       together: true)
            if r.interrupted { throw interrupted() }
            sharedStores[k] = work + "/shared-\(k)/.avatar-batch/state.sqlite"
        }
        // Cold probes start up before they render, and a start-up shares nothing (docs/running.md): S(k) is of the
        // render, so the start-up comes off both sides. A warm request's fixed part (set-up, save and mux) shares
        // nothing either, as batches predict it (`Estimate.unsharedSeconds`).
        try CalibrationFitter.addSharing(&fit, stores: sharedStores, alone: alone,
                                         unsharedSeconds: warm ? calibrated.requestFixedSeconds : (fit.startupSeconds ?? profile.time.startupSeconds))
        // The probes' time in all, over every session of a resumed calibration (until 2026-12-02 this session's only:
        // Live Avatar's, resumed after a kill, read 251 s of about 11 minutes).
        let stores = [soloStore] + sharedStores.values.sorted()
        fit.seconds = max(stores.compactMap { try? CalibrationFitter.runSeconds($0) }.reduce(0, +), Date().timeIntervalSince(began))
        guard !fit.memoryPoints.isEmpty || !fit.timePoints.isEmpty else {
            throw fail("no probe gave figures (every one failed or reported nothing); see the logs under \(work); the calibration stays unfinished", code: 1)
        }
        try store.completeCalibration(record.id, fit: fit)
        store.checkpoint()
        print(CalibrationFitter.describe(fit, profile: profile, model: model))
        if let used = try store.calibration(rendererIdentity: identity, gpuModel: model), used.id != record.id {
            // A cold calibration beside a warm one: the warm one predicts both kinds of batch better (History.calibration).
            print("stored as calibration \(record.id) in \(historyPath); batches on \(model) keep planning from calibration \(used.id) of "
                  + "\(Knowledge.day(used)), whose probes ran on warm workers: a warm calibration predicts cold batches better too (docs/calibration.md)")
        } else {
            print("stored as calibration \(record.id) in \(historyPath); batches on \(model) now plan from it (plan --explain says so)")
        }
    }

    func say(_ line: String) { if !quiet { FileHandle.standardError.write(Data("\(line)\n".utf8)) } }

    /// `--list`: the renderer's calibrations, newest first, by GPU model, each marked with the one its batches plan from
    /// (`History.calibration`); an unfinished one with the options it resumes with; those of earlier versions of the
    /// profile (another identity: never used) counted.
    func listCalibrations(_ profile: RendererProfile) throws {
        let path = history ?? History.defaultPath()
        guard FileManager.default.fileExists(atPath: path) else {
            print("no history at \(path): \(profile.name) has no calibrations yet (avatar-batch calibrate \(renderer) --quick makes one)")
            return
        }
        let store: History
        do { store = try History(path: path, readOnly: true) } catch { throw fail("\(error)", code: 1) }
        let all = try store.calibrations()
        let mine = all.filter { $0.rendererIdentity == profile.identityDigest }
        print("calibrations of \(profile.name) (identity \(profile.identityDigest)) in \(path):" + (mine.isEmpty ? " none" : ""))
        func day(_ t: Double) -> String { Date(timeIntervalSince1970: t).formatted(.iso8601) }
        for model in Array(Set(mine.map(\.gpuModel))).sorted() {
            let used = History.preferred(mine.filter { $0.gpuModel == model && $0.state == "complete" })?.id
            print("  \(model):")
            for c in mine where c.gpuModel == model {
                var line = "    \(c.id)  \(c.state)"
                switch c.state {
                case "complete":
                    if let fit = c.fit {
                        line += "  " + (fit.ranWarm ? "warm" : "cold") + "  finished \(day(c.finishedAt ?? c.startedAt))"
                            + String(format: "  %d probes in %.0f s", fit.probes, fit.seconds)
                        if !fit.sharing.isEmpty {
                            line += "  S(k) " + fit.sharing.sorted { $0.key < $1.key }.map { String(format: "%d: %.2f", $0.key, $0.value) }.joined(separator: ", ")
                        }
                    } else {
                        line += "  (its figures cannot be read by this version)"
                    }
                    if c.id == used { line += "  <- batches on \(model) plan from it" }
                case "running":
                    let options = (try? String(contentsOfFile: c.workDir + "/options.txt", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
                    line += "  begun \(day(c.startedAt))" + (options.map { " as \($0)" } ?? "")
                        + ": unfinished, never used; run calibrate again with the same options to resume it, or add --discard"
                default:
                    line += "  begun \(day(c.startedAt))" + (c.note.map { ": \($0)" } ?? "")
                }
                print(line)
            }
        }
        let older = all.filter { $0.renderer == profile.name && $0.rendererIdentity != profile.identityDigest }
        if !older.isEmpty {
            print("  \(older.count) calibration(s) of \(profile.name) under another identity (the profile or renderer has changed since): not used")
        }
    }

    func interrupted() -> ExitCode {
        FileHandle.standardError.write(Data("calibration interrupted; run the same command again to resume it (or add --discard to start again)\n".utf8))
        return ExitCode(130)
    }

    /// The profile, and the file it was read from.
    func loadProfile() throws -> (RendererProfile, String) {
        let path: String
        if renderer.hasSuffix(".yaml") || renderer.contains("/") {
            path = renderer
        } else {
            let dirs = ProfileLoader.searchPath(manifestDirectory: FileManager.default.currentDirectoryPath)
            guard let found = ProfileLoader.find(name: renderer, in: dirs) else {
                throw fail("no renderer profile \"\(renderer)\" (known: \(ProfileLoader.available(in: dirs).joined(separator: ", ")))")
            }
            path = found
        }
        let file = URL(fileURLWithPath: path).standardizedFileURL.path
        let (profile, diagnostics) = ProfileLoader.load(path: file)
        for d in diagnostics { FileHandle.standardError.write(Data("\(d)\n".utf8)) }
        guard let profile else { throw ExitCode(2) }
        return (profile, file)
    }

    /// The GPU the probes run on; a real one that other processes use is refused unless --allow-busy.
    func targetGPU(_ profile: RendererProfile) async throws -> GPU {
        let selection: GPUSelection
        if let gpus {
            switch GPUSelection.parse(gpus) {
            case let .success(s): selection = s
            case let .failure(e): throw fail("--gpus \(gpus): \(e)")
            }
        } else {
            selection = .auto
        }
        let all: [GPU]
        do { all = try await GPUDiscovery.discover(selection) } catch { throw fail("\(error)", code: 1) }
        guard let g = gpu.map({ i in all.first { $0.index == i } }) ?? all.first else {
            throw fail("no GPU \(gpu.map(String.init) ?? "") to calibrate on (found: \(all.map { String($0.index) }.joined(separator: ", ")))")
        }
        if let busy = GPUDiscovery.busyReason(g), !allowBusy {
            throw fail("\(busy); calibrating beside it would measure it too. Stop it, pick another GPU with --gpu, or pass --allow-busy", code: 1)
        }
        return g
    }

    /// One probe manifest through the batch machinery on `gpu`; `warm`: on warm workers of that profile; `together`:
    /// each probe on a worker of its own, all rendering at once (S(k)).
    func runBatch(_ manifestPath: String, gpu: GPU, maxJobs: Int, sharing: [Int: Double], knowledge: Knowledge?, warm: RendererProfile?,
                  together: Bool = false) async throws -> RunSummary {
        var lo = LoadOptions()
        lo.probe = FFprobe.locate()
        let manifest = try loadOrExit(manifestPath, lo)
        let jobs = try makeJobs(manifest)
        var o = LocalExecutorOptions(gpus: [gpu], strategy: try Scheduler.Strategy.named("earliest-finish"), maxJobsPerGPU: maxJobs,
                                     sharing: SharingModel(sharing))
        o.hostRAMGB = 0
        o.graceSeconds = grace
        o.warm = warm
        o.workersTogether = together
        var options = SessionOptions()
        options.graceSeconds = grace
        options.command = CommandLine.arguments.joined(separator: " ")
        let store = try Store(path: manifest.defaultStatePath)
        let session = try BatchSession(manifest: manifest, jobs: jobs, store: store, executor: LocalExecutor(o), options: options,
                                       progress: ProgressReporter(quiet: quiet), knowledge: knowledge)
        return try await session.run()
    }
}

/// The probes of a calibration, and the files they need (docs/calibration.md).
struct CalibrationDesign {
    struct Probe {
        var id: String
        var settings: ClipSettings
    }
    let profile: RendererProfile
    let gpu: GPU
    var solo: [Probe] = []
    /// Warm: a request that only warms the worker up, with the first probe's settings (its time less that probe's is
    /// what a fresh worker's first request costs more).
    var warmUp: Probe?
    var shared: [Int] = []
    var sharedSettings: ClipSettings
    /// The long probes that take turns in the k together (`together`), each also a probe alone.
    var sharedProbes: [ClipSettings] = []
    let audioSeconds: Double
    /// The probes run on warm workers: each pays no start-up, only a request's own overhead.
    let warm: Bool
    /// The profile's file, which the probes' manifests name (a profile's `name` need not be its file's: `fast.yaml`
    /// may say `name: fake-model`); empty: by its name, from the search path.
    let profilePath: String

    init(profile: RendererProfile, gpu: GPU, quick: Bool, maxShared: Int?, warm: Bool = false, profilePath: String = "") {
        self.profile = profile
        self.gpu = gpu
        self.warm = warm
        self.profilePath = profilePath
        let d = profile.defaults
        let defaultSize = d["size"].flatMap(FrameSize.init) ?? profile.sizes.first ?? FrameSize(width: 688, height: 368)
        let multiple = max(4, profile.limits.inferFramesMultiple)
        let frames = Int(d["infer_frames"] ?? "") ?? 48
        let steps = profile.limits.sampleSteps.first ?? Int(d["sample_steps"] ?? "") ?? ClipSettings.defaultSampleSteps
        let offload = profile.limits.offloadModel ?? (d["offload_model"] == "true")
        func settings(_ size: FrameSize, _ f: Int, _ clips: Int, online: Bool) -> ClipSettings {
            ClipSettings(size: size, numClip: clips, inferFrames: f, sampleSteps: steps, onlineDecode: online, offloadModel: offload, fp8: false, seed: 420)
        }
        // Sizes by pixels: the smallest, the default, and (not quick) the largest the profile predicts fits.
        let predictor = Predictor(profile: profile)
        let sizes = (profile.sizes.isEmpty ? [defaultSize] : profile.sizes).sorted { $0.pixels < $1.pixels }
        let fits = sizes.filter { predictor.estimate(settings($0, frames, 1, online: false)).memoryGB <= gpu.memoryGB }
        var chosen = [fits.first ?? defaultSize, defaultSize]
        if !quick, let largest = fits.last { chosen.append(largest) }
        var seen = Set<FrameSize>()
        chosen = chosen.filter { seen.insert($0).inserted }
        let half = max(multiple, frames / 2 / multiple * multiple)
        func id(_ s: ClipSettings) -> String {
            "\(s.size.width)x\(s.size.height)-f\(s.inferFrames)-c\(s.numClip)-\(s.onlineDecode ? "online" : "offline")"
        }
        // Each size gets a short probe and a long one: their difference is the render rate, free of start-up. The long
        // one renders about twice the start-up (by the profile's own figures), so noise in the start-up cannot hide it;
        // on a warm worker there is no start-up to hide it, and three clips against one are enough.
        let fixed = warm ? 1 : max(profile.time.startupSeconds, 1)
        func long(_ size: FrameSize, _ f: Int) -> Int {
            let perClip = max(predictor.estimate(settings(size, f, 1, online: false)).seconds - profile.time.startupSeconds, 0.001)
            var n = min(max(Int((2 * fixed / perClip).rounded(.up)), 3), 32)
            while n > 3 && predictor.estimate(settings(size, f, n, online: false)).memoryGB > gpu.memoryGB { n -= 1 }
            return n
        }
        var probes: [ClipSettings] = []
        for size in chosen {
            probes.append(settings(size, frames, 1, online: false))
            probes.append(settings(size, frames, long(size, frames), online: false))
            if !quick && half != frames {
                probes.append(settings(size, half, 1, online: false))
                probes.append(settings(size, half, long(size, half), online: false))
            }
        }
        let longest = long(defaultSize, frames)
        // Online decode costs memory, not clips: one clip measures it.
        probes.append(settings(defaultSize, frames, 1, online: true))
        solo = probes.map { Probe(id: id($0), settings: $0) }
        // Warm: the worker's first request repeats the first probe, ahead of the others (`writeInputs`).
        warmUp = warm ? solo.first.map { Probe(id: "warmup-" + $0.id, settings: $0.settings) } : nil
        sharedSettings = settings(defaultSize, frames, longest, online: false)
        // Probes of two sizes take turns together, as a batch mixes sizes; S(k) is fitted to how long each rendered
        // beside how many (`CalibrationFitter.addSharing`), so their different lengths are measured as they overlapped.
        let smallest = chosen.first ?? defaultSize
        sharedProbes = [sharedSettings] + (smallest == defaultSize ? [] : [settings(smallest, frames, long(smallest, frames), online: false)])
        let limit = min(maxShared ?? min(profile.maxJobsPerGPU, 4), profile.maxJobsPerGPU)
        // Only the k the profile predicts fit at once (measured figures check again before they run).
        let probesTogether = sharedProbes
        shared = limit >= 2 ? Array(2...limit).filter { k in
            (0..<k).map { predictor.estimate(probesTogether[$0 % probesTogether.count]).memoryGB }.reduce(0, +) <= gpu.memoryGB - gpu.foreignUsedGB
        } : []
        audioSeconds = Double(probes.map(\.totalFrames).max() ?? 48) / profile.fps + 1
    }

    /// The k probes together: the long probes taking turns (the default size's, the smallest size's, ...).
    func together(_ k: Int) -> [ClipSettings] { (0..<k).map { sharedProbes[$0 % sharedProbes.count] } }

    /// The profile's own prediction of the calibration's length (what it says before it starts).
    func predictedSeconds() -> Double {
        // Warm: one load for the probes alone and one for each k together (its k workers load side by side), and
        // each probe a request; together, each worker's first request is a warm-up (`writeInputs`).
        var p = Predictor(profile: profile)
        p.warm = warm
        let load = warm ? profile.workerLoadSeconds : 0
        func one(_ s: ClipSettings) -> Double { p.estimate(s).seconds }
        let alone = load + (solo + (warmUp.map { [$0] } ?? [])).map { one($0.settings) }.reduce(0, +)
        let sharing = SharingModel(profile.sharing)
        let first: Double = warmUp.map { one($0.settings) } ?? 0
        var all = 0.0
        for k in shared {
            let longest = together(k).map(one).max() ?? 0
            all += load + first + longest * Double(k) / max(sharing.aggregate(k), 1)
        }
        return alone + all
    }

    /// The reference image, the audio and the probe manifests (the same on every resume: ids are settings). Warm, each
    /// k together first sends one warm-up request to each of its k new workers (`warmup-K-I`), and S(k) is measured on
    /// the second (`together-K-I`): a fresh worker's first request pays one-time costs (CUDA kernels loaded on first
    /// use, library handles, the encoder's first start), which the probe alone, served by a worker that had already
    /// rendered, does not (on an H200 that moved S(2) from 1.06-1.09 to 1.17-1.19: docs/benchmarks.md).
    func writeInputs(to dir: String) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        if !fm.fileExists(atPath: dir + "/reference.png") { try CalibrationMedia.png(width: 1280, height: 720).write(to: URL(fileURLWithPath: dir + "/reference.png")) }
        if !fm.fileExists(atPath: dir + "/speech.wav") { try CalibrationMedia.wav(seconds: audioSeconds).write(to: URL(fileURLWithPath: dir + "/speech.wav")) }
        let renderer = !profilePath.isEmpty && fm.fileExists(atPath: profilePath) ? "\"\(profilePath)\"" : profile.name
        // `first`: clips that run before the others (a higher priority), whatever their length.
        func manifest(_ name: String, _ clips: [(String, ClipSettings)], first: [(String, ClipSettings)] = []) -> String {
            var y = """
                version: 1
                name: calibrate-\(profile.name)-\(name)
                output_dir: \(name)
                renderer: \(renderer)
                gpus: \(gpu.uuid.hasPrefix("virtual-") ? "\"1x\(Int(gpu.memoryGB))GB\"" : "auto")
                retry: {max_attempts: 1}
                defaults: {image: reference.png, audio: speech.wav, prompt: "A teacher explaining fractions in a bright classroom"}
                clips:

                """
            for (id, s, priority) in first.map({ ($0.0, $0.1, 1) }) + clips.map({ ($0.0, $0.1, 0) }) {
                y += "  - {id: \(id), size: \"\(s.size)\", infer_frames: \(s.inferFrames), num_clip: \(s.numClip), sample_steps: \(s.sampleSteps), "
                    + "online_decode: \(s.onlineDecode), offload_model: \(s.offloadModel), seed: \(s.seed)\(priority > 0 ? ", priority: \(priority)" : "")}\n"
            }
            return y
        }
        try manifest("solo", solo.map { ($0.id, $0.settings) }, first: warmUp.map { [($0.id, $0.settings)] } ?? []).write(toFile: dir + "/solo.yaml", atomically: true, encoding: .utf8)
        for k in shared {
            // Warm, each worker first serves the short warm-up: they end about together, so the k start about together.
            try manifest("shared-\(k)", together(k).enumerated().map { ("together-\(k)-\($0.offset + 1)", $0.element) },
                         first: warmUp.map { w in (1...k).map { ("warmup-\(k)-\($0)", w.settings) } } ?? [])
                .write(toFile: dir + "/shared-\(k).yaml", atomically: true, encoding: .utf8)
        }
    }
}

/// Turns the probes' attempts into a `CalibrationFit`.
enum CalibrationFitter {
    struct Figure {
        var settings: ClipSettings
        var peak: Double?
        var seconds: Double?
        var oom: Bool
        var oomFloor: Double?
        /// When the attempt ended (what the probes together are lined up by).
        var ended: Double?
        /// A cold probe's render as its renderer reported it (nil: not reported, or a warm request).
        var render: Double? = nil
    }

    static func figures(_ storePath: String) throws -> [String: Figure] {
        guard FileManager.default.fileExists(atPath: storePath) else { return [:] }
        let store = try Store(path: storePath, readOnly: true)
        var out: [String: Figure] = [:]
        for a in try store.attempts() {
            guard let c = a.classification, let s = a.settings, c == .succeeded || c == .oom else { continue }
            var f = Figure(settings: s, peak: c == .succeeded ? a.peakGB : nil, seconds: c == .succeeded ? a.seconds : nil, oom: c == .oom, ended: a.endedAt,
                           render: c == .succeeded ? a.renderSeconds : nil)
            if c == .oom { f.oomFloor = OOMReport.parse(a.stderrTail ?? "").lowerBoundGB }
            out[a.jobID] = f
        }
        return out
    }

    /// Seconds a probe store's runs took: each from its start to its end; a run that died (killed: the next one closed
    /// it when it took over, exit status -1, or nobody has yet) to the last of its attempts' ends, those it interrupted
    /// counted to their start (the next run closed them too).
    static func runSeconds(_ storePath: String) throws -> Double {
        guard FileManager.default.fileExists(atPath: storePath) else { return 0 }
        let store = try Store(path: storePath, readOnly: true)
        let attempts = try store.attempts()
        return try store.runs().map { r in
            let died = r.endedAt == nil || r.exitStatus == -1
            let lastSeen = attempts.filter { $0.runID == r.id }.map { a in a.classification == .interrupted ? a.startedAt : a.endedAt ?? a.startedAt }.max()
            let end = died ? lastSeen ?? r.startedAt : r.endedAt!
            return max(end - r.startedAt, 0)
        }.reduce(0, +)
    }

    /// The median load of the warm workers a probe store recorded ready (nil: none was).
    static func loadSeconds(_ storePath: String) throws -> Double? {
        guard FileManager.default.fileExists(atPath: storePath) else { return nil }
        let loads = try Store(path: storePath, readOnly: true).workers().compactMap(\.loadSeconds)
        return loads.isEmpty ? nil : Learning.median(loads)
    }

    /// The fit from the probes alone (`sharing` empty: `addSharing` adds it). `load`: the probes ran on a warm worker
    /// that took this long to load; the start-up is then that load plus a request's own fixed time.
    static func fit(design: CalibrationDesign, solo: [String: Figure], gpu: GPU, load: Double? = nil) -> CalibrationFit {
        var notes: [String] = []
        for (id, f) in solo.sorted(by: { $0.key < $1.key }) where f.oom {
            notes.append("probe \(id) ran out of memory" + (f.oomFloor.map { String(format: " (it needed more than %.1f GB)", $0) } ?? "") + ": an upper bound on what fits")
        }
        let ok = solo.values.filter { !$0.oom }
        let ref = design.sharedSettings
        // Per (size, infer_frames): the render rate from its short and long probes (offline), and the start-up each implies.
        var memory: [CalibrationFit.Point] = []
        var time: [CalibrationFit.Point] = []
        var intercepts: [Double] = []
        var perClip: Double?
        // One offline clip's frames, in millions of pixel-frames (the rendered frame): what the per-clip cost scales by.
        func megapixelFrames(_ s: ClipSettings) -> Double { Double(design.profile.renderedFrame(s).pixels * s.inferFrames) / 1e6 }
        var perMegapixelFrame: Double?
        let groups = Dictionary(grouping: ok.filter { !$0.settings.onlineDecode }) { "\($0.settings.size)|\($0.settings.inferFrames)" }
        var shortPeaks: [String: Double] = [:]
        // A resident model keeps its structure; what the probes say is how far its constant term is off on this GPU.
        let resident = design.profile.memory.isResidentModel ? Predictor(profile: design.profile) : nil
        var residuals: [Double] = []
        for (key, g) in groups.sorted(by: { $0.key < $1.key }) {
            let sorted = g.sorted { $0.settings.numClip < $1.settings.numClip }
            guard let short = sorted.first, let longest = sorted.last else { continue }
            if let p = short.peak {
                shortPeaks[key] = p
                if let resident { residuals.append(p - resident.estimate(short.settings).rawMemoryGB) }
            }
            if longest.settings.numClip > short.settings.numClip, let a = short.peak, let b = longest.peak,
               short.settings.size == ref.size && short.settings.inferFrames == ref.inferFrames {
                let gb = max((b - a) / Double(longest.settings.numClip - short.settings.numClip), 0)
                perClip = gb
                perMegapixelFrame = gb / megapixelFrames(short.settings)
            }
            let s = short.settings
            guard longest.settings.totalFrames > s.totalFrames, let t1 = short.seconds, let t2 = longest.seconds else { continue }
            let rate = (t2 - t1) / Double(longest.settings.totalFrames - s.totalFrames)
            guard rate > 0 else {
                notes.append("no render rate for \(s.size) x\(s.inferFrames): its long probe was not slower than its short one")
                continue
            }
            time.append(.init(size: "\(s.size)", inferFrames: s.inferFrames, value: rate * 1000))
            intercepts.append(t1 - rate * Double(s.totalFrames))
        }
        let fixed: Double? = intercepts.isEmpty ? nil : max(Learning.median(intercepts), 0)
        let startup = load.map { $0 + (fixed ?? 0) } ?? fixed
        if let load { notes.append(String(format: "the probes alone ran on one warm worker: it loaded in %.1f s (the start-up of a job started cold: that load plus %.1f s a request)", load, fixed ?? 0)) }
        else if design.warm { notes.append("no warm worker recorded its load: the start-up is the requests' own fixed time only") }
        for (key, peak) in shortPeaks.sorted(by: { $0.key < $1.key }) {
            guard let short = groups[key]?.min(by: { $0.settings.numClip < $1.settings.numClip }) else { continue }
            // Less its one clip of offline frames, at its own size.
            let oneClip = perMegapixelFrame.map { $0 * megapixelFrames(short.settings) } ?? perClip ?? 0
            memory.append(.init(size: "\(short.settings.size)", inferFrames: short.settings.inferFrames, value: max(peak - oneClip, 0.1)))
        }
        var online: Double?
        if let on = ok.first(where: { $0.settings.onlineDecode && $0.settings.size == ref.size })?.peak,
           let base = memory.first(where: { $0.size == "\(ref.size)" && $0.inferFrames == ref.inferFrames })?.value {
            online = max(on - base, 0)
        }
        let offset = residuals.isEmpty ? nil : Learning.median(residuals)
        var fit = CalibrationFit(memoryPoints: memory, timePoints: time, startupSeconds: startup, perClipOfflineGB: perClip, onlineDecodeGB: online,
                                 sharing: [:], gpuMemoryGB: gpu.memoryGB, probes: solo.count, oomProbes: solo.values.filter(\.oom).count, seconds: 0,
                                 notes: notes, loadSeconds: load, residentOffsetGB: offset)
        fit.offlinePerMegapixelFrameGB = perMegapixelFrame
        return fit
    }

    /// S(k) from the probes together (each k's store) against the same probes alone (`alone`, by probe id): each
    /// probe's render (a cold probe's as its renderer reported it, where all of them did; else its time less
    /// `unsharedSeconds`, a cold probe's fitted start-up, or whole when that would leave nothing) is cut into the
    /// stretches in which k of them rendered, and S(k) is fitted to those as a batch's history is
    /// (`Learning.sharing(renders:minimum:)`), all k at once. Probes of different lengths together are thereby
    /// measured as they overlapped, not as though they had shared the card throughout.
    static func addSharing(_ fit: inout CalibrationFit, stores: [Int: String], alone: [String: Figure], unsharedSeconds: Double = 0) throws {
        addSharing(&fit, ran: try stores.mapValues(figures), alone: alone, unsharedSeconds: unsharedSeconds)
    }

    /// `addSharing` over the figures of each k's probes (`ran`: k to its store's figures by job).
    static func addSharing(_ fit: inout CalibrationFit, ran byK: [Int: [String: Figure]], alone: [String: Figure], unsharedSeconds: Double = 0) {
        var renders: [(alone: Double, stretches: [Int: Double])] = []
        var measured: [Int] = []
        var fromRenders: [Int] = []
        for (k, ran) in byK.sorted(by: { $0.key < $1.key }) {
            fit.probes += ran.count
            // The measured requests only: a warm-up's time holds its worker's one-time costs.
            let together = ran.filter { $0.key.hasPrefix("together-") }.values.filter { !$0.oom && $0.seconds != nil && $0.ended != nil }
            if together.count < k {
                fit.notes.append("S(\(k)) not measured: \(k - together.count) of the \(k) probes did not succeed together")
                continue
            }
            let probes: [Learning.TogetherProbe] = together.map { f in
                let solo = alone.values.first { !$0.oom && $0.settings == f.settings }
                return (f.ended!, f.seconds!, f.render, solo.flatMap { s in s.seconds.map { ($0, s.render) } })
            }
            let (these, byRender) = Learning.probeRenders(probes, unshared: unsharedSeconds)
            renders += these
            if byRender { fromRenders.append(k) }
            measured.append(k)
        }
        let learned = Learning.sharing(renders: renders, minimum: 1)
        if !fromRenders.isEmpty {
            fit.notes.append(fromRenders.map { "S(\($0))" }.joined(separator: ", ") + " from the renders the probes reported (their start-ups left out)")
        }
        for k in measured { if let s = learned[k] { fit.sharing[k] = s } else { fit.notes.append("S(\(k)) not measured: the probes together hardly overlapped") } }
    }

    /// A fresh worker's first request costs more than its later ones (CUDA kernels loaded on first use, library handles,
    /// the encoder's first start): the warm-up's time less the same probe's once warm. A job started cold pays it
    /// once, as part of its start-up; so does each new warm worker (`firstRequestSeconds`, part of its `load_s`); a
    /// request after the first, and a probe alone or together after a warm-up, does not.
    static func addFirstRequest(_ fit: inout CalibrationFit, warmUp: Double?, same: Double?) {
        guard let w = warmUp, let s = same else { return }
        let extra = max(w - s, 0)
        let worker = fit.loadSeconds != nil ? " and to each new worker's load" : ""
        fit.notes.append(String(format: "a fresh worker's first request took %.1f s more than the same probe after it%@", extra,
                                extra > 0 && fit.startupSeconds != nil ? " (added to the start-up of a job started cold\(worker), not to the requests after it)" : ""))
        if extra > 0, let startup = fit.startupSeconds {
            fit.startupSeconds = startup + extra
            if fit.loadSeconds != nil { fit.firstRequestSeconds = extra }
        }
    }

    /// The fit beside the profile's own figures.
    static func describe(_ fit: CalibrationFit, profile: RendererProfile, model: String) -> String {
        var out = ["calibration of \(profile.name) on \(model): \(fit.probes) probes, \(fit.oomProbes) out of memory, \(ProgressReporter.duration(fit.seconds))"]
        let prior = Predictor(profile: profile)
        for p in fit.memoryPoints {
            guard let size = FrameSize(p.size) else { continue }
            let s = ClipSettings(size: size, numClip: 1, inferFrames: p.inferFrames, sampleSteps: 4, onlineDecode: false, offloadModel: false, fp8: false, seed: 1)
            out.append(String(format: "  memory %@ x%d: %.2f GB (profile %.2f)", p.size, p.inferFrames, p.value, prior.estimate(s).rawMemoryGB - profile.memory.perClipOfflineGB))
        }
        for p in fit.timePoints { out.append(String(format: "  time %@ x%d: %.2f ms/frame", p.size, p.inferFrames, p.value)) }
        if let s = fit.startupSeconds { out.append(String(format: "  start-up %.1f s (profile %.1f)", s, profile.time.startupSeconds)) }
        if let l = fit.loadSeconds { out.append(String(format: "  warm worker load %.1f s (profile %.1f)", l, profile.workerLoadSeconds)) }
        if let o = fit.residentOffsetGB {
            out.append(String(format: "  resident model: measured peaks %+.2f GB from the profile's (per_job_gb %.2f -> %.2f)", o, profile.memory.perJobGB, max(profile.memory.perJobGB + o, 0)))
        }
        if let g = fit.perClipOfflineGB {
            let scaled = fit.offlinePerMegapixelFrameGB.map { String(format: ", %.4f GB per million pixel-frames at other sizes", $0) } ?? ""
            out.append(String(format: "  per offline clip %.3f GB at the default size%@ (profile %.3f)", g, scaled, profile.memory.perClipOfflineGB))
        }
        if let g = fit.onlineDecodeGB { out.append(String(format: "  online decode %.2f GB (profile %.2f)", g, profile.memory.onlineDecodeGB)) }
        for (k, s) in fit.sharing.sorted(by: { $0.key < $1.key }) {
            out.append(String(format: "  S(%d) = %.2f (profile %.2f)", k, s, SharingModel(profile.sharing).aggregate(k)))
        }
        for n in fit.notes { out.append("  note: \(n)") }
        return out.joined(separator: "\n")
    }
}

/// The inputs probes render from: a plain 16:9 picture and a spoken-length tone, made here so a calibration needs
/// nothing from the user.
enum CalibrationMedia {
    /// A mono 16 kHz WAV of a quiet tone.
    static func wav(seconds: Double, rate: Int = 16000) -> Data {
        let samples = Int(Double(rate) * seconds)
        var d = Data()
        func u32(_ v: Int) { withUnsafeBytes(of: UInt32(v).littleEndian) { d.append(contentsOf: $0) } }
        func u16(_ v: Int) { withUnsafeBytes(of: UInt16(v).littleEndian) { d.append(contentsOf: $0) } }
        d.append(contentsOf: Array("RIFF".utf8)); u32(36 + samples * 2); d.append(contentsOf: Array("WAVEfmt ".utf8))
        u32(16); u16(1); u16(1); u32(rate); u32(rate * 2); u16(2); u16(16)
        d.append(contentsOf: Array("data".utf8)); u32(samples * 2)
        d.reserveCapacity(d.count + samples * 2)
        for i in 0..<samples {
            let v = Int16(1500 * sin(Double(i) * 2 * Double.pi * 180 / Double(rate)))
            withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) }
        }
        return d
    }

    /// An RGB PNG of a soft gradient, stored without compression (zlib stored blocks), so no library is needed.
    static func png(width: Int, height: Int) -> Data {
        var raw = Data(capacity: (width * 3 + 1) * height)
        for y in 0..<height {
            raw.append(0)
            for x in 0..<width { raw.append(contentsOf: [UInt8(90 + x * 80 / width), UInt8(110 + y * 60 / height), 150]) }
        }
        var z = Data([0x78, 0x01])
        var i = 0
        while i < raw.count {
            let n = min(65535, raw.count - i)
            z.append(i + n == raw.count ? 1 : 0)
            z.append(contentsOf: [UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8((~n >> 8) & 0xFF)])
            z.append(raw[i..<(i + n)])
            i += n
        }
        var a: UInt32 = 1, b: UInt32 = 0
        for byte in raw { a = (a + UInt32(byte)) % 65521; b = (b + a) % 65521 }
        withUnsafeBytes(of: ((b << 16) | a).bigEndian) { z.append(contentsOf: $0) }
        func chunk(_ type: String, _ body: Data) -> Data {
            var c = Data()
            withUnsafeBytes(of: UInt32(body.count).bigEndian) { c.append(contentsOf: $0) }
            let typed = Data(type.utf8) + body
            c.append(typed)
            withUnsafeBytes(of: crc32(typed).bigEndian) { c.append(contentsOf: $0) }
            return c
        }
        var ihdr = Data()
        withUnsafeBytes(of: UInt32(width).bigEndian) { ihdr.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt32(height).bigEndian) { ihdr.append(contentsOf: $0) }
        ihdr.append(contentsOf: [8, 2, 0, 0, 0])
        return Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) + chunk("IHDR", ihdr) + chunk("IDAT", z) + chunk("IEND", Data())
    }

    static func crc32(_ data: Data) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for byte in data {
            c ^= UInt32(byte)
            for _ in 0..<8 { c = (c >> 1) ^ (0xEDB8_8320 & (0 &- (c & 1))) }
        }
        return ~c
    }
}
