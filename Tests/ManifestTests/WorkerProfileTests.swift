import Foundation
@testable import Manifest
import TestSupport
import Testing

/// The `worker:` section of a renderer profile (docs/workers.md): what it reads, and each mistake it refuses with
/// the line and the fix.
@Suite struct WorkerProfileTests {
    func load(_ worker: String, memory: String = "memory: {points: [{size: \"384*256\", infer_frames: 48, gb: 10}]}") -> (RendererProfile?, [String]) {
        let dir = TempDir("worker-profile")
        let path = dir.write("p.yaml", """
            name: w
            command: [render, "{output}"]
            \(memory)
            worker:
            \(worker)
            """)
        let (p, d) = ProfileLoader.load(path: path)
        return (p, d.map { $0.description.replacingOccurrences(of: dir.path + "/", with: "") })
    }

    @Test func aWorkerSectionIsRead() throws {
        let (p, d) = load("""
              command: [python3, "{profile_dir}/w.py", --offload, "{offload_model}", "{fp8:--fp8}", "--port={master_port}"]
              env: {A: "1"}
              load_settings: [offload_model, fp8]
              resident_gb: 12.5
              load_s: 90
              ready_timeout: 10m
              max_deaths: 5
            """)
        #expect(d.isEmpty, "\(d)")
        let w = try #require(p?.worker)
        #expect(w.command.count == 6 && w.env == ["A": "1"] && w.loadSettings == ["offload_model", "fp8"])
        #expect(w.residentGB == 12.5 && w.loadSeconds == 90 && w.readyTimeoutSeconds == 600 && w.maxDeaths == 5)
        let s = ClipSettings(size: FrameSize(width: 384, height: 256), numClip: 1, inferFrames: 48, sampleSteps: 4, onlineDecode: false,
                             offloadModel: true, fp8: false, seed: 1)
        #expect(w.loadKey(s, frame: s.size) == ["offload_model=True", "fp8=False"])
        #expect(p?.workerResidentGB(s) == 12.5 && p?.workerLoadSeconds == 90)
    }

    @Test func perClipPlaceholdersAreRefusedInTheWorkerCommand() {
        let (_, d) = load("""
              command: [python3, w.py, --image, "{image}", "{online_decode:--online}", "{extra_args}"]
              resident_gb: 4
            """)
        #expect(d == [
            "p.yaml:5:37: error: {image} is a per-clip setting and a worker serves many clips; list image under the worker's load_settings, or take it from each request's settings",
            "p.yaml:5:48: error: {online_decode:...} is a per-clip setting and a worker serves many clips; list online_decode under the worker's load_settings, or take it from each request's settings",
            "p.yaml:5:76: error: {extra_args} is a per-clip setting and a worker serves many clips; read extra_args from each request's settings",
        ])
    }

    @Test func aLoadSettingMakesItsPlaceholderUsable() {
        let (p, d) = load("""
              command: [python3, w.py, --size, "{size}"]
              load_settings: [size]
              resident_gb: 4
            """)
        #expect(d.isEmpty && p?.worker != nil, "\(d)")
    }

    @Test func mistakesGetTheirLineAndFix() {
        #expect(load("  command: [w.py]\n  load_settings: [image, ofload_model]\n  resident_gb: 4").1 == [
            "p.yaml:6:19: error: \"image\" cannot be a load setting; use settings a whole worker can be loaded with: offload_model, fp8, online_decode, size, width, height, infer_frames, sample_steps, num_clip, seed",
            "p.yaml:6:26: error: \"ofload_model\" cannot be a load setting; did you mean offload_model?",
        ])
        #expect(load("  command: python3 w.py\n  resident_gb: 4").1 == [
            "p.yaml:5:12: error: the worker's command must be a list of arguments, not a shell string; write it as a list, e.g. [python3, worker.py]",
        ])
        #expect(load("  command: [w.py]\n  ready_timeout: soon\n  resident_gb: 4").1 == [
            "p.yaml:6:18: error: ready_timeout must be a duration such as 600, \"90s\" or \"10m\"; write ready_timeout: 10m",
        ])
        // No resident memory anywhere: admission could not know what an idle worker holds.
        #expect(load("  command: [w.py]").1 == [
            "p.yaml:5:3: error: the worker has no resident memory: say how many GB an idle worker holds on its GPU (its weights); add resident_gb: under worker:, or use the memory model's resident_gb",
        ])
        #expect(load("  load_settings: [fp8]\n  resident_gb: 4").1 == ["p.yaml:5:3: error: worker has no command; add command: [program, args...] under worker:"])
        #expect(load("  comand: [w.py]\n  command: [w.py]\n  resident_gb: 4").1.first?.contains("comand") == true)
    }

    @Test func theShippedProfilesHaveWorkers() throws {
        for name in ["synthetic-dit", "liveavatar"] {
            let (p, d) = ProfileLoader.load(path: PackagePaths.renderers + "/\(name).yaml")
            #expect(d.filter { $0.severity == .error }.isEmpty, "\(d)")
            #expect(p?.worker != nil)
        }
        let (la, _) = ProfileLoader.load(path: PackagePaths.renderers + "/liveavatar.yaml")
        let fp8 = ClipSettings(size: FrameSize(width: 688, height: 368), numClip: 1, inferFrames: 48, sampleSteps: 4, onlineDecode: false,
                               offloadModel: true, fp8: true, seed: 1)
        #expect(la?.workerResidentGB(fp8) == 15.62)
        #expect(la?.worker?.loadKey(fp8, frame: fp8.size) == ["fp8=True"])
    }
}
