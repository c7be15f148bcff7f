import Checkpoint
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `status --json`: the summary read from the store, then every job, written a page at a time.
public enum StatusListing {
    /// Counts, the holder, its live workers and the prediction basis: the document without its job list. Its
    /// `store` is the absolute path, so that a published copy and a direct read say the same whoever wrote them.
    public static func summary(_ store: Store, path: String) throws -> StatusSummaryDocument {
        let holder = try store.holder()
        return StatusSummaryDocument(store: URL(fileURLWithPath: path).standardizedFileURL.path, runningOrchestrator: holder.map { HolderDocument(host: $0.0.host, pid: $0.0.pid, runID: $0.1, since: $0.2) },
                                     counts: StateCounts(try store.counts()), workers: try liveWorkers(store, run: holder?.1),
                                     predictionBasis: try store.runs().last?.predictionBasis)
    }

    /// The warm workers of the orchestrator running now, with the job each renders.
    public static func liveWorkers(_ store: Store, run: Int64?) throws -> [WorkerDocument] {
        guard let run else { return [] }
        let open = try store.openWorkers().filter { $0.runID == run }
        guard !open.isEmpty else { return [] }
        var serving: [String: String] = [:]
        for a in try store.openAttempts() { if let w = a.workerID { serving[w] = a.jobID } }
        return open.map { WorkerDocument($0, serving: serving[$0.id]) }
    }

    /// The whole document: the summary's fields, then "jobs", one job to a line, by `JobLineWriter` (the encoder's
    /// bytes, at a fraction of its cost), handed to `sink` in pieces of about 64 KiB.
    public static func write(_ head: StatusSummaryDocument, store: Store, to sink: (Data) throws -> Void) throws {
        var text = try JSONOutput.text(head)
        // The summary's closing brace gives way to the job list (objects are unordered; the keys stay sorted within).
        text = String(text.trimmingCharacters(in: .whitespacesAndNewlines).dropLast()).trimmingCharacters(in: .whitespacesAndNewlines)
            + ",\n  \"jobs\" : ["
        var buffer = [UInt8](text.utf8)
        buffer.reserveCapacity(1 << 17)
        var first = true
        var writer = JobLineWriter()
        try store.forEachJob { j, attempts in
            buffer.append(contentsOf: (first ? "\n    " : ",\n    ").utf8)
            writer.append(j, attempts: attempts, to: &buffer)
            first = false
            if buffer.count > 1 << 16 {
                try sink(Data(buffer))
                buffer.removeAll(keepingCapacity: true)
            }
        }
        buffer.append(contentsOf: ((first ? "" : "\n  ") + "]\n}\n").utf8)
        try sink(Data(buffer))
    }
}

/// The running orchestrator's copy of `status --json`, kept while someone polls it, so that pollers read one file
/// instead of the store. A full read of a 2,000-job store costs a poller about 35 ms of CPU beside the run (16
/// pollers at 10 reads a second: several cores); the published copy costs a file read.
///
/// - Readers say they want it by touching `<store>.status-wanted` (`published(storePath:)` does), which the
///   publisher creates when it starts and removes when it stops; it keeps `<store>.status.json` only while that was touched in the last `wantedSeconds`, so a run nobody polls pays
///   nothing.
/// - It is rewritten when the store has changed (SQLite's data_version) and at most every
///   `max(minimumInterval, 4 x its last write time)`; between writes its modification time is touched every
///   `heartbeatSeconds`. A reader takes it only when that time is at most `staleSeconds` old: a dead orchestrator's
///   copy is not read for long.
/// - It is written to a temporary file and renamed, so a reader sees a whole document, and removed before the run
///   lets the store go.
public final class StatusPublisher: RunCompanion, @unchecked Sendable {
    public static let minimumInterval = 0.25
    public static let heartbeatSeconds = 1.0
    public static let staleSeconds = 3.0
    public static let wantedSeconds = 10.0
    static let pollSeconds = 0.05

    public let storePath: String
    private let lock = NSLock()
    private var stopping = false
    private var finished: DispatchSemaphore?

    public init(storePath: String) {
        self.storePath = storePath
    }

    public static func snapshotPath(storePath: String) -> String { storePath + ".status.json" }
    public static func wantedPath(storePath: String) -> String { storePath + ".status-wanted" }

