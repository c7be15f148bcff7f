import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Where each manifest's store is, remembered by the manifest file's identity (device, inode, size, modification
/// time to the nanosecond), so that `status MANIFEST`, polled ten times a second, does not parse a 2,000-clip manifest
/// to learn one path. An entry whose file changed in any of those is ignored and replaced; nothing else is trusted
/// from it (the store path it names is only ever opened read-only, and only when it exists). One small file per
/// manifest under `$AVATAR_BATCH_HOME/state-paths/` (else `$XDG_CACHE_HOME/avatar-batch/state-paths/`, else
/// `~/.cache/avatar-batch/state-paths/`); safe to delete at any time.
public struct StatePathCache: Sendable {
    public let folder: String

    public init(folder: String) { self.folder = folder }

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        if let home = environment["AVATAR_BATCH_HOME"], !home.isEmpty {
            folder = home + "/state-paths"
        } else {
            let cache = environment["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? (NSHomeDirectory() + "/.cache")
            folder = cache + "/avatar-batch/state-paths"
        }
    }

    /// The store path of the manifest at `path`: remembered while the file is unchanged, else read from its `name` and
    /// `output_dir` (`ManifestLoader.statePath`) and remembered. nil when the manifest does not say them plainly.
    public func statePath(manifest path: String) -> String? {
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        guard let identity = Self.identity(absolute) else { return ManifestLoader.statePath(path: path) }
        let entry = folder + "/" + String(SHA256.hex(absolute).prefix(32))
        if let text = try? String(contentsOfFile: entry, encoding: .utf8) {
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            if lines.count >= 4, lines[0] == "v1", lines[1] == absolute, lines[2] == identity, !lines[3].isEmpty { return lines[3] }
        }
        guard let found = ManifestLoader.statePath(path: path) else { return nil }
        // Written whole under a temporary name, then renamed: a reader sees the old entry or the new one. Best effort.
        let fm = FileManager.default
        if (try? fm.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])) != nil {
            let temp = entry + ".\(getpid()).tmp"
            if fm.createFile(atPath: temp, contents: Data("v1\n\(absolute)\n\(identity)\n\(found)\n".utf8), attributes: [.posixPermissions: 0o600]) {
                if rename(temp, entry) != 0 { try? fm.removeItem(atPath: temp) }
            }
        }
        return found
    }

    /// Device, inode, size and modification time (ns) of the file: what changes when it is edited or replaced.
    static func identity(_ path: String) -> String? {
        var s = stat()
        guard stat(path, &s) == 0 else { return nil }
        return "\(s.st_dev) \(s.st_ino) \(s.st_size) \(s.st_mtim.tv_sec).\(s.st_mtim.tv_nsec)"
    }
}
