import Foundation

/// The worker protocol, v1 (docs/workers.md): JSON lines over a Unix socket, one object per line, UTF-8.
public enum WorkerProtocol {
    /// A line longer than this is garbage, not a message (a worker's messages are a few hundred bytes).
    public static let maxLineBytes = 64 * 1024
    /// The environment variable that carries the socket's path to the worker.
    public static let socketVariable = "AVATAR_BATCH_WORKER_SOCKET"
}

/// What a worker says.
public enum WorkerMessage: Sendable, Equatable {
    /// Loaded and waiting for requests.
    case ready(pid: Int32, loadSeconds: Double?, residentGB: Double?)
    /// A request's output is written.
    case done(job: String, peakGB: Double?, seconds: Double?)
    /// A request failed; the worker lives on (after an OOM the orchestrator restarts it anyway).
    case failed(job: String, error: String, oom: Bool, peakGB: Double?, seconds: Double?)

    /// The job an answer is for (nil for `ready`).
    public var job: String? {
        switch self {
        case .ready: return nil
        case let .done(job, _, _), let .failed(job, _, _, _, _): return job
        }
    }

    /// The event's name on the wire.
    public var event: String {
        switch self {
        case .ready: return "ready"
        case .done: return "done"
        case .failed: return "failed"
        }
    }

    /// Why a line is not a message.
    public struct Malformed: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// Parses one line (without its newline). Anything but a JSON object with a known `event` and the fields that
    /// event needs, of the right types, is `Malformed`: the orchestrator treats the worker as broken.
    public static func parse(_ line: Data) throws -> WorkerMessage {
        guard line.count <= WorkerProtocol.maxLineBytes else { throw Malformed(description: "a line of \(line.count) bytes (at most \(WorkerProtocol.maxLineBytes))") }
        guard String(data: line, encoding: .utf8) != nil else { throw Malformed(description: "a line that is not UTF-8") }
        struct Wire: Decodable {
            var event: String
            var pid: Double?
            var job: String?
            var error: String?
            var oom: Bool?
            var load_seconds: Double?
            var resident_gb: Double?
            var peak_memory_gb: Double?
            var seconds: Double?
        }
        let o: Wire
        do { o = try JSONDecoder().decode(Wire.self, from: line) } catch {
            throw Malformed(description: "a line that is not a message object (JSON with an \"event\" string and typed fields)")
        }
        func number(_ value: Double?, _ key: String) throws -> Double? {
            guard let v = value else { return nil }
            guard v.isFinite, v >= 0 else { throw Malformed(description: "\"\(key)\" is not a non-negative number") }
            return v
        }
        func job() throws -> String {
            guard let j = o.job, !j.isEmpty, j.utf8.count <= 1024 else { throw Malformed(description: "\"\(o.event)\" without a \"job\" string") }
            return j
        }
        switch o.event {
        case "ready":
            guard let pid = o.pid, pid >= 1, pid <= Double(Int32.max), pid == pid.rounded() else {
                throw Malformed(description: "\"ready\" without a positive integer \"pid\"")
            }
            return .ready(pid: Int32(pid), loadSeconds: try number(o.load_seconds, "load_seconds"), residentGB: try number(o.resident_gb, "resident_gb"))
        case "done":
            return .done(job: try job(), peakGB: try number(o.peak_memory_gb, "peak_memory_gb"), seconds: try number(o.seconds, "seconds"))
        case "failed":
            let j = try job()
            guard let oom = o.oom else { throw Malformed(description: "\"failed\" without \"oom\": true or false") }
            return .failed(job: j, error: String((o.error ?? "").prefix(8192)), oom: oom, peakGB: try number(o.peak_memory_gb, "peak_memory_gb"),
                           seconds: try number(o.seconds, "seconds"))
        default:
            throw Malformed(description: "an unknown event \"\(o.event.prefix(40))\"")
        }
    }
}

/// What the orchestrator asks.
public enum WorkerRequest: Sendable {
    case render(job: String, attempt: Int, output: String, settings: [String: WorkerValue])
    case exit

    /// The line to send, newline included.
    public func line() -> Data {
        let object: [String: Any]
        switch self {
        case let .render(job, attempt, output, settings):
            object = ["request": "render", "job": job, "attempt": attempt, "output": output, "settings": settings.mapValues(\.json)]
        case .exit:
            object = ["request": "exit"]
        }
        var data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        data.append(0x0A)
        return data
    }
}

/// A setting's value in a request: typed, as the renderer's own code would take it.
public enum WorkerValue: Sendable, Equatable {
    case string(String)
    case int(Int)
    case double(Double)
    case bool(Bool)
    case strings([String])

    var json: Any {
        switch self {
        case let .string(s): return s
        case let .int(i): return i
        case let .double(d): return d
        case let .bool(b): return b
        case let .strings(l): return l
        }
    }
}
