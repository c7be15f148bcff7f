import ArgumentParser
import Checkpoint
import Executors
import Foundation
import Manifest
import Reports

struct Report: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write what happened to a batch as one HTML file, JSON and JUnit XML (safe during a run).",
        discussion: "With none of --html, --json and --junit, prints the JSON.")

    @OptionGroup var location: StoreLocation

    @Option(help: "Write the HTML report here (one self-contained file: timeline, figures, failures, contact sheet).")
    var html: String?

    @Option(help: "Write the JSON report here.")
    var json: String?

    @Option(help: "Write JUnit XML here (one test case per clip).")
    var junit: String?

    func run() async throws {
        let path = try location.path()
        guard FileManager.default.fileExists(atPath: path) else {
            throw fail("no store at \(path): this batch has not run yet", code: 1)
        }
        let store = try Store(path: path, readOnly: true)
        let batch = try batchOf(store)
        let report = try BatchReport(name: batch.name, store: store)
        try await write(report, outputDir: batch.outputDir, html: html, json: json, junit: junit)
        if html == nil && json == nil && junit == nil { try JSONOutput.print(report.document()) }
    }

    /// The batch's name and output folder: from the manifest given, else from the manifest the store's last run
    /// read. Without either, the contact sheet has no videos to show and says so.
    func batchOf(_ store: Store) throws -> (name: String, outputDir: String?) {
        var o = LoadOptions(checkFiles: false)
        o.requireEnvironment = false
        if let manifest = location.manifest {
            let m = try loadOrExit(manifest, o)
            return (m.name, m.outputDir)
        }
        if let recorded = try store.runs().last?.manifestPath, FileManager.default.fileExists(atPath: recorded),
           let m = ManifestLoader.load(path: recorded, options: o).manifest {
            return (m.name, m.outputDir)
        }
        FileHandle.standardError.write(Data("note: the manifest of this store is not at hand: the report is named \"batch\" and has no contact sheet; pass the MANIFEST\n".utf8))
        return ("batch", nil)
    }
}

/// Writes the reports that were asked for.
func write(_ report: BatchReport, outputDir: String?, html: String?, json: String?, junit: String?) async throws {
    if let html { try await ReportHTML.write(report, outputDir: outputDir, to: html) }
    if let json { try Data(try JSONOutput.text(report.document()).utf8).write(to: URL(fileURLWithPath: json)) }
    if let junit { try report.junit().write(toFile: junit, atomically: true, encoding: .utf8) }
}
