import ArgumentParser
import Checkpoint
import Executors
import Foundation

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
        let name = location.manifest.map { (($0 as NSString).lastPathComponent as NSString).deletingPathExtension } ?? "batch"
        let report = try BatchReport(name: name, store: try Store(path: path, readOnly: true))
        // The store lives in <output_dir>/.avatar-batch/: the outputs are two levels up.
        let outputDir = ((path as NSString).deletingLastPathComponent as NSString).deletingLastPathComponent
        try await write(report, outputDir: outputDir, html: html, json: json, junit: junit)
        if html == nil && json == nil && junit == nil { printJSON(report.json()) }
    }
}

/// Writes the reports that were asked for.
func write(_ report: BatchReport, outputDir: String, html: String?, json: String?, junit: String?) async throws {
    if let html { try await ReportHTML.write(report, outputDir: outputDir, to: html) }
    if let json {
        let data = try JSONSerialization.data(withJSONObject: report.json(), options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        try data.write(to: URL(fileURLWithPath: json))
    }
    if let junit {
        try report.junit().write(toFile: junit, atomically: true, encoding: .utf8)
    }
}
