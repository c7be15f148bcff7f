@testable import Checkpoint
import Foundation
import Manifest
import Reports
import Testing

/// `status --json` writes its job list with `JobLineWriter`, not JSONEncoder: it must write the encoder's bytes.
@Suite struct JobLinesTests {
    static func attempt(_ n: Int, settingsJSON: String, full: Bool) -> AttemptRecord {
        AttemptRecord(id: Int64(n), jobID: "j", number: n, contentKey: "k", runID: 1, host: "node-\"7\"", executor: full ? .slurm : .local,
                      gpu: full ? 3 : nil, gpuUUID: nil, pid: 42, processStart: 9, processGroup: 42, settingsJSON: settingsJSON,
                      change: full ? "isolate, online_decode: true" : "", isolated: full, rung: full ? 2 : 0, startedAt: 1_796_075_501.2823558,
                      endedAt: full ? 1_796_075_611.5 : nil, exitStatus: full ? -9 : nil, signal: full ? 9 : nil,
                      classification: full ? .oom : nil, logPath: full ? "/tmp/o ut/.avatar-batch/logs/j.attempt-1.log" : nil,
                      stderrTail: full ? "torch.OutOfMemoryError: CUDA out of memory.\n\tTried \\ \u{1}\u{1f} ünï ☃ 🎬 /path" : nil,
                      peakGB: full ? 74.53 : nil, seconds: full ? 1e-05 : nil, slurmJobID: full ? "1234_5" : nil,
                      note: full ? "retried" : nil, workerID: full ? "w-1" : nil, predictedFrom: full ? "history: 3 observation(s)" : nil)
    }

    @Test func itWritesTheEncodersBytesForEveryFieldSetAndUnset() throws {
        let good = String(decoding: try JSONEncoder.sorted.encode(ClipSettings(size: FrameSize("688*368")!, numClip: 3, inferFrames: 48, sampleSteps: 4,
            onlineDecode: true, offloadModel: false, fp8: true, seed: 7, extraArgs: ["--x", "a/b \"c\""], reference: FrameSize("512*512"))), as: UTF8.self)
        let jobs: [(JobRecord, [AttemptRecord])] = [
            (JobRecord(id: "lesson-01", contentKey: "c", state: .succeeded, attemptCount: 2, retryFrom: 0, settingsJSON: good, output: "a/b.mp4",
                       outputDigest: "d", outputSize: 1, outputMTime: 2, predictedGB: 80, predictedSeconds: 125.25, observedPeakGB: .infinity,
                       observedSeconds: .nan, priority: 0, inManifest: true, reason: "line\nbreak", updatedAt: 0),
             [Self.attempt(1, settingsJSON: good, full: true), Self.attempt(2, settingsJSON: good, full: false),
              Self.attempt(3, settingsJSON: "not json", full: true)]),
            (JobRecord(id: "ü", contentKey: "", state: .pending, attemptCount: 0, retryFrom: 0, settingsJSON: "{}", output: "", outputDigest: nil,
                       outputSize: nil, outputMTime: nil, predictedGB: nil, predictedSeconds: nil, observedPeakGB: -0.0, observedSeconds: 1e300,
                       priority: 0, inManifest: false, reason: nil, updatedAt: 0), []),
        ]
        var writer = JobLineWriter()
        for (j, attempts) in jobs {
            var out: [UInt8] = []
            writer.append(j, attempts: attempts, to: &out)
            let expected = try JSONOutput.lineEncoder.encode(JobDocument(j, attempts: attempts))
            #expect(String(decoding: out, as: UTF8.self) == String(decoding: expected, as: UTF8.self))
            #expect((try? JSONSerialization.jsonObject(with: Data(out))) != nil, "not JSON")
        }
    }
}
