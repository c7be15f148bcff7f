import Foundation
import Subprocess
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// One process to start: argv (never a shell string), environment, directory, log, limits.
public struct LaunchSpec: Sendable {
    public var argv: [String]
    public var environment: [String: String]
    public var workdir: String
    /// stdout and stderr both go here (created owner-only).
    public var logPath: String
    public var timeoutSeconds: Double?
    /// Seconds between SIGTERM and SIGKILL.
    public var graceSeconds: Double

    public init(argv: [String], environment: [String: String], workdir: String, logPath: String, timeoutSeconds: Double?, graceSeconds: Double = 10) {
        self.argv = argv
        self.environment = environment
        self.workdir = workdir
        self.logPath = logPath
        self.timeoutSeconds = timeoutSeconds
        self.graceSeconds = graceSeconds
    }
}

/// How a launched process ended.
public struct LaunchOutcome: Sendable {
    public var exitCode: Int32?
    public var signal: Int32?
    public var timedOut: Bool
    /// The orchestrator stopped it (Ctrl-C, SIGTERM).
    public var cancelled: Bool
    public var pid: Int32
    public var seconds: Double
    /// Group members still alive after SIGKILL (should always be empty).
    public var leftovers: [Int32]
}

/// Starts a renderer in its own process group with swift-subprocess and stops the whole group on timeout or
/// cancellation: SIGTERM, SIGKILL after the grace period, then /proc is checked until no member is left.
/// (Subprocess's own teardown stops at the group leader, so grandchildren are this type's job.)
public enum LocalLauncher {
    /// Runs `spec`; `started` is called once with the pid (also the process group id) and its start time.
    public static func run(_ spec: LaunchSpec, started: @escaping @Sendable (Int32, UInt64) async -> Void) async throws -> LaunchOutcome {
        let fd = open(spec.logPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ExecutorError.launch("cannot create log \(spec.logPath): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard let program = spec.argv.first else { throw ExecutorError.launch("empty command") }
        let executable: Executable = program.contains("/") ? .path(FilePath(program)) : .name(program)
        var env: [Environment.Key: String] = [:]
        for (k, v) in spec.environment { env[Environment.Key(stringLiteral: k)] = v }
        var options = PlatformOptions()
        options.processGroupID = 0  // a new group whose id is the child's pid
        // On cancellation Subprocess ends with SIGKILL to the leader; give it the grace period first, as the
        // cancel handler below gives the rest of the group.
        options.teardownSequence = [.gracefulShutDown(allowedDurationToNextStep: .milliseconds(Int(spec.graceSeconds * 1000)))]
        let config = Configuration(executable: executable, arguments: Arguments(Array(spec.argv.dropFirst())),
                                   environment: .custom(env), workingDirectory: FilePath(spec.workdir), platformOptions: options)
        let pidBox = PIDBox()
        let began = Date()
        let log = FileDescriptor(rawValue: fd)

        enum Event: Sendable { case exited(TerminationStatus), timedOut }
        let outcome: (TerminationStatus, Bool) = try await withTaskCancellationHandler {
            try await withThrowingTaskGroup(of: Event.self) { group in
                group.addTask {
                    let result = try await Subprocess.run(config, input: .none, output: .fileDescriptor(log, closeAfterSpawningProcess: false),
                                                          error: .fileDescriptor(log, closeAfterSpawningProcess: false)) { execution in
                        let pid = execution.processIdentifier.value
                        pidBox.set(pid)
                        await started(pid, ProcFS.startTime(of: pid) ?? 0)
                    }
                    return .exited(result.terminationStatus)
                }
                if let timeout = spec.timeoutSeconds {
                    group.addTask {
                        try await Task.sleep(for: .seconds(timeout))
                        pidBox.markTimedOut()  // before the kill: the exit may be seen before this task returns
                        if let pid = pidBox.pid { await ProcFS.terminateGroup(pid, graceSeconds: spec.graceSeconds) }
                        return .timedOut
                    }
                }
                var timedOut = false
                while let event = try await group.next() {
                    switch event {
                    case .timedOut: timedOut = true
                    case let .exited(status):
                        group.cancelAll()
                        return (status, timedOut || pidBox.timedOut)
                    }
                }
                throw ExecutorError.launch("the process monitor ended without an exit status")
            }
        } onCancel: {
            // Ctrl-C or SIGTERM of the orchestrator: stop the whole group, not only the leader.
            if let pid = pidBox.pid {
                ProcFS.signalGroup(pid, SIGTERM)
                DispatchQueue.global().asyncAfter(deadline: .now() + spec.graceSeconds) { ProcFS.signalGroup(pid, SIGKILL) }
            }
        }
        let pid = pidBox.pid ?? -1
        // The leader is gone; a grandchild that outlived it is still ours to stop.
        let leftovers = await ProcFS.terminateGroup(pid, graceSeconds: min(spec.graceSeconds, 2))
        var exitCode: Int32?
        var signal: Int32?
        switch outcome.0 {
        case let .exited(code): exitCode = code
        case let .signaled(sig): signal = sig
        }
        return LaunchOutcome(exitCode: exitCode, signal: signal, timedOut: outcome.1, cancelled: Task.isCancelled, pid: pid,
                             seconds: Date().timeIntervalSince(began), leftovers: leftovers)
    }
}

/// The child's pid, set once from inside the subprocess closure and read by the watchdog and cancel handler.
final class PIDBox: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Int32?
    private var fired = false
    var pid: Int32? { lock.withLock { value } }
    var timedOut: Bool { lock.withLock { fired } }
    func set(_ pid: Int32) { lock.withLock { value = pid } }
    func markTimedOut() { lock.withLock { fired = true } }
}
