import Foundation
import Yams

/// A YAML value with its source position, copied out of Yams' compose tree under a budget.
///
/// Walking a compose tree is exponential for an alias bomb (each alias is a full copy of its anchor),
/// so the copy counts every node it visits and stops at `YAMLLimits.maxNodes`.
public indirect enum YAMLValue: Sendable {
    case scalar(String, quoted: Bool)
    case mapping([YAMLEntry])
    case sequence([YAMLNode])
}

/// One key of a mapping, with the key's own position.
public struct YAMLEntry: Sendable {
    public var key: String
    public var keyPosition: SourcePosition
    public var value: YAMLNode
}

/// A value and where it starts.
public struct YAMLNode: Sendable {
    public var value: YAMLValue
    public var position: SourcePosition

    /// The scalar text, or nil for collections.
    public var scalar: String? {
        if case let .scalar(s, _) = value { return s }
        return nil
    }

    /// True for `~`, `null`, or an empty plain scalar.
    public var isNull: Bool {
        if case let .scalar(s, quoted) = value, !quoted { return s.isEmpty || s == "~" || s == "null" || s == "Null" || s == "NULL" }
        return false
    }

    /// The entries when this is a mapping.
    public var entries: [YAMLEntry]? {
        if case let .mapping(e) = value { return e }
        return nil
    }

    /// The items when this is a sequence.
    public var items: [YAMLNode]? {
        if case let .sequence(i) = value { return i }
        return nil
    }

    /// A word for error messages: "a mapping", "a list", or the quoted scalar.
    public var kindDescription: String {
        switch value {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case let .scalar(s, _): return "\"\(s)\""
        }
    }
}

/// The bounds that keep hostile input from hanging or exhausting the loader.
public struct YAMLLimits: Sendable {
    /// Largest file accepted (16 MiB holds a 50,000-clip manifest).
    public var maxBytes = 16 << 20
    /// Most nodes visited while copying the tree, aliases expanded.
    public var maxNodes = 2_000_000
    /// Deepest nesting accepted.
    public var maxDepth = 64

    public init() {}
}

/// Reads a YAML file into a `YAMLNode`, turning every failure into a positioned diagnostic.
public enum YAMLReader {
    /// Parses `data` (the contents of `file`); returns the root or the diagnostics that stopped it.
    public static func parse(_ data: Data, file: String, limits: YAMLLimits = YAMLLimits()) -> Result<YAMLNode?, Diagnostic> {
        let start = SourcePosition(line: 1, column: 1)
        if data.count > limits.maxBytes {
            return .failure(Diagnostic(file: file, at: start, "file is \(data.count) bytes, over the \(limits.maxBytes)-byte limit",
                                       fix: "split it into several files with include:"))
        }
        guard let text = String(validating: data, as: UTF8.self) else {
            return .failure(Diagnostic(file: file, at: invalidUTF8Position(data), "file is not valid UTF-8",
                                       fix: "save it as UTF-8"))
        }
        let root: Node?
        do {
            // No tag resolution: the loader reads every scalar as text and types it itself, and resolving tags
            // (regular expressions per scalar, again for each mapping key Yams hashes to find duplicates) was a
            // third of the time spent validating a 10,000-clip manifest.
            root = try Yams.compose(yaml: text, .basic)
        } catch let error as YamlError {
            return .failure(diagnostic(for: error, file: file))
        } catch {
            return .failure(Diagnostic(file: file, at: start, "cannot parse YAML: \(error)", fix: "check the file with a YAML linter"))
        }
        guard let root else { return .success(nil) }
        var budget = limits.maxNodes
        do {
            return .success(try copy(root, depth: 0, budget: &budget, limits: limits, file: file))
        } catch let d as Diagnostic {
            return .failure(d)
        } catch {
            return .failure(Diagnostic(file: file, at: start, "\(error)", fix: "report this input to avatar-batch: it is an internal error"))
        }
    }

    private static func position(_ mark: Mark?) -> SourcePosition {
        SourcePosition(line: mark?.line ?? 1, column: mark?.column ?? 1)
    }

