/// A position in a source file: 1-based line and column (columns count Unicode scalars, as libyaml does).
public struct SourcePosition: Sendable, Hashable, Comparable, Codable {
    public var line: Int
    public var column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    public static func < (lhs: SourcePosition, rhs: SourcePosition) -> Bool {
        (lhs.line, lhs.column) < (rhs.line, rhs.column)
    }
}

/// One problem found in a manifest or profile, printed as `FILE:LINE:COL: error: MESSAGE; FIX`.
public struct Diagnostic: Sendable, Hashable, Codable, CustomStringConvertible {
    /// How bad a problem is: errors make the input invalid, warnings do not.
    public enum Severity: String, Sendable, Codable {
        case error, warning
    }

    public var severity: Severity
    public var file: String
    public var position: SourcePosition
    public var message: String
    /// What the user should do about it; printed after the message.
    public var fix: String?

    /// Every error says what to do about it (`fix` is required); a warning may stand alone.
    public init(_ severity: Severity = .error, file: String, at position: SourcePosition, _ message: String, fix: String?) {
        self.severity = severity
        self.file = file
        self.position = position
        self.message = Diagnostic.printable(message)
        self.fix = fix.map { Diagnostic.printable($0) }
    }

    /// Longest message or fix shown, in characters: a 1 MiB value quoted in a message is cut here.
    public static let maxTextLength = 600

    /// Text that is safe for a terminal and stays on one line: control characters (C0, DEL, C1: newlines, ESC, BEL,
    /// CSI) become `\n`, `\t`, `\r` or `\u{XX}`, and text past `maxTextLength` characters becomes "...". Messages quote
    /// user values, which may hold anything YAML can.
    public static func printable(_ text: String) -> String {
        var out = ""
        var count = 0
        for scalar in text.unicodeScalars {
            if count >= maxTextLength { return out + "..." }
            switch scalar.value {
            case 0x0A: out += "\\n"
            case 0x09: out += "\\t"
            case 0x0D: out += "\\r"
            case 0x00..<0x20, 0x7F..<0xA0: out += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            default: out.unicodeScalars.append(scalar)
            }
            count += 1
        }
        return out
    }

    /// The single-line form tools and editors understand.
    public var description: String {
        var text = "\(Diagnostic.printable(file)):\(position.line):\(position.column): \(severity.rawValue): \(message)"
        if let fix { text += "; \(fix)" }
        return text
    }
}

extension Array where Element == Diagnostic {
    /// Problems ordered by file, then position, then text, so output is stable.
    public func sortedByPosition() -> [Diagnostic] {
        sorted { a, b in
            if a.file != b.file { return a.file < b.file }
            if a.position != b.position { return a.position < b.position }
            return a.message < b.message
        }
    }

    /// True when any problem is an error.
    public var hasErrors: Bool { contains { $0.severity == .error } }
}

/// Suggests the closest known word for a misspelt one (Levenshtein distance at most a third of its length).
public func didYouMean(_ word: String, among candidates: [String]) -> String? {
    let limit = max(2, word.count / 3)
    var best: (String, Int)?
    for candidate in candidates {
        let d = editDistance(word.lowercased(), candidate.lowercased())
        if d <= limit, d < (best?.1 ?? Int.max) { best = (candidate, d) }
    }
    return best?.0
}

func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a.unicodeScalars), b = Array(b.unicodeScalars)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    var current = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        current[0] = i
        for j in 1...b.count {
            current[j] = Swift.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        swap(&previous, &current)
    }
    return previous[b.count]
}
