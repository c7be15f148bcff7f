import ArgumentParser
import Foundation
import Manifest
import Reports

struct Validate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a manifest before any GPU time is spent.",
        discussion: "Prints every problem as FILE:LINE:COL: error: MESSAGE; FIX. Exit status 0 when valid, 2 when not.")

    @OptionGroup var options: ManifestOptions

    @Flag(help: "Print the result, jobs and content keys as JSON.")
    var json = false

    @Option(help: "Print every part of one clip's content key.")
    var explainKey: String?

    @Flag(help: "Do not require the environment variables the renderer reads (for checking a manifest elsewhere).")
    var noEnvCheck = false

    func run() async throws {
        let manifest = try loadOrExit(options.manifest, try options.loadOptions(requireEnvironment: !noEnvCheck), json: json)
        let jobs = try makeJobs(manifest)
        if let id = explainKey {
            guard let job = jobs.first(where: { $0.id == id }) else {
                throw fail("no clip \"\(id)\" in \(options.manifest); clips: \(jobs.prefix(10).map(\.id).joined(separator: ", "))\(jobs.count > 10 ? ", ..." : "")")
            }
            print("content key of \(id): \(job.contentKey)")
            print("SHA-256 over these lines, sorted, joined by newlines:")
            var builder = JobBuilder()
            for p in try builder.keyParts(for: job.clip, renderer: manifest.renderer) { print("  \(p)") }
            return
        }
        if json {
            try JSONOutput.print(ValidationDocument(valid: true, name: manifest.name, renderer: manifest.renderer.name, outputDir: manifest.outputDir,
                                                    jobs: jobs.map(ValidationDocument.JobPlanEntry.init)))
        } else {
            print("\(options.manifest): valid: \(jobs.count) clip\(jobs.count == 1 ? "" : "s"), renderer \(manifest.renderer.name), output \(manifest.outputDir)")
        }
    }
}
