import Foundation
import Manifest
import Scheduler
#if canImport(Glibc)
import Glibc
#endif

/// What one Slurm job runs: written by the orchestrator, read by `avatar-batch exec-attempt` on the compute node.
/// It carries the attempt's whole plan (clip, settings, renderer profile, paths), so the node expands the argv
/// template itself and no shell script is ever built from manifest values.
public struct SlurmJobFile: Sendable, Codable {
    public static let currentVersion = 1
    public var version = SlurmJobFile.currentVersion
    public var plan: AttemptPlan
    /// Where the node writes the AttemptResult JSON (on storage the orchestrator can read).
    public var resultPath: String

    public init(plan: AttemptPlan, resultPath: String) {
        self.plan = plan
        self.resultPath = resultPath
    }

    public func write(to path: String) throws {
        try writeAtomically(try JSONEncoder.pretty.encode(self), to: path)
    }

    public static func read(_ path: String) throws -> SlurmJobFile {
        guard let data = FileManager.default.contents(atPath: path) else { throw SlurmError("cannot read the job file \(path)") }
        let file: SlurmJobFile
        do { file = try JSONDecoder().decode(SlurmJobFile.self, from: data) } catch {
            throw SlurmError("the job file \(path) is not one avatar-batch wrote: \(error)")
        }
        guard file.version == currentVersion else {
            throw SlurmError("the job file \(path) has version \(file.version); this binary reads \(currentVersion): use the same avatar-batch on the nodes")
        }
        return file
    }
}

/// The node side of a Slurm attempt: runs the renderer exactly as the local executor does (own process group,
/// log, timeout, output validated then renamed) and writes the result where the orchestrator reads it.
public enum SlurmAttempt {
    /// Runs the attempt in `jobFile`; returns the process exit status (0 only when the output was accepted).
    public static func execute(jobFile: String) async -> Int32 {
        let file: SlurmJobFile
        do { file = try SlurmJobFile.read(jobFile) } catch {
            FileHandle.standardError.write(Data("avatar-batch exec-attempt: \(error)\n".utf8))
            return 2
        }
        var plan = file.plan
        plan.inheritDevices = true
        plan.masterPort = PortAllocator().take()  // free on this node, now
        let env = ProcessInfo.processInfo.environment
        FileHandle.standardError.write(Data("avatar-batch exec-attempt: \(plan.job.id) attempt \(plan.number) on \(ProcFS.hostname), Slurm job \(env["SLURM_JOB_ID"] ?? "?"), CUDA_VISIBLE_DEVICES=\(env["CUDA_VISIBLE_DEVICES"] ?? "unset")\n".utf8))

        // scancel and the time limit send SIGTERM: stop the renderer's group with its grace period, then report.
        let registry = GroupRegistry()
        let work = Task { try await AttemptRunner.run(plan) { pid, _ in registry.add(pid) } }
        let stopped = StopFlag()
        let signals = SignalWatcher(quiet: true, onFirst: { stopped.set(); work.cancel() },
                                    onSecond: { registry.killAll(); return "exec-attempt: a second signal: the renderer was killed" })
        defer { signals.stop() }
        var result: AttemptResult
        do { result = try await work.value } catch {
            let text = "cannot run the attempt: \(error)"
            FileHandle.standardError.write(Data("avatar-batch exec-attempt: \(text)\n".utf8))
            result = AttemptResult(classification: .crashed, exitCode: nil, signal: nil, seconds: 0, stderrTail: text, oom: nil,
                                   reportedPeakGB: nil, outputDigest: nil, note: text, leftovers: [])
        }
        if stopped.isSet && result.classification != .succeeded {
            // scancel or the time limit: which one, only Slurm's final state tells the orchestrator.
            result.classification = .interrupted
            result.note = "stopped by SIGTERM (scancel or the Slurm time limit)"
        }
        do { try writeAtomically(try JSONEncoder.pretty.encode(result), to: file.resultPath) } catch {
            FileHandle.standardError.write(Data("avatar-batch exec-attempt: cannot write \(file.resultPath): \(error)\n".utf8))
            return 2
        }
        FileHandle.standardError.write(Data("avatar-batch exec-attempt: \(result.classification.rawValue)\(result.note.map { ": " + $0 } ?? "")\n".utf8))
        return result.classification == .succeeded ? 0 : 1
    }
}

/// A flag set from another thread (a signal) and read by the task that acts on it.
final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}

/// Writes `data` to a temporary file beside `path`, fsyncs it, renames it over `path` (owner-only).
func writeAtomically(_ data: Data, to path: String) throws {
    let dir = (path as NSString).deletingLastPathComponent
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    let temp = path + ".tmp-\(getpid())"
    let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw SlurmError("cannot create \(temp): \(String(cString: strerror(errno)))") }
    let ok = data.withUnsafeBytes { buf -> Bool in
        var off = 0
        while off < buf.count {
            let n = Glibc.write(fd, buf.baseAddress! + off, buf.count - off)
            if n <= 0 { return false }
            off += n
        }
        return fsync(fd) == 0
    }
    close(fd)
    guard ok, rename(temp, path) == 0 else {
        unlink(temp)
        throw SlurmError("cannot write \(path): \(String(cString: strerror(errno)))")
    }
}

extension JSONEncoder {
    static var pretty: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return e
    }
}
