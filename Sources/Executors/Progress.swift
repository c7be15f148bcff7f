import Foundation
import Manifest
#if canImport(Glibc)
import Glibc
#endif

/// What the run loop tells the user. On a terminal: one live line per GPU and an overall bar with an ETA.
/// Elsewhere (CI, logs): plain timestamped lines, one per event.
public final class ProgressReporter: @unchecked Sendable {
    public struct Lane: Sendable {
        public var jobID: String
        public var started: Date
        public var predictedSeconds: Double
    }

    let live: Bool
    let quiet: Bool
    private var drawnLines = 0
    private let lock = NSLock()

    public init(live: Bool? = nil, quiet: Bool = false) {
        self.live = live ?? (isatty(STDERR_FILENO) == 1 && ProcessInfo.processInfo.environment["CI"] == nil)
        self.quiet = quiet
    }

    static let stamp: DateFormatter = {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd'T'HH:mm:ss'Z'"
        return f
    }()

    /// One event line ("start", "done", "oom", ...).
    public func event(_ text: String) {
        guard !quiet else { return }
        lock.withLock {
            clearLive()
            write("\(ProgressReporter.stamp.string(from: Date())) \(text)\n")
        }
    }

    /// Redraws the live block (terminal only).
    public func draw(gpus: [(index: Int, model: String, lanes: [Lane])], done: Int, failed: Int, running: Int, waiting: Int, etaSeconds: Double?) {
        guard live, !quiet else { return }
        lock.withLock {
            clearLive()
            var lines: [String] = []
            let now = Date()
            for g in gpus {
                let jobs = g.lanes.map { l -> String in
                    let elapsed = now.timeIntervalSince(l.started)
                    return "\(l.jobID) \(ProgressReporter.duration(elapsed)) (~\(ProgressReporter.duration(max(l.predictedSeconds - elapsed, 0))) left)"
                }
                lines.append("GPU \(g.index) \(g.model): " + (jobs.isEmpty ? "idle" : jobs.joined(separator: ", ")))
            }
            let total = max(done + failed + running + waiting, 1)
            let width = 30
            let filled = Int(Double(done + failed) / Double(total) * Double(width))
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            lines.append("[\(bar)] done \(done)  failed \(failed)  running \(running)  waiting \(waiting)" + (etaSeconds.map { "  ETA \(ProgressReporter.duration($0))" } ?? ""))
            write(lines.map { "\u{1B}[2K" + String($0.prefix(200)) + "\n" }.joined())
            drawnLines = lines.count
        }
    }

    /// Removes the live block before other output.
    public func finish() { lock.withLock { clearLive() } }

    private func clearLive() {
        guard drawnLines > 0 else { return }
        write("\u{1B}[\(drawnLines)A\u{1B}[J")
        drawnLines = 0
    }

    private func write(_ text: String) { FileHandle.standardError.write(Data(text.utf8)) }

    public static func duration(_ s: Double) -> String { durationText(s) }
}
