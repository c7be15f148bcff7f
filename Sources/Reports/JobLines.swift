import Checkpoint
import Foundation
import Manifest

/// `status --json`'s job list, one job to a line, written straight from the store's records: the same bytes
/// `JSONOutput.lineEncoder` makes of a `JobDocument`, at a fraction of the cost. A poller reading a 2,000-job batch
/// ten times a second spent most of each read in JSONEncoder's generic path and in decoding every attempt's
/// settings only to encode them again; here each distinct settings text is decoded and encoded once per read (a
/// batch has a handful) and the rest is written field by field. `JobLinesTests` holds it to the encoder's bytes.
public struct JobLineWriter {
    /// Each attempt's stored settings text, as `resolved_settings` prints it (nil: it does not decode, so it is left
    /// out, as `AttemptDocument` leaves it out).
    private var settings: [String: [UInt8]?] = [:]
    private let encoder = JSONOutput.lineEncoder

    public init() {}

    /// Appends the job's line (without a newline) to `out`.
    public mutating func append(_ j: JobRecord, attempts: [AttemptRecord], to out: inout [UInt8]) {
        // Keys in the order `.sortedKeys` gives; a nil optional is left out, as synthesized Codable does.
        out.append(UInt8(ascii: "{"))
        key("attempt_count", first: true, &out); int(j.attemptCount, &out)
        key("attempts", &out)
        out.append(UInt8(ascii: "["))
        for (i, a) in attempts.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            attempt(a, &out)
        }
        out.append(UInt8(ascii: "]"))
        key("content_key", &out); string(j.contentKey, &out)
        key("id", &out); string(j.id, &out)
        key("in_manifest", &out); bool(j.inManifest, &out)
        if let v = j.observedPeakGB { key("observed_peak_gb", &out); double(v, &out) }
        if let v = j.observedSeconds { key("observed_s", &out); double(v, &out) }
        key("output", &out); string(j.output, &out)
        if let v = j.predictedGB { key("predicted_gb", &out); double(v, &out) }
        if let v = j.predictedSeconds { key("predicted_s", &out); double(v, &out) }
        if let v = j.reason { key("reason", &out); string(v, &out) }
        key("state", &out); string(j.state.rawValue, &out)
        out.append(UInt8(ascii: "}"))
    }

    /// One attempt as `AttemptDocument.encode(to:)` writes it: classification, gpu and exit_status always (null when
    /// unknown), the other optionals only when known.
    private mutating func attempt(_ a: AttemptRecord, _ out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        key("classification", first: true, &out); optional(a.classification?.rawValue, &out, string)
        if let v = a.endedAt { key("ended_at", &out); double(v, &out) }
        key("executor", &out); string(a.executor.rawValue, &out)
        key("exit_status", &out); optional(a.exitStatus.map(Int.init), &out, int)
        key("gpu", &out); optional(a.gpu, &out, int)
        key("host", &out); string(a.host, &out)
        key("isolated", &out); bool(a.isolated, &out)
        if let v = a.logPath { key("log", &out); string(v, &out) }
        if let v = a.note { key("note", &out); string(v, &out) }
        key("number", &out); int(a.number, &out)
        if let v = a.peakGB { key("peak_gb", &out); double(v, &out) }
        if let v = a.predictedFrom { key("predicted_from", &out); string(v, &out) }
        if let v = resolved(a.settingsJSON) { key("resolved_settings", &out); out.append(contentsOf: v) }
        if let v = a.seconds { key("seconds", &out); double(v, &out) }
        key("settings", &out); string(a.change, &out)
        if let v = a.signal { key("signal", &out); int(Int(v), &out) }
        if let v = a.slurmJobID { key("slurm_job_id", &out); string(v, &out) }
        key("started_at", &out); double(a.startedAt, &out)
        if let v = a.stderrTail { key("stderr_tail", &out); string(v, &out) }
        if let v = a.workerID { key("worker", &out); string(v, &out) }
        out.append(UInt8(ascii: "}"))
    }

    private mutating func resolved(_ text: String) -> [UInt8]? {
        if let known = settings[text] { return known }
        let bytes = (try? JSONDecoder().decode(ClipSettings.self, from: Data(text.utf8)))
            .flatMap { try? encoder.encode($0) }.map { [UInt8]($0) }
        settings[text] = bytes
        return bytes
    }

    private func key(_ k: StaticString, first: Bool = false, _ out: inout [UInt8]) {
        if !first { out.append(UInt8(ascii: ",")) }
        out.append(UInt8(ascii: "\""))
        out.append(contentsOf: UnsafeBufferPointer(start: k.utf8Start, count: k.utf8CodeUnitCount))
        out.append(contentsOf: "\":".utf8)
    }

    private func optional<T>(_ v: T?, _ out: inout [UInt8], _ write: (T, inout [UInt8]) -> Void) {
        if let v { write(v, &out) } else { out.append(contentsOf: "null".utf8) }
    }

    private func bool(_ v: Bool, _ out: inout [UInt8]) { out.append(contentsOf: (v ? "true" : "false").utf8) }

    private func int(_ v: Int, _ out: inout [UInt8]) { out.append(contentsOf: String(v).utf8) }

    /// As JSONEncoder writes a Double: the shortest text that reads back the same, without a trailing ".0"; the
    /// non-finite ones as `JSONOutput`'s strategy spells them.
    private func double(_ v: Double, _ out: inout [UInt8]) {
        guard v.isFinite else { return string(v.isNaN ? "nan" : (v > 0 ? "inf" : "-inf"), &out) }
        var text = v.description
        if text.hasSuffix(".0") { text.removeLast(2) }
        out.append(contentsOf: text.utf8)
    }

    /// A JSON string: quotes, backslashes and control characters escaped, slashes and the rest as they are.
    private func string(_ s: String, _ out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out.append(contentsOf: "\\\"".utf8)
            case UInt8(ascii: "\\"): out.append(contentsOf: "\\\\".utf8)
            case 0x0A: out.append(contentsOf: "\\n".utf8)
            case 0x0D: out.append(contentsOf: "\\r".utf8)
            case 0x09: out.append(contentsOf: "\\t".utf8)
            case 0x08: out.append(contentsOf: "\\b".utf8)
            case 0x0C: out.append(contentsOf: "\\f".utf8)
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: "\\u00".utf8)
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 0xF)])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