    private static func copy(_ node: Node, depth: Int, budget: inout Int, limits: YAMLLimits, file: String) throws -> YAMLNode {
        budget -= 1
        let pos = position(node.mark)
        if budget < 0 {
            throw Diagnostic(file: file, at: pos, "document expands to more than \(limits.maxNodes) values (an alias bomb?)",
                             fix: "use fewer nested aliases")
        }
        if depth > limits.maxDepth {
            throw Diagnostic(file: file, at: pos, "nesting deeper than \(limits.maxDepth) levels", fix: "flatten the document")
        }
        switch node {
        case let .scalar(s):
            return YAMLNode(value: .scalar(s.string, quoted: s.style != .plain), position: pos)
        case let .alias(a):
            throw Diagnostic(file: file, at: position(a.mark), "unresolved alias", fix: "define the anchor (&name) before using it (*name)")
        case let .sequence(seq):
            var items: [YAMLNode] = []
            items.reserveCapacity(seq.count)
            for item in seq { items.append(try copy(item, depth: depth + 1, budget: &budget, limits: limits, file: file)) }
            return YAMLNode(value: .sequence(items), position: pos)
        case let .mapping(map):
            var entries: [YAMLEntry] = []
            var merged: [YAMLEntry] = []
            for (k, v) in map {
                guard case let .scalar(ks) = k else {
                    throw Diagnostic(file: file, at: position(k.mark), "mapping keys must be plain words, not \(k.mapping != nil ? "a mapping" : "a list")",
                                     fix: "write the key as a string")
                }
                let value = try copy(v, depth: depth + 1, budget: &budget, limits: limits, file: file)
                if ks.string == "<<" && ks.style == .plain {
                    // A merge key: its mapping (or list of mappings) supplies keys this mapping does not set.
                    let sources = value.items ?? [value]
                    for source in sources {
                        guard let more = source.entries else {
                            throw Diagnostic(file: file, at: source.position, "a << merge key needs a mapping or a list of mappings", fix: "merge an anchored mapping: <<: *defaults")
                        }
                        merged.append(contentsOf: more)
                    }
                } else {
                    entries.append(YAMLEntry(key: ks.string, keyPosition: position(k.mark), value: value))
                }
            }
            for entry in merged where !entries.contains(where: { $0.key == entry.key }) {
                entries.append(entry)
            }
            return YAMLNode(value: .mapping(entries), position: pos)
        }
    }

    static func diagnostic(for error: YamlError, file: String) -> Diagnostic {
        switch error {
        case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _), let .composer(context, problem, mark, _):
            if problem.contains("Maximum nesting level") {
                // libyaml stops before the tree exists, with its own wording (a C function name and a stray ")").
                return Diagnostic(file: file, at: position(mark), "nesting deeper than the YAML parser allows (1000 levels)",
                                  fix: "flatten the document")
            }
            let text = [context?.text, problem].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ": ")
            return Diagnostic(file: file, at: position(mark), "invalid YAML: \(text)", fix: "fix the YAML syntax at this position")
        case let .reader(problem, offset, _, yaml):
            var pos = SourcePosition(line: 1, column: 1)
            if let offset {
                let prefix = yaml.utf8.prefix(offset)
                pos.line = prefix.filter { $0 == 10 }.count + 1
                pos.column = (String(decoding: prefix, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).last?.unicodeScalars.count ?? 0) + 1
            }
            return Diagnostic(file: file, at: pos, "invalid YAML: \(problem)", fix: "remove control characters from the file")
        case let .duplicatedKeysInMapping(duplicates, context):
            return Diagnostic(file: file, at: position(context.mark),
                              "duplicate key\(duplicates.count > 1 ? "s" : "") \(duplicates.map { "\"\($0)\"" }.joined(separator: ", ")) in one mapping",
                              fix: "keep one of them")
        default:
            return Diagnostic(file: file, at: SourcePosition(line: 1, column: 1), "invalid YAML: \(error)", fix: "check the file with a YAML linter")
        }
    }

    static func invalidUTF8Position(_ data: Data) -> SourcePosition {
        // Find the first byte where decoding fails, and report its line and byte column.
        let bytes = [UInt8](data)
        var line = 1, lineStart = 0, i = 0
        while i < bytes.count {
            let b = bytes[i]
            let width: Int
            switch b {
            case 0..<0x80: width = 1
            case 0xC2...0xDF: width = 2
            case 0xE0...0xEF: width = 3
            case 0xF0...0xF4: width = 4
            default: return SourcePosition(line: line, column: i - lineStart + 1)
            }
            if i + width > bytes.count { return SourcePosition(line: line, column: i - lineStart + 1) }
            for j in 1..<width where bytes[i + j] & 0xC0 != 0x80 {
                return SourcePosition(line: line, column: i - lineStart + 1)
            }
            if b == 10 { line += 1; lineStart = i + 1 }
            i += width
        }
        return SourcePosition(line: line, column: 1)
    }
}

extension Diagnostic: Error {}
