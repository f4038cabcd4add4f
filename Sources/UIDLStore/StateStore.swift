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
    /// A shared lock on `<path>.inuse`, held while this process has the database open (see ``holdInUse(_:path:migrating:)``).
    private let inUse: Int32
    /// The file opened (device and inode), to tell when the path no longer leads to it (``isInPlace``).
    private let identity: (device: UInt64, inode: UInt64)?

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
            let pending = migrator.migrations.filter { !done.contains($0) }
            self.inUse = try Self.holdInUse(path, migrating: done.isEmpty ? [] : pending)
            if !pending.isEmpty { try migrator.migrate(database) }
            self.identity = Self.fileIdentity(path)
        } catch {
            throw StateError.wrapping(error, path: path)
        }
    }

    deinit {
        if self.inUse >= 0 { close(self.inUse) }
    }

    private static func fileIdentity(_ path: String) -> (device: UInt64, inode: UInt64)? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return (UInt64(st.st_dev), UInt64(st.st_ino))
    }

    /// Whether the path still leads to the database this store has open: false once it was removed (its directory
    /// deleted) or replaced (a backup restored over it). Every write would then go to a file nobody will read again.
    public var isInPlace: Bool {
        guard let identity = self.identity, let now = Self.fileIdentity(self.path) else { return false }
        return now == identity
    }

    /// Takes a shared lock on `<path>.inuse` for as long as this process has the database open. An upgrade of an
    /// existing database (`migrating` not empty) first needs that lock exclusively, waited for up to 5 s: no other
    /// process may have the file open, because one started by an older popfetch (a daemon left running across an
    /// upgrade) would go on using it with the statements and assumptions of the old schema. Such an upgrade is
    /// refused as busy (try again) with what to do. Every process that opens the database takes the lock; one that
    /// does not (a popfetch from before this lock, sqlite3) is seen by SQLite's own lock (``openElsewhere(_:)``).
    /// -1 when the file cannot be made and nothing is to be upgraded; an upgrade is then refused.
    static func holdInUse(_ path: String, migrating: [String]) throws -> Int32 {
        let fd = open(path + ".inuse", O_CREAT | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else {
            // Without the file the upgrade cannot tell whether another process uses the database: refused, loudly
            // (a read-only directory fails before this, on the database itself).
            guard migrating.isEmpty else {
                throw StateError(
                    path: path,
                    message: "needs upgrading to this popfetch's schema, but \(path).inuse cannot be opened "
                        + "(\(String(cString: strerror(errno)))): make it the database owner's, or remove it")
            }
            return -1
        }
        if !migrating.isEmpty {
            var alone = false
            for _ in 0..<100 {
                if flock(fd, LOCK_EX | LOCK_NB) == 0 {
                    // The lock only sees popfetch processes from this version on; SQLite's own lock sees any
                    // process that has the file open (a daemon started by an older popfetch, sqlite3, ...).
                    if !Self.openElsewhere(path) {
                        alone = true
                        break
                    }
                    flock(fd, LOCK_UN)
                }
                usleep(50_000)
            }
            guard alone else {
                close(fd)
                throw StateError(
                    path: path,
                    message: "needs upgrading to this popfetch's schema (\(migrating.joined(separator: ", "))), "
                        + "but another popfetch process has it open (a daemon started before popfetch was upgraded?): "
                        + "restart it (systemctl --user restart popfetch) or stop it, then try again",
                    isBusy: true)
            }
        }
        // Shared from now on (converted from exclusive after a check, or taken): nobody else holds it exclusively,
        // since that happens only under the opening lock, which this process holds.
        for _ in 0..<100 {
            if flock(fd, LOCK_SH | LOCK_NB) == 0 { return fd }
            usleep(50_000)
        }
        close(fd)
        throw StateError(path: path, message: "another process holds \(path).inuse exclusively", isBusy: true)
    }

    /// Whether a process other than this one has the database open. Every SQLite connection to a database in WAL
    /// mode holds a read lock on byte 128 of `<path>-shm` (its "DMS" slot) for as long as it is open, whichever
    /// program or popfetch version it is. Read from /proc/locks rather than by opening `-shm` here: closing a
    /// descriptor of a file drops every POSIX lock this process holds on it, SQLite's own included. False when
    /// there is no `-shm` file (nobody has it open in WAL mode) or /proc/locks cannot be read.
    static func openElsewhere(_ path: String) -> Bool {
        var st = stat()
        guard stat(path + "-shm", &st) == 0,
            let table = try? String(contentsOfFile: "/proc/locks", encoding: .utf8)
        else { return false }
        let dev = UInt64(st.st_dev)
        let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & ~0xfff)
        let minor = (dev & 0xff) | ((dev >> 12) & ~0xff)
        func hex2(_ v: UInt64) -> String {
            let h = String(v, radix: 16)
            return h.count < 2 ? "0" + h : h
        }
        let file = "\(hex2(major)):\(hex2(minor)):\(UInt64(st.st_ino))"
        let me = String(getpid())
        for line in table.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard let i = fields.firstIndex(where: { $0 == file }), i > 0, i + 2 < fields.count
            else { continue }
            if fields[i - 1] == me { continue }
            let start = UInt64(fields[i + 1]) ?? UInt64.max
            let end = fields[i + 2] == "EOF" ? UInt64.max : (UInt64(fields[i + 2]) ?? 0)
            if start <= 128 && 128 <= end { return true }
        }
        return false
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
        let fd = open(path + ".lock", O_CREAT | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0o600)
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
                // The system's words ("Permission denied"), not Foundation's NSCocoaErrorDomain dump.
                let ns = error as NSError
                let posix = (ns.userInfo[NSUnderlyingErrorKey] as? any Error).map { ($0 as NSError).code }
                let why = posix.map { String(cString: strerror(Int32($0))) } ?? ns.localizedDescription
                throw StateError(path: file, message: "cannot create directory \(directory): \(why)")
            }
        }
        let fd = open(file, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        if fd < 0 {
            throw StateError(path: file, message: "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        try Self.keepPrivate(fd, file)
        // SQLite's own files beside it, when they exist (it makes new ones with the database's mode).
        for sibling in [file + "-wal", file + "-shm"] {
            let other = open(sibling, O_RDWR | O_CLOEXEC | O_NOFOLLOW)
            guard other >= 0 else { continue }
            defer { close(other) }
            try Self.keepPrivate(other, sibling)
        }
    }

    /// The state holds OAuth2 refresh tokens and what was delivered where: a file of another user's is refused (in
    /// a shared directory, someone else could have made it to read them), and one readable by others (restored
    /// with `cp` or `tar` under umask 022) is made the owner's alone again.
    private static func keepPrivate(_ fd: Int32, _ file: String) throws {
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw StateError(path: file, message: "cannot read its mode: \(String(cString: strerror(errno)))")
        }
        guard st.st_uid == geteuid() else {
            throw StateError(
                path: file,
                message: "belongs to another user (uid \(st.st_uid)); popfetch keeps OAuth2 tokens there: use a state "
                    + "file of your own (--state, or the default in ~/.local/state/popfetch)")
        }
        if st.st_mode & 0o077 != 0 {
            guard fchmod(fd, 0o600) == 0 else {
                throw StateError(
                    path: file,
                    message: "is readable by others and cannot be made private: \(String(cString: strerror(errno)))")
            }
        }
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
