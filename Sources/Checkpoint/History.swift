import Foundation
import GRDB
import Manifest

/// What batches learn, kept across batches (docs/calibration.md): one SQLite file under `$AVATAR_BATCH_HOME`
/// (default `~/.local/share/avatar-batch/history.sqlite`) holding calibrations and every batch's observations, by
/// renderer identity, GPU model and settings bucket. Bounded: each (renderer, GPU model, bucket, co-location) keeps
/// its newest `window` observations. Safe for two batches writing at once (WAL, a busy timeout, one short
/// transaction per write). Inspect it with `sqlite3`.
public final class History: @unchecked Sendable {
    public let path: String
    let pool: DatabasePool
    public let readOnly: Bool
    /// Observations kept per (renderer, GPU model, bucket, co-location).
    public static let window = 50

    /// Where the history lives: `$AVATAR_BATCH_HOME/history.sqlite`, else `$XDG_DATA_HOME/avatar-batch/`, else
    /// `~/.local/share/avatar-batch/`.
    public static func defaultPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let home = environment["AVATAR_BATCH_HOME"], !home.isEmpty { return home + "/history.sqlite" }
        let data = environment["XDG_DATA_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? (NSHomeDirectory() + "/.local/share")
        return data + "/avatar-batch/history.sqlite"
    }

