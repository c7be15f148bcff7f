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
