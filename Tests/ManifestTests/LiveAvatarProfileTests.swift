import Foundation
import Manifest
import TestSupport
import Testing

/// A Live Avatar checkout as the profile expects it: the entry script (whose parser declares `flags`), the training
/// config and every checkpoint file, empty.
func liveAvatarHome(_ dir: TempDir, flags: [String] = ["--enable_online_decode", "--fp8"], missing: [String] = []) -> String {
    let home = dir.path + "/LiveAvatar"
    let parser = (["--size", "--prompt", "--offload_model"] + flags).map { "parser.add_argument(\"\($0)\")" }.joined(separator: "\n")
    var files = [
        "minimal_inference/s2v_streaming_interact.py": parser,
        "liveavatar/configs/s2v_causal_sft.yaml": "lora_rank: 128\n",
    ]
    for f in ["ckpt/Wan2.2-S2V-14B/config.json", "ckpt/Wan2.2-S2V-14B/diffusion_pytorch_model.safetensors.index.json",
              "ckpt/Wan2.2-S2V-14B/models_t5_umt5-xxl-enc-bf16.pth", "ckpt/Wan2.2-S2V-14B/google/umt5-xxl/tokenizer_config.json",
              "ckpt/Wan2.2-S2V-14B/Wan2.1_VAE.pth", "ckpt/Wan2.2-S2V-14B/wav2vec2-large-xlsr-53-english/config.json",
              "ckpt/LiveAvatar/liveavatar.safetensors"] {
        files[f] = "{}"
    }
    for (path, text) in files where !missing.contains(path) { dir.write("LiveAvatar/" + path, text) }
    return home
}

@Suite struct LiveAvatarProfileTests {
    /// The first four are the frames the real code rendered on the H200 from a 1280x720 image (docs/liveavatar.md);
    /// the others are what upstream's `get_size_less_than_area` returns, run in Python on the same inputs.
    @Test(arguments: [
        ("688*368", 1280, 720, "640*384"), ("704*384", 1280, 720, "704*384"), ("384*256", 1280, 720, "384*256"),
        ("480*832", 1280, 720, "832*448"), ("688*368", 368, 688, "384*640"), ("688*368", 200, 100, "256*128"),
        ("1280*720", 1920, 1080, "1280*704"), ("384*256", 720, 720, "256*256"),
    ])
    func framesAreFittedAsLiveAvatarFitsThem(_ size: String, _ w: Int, _ h: Int, _ frame: String) {
        #expect(FrameFit.fit(image: FrameSize(width: w, height: h), area: FrameSize(size)!.pixels).description == frame)
    }

