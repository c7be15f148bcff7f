import Foundation
import Checkpoint
#if canImport(Glibc)
import Glibc
#endif

/// What /proc says about processes: start times (to tell a pid's owner from a later process that reused it)
/// and the members of a process group (to verify nothing of a job is left).
public enum ProcFS {
    /// This host's name.
    public static var hostname: String {
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, 255)
        return String(cString: buf)
    }

    /// Fields of /proc/PID/stat after the command name: index 0 is field 3 (state).
    static func statFields(_ pid: Int32) -> [Substring]? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        return text[text.index(after: close)...].split(separator: " ")
    }

    /// Field 22 of /proc/PID/stat: clock ticks after boot when the process started.
    public static func startTime(of pid: Int32) -> UInt64? {
        guard let f = statFields(pid), f.count > 19 else { return nil }
        return UInt64(f[19])
    }

    /// The process group of a pid.
    public static func processGroup(of pid: Int32) -> Int32? {
        guard let f = statFields(pid), f.count > 2 else { return nil }
        return Int32(f[2])
    }

    /// Whether the pid is a zombie (exited, not yet reaped).
    static func isZombie(_ pid: Int32) -> Bool {
        statFields(pid)?.first == "Z"
    }

    /// This process's identity.
    public static func current() -> ProcessIdentity {
        let pid = getpid()
        return ProcessIdentity(host: hostname, pid: pid, startTime: startTime(of: pid) ?? 0)
    }

    /// True when the identity names a live process on this host: same pid and same start time.
    /// A holder on another host is assumed alive (we cannot look), which errs on the side of refusing.
    public static func isAlive(_ p: ProcessIdentity) -> Bool {
        guard p.host == hostname else { return true }
        guard let start = startTime(of: p.pid), !isZombie(p.pid) else { return false }
        return start == p.startTime
    }

    /// A dead run's process group that may be stopped: one with members left on this host whose leader is the process
    /// that was launched (`leader` with start time `start`) or gone, so a reused pid is never signalled. nil otherwise.
    public static func leftoverGroup(_ pgid: Int32?, leader: Int32?, start: UInt64?, host: String) -> Int32? {
        guard let pgid, host == hostname, !members(ofGroup: pgid).isEmpty else { return nil }
        let leaderMatches = leader.map { pid in startTime(of: pid).map { $0 == start } ?? true } ?? true
        return leaderMatches ? pgid : nil
    }

    /// Live (non-zombie) members of a process group.
    public static func members(ofGroup pgid: Int32) -> [Int32] {
        // kill(-pgid, 0) fails with ESRCH when the group has no process at all: the common case, without reading /proc.
        if pgid > 1, kill(-pgid, 0) == -1, errno == ESRCH { return [] }
        guard pgid > 1, let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        var out: [Int32] = []
        for e in entries {
            guard let pid = Int32(e), let f = statFields(pid), f.count > 2, Int32(f[2]) == pgid, f[0] != "Z" else { continue }
            out.append(pid)
        }
        return out.sorted()
    }

    /// Sends `signal` to every process of a group (kill(-pgid)); no-op for groups that are gone.
    public static func signalGroup(_ pgid: Int32, _ signal: Int32) {
        guard pgid > 1 else { return }
        _ = kill(-pgid, signal)
    }

    /// SIGTERM to the group, SIGKILL after `graceSeconds`, then waits until /proc shows no member.
    /// Returns the pids that were still there after SIGKILL (should be none).
    @discardableResult
    public static func terminateGroup(_ pgid: Int32, graceSeconds: Double) async -> [Int32] {
        guard pgid > 1, !members(ofGroup: pgid).isEmpty else { return [] }
        signalGroup(pgid, SIGTERM)
        let deadline = Date().addingTimeInterval(graceSeconds)
        while Date() < deadline {
            if members(ofGroup: pgid).isEmpty { return [] }
            try? await Task.sleep(for: .milliseconds(50))
        }
        signalGroup(pgid, SIGKILL)
        for _ in 0..<100 {
            let left = members(ofGroup: pgid)
            if left.isEmpty { return [] }
            signalGroup(pgid, SIGKILL)
            try? await Task.sleep(for: .milliseconds(20))
        }
        return members(ofGroup: pgid)
    }

    /// This machine's memory in GB (GiB, as everywhere in avatar-batch) from /proc/meminfo, or nil.
    static func memTotalGB() -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MemTotal:") }),
              let kb = Double(line.split(separator: " ").dropFirst().first ?? "") else { return nil }
        return kb / (1024 * 1024)
    }
}
