public import Foundation
import GRDB

/// OAuth2 tokens, the record of every poll, and the daemon's schedule.
extension StateStore {
    // MARK: - OAuth2 tokens (the database is 0600, like the refresh token deserves)

    public struct OAuthTokens: Sendable {
        public var refreshToken: String?
        public var accessToken: String?
        public var expiresAt: Date?
    }

    public func oauthTokens(mailbox: MailboxID) throws -> OAuthTokens? {
        try self.read { db in
            try Row.fetchOne(
                db, sql: "SELECT refresh_token, access_token, expires_at FROM oauth_tokens WHERE account = ?",
                arguments: [mailbox.rawValue]
            ).map { r in
                OAuthTokens(
                    refreshToken: r[0], accessToken: r[1],
                    expiresAt: (r[2] as Double?).map(Date.init(timeIntervalSince1970:)))
            }
        }
    }

    public func saveOAuthTokens(mailbox: MailboxID, refreshToken: String?, accessToken: String?, expiresAt: Date?)
        throws
    {
        try self.write { db in
            try db.execute(
                sql: """
                    INSERT INTO oauth_tokens (account, refresh_token, access_token, expires_at) VALUES (?, ?, ?, ?)
                    ON CONFLICT (account) DO UPDATE SET refresh_token = COALESCE(excluded.refresh_token, refresh_token),
                        access_token = excluded.access_token, expires_at = excluded.expires_at
                    """, arguments: [mailbox.rawValue, refreshToken, accessToken, expiresAt?.timeIntervalSince1970])
        }
    }

    // MARK: - Polls

    /// What a poll that never finished says in the history once the next poll of its mailbox starts.
    public static let interruptedPollError =
        "this poll never finished: popfetch was killed or crashed during it, or could not write its end to the state "
        + "database (what it had not committed is fetched again)"

    /// Records the start of a poll. The caller holds the mailbox's lock, so a poll of the mailbox still unfinished
    /// is one whose process died (kill -9, a crash, the OOM killer): it is closed as an error, not left "running".
    public func beginPoll(mailbox: MailboxID, accountName name: String, at now: Date) throws -> Int64 {
        try self.write { db in
            try db.execute(
                sql: "UPDATE polls SET outcome = 'error', error = ? WHERE account = ? AND outcome = 'running'",
                arguments: [Self.interruptedPollError, mailbox.rawValue])
            try db.execute(
                sql: "INSERT INTO polls (account, account_name, started) VALUES (?, ?, ?)",
                arguments: [mailbox.rawValue, name, now.timeIntervalSince1970])
            return db.lastInsertedRowID
        }
    }

    /// Removes the record of a poll that was stopped before it did anything.
    public func discardPoll(id: Int64) throws {
        try self.write { db in try db.execute(sql: "DELETE FROM polls WHERE id = ?", arguments: [id]) }
    }

    /// How many polls of each account the history keeps (`status --history`, the daemon's count of failures in a
    /// row); older ones are removed as new ones finish, so the database and `status` do not grow with the years.
    public static let pollsKept = 1000

    /// Records how a poll ended, adds what it delivered to the account's total, and drops the account's polls beyond
    /// the newest ``pollsKept``. (The `exit_code` column of databases before this version is left as it was.)
    public func finishPoll(id: Int64, summary s: PollSummary, at now: Date) throws {
        try self.write { db in
            try db.execute(
                sql: """
                    UPDATE polls SET finished = ?, outcome = ?, listed = ?, new = ?, delivered = ?, bytes = ?,
                        deleted = ?, deferred = ?, failed = ?, skipped = ?, error = ?, pending = ?
                    WHERE id = ?
                    """,
                arguments: [
                    now.timeIntervalSince1970, s.outcome, s.listed, s.new, s.delivered, s.bytes, s.deleted,
                    s.deferred, s.failed, s.skipped, s.error, s.pending, id,
                ])
            guard
                let name = try String.fetchOne(db, sql: "SELECT account_name FROM polls WHERE id = ?", arguments: [id])
            else { return }
            try db.execute(
                sql: """
                    INSERT INTO account_totals (account_name, delivered) VALUES (?, ?)
                    ON CONFLICT (account_name) DO UPDATE SET delivered = delivered + excluded.delivered
                    """, arguments: [name, s.delivered])
            // The newest `pollsKept` stay (by the account_name, id index: a seek, not a scan).
            try db.execute(
                sql: """
                    DELETE FROM polls WHERE account_name = ?1 AND id <= (
                        SELECT id FROM polls WHERE account_name = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)
                    """, arguments: [name, Self.pollsKept])
        }
    }

