import Foundation
import Manifest
import TestSupport
import Testing

/// A manifest text and the exact diagnostics it must produce.
struct ErrorCase: Sendable, CustomTestStringConvertible {
    var name: String
    var yaml: String
    var expected: [String]
    var testDescription: String { name }
}

@Suite struct ManifestLoaderTests {
    static let header = """
        version: 1
        renderer: preview
        defaults:
          image: face.png
          prompt: "A teacher"

        """

    static let cases: [ErrorCase] = [
        ErrorCase(name: "unsupported size", yaml: header + """
            clips:
              - id: a
                audio: a.wav
                size: "700*400"
            """, expected: [#"m.yaml:9:11: error: size "700*400" is not supported by preview; use one of 1280*720, 720*1280, 1280*704, 704*1280, 1024*704, 704*1024, 832*480, 480*832, 720*400, 704*384, 688*368, 384*256"#]),
        ErrorCase(name: "infer_frames not a multiple of 4", yaml: header + """
            clips:
              - id: a
                audio: a.wav
                infer_frames: 50
            """, expected: ["m.yaml:9:19: error: infer_frames 50 is not a multiple of 4; use 48 or 52"]),
        ErrorCase(name: "unknown key with suggestion", yaml: header + """
            clips:
              - id: a
                audio: a.wav
                sample_step: 4
            """, expected: [#"m.yaml:9:5: error: unknown key "sample_step" in clip; did you mean "sample_steps"?"#]),
        ErrorCase(name: "duplicate id", yaml: header + """
            clips:
              - id: a
                audio: a.wav
              - id: a
                audio: a.wav
            """, expected: [#"m.yaml:9:9: error: duplicate clip id "a" (first at m.yaml:7); give each clip its own id"#]),
        ErrorCase(name: "output escapes output_dir", yaml: header + """
            clips:
              - id: a
                audio: a.wav
                output: ../../etc/x.mp4
            """, expected: [#"m.yaml:9:13: error: output "../../etc/x.mp4" leaves output_dir or has an empty part; outputs stay inside output_dir; use a file name inside output_dir, such as a.mp4"#]),
        ErrorCase(name: "absolute output", yaml: header + """
            clips:
              - id: a
                audio: a.wav
                output: /tmp/x.mp4
            """, expected: [#"m.yaml:9:13: error: output "/tmp/x.mp4" is an absolute path; outputs stay inside output_dir; use a file name inside output_dir, such as a.mp4"#]),
        ErrorCase(name: "missing audio file", yaml: header + """
            clips:
              - id: a
                audio: nope.wav
            """, expected: [#"m.yaml:8:12: error: audio "nope.wav" does not exist; check the path (relative to m.yaml)"#]),
        ErrorCase(name: "empty prompt", yaml: header + """
            clips:
              - id: a
                audio: a.wav
                prompt: "  "
            """, expected: ["m.yaml:9:13: error: prompt is empty; describe the speaker and scene"]),
        ErrorCase(name: "bad id", yaml: header + """
            clips:
              - id: "lesson 1/x"
                audio: a.wav
            """, expected: [#"m.yaml:7:9: error: clip id "lesson 1/x" may use only letters, digits, '.', '_' and '-' (at most 128, not starting with '-'); rename it, e.g. "lesson-1-x""#]),
        ErrorCase(name: "num_clip zero", yaml: header + """
            clips:
              - id: a
                audio: a.wav
                num_clip: 0
            """, expected: ["m.yaml:9:15: error: num_clip 0 is out of range; use a value from 1 to 100000"]),
        ErrorCase(name: "online_decode word", yaml: header + """
            clips:
              - id: a
                audio: a.wav
                online_decode: sometimes
            """, expected: [#"m.yaml:9:20: error: online_decode must be true, false or auto, not "sometimes"; write online_decode: true, false or auto"#]),
        ErrorCase(name: "clip without audio", yaml: header + """
            clips:
              - id: a
            """, expected: ["m.yaml:7:5: error: clip has no audio; add audio: path/to/speech.wav"]),
        ErrorCase(name: "unknown renderer", yaml: """
            version: 1
            renderer: previw
            clips:
              - {id: a, audio: a.wav, image: face.png, prompt: x}
            """, expected: [#"m.yaml:2:11: error: unknown renderer "previw"; did you mean "preview"?"#]),
        ErrorCase(name: "no version", yaml: """
            renderer: preview
            clips:
              - {id: a, audio: a.wav, image: face.png, prompt: x}
            """, expected: ["m.yaml:1:1: error: the manifest has no version; add version: 1 at the top"]),
        ErrorCase(name: "YAML syntax", yaml: """
            version: 1
            renderer: preview
            clips: [a, b
            """, expected: ["m.yaml:4:1: error: invalid YAML: while parsing a flow sequence: did not find expected ',' or ']'; fix the YAML syntax at this position"]),
        ErrorCase(name: "bad retry rung", yaml: header + """
            retry: {max_attempts: 3, on_oom: [isolate, shrink]}
            clips:
              - {id: a, audio: a.wav}
            """, expected: [#"m.yaml:6:44: error: retry rung "shrink" is not known; use isolate or a map of settings such as {online_decode: true}"#]),
        ErrorCase(name: "bad gpus", yaml: header + """
            gpus: 4xlots
            clips:
              - {id: a, audio: a.wav}
            """, expected: [#"m.yaml:6:7: error: gpus: "4xlots" is not a GPU index or an inventory entry like 4x24GB; use auto, indices like 0,2, or an inventory like 4x24GB,2x80GB"#]),
        ErrorCase(name: "several problems sorted by position", yaml: header + """
            clips:
              - id: a
                audio: a.wav
                seed: x
                infer_frames: 3
            """, expected: [
                "m.yaml:9:11: error: seed must be a whole number, not \"x\"; write digits only, e.g. seed: 4",
                "m.yaml:10:19: error: infer_frames 3 is out of range; use a value from 4 to 1024",
            ]),
    ]

    static func fixture() -> TempDir {
        let dir = TempDir()
        dir.write("face.png", Media.png)
        dir.write("a.wav", Media.wav(seconds: 2))
        return dir
    }

    /// Loads `yaml` as DIR/m.yaml; diagnostics name files relative to DIR, as a user in DIR would see them.
    static func load(_ dir: TempDir, _ yaml: String, name: String = "m.yaml") -> LoadResult {
        dir.write(name, yaml)
        var o = LoadOptions(rendererSearchPath: [PackagePaths.renderers])
        o.requireEnvironment = false
        var result = ManifestLoader.load(path: dir.path + "/" + name, options: o)
        for i in result.diagnostics.indices where result.diagnostics[i].file.hasPrefix(dir.path + "/") {
            result.diagnostics[i].file = String(result.diagnostics[i].file.dropFirst(dir.path.count + 1))
            result.diagnostics[i].message = result.diagnostics[i].message.replacingOccurrences(of: dir.path + "/", with: "")
        }
        return result
    }

    @Test(arguments: cases)
    func reportsErrorsWithPositionAndFix(_ c: ErrorCase) {
        let dir = Self.fixture()
        let result = Self.load(dir, c.yaml)
        #expect(result.manifest == nil)
        #expect(result.diagnostics.map(\.description) == c.expected)
    }

    @Test func validManifestResolvesDefaultsAndAuto() throws {
        let dir = Self.fixture()
        let result = Self.load(dir, Self.header + """
            clips:
              - id: a
                audio: a.wav
                num_clip: auto
              - id: b
                audio: a.wav
                size: "688*368"
                num_clip: 500
                online_decode: auto
            """)
        let m = try #require(result.manifest, "\(result.diagnostics)")
        #expect(m.clips.map(\.id) == ["a", "b"])
        // 2 s of audio at 25 fps over 48-frame clips: ceil(50 / 48) = 2 clips.
        #expect(m.clips[0].settings.numClip == 2)
        #expect(m.clips[0].settings.onlineDecode == false)
        // 500 clips is above preview's auto_online_decode_clips (100): online decode.
        #expect(m.clips[1].settings.onlineDecode == true)
        #expect(m.clips[0].output == "a.mp4")
        #expect(m.clips[0].image == dir.path + "/face.png")
        #expect(m.outputDir == dir.path + "/out/m")
    }

    @Test func includesClipsFromAndMergeKeys() throws {
        let dir = Self.fixture()
        dir.write("lessons/one.wav", Media.wav(seconds: 1))
        dir.write("lessons/two words.wav", Media.wav(seconds: 1))
        dir.write("more/part.yaml", """
            defaults: {size: "688*368"}
            clips:
              - {id: inc, audio: ../a.wav}
            """)
        let result = Self.load(dir, Self.header + """
            base: &base {num_clip: 3}
            """.replacingOccurrences(of: "base: &base {num_clip: 3}", with: "") + """
            include: [more/part.yaml]
            clips_from:
              - audio: "lessons/*.wav"
                prompt: "From a glob"
            clips:
              - &c1 {id: x, audio: a.wav, num_clip: 3}
              - {<<: *c1, id: y}
            """)
        let m = try #require(result.manifest, "\(result.diagnostics)")
        #expect(m.clips.map(\.id) == ["x", "y", "one", "two_words", "inc"])
        #expect(m.clips[1].settings.numClip == 3)
        #expect(m.clips[2].prompt == "From a glob")
        #expect(m.clips[4].settings.size.description == "688*368")
        #expect(m.clips[4].file == dir.path + "/more/part.yaml")
    }

    @Test func includeCycleIsAnError() {
        let dir = Self.fixture()
        dir.write("a.yaml", "include: [b.yaml]\n")
        dir.write("b.yaml", "include: [a.yaml]\n")
        let result = Self.load(dir, Self.header + "include: [a.yaml]\n")
        #expect(result.diagnostics.map(\.description).contains(#"b.yaml:1:11: error: include "a.yaml" forms a cycle; remove the include that leads back to this file"#))
    }

    @Test func aliasBombIsRejectedNotExpanded() {
        let dir = Self.fixture()
        var yaml = "version: 1\nrenderer: preview\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for i in 1...12 { yaml += "a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ") + "]\n" }
        yaml += "clips: *a12\n"
        // The walk stops at its budget: the error below can only come from that, so no clock is needed.
        let result = Self.load(dir, yaml)
        #expect(result.diagnostics.count == 1)
        #expect(result.diagnostics.first?.message.contains("expands to more than 2000000 values") == true)
    }

    @Test func deepNestingIsRejected() {
        let dir = Self.fixture()
        let yaml = "version: 1\nx: " + String(repeating: "[", count: 100) + String(repeating: "]", count: 100) + "\n"
        let result = Self.load(dir, yaml)
        #expect(result.diagnostics.first?.message == "nesting deeper than 64 levels")
    }

    @Test func nonScalarKeyIsRejected() {
        let dir = Self.fixture()
        let result = Self.load(dir, "version: 1\n? [a, b]\n: 1\n")
        #expect(result.diagnostics.map(\.description) == ["m.yaml:2:3: error: mapping keys must be plain words, not a list; write the key as a string"])
    }

    @Test func invalidUTF8NamesTheByte() {
        let dir = Self.fixture()
        var data = Data("version: 1\nname: caf".utf8)
        data.append(0xE9)
        data.append(contentsOf: Array("\n".utf8))
        dir.write("m.yaml", data)
        let result = ManifestLoader.load(path: dir.path + "/m.yaml")
        #expect(result.diagnostics.map(\.message) == ["file is not valid UTF-8"])
        #expect(result.diagnostics.first?.position == SourcePosition(line: 2, column: 10))
    }

    @Test func oversizedFileIsRejected() {
        let dir = Self.fixture()
        var o = LoadOptions()
        o.limits.maxBytes = 100
        dir.write("m.yaml", String(repeating: "# padding\n", count: 20))
        let result = ManifestLoader.load(path: dir.path + "/m.yaml", options: o)
        #expect(result.diagnostics.first?.message == "file is 200 bytes, over the 100-byte limit")
    }

    @Test func symlinkInOutputDirIsRejected() throws {
        let dir = Self.fixture()
        try FileManager.default.createDirectory(atPath: dir.path + "/out/m", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: dir.path + "/out/m/sub", withDestinationPath: "/tmp")
        let result = Self.load(dir, Self.header + "clips:\n  - {id: a, audio: a.wav, output: sub/a.mp4}\n")
        #expect(result.diagnostics.first?.message.contains("passes through the symbolic link") == true)
    }

    @Test func environmentVariablesOfTheRendererAreRequired() {
        let dir = Self.fixture()
        dir.write("m.yaml", """
            version: 1
            renderer: liveavatar
            clips:
              - {id: a, audio: a.wav, image: face.png, prompt: x}
            """)
        var o = LoadOptions(rendererSearchPath: [PackagePaths.renderers])
        o.environment = [:]
        let result = ManifestLoader.load(path: dir.path + "/m.yaml", options: o)
        #expect(result.diagnostics.map(\.message) == ["renderer liveavatar reads $LIVEAVATAR_HOME, which is not set"])
    }

    @Test(arguments: ["demo.yaml", "course-week.yaml"])
    func exampleManifestsValidate(_ name: String) throws {
        let path = PackagePaths.root + "/manifests/" + name
        var o = LoadOptions(rendererSearchPath: [PackagePaths.renderers])
        o.requireEnvironment = false
        let result = ManifestLoader.load(path: path, options: o)
        #expect(result.manifest != nil, "\(result.diagnostics)")
    }
}

/// `status MANIFEST` finds the store from the manifest's name and output_dir alone; it must find the full load's.
@Suite struct StatePathTests {
    @Test func theQuickStorePathIsTheFullLoadsForEveryShapeOfManifest() throws {
        let d = TempDir()
        d.write("face.png", Media.png)
        d.write("a.wav", Media.wav(seconds: 1))
        let clips = "renderer: preview\ndefaults: {image: face.png, prompt: p, audio: a.wav}\nclips:\n  - id: a\n"
        let cases = [
            "version: 1\n" + clips,
            "version: 1\nname: week-3\n" + clips,
            "version: 1\nname: week-3\noutput_dir: ../renders/x/..\n" + clips,
            "version: 1\noutput_dir: \"/tmp/abs out\"\n" + clips,
            "version: 1\nname: n\noutput_dir: 'rel'\n" + clips,
        ]
        for (i, text) in cases.enumerated() {
            let path = d.write("sub/m\(i).yaml", text)
            let full = try #require(ManifestLoader.load(path: path, options: LoadOptions(checkFiles: false)).manifest, "\(text)")
            #expect(ManifestLoader.statePath(path: path) == full.defaultStatePath, "\(text)")
        }
        // Keys that are not plain text, or a file that does not parse: no quick answer, the full load says why.
        for text in ["version: 1\noutput_dir: [a]\n" + clips, "version: 1\nname:\n" + clips, "version: 1\nname: [\n", "- a\n"] {
            #expect(ManifestLoader.statePath(path: d.write("bad.yaml", text)) == nil, "\(text)")
        }
    }
}

@Suite struct StatePathCacheTests {
    @Test func aRememberedStorePathHoldsOnlyWhileTheManifestIsUnchanged() throws {
        let d = TempDir()
        let cache = StatePathCache(folder: d.path + "/cache")
        let clips = "renderer: preview\nclips:\n  - {id: a, image: f.png, audio: a.wav, prompt: p}\n"
        let path = d.write("m.yaml", "version: 1\nname: one\n" + clips)
        let first = try #require(cache.statePath(manifest: path))
        #expect(first == ManifestLoader.statePath(path: path))
        // Remembered: one entry, and it answers.
        let entries = try FileManager.default.contentsOfDirectory(atPath: d.path + "/cache")
        #expect(entries.count == 1)
        #expect(cache.statePath(manifest: path) == first)
        // An entry for this file with another identity is not used: an edited manifest is read again.
        try "version: 1\nname: two\noutput_dir: elsewhere\n".appending(clips).write(toFile: path, atomically: true, encoding: .utf8)
        let second = try #require(cache.statePath(manifest: path))
        #expect(second != first && second == ManifestLoader.statePath(path: path) && second.contains("/elsewhere/"))
        // A damaged entry is ignored and replaced.
        try "v1\ngarbage".write(toFile: d.path + "/cache/" + entries[0], atomically: true, encoding: .utf8)
        #expect(cache.statePath(manifest: path) == second)
        // A cache folder that cannot be made: the answer still comes, nothing is remembered.
        d.write("file", "x")
        #expect(StatePathCache(folder: d.path + "/file/cache").statePath(manifest: path) == second)
    }
}
