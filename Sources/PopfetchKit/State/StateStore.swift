#if canImport(Glibc)
import Glibc
#endif
import Foundation
import GRDB

/// What the state database knows of one message of one mailbox.
public struct MessageRecord: Hashable, Sendable {
    public var uid: String
    public var firstSeen: Date
    public var missingCount: Int
    public var deliveredAt: Date?
    public var deletedAt: Date?
    public var attempts: Int
    public var lastError: String?
    public var failedAt: Date?
    /// Recipients that already accepted this message.
    public var deliveredTo: Set<String>
}

/// Counts and outcome of one poll of one account, as stored in `polls`.
public struct PollRecord: Hashable, Sendable {
    public var id: Int64
    public var accountKey: String
    public var accountName: String
    public var started: Date
    public var finished: Date?
    public var outcome: String
    public var listed: Int
    public var new: Int
    public var delivered: Int
    public var bytes: Int
    public var deleted: Int
    public var deferred: Int
    public var failed: Int
    public var skipped: Int
    public var error: String?
    public var pending: Int = 0
}

/// What `popfetch status` shows for one account.
public struct AccountStatusRecord: Hashable, Sendable {
    public var lastPoll: PollRecord?
    public var failedMessages: Int
    public var deliveredTotal: Int
    public var consecutiveFailures: Int
    public var nextPoll: Date?
}

/// Failure of the state database (the CLI maps it to EX_IOERR).
public struct StateError: Error, Hashable, Sendable, CustomStringConvertible {
    public var path: String
    public var message: String
    public var description: String { "state database \(self.path): \(self.message)" }
}

/// The SQLite state (through GRDB): UIDLs seen per mailbox, deliveries per recipient, and a record of every poll.
///
/// WAL mode with synchronous=NORMAL: a committed transaction survives kill -9 of the process. One transaction per
/// delivered message, committed before the message is deleted on the server.
public final class StateStore: Sendable {
    public let path: String
    private let db: DatabaseQueue

