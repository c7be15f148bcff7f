import Foundation
import GRDB

/// One warm worker's life, as the store keeps it (docs/workers.md).
public struct WorkerRecord: Sendable, Hashable, Codable {
    public var id: String
    public var runID: Int64
    public var host: String
    public var gpu: Int?
    public var gpuUUID: String?
    public var renderer: String
    /// The load settings it was started with, `name=value` joined by ", " ("" when it has none).
    public var loadSettings: String
    public var pid: Int32?
    public var processStart: UInt64?
    public var logPath: String?
    public var startedAt: Double
    public var readyAt: Double?
    public var loadSeconds: Double?
    public var residentGB: Double?
    /// Requests it finished (done or failed).
    public var served: Int
    public var endedAt: Double?
    public var endNote: String?

    public init(id: String, runID: Int64, host: String, gpu: Int?, gpuUUID: String?, renderer: String, loadSettings: String, pid: Int32? = nil,
                processStart: UInt64? = nil, logPath: String? = nil, startedAt: Double, readyAt: Double? = nil, loadSeconds: Double? = nil,
                residentGB: Double? = nil, served: Int = 0, endedAt: Double? = nil, endNote: String? = nil) {
        self.id = id
        self.runID = runID
        self.host = host
        self.gpu = gpu
        self.gpuUUID = gpuUUID
        self.renderer = renderer
        self.loadSettings = loadSettings
        self.pid = pid
        self.processStart = processStart
        self.logPath = logPath
        self.startedAt = startedAt
        self.readyAt = readyAt
        self.loadSeconds = loadSeconds
        self.residentGB = residentGB
        self.served = served
        self.endedAt = endedAt
        self.endNote = endNote
    }
}

extension Store {
    /// Records a worker as it starts (its process already launched, so a later run can stop what is left of it).
    public func workerStarted(_ w: WorkerRecord) throws {
        try pool.write { db in
            try db.execute(sql: """
                INSERT INTO workers (id, run_id, host, gpu, gpu_uuid, renderer, load_settings, pid, process_start, log_path, started_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [w.id, w.runID, w.host, w.gpu, w.gpuUUID, w.renderer, w.loadSettings, w.pid, w.processStart.map { Int64($0) },
                                 w.logPath, w.startedAt])
        }
    }

    /// The worker said ready.
    public func workerReady(_ id: String, loadSeconds: Double?, residentGB: Double?, now: Double = Date().timeIntervalSince1970) throws {
        try pool.write { db in
            try db.execute(sql: "UPDATE workers SET ready_at = ?, load_seconds = ?, resident_gb = ? WHERE id = ?",
                           arguments: [now, loadSeconds, residentGB, id])
        }
    }

    /// The worker finished a request.
    public func workerServed(_ id: String) throws {
        try pool.write { db in try db.execute(sql: "UPDATE workers SET served = served + 1 WHERE id = ?", arguments: [id]) }
    }

    /// The worker's process is gone (or was found gone by a later run).
    public func workerEnded(_ id: String, note: String, now: Double = Date().timeIntervalSince1970) throws {
        try pool.write { db in
            try db.execute(sql: "UPDATE workers SET ended_at = ?, end_note = ? WHERE id = ? AND ended_at IS NULL", arguments: [now, note, id])
        }
    }

    /// Which worker serves an attempt.
    public func recordWorker(attemptID: Int64, workerID: String) throws {
        try pool.write { db in try db.execute(sql: "UPDATE attempts SET worker_id = ? WHERE id = ?", arguments: [workerID, attemptID]) }
    }

    /// Workers whose end is not recorded: live ones of the running orchestrator, or a dead run's leftovers.
    public func openWorkers() throws -> [WorkerRecord] {
        try pool.read { db in
            guard try db.tableExists("workers") else { return [] }
            return try Row.fetchAll(db, sql: "SELECT * FROM workers WHERE ended_at IS NULL ORDER BY started_at").map(Store.worker)
        }
    }

    /// Every worker, oldest first (reports draw their lifetimes).
    public func workers() throws -> [WorkerRecord] {
        try pool.read { db in
            guard try db.tableExists("workers") else { return [] }
            return try Row.fetchAll(db, sql: "SELECT * FROM workers ORDER BY started_at").map(Store.worker)
        }
    }

    static func worker(_ r: Row) -> WorkerRecord {
        WorkerRecord(id: r["id"], runID: r["run_id"], host: r["host"], gpu: r["gpu"], gpuUUID: r["gpu_uuid"], renderer: r["renderer"],
                     loadSettings: r["load_settings"], pid: r["pid"], processStart: (r["process_start"] as Int64?).map { UInt64($0) },
                     logPath: r["log_path"], startedAt: r["started_at"], readyAt: r["ready_at"], loadSeconds: r["load_seconds"],
                     residentGB: r["resident_gb"], served: r["served"], endedAt: r["ended_at"], endNote: r["end_note"])
    }
}
