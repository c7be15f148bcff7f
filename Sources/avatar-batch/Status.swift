import ArgumentParser
import Checkpoint
import Executors
import Foundation
import Manifest
import Reports

/// Where the store is: --state, or the manifest's output_dir.
struct StoreLocation: ParsableArguments {
    @Argument(help: "The manifest whose batch to read (or give --state).")
    var manifest: String?

    @Option(help: "The store file (default: <output_dir>/.avatar-batch/state.sqlite of the manifest).")
    var state: String?

    func path() throws -> String {
        if let state { return state }
        guard let manifest else { throw ValidationError("give a MANIFEST or --state PATH") }
        // The store's place needs only the manifest's name and output_dir, remembered while the file is unchanged: a
        // poller need not validate every clip, nor parse them. A manifest that does not say them plainly, or whose
        // store is not there, is loaded in full (its errors, or "no store").
        if let path = StatePathCache().statePath(manifest: manifest), FileManager.default.fileExists(atPath: path) { return path }
        var o = LoadOptions(checkFiles: false)
        o.requireEnvironment = false
        let m = try loadOrExit(manifest, o)
        return m.defaultStatePath
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show where a batch stands; safe to run during a run, from another terminal.",
        discussion: """
            --json prints the document of docs/schemas/status.schema.json; its job list is read from the store and \
            written a page at a time, one job to a line, so a batch of 100,000 jobs is printed without holding it in \
            memory. \
            While a run holds the store, its orchestrator keeps the same document beside it for pollers \
            (<store>.status.json, rewritten when the store changes, at most every 0.25 s or so), and --json prints \
            that instead: at most a few tenths of a second behind, at the cost of a file read. --fresh reads the store. \
            --summary leaves the job list out (counts and the running orchestrator only).
            """)

    @OptionGroup var location: StoreLocation

    @Flag(help: "Print JSON.")
    var json = false

    @Flag(help: "Counts and the running orchestrator only, without the job list.")
    var summary = false

    @Flag(help: "List every job, not only the ones that need attention.")
    var all = false

    @Flag(help: "With --json: read the store even when the running orchestrator publishes its list for pollers.")
    var fresh = false

    func run() async throws {
        let path = try location.path()
        guard FileManager.default.fileExists(atPath: path) else {
            throw fail("no store at \(path): this batch has not run yet (avatar-batch run MANIFEST starts it)", code: 1)
        }
        // A poller of a running batch reads the orchestrator's published copy (at most a few tenths of a second
        // behind) rather than every job from the store.
        if json && !summary && !fresh, let published = StatusPublisher.published(storePath: path) {
            FileHandle.standardOutput.write(published)
            return
        }
        let store = try Store(path: path, readOnly: true)
        let head = try StatusListing.summary(store, path: path)
        if json {
            if summary { return try JSONOutput.print(head) }
            let out = FileHandle.standardOutput
            try StatusListing.write(head, store: store) { out.write($0) }
            return
        }
        if let h = head.runningOrchestrator {
            print("running: run \(h.runID), pid \(h.pid) on \(h.host), since \(Date(timeIntervalSince1970: h.since).formatted(.iso8601))")
        }
        let c = head.counts
        print(JobState.allCases.map { "\($0.rawValue) \(c[$0])" }.joined(separator: "  "))
        if let basis = head.predictionBasis { print("predictions: \(basis)") }
        for w in head.workers {
            var line = "worker \(w.id)  GPU \(w.gpu.map(String.init) ?? "?")  pid \(w.pid.map(String.init) ?? "?")  \(w.state)"
            if !w.loadSettings.isEmpty { line += "  [\(w.loadSettings)]" }
            line += "  served \(w.served)"
            if let s = w.serving { line += ", rendering \(s)" }
            if let gb = w.residentGB { line += String(format: "  %.1f GB resident", gb) }
            if let l = w.loadSeconds { line += String(format: "  loaded in %.1f s", l) }
            print(line)
        }
        if summary { return }
        try store.forEachJob { j, attempts in
            guard all || j.state != .succeeded || !j.inManifest else { return }
            let last = attempts.last
            var line = "\(j.id)  \(j.state.rawValue)"
            if !j.inManifest { line += "  (no longer in the manifest)" }
            if let last {
                line += "  attempt \(last.number)" + (last.gpu.map { " on GPU \($0)" } ?? (last.host.isEmpty ? "" : " on \(last.host)"))
                if let c = last.classification { line += ": \(c.rawValue)" }
                if !last.change.isEmpty { line += " [\(last.change)]" }
                if all, let from = last.predictedFrom { line += "  (predicted from \(from))" }
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
