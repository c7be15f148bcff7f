import Manifest
import Scheduler

/// The jobs waiting to run, kept in dispatch order (priority, then the longest predicted first, then manifest
/// order) so an event costs what it looks at, not the size of the batch.
///
/// Entries stay in one array sorted at the last `sort`; a started job leaves a hole that the walk skips and a
/// compaction removes. The order is re-sorted after an insertion (a retry, a degraded job) and, once the predictor
/// has learned something, after a number of events proportional to the queue: sorting 100,000 jobs on every event
/// made a batch quadratic. Placement always sees current memory estimates (`estimate`); only the order's
/// time key may lag a few events behind what was just learned.
public final class JobQueue {
    /// A job waiting, with the settings its next attempt uses.
    public struct Entry: Sendable {
        public var job: Job
        public var settings: ClipSettings
        /// Run alone on its GPU (the OOM ladder's `isolate`).
        public var isolate: Bool
        /// OOM rungs applied.
        public var rung: Int
        /// What differs from the clip's own settings, in words.
        public var change: String
        /// Position in the manifest.
        public var order: Int

        public init(job: Job, settings: ClipSettings, isolate: Bool, rung: Int, change: String, order: Int) {
            self.job = job
            self.settings = settings
            self.isolate = isolate
            self.rung = rung
            self.change = change
            self.order = order
        }
    }

    private var entries: [Entry] = []
    /// Job id -> its position in `entries`, for live entries only.
    private var live: [String: Int] = [:]
    /// Everything before `head` is a hole.
    private var head = 0
    private var holes = 0
    private var needsSort = false
    private var sortedAtGeneration = -1
    private var eventsSinceSort = 0
    /// How many live entries have each settings: the smallest job is the smallest of these (few distinct ones).
    private var bySettings: [ClipSettings: Int] = [:]
    /// Estimates by settings at `cacheGeneration` of the predictor.
    private var cache: [ClipSettings: Estimate] = [:]
    private var cacheGeneration = -1

    public init() {}

    public var count: Int { live.count }
    public var isEmpty: Bool { live.isEmpty }

    public func entry(_ id: String) -> Entry? { live[id].map { entries[$0] } }

    public func append(_ e: Entry) {
        if let old = live[e.job.id] { forget(old) }
        entries.append(e)
        live[e.job.id] = entries.count - 1
        bySettings[e.settings, default: 0] += 1
        needsSort = true
    }

    /// Takes a job out of the queue.
    @discardableResult
    public func remove(_ id: String) -> Entry? {
        guard let i = live.removeValue(forKey: id) else { return nil }
        let e = entries[i]
        forget(i, removedFromLive: true)
        return e
    }

    private func forget(_ i: Int, removedFromLive: Bool = false) {
        let s = entries[i].settings
        if !removedFromLive { live[entries[i].job.id] = nil }
        if let n = bySettings[s] { bySettings[s] = n > 1 ? n - 1 : nil }
        holes += 1
        while head < entries.count && live[entries[head].job.id] != head { head += 1; holes -= 1 }
        if holes > 1024 && holes > live.count { compact() }
    }

    /// Moves the live entries to the front, in place (a copy of a 100,000-entry queue is tens of MB, and copies made
    /// during a run stay in the process's heap).
    private func compact() {
        var w = 0
        for r in head..<entries.count where live[entries[r].job.id] == r {
            if w != r { entries.swapAt(w, r) }
            live[entries[w].job.id] = w
            w += 1
        }
        entries.removeSubrange(w...)
        head = 0
        holes = 0
    }

    /// The live entries in dispatch order as of the last sort.
    public var all: [Entry] { (head..<entries.count).compactMap { live[entries[$0].job.id] == $0 ? entries[$0] : nil } }

    /// The current estimate of an entry: by its settings, or its own when an OOM taught something about it alone.
    public func estimate(_ e: Entry, _ predictor: Predictor) -> Estimate {
        if predictor.hasOwnFloor(e.job.id) { return predictor.estimate(e.settings, jobID: e.job.id) }
        if cacheGeneration != predictor.generation {
            cache.removeAll(keepingCapacity: true)
            cacheGeneration = predictor.generation
        }
        if let hit = cache[e.settings] { return hit }
        let fresh = predictor.estimate(e.settings)
        cache[e.settings] = fresh
        return fresh
    }

    /// A lower bound on the memory of every queued job (nil when empty).
    public func smallestGB(_ predictor: Predictor) -> Double? {
        bySettings.keys.map { s in
            if cacheGeneration == predictor.generation, let hit = cache[s] { return hit.memoryGB }
            return predictor.estimate(s).memoryGB
        }.min()
    }

    /// Counts an event; re-sorts when an insertion or what the predictor learned calls for it.
    public func refresh(_ predictor: Predictor) {
        eventsSinceSort += 1
        let learned = sortedAtGeneration != predictor.generation && eventsSinceSort >= max(64, live.count / 64)
        guard needsSort || learned else { return }
        compact()
        // The order is found on small keys and applied in place, cycle by cycle: no copy of the entries.
        var keys = entries.indices.map { i -> (priority: Int, seconds: Double, order: Int, index: Int) in
            (entries[i].job.clip.priority, estimate(entries[i], predictor).seconds, entries[i].order, i)
        }
        keys.sort { a, b in
            if a.priority != b.priority { return a.priority > b.priority }
            if a.seconds != b.seconds { return a.seconds > b.seconds }
            return a.order < b.order
        }
        // Position p takes the entry now at keys[p].index.
        var from = keys.map(\.index)
        keys = []
        for start in from.indices where from[start] != start {
            var p = start
            while from[p] != start {
                entries.swapAt(p, from[p])
                let next = from[p]
                from[p] = p
                p = next
            }
            from[p] = p
        }
        for i in entries.indices { live[entries[i].job.id] = i }
        needsSort = false
        sortedAtGeneration = predictor.generation
        eventsSinceSort = 0
    }

    /// The queue in dispatch order, as placement requests with current estimates, computed as they are read:
    /// a dispatch round reads only the jobs it can decide about.
    public func requests(_ predictor: Predictor) -> LazyMapSequence<LazyFilterSequence<Range<Int>>, QueuedJob> {
        (head..<entries.count).lazy.filter { self.live[self.entries[$0].job.id] == $0 }.map { i in
            let e = self.entries[i]
            let est = self.estimate(e, predictor)
            return QueuedJob(request: PlacementRequest(jobID: e.job.id, memoryGB: est.memoryGB, seconds: est.seconds, isolate: e.isolate,
                                                       gpuModel: e.job.clip.gpuModel, unsharedSeconds: est.unsharedSeconds),
                             priority: e.job.clip.priority, order: e.order)
        }
    }
}
