import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The orchestrator's end of one worker's Unix socket: it listens on a path only its user can reach, takes the
/// worker's one connection, reads JSON lines on a thread of its own and hands each one (parsed, or the raw bytes
/// when it is not a message) to `onLine`; `onClose` runs once when the connection ends or the channel is closed.
/// Writes are whole lines, never interleaved (`send` holds a lock).
final class WorkerChannel: @unchecked Sendable {
    enum Incoming: Sendable {
        case message(WorkerMessage)
        case garbage(Data, why: String)
    }

    let path: String
    private let lock = NSLock()
    private var listenFD: Int32 = -1
    private var connFD: Int32 = -1
    private var closed = false
    private var thread: Thread?

    /// Binds and listens at `path` (removed first if a stale socket is there).
    init(path: String) throws {
        self.path = path
        guard path.utf8.count < 108 else { throw ExecutorError.launch("worker socket path too long (\(path.utf8.count) bytes): \(path)") }
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ExecutorError.launch("cannot create a Unix socket: \(String(cString: strerror(errno)))") }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in path.utf8.enumerated() { raw[i] = b }
            raw[path.utf8.count] = 0
        }
        let bound = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, chmod(path, 0o600) == 0, listen(fd, 4) == 0 else {
            let why = String(cString: strerror(errno))
            Glibc.close(fd)
            throw ExecutorError.launch("cannot listen on \(path): \(why)")
        }
        listenFD = fd
    }

    /// Starts the reader: accepts the first connection, then reads lines until it closes.
    func start(onLine: @escaping @Sendable (Incoming) -> Void, onClose: @escaping @Sendable (String) -> Void) {
        let t = Thread { [self] in
            let why = self.serve(onLine)
            self.releaseDescriptors()
            onClose(why)
        }
        t.name = "worker-channel"
        thread = t
        t.start()
    }

    private var isClosed: Bool { lock.withLock { closed } }

    private func serve(_ onLine: (Incoming) -> Void) -> String {
        // Accept, polling so that `close` ends the wait.
        var conn: Int32 = -1
        while conn < 0 {
            if isClosed { return "closed" }
            var p = pollfd(fd: lock.withLock { listenFD }, events: Int16(POLLIN), revents: 0)
            guard p.fd >= 0 else { return "closed" }
            if isClosed { return "closed" }
            let n = poll(&p, 1, 200)
            if n > 0 {
                conn = accept(p.fd, nil, nil)
                if conn >= 0 { _ = fcntl(conn, F_SETFD, FD_CLOEXEC) }
                if conn < 0 && errno != EINTR && errno != EAGAIN { return "accept failed: \(String(cString: strerror(errno)))" }
            }
        }
        let keep = lock.withLock { () -> Bool in
            connFD = conn
            return !closed
        }
        if !keep { return "closed" }
        // Only one connection is taken: a second would be another process speaking for this worker.
        var buffer = Data()
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            var p = pollfd(fd: conn, events: Int16(POLLIN), revents: 0)
            let ready = poll(&p, 1, 200)
            if isClosed { return "closed" }
            if ready < 0 { if errno == EINTR { continue } else { return "poll failed" } }
            if ready == 0 { continue }
            let n = read(conn, &chunk, chunk.count)
            if n < 0 { if errno == EINTR || errno == EAGAIN { continue } else { return "read failed: \(String(cString: strerror(errno)))" } }
            if n == 0 {
                if !buffer.isEmpty { onLine(.garbage(buffer, why: "an unfinished line before the socket closed")) }
                return "the worker closed its socket"
            }
            buffer.append(contentsOf: chunk[0..<n])
            while let nl = buffer.firstIndex(of: 0x0A) {
                let line = buffer[buffer.startIndex..<nl]
                buffer = Data(buffer[(nl + 1)...])
                if line.allSatisfy({ $0 == 0x20 || $0 == 0x0D || $0 == 0x09 }) { continue }
                do { onLine(.message(try WorkerMessage.parse(Data(line)))) } catch {
                    onLine(.garbage(Data(line.prefix(4096)), why: "\(error)"))
                }
            }
            if buffer.count > WorkerProtocol.maxLineBytes {
                onLine(.garbage(Data(buffer.prefix(4096)), why: "a line of more than \(WorkerProtocol.maxLineBytes) bytes"))
                buffer.removeAll()
            }
        }
    }

    /// Sends one line; false when the worker is not connected or the write failed.
    @discardableResult
    func send(_ request: WorkerRequest) -> Bool {
        let data = request.line()
        return lock.withLock {
            guard !closed, connFD >= 0 else { return false }
            var sent = 0
            return data.withUnsafeBytes { raw -> Bool in
                while sent < raw.count {
                    let n = Glibc.send(connFD, raw.baseAddress! + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
                    if n < 0 { if errno == EINTR { continue }; return false }
                    sent += n
                }
                return true
            }
        }
    }

    /// Closes the socket (the worker sees it close and exits) and removes its path. The descriptors themselves are
    /// closed by the reader thread as it leaves (a descriptor closed under its poll could be reused by another file).
    func close() {
        lock.withLock {
            guard !closed else { return }
            closed = true
            if connFD >= 0 { shutdown(connFD, Int32(SHUT_RDWR)) }
            if listenFD >= 0 { shutdown(listenFD, Int32(SHUT_RDWR)) }
        }
        unlink(path)
        if thread == nil { releaseDescriptors() }
    }

    private func releaseDescriptors() {
        lock.withLock {
            if connFD >= 0 { Glibc.close(connFD); connFD = -1 }
            if listenFD >= 0 { Glibc.close(listenFD); listenFD = -1 }
        }
    }

    deinit {
        close()
        releaseDescriptors()
    }
}
