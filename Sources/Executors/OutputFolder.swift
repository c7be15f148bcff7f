import Checkpoint
import Foundation
import Manifest

/// The batch's side effects in output_dir: whether a finished output is still the one recorded, partial files
/// of stopped attempts, and files that appear there which no clip owns.
///
/// Stray files are found by comparing listings of each output folder, taken as attempts start and end but never
/// more often than once per 20 times the folder's own listing time: a small folder is listed every time, one of
/// 100,000 files (a listing of tens of milliseconds) about once a second instead of twice per job, so listing
/// costs at most about 5% of the orchestrator's time whatever the folder holds. An attempt is told of the files
/// that appeared after the listing its start saw.
final class OutputFolder: @unchecked Sendable {
    let outputDir: String
    /// Every clip's output, relative to output_dir (the files the batch owns there); the clips' own strings.
    let owned: Set<String>
    private var listings: [String: Listing] = [:]

    struct Listing {
        var names: Set<String>
        var at: Date
        var cost: Double
        /// New, unowned names found since the folder was first listed, with when they were found.
        var found: [(name: String, at: Date)] = []
    }

    /// When each job's attempt started watching (the listing time it will be compared against).
    private var since: [String: Date] = [:]

    init(outputDir: String, jobs: [Job]) {
        self.outputDir = outputDir
        self.owned = Set(jobs.map(\.clip.output))
    }

    func path(_ job: Job) -> String { outputDir + "/" + job.clip.output }
    func folder(_ job: Job) -> String { (path(job) as NSString).deletingLastPathComponent }

    /// Whether a succeeded job's output is still the one recorded: same size and mtime, or failing that, same digest.
    func stillValid(_ rec: JobRecord, job: Job, store: Store) -> Bool {
        let path = path(job)
        guard let attrs = try? FileManager.default.attributesOfItem(atPath: path), let digest = rec.outputDigest else { return false }
        let size = attrs[.size] as? Int
        let mtime = (attrs[.modificationDate] as? Date)?.timeIntervalSince1970
        if let s = rec.outputSize, let m = rec.outputMTime, s == size, let mtime, abs(m - mtime) < 0.001 { return true }
        guard let now = try? SHA256.hex(fileAt: path), now == digest else { return false }
        try? store.refreshOutput(rec.id, digest: digest, size: size ?? 0, mtime: mtime ?? 0)
        return true
    }

    /// Size and mtime of a job's output in place.
    func stat(_ job: Job) -> (size: Int?, mtime: Double?) {
        let attrs = try? FileManager.default.attributesOfItem(atPath: path(job))
        return (attrs?[.size] as? Int, (attrs?[.modificationDate] as? Date)?.timeIntervalSince1970)
    }

    /// Removes the temporary outputs (`.<name>.partial-N*`) a stopped attempt left.
    func removePartials(_ job: Job) {
        let final = path(job)
        let dir = (final as NSString).deletingLastPathComponent
        let prefix = "." + (final as NSString).lastPathComponent + ".partial-"
        for f in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where f.hasPrefix(prefix) {
            try? FileManager.default.removeItem(atPath: dir + "/" + f)
        }
    }

    /// An attempt starts: its folder's listing (taken now if it has none) is what it will be compared against.
    func attemptStarted(_ job: Job) {
        let dir = folder(job)
        relist(dir, force: listings[dir] == nil)
        since[job.id] = listings[dir]?.at ?? Date()
    }

    /// Files that appeared in the job's output folder while its attempt ran and belong to no clip: a renderer writing
    /// outside its output path (renderers are trusted and not sandboxed; this is reported, not prevented).
    func strayFiles(after job: Job) -> [String] {
        let dir = folder(job)
        guard let from = since[job.id] else { return [] }
        relist(dir, force: false)
        since[job.id] = nil
        let found = (listings[dir]?.found ?? []).filter { $0.at > from }.map(\.name).sorted()
        // Keep only what a running attempt could still be told of.
        let oldest = since.values.min() ?? .distantFuture
        listings[dir]?.found.removeAll { $0.at <= oldest }
        return found
    }

    private func relist(_ dir: String, force: Bool) {
        let now = Date()
        if !force, let l = listings[dir], now.timeIntervalSince(l.at) < 20 * l.cost { return }
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return }
        let cost = Date().timeIntervalSince(now)
        let current = Set(names)
        guard var l = listings[dir] else {
            listings[dir] = Listing(names: current, at: now, cost: cost)
            return
        }
        for name in current.subtracting(l.names) where isStray(name, in: dir) { l.found.append((name, now)) }
        l.names = current
        l.at = now
        l.cost = cost
        listings[dir] = l
    }

    private func isStray(_ name: String, in dir: String) -> Bool {
        if name == ".avatar-batch" || (name.hasPrefix(".") && name.contains(".partial-")) { return false }
        let relative = dir == outputDir ? name : String(dir.dropFirst(outputDir.count + 1)) + "/" + name
        return !owned.contains(relative)
    }
}
