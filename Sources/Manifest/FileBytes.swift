#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Reads whole files with POSIX calls. Foundation's `FileManager.contents(atPath:)` leaks its 4 KiB buffer when a
/// file is empty (LeakSanitizer, found by fuzzing the manifest loader), and manifests and profiles are read often.
enum FileBytes {
    #if canImport(Glibc)
    static let posixRead = Glibc.read
    #else
    static let posixRead = Darwin.read
    #endif

    /// The file's bytes, or nil when it cannot be opened or read (or is a directory).
    static func read(_ path: String) -> Data? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) != S_IFDIR else { return nil }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { posixRead(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if n == 0 { return data }
            data.append(contentsOf: buffer[0..<n])
        }
    }
}
