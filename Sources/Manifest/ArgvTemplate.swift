/// Expands a profile's argv template for one job. Each template entry becomes at most one argv entry
/// (`{extra_args}` alone in an entry becomes one entry per extra argument), so no value is ever split
/// or interpreted by a shell.
///
/// - `{name}` is replaced by the value of `name`.
/// - `{env.NAME}` is the orchestrator's environment variable NAME (validation fails when it is unset).
/// - `{flag:TEXT}` yields TEXT when the boolean setting `flag` is true and nothing when false; an entry
///   that is only a false conditional is dropped.
public enum ArgvTemplate {
    /// Placeholders with a value.
    public static let valuePlaceholders: Set<String> = [
        "image", "audio", "prompt", "size", "width", "height", "num_clip", "infer_frames", "sample_steps", "seed",
        "output", "workdir", "master_port", "profile_dir", "clip_id", "offload_model", "online_decode", "fp8",
        "audio_seconds", "gpu",
    ]
    /// Placeholders usable as `{flag:TEXT}`.
    public static let conditionalPlaceholders: Set<String> = ["online_decode", "offload_model", "fp8"]

    /// One problem in a template entry.
    public struct Problem: Sendable, Hashable {
        public var index: Int
        public var message: String
        public var fix: String
    }

    /// Checks every placeholder of a template; returns the problems found.
    public static func check(_ template: [String], allowed: Set<String> = valuePlaceholders, perClip: String? = nil) -> [Problem] {
        var problems: [Problem] = []
        for (i, entry) in template.enumerated() {
            for token in tokens(entry) {
                guard case let .placeholder(name, conditional) = token else { continue }
                if conditional != nil {
                    if conditionalPlaceholders.contains(name) && !allowed.contains(name) {
                        problems.append(Problem(index: i, message: "{\(name):...} is a per-clip setting\(perClip.map { " " + $0 } ?? "")",
                                                fix: "list \(name) under the worker's load_settings, or take it from each request's settings"))
                    } else if !conditionalPlaceholders.contains(name) {
                        problems.append(Problem(index: i, message: "\"{\(name):...}\" is not a boolean setting",
                                                fix: "conditionals take one of \(conditionalPlaceholders.sorted().joined(separator: ", "))"))
                    }
                } else if name == "extra_args" {
                    if let perClip {
                        problems.append(Problem(index: i, message: "{extra_args} is a per-clip setting \(perClip)",
                                                fix: "read extra_args from each request's settings"))
                    } else if entry != "{extra_args}" {
                        problems.append(Problem(index: i, message: "{extra_args} must stand alone in its entry",
                                                fix: "make \"{extra_args}\" a list entry of its own"))
                    }
                } else if name.hasPrefix("env.") {
                    if name.count <= 4 { problems.append(Problem(index: i, message: "{env.} needs a variable name", fix: "write it like {env.HOME}")) }
                } else if valuePlaceholders.contains(name) && !allowed.contains(name) {
                    problems.append(Problem(index: i, message: "{\(name)} is a per-clip setting\(perClip.map { " " + $0 } ?? "")",
                                            fix: "list \(name) under the worker's load_settings, or take it from each request's settings"))
                } else if !valuePlaceholders.contains(name) {
                    var fix = "use one of the placeholders in docs/manifest.md, or {{ and }} for literal braces"
                    if let s = didYouMean(name, among: Array(valuePlaceholders)) { fix = "did you mean {\(s)}?" }
                    problems.append(Problem(index: i, message: "unknown placeholder {\(name)}", fix: fix))
                }
            }
        }
        return problems
    }

    /// The `env.NAME` variables a template reads.
    public static func environmentNames(_ template: [String]) -> [String] {
        var names: [String] = []
        for entry in template {
            for case let .placeholder(name, nil) in tokens(entry) where name.hasPrefix("env.") {
                names.append(String(name.dropFirst(4)))
            }
        }
        return names
    }

    /// Expands the template with the given values and flags.
    public static func expand(_ template: [String], values: [String: String], flags: [String: Bool], extraArgs: [String]) -> [String] {
        var argv: [String] = []
        for entry in template {
            if entry == "{extra_args}" {
                argv.append(contentsOf: extraArgs)
                continue
            }
            var out = ""
            var onlyFalseConditionals = true
            var sawConditional = false
            for token in tokens(entry) {
                switch token {
                case let .text(t):
                    out += t
                    onlyFalseConditionals = false
                case let .placeholder(name, conditional?):
                    sawConditional = true
                    if flags[name] == true {
                        out += conditional
                        onlyFalseConditionals = false
                    }
                case let .placeholder(name, nil):
                    out += values[name] ?? ""
                    onlyFalseConditionals = false
                }
            }
            if sawConditional && onlyFalseConditionals { continue }
            argv.append(out)
        }
        return argv
    }

    enum Token: Equatable {
        case text(String)
        case placeholder(String, conditional: String?)
    }

    /// Splits an entry into text and `{...}` placeholders; `{{` and `}}` are literal braces.
    static func tokens(_ entry: String) -> [Token] {
        var result: [Token] = []
        var text = ""
        var i = entry.startIndex
        while i < entry.endIndex {
            let c = entry[i]
            let next = entry.index(after: i)
            if c == "{", next < entry.endIndex, entry[next] == "{" {
                text.append("{"); i = entry.index(after: next); continue
            }
            if c == "}", next < entry.endIndex, entry[next] == "}" {
                text.append("}"); i = entry.index(after: next); continue
            }
            if c == "{", let close = entry[next...].firstIndex(of: "}") {
                let inner = String(entry[next..<close])
                let name: String, conditional: String?
                if let colon = inner.firstIndex(of: ":") {
                    name = String(inner[..<colon])
                    conditional = String(inner[inner.index(after: colon)...])
                } else {
                    name = inner
                    conditional = nil
                }
                if !name.isEmpty && name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == ".") }) {
                    if !text.isEmpty { result.append(.text(text)); text = "" }
                    result.append(.placeholder(name, conditional: conditional))
                    i = entry.index(after: close)
                    continue
                }
            }
            text.append(c)
            i = next
        }
        if !text.isEmpty { result.append(.text(text)) }
        return result
    }
}
