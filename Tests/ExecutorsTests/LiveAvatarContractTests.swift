import Foundation
import Manifest
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// avatar-batch's exact argv for the real liveavatar profile, fed to a parser rebuilt from the table of the real
/// script's options (Fixtures/liveavatar-parser-9c2c38d.json, recorded from upstream 9c2c38d by
/// bench/liveavatar/parser_table.py). A stand-in `torchrun` runs a stand-in entry script
/// (renderers/testkit/fake_liveavatar.py) that parses with Python's own argparse, checks what the real code needs
/// of its paths, and writes the video as the real code does (`<base>_temp.mp4`, then a move).
@Suite(.serialized) struct LiveAvatarContractTests {
    static let table = PackagePaths.root + "/Tests/ExecutorsTests/Fixtures/liveavatar-parser-9c2c38d.json"

    /// A Live Avatar checkout whose entry script is the stand-in, and a `torchrun` that drops its own options.
    static func checkout(_ dir: TempDir) throws -> (home: String, bin: String) {
        let home = dir.path + "/LiveAvatar"
        let table = try String(contentsOfFile: Self.table, encoding: .utf8)
        let fake = try String(contentsOfFile: PackagePaths.root + "/renderers/testkit/fake_liveavatar.py", encoding: .utf8)
        // The recorded option names go into the script as string literals: that is where avatar-batch looks for flags.
        let names = try JSONSerialization.jsonObject(with: Data(table.utf8)) as! [String: Any]
        let flags = (names["options"] as! [[String: Any]]).flatMap { $0["names"] as! [String] }.map { "\"\($0)\"" }.joined(separator: ", ")
        dir.write("LiveAvatar/minimal_inference/s2v_streaming_interact.py", fake + "\nRECORDED_FLAGS = [\(flags)]\n")
        dir.write("LiveAvatar/liveavatar/configs/s2v_causal_sft.yaml", "lora_rank: 128\n")
        for f in ["ckpt/Wan2.2-S2V-14B/config.json", "ckpt/Wan2.2-S2V-14B/diffusion_pytorch_model.safetensors.index.json",
                  "ckpt/Wan2.2-S2V-14B/models_t5_umt5-xxl-enc-bf16.pth", "ckpt/Wan2.2-S2V-14B/google/umt5-xxl/tokenizer_config.json",
                  "ckpt/Wan2.2-S2V-14B/Wan2.1_VAE.pth", "ckpt/Wan2.2-S2V-14B/wav2vec2-large-xlsr-53-english/config.json",
                  "ckpt/LiveAvatar/liveavatar.safetensors"] {
            dir.write("LiveAvatar/" + f, "{}")
        }
        let torchrun = dir.write("bin/torchrun", """
            #!/bin/sh
            # torchrun's own options come first, each as --name=value; the script and its arguments follow.
            while [ $# -gt 0 ]; do case "$1" in --*) shift ;; *) break ;; esac; done
            exec python3 "$@"
            """)
        chmod(torchrun, 0o755)
        return (home, dir.path + "/bin")
    }

    @Test func theRealParserAcceptsEveryArgvAndOutputsLandCleanly() throws {
        let dir = TempDir("la-contract")
        let (home, bin) = try Self.checkout(dir)
        // A 1280x720 PNG header is all validation reads; ffmpeg needs a real image, so the frames come from a real PNG.
        let png = try #require(FileManager.default.contents(atPath: PackagePaths.root + "/manifests/demo-assets/teacher.png"))
        dir.write("face.png", png)
        dir.write("a.wav", Media.wav(seconds: 1))
        let ledger = dir.path + "/ledger.jsonl"
        dir.write("m.yaml", """
            version: 1
            name: la
            output_dir: out
            renderer: liveavatar
            gpus: 1x141GB
            retry: {max_attempts: 1}
            defaults: {image: face.png, audio: a.wav, prompt: "a teacher", num_clip: 1}
            clips:
              - {id: dash, prompt: "-smiling teacher --save_file /tmp/evil"}
              - {id: fp8, fp8: true}
              - {id: plain}
              - {id: hang, prompt: "HANG here", timeout: 4s}
            """)
        let env = ["LIVEAVATAR_HOME": home, "PATH": bin + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? ""),
                   "FAKE_LIVEAVATAR_TABLE": Self.table, "FAKE_LIVEAVATAR_LEDGER": ledger]
        // --host-ram 0: the real renderer needs about 24 GB of host RAM to load, more than a CI machine may have.
        // --workers off: this is the contract of the cold command (torchrun and the script's parser); the warm
        // worker was run on an H200 (docs/benchmarks.md).
        let r = try CLI.run(["run", dir.path + "/m.yaml", "--grace", "1", "--host-ram", "0", "--workers", "off"], env: env)
        #expect(r.status == 1, "\(r.stdout)\n\(r.stderr)")  // the hanging clip times out, the others succeed
        let status = try CLI.run(["status", dir.path + "/m.yaml", "--json"], env: env)
        let jobs = (try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as! [String: Any])["jobs"] as! [[String: Any]]
        let byID = Dictionary(uniqueKeysWithValues: jobs.map { ($0["id"] as! String, $0) })
        #expect(classifications(byID["dash"]) == ["succeeded"])
        #expect(classifications(byID["fp8"]) == ["succeeded"])
        #expect(classifications(byID["plain"]) == ["succeeded"])
        #expect(classifications(byID["hang"]) == ["timeout"])

