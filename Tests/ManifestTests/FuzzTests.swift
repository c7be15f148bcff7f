import Foundation
import Manifest
import TestSupport
import Testing

/// A seeded mutation fuzzer over the manifest loader: every example manifest, mutated thousands of ways, must
/// give a manifest or diagnostics, never a crash or a hang. A failure prints the seed and iteration to replay.
@Suite struct FuzzTests {
    static let fragments: [String] = [
        "&a ", "*a", "<<: *a\n", "[", "]", "{", "}", ": ", "- ", "\n  ", "\t", "\"", "'", "!!binary ", "!!python/object ",
        "? ", "%YAML 1.1\n", "---\n", "...\n", "\u{0}", "\u{FEFF}", "é", "$(id)", "`id`", "../../", "/etc/passwd", "999999999999999999999",
        "-1", "1e400", "null", "~", "true", "[[[[[[[[[[", "{a: {b: {c: ", "*b", "&b [*a, *a, *a, *a]\n",
    ]

    /// One mutation: flip a byte, delete a span, duplicate a line, or insert a YAML fragment.
    static func mutate(_ bytes: inout [UInt8], _ rng: inout SeededGenerator) {
        guard !bytes.isEmpty else { bytes = Array(fragments.randomElement(using: &rng)!.utf8); return }
        let at = Int.random(in: 0..<bytes.count, using: &rng)
        switch Int.random(in: 0..<4, using: &rng) {
        case 0: bytes[at] ^= UInt8.random(in: 1...255, using: &rng)
        case 1: bytes.removeSubrange(at..<min(bytes.count, at + Int.random(in: 1...40, using: &rng)))
        case 2:
            let lines = bytes.split(separator: 10, omittingEmptySubsequences: false)
            let line = lines.randomElement(using: &rng) ?? []
            bytes.insert(contentsOf: line + [10], at: at)
        default: bytes.insert(contentsOf: Array(fragments.randomElement(using: &rng)!.utf8), at: at)
        }
    }

    @Test(arguments: ["demo.yaml", "course-week.yaml"])
    func mutatedManifestsNeverCrashOrHang(_ name: String) throws {
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: PackagePaths.root + "/manifests/" + name)))
        let dir = TempDir("fuzz")
        try FileManager.default.createSymbolicLink(atPath: dir.path + "/demo-assets", withDestinationPath: PackagePaths.root + "/manifests/demo-assets")
        var options = LoadOptions(rendererSearchPath: [PackagePaths.renderers])
        options.requireEnvironment = false
        let seed: UInt64 = 20261124
        var rng = SeededGenerator(seed: seed ^ UInt64(name.utf8.count))
        var valid = 0
        let iterations = Int(ProcessInfo.processInfo.environment["AVATAR_BATCH_FUZZ_ITERATIONS"] ?? "") ?? 1500
        for iteration in 0..<iterations {
            var bytes = original
            for _ in 0..<Int.random(in: 1...6, using: &rng) { Self.mutate(&bytes, &rng) }
            let path = dir.path + "/m.yaml"
            FileManager.default.createFile(atPath: path, contents: Data(bytes))
            let result = ManifestLoader.load(path: path, options: options)
            // Every input yields a manifest or at least one error with a position.
            #expect(result.manifest != nil || result.diagnostics.contains { $0.severity == .error && $0.position.line >= 1 },
                    "seed \(seed) iteration \(iteration)")
            // And every error says what to do: the mutations walk most kinds of message the loader has.
            for d in result.diagnostics where d.severity == .error {
                #expect(!(d.fix ?? "").isEmpty, "no fix: \(d) (seed \(seed) iteration \(iteration))")
            }
            if result.manifest != nil { valid += 1 }
        }
        // The mutations are not so wild that nothing survives: some inputs stay valid.
        #expect(valid > 0)
    }
}
