import ArgumentParser
import Checkpoint
import Executors
import Foundation
import Manifest
import Reports
import Scheduler

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Render every clip of a manifest; run the same command again to resume.",
        discussion: """
            Every state change is checkpointed in <output_dir>/.avatar-batch/state.sqlite. After an OOM, a crash, Ctrl-C \
            or a reboot, the same command finishes the batch without redoing finished work. Ctrl-C stops dispatching and \
            terminates running jobs (exit 130); a second Ctrl-C kills them at once. With --executor slurm each attempt \
            is a Slurm job instead (see docs/slurm.md); everything else stays the same.
            """)

    @OptionGroup var options: ManifestOptions

    @Option(help: "The store (default: <output_dir>/.avatar-batch/state.sqlite).")
    var state: String?

    @Option(help: "Placement strategy: \(Strategy.table.keys.sorted().joined(separator: ", ")).")
    var strategy: String?

    @Option(help: "Stop dispatching after this many jobs failed for good.")
    var maxFailures: Int?

    @Option(help: "At most this many jobs on one GPU (default: the renderer's max_jobs_per_gpu).")
    var maxJobsPerGPU: Int?

    @Option(name: .customLong("host-ram"), help: ArgumentHelp("GB of host RAM local jobs may use together, by their predicted host RAM (default: this machine's memory; 0: no check).", valueName: "GB"))
    var hostRAM: Double?

    @Option(help: "Default job timeout = predicted time x this factor (at least 10 minutes; 1 minute for CPU renderers); a clip's timeout: wins.")
    var timeoutFactor: Double = 3

    @Option(help: "Seconds between SIGTERM and SIGKILL when stopping a job.")
    var grace: Double = 10

    @Flag(help: "Print only the summary.")
    var quiet = false

    @Option(help: "When the run ends (also early), write report.html, report.json and junit.xml into this directory.")
    var report: String?

    @Option(name: .customLong("notify"), parsing: .remaining,
            help: ArgumentHelp("A command (argv, no shell) run when the batch ends or stops on --max-failures, with the report JSON on its standard input; overrides the manifest's notify:. Must come last.", valueName: "COMMAND"))
    var notifyCommand: [String] = []

    @Option(help: "Each attempt's log keeps at most this many MB on disk: its start (half the cap, at most 1 MB) and its end (0: no cap).")
    var maxLogMB: Int = 64

    @Option(help: "local (run on this machine's GPUs) or slurm (submit each attempt with sbatch).")
    var executor: String = "local"

    @Option(help: ArgumentHelp("auto: keep the model loaded in a warm worker per GPU slot when the renderer's profile has a worker: section (docs/workers.md); off: one process per attempt.", valueName: "auto|off"))
    var workers: String = "auto"

    @Option(help: ArgumentHelp("The history of earlier batches and calibrations (default: $AVATAR_BATCH_HOME/history.sqlite, else $XDG_DATA_HOME/avatar-batch/ or ~/.local/share/avatar-batch/; docs/calibration.md).", valueName: "PATH"))
    var history: String?

    @Flag(help: "Predict from the profile and this batch alone: neither read nor add to the history.")
    var noHistory = false

    @OptionGroup(title: "Slurm (with --executor slurm; each overrides the manifest's slurm: key)")
    var slurmFlags: SlurmFlags

    func run() async throws {
        let manifest = try loadOrExit(options.manifest, try options.loadOptions())
        let jobs = try makeJobs(manifest)
        switch executor {
        case "local": try await runLocal(manifest, jobs)
        case "slurm":
            guard workers == "auto" || workers == "off" else { throw fail("--workers must be auto or off, not \(workers)") }
            try await runSlurm(manifest, jobs)
        default: throw fail("--executor must be local or slurm, not \(executor)")
        }
    }

    func runLocal(_ manifest: Manifest, _ jobs: [Job]) async throws {
        let gpus: [GPU]
        do { gpus = try await GPUDiscovery.forBatch(manifest) } catch { throw fail("\(error)") }
        let strat = try strategyOrExit(manifest)
        guard (hostRAM ?? 0) >= 0 else { throw fail("--host-ram must be 0 (no check) or more") }
        // Warm workers where the renderer's profile has a worker: section, unless --workers off.
        let warm = workers == "auto" && manifest.renderer.worker != nil
        let knowledge = knowledge(manifest, gpus: gpus, warm: warm)
        var o = LocalExecutorOptions(gpus: knowledge.scaled(gpus), strategy: strat, maxJobsPerGPU: maxJobsPerGPU ?? manifest.renderer.maxJobsPerGPU,
                                     sharing: SharingModel(knowledge.profile.sharing))
        o.hostRAMGB = hostRAM
        o.graceSeconds = grace
        switch workers {
        // The calibrated profile: its worker's load is what this GPU model measured.
        case "auto":
            o.warm = warm ? knowledge.profile : nil
            o.workerLoads = knowledge.loadsBySettings
        case "off": o.warm = nil
        default: throw fail("--workers must be auto or off, not \(workers)")
        }
        try await execute(manifest, jobs, executor: LocalExecutor(o), strategy: strat, knowledge: knowledge)
    }

    /// What predictions start from: the history (unless --no-history) and a calibration for these GPUs; `warm`: the
    /// batch runs on warm workers (S(k) from warm requests).
    func knowledge(_ manifest: Manifest, gpus: [GPU], warm: Bool = false) -> Knowledge {
        Knowledge(profile: manifest.renderer, gpus: gpus, historyPath: noHistory ? nil : (history ?? History.defaultPath()),
                  batch: "\(manifest.name) (\(manifest.path))", loadSettings: Knowledge.commonLoadSettings(manifest.renderer, manifest.clips.map(\.settings)),
                  warm: warm)
    }

    func strategyOrExit(_ manifest: Manifest) throws -> Scheduler.Strategy {
        do { return try Scheduler.Strategy.named(strategy ?? manifest.strategy) } catch { throw fail("\(error)") }
    }

    /// Refuses clips that fit no GPU, opens the store, runs the session, writes the reports, exits with the run's status.
    func execute(_ manifest: Manifest, _ jobs: [Job], executor: any AttemptExecutor, strategy: Scheduler.Strategy, knowledge: Knowledge) async throws {
        // A clip that fits no GPU at any setting is an error before anything runs (or is submitted).
        let unplaceable = BatchSession.preflight(manifest, jobs: jobs, executor: executor, strategy: strategy, maxJobsPerGPU: maxJobsPerGPU,
                                                 predictor: knowledge.predictor())
        if !unplaceable.isEmpty {
            for u in unplaceable { FileHandle.standardError.write(Data("\(u.location): error: \(u.message)\n".utf8)) }
            throw fail(executor.refusal(unplaceable.count))
        }
        var options = SessionOptions(maxFailures: maxFailures)
        options.timeoutFactor = timeoutFactor
        options.graceSeconds = grace
        guard maxLogMB >= 0 else { throw fail("--max-log-mb must be 0 (no cap) or more") }
        options.logCapMB = maxLogMB == 0 ? nil : maxLogMB
        options.command = CommandLine.arguments.joined(separator: " ")
        let store: Store
        do { store = try Store(path: state ?? manifest.defaultStatePath) } catch { throw fail("\(error)", code: 1) }
        options.companions = [StatusPublisher(storePath: store.path)]
        let session = try BatchSession(manifest: manifest, jobs: jobs, store: store, executor: executor, options: options,
                                       progress: ProgressReporter(quiet: quiet), knowledge: knowledge)
        let summary: RunSummary
        do {
            summary = try await session.run()
        } catch let e as CheckpointError {
            throw fail(e.description, code: 1)
        } catch let e as SlurmError {
            throw fail(e.description, code: 1)
        } catch let e as ExecutorError {
            throw fail(e.description, code: 1)
        } catch {
            if let words = Store.explain(error, path: store.path) { throw fail(words, code: 1) }
            throw error
        }
        if let dir = report {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let r = try BatchReport(name: manifest.name, store: store)
            try await write(r, outputDir: manifest.outputDir, html: dir + "/report.html", json: dir + "/report.json", junit: dir + "/junit.xml")
            FileHandle.standardError.write(Data("reports: \(dir)/report.html, \(dir)/report.json, \(dir)/junit.xml\n".utf8))
        }
        let notifier = notifyCommand.isEmpty ? manifest.notify : notifyCommand
        if !notifier.isEmpty && !summary.interrupted {
            var payload = try BatchReport(name: manifest.name, store: store).document()
            payload.exitStatus = summary.exitStatus
            payload.stoppedByMaxFailures = summary.stoppedEarly
            Notifier.run(notifier, json: Data(((try? JSONOutput.text(payload)) ?? "{}").utf8))
        }
        if summary.exitStatus != 0 { throw ExitCode(summary.exitStatus) }
    }
}

