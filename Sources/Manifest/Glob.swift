import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Shell-style filename patterns (`*`, `?`, `[...]`) through the C library's glob(3), sorted.
public enum Glob {
    /// Regular files matching `pattern`, sorted.
    public static func expand(_ pattern: String) -> [String] {
        var g = glob_t()
        defer { globfree(&g) }
        guard glob(pattern, 0, nil, &g) == 0 else { return [] }
        var out: [String] = []
        for i in 0..<Int(g.gl_pathc) {
            if let p = g.gl_pathv[i], let s = String(validatingCString: p) {
                var isDir: ObjCBool = false
                if FileManager.default.fileExists(atPath: s, isDirectory: &isDir), !isDir.boolValue { out.append(s) }
            }
        }
        return out.sorted()
    }
}