    /// Opens (and creates, unless `readOnly`) the history. Throws `HistoryError` with words a user can act on.
    public init(path: String, readOnly: Bool = false) throws {
        self.path = path
        let fm = FileManager.default
        var ro = readOnly
        if !ro {
            let dir = (path as NSString).deletingLastPathComponent
            do { try fm.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700]) } catch {
                if fm.fileExists(atPath: path) { ro = true } else { throw HistoryError.unusable(path, "cannot create \(dir): \(error.localizedDescription)") }
            }
            // A file we may read but not write: learn from it, add nothing.
            if fm.fileExists(atPath: path) && !fm.isWritableFile(atPath: path) { ro = true }
            if !fm.fileExists(atPath: path) && !fm.isWritableFile(atPath: dir) { throw HistoryError.unusable(path, "\(dir) is not writable") }
        }
        if ro && !fm.fileExists(atPath: path) { throw HistoryError.unusable(path, "it does not exist") }
        self.readOnly = ro
        do {
            pool = try DatabasePool(path: path, configuration: Store.configuration(readOnly: ro, busySeconds: 10))
            let applied = try pool.read { db -> [String] in
                guard try db.tableExists("grdb_migrations") else { return [] }
                return try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations")
            }
            let known = Set(History.migrator.migrations)
            if let newer = applied.first(where: { !known.contains($0) }) {
                throw HistoryError.newer(path, newer)
            }
            if !ro { try History.migrator.migrate(pool) } else if applied.isEmpty { throw HistoryError.unusable(path, "it holds no history") }
            _ = try pool.read { db in try db.tableExists("observations") }
        } catch let e as HistoryError {
            throw e
        } catch {
            throw HistoryError.unusable(path, "\(error)")
        }
        if !ro { try? fm.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path) }
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("history-2026-11-30") { db in
            try db.execute(sql: """
                CREATE TABLE observations (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    renderer_identity TEXT NOT NULL, renderer TEXT NOT NULL, gpu_model TEXT NOT NULL, bucket TEXT NOT NULL,
                    peak_gb REAL, seconds REAL, frames INTEGER NOT NULL, oom INTEGER NOT NULL,
                    colocated INTEGER NOT NULL DEFAULT 1, batch TEXT NOT NULL, recorded_at REAL NOT NULL
                );
                CREATE INDEX observations_by_key ON observations(renderer_identity, gpu_model, bucket, colocated, id);
                CREATE TABLE calibrations (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    renderer_identity TEXT NOT NULL, renderer TEXT NOT NULL, gpu_model TEXT NOT NULL,
                    state TEXT NOT NULL CHECK (state IN ('running', 'complete', 'discarded')),
                    started_at REAL NOT NULL, finished_at REAL, work_dir TEXT NOT NULL, fit_json TEXT, note TEXT
                );
                CREATE INDEX calibrations_by_key ON calibrations(renderer_identity, gpu_model, state, id);
                """)
        }
        // Co-located attempts keep their solo-equivalent time in `seconds` (usable for solo predictions, as a batch
        // uses its own) and their wall time here (what S(k) is learned from).
        m.registerMigration("history-2026-11-30-wall") { db in
            try db.execute(sql: "ALTER TABLE observations ADD COLUMN wall_s REAL")
        }
        // A warm worker's request: its time holds no load (the predictor takes it as such).
        m.registerMigration("history-2026-11-30-warm") { db in
            try db.execute(sql: "ALTER TABLE observations ADD COLUMN warm INTEGER NOT NULL DEFAULT 0")
        }
        // Warm workers' loads (start to ready): a later batch expects what the last ones took on this GPU model.
        m.registerMigration("history-2026-12-01-loads") { db in
            try db.execute(sql: """
                CREATE TABLE worker_loads (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    renderer_identity TEXT NOT NULL, renderer TEXT NOT NULL, gpu_model TEXT NOT NULL, load_settings TEXT NOT NULL,
                    seconds REAL NOT NULL, batch TEXT NOT NULL, recorded_at REAL NOT NULL
                );
                CREATE INDEX worker_loads_by_key ON worker_loads(renderer_identity, gpu_model, id);
                """)
        }
        // A cold attempt's start-up as its renderer reported it: its time less this is a request's.
        m.registerMigration("history-2026-12-01-startup") { db in
            try db.execute(sql: "ALTER TABLE observations ADD COLUMN startup_s REAL")
        }
        // How long the render ran beside how many on its card ("1:2.104 2:8.330"): S(k) is learned from these stretches.
        m.registerMigration("history-2026-12-01-stretches") { db in
            try db.execute(sql: "ALTER TABLE observations ADD COLUMN stretches TEXT")
        }
        return m
    }

    /// Moves what the write-ahead log holds into the file itself, as far as readers allow without waiting (a batch's
    /// or a calibration's end): a copy of `history.sqlite` alone then has what they wrote (SQLite leaves it in
    /// `history.sqlite-wal` until the last connection closes, which a process's exit does not always do).
    public func checkpoint() {
        guard !readOnly else { return }
        _ = try? pool.writeWithoutTransaction { db in try db.checkpoint(.passive) }
    }

    /// Raw SQL, for tests that plant what a newer version or a broken file would leave.
    package func executeRaw(_ sql: String) throws {
        try pool.write { db in try db.execute(sql: sql) }
    }

    // MARK: observations

    /// Records what one attempt showed, then trims its key to the window. Ignored (false) on a read-only history.
    @discardableResult
    public func record(_ o: HistoryObservation) throws -> Bool {
        guard !readOnly else { return false }
        try pool.write { db in
            try db.execute(sql: """
                INSERT INTO observations (renderer_identity, renderer, gpu_model, bucket, peak_gb, seconds, wall_s, frames, oom, colocated, warm,
                                          startup_s, stretches, batch, recorded_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [o.rendererIdentity, o.renderer, o.gpuModel, o.bucket, o.peakGB, o.seconds, o.wallSeconds, o.frames, o.oom, o.colocated,
                                 o.warm, o.startupSeconds, o.stretches.map(History.stretchesText), o.batch, o.recordedAt])
            try db.execute(sql: """
                DELETE FROM observations WHERE renderer_identity = ? AND gpu_model = ? AND bucket = ? AND colocated = ? AND id NOT IN (
                    SELECT id FROM observations WHERE renderer_identity = ? AND gpu_model = ? AND bucket = ? AND colocated = ?
                    ORDER BY id DESC LIMIT ?)
                """, arguments: [o.rendererIdentity, o.gpuModel, o.bucket, o.colocated, o.rendererIdentity, o.gpuModel, o.bucket, o.colocated,
                                 History.window])
        }
        return true
    }

    /// Every kept observation of a renderer, on every GPU model, oldest first.
    public func observations(rendererIdentity: String) throws -> [HistoryObservation] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM observations WHERE renderer_identity = ? ORDER BY id", arguments: [rendererIdentity]).map {
                HistoryObservation(rendererIdentity: $0["renderer_identity"], renderer: $0["renderer"], gpuModel: $0["gpu_model"], bucket: $0["bucket"],
                                   peakGB: $0["peak_gb"], seconds: $0["seconds"], wallSeconds: $0.hasColumn("wall_s") ? $0["wall_s"] : nil, frames: $0["frames"],
                                   oom: $0["oom"], colocated: $0["colocated"], warm: $0.hasColumn("warm") ? $0["warm"] : false,
                                   startupSeconds: $0.hasColumn("startup_s") ? $0["startup_s"] : nil,
                                   stretches: $0.hasColumn("stretches") ? ($0["stretches"] as String?).flatMap(History.stretches) : nil,
                                   batch: $0["batch"], recordedAt: $0["recorded_at"])
            }
        }
    }

    /// Stretches as the column holds them: "K:SECONDS" by k, space-separated ("1:2.104 2:8.330").
    public static func stretchesText(_ s: [Int: Double]) -> String {
        s.sorted { $0.key < $1.key }.map { String(format: "%d:%.3f", $0.key, $0.value) }.joined(separator: " ")
    }

    /// The column's text read back; nil when any part of it is not "K:SECONDS" with K >= 1 and SECONDS >= 0.
    public static func stretches(_ text: String) -> [Int: Double]? {
        var out: [Int: Double] = [:]
        for part in text.split(separator: " ") {
            let kv = part.split(separator: ":")
            guard kv.count == 2, let k = Int(kv[0]), k >= 1, let t = Double(kv[1]), t >= 0, t.isFinite else { return nil }
            out[k, default: 0] += t
        }
        return out.isEmpty ? nil : out
    }

    // MARK: worker loads

    /// Records one warm worker's load, then trims its (renderer, GPU model) to the window. Ignored (false) on a
    /// read-only history.
    @discardableResult
    public func recordLoad(_ l: HistoryLoad) throws -> Bool {
        guard !readOnly else { return false }
        try pool.write { db in
            try db.execute(sql: """
                INSERT INTO worker_loads (renderer_identity, renderer, gpu_model, load_settings, seconds, batch, recorded_at)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """, arguments: [l.rendererIdentity, l.renderer, l.gpuModel, l.loadSettings, l.seconds, l.batch, l.recordedAt])
            try db.execute(sql: """
                DELETE FROM worker_loads WHERE renderer_identity = ? AND gpu_model = ? AND id NOT IN (
                    SELECT id FROM worker_loads WHERE renderer_identity = ? AND gpu_model = ? ORDER BY id DESC LIMIT ?)
                """, arguments: [l.rendererIdentity, l.gpuModel, l.rendererIdentity, l.gpuModel, History.window])
        }
        return true
    }

    /// A renderer's kept loads on one GPU model recorded after `since` (seconds since 1970), newest first.
    public func loads(rendererIdentity: String, gpuModel: String, since: Double = 0) throws -> [HistoryLoad] {
        try pool.read { db in
            // A history from before loads were kept has no such table until a writer migrates it.
            guard try db.tableExists("worker_loads") else { return [] }
            return try Row.fetchAll(db, sql: """
                SELECT * FROM worker_loads WHERE renderer_identity = ? AND gpu_model = ? AND recorded_at > ? ORDER BY id DESC
                """, arguments: [rendererIdentity, gpuModel, since]).map {
                HistoryLoad(rendererIdentity: $0["renderer_identity"], renderer: $0["renderer"], gpuModel: $0["gpu_model"],
                            loadSettings: $0["load_settings"], seconds: $0["seconds"], batch: $0["batch"], recordedAt: $0["recorded_at"])
            }
        }
    }

    // MARK: calibrations

    /// Starts a calibration (or finds the one an interrupted `calibrate` left running, to resume it).
    public func beginCalibration(rendererIdentity: String, renderer: String, gpuModel: String, workDir: String, now: Double = Date().timeIntervalSince1970) throws -> CalibrationRecord {
        guard !readOnly else { throw HistoryError.unusable(path, "it is read-only, so a calibration cannot be stored") }
        return try pool.write { db in
            if let row = try Row.fetchOne(db, sql: "SELECT * FROM calibrations WHERE renderer_identity = ? AND gpu_model = ? AND state = 'running' ORDER BY id DESC LIMIT 1",
                                          arguments: [rendererIdentity, gpuModel]) {
                return History.calibration(row)
            }
            try db.execute(sql: "INSERT INTO calibrations (renderer_identity, renderer, gpu_model, state, started_at, work_dir) VALUES (?, ?, ?, 'running', ?, ?)",
                           arguments: [rendererIdentity, renderer, gpuModel, now, workDir])
            return History.calibration(try Row.fetchOne(db, sql: "SELECT * FROM calibrations WHERE id = ?", arguments: [db.lastInsertedRowID])!)
        }
    }

    /// Stores a finished calibration's fit; only a complete calibration is ever used.
    public func completeCalibration(_ id: Int64, fit: CalibrationFit, now: Double = Date().timeIntervalSince1970) throws {
        let json = String(decoding: try JSONEncoder.sorted.encode(fit), as: UTF8.self)
        try pool.write { db in
            try db.execute(sql: "UPDATE calibrations SET state = 'complete', finished_at = ?, fit_json = ? WHERE id = ?", arguments: [now, json, id])
        }
    }

    /// Marks an unfinished calibration discarded (`calibrate --discard`): it is never resumed or used.
    public func discardCalibration(_ id: Int64, note: String, now: Double = Date().timeIntervalSince1970) throws {
        try pool.write { db in
            try db.execute(sql: "UPDATE calibrations SET state = 'discarded', finished_at = ?, note = ? WHERE id = ? AND state = 'running'",
                           arguments: [now, note, id])
        }
    }

    /// The calibration batches of a renderer on a GPU model plan from: the newest complete one whose probes ran on
    /// warm workers, else the newest complete one. A warm calibration predicts cold batches better than a cold one
    /// does, as well as warm batches (co-located p95 22% against 26% for cold batches, 55% against 85% for warm ones,
    /// over 18 H200 runs: docs/benchmarks.md), so a later `calibrate --cold` does not displace it.
    public func calibration(rendererIdentity: String, gpuModel: String) throws -> CalibrationRecord? {
        History.preferred(try completeCalibrations(rendererIdentity: rendererIdentity, gpuModel: gpuModel))
    }

    /// The one of `complete` (a renderer's complete calibrations on one GPU model, newest first) that batches plan from
    /// (`calibration(rendererIdentity:gpuModel:)`).
    public static func preferred(_ complete: [CalibrationRecord]) -> CalibrationRecord? {
        complete.first { $0.fit?.ranWarm == true } ?? complete.first
    }

    /// The complete calibrations of a renderer on a GPU model, newest first.
    public func completeCalibrations(rendererIdentity: String, gpuModel: String) throws -> [CalibrationRecord] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM calibrations WHERE renderer_identity = ? AND gpu_model = ? AND state = 'complete' ORDER BY id DESC",
                             arguments: [rendererIdentity, gpuModel]).map(History.calibration)
        }
    }

    /// Every calibration, newest first.
    public func calibrations() throws -> [CalibrationRecord] {
        try pool.read { db in try Row.fetchAll(db, sql: "SELECT * FROM calibrations ORDER BY id DESC").map(History.calibration) }
    }

    static func calibration(_ r: Row) -> CalibrationRecord {
        CalibrationRecord(id: r["id"], rendererIdentity: r["renderer_identity"], renderer: r["renderer"], gpuModel: r["gpu_model"],
                          state: r["state"], startedAt: r["started_at"], finishedAt: r["finished_at"], workDir: r["work_dir"],
                          fit: (r["fit_json"] as String?).flatMap { try? JSONDecoder().decode(CalibrationFit.self, from: Data($0.utf8)) }, note: r["note"])
    }
}

/// Why the history cannot be used. A batch warns and carries on without it; `calibrate` stops.
public enum HistoryError: Error, CustomStringConvertible, Sendable {
    case unusable(String, String)
    case newer(String, String)

    public var description: String {
        switch self {
        case let .unusable(path, why):
            return "the history at \(path) cannot be used (\(why)); predictions start from the profile. Fix it, move it away, or set AVATAR_BATCH_HOME to another folder"
        case let .newer(path, migration):
            return "the history at \(path) was written by a newer avatar-batch (it has \"\(migration)\"); predictions start from the profile. Upgrade, or set AVATAR_BATCH_HOME to another folder"
        }
    }
}

/// One attempt's figures, as the history keeps them.
public struct HistoryObservation: Sendable, Hashable, Codable {
    public var rendererIdentity: String
    public var renderer: String
    /// `NAME MEMORYGB` (e.g. "NVIDIA H200 140GB"): predictions for one GPU model come from that model's figures.
    public var gpuModel: String
    public var bucket: String
    public var peakGB: Double?
    /// Solo-equivalent seconds: a co-located attempt's wall time weighted by S(k)/k of the k it shared its GPU with,
    /// as the batch that ran it counted it.
    public var seconds: Double?
    /// Wall seconds (what S(k) is learned from); nil when not known.
    public var wallSeconds: Double?
    public var frames: Int
    public var oom: Bool
    /// How many attempts shared the GPU (1: alone). Co-located figures teach S(k), not solo time.
    public var colocated: Int
    /// A warm worker's request: `seconds` holds no load (the profile's start-up less its worker's load, and the render).
    public var warm: Bool
    /// A cold attempt's start-up as its renderer reported it (`Observation.startupSeconds`); nil: not reported.
    public var startupSeconds: Double?
    /// Seconds its render ran beside k attempts rendering on its card, itself included, by k (1: alone); nil when not
    /// known (a Slurm node's, or recorded before 2026-12-01).
    public var stretches: [Int: Double]?
    /// Which batch recorded it (its manifest's name and store).
    public var batch: String
    public var recordedAt: Double

    public init(rendererIdentity: String, renderer: String, gpuModel: String, bucket: String, peakGB: Double?, seconds: Double?,
                wallSeconds: Double? = nil, frames: Int, oom: Bool, colocated: Int = 1, warm: Bool = false, startupSeconds: Double? = nil,
                stretches: [Int: Double]? = nil, batch: String, recordedAt: Double = Date().timeIntervalSince1970) {
        self.wallSeconds = wallSeconds
        self.stretches = stretches
        self.startupSeconds = startupSeconds
        self.warm = warm
        self.rendererIdentity = rendererIdentity
        self.renderer = renderer
        self.gpuModel = gpuModel
        self.bucket = bucket
        self.peakGB = peakGB
        self.seconds = seconds
        self.frames = frames
        self.oom = oom
        self.colocated = colocated
        self.batch = batch
        self.recordedAt = recordedAt
    }
}

/// One warm worker's load (its start to its "ready"), as the history keeps it.
public struct HistoryLoad: Sendable, Hashable, Codable {
    public var rendererIdentity: String
    public var renderer: String
    public var gpuModel: String
    /// The load settings it was started with (`name=value, ...`; "" when it has none).
    public var loadSettings: String
    public var seconds: Double
    public var batch: String
    public var recordedAt: Double

    public init(rendererIdentity: String, renderer: String, gpuModel: String, loadSettings: String, seconds: Double, batch: String,
                recordedAt: Double = Date().timeIntervalSince1970) {
        self.rendererIdentity = rendererIdentity
        self.renderer = renderer
        self.gpuModel = gpuModel
        self.loadSettings = loadSettings
        self.seconds = seconds
        self.batch = batch
        self.recordedAt = recordedAt
    }
}

/// A calibration: how `calibrate` measured a renderer on a GPU model.
public struct CalibrationRecord: Sendable, Hashable, Codable {
    public var id: Int64
    public var rendererIdentity: String
    public var renderer: String
    public var gpuModel: String
    /// running (interrupted, or under way), complete, or discarded.
    public var state: String
    public var startedAt: Double
    public var finishedAt: Double?
    public var workDir: String
    public var fit: CalibrationFit?
    public var note: String?
}
