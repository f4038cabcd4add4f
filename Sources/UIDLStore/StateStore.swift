import Foundation
import GRDB

#if canImport(Glibc)
    import Glibc
#endif

/// The SQLite state (through GRDB): UIDLs seen per mailbox, deliveries per recipient, and a record of every poll.
///
/// WAL mode with synchronous=NORMAL: a committed transaction survives kill -9 of the process. One transaction per
/// delivered message, committed before the message is deleted on the server.
public final class StateStore: Sendable {
    public let path: String
    private let db: DatabaseQueue

    public init(path: String) throws {
        self.path = path
        let dir = (path as NSString).deletingLastPathComponent
        do {
            try Self.prepare(directory: dir, file: path)
            var config = GRDB.Configuration()
            config.journalMode = .wal
            config.busyMode = .timeout(30)
            config.prepareDatabase { db in
                try db.execute(sql: "PRAGMA synchronous = NORMAL")
            }
            // Opening (which turns a new file to WAL: SQLite answers that with "database is locked" at once, without
            // waiting, while another process does the same) and migrating happen one process at a time. GRDB also
            // reads which versions are applied outside the transactions that apply them: two processes creating
            // or upgrading the file at once (a first poll and a `status`) would both run a migration, and one fail
            // ("duplicate column"). Held for milliseconds; the second finds the work done.
            let lock = Self.lockForOpening(path)
            defer { if lock >= 0 { close(lock) } }
            self.db = try DatabaseQueue(path: path, configuration: config)
            let migrator = Self.migrator
            let database = self.db
            let done = try database.read { try migrator.appliedIdentifiers($0) }
            try Self.refuseNewer(done, path: path)
            if !Set(migrator.migrations).isSubset(of: done) { try migrator.migrate(database) }
        } catch {
            throw StateError.wrapping(error, path: path)
        }
    }

    /// A database a newer popfetch has migrated further is refused, not used: this version does not know what the
    /// newer schema's tables and triggers promise (GRDB would ignore the unknown versions).
    static func refuseNewer(_ applied: Set<String>, path: String) throws {
        let known = Self.migrator.migrations
        let unknown = applied.subtracting(known)
        guard !unknown.isEmpty else { return }
        throw StateError(
            path: path,
            message: "written by a newer popfetch (schema \(unknown.sorted().joined(separator: ", "))); "
                + "this one knows up to \"\(known.last ?? "")\": run the newer popfetch, "
                + "or move the file aside to start over (then every message left on the server counts as new; "
                + "with keep = true, more than flood_limit of them pause the account to ask first)")
    }

    /// An exclusive lock on `<path>.lock`, waited for up to 30 s; -1 when the file cannot be made (a read-only
    /// directory: opening then fails on the database itself, with its own path) or the wait ran out.
    static func lockForOpening(_ path: String) -> Int32 {
        let fd = open(path + ".lock", O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return -1 }
        for _ in 0..<600 {
            if flock(fd, LOCK_EX | LOCK_NB) == 0 { return fd }
            usleep(50_000)
        }
        close(fd)
        return -1
    }

    /// Creates the state directory 0700 and the database file 0600 before SQLite touches them.
    static func prepare(directory: String, file: String) throws {
        if !directory.isEmpty && !FileManager.default.fileExists(atPath: directory) {
            do {
                try FileManager.default.createDirectory(
                    atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                throw StateError(path: file, message: "cannot create directory \(directory): \(error)")
            }
        }
        let fd = open(file, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        if fd < 0 {
            throw StateError(path: file, message: "cannot open: \(String(cString: strerror(errno)))")
        }
        close(fd)
    }

    func write<T: Sendable>(_ body: @Sendable (GRDB.Database) throws -> T) throws -> T {
        do {
            return try self.db.write(body)
        } catch {
            throw StateError.wrapping(error, path: self.path)
        }
    }

    func read<T: Sendable>(_ body: @Sendable (GRDB.Database) throws -> T) throws -> T {
        do {
            return try self.db.read(body)
        } catch {
            throw StateError.wrapping(error, path: self.path)
        }
    }
}