/// Runs the batch's notify command: an argv, never a shell, with the report JSON on its standard input. Its failure
/// is reported and never changes the batch's exit status.
enum Notifier {
    static let timeoutSeconds = 60.0

    static func run(_ argv: [String], json data: Data) {
        let p = Process()
        // A bare name is looked up on PATH, as a shell would, without a shell.
        let program = argv[0].contains("/") ? argv[0]
            : (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").map { "\($0)/\(argv[0])" }
                .first { FileManager.default.isExecutableFile(atPath: $0) } ?? argv[0]
        p.executableURL = URL(fileURLWithPath: program)
        p.arguments = Array(argv.dropFirst())
        let input = Pipe()
        p.standardInput = input
        do { try p.run() } catch {
            FileHandle.standardError.write(Data("notify: cannot start \(argv[0]): \(error.localizedDescription)\n".utf8))
            return
        }
        // A command that does not read its input must not block us: ignore a broken pipe, write from another thread.
        signal(SIGPIPE, SIG_IGN)
        DispatchQueue.global().async {
            try? input.fileHandleForWriting.write(contentsOf: data)
            try? input.fileHandleForWriting.close()
        }
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while p.isRunning && Date() < deadline { usleep(50_000) }
        if p.isRunning {
            p.terminate()
            FileHandle.standardError.write(Data("notify: \(argv[0]) still ran after \(Int(timeoutSeconds)) s and was stopped\n".utf8))
            return
        }
        if p.terminationStatus != 0 {
            FileHandle.standardError.write(Data("notify: \(argv[0]) exited with status \(p.terminationStatus) (the batch's own status stands)\n".utf8))
        }
    }
}