        // What the real parser made of avatar-batch's argv.
        let parsed = try String(contentsOfFile: ledger, encoding: .utf8).split(separator: "\n")
            .map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        let byPrompt = Dictionary(parsed.map { ($0["prompt"] as! String, $0) }, uniquingKeysWith: { a, _ in a })
        let dash = try #require(byPrompt["-smiling teacher --save_file /tmp/evil"])
        #expect((dash["save_file"] as? String)?.hasPrefix(dir.path + "/out/") == true)
        #expect(dash["lora_path_dmd"] as? String == home + "/ckpt/LiveAvatar/liveavatar.safetensors")
        #expect(dash["offload_model"] as? Bool == true && dash["fp8"] as? Bool == false && dash["enable_online_decode"] as? Bool == false)
        #expect(dash["sample_steps"] as? Int == 4 && dash["infer_frames"] as? Int == 48 && dash["size"] as? String == "688*368")
        #expect(parsed.contains { $0["fp8"] as? Bool == true })

        // Nothing but the three videos in output_dir: no partial output, no renderer's `_temp` file from the timeout.
        let left = try FileManager.default.contentsOfDirectory(atPath: dir.path + "/out").filter { $0 != ".avatar-batch" }.sorted()
        #expect(left == ["dash.mp4", "fp8.mp4", "plain.mp4"])
    }

    /// `--untrusted` and AVATAR_BATCH_TRUST=untrusted reach every command that loads a manifest.
    @Test func untrustedModeFromTheFlagOrTheEnvironment() throws {
        let dir = TempDir("untrusted")
        dir.write("face.png", Media.png)
        dir.write("a.wav", Media.wav(seconds: 1))
        dir.write("m.yaml", """
            version: 1
            renderer: {name: mine, command: [sh, -c, "echo owned"], sizes: ["384*256"]}
            defaults: {image: face.png, audio: a.wav, prompt: p, size: "384*256", num_clip: 1}
            clips:
              - {id: a}
            """)
        let m = dir.path + "/m.yaml"
        let expected = "an untrusted manifest may only name an installed renderer profile, not define one inline"
        #expect(try CLI.run(["validate", m]).status == 0)
        for (args, env) in [(["validate", m, "--untrusted"], [String: String]()), (["run", m], ["AVATAR_BATCH_TRUST": "untrusted"]),
                            (["plan", m], ["AVATAR_BATCH_TRUST": "untrusted"])] {
            let r = try CLI.run(args, env: env)
            #expect(r.status == 2 && r.stderr.contains(expected), "\(args): \(r.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/out"))
    }

    /// A binary copied anywhere, with nothing beside it and no AVATAR_BATCH_RENDERERS, knows the shipped profiles and
    /// unpacks the files they run.
    @Test func theBinaryWorksFromAnyDirectory() throws {
        let dir = TempDir("anywhere")
        let bin = dir.path + "/bin/avatar-batch"
        try FileManager.default.createDirectory(atPath: dir.path + "/bin", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: PackagePaths.binary, toPath: bin)
        dir.write("work/face.png", Media.png)
        dir.write("work/a.wav", Media.wav(seconds: 1))
        dir.write("work/m.yaml", """
            version: 1
            renderer: synthetic-dit
            defaults: {image: face.png, prompt: p, num_clip: 1}
            clips:
              - {id: a, audio: a.wav}
            """)
        let env = ["AVATAR_BATCH_RENDERERS": "", "HOME": dir.path + "/home", "XDG_CACHE_HOME": ""]
        let r = try CLI.runProgram(bin, ["validate", dir.path + "/work/m.yaml"], env: env)
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        let cache = dir.path + "/home/.cache/avatar-batch"
        let unpacked = try FileManager.default.contentsOfDirectory(atPath: cache).filter { $0.hasPrefix("renderers-") }
        #expect(unpacked.count == 1)
        #expect(FileManager.default.fileExists(atPath: cache + "/" + (unpacked.first ?? "") + "/synthetic-dit/synthetic_dit.py"))
    }
}
