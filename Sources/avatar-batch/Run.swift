import ArgumentParser
import Checkpoint
import Executors
import Foundation
import Manifest
import Scheduler

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Render every clip of a manifest; run the same command again to resume.",
        discussion: """
            Every state change is checkpointed in <output_dir>/.avatar-batch/state.sqlite. After an OOM, a crash, Ctrl-C \
            or a reboot, the same command finishes the batch without redoing finished work. Ctrl-C stops dispatching and \
            terminates running jobs (exit 130); a second Ctrl-C kills them at once. With --executor slurm each attempt             is a Slurm job instead (see docs/slurm.md); everything else stays the same.
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

    @Option(help: "Default job timeout = predicted time x this factor (at least 10 minutes); a clip's timeout: wins.")
    var timeoutFactor: Double = 3

    @Option(help: "Seconds between SIGTERM and SIGKILL when stopping a job.")
    var grace: Double = 10

    @Flag(help: "Print only the summary.")
    var quiet = false

    @Option(help: "When the run ends (also early), write report.html, report.json and junit.xml into this directory.")
    var report: String?

    @Option(help: "Each attempt's log keeps at most this many MB on disk: its start (half the cap, at most 1 MB) and its end (0: no cap).")
    var maxLogMB: Int = 64

    @Option(help: "local (run on this machine's GPUs) or slurm (submit each attempt with sbatch).")
    var executor: String = "local"

    @OptionGroup(title: "Slurm (with --executor slurm; each overrides the manifest's slurm: key)")
    var slurmFlags: SlurmFlags

    func run() async throws {
        let manifest = try loadOrExit(options.manifest, try options.loadOptions())
        let jobs = try makeJobs(manifest)
        switch executor {
        case "local": try await runLocal(manifest, jobs)
        case "slurm": try await runSlurm(manifest, jobs)
        default: throw fail("--executor must be local or slurm, not \(executor)")
        }
    }

    func runLocal(_ manifest: Manifest, _ jobs: [Job]) async throws {
        let gpus: [GPU]
        do { gpus = try await resolveGPUs(manifest) } catch { throw fail("\(error)") }
        let strat: Scheduler.Strategy
        do { strat = try Scheduler.Strategy.named(strategy ?? manifest.strategy) } catch { throw fail("\(error)") }

        // A clip that fits no GPU at any setting is an error before anything runs.
        let planner = Planner(predictor: Predictor(profile: manifest.renderer), strategy: strat, maxJobsPerGPU: maxJobsPerGPU)
        let unplaceable = jobs.compactMap { j -> String? in
            let e = planner.predictor.estimate(j.settings)
            let request = PlacementRequest(jobID: j.id, memoryGB: e.memoryGB, seconds: e.seconds, gpuModel: j.clip.gpuModel)
            guard !gpus.contains(where: { Placer.canEverRun(request, on: $0) }) else { return nil }
            let hint = planner.suggestFit(PlanJob(id: j.id, settings: j.settings), gpus: gpus).map { "; \($0)" } ?? ""
            return "\(j.clip.location): error: clip \(j.id) needs \(String(format: "%.1f", e.memoryGB)) GB, more than any GPU has\(hint)"
        }
        if !unplaceable.isEmpty {
            for u in unplaceable { FileHandle.standardError.write(Data("\(u)\n".utf8)) }
            throw fail("\(unplaceable.count) clip(s) fit no GPU; change their settings (see above) or run on larger GPUs")
        }

        var runOptions = RunOptions(gpus: gpus, strategy: strat, maxFailures: maxFailures)
        runOptions.maxJobsPerGPU = maxJobsPerGPU
        try await execute(manifest, jobs, runOptions)
    }

    /// Opens the store, runs the loop, writes the reports, exits with the run's status.
    func execute(_ manifest: Manifest, _ jobs: [Job], _ given: RunOptions) async throws {
        var runOptions = given
        let store: Store
        do { store = try Store(path: state ?? manifest.defaultStatePath) } catch { throw fail("\(error)", code: 1) }
        runOptions.timeoutFactor = timeoutFactor
        runOptions.graceSeconds = grace
        guard (hostRAM ?? 0) >= 0 else { throw fail("--host-ram must be 0 (no check) or more") }
        runOptions.hostRAMGB = hostRAM
        guard maxLogMB >= 0 else { throw fail("--max-log-mb must be 0 (no cap) or more") }
        runOptions.logCapMB = maxLogMB == 0 ? nil : maxLogMB
        runOptions.command = CommandLine.arguments.joined(separator: " ")
        let loop = try RunLoop(manifest: manifest, jobs: jobs, store: store, options: runOptions, progress: ProgressReporter(quiet: quiet))
        let summary: RunSummary
        do {
            summary = try await loop.run()
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
        if summary.exitStatus != 0 { throw ExitCode(summary.exitStatus) }
    }
}
