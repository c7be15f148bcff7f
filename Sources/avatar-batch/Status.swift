import ArgumentParser
import Checkpoint
import Executors
import Foundation
import Manifest

/// Where the store is: --state, or the manifest's output_dir.
struct StoreLocation: ParsableArguments {
    @Argument(help: "The manifest whose batch to read (or give --state).")
    var manifest: String?

    @Option(help: "The store file (default: <output_dir>/.avatar-batch/state.sqlite of the manifest).")
    var state: String?

    func path() throws -> String {
        if let state { return state }
        guard let manifest else { throw ValidationError("give a MANIFEST or --state PATH") }
        var o = LoadOptions(checkFiles: false)
        o.requireEnvironment = false
        let m = try loadOrExit(manifest, o)
        return m.defaultStatePath
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show where a batch stands; safe to run during a run, from another terminal.")

    @OptionGroup var location: StoreLocation

    @Flag(help: "Print JSON.")
    var json = false

    @Flag(help: "List every job, not only the ones that need attention.")
    var all = false

    func run() async throws {
        let path = try location.path()
        guard FileManager.default.fileExists(atPath: path) else {
            throw fail("no store at \(path): this batch has not run yet (avatar-batch run MANIFEST starts it)", code: 1)
        }
        let store = try Store(path: path, readOnly: true)
        let jobs = try store.jobs()
        let attempts = Dictionary(grouping: try store.attempts(), by: \.jobID)
        let counts = try store.counts()
        let holder = try store.holder()
        if json {
            printJSON([
                "store": path,
                "running_orchestrator": holder.map { ["host": $0.0.host, "pid": $0.0.pid, "run_id": $0.1, "since": $0.2] as [String: Any] } as Any,
                "counts": BatchReport.countsJSON(counts),
                "jobs": jobs.map { BatchReport.jobJSON($0, attempts: attempts[$0.id] ?? []) },
            ])
            return
        }
        if let (who, run, since) = holder {
            print("running: run \(run), pid \(who.pid) on \(who.host), since \(Date(timeIntervalSince1970: since).formatted(.iso8601))")
        }
        print(JobState.allCases.map { "\($0.rawValue) \(counts[$0] ?? 0)" }.joined(separator: "  "))
        for j in jobs where all || j.state != .succeeded || !j.inManifest {
            let last = attempts[j.id]?.last
            var line = "\(j.id)  \(j.state.rawValue)"
            if !j.inManifest { line += "  (no longer in the manifest)" }
            if let last {
                line += "  attempt \(last.number)" + (last.gpu.map { " on GPU \($0)" } ?? "")
                if let c = last.classification { line += ": \(c.rawValue)" }
                if !last.change.isEmpty { line += " [\(last.change)]" }
            }
            if let r = j.reason, j.state == .failed { line += "  — \(r)" }
            if j.state == .failed, let log = last?.logPath { line += "  log: \(log)" }
            print(line)
        }
    }
}

struct Retry: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Requeue failed (and cancelled) jobs, or the named ones; the next run renders them with a fresh OOM ladder.")

    @OptionGroup var location: StoreLocation

    @Flag(help: "Requeue every failed or cancelled job.")
    var failed = false

    @Argument(help: ArgumentHelp("Jobs to requeue, after the manifest (also succeeded ones: they render again).", valueName: "job-id"))
    var jobIDs: [String] = []

    @Option(name: .customLong("id"), help: "A job to requeue (repeatable); the form to use with --state.")
    var idOptions: [String] = []

    func run() async throws {
        let ids = jobIDs + idOptions
        guard failed || !ids.isEmpty else { throw ValidationError("say --failed, or name the jobs to requeue") }
        let store = try Store(path: try location.path())
        let done = try store.requeue(ids.isEmpty ? nil : ids, includeSucceeded: !ids.isEmpty)
        let missing = ids.filter { !done.contains($0) }
        print("requeued \(done.count) job(s)\(done.isEmpty ? "" : ": " + done.joined(separator: ", "))")
        if !missing.isEmpty { print("not requeued (unknown, pending or running): \(missing.joined(separator: ", "))") }
        print("run the same manifest again to render them")
    }
}
