import Foundation
import GRDB

/// Tells whether anyone has committed to a store since the last look, without reading it: SQLite's
/// `PRAGMA data_version` on one connection of its own (the number is per connection, so a pool's rotating readers
/// could not compare it). Used by whatever republishes a view of the store only when it changed.
public final class StoreChanges: @unchecked Sendable {
    private let queue: DatabaseQueue

    public init(path: String) throws {
        queue = try DatabaseQueue(path: path, configuration: Store.configuration(readOnly: true, busySeconds: 5))
    }

    /// A number that differs from the previous call's when another connection committed in between.
    public func version() throws -> Int {
        try queue.read { db in try Int.fetchOne(db, sql: "PRAGMA data_version") ?? 0 }
    }
}

/// Something that runs beside a batch for exactly as long as the run holds its store (`SessionOptions.companions`).
public protocol RunCompanion: Sendable {
    func start(runID: Int64)
    /// Returns once it has stopped and taken back whatever it showed others of the run.
    func stop()
}
