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
    /// At most this many bytes of the log take disk space: past it, all but the start (half the cap, at most 1 MB) and the last
    /// (cap - 1 MB) become a hole (see `LogCap`). nil: unbounded.
    public var logCapBytes: Int?

    public init(argv: [String], environment: [String: String], workdir: String, logPath: String, timeoutSeconds: Double?, graceSeconds: Double = 10,
                logCapBytes: Int? = nil) {
        self.logCapBytes = logCapBytes
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
    /// Bytes of the log dropped by the cap (0 when it stayed under).
    public var logDroppedBytes = 0
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

        enum Event: Sendable { case exited(TerminationStatus), timedOut, monitorStopped }
        let cap = spec.logCapBytes.map { LogCap(fd: fd, capBytes: $0) }
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
                if let cap {
                    group.addTask {
                        while !Task.isCancelled {
                            cap.enforce()
                            try? await Task.sleep(for: .milliseconds(250))
                        }
                        return .monitorStopped
                    }
                }
                var timedOut = false
                while let event = try await group.next() {
                    switch event {
                    case .monitorStopped: break
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
        cap?.enforce()
        let pid = pidBox.pid ?? -1
        // The leader is gone; a grandchild that outlived it is still ours to stop.
        let leftovers = await ProcFS.terminateGroup(pid, graceSeconds: min(spec.graceSeconds, 2))
        var exitCode: Int32?
        var signal: Int32?
        switch outcome.0 {
        case let .exited(code): exitCode = code
        case let .signaled(sig): signal = sig
        }
        var outcomeValue = LaunchOutcome(exitCode: exitCode, signal: signal, timedOut: outcome.1, cancelled: Task.isCancelled, pid: pid,
                                         seconds: Date().timeIntervalSince(began), leftovers: leftovers)
        outcomeValue.logDroppedBytes = cap?.dropped ?? 0
        return outcomeValue
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

/// Bounds the disk a log takes while the renderer writes it: once the file is larger than the cap, everything
/// between its first MB and its last (cap - 1 MB) is deallocated with fallocate(PUNCH_HOLE). The file keeps its
/// length and the renderer its offset (nothing it writes is blocked or reordered); the dropped middle reads as
/// NUL bytes and takes no space. Checked every 250 ms, so a burst can overshoot by what is written in that time.
final class LogCap: @unchecked Sendable {
    let fd: Int32
    let head: Int
    let tail: Int
    private let lock = NSLock()
    private var punchedTo: Int
    private(set) var dropped = 0

    /// glibc's fallocate(2) wrapper (a GNU extension Swift's Glibc module does not import).
    typealias Fallocate = @convention(c) (Int32, Int32, Int64, Int64) -> Int32
    static let fallocate: Fallocate? = {
        guard let handle = dlopen(nil, RTLD_NOW), let sym = dlsym(handle, "fallocate64") ?? dlsym(handle, "fallocate") else { return nil }
        return unsafeBitCast(sym, to: Fallocate.self)
    }()

    init(fd: Int32, capBytes: Int) {
        self.fd = fd
        head = min(1 << 20, capBytes / 2)
        tail = max(capBytes - head, 4096)
        punchedTo = head
    }

    func enforce() {
        lock.withLock {
            var st = stat()
            guard fstat(fd, &st) == 0 else { return }
            let size = Int(st.st_size)
            guard size > head + tail else { return }
            let end = (size - tail) / 4096 * 4096
            guard end > punchedTo else { return }
            // FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE (linux/falloc.h)
            if let punch = LogCap.fallocate, punch(fd, 0x02 | 0x01, Int64(punchedTo), Int64(end - punchedTo)) == 0 {
                dropped += end - punchedTo
                punchedTo = end
            }
        }
    }
}
