import SystemPackage
import Foundation

/// A YAML value together with the file it came from (defaults, includes and profiles layer values from
/// several files, and relative paths resolve against the file that wrote them).
struct Sourced: Sendable {
    var node: YAMLNode
    var file: String

    /// The absolute directory of the file (a relative file name is taken from the current directory).
    var directory: String { LexicalPath.absolute(file, in: FileManager.default.currentDirectoryPath).removingLastComponent().string }
}

/// Paths made absolute and normalized without touching the disk ("." and ".." parts resolved as
/// `URL.standardizedFileURL` does; symbolic links are not followed). Foundation's URL did the same about ten
/// times slower, and a 10,000-clip manifest resolves 20,000 paths.
enum LexicalPath {
    static func absolute(_ path: String, in directory: String) -> FilePath {
        var p = FilePath(path)
        if !p.isAbsolute { p = FilePath(directory).pushing(p) }
        return p.lexicallyNormalized()
    }
}

/// Typed reads of YAML values that record a positioned diagnostic and return nil when the value is wrong.
struct FieldReader {
    var diagnostics: [Diagnostic] = []

    mutating func error(_ s: Sourced, _ message: String, fix: String) {
        diagnostics.append(Diagnostic(file: s.file, at: s.node.position, message, fix: fix))
    }

    mutating func error(file: String, at position: SourcePosition, _ message: String, fix: String) {
        diagnostics.append(Diagnostic(file: file, at: position, message, fix: fix))
    }

    mutating func string(_ s: Sourced, _ key: String) -> String? {
        guard let text = s.node.scalar, !s.node.isNull else {
            error(s, "\(key) must be a string, not \(s.node.isNull ? "empty" : s.node.kindDescription)", fix: "write \(key): followed by text (quote it if it looks like a number or starts with a symbol)")
            return nil
        }
        return text
    }

    mutating func int(_ s: Sourced, _ key: String, range: ClosedRange<Int>) -> Int? {
        guard let text = s.node.scalar, let value = Int(text) ?? (text.contains("_") ? Int(text.replacingOccurrences(of: "_", with: "")) : nil) else {
            error(s, "\(key) must be a whole number, not \(s.node.scalar.map { "\"\($0)\"" } ?? s.node.kindDescription)", fix: "write digits only, e.g. \(key): 4")
            return nil
        }
        guard range.contains(value) else {
            error(s, "\(key) \(value) is out of range", fix: "use a value from \(range.lowerBound) to \(range.upperBound)")
            return nil
        }
        return value
    }

    mutating func double(_ s: Sourced, _ key: String, range: ClosedRange<Double>) -> Double? {
        guard let text = s.node.scalar, let value = Double(text), value.isFinite else {
            error(s, "\(key) must be a number, not \(s.node.scalar.map { "\"\($0)\"" } ?? s.node.kindDescription)", fix: "write a number, e.g. \(key): 1.5")
            return nil
        }
        guard range.contains(value) else {
            error(s, "\(key) \(text) is out of range", fix: "use a value from \(range.lowerBound) to \(range.upperBound)")
            return nil
        }
        return value
    }

    static func parseBool(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: return nil
        }
    }

    mutating func bool(_ s: Sourced, _ key: String) -> Bool? {
        guard let text = s.node.scalar, let value = FieldReader.parseBool(text) else {
            error(s, "\(key) must be true or false, not \(s.node.scalar.map { "\"\($0)\"" } ?? s.node.kindDescription)", fix: "write \(key): true or \(key): false")
            return nil
        }
        return value
    }

    mutating func stringList(_ s: Sourced, _ key: String) -> [String]? {
        if s.node.isNull { return [] }
        guard let items = s.node.items else {
            error(s, "\(key) must be a list of strings, not \(s.node.kindDescription)", fix: "write it as a list, e.g. \(key): [a, b]")
            return nil
        }
        var out: [String] = []
        for item in items {
            guard let text = item.scalar else {
                error(Sourced(node: item, file: s.file), "\(key) entries must be strings, not \(item.kindDescription)", fix: "put each entry on its own as plain text, quoted if needed")
                return nil
            }
            out.append(text)
        }
        return out
    }

    /// Seconds from `90`, `90s`, `15m`, `2h` or `1h30m`.
    static func parseDuration(_ text: String) -> Double? {
        if let plain = Double(text) { return plain }
        var total = 0.0, number = ""
        for c in text.lowercased() where c != " " {
            if c.isNumber || c == "." { number.append(c); continue }
            guard let n = Double(number) else { return nil }
            switch c {
            case "s": total += n
            case "m": total += n * 60
            case "h": total += n * 3600
            case "d": total += n * 86400
            default: return nil
            }
            number = ""
        }
        return number.isEmpty ? total : nil
    }

    /// Diagnoses keys not in `known`, suggesting the nearest known one.
    mutating func rejectUnknownKeys(_ entries: [YAMLEntry], file: String, known: [String], context: String) {
        for entry in entries where !known.contains(entry.key) {
            var fix = "remove it"
            if let s = didYouMean(entry.key, among: known) { fix = "did you mean \"\(s)\"?" }
            error(file: file, at: entry.keyPosition, "unknown key \"\(entry.key)\" in \(context)", fix: fix)
        }
    }
}