    public func start(runID: Int64) {
        // The mark readers touch exists only while a run is publishing (readers never create it, so a finished batch
        // has no stray file beside its store); it starts long untouched: nobody has asked yet.
        let wanted = Self.wantedPath(storePath: storePath)
        Self.touch(wanted, create: true)
        var never = [timespec(tv_sec: 0, tv_nsec: 0), timespec(tv_sec: 0, tv_nsec: 0)]
        utimensat(AT_FDCWD, wanted, &never, 0)
        let done = DispatchSemaphore(value: 0)
        lock.withLock { finished = done }
        let thread = Thread { [self] in
            loop()
            done.signal()
        }
        thread.name = "status-publisher"
        thread.start()
    }

    public func stop() {
        // A second stop finds nothing to wait for.
        let done: DispatchSemaphore? = lock.withLock {
            stopping = true
            defer { finished = nil }
            return finished
        }
        done?.wait()
        unlink(Self.snapshotPath(storePath: storePath))
        unlink(Self.wantedPath(storePath: storePath))
    }

    private var isStopping: Bool { lock.withLock { stopping } }

    func loop() {
        let snapshot = Self.snapshotPath(storePath: storePath), wanted = Self.wantedPath(storePath: storePath)
        guard let store = try? Store(path: storePath, readOnly: true) else { return }
        let changes = try? StoreChanges(path: storePath)
        var published: Int?? = nil   // nil: no copy; .some(nil): a copy, the store's version unknown
        var lastWrite = 0.0, lastTouch = 0.0, cost = 0.0
        while !isStopping {
            let now = Date().timeIntervalSince1970
            if let touched = Self.modified(wanted), now - touched <= Self.wantedSeconds {
                let version = try? changes?.version()
                let changed = published == nil || version == nil || published! != version
                if changed && now - lastWrite >= max(Self.minimumInterval, 4 * cost) {
                    if (try? publish(store, to: snapshot)) != nil {
                        published = .some(version)
                        lastWrite = now
                        lastTouch = now
                        cost = Date().timeIntervalSince1970 - now
                    }
                } else if published != nil && now - lastTouch >= Self.heartbeatSeconds {
                    Self.touch(snapshot, create: false)
                    lastTouch = now
                }
            } else if published != nil {
                unlink(snapshot)
                published = nil
            }
            usleep(UInt32(Self.pollSeconds * 1_000_000))
        }
    }

    func publish(_ store: Store, to snapshot: String) throws {
        let temporary = snapshot + ".\(getpid()).tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: nil, attributes: [.posixPermissions: 0o600]) else { throw CocoaError(.fileWriteUnknown) }
        do {
            let file = try FileHandle(forWritingTo: URL(fileURLWithPath: temporary))
            defer { try? file.close() }
            try StatusListing.write(try StatusListing.summary(store, path: storePath), store: store) { try file.write(contentsOf: $0) }
        } catch {
            unlink(temporary)
            throw error
        }
        guard rename(temporary, snapshot) == 0 else {
            unlink(temporary)
            throw CocoaError(.fileWriteUnknown)
        }
    }

    /// The published document, when a live orchestrator keeps one; nil: read the store. Says that this reader wants
    /// one, by touching the mark a publishing run made (a reader that cannot write it just reads the store each time).
    public static func published(storePath: String) -> Data? {
        touch(wantedPath(storePath: storePath), create: false)
        let snapshot = snapshotPath(storePath: storePath)
        guard let m = modified(snapshot), abs(Date().timeIntervalSince1970 - m) <= staleSeconds else { return nil }
        return FileManager.default.contents(atPath: snapshot)
    }

    static func modified(_ path: String) -> Double? {
        var s = stat()
        guard stat(path, &s) == 0 else { return nil }
        return Double(s.st_mtim.tv_sec) + Double(s.st_mtim.tv_nsec) / 1e9
    }

    static func touch(_ path: String, create: Bool) {
        let fd = open(path, O_WRONLY | O_CLOEXEC | (create ? O_CREAT : 0), 0o644)
        guard fd >= 0 else { return }
        futimens(fd, nil)
        close(fd)
    }
}
