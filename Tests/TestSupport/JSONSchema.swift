import Foundation

/// A JSON value, decoded strictly (a number is never a boolean).
public indirect enum JSONValue: Decodable, Equatable, Sendable {
    case null, bool(Bool), integer(Int64), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null } else if let b = try? c.decode(Bool.self) { self = .bool(b) } else if let i = try? c.decode(Int64.self) {
            self = .integer(i)
        } else if let d = try? c.decode(Double.self) { self = .number(d) } else if let s = try? c.decode(String.self) { self = .string(s) } else if let a = try? c.decode([JSONValue].self) {
            self = .array(a)
        } else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    public static func parse(_ data: Data) throws -> JSONValue { try JSONDecoder().decode(JSONValue.self, from: data) }
}

/// Checks documents against the JSON Schemas in docs/schemas/: the subset they use (type, enum, const, required,
/// properties, additionalProperties, items, minimum, and $ref to a $defs entry of the same or another file of the
/// folder). A keyword it does not know is an error, so a schema cannot silently check less than it says.
public struct SchemaValidator {
    let folder: URL
    private var files: [String: JSONValue] = [:]
    static let known: Set<String> = ["$schema", "$id", "title", "description", "$defs", "type", "enum", "const", "required", "properties",
                                     "additionalProperties", "items", "minimum", "$ref"]

    public init(folder: URL) { self.folder = folder }

    /// Every way `document` breaks the schema in `file`, as "path: what"; empty when it conforms.
    public mutating func errors(_ document: JSONValue, against file: String) throws -> [String] {
        let root = try load(file)
        var out: [String] = []
        try check(document, root, file: file, path: "$", into: &out)
        return out
    }

    private mutating func load(_ file: String) throws -> JSONValue {
        if let s = files[file] { return s }
        let s = try JSONValue.parse(Data(contentsOf: folder.appendingPathComponent(file)))
        files[file] = s
        return s
    }

    private mutating func check(_ v: JSONValue, _ schema: JSONValue, file: String, path: String, into out: inout [String]) throws {
        guard case let .object(s) = schema else { out.append("\(path): the schema is not an object"); return }
        for k in s.keys where !Self.known.contains(k) { out.append("\(path): the schema uses \(k), which this validator does not check") }
        if case let .string(ref)? = s["$ref"] {
            let parts = ref.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)
            let target = parts[0].isEmpty ? file : String(parts[0])
            var node = try load(target)
            for key in parts.count > 1 ? parts[1].split(separator: "/") : [] {
                guard case let .object(o) = node, let next = o[String(key)] else { out.append("\(path): unresolved $ref \(ref)"); return }
                node = next
            }
            try check(v, node, file: target, path: path, into: &out)
        }
        if let t = s["type"] {
            let allowed: [String]
            switch t {
            case let .string(one): allowed = [one]
            case let .array(many): allowed = many.compactMap { if case let .string(x) = $0 { return x } else { return nil } }
            default: allowed = []
            }
            if !allowed.contains(where: { Self.matches(v, $0) }) { out.append("\(path): \(Self.describe(v)) is not \(allowed.joined(separator: " or "))") }
        }
        if case let .array(options)? = s["enum"], !options.contains(v) { out.append("\(path): \(Self.describe(v)) is not one of the allowed values") }
        if let c = s["const"], c != v { out.append("\(path): \(Self.describe(v)) is not the constant the schema requires") }
        if let m = s["minimum"], let x = Self.number(v), let min = Self.number(m), x < min { out.append("\(path): \(x) is below the minimum \(min)") }
        if case let .object(o) = v {
            if case let .array(required)? = s["required"] {
                for case let .string(k) in required where o[k] == nil { out.append("\(path): required \(k) is missing") }
            }
            let props: [String: JSONValue]
            if case let .object(p)? = s["properties"] { props = p } else { props = [:] }
            for (k, child) in o {
                if let ps = props[k] {
                    try check(child, ps, file: file, path: "\(path).\(k)", into: &out)
                } else if let extra = s["additionalProperties"] {
                    if extra == .bool(false) { out.append("\(path): \(k) is not allowed") } else if case .object = extra {
                        try check(child, extra, file: file, path: "\(path).\(k)", into: &out)
                    }
                }
            }
        }
        if case let .array(items) = v, let schema = s["items"] {
            for (i, item) in items.enumerated() { try check(item, schema, file: file, path: "\(path)[\(i)]", into: &out) }
        }
    }

    static func number(_ v: JSONValue) -> Double? {
        switch v {
        case let .integer(i): return Double(i)
        case let .number(d): return d
        default: return nil
        }
    }

    static func matches(_ v: JSONValue, _ type: String) -> Bool {
        switch (type, v) {
        case ("null", .null), ("boolean", .bool), ("integer", .integer), ("number", .integer), ("number", .number), ("string", .string),
             ("array", .array), ("object", .object): return true
        case let ("integer", .number(d)): return d.rounded() == d
        default: return false
        }
    }

    static func describe(_ v: JSONValue) -> String {
        switch v {
        case .null: return "null"
        case let .bool(b): return "\(b)"
        case let .integer(i): return "\(i)"
        case let .number(d): return "\(d)"
        case let .string(s): return "\"\(s.prefix(40))\""
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}
