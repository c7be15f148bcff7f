import ArgumentParser
import Checkpoint
import Executors
import Foundation
import Manifest
import Reports
import Scheduler

@main
struct AvatarBatch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "avatar-batch",
        abstract: "Render batches of talking-avatar videos on GPUs: validate, plan, run, resume.",
        discussion: """
            Exit status: 0 every job succeeded (or the input is valid), 1 some jobs failed for good, \
            2 invalid input, 130 interrupted (run the same command again to resume).
            """,
        version: "0.1.0",
        subcommands: [Validate.self, Plan.self, Run.self, Status.self, Retry.self, Report.self, Calibrate.self, ExecAttempt.self])
}

/// Options every command that reads a manifest shares.
struct ManifestOptions: ParsableArguments {
    @Argument(help: "The manifest (YAML).")
    var manifest: String

    @Option(name: .customLong("gpus"), help: "auto, GPU indices (0,2) or a virtual inventory (4x24GB,2x80GB); overrides the manifest's gpus:.")
    var gpus: String?

    @Flag(help: "Skip probing audio with ffprobe (faster; num_clip: auto then needs WAV audio).")
    var noProbe = false

    @Flag(help: ArgumentHelp("Treat the manifest as untrusted (CI on pull requests): installed profiles by name only, extra_args only from the profile's extra_args_allowed, includes inside the manifest's folder. Also set by AVATAR_BATCH_TRUST=untrusted."))
    var untrusted = false

    func loadOptions(requireEnvironment: Bool = true) throws -> LoadOptions {
        var o = LoadOptions()
        if !noProbe {
            o.probe = FFprobe.locate()
            if o.probe == nil {
                FileHandle.standardError.write(Data("note: ffprobe is not installed: audio files were not probed (only WAV headers were read for num_clip: auto), and outputs cannot be checked with output_check: ffprobe; apt-get install ffmpeg\n".utf8))
            }
        }
        o.requireEnvironment = requireEnvironment
        switch ProcessInfo.processInfo.environment["AVATAR_BATCH_TRUST"] {
        case nil, "", "trusted": o.untrusted = untrusted
        case "untrusted": o.untrusted = true
        case let other?: throw ValidationError("AVATAR_BATCH_TRUST=\(other) is not known; use untrusted or trusted")
        }
        if let gpus {
            switch GPUSelection.parse(gpus) {
            case let .success(g): o.gpus = g
            case let .failure(e): throw ValidationError("--gpus: \(e.message)")
            }
        }
        return o
    }
}

/// Prints diagnostics and exits 2 when the manifest is invalid.
func loadOrExit(_ path: String, _ options: LoadOptions, json: Bool = false) throws -> Manifest {
    let result = ManifestLoader.load(path: path, options: options)
    guard let manifest = result.manifest else {
        if json {
            try JSONOutput.print(ValidationDocument(valid: false, diagnostics: result.diagnostics.map(DiagnosticDocument.init)))
        } else {
            for d in result.diagnostics { FileHandle.standardError.write(Data("\(d)\n".utf8)) }
            let n = result.diagnostics.filter { $0.severity == .error }.count
            FileHandle.standardError.write(Data("\(n) error\(n == 1 ? "" : "s"); nothing was run\n".utf8))
        }
        throw ExitCode(2)
    }
    if !json { for d in result.diagnostics { FileHandle.standardError.write(Data("\(d)\n".utf8)) } }
    return manifest
}

func makeJobs(_ manifest: Manifest, hashInputs: Bool = true) throws -> [Job] {
    var builder = JobBuilder(hashInputs: hashInputs)
    return try builder.jobs(for: manifest)
}

func fail(_ message: String, code: Int32 = 2) -> ExitCode {
    FileHandle.standardError.write(Data("avatar-batch: error: \(message)\n".utf8))
    return ExitCode(code)
}
