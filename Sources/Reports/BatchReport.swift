import Checkpoint
import Foundation
import Manifest

/// What happened to a batch, from its store: the read model behind `report` (HTML, JSON, JUnit).
public struct BatchReport: Sendable {
    public var name: String
    public var jobs: [JobRecord]
    public var attempts: [String: [AttemptRecord]]
    public var runs: [RunRecord]
    public var counts: [JobState: Int]
    /// Warm workers' lives (docs/workers.md), oldest first.
    public var workers: [WorkerRecord]

    public init(name: String, store: Store) throws {
        self.name = name
        jobs = try store.jobs().filter(\.inManifest)
        attempts = Dictionary(grouping: try store.attempts(), by: \.jobID)
        runs = try store.runs()
        counts = try store.counts()
        workers = try store.workers()
    }

    /// Wall time from the first run's start to the last run's end (or now, while running).
    public var wallSeconds: Double {
        guard let start = runs.map(\.startedAt).min() else { return 0 }
        let end = runs.compactMap(\.endedAt).max() ?? Date().timeIntervalSince1970
        return max(end - start, 0)
    }

    /// The report as JSON (docs/schemas/report.schema.json).
    public func document() -> ReportDocument {
        ReportDocument(name: name, wallS: wallSeconds, counts: StateCounts(counts), runs: runs.map(RunDocument.init),
                       jobs: jobs.map { JobDocument($0, attempts: attempts[$0.id] ?? []) }, workers: workers.map { WorkerDocument($0) })
    }

    /// JUnit XML: one test case per clip; a failed clip is a failure carrying its classification and log tail,
    /// a clip not rendered (pending, interrupted, cancelled) is skipped.
    public func junit() -> String {
        let failures = jobs.filter { $0.state == .failed }.count
        let skipped = jobs.filter { $0.state != .failed && $0.state != .succeeded }.count
        var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        // No `skipped` on <testsuites>: Jenkins' xunit plugin validates against junit-10.xsd, which allows it only on
        // <testsuite>, and drops a file that fails.
        xml += "<testsuites name=\"\(escape(name))\" tests=\"\(jobs.count)\" failures=\"\(failures)\" errors=\"0\" time=\"\(String(format: "%.3f", wallSeconds))\">\n"
        xml += "  <testsuite name=\"\(escape(name))\" tests=\"\(jobs.count)\" failures=\"\(failures)\" errors=\"0\" skipped=\"\(skipped)\" time=\"\(String(format: "%.3f", wallSeconds))\">\n"
        for j in jobs {
            let tries = attempts[j.id] ?? []
            let seconds = tries.compactMap(\.seconds).reduce(0, +)
            xml += "    <testcase classname=\"\(escape(name))\" name=\"\(escape(j.id))\" time=\"\(String(format: "%.3f", seconds))\""
            switch j.state {
            case .succeeded:
                xml += "/>\n"
            case .failed:
                let last = tries.last
                let kind = last?.classification?.rawValue ?? "failed"
                let ladder = tries.map { "attempt \($0.number): \($0.classification?.rawValue ?? "open")\($0.change.isEmpty ? "" : " [\($0.change)]")" }.joined(separator: "\n")
                let body = ladder + "\n" + (j.reason ?? "") + (last?.logPath.map { "\nlog: \($0)" } ?? "") + "\n\n" + (last?.stderrTail ?? "")
                xml += ">\n      <failure type=\"\(escape(kind))\" message=\"\(escape(j.reason ?? kind))\">\(escape(body))</failure>\n    </testcase>\n"
            default:
                xml += ">\n      <skipped message=\"\(escape(j.state.rawValue))\"/>\n    </testcase>\n"
            }
        }
        xml += "  </testsuite>\n</testsuites>\n"
        return xml
    }

    func escape(_ s: String) -> String { BatchReport.markupEscape(s) }

    /// Text and attribute escaping for XML and HTML; characters XML 1.0 forbids (most controls) become U+FFFD.
    public static func markupEscape(_ s: String) -> String {
        var out = ""
        for u in s.unicodeScalars {
            switch u {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\t", "\n", "\r": out.unicodeScalars.append(u)
            default:
                if u.value < 0x20 || (0xFFFE...0xFFFF).contains(u.value) { out += "\u{FFFD}" } else { out.unicodeScalars.append(u) }
            }
        }
        return out
    }
}
