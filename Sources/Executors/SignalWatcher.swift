import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The write end of the pipe SIGINT and SIGTERM are written to; read by the handler, which must not capture.
nonisolated(unsafe) private var signalPipeWrite: Int32 = -1

/// SIGINT and SIGTERM for a run: the first calls `onFirst` (the session stops its executor); the second calls
/// `onSecond` (the executor acts at once and says what it did), prints its words and exits 130.
///
/// A plain signal handler writes the signal's number to a pipe that a thread of ours reads; that thread unblocks
/// SIGINT and SIGTERM for itself, so some thread always takes them. Before this, the watcher set SIGINT to SIG_IGN
/// and relied on a DispatchSource: setting SIG_IGN discards a signal already pending, and a process started with
/// SIGINT blocked (children of the test runner can be) had its early Ctrl-C discarded: the batch ran to its end.
/// Now a signal that arrives before the watcher exists either ends the process (the default action) or, where it
/// is blocked, waits for the watcher: it is never lost.
final class SignalWatcher: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    private var stopped = false

    init(quiet: Bool = false, onFirst: @escaping @Sendable () -> Void, onSecond: @escaping @Sendable () -> String) {
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
                let nth = lock.withLock { count += 1; return count }
                if nth == 1 {
                    if !quiet {
                        FileHandle.standardError.write(Data("\navatar-batch: stopping: terminating running jobs (press Ctrl-C again to kill them at once)\n".utf8))
                    }
                    onFirst()
                } else {
                    FileHandle.standardError.write(Data("avatar-batch: \(onSecond())\n".utf8))
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
        if signalPipeWrite >= 0 { close(signalPipeWrite); signalPipeWrite = -1 }  // the reader sees the end and exits
    }
}