    /// A UIDL absent from this many successful listings in a row is forgotten.
    public static let forgetAfterMissingListings = 3

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
            self.db = try DatabaseQueue(path: path, configuration: config)
            try Self.migrator.migrate(self.db)
        } catch let e as StateError {
            throw e
        } catch {
            throw StateError(path: path, message: "\(error)")
        }
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

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE messages (
                        account TEXT NOT NULL,
                        uidl TEXT NOT NULL,
                        first_seen REAL NOT NULL,
                        missing_count INTEGER NOT NULL DEFAULT 0,
                        size INTEGER,
                        delivered_at REAL,
                        deleted_at REAL,
                        attempts INTEGER NOT NULL DEFAULT 0,
                        last_error TEXT,
                        failed_at REAL,
                        PRIMARY KEY (account, uidl)
                    ) WITHOUT ROWID;
                    CREATE TABLE deliveries (
                        account TEXT NOT NULL,
                        uidl TEXT NOT NULL,
                        recipient TEXT NOT NULL,
                        delivered_at REAL,
                        attempts INTEGER NOT NULL DEFAULT 0,
                        last_error TEXT,
                        PRIMARY KEY (account, uidl, recipient)
                    ) WITHOUT ROWID;
                    CREATE TABLE polls (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        account TEXT NOT NULL,
                        account_name TEXT NOT NULL,
                        started REAL NOT NULL,
                        finished REAL,
                        outcome TEXT NOT NULL DEFAULT 'running',
                        listed INTEGER NOT NULL DEFAULT 0,
                        new INTEGER NOT NULL DEFAULT 0,
                        delivered INTEGER NOT NULL DEFAULT 0,
                        bytes INTEGER NOT NULL DEFAULT 0,
                        deleted INTEGER NOT NULL DEFAULT 0,
                        deferred INTEGER NOT NULL DEFAULT 0,
                        failed INTEGER NOT NULL DEFAULT 0,
                        skipped INTEGER NOT NULL DEFAULT 0,
                        error TEXT,
                        exit_code INTEGER
                    );
                    CREATE INDEX polls_by_name ON polls(account_name, id);
                    CREATE INDEX polls_by_account ON polls(account, id);
                    """)
        }
        m.registerMigration("v2: pending count per poll, daemon schedule") { db in
            try db.execute(
                sql: """
                    ALTER TABLE polls ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
                    CREATE TABLE schedule (
                        account_name TEXT PRIMARY KEY NOT NULL,
                        next_poll REAL,
                        consecutive_failures INTEGER NOT NULL DEFAULT 0
                    );
                    """)
        }
        m.registerMigration("v3: OAuth2 tokens") { db in
            try db.execute(
                sql: """
                    CREATE TABLE oauth_tokens (
                        account TEXT PRIMARY KEY NOT NULL,
                        refresh_token TEXT,
                        access_token TEXT,
                        expires_at REAL
                    );
                    """)
        }
        return m
    }

    private func write<T: Sendable>(_ body: @Sendable (GRDB.Database) throws -> T) throws -> T {
        do {
            return try self.db.write(body)
        } catch {
            throw StateError(path: self.path, message: "\(error)")
        }
    }

    private func read<T: Sendable>(_ body: @Sendable (GRDB.Database) throws -> T) throws -> T {
        do {
            return try self.db.read(body)
        } catch {
            throw StateError(path: self.path, message: "\(error)")
        }
    }

    // MARK: - Messages

    /// Every message known for the mailbox, with the recipients each was delivered to. One query each.
    public func messages(account: String) throws -> [String: MessageRecord] {
        try self.read { db in
            var out: [String: MessageRecord] = [:]
            let rows = try Row.fetchCursor(
                db,
                sql: """
                    SELECT uidl, first_seen, missing_count, delivered_at, deleted_at, attempts, last_error, failed_at
                    FROM messages WHERE account = ?
                    """, arguments: [account])
            while let r = try rows.next() {
                let uid: String = r[0]
                out[uid] = MessageRecord(
                    uid: uid, firstSeen: Date(timeIntervalSince1970: r[1]), missingCount: r[2],
                    deliveredAt: (r[3] as Double?).map(Date.init(timeIntervalSince1970:)),
                    deletedAt: (r[4] as Double?).map(Date.init(timeIntervalSince1970:)),
                    attempts: r[5], lastError: r[6],
                    failedAt: (r[7] as Double?).map(Date.init(timeIntervalSince1970:)),
                    deliveredTo: [])
            }
            let d = try Row.fetchCursor(
                db, sql: "SELECT uidl, recipient FROM deliveries WHERE account = ? AND delivered_at IS NOT NULL",
                arguments: [account])
            while let r = try d.next() {
                let uid: String = r[0]
                let rcpt: String = r[1]
                out[uid]?.deliveredTo.insert(rcpt)
            }
            return out
        }
    }

    /// Records a successful UIDL listing: new UIDLs are inserted, UIDLs seen again are reset, and UIDLs missing
    /// from ``forgetAfterMissingListings`` successful listings in a row are forgotten. Only changed rows are
    /// written, so a poll that finds nothing new writes almost nothing.
    public func recordListing(
        account: String, listed: [String: Int], known: [String: MessageRecord], at now: Date
    ) throws {
        let new = listed.filter { known[$0.key] == nil }
        let reappeared = known.values.filter { $0.missingCount > 0 && listed[$0.uid] != nil }.map(\.uid)
        let missing = known.values.filter { listed[$0.uid] == nil }
        if new.isEmpty && reappeared.isEmpty && missing.isEmpty { return }
        let t = now.timeIntervalSince1970
        try self.write { db in
            let insert = try db.makeStatement(
                sql: "INSERT OR IGNORE INTO messages (account, uidl, first_seen, size) VALUES (?, ?, ?, ?)")
            for (uid, size) in new {
                try insert.execute(arguments: [account, uid, t, size])
            }
            let reset = try db.makeStatement(
                sql: "UPDATE messages SET missing_count = 0 WHERE account = ? AND uidl = ?")
            for uid in reappeared {
                try reset.execute(arguments: [account, uid])
            }
            let bump = try db.makeStatement(
                sql: "UPDATE messages SET missing_count = missing_count + 1 WHERE account = ? AND uidl = ?")
            let forget = try db.makeStatement(sql: "DELETE FROM messages WHERE account = ? AND uidl = ?")
            let forgetDeliveries = try db.makeStatement(sql: "DELETE FROM deliveries WHERE account = ? AND uidl = ?")
            for m in missing {
                if m.missingCount + 1 >= Self.forgetAfterMissingListings {
                    try forget.execute(arguments: [account, m.uid])
                    try forgetDeliveries.execute(arguments: [account, m.uid])
                } else {
                    try bump.execute(arguments: [account, m.uid])
                }
            }
        }
    }

    /// Commits that `recipients` accepted the message. When every recipient of `allRecipients` has it, the message
    /// counts as delivered (and may be deleted on the server).
    @discardableResult
    public func recordDelivered(
        account: String, uid: String, recipients: [String], allRecipients: [String], at now: Date
    ) throws -> Bool {
        let t = now.timeIntervalSince1970
        return try self.write { db in
            try db.cachedStatement(sql: "INSERT OR IGNORE INTO messages (account, uidl, first_seen) VALUES (?, ?, ?)")
                .execute(arguments: [account, uid, t])
            for r in recipients {
                try db.cachedStatement(sql: """
                        INSERT INTO deliveries (account, uidl, recipient, delivered_at, attempts) VALUES (?, ?, ?, ?, 1)
                        ON CONFLICT (account, uidl, recipient) DO UPDATE SET delivered_at = excluded.delivered_at,
                            attempts = attempts + 1, last_error = NULL
                        """).execute(arguments: [account, uid, r, t])
            }
            let done = try String.fetchSet(
                db.cachedStatement(
                    sql: "SELECT recipient FROM deliveries WHERE account = ? AND uidl = ? AND delivered_at IS NOT NULL"),
                arguments: [account, uid])
            let complete = allRecipients.allSatisfy { done.contains($0) }
            if complete {
                try db.cachedStatement(sql: """
                        UPDATE messages SET delivered_at = ?, attempts = attempts + 1, last_error = NULL, failed_at = NULL
                        WHERE account = ? AND uidl = ?
                        """).execute(arguments: [t, account, uid])
            }
            return complete
        }
    }

    /// Records a failed delivery attempt. `countsTowardLimit` is false for temporary failures (EX_TEMPFAIL).
    /// Returns true when the message is now marked failed (attempts reached `maxAttempts`).
    @discardableResult
    public func recordDeliveryFailure(
        account: String, uid: String, error: String, countsTowardLimit: Bool, maxAttempts: Int, at now: Date
    ) throws -> Bool {
        let t = now.timeIntervalSince1970
        return try self.write { db in
            try db.cachedStatement(sql: "INSERT OR IGNORE INTO messages (account, uidl, first_seen) VALUES (?, ?, ?)")
                .execute(arguments: [account, uid, t])
            if countsTowardLimit {
                try db.cachedStatement(
                    sql: "UPDATE messages SET attempts = attempts + 1, last_error = ? WHERE account = ? AND uidl = ?"
                ).execute(arguments: [error, account, uid])
            } else {
                try db.cachedStatement(
                    sql: "UPDATE messages SET last_error = ? WHERE account = ? AND uidl = ?"
                ).execute(arguments: [error, account, uid])
            }
            let attempts =
                try Int.fetchOne(
                    db.cachedStatement(sql: "SELECT attempts FROM messages WHERE account = ? AND uidl = ?"),
                    arguments: [account, uid])
                ?? 0
            if countsTowardLimit && attempts >= maxAttempts {
                try db.cachedStatement(
                    sql: "UPDATE messages SET failed_at = ? WHERE account = ? AND uidl = ? AND failed_at IS NULL"
                ).execute(arguments: [t, account, uid])
                return true
            }
            return false
        }
    }

    /// Marks messages deleted on the server (after QUIT was answered +OK).
    public func recordDeleted(account: String, uids: [String], at now: Date) throws {
        guard !uids.isEmpty else { return }
        let t = now.timeIntervalSince1970
        try self.write { db in
            let s = try db.makeStatement(sql: "UPDATE messages SET deleted_at = ? WHERE account = ? AND uidl = ?")
            for uid in uids { try s.execute(arguments: [t, account, uid]) }
        }
    }

    /// Brings failed messages back: they are tried again at the next poll. Returns how many.
    @discardableResult
    public func retryFailed(account: String) throws -> Int {
        try self.write { db in
            try db.execute(
                sql: """
                    UPDATE messages SET failed_at = NULL, attempts = 0
                    WHERE account = ? AND failed_at IS NOT NULL AND delivered_at IS NULL
                    """, arguments: [account])
            return db.changesCount
        }
    }

    /// Messages marked failed for the mailbox.
    public func failedMessages(account: String) throws -> [MessageRecord] {
        try self.messages(account: account).values.filter { $0.failedAt != nil && $0.deliveredAt == nil }
            .sorted { $0.firstSeen < $1.firstSeen }
    }

    // MARK: - OAuth2 tokens (the database is 0600, like the refresh token deserves)

    public struct OAuthTokens: Sendable {
        public var refreshToken: String?
        public var accessToken: String?
        public var expiresAt: Date?
    }

    public func oauthTokens(account: String) throws -> OAuthTokens? {
        try self.read { db in
            try Row.fetchOne(
                db, sql: "SELECT refresh_token, access_token, expires_at FROM oauth_tokens WHERE account = ?",
                arguments: [account]
            ).map { r in
                OAuthTokens(
                    refreshToken: r[0], accessToken: r[1], expiresAt: (r[2] as Double?).map(Date.init(timeIntervalSince1970:)))
            }
        }
    }

    public func saveOAuthTokens(account: String, refreshToken: String?, accessToken: String?, expiresAt: Date?) throws {
        try self.write { db in
            try db.execute(
                sql: """
                    INSERT INTO oauth_tokens (account, refresh_token, access_token, expires_at) VALUES (?, ?, ?, ?)
                    ON CONFLICT (account) DO UPDATE SET refresh_token = COALESCE(excluded.refresh_token, refresh_token),
                        access_token = excluded.access_token, expires_at = excluded.expires_at
                    """, arguments: [account, refreshToken, accessToken, expiresAt?.timeIntervalSince1970])
        }
    }

    // MARK: - Polls

    public func beginPoll(account: String, name: String, at now: Date) throws -> Int64 {
        try self.write { db in
            try db.execute(
                sql: "INSERT INTO polls (account, account_name, started) VALUES (?, ?, ?)",
                arguments: [account, name, now.timeIntervalSince1970])
            return db.lastInsertedRowID
        }
    }

    public func finishPoll(id: Int64, report: PollReport, at now: Date) throws {
        try self.write { db in
            try db.execute(
                sql: """
                    UPDATE polls SET finished = ?, outcome = ?, listed = ?, new = ?, delivered = ?, bytes = ?,
                        deleted = ?, deferred = ?, failed = ?, skipped = ?, error = ?, exit_code = ?, pending = ?
                    WHERE id = ?
                    """,
                arguments: [
                    now.timeIntervalSince1970, report.outcome.rawValue, report.listed, report.new, report.delivered,
                    report.bytes, report.deleted, report.deferred, report.failed, report.skipped,
                    report.error?.message, report.error.map { Int($0.exitCode.rawValue) }, report.pending, id,
                ])
        }
    }

    /// Everything `popfetch status` shows for one account, in one read transaction.
    public func accountStatus(accountName: String, accountKey: String) throws -> AccountStatusRecord {
        try self.read { db in
            // A poll still marked "running" is in flight (or was killed): the summary shows the last finished one.
            let last = try Self.polls(db, accountName: accountName, limit: 1, finishedOnly: true).first
            let failed =
                try Int.fetchOne(
                    db,
                    sql: "SELECT COUNT(*) FROM messages WHERE account = ? AND failed_at IS NOT NULL AND delivered_at IS NULL",
                    arguments: [accountKey]) ?? 0
            let total =
                try Int.fetchOne(
                    db, sql: "SELECT COALESCE(SUM(delivered), 0) FROM polls WHERE account_name = ?",
                    arguments: [accountName]) ?? 0
            // Consecutive failures: the most recent polls with outcome "error", up to the last other outcome.
            let outcomes = try String.fetchAll(
                db, sql: "SELECT outcome FROM polls WHERE account_name = ? AND outcome != 'running' ORDER BY id DESC LIMIT 1000",
                arguments: [accountName])
            let consecutive = outcomes.prefix { $0 == "error" }.count
            let next = try Double.fetchOne(
                db, sql: "SELECT next_poll FROM schedule WHERE account_name = ?", arguments: [accountName])
            return AccountStatusRecord(
                lastPoll: last, failedMessages: failed, deliveredTotal: total, consecutiveFailures: consecutive,
                nextPoll: next.map(Date.init(timeIntervalSince1970:)))
        }
    }

    /// The daemon records when it will next poll each account.
    public func setNextPoll(accountName: String, at date: Date?) throws {
        try self.write { db in
            try db.execute(
                sql: """
                    INSERT INTO schedule (account_name, next_poll) VALUES (?, ?)
                    ON CONFLICT (account_name) DO UPDATE SET next_poll = excluded.next_poll
                    """, arguments: [accountName, date?.timeIntervalSince1970])
        }
    }

    public func clearSchedule() throws {
        try self.write { db in try db.execute(sql: "DELETE FROM schedule") }
    }

    static func polls(_ db: GRDB.Database, accountName: String, limit: Int, finishedOnly: Bool = false) throws
        -> [PollRecord]
    {
        try Row.fetchAll(
            db,
            sql: """
                SELECT id, account, account_name, started, finished, outcome, listed, new, delivered, bytes,
                    deleted, deferred, failed, skipped, error, pending
                FROM polls WHERE account_name = ? \(finishedOnly ? "AND finished IS NOT NULL" : "")
                ORDER BY id DESC LIMIT ?
                """, arguments: [accountName, limit]
        ).map { r in
            PollRecord(
                id: r[0], accountKey: r[1], accountName: r[2], started: Date(timeIntervalSince1970: r[3]),
                finished: (r[4] as Double?).map(Date.init(timeIntervalSince1970:)), outcome: r[5], listed: r[6],
                new: r[7], delivered: r[8], bytes: r[9], deleted: r[10], deferred: r[11], failed: r[12],
                skipped: r[13], error: r[14], pending: r[15])
        }
    }

    public func recentPolls(accountName: String, limit: Int) throws -> [PollRecord] {
        try self.read { db in try Self.polls(db, accountName: accountName, limit: limit) }
    }
}