    @Test func imageSizeIsReadFromPNGAndJPEGHeaders() {
        let dir = TempDir()
        var png = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52])
        png.append(contentsOf: [0, 0, 0x05, 0x00, 0, 0, 0x02, 0xD0, 8, 2, 0, 0, 0])  // 1280 x 720
        // SOI, an APP0 segment of 16 bytes, then SOF0: length 17, precision 8, height 720, width 1280.
        let jpeg = Data([0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10] + Array(repeating: 0, count: 14)
                        + [0xFF, 0xC0, 0x00, 0x11, 0x08, 0x02, 0xD0, 0x05, 0x00, 0x03] + Array(repeating: 0, count: 12))
        #expect(MediaSniffer.imageSize(at: dir.write("a.png", png)) == FrameSize(width: 1280, height: 720))
        #expect(MediaSniffer.imageSize(at: dir.write("a.jpg", jpeg)) == FrameSize(width: 1280, height: 720))
        #expect(MediaSniffer.imageSize(at: dir.write("t.png", Data(png.prefix(20)))) == nil)
    }

    static func load(_ dir: TempDir, _ clip: String, home: String, retry: String = "") -> LoadResult {
        var png = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52])
        png.append(contentsOf: [0, 0, 0x05, 0x00, 0, 0, 0x02, 0xD0, 8, 2, 0, 0, 0])
        dir.write("face.png", png)
        dir.write("a.wav", Media.wav(seconds: 1))
        dir.write("intro+outro.wav", Media.wav(seconds: 1))
        dir.write("m.yaml", """
            version: 1
            renderer: liveavatar
            \(retry)
            defaults: {image: face.png, audio: a.wav, prompt: "a teacher", num_clip: 1}
            clips:
              - \(clip)
            """)
        var o = LoadOptions(rendererSearchPath: [PackagePaths.renderers])
        o.environment = ["LIVEAVATAR_HOME": home]
        return ManifestLoader.load(path: dir.path + "/m.yaml", options: o)
    }

    @Test func aDefaultClipValidatesWithItsFittedFrame() throws {
        let dir = TempDir()
        let result = Self.load(dir, "{id: a}", home: liveAvatarHome(dir))
        let m = try #require(result.manifest, "\(result.diagnostics)")
        let s = m.clips[0].settings
        #expect(s.offloadModel && !s.onlineDecode && s.sampleSteps == 4 && s.inferFrames == 48)
        #expect(s.reference == FrameSize(width: 1280, height: 720))
        #expect(m.renderer.renderedFrame(s) == FrameSize(width: 640, height: 384))
    }

    /// Each setting the single-GPU code cannot honour is refused at validation, at its line, with the fix.
    @Test(arguments: [
        ("{id: a, sample_steps: 5}", "m.yaml:6:27: error: sample_steps 5 is not supported by liveavatar; use 4"),
        ("{id: a, infer_frames: 32}", "m.yaml:6:27: error: infer_frames 32 is not a multiple of 12: liveavatar denoises in blocks of 12 frames and leaves the rest of every clip undenoised; use 24 or 36"),
        ("{id: a, offload_model: false}", "m.yaml:6:28: error: offload_model false is not supported by liveavatar on one GPU (it fails after all the denoising); set offload_model: true, or remove it to use the profile's default"),
        ("{id: a, size: \"480*832\"}", "m.yaml:6:19: error: size 480*832 renders 832x448 frames from this 1280x720 image, 1456 tokens a latent frame, over liveavatar's limit of 1120; use size 720*400 or smaller"),
        ("{id: a, audio: intro+outro.wav}", "m.yaml:6:20: error: audio path \"intro+outro.wav\" contains \"+\", which liveavatar reads as a separator between several files; rename or link the file to a path without \"+\""),
    ])
    func refusedSettings(_ clip: String, _ rendered: String) {
        let dir = TempDir()
        let result = Self.load(dir, clip, home: liveAvatarHome(dir))
        #expect(result.diagnostics.map { $0.description.replacingOccurrences(of: dir.path + "/", with: "") } == [rendered])
    }

    @Test func aCheckoutWithoutAFlagRefusesTheClipAndTheRungThatNeedIt() {
        let dir = TempDir()
        let home = liveAvatarHome(dir, flags: ["--enable_online_decode"])
        let result = Self.load(dir, "{id: a, fp8: true}", home: home, retry: "retry: {on_oom: [isolate, {fp8: true}]}")
        let source = home + "/minimal_inference/s2v_streaming_interact.py"
        #expect(result.diagnostics.map(\.message) == [
            "retry rung sets fp8: true, but this liveavatar checkout has no --fp8 (\(source))",
            "fp8 needs --fp8, which this liveavatar checkout does not have (\(source))",
        ])
        // The built-in ladder (isolate, online decode, offload) keeps only what this checkout can do.
        let oldDir = TempDir()
        let loaded = Self.load(dir, "{id: a}", home: liveAvatarHome(oldDir, flags: []))
        #expect(loaded.manifest?.retry.onOOM == [.isolate, .change(SettingsChange(offloadModel: true))])
    }

    @Test func aMissingCheckpointFileIsNamed() {
        let dir = TempDir()
        let home = liveAvatarHome(dir, missing: ["ckpt/LiveAvatar/liveavatar.safetensors"])
        let result = Self.load(dir, "{id: a}", home: home)
        #expect(result.diagnostics.map(\.message) == ["renderer liveavatar needs \(home)/ckpt/LiveAvatar/liveavatar.safetensors, which does not exist"])
        #expect(result.diagnostics.first?.fix == "put it where the profile expects it (see the profile's comments), or point $LIVEAVATAR_HOME at a checkout that has it")
    }

    /// Every path the profile passes is absolute, and every value is passed as --flag=value (a prompt or path
    /// starting with '-' can never be read as an option).
    @Test func theCommandPassesAbsolutePathsAndValuesAfterEquals() throws {
        let (profile, diags) = ProfileLoader.load(path: PackagePaths.renderers + "/liveavatar.yaml")
        let p = try #require(profile, "\(diags)")
        #expect(p.command.contains("--lora_path_dmd={env.LIVEAVATAR_HOME}/ckpt/LiveAvatar/liveavatar.safetensors"))
        #expect(!p.command.contains("Quark-Vision/Live-Avatar"))
        for placeholder in ["{prompt}", "{image}", "{audio}", "{output}", "{size}", "{seed}"] {
            let entry = try #require(p.command.first { $0.contains(placeholder) })
            #expect(entry.hasPrefix("--") && entry.contains("=" + placeholder), "\(entry)")
        }
    }
}