    /// Everything `popfetch status` shows for one account, in one read transaction.
    public func accountStatus(accountName: String, mailbox: MailboxID) throws -> AccountStatusRecord {
        try self.read { db in
            // A poll still marked "running" is in flight (or was killed): the summary shows the last finished one.
            let last = try Self.polls(db, accountName: accountName, limit: 1, finishedOnly: true).first
            // The newest poll when it has not finished: in flight, or its process died (the caller tells which).
            let unfinished = try Self.polls(db, accountName: accountName, limit: 1).first.flatMap {
                $0.finished == nil && $0.outcome == "running" ? $0 : nil
            }
            let failed =
                try Int.fetchOne(
                    db,
                    sql:
                        "SELECT COUNT(*) FROM messages WHERE account = ? AND failed_at IS NOT NULL",
                    arguments: [mailbox.rawValue]) ?? 0
            let total =
                try Int.fetchOne(
                    db, sql: "SELECT delivered FROM account_totals WHERE account_name = ?", arguments: [accountName])
                ?? 0
            // Consecutive failures: the most recent polls with outcome "error", up to the last other outcome.
            let outcomes = try String.fetchAll(
                db,
                sql:
                    "SELECT outcome FROM polls WHERE account_name = ? AND outcome != 'running' ORDER BY id DESC LIMIT 1000",
                arguments: [accountName])
            let consecutive = outcomes.prefix { $0 == "error" }.count
            let next = try Double.fetchOne(
                db, sql: "SELECT next_poll FROM schedule WHERE account_name = ?", arguments: [accountName])
            let paused = try String.fetchOne(
                db, sql: "SELECT paused_reason FROM mailboxes WHERE account = ?", arguments: [mailbox.rawValue])
            // Walks polls_by_name backwards from the newest poll to the first successful one.
            let success = try Double.fetchOne(
                db,
                sql: """
                    SELECT finished FROM polls WHERE account_name = ? AND outcome = 'ok' AND finished IS NOT NULL
                    ORDER BY id DESC LIMIT 1
                    """, arguments: [accountName])
            let pending = try Int.fetchOne(
                db,
                sql: """
                    SELECT pending FROM polls WHERE account_name = ? AND outcome IN ('ok', 'partial')
                    ORDER BY id DESC LIMIT 1
                    """, arguments: [accountName])
            return AccountStatusRecord(
                lastPoll: last, failedMessages: failed, deliveredTotal: total, consecutiveFailures: consecutive,
                nextPoll: next.map(Date.init(timeIntervalSince1970:)), pausedReason: paused,
                lastSuccess: success.map(Date.init(timeIntervalSince1970:)), lastKnownPending: pending,
                unfinishedPoll: unfinished)
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
                id: r[0], mailbox: MailboxID(r[1]), accountName: r[2], started: Date(timeIntervalSince1970: r[3]),
                finished: (r[4] as Double?).map(Date.init(timeIntervalSince1970:)), outcome: r[5], listed: r[6],
                new: r[7], delivered: r[8], bytes: r[9], deleted: r[10], deferred: r[11], failed: r[12],
                skipped: r[13], error: r[14], pending: r[15])
        }
    }

    /// Whether the poll `id` is still recorded as running.
    public func pollIsRunning(id: Int64) throws -> Bool {
        try self.read { db in
            try Bool.fetchOne(
                db, sql: "SELECT outcome = 'running' AND finished IS NULL FROM polls WHERE id = ?", arguments: [id])
                ?? false
        }
    }

    public func recentPolls(accountName: String, limit: Int) throws -> [PollRecord] {
        try self.read { db in try Self.polls(db, accountName: accountName, limit: limit) }
    }
}

/// How one poll ended, as the store records it: the outcome's name, the counts, and the error's message (which
/// never holds a secret). The poll engine builds it; the store neither knows the engine's types nor decides
/// anything from them.
public struct PollSummary: Hashable, Sendable {
    /// `ok`, `partial`, `error`, `skipped` or `paused`.
    public var outcome: String
    public var listed = 0
    public var new = 0
    public var delivered = 0
    public var bytes = 0
    public var deleted = 0
    public var deferred = 0
    public var failed = 0
    public var skipped = 0
    public var pending = 0
    public var error: String?

    public init(outcome: String) { self.outcome = outcome }
}
