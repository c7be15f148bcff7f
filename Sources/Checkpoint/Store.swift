import Foundation
import GRDB
import Manifest

/// The SQLite store that makes a batch resumable: one database per batch, WAL mode, every state change one
/// transaction. `synchronous=NORMAL` in WAL mode: a crash or SIGKILL of avatar-batch loses nothing committed;
/// a power loss can lose the last transactions (never corrupt the file), which costs at most a re-render.
public final class Store: Sendable {
    public let path: String
    let pool: DatabasePool
    /// The select list of `attempts` that `Store.attempt` reads by position: a column a read-only open of an older
    /// store lacks is selected as NULL (by-name lookups cost a reader of 100,000 attempts most of its time).
    let attemptSelect: String

    /// Opens (creating when asked) the store at `path`. Readers use `readOnly` and never block a writer.
    public convenience init(path: String, readOnly: Bool = false) throws {
        try self.init(path: path, readOnly: readOnly, migratingUpTo: nil)
    }

    /// Opens the store applying migrations only up to `migratingUpTo` (tests make stores of older versions with it).
    package init(path: String, readOnly: Bool = false, migratingUpTo last: String?) throws {
        self.path = path
        let dir = (path as NSString).deletingLastPathComponent
        if !readOnly {
            do {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
                if !FileManager.default.fileExists(atPath: path) {
                    // Created owner-only: the store holds prompts, paths and logs.
                    guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]) else {
                        throw CheckpointError.notWritable(path: path, reason: "cannot create the file")
                    }
                }
            } catch let e as CheckpointError {
                throw e
            } catch {
                throw CheckpointError.notWritable(path: path, reason: "\(error.localizedDescription)")
            }
        }
        pool = try DatabasePool(path: path, configuration: Store.configuration(readOnly: readOnly, busySeconds: 30))
        if !readOnly {
            if let last { try Store.migrator.migrate(pool, upTo: last) } else { try Store.migrator.migrate(pool) }
        }
        attemptSelect = try pool.read { db in
            let present = Set(try Row.fetchAll(db, sql: "PRAGMA table_info(attempts)").map { ($0["name"] as String).lowercased() })
            return Store.attemptColumns.map { present.contains($0) ? $0 : "NULL AS \($0)" }.joined(separator: ", ")
        }
    }

    /// How avatar-batch opens its SQLite files (the store, the history): WAL through a pool, writers waiting up to
    /// `busySeconds` for each other, and `synchronous = NORMAL` (docs/running.md says what that syncs).
    static func configuration(readOnly: Bool, busySeconds: Double) -> Configuration {
        var config = Configuration()
        config.readonly = readOnly
        config.busyMode = .timeout(busySeconds)
        config.label = "avatar-batch"
        config.prepareDatabase { db in
            if !db.configuration.readonly {
                try db.execute(sql: "PRAGMA synchronous = NORMAL")
            }
        }
        return config
    }

    /// Schema migrations: string ids, plain SQL, never edited once landed.
    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("2026-11-24-initial") { db in
            try db.execute(sql: """
                CREATE TABLE runs (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    host TEXT NOT NULL, pid INTEGER NOT NULL, process_start INTEGER NOT NULL, user TEXT NOT NULL,
                    command TEXT NOT NULL, manifest_path TEXT NOT NULL, manifest_digest TEXT NOT NULL,
                    started_at REAL NOT NULL, ended_at REAL, exit_status INTEGER
                );
                CREATE TABLE orchestrator (
                    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
                    run_id INTEGER NOT NULL REFERENCES runs(id),
                    host TEXT NOT NULL, pid INTEGER NOT NULL, process_start INTEGER NOT NULL, since REAL NOT NULL
                );
                CREATE TABLE jobs (
                    id TEXT PRIMARY KEY,
                    content_key TEXT NOT NULL,
                    state TEXT NOT NULL CHECK (state IN ('pending','running','succeeded','failed','interrupted','cancelled')),
                    attempt_count INTEGER NOT NULL DEFAULT 0,
                    retry_from INTEGER NOT NULL DEFAULT 0,
                    settings_json TEXT NOT NULL,
                    output TEXT NOT NULL,
                    output_digest TEXT, output_size INTEGER, output_mtime REAL,
                    predicted_gb REAL, predicted_s REAL, observed_peak_gb REAL, observed_s REAL,
                    priority INTEGER NOT NULL DEFAULT 0,
                    in_manifest INTEGER NOT NULL DEFAULT 1,
                    reason TEXT,
                    updated_at REAL NOT NULL
                );
                CREATE TABLE attempts (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    job_id TEXT NOT NULL REFERENCES jobs(id),
                    number INTEGER NOT NULL,
                    content_key TEXT NOT NULL,
                    run_id INTEGER NOT NULL REFERENCES runs(id),
                    host TEXT NOT NULL,
                    gpu INTEGER, gpu_uuid TEXT, pid INTEGER, process_start INTEGER, process_group INTEGER,
                    settings_json TEXT NOT NULL, change TEXT NOT NULL, isolated INTEGER NOT NULL, rung INTEGER NOT NULL,
                    started_at REAL NOT NULL, ended_at REAL,
                    exit_status INTEGER, signal INTEGER, classification TEXT,
                    log_path TEXT, stderr_tail TEXT, peak_gb REAL, seconds REAL, slurm_job_id TEXT, note TEXT
                );
                CREATE INDEX attempts_by_job ON attempts(job_id, number);
                CREATE INDEX attempts_open ON attempts(ended_at) WHERE ended_at IS NULL;
                CREATE TABLE observations (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    renderer TEXT NOT NULL, bucket TEXT NOT NULL, gpu_model TEXT NOT NULL,
                    peak_gb REAL, seconds REAL, frames INTEGER NOT NULL, oom INTEGER NOT NULL, job_id TEXT,
                    recorded_at REAL NOT NULL
                );
                CREATE INDEX observations_by_renderer ON observations(renderer, bucket);
                """)
        }
        // Status and counts filter jobs by state; a store of 100,000 jobs should not scan them all.
        m.registerMigration("2026-11-24-jobs-by-state") { db in
            try db.execute(sql: "CREATE INDEX jobs_by_state ON jobs(in_manifest, state)")
        }
        // Where an attempt ran was a GPU UUID of "slurm" for Slurm attempts: now a typed column, and Slurm attempts
        // have no GPU UUID (the node's GPU is Slurm's choice).
        m.registerMigration("2026-11-30-attempt-executor") { db in
            try db.execute(sql: """
                ALTER TABLE attempts ADD COLUMN executor TEXT NOT NULL DEFAULT 'local';
                UPDATE attempts SET executor = 'slurm', gpu_uuid = NULL WHERE gpu_uuid = 'slurm';
                """)
        }
        // Warm workers (docs/workers.md): each worker's life, and which worker served an attempt.
        m.registerMigration("2026-11-30-workers") { db in
            try db.execute(sql: """
                CREATE TABLE workers (
                    id TEXT PRIMARY KEY,
                    run_id INTEGER NOT NULL REFERENCES runs(id),
                    host TEXT NOT NULL, gpu INTEGER, gpu_uuid TEXT, renderer TEXT NOT NULL, load_settings TEXT NOT NULL,
                    pid INTEGER, process_start INTEGER, log_path TEXT,
                    started_at REAL NOT NULL, ready_at REAL, load_seconds REAL, resident_gb REAL,
                    served INTEGER NOT NULL DEFAULT 0, ended_at REAL, end_note TEXT
                );
                CREATE INDEX workers_open ON workers(ended_at) WHERE ended_at IS NULL;
                ALTER TABLE attempts ADD COLUMN worker_id TEXT;
                """)
        }
        // Where predictions came from (docs/calibration.md): the run's basis, and each attempt's own.
        m.registerMigration("2026-11-30-prediction-source") { db in
            try db.execute(sql: """
                ALTER TABLE runs ADD COLUMN prediction_basis TEXT;
                ALTER TABLE attempts ADD COLUMN predicted_from TEXT;
                """)
        }
        // A warm worker's request time holds no load: the predictor must know which times are which.
        m.registerMigration("2026-11-30-observation-warm") { db in
            try db.execute(sql: "ALTER TABLE observations ADD COLUMN warm INTEGER NOT NULL DEFAULT 0")
        }
        // A cold attempt's start-up as its renderer reported it (the rest of its time is what a request would take).
        m.registerMigration("2026-12-01-observation-startup") { db in
            try db.execute(sql: "ALTER TABLE observations ADD COLUMN startup_s REAL")
        }
        // A cold attempt's render as its renderer reported it: calibrate lines up cold probes together by their renders.
        m.registerMigration("2026-12-01-attempt-render") { db in
            try db.execute(sql: "ALTER TABLE attempts ADD COLUMN render_s REAL")
        }
        return m
    }

    /// Records what a run's predictions start from ("calibration of ... on ...; history: N observations").
    public func notePredictionBasis(runID: Int64, _ basis: String) throws {
        try pool.write { db in try db.execute(sql: "UPDATE runs SET prediction_basis = ? WHERE id = ?", arguments: [basis, runID]) }
    }

    /// A store error in words, with the fix, for SQLite's own errors (disk full, read-only, I/O); nil for others.
    /// Whatever was committed before it stays: the same command resumes once the cause is fixed.
    public static func explain(_ error: any Error, path: String) -> String? {
        guard let e = error as? DatabaseError else { return nil }
        let resume = "what was recorded before is kept; run the same command again to resume"
        switch e.resultCode {
        case .SQLITE_FULL:
            return "the store's filesystem is full (\(path)): nothing more can be recorded, so the run stopped; free space there (or pass --state on another disk); \(resume)"
        case .SQLITE_READONLY:
            return "the store became read-only (\(path)); make its folder writable again; \(resume)"
        case .SQLITE_IOERR, .SQLITE_CANTOPEN:
            return "cannot read or write the store (\(path)): \(e.message ?? "I/O error") (SQLite \(e.extendedResultCode.rawValue)); check its disk; \(resume)"
        case .SQLITE_CORRUPT, .SQLITE_NOTADB:
            return "the store \(path) is damaged: \(e.message ?? "") ; move it aside to start the batch afresh (outputs already in place are kept and skipped when unchanged)"
        default:
            return nil
        }
    }

    /// Runs raw SQL in one transaction: tests use it to build rows of older schema versions.
    package func executeRaw(_ sql: String) throws {
        try pool.write { db in try db.execute(sql: sql) }
    }

    /// Index names, for tests of migrations.
    package func indexNames() throws -> [String] {
        try pool.read { db in try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%' ORDER BY name") }
    }

    /// The migrations applied, oldest first.
    public func appliedMigrations() throws -> [String] {
        try pool.read { db in try Store.migrator.appliedIdentifiers(db).sorted() }
    }

    // MARK: the orchestrator lock

    /// Becomes the one orchestrator of this store, or throws `locked` naming the live one.
    /// A holder that is dead (`isAlive` says so) is replaced: its jobs are reconciled by the caller.
    public func acquire(_ me: ProcessIdentity, user: String, command: String, manifestPath: String, manifestDigest: String,
                        isAlive: @escaping @Sendable (ProcessIdentity) -> Bool, now: Double = Date().timeIntervalSince1970) throws -> Int64 {
        try pool.write { db -> Int64 in
            if let row = try Row.fetchOne(db, sql: "SELECT run_id, host, pid, process_start, since FROM orchestrator WHERE singleton = 1") {
                let holder = ProcessIdentity(host: row["host"], pid: row["pid"], startTime: UInt64(row["process_start"] as Int64))
                if holder != me && isAlive(holder) {
                    let since = Date(timeIntervalSince1970: row["since"]).formatted(.iso8601)
                    throw CheckpointError.locked(host: holder.host, pid: holder.pid, since: since, runID: row["run_id"])
                }
                try db.execute(sql: "UPDATE runs SET ended_at = COALESCE(ended_at, ?), exit_status = COALESCE(exit_status, -1) WHERE id = ?",
                               arguments: [now, row["run_id"] as Int64])
            }
            try db.execute(sql: """
                INSERT INTO runs (host, pid, process_start, user, command, manifest_path, manifest_digest, started_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [me.host, me.pid, Int64(me.startTime), user, command, manifestPath, manifestDigest, now])
            let runID = db.lastInsertedRowID
            try db.execute(sql: "INSERT OR REPLACE INTO orchestrator (singleton, run_id, host, pid, process_start, since) VALUES (1, ?, ?, ?, ?, ?)",
                           arguments: [runID, me.host, me.pid, Int64(me.startTime), now])
            return runID
        }
    }

    /// Gives the store up at the end of a run.
    public func release(runID: Int64, exitStatus: Int32, now: Double = Date().timeIntervalSince1970) throws {
        try pool.write { db in
            try db.execute(sql: "UPDATE runs SET ended_at = ?, exit_status = ? WHERE id = ?", arguments: [now, exitStatus, runID])
            try db.execute(sql: "DELETE FROM orchestrator WHERE run_id = ?", arguments: [runID])
        }
    }

    /// The live holder, if any row says so.
    public func holder() throws -> (ProcessIdentity, Int64, Double)? {
        try pool.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT run_id, host, pid, process_start, since FROM orchestrator") else { return nil }
            return (ProcessIdentity(host: row["host"], pid: row["pid"], startTime: UInt64(row["process_start"] as Int64)), row["run_id"], row["since"])
        }
    }

    // MARK: manifest sync

    /// Brings the store in line with the manifest's jobs in one transaction: new jobs are added as pending, jobs
    /// whose content key changed go back to pending (their attempts stay, under the old key), jobs that left the
    /// manifest are marked so. A job left `running` is not touched here (see `openAttempts`).
    public func sync(_ jobs: [ManifestJob], now: Double = Date().timeIntervalSince1970) throws -> SyncSummary {
        try pool.write { db -> SyncSummary in
            var summary = SyncSummary()
            // By position, not name (name lookups dominated a 100,000-job sync); with what `touch` would write, so
            // unchanged jobs are not rewritten.
            var existing: [String: (key: String, state: String, priority: Int, gb: Double?, seconds: Double?, inManifest: Bool)] = [:]
            let cursor = try Row.fetchCursor(db, sql: "SELECT id, content_key, state, priority, predicted_gb, predicted_s, in_manifest FROM jobs")
            while let row = try cursor.next() {
                existing[row[0]] = (row[1], row[2], row[3], row[4], row[5], row[6])
            }
            let insert = try db.makeStatement(sql: """
                INSERT INTO jobs (id, content_key, state, settings_json, output, priority, predicted_gb, predicted_s, in_manifest, updated_at)
                VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, 1, ?)
                """)
            let reset = try db.makeStatement(sql: """
                UPDATE jobs SET content_key = ?, state = 'pending', retry_from = attempt_count, settings_json = ?, output = ?, output_digest = NULL,
                    priority = ?, predicted_gb = ?, predicted_s = ?, in_manifest = 1, reason = 'content key changed', updated_at = ? WHERE id = ?
                """)
            let touch = try db.makeStatement(sql: "UPDATE jobs SET priority = ?, predicted_gb = ?, predicted_s = ?, in_manifest = 1 WHERE id = ?")
            var seen = Set<String>()
            for j in jobs {
                seen.insert(j.id)
                if let old = existing[j.id] {
                    if old.key == j.contentKey {
                        summary.unchanged += 1
                        if old.priority != j.priority || old.gb != j.predictedGB || old.seconds != j.predictedSeconds || !old.inManifest {
                            try touch.execute(arguments: [j.priority, j.predictedGB, j.predictedSeconds, j.id])
                        }
                    } else {
                        let from = JobState(rawValue: old.state) ?? .pending
                        if from != .pending && from != .running && !from.canMove(to: .pending) {
                            throw CheckpointError.illegalTransition(job: j.id, from: from, to: .pending)
                        }
                        if from == .running { continue }  // reconciled first; the next sync resets it
                        summary.changed += 1
                        try reset.execute(arguments: [j.contentKey, j.settingsJSON, j.output, j.priority, j.predictedGB, j.predictedSeconds, now, j.id])
                    }
                } else {
                    summary.added += 1
                    try insert.execute(arguments: [j.id, j.contentKey, j.settingsJSON, j.output, j.priority, j.predictedGB, j.predictedSeconds, now])
                }
            }
            let gone = existing.keys.filter { !seen.contains($0) }
            summary.removed = gone.count
            let mark = try db.makeStatement(sql: "UPDATE jobs SET in_manifest = 0 WHERE id = ?")
            for id in gone { try mark.execute(arguments: [id]) }
            return summary
        }
    }

    // MARK: transitions

    /// `retry`: puts failed or cancelled jobs (or, named explicitly, any finished job) back in the queue with a
    /// fresh OOM ladder; attempts so far stay in the history. Returns the ids requeued.
    public func requeue(_ ids: [String]?, includeSucceeded: Bool, now: Double = Date().timeIntervalSince1970) throws -> [String] {
        try pool.write { db -> [String] in
            // Named jobs are looked up by key (a run that finds many outputs gone requeues them in one call; a scan of
            // the whole table per call made that quadratic); all of them, by a scan. Either way in store order.
            var rows: [(rowid: Int64, id: String, state: JobState)] = []
            if let ids {
                let one = try db.cachedStatement(sql: "SELECT rowid, state FROM jobs WHERE id = ? AND in_manifest = 1")
                for id in Set(ids) {
                    if let row = try Row.fetchOne(one, arguments: [id]), let state = JobState(rawValue: row[1]) { rows.append((row[0], id, state)) }
                }
                rows.sort { $0.rowid < $1.rowid }
            } else {
                for row in try Row.fetchAll(db, sql: "SELECT rowid, id, state FROM jobs WHERE in_manifest = 1 ORDER BY rowid") {
                    if let state = JobState(rawValue: row[2]) { rows.append((row[0], row[1], state)) }
                }
            }
            var done: [String] = []
            for (_, id, state) in rows {
                let eligible = state == .failed || state == .cancelled || (includeSucceeded && state == .succeeded)
                guard eligible else { continue }
                try Store.move(db, id, to: .pending, reason: "requeued by retry", now: now)
                try db.cachedStatement(sql: "UPDATE jobs SET retry_from = attempt_count WHERE id = ?").execute(arguments: [id])
                done.append(id)
            }
            return done
        }
    }

    /// Records a fresh digest, size and mtime for a succeeded job's output (after a full re-check).
    public func refreshOutput(_ jobID: String, digest: String, size: Int, mtime: Double) throws {
        try pool.write { db in
            try db.execute(sql: "UPDATE jobs SET output_digest = ?, output_size = ?, output_mtime = ? WHERE id = ?", arguments: [digest, size, mtime, jobID])
        }
    }

    /// Moves a job to `next` (checked against `JobState.successors`) in its own transaction.
    public func transition(_ jobID: String, to next: JobState, reason: String? = nil, outputDigest: String? = nil,
                           now: Double = Date().timeIntervalSince1970) throws {
        try pool.write { db in
            try Store.move(db, jobID, to: next, reason: reason, now: now)
            if let outputDigest {
                try db.execute(sql: "UPDATE jobs SET output_digest = ? WHERE id = ?", arguments: [outputDigest, jobID])
            }
        }
    }

    // The statements of a state change are prepared once per connection (cachedStatement): preparing them again
    // for every transition took most of its CPU time.
    static func move(_ db: Database, _ jobID: String, to next: JobState, reason: String?, now: Double) throws {
        guard let raw = try String.fetchOne(db.cachedStatement(sql: "SELECT state FROM jobs WHERE id = ?"), arguments: [jobID]) else {
            throw CheckpointError.unknownJob(jobID)
        }
        let from = JobState(rawValue: raw)!
        guard from.canMove(to: next) else { throw CheckpointError.illegalTransition(job: jobID, from: from, to: next) }
        try db.cachedStatement(sql: "UPDATE jobs SET state = ?, reason = ?, updated_at = ? WHERE id = ?").execute(arguments: [next.rawValue, reason, now, jobID])
    }

    /// Records "started" before launch: the job becomes running and an open attempt row is written, in one transaction.
    public func startAttempt(_ jobID: String, runID: Int64, host: String, _ a: AttemptStart, now: Double = Date().timeIntervalSince1970) throws -> AttemptRecord {
        try pool.write { db -> AttemptRecord in
            try Store.move(db, jobID, to: .running, reason: nil, now: now)
            let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT content_key, attempt_count FROM jobs WHERE id = ?"), arguments: [jobID])!
            let number = (row["attempt_count"] as Int) + 1
            let key: String = row["content_key"]
            let settings = String(decoding: try JSONEncoder.sorted.encode(a.settings), as: UTF8.self)
            try db.cachedStatement(sql: "UPDATE jobs SET attempt_count = ?, predicted_gb = COALESCE(?, predicted_gb), predicted_s = COALESCE(?, predicted_s) WHERE id = ?")
                .execute(arguments: [number, a.predictedGB, a.predictedSeconds, jobID])
            try db.cachedStatement(sql: """
                INSERT INTO attempts (job_id, number, content_key, run_id, host, executor, gpu, gpu_uuid, settings_json, change, isolated, rung, started_at, log_path, predicted_from)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """).execute(arguments: [jobID, number, key, runID, host, a.executor.rawValue, a.gpu, a.gpuUUID, settings, a.change, a.isolated, a.rung, now, a.logPath,
                                         a.predictedFrom])
            return try attempt(db, id: db.lastInsertedRowID)!
        }
    }

    /// Records the launched process (pid, its start time, its process group) once it exists.
    public func recordProcess(attemptID: Int64, pid: Int32, processStart: UInt64, processGroup: Int32) throws {
        try pool.write { db in
            try db.execute(sql: "UPDATE attempts SET pid = ?, process_start = ?, process_group = ? WHERE id = ?",
                           arguments: [pid, Int64(processStart), processGroup, attemptID])
        }
    }

    /// Records a Slurm job id for an attempt.
    public func recordSlurmJob(attemptID: Int64, slurmJobID: String) throws {
        try pool.write { db in
            try db.execute(sql: "UPDATE attempts SET slurm_job_id = ? WHERE id = ?", arguments: [slurmJobID, attemptID])
        }
    }

    /// Notes something about an open attempt before it ends (its end replaces the note).
    public func recordNote(attemptID: Int64, note: String) throws {
        try pool.write { db in
            try db.execute(sql: "UPDATE attempts SET note = ? WHERE id = ? AND ended_at IS NULL", arguments: [note, attemptID])
        }
    }

    /// Records where an attempt runs once the executor knows (a Slurm node).
    public func recordHost(attemptID: Int64, host: String) throws {
        try pool.write { db in
            try db.execute(sql: "UPDATE attempts SET host = ? WHERE id = ?", arguments: [host, attemptID])
        }
    }

    /// Closes an attempt and moves its job, in one transaction; "done" is only ever written here, after validation.
    public func finishAttempt(_ attempt: AttemptRecord, _ end: AttemptEnd, now: Double = Date().timeIntervalSince1970) throws {
        try pool.write { db in
            try db.cachedStatement(sql: """
                UPDATE attempts SET ended_at = ?, exit_status = ?, signal = ?, classification = ?, stderr_tail = ?, peak_gb = ?, seconds = ?, note = ?,
                    render_s = ?
                WHERE id = ? AND ended_at IS NULL
                """).execute(arguments: [now, end.exitStatus, end.signal, end.classification.rawValue, end.stderrTail, end.peakGB, end.seconds, end.note,
                                         end.renderSeconds, attempt.id])
            guard db.changesCount == 1 else { return }  // already closed (reconciled by someone else)
            try Store.move(db, attempt.jobID, to: end.jobState, reason: end.reason, now: now)
            if end.classification == .succeeded {
                try db.cachedStatement(sql: "UPDATE jobs SET output_digest = ?, output_size = ?, output_mtime = ?, observed_peak_gb = ?, observed_s = ? WHERE id = ?")
                    .execute(arguments: [end.outputDigest, end.outputSize, end.outputMTime, end.peakGB, end.seconds, attempt.jobID])
            }
        }
    }

    // MARK: observations

    /// Adds a measurement for the predictor.
    public func record(_ o: Observation, renderer: String, now: Double = Date().timeIntervalSince1970) throws {
        try pool.write { db in
            try db.execute(sql: """
                INSERT INTO observations (renderer, bucket, gpu_model, peak_gb, seconds, frames, oom, job_id, warm, startup_s, recorded_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [renderer, o.bucket, o.gpuModel, o.peakGB, o.seconds, o.frames, o.oom, o.jobID, o.warm, o.startupSeconds, now])
        }
    }

    /// Every measurement of a renderer.
    public func observations(renderer: String) throws -> [Observation] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM observations WHERE renderer = ? ORDER BY id", arguments: [renderer]).map {
                Observation(bucket: $0["bucket"], gpuModel: $0["gpu_model"], peakGB: $0["peak_gb"], seconds: $0["seconds"], frames: $0["frames"], oom: $0["oom"], jobID: $0["job_id"],
                            warm: $0.hasColumn("warm") ? $0["warm"] : false, startupSeconds: $0.hasColumn("startup_s") ? $0["startup_s"] : nil)
            }
        }
    }

    // MARK: queries

    public func jobs() throws -> [JobRecord] {
        try pool.read { db in try Row.fetchAll(db, sql: "SELECT \(Store.jobColumns) FROM jobs ORDER BY rowid").map(Store.job) }
    }

    public func job(_ id: String) throws -> JobRecord? {
        try pool.read { db in try Row.fetchOne(db, sql: "SELECT \(Store.jobColumns) FROM jobs WHERE id = ?", arguments: [id]).map(Store.job) }
    }

    /// Attempts of one job (every content key), oldest first; or of every job when `jobID` is nil.
    public func attempts(jobID: String? = nil) throws -> [AttemptRecord] {
        try pool.read { db in
            let rows = jobID == nil
                ? try Row.fetchAll(db, sql: "SELECT \(attemptSelect) FROM attempts ORDER BY id")
                : try Row.fetchAll(db, sql: "SELECT \(attemptSelect) FROM attempts WHERE job_id = ? ORDER BY id", arguments: [jobID])
            return rows.map(Store.attempt)
        }
    }

    /// Every job in store order with its attempts (oldest first), read a page at a time: a caller that streams them
    /// (`status --json` of 100,000 jobs) never holds more than a page. Each page is one consistent read.
    public func forEachJob(pageSize: Int = 2000, _ body: (JobRecord, [AttemptRecord]) throws -> Void) throws {
        var after: Int64 = 0
        while true {
            let page: (jobs: [JobRecord], attempts: [String: [AttemptRecord]], last: Int64?) = try pool.read { db in
                let rows = try Row.fetchAll(db, sql: "SELECT \(Store.jobColumns), rowid FROM jobs WHERE rowid > ? ORDER BY rowid LIMIT ?",
                                            arguments: [after, pageSize])
                guard let last = rows.last else { return ([], [:], nil) }
                let attempts = try Row.fetchAll(db, sql: """
                    SELECT \(attemptSelect) FROM attempts WHERE job_id IN (SELECT id FROM jobs WHERE rowid > ? AND rowid <= ?) ORDER BY id
                    """, arguments: [after, last[18] as Int64]).map(Store.attempt)
                return (rows.map(Store.job), Dictionary(grouping: attempts, by: \.jobID), last[18])
            }
            guard let last = page.last else { return }
            for j in page.jobs { try body(j, page.attempts[j.id] ?? []) }
            after = last
        }
    }

    /// Attempts left open (started, never finished): what a dead orchestrator left behind.
    public func openAttempts() throws -> [AttemptRecord] {
        try pool.read { db in try Row.fetchAll(db, sql: "SELECT \(attemptSelect) FROM attempts WHERE ended_at IS NULL ORDER BY id").map(Store.attempt) }
    }

    public func runs() throws -> [RunRecord] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM runs ORDER BY id").map {
                RunRecord(id: $0["id"], host: $0["host"], pid: $0["pid"], user: $0["user"], manifestPath: $0["manifest_path"],
                          manifestDigest: $0["manifest_digest"], startedAt: $0["started_at"], endedAt: $0["ended_at"],
                          exitStatus: $0["exit_status"], command: $0["command"],
                          predictionBasis: $0.hasColumn("prediction_basis") ? $0["prediction_basis"] : nil)
            }
        }
    }

    /// Counts of jobs by state (jobs still in the manifest).
    public func counts() throws -> [JobState: Int] {
        try pool.read { db in
            var c: [JobState: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT state, COUNT(*) AS n FROM jobs WHERE in_manifest = 1 GROUP BY state") {
                if let s = JobState(rawValue: row["state"]) { c[s] = row["n"] }
            }
            return c
        }
    }

    /// `PRAGMA integrity_check`: "ok" when the file is sound.
    public func integrityCheck() throws -> String {
        try pool.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check").joined(separator: "\n") }
    }

    /// The columns `job(_:)` reads, in its order: rows are read by position (reading 100,000 rows by column name
    /// spent most of its time lower-casing names to look them up).
    static let jobColumns = """
        id, content_key, state, attempt_count, retry_from, settings_json, output, output_digest, output_size, output_mtime, \
        predicted_gb, predicted_s, observed_peak_gb, observed_s, priority, in_manifest, reason, updated_at
        """

    /// A job from a row of `SELECT \(jobColumns)`.
    static func job(_ r: Row) -> JobRecord {
        JobRecord(id: r[0], contentKey: r[1], state: JobState(rawValue: r[2]) ?? .pending, attemptCount: r[3],
                  retryFrom: r[4], settingsJSON: r[5], output: r[6], outputDigest: r[7], outputSize: r[8], outputMTime: r[9],
                  predictedGB: r[10], predictedSeconds: r[11], observedPeakGB: r[12], observedSeconds: r[13], priority: r[14],
                  inManifest: r[15], reason: r[16], updatedAt: r[17])
    }

    func attempt(_ db: Database, id: Int64) throws -> AttemptRecord? {
        try Row.fetchOne(db.cachedStatement(sql: "SELECT \(attemptSelect) FROM attempts WHERE id = ?"), arguments: [id]).map(Store.attempt)
    }

    /// The columns `Store.attempt` reads, in its order.
    static let attemptColumns = [
        "id", "job_id", "number", "content_key", "run_id", "host", "executor", "gpu", "gpu_uuid", "pid", "process_start",
        "process_group", "settings_json", "change", "isolated", "rung", "started_at", "ended_at", "exit_status", "signal",
        "classification", "log_path", "stderr_tail", "peak_gb", "seconds", "slurm_job_id", "note", "worker_id", "predicted_from",
        "render_s",
    ]

    /// An attempt from a row of `SELECT \(attemptSelect)`.
    static func attempt(_ r: Row) -> AttemptRecord {
        AttemptRecord(id: r[0], jobID: r[1], number: r[2], contentKey: r[3], runID: r[4], host: r[5],
                      executor: (r[6] as String?).flatMap(ExecutorKind.init(rawValue:)) ?? .local, gpu: r[7], gpuUUID: r[8], pid: r[9],
                      processStart: (r[10] as Int64?).map { UInt64($0) }, processGroup: r[11], settingsJSON: r[12], change: r[13],
                      isolated: r[14], rung: r[15], startedAt: r[16], endedAt: r[17], exitStatus: r[18], signal: r[19],
                      classification: (r[20] as String?).flatMap(AttemptClassification.init(rawValue:)), logPath: r[21],
                      stderrTail: r[22], peakGB: r[23], seconds: r[24], slurmJobID: r[25], note: r[26], workerID: r[27], predictedFrom: r[28],
                      renderSeconds: r[29])
    }
}

extension JSONEncoder {
    /// Sorted keys, so the same value always encodes to the same text.
    public static var sorted: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }
}
