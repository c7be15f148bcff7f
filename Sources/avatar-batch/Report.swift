import ArgumentParser
import Checkpoint
import Executors
import Foundation

struct Report: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write what happened to a batch as JSON and JUnit XML (safe during a run).",
        discussion: "With neither --json nor --junit, prints the JSON. The HTML report is not built yet.")

    @OptionGroup var location: StoreLocation

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
        try write(report, json: json, junit: junit)
        if json == nil && junit == nil { printJSON(report.json()) }
    }
}

/// Writes the reports that were asked for.
func write(_ report: BatchReport, json: String?, junit: String?) throws {
    if let json {
        let data = try JSONSerialization.data(withJSONObject: report.json(), options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        try data.write(to: URL(fileURLWithPath: json))
    }
    if let junit {
        try report.junit().write(toFile: junit, atomically: true, encoding: .utf8)
    }
}
