import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Hands out TCP ports that are free now and not given to another running job.
final class PortAllocator: @unchecked Sendable {
    private let lock = NSLock()
    private var inUse = Set<Int>()

    /// A free port on 127.0.0.1 (bound to port 0, read back, released), not already handed out.
    func take() -> Int {
        lock.withLock {
            for _ in 0..<64 {
                let p = PortAllocator.ephemeral()
                if p > 0 && !inUse.contains(p) { inUse.insert(p); return p }
            }
            var p = 29600
            while inUse.contains(p) { p += 1 }
            inUse.insert(p)
            return p
        }
    }

    func release(_ port: Int) { _ = lock.withLock { inUse.remove(port) } }

    static func ephemeral() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        guard bound == 0 else { return 0 }
        let got = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        guard got == 0 else { return 0 }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}

/// The process groups of running renderers, for the hard stop on a second Ctrl-C.
final class GroupRegistry: @unchecked Sendable {
    private let lock = NSLock()
    private var groups = Set<Int32>()
    func add(_ g: Int32) { _ = lock.withLock { groups.insert(g) } }
    func remove(_ g: Int32) { _ = lock.withLock { groups.remove(g) } }
    func killAll() { for g in lock.withLock({ groups }) { ProcFS.signalGroup(g, SIGKILL) } }
}

/// Peak device memory seen per GPU while each attempt ran, from nvidia-smi's `memory.used`.
final class MemoryTracker: @unchecked Sendable {
    private let lock = NSLock()
    private var baseline: [Int: Double] = [:]
    private var running: [String: Int] = [:]       // attempt key -> GPU
    private var peakByAttempt: [String: Double] = [:]
    private var alone: [String: Bool] = [:]        // the attempt had its GPU to itself the whole time
    private(set) var devicePeak: [Int: Double] = [:]

    func setBaseline(_ b: [Int: Double]) { lock.withLock { baseline = b } }

    func begin(_ key: String, gpu: Int) {
        lock.withLock {
            let shared = running.values.contains(gpu)
            for (k, g) in running where g == gpu { alone[k] = false }
            running[key] = gpu
            alone[key] = !shared
            peakByAttempt[key] = 0
        }
    }

    /// Ends tracking; returns the peak (GB above the baseline) when the attempt ran alone, else nil.
    func end(_ key: String) -> Double? {
        lock.withLock {
            running[key] = nil
            defer { peakByAttempt[key] = nil; alone[key] = nil }
            guard alone[key] == true, let p = peakByAttempt[key], p > 0 else { return nil }
            return p
        }
    }

    func sample(_ used: [Int: Double]) {
        lock.withLock {
            for (gpu, gb) in used { devicePeak[gpu] = max(devicePeak[gpu] ?? 0, gb) }
            for (key, gpu) in running {
                let above = (used[gpu] ?? 0) - (baseline[gpu] ?? 0)
                peakByAttempt[key] = max(peakByAttempt[key] ?? 0, above)
            }
        }
    }

    var peaks: [Int: Double] { lock.withLock { devicePeak } }
}

/// The write end of the pipe SIGINT and SIGTERM are written to; read by the handler, which must not capture.
nonisolated(unsafe) private var signalPipeWrite: Int32 = -1

/// Signals delivered as an async stream; the second one kills every renderer group and exits 130 at once.
///
/// A plain signal handler writes the signal's number to a pipe that a thread of ours reads; that thread unblocks
/// SIGINT and SIGTERM for itself, so some thread always takes them. Before this, the watcher set SIGINT to SIG_IGN
/// and relied on a DispatchSource: setting SIG_IGN discards a signal already pending, and a process started with
/// SIGINT blocked (children of the test runner can be) had its early Ctrl-C discarded: the batch ran to its end.
/// Now a signal that arrives before the watcher exists either ends the process (the default action) or, where it
/// is blocked, waits for the watcher: it is never lost.
final class SignalWatcher: @unchecked Sendable {
    let stream: AsyncStream<Int32>
    private let continuation: AsyncStream<Int32>.Continuation
    private let lock = NSLock()
    private var count = 0
    private var stopped = false

    init(registry: GroupRegistry, quiet: Bool = false, onSecond: (@Sendable () -> Void)? = nil) {
        (stream, continuation) = AsyncStream.makeStream(of: Int32.self)
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return }  // out of descriptors: SIGINT and SIGTERM keep their default action
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        _ = fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK)  // the handler never blocks
        signalPipeWrite = fds[1]
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { sig in
            var byte = UInt8(truncatingIfNeeded: sig)
            _ = write(signalPipeWrite, &byte, 1)
        }
        action.sa_flags = SA_RESTART
        sigemptyset(&action.sa_mask)
        sigaction(SIGINT, &action, nil)
        sigaction(SIGTERM, &action, nil)
        let readEnd = fds[0]
        let reader = Thread { [self] in
            var set = sigset_t()
            sigemptyset(&set)
            sigaddset(&set, SIGINT)
            sigaddset(&set, SIGTERM)
            pthread_sigmask(SIG_UNBLOCK, &set, nil)
            var byte: UInt8 = 0
            while true {
                let n = read(readEnd, &byte, 1)
                if n < 0 && errno == EINTR { continue }
                guard n == 1 else { break }  // the write end was closed: stopped
                let sig = Int32(byte)
                let nth = lock.withLock { count += 1; return count }
                if nth == 1 {
                    if !quiet {
                        FileHandle.standardError.write(Data("\navatar-batch: stopping: terminating running jobs (press Ctrl-C again to kill them at once)\n".utf8))
                    }
                    continuation.yield(sig)
                } else if let onSecond {
                    onSecond()
                } else {
                    registry.killAll()
                    FileHandle.standardError.write(Data("avatar-batch: killed running jobs; run the same command again to resume\n".utf8))
                    _exit(130)
                }
            }
            close(readEnd)
        }
        reader.name = "avatar-batch signals"
        reader.start()
    }

    func stop() {
        let first = lock.withLock { () -> Bool in defer { stopped = true }; return !stopped }
        guard first else { return }
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
        continuation.finish()
        if signalPipeWrite >= 0 { close(signalPipeWrite); signalPipeWrite = -1 }  // the reader sees the end and exits
    }
}
