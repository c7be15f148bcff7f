import ArgumentParser
import Executors
import Foundation

/// The compute-node side of `run --executor slurm`: what each Slurm job runs.
struct ExecAttempt: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exec-attempt",
        abstract: "Run one attempt from a job file (what each Slurm job runs on its node; not for direct use).",
        discussion: """
            Reads the job file that `run --executor slurm` wrote, runs the renderer with its argv (no shell) on the \
            GPU Slurm gave the job (CUDA_VISIBLE_DEVICES as Slurm set it), validates the output and renames it into \
            place, then writes the result JSON the orchestrator collects. Exit status 0 only when the output was accepted.
            """)

    @Argument(help: "The job file.")
    var jobFile: String

    func run() async throws {
        let status = await SlurmAttempt.execute(jobFile: jobFile)
        if status != 0 { throw ExitCode(status) }
    }
}
