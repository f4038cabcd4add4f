public import Foundation
import GRDB
import GRDBSQLite

#if canImport(Glibc)
    import Glibc
#endif

/// The records of messages: what was listed, delivered, failed and deleted, one transaction per change.
extension StateStore {

    /// Every message known for the mailbox, with the recipients each was delivered to (for messages not yet
    /// delivered everywhere: once `delivered_at` is set nothing reads them, and a mailbox of 20,000 delivered
    /// messages would otherwise build 20,000 sets on every poll). One query each. Every poll loads this, so the
    /// rows are read column by column straight from SQLite (no `Row` values), and the error text, which the poll
    /// never reads, is left out unless `includingErrors`.
    public func messages(mailbox: MailboxID, includingErrors: Bool = false) throws -> [String: MessageRecord] {
        try self.read { db in
            let count = try Int.fetchOne(
                db, sql: "SELECT count(*) FROM messages WHERE account = ?", arguments: [mailbox.rawValue])
            var out: [String: MessageRecord] = [:]
            out.reserveCapacity(count ?? 0)
            let statement = try db.makeStatement(
                sql: """
                    SELECT uidl, first_seen, last_seen, size, delivered_at, deleted_at, attempts, retrieval_attempts,
                        failed_at, digest, seen_only, delete_pending, other_digest\(includingErrors ? ", last_error" : "")
                    FROM messages WHERE account = ?
                    """)
            statement.arguments = [mailbox.rawValue]
            let rows = try Row.fetchCursor(statement)
            let s = statement.sqliteStatement
            while try rows.next() != nil {
                guard let uid = Self.text(s, 0) else { continue }
                out[uid] = MessageRecord(
                    uid: uid, firstSeen: Date(timeIntervalSince1970: sqlite3_column_double(s, 1)),
                    lastSeen: Self.date(s, 2), size: Self.int(s, 3), deliveredAt: Self.date(s, 4),
                    deletedAt: Self.date(s, 5), attempts: Int(sqlite3_column_int64(s, 6)),
                    retrievalAttempts: Int(sqlite3_column_int64(s, 7)),
                    lastError: includingErrors ? Self.text(s, 13) : nil, failedAt: Self.date(s, 8),
                    digest: Self.text(s, 9), seenOnly: sqlite3_column_int64(s, 10) != 0,
                    deletePending: sqlite3_column_int64(s, 11) != 0)
                out[uid]?.vanished = sqlite3_column_int64(s, 11) == Self.vanishedMark
                out[uid]?.otherDigest = Self.text(s, 12)
            }
            let d = try Row.fetchCursor(
                db,
                sql: """
                    SELECT d.uidl, d.recipient FROM messages m CROSS JOIN deliveries d
                        ON d.account = m.account AND d.uidl = m.uidl
                    WHERE m.account = ? AND m.delivered_at IS NULL AND d.delivered_at IS NOT NULL
                    """,
                arguments: [mailbox.rawValue])
            while let r = try d.next() {
                let uid: String = r[0]
                let rcpt: String = r[1]
                out[uid]?.deliveredTo.insert(rcpt)
            }
            return out
        }
    }

    private static func isNull(_ s: SQLiteStatement, _ column: Int32) -> Bool {
        sqlite3_column_type(s, column) == SQLITE_NULL
    }

    private static func text(_ s: SQLiteStatement, _ column: Int32) -> String? {
        guard !self.isNull(s, column), let bytes = sqlite3_column_text(s, column) else { return nil }
        let count = Int(sqlite3_column_bytes(s, column))
        return String(decoding: UnsafeBufferPointer(start: bytes, count: count), as: UTF8.self)
    }

    private static func date(_ s: SQLiteStatement, _ column: Int32) -> Date? {
        self.isNull(s, column) ? nil : Date(timeIntervalSince1970: sqlite3_column_double(s, column))
    }

    private static func int(_ s: SQLiteStatement, _ column: Int32) -> Int? {
        self.isNull(s, column) ? nil : Int(sqlite3_column_int64(s, column))
    }

    /// How long a record lives after its message was last listed (flood protection: forgetting is by age, never
    /// by count, so empty or shrunken listings from a server hiccup forget nothing).
    public static let defaultForgetAfter: Double = 30 * 86_400
    /// `last_seen` is refreshed at most this often, so a poll that finds nothing new writes almost nothing.
    package static let lastSeenGranularity: Double = 86_400

    /// `delete_pending` of a record marked uncertain because it vanished from a listing (1: a DELE of popfetch's own
    /// was acknowledged, its QUIT uncertain).
    static let vanishedMark: Int64 = 2

    /// Records a successful UIDL listing: new keys are inserted with their LIST size; keys not listed for
    /// `forgetAfter` seconds are forgotten. Only changed rows are written. (A key whose record describes another
    /// message, deleted before or of another size, is settled by the poll: ``restartMessage`` or ``recordSameAgain``.)
    public func recordListing(
        mailbox: MailboxID, listed: [String: Int], diff: ListingDiff, known: [String: MessageRecord], at now: Date,
        forgetAfter: Double = StateStore.defaultForgetAfter
    ) throws {
        let t = now.timeIntervalSince1970
        let new = diff.new.map { ($0.key, $0.size) }
        let refresh = diff.stale
        let sized = diff.unsized.map { ($0.key, $0.size) }
        let cutoff = t - forgetAfter
        // Every record matched a listed key: none can be forgotten, and the records need not be walked. (A record
        // refreshed now is one the listing matched, under a key the listing does not name: a message identified by
        // content.)
        let refreshed = diff.matched == known.count ? [] : Set(refresh)
        var forget: [String] = []
        // Delivered messages gone from the listing (deleted by another client, or a server's hiccup): the UIDL may
        // be given to another message later (popa3d does), so a later listing of it is fetched and compared with
        // the digest of the copy delivered, never trusted. Only records with a digest: one without (marked seen,
        // or from an older popfetch) could not be compared, and would be delivered again.
        var vanished: [String] = []
        if diff.matched != known.count {
            for (uid, r) in known where listed[uid] == nil && !refreshed.contains(uid) {
                if (r.lastSeen ?? r.firstSeen).timeIntervalSince1970 < cutoff {
                    forget.append(uid)
                } else if r.deletedAt == nil && !r.deletePending && r.deliveredAt != nil && r.digest != nil
                    && !r.seenOnly && !uid.contains(" #")
                {
                    vanished.append(uid)
                }
            }
        }
        let firstListing = try self.mailboxState(mailbox: mailbox).firstListed == nil
        let (newRows, refreshRows, sizedRows, forgotten, vanishedRows) = (new, refresh, sized, forget, vanished)
        let uncertain = diff.uncertain
        if new.isEmpty && refresh.isEmpty && sized.isEmpty && forget.isEmpty && uncertain.isEmpty && vanished.isEmpty
            && !firstListing
        {
            return
        }
        try self.write { db in
            if firstListing {
                try db.execute(
                    sql: """
                        INSERT INTO mailboxes (account, first_listed) VALUES (?, ?)
                        ON CONFLICT (account) DO UPDATE SET first_listed = COALESCE(first_listed, excluded.first_listed)
                        """, arguments: [mailbox.rawValue, t])
            }
            let forgetRow = try db.makeStatement(sql: "DELETE FROM messages WHERE account = ? AND uidl = ?")
            let forgetDeliveries = try db.makeStatement(sql: "DELETE FROM deliveries WHERE account = ? AND uidl = ?")
            // A message gone from the server that long takes its IMAP append entries (if any) with it.
            let forgetPending = try db.makeStatement(sql: "DELETE FROM imap_pending WHERE account = ? AND uidl = ?")
            let forgetContents = try db.makeStatement(
                sql: "DELETE FROM content_deliveries WHERE account = ? AND uidl = ?")
            for uid in forgotten {
                try forgetRow.execute(arguments: [mailbox.rawValue, uid])
                try forgetDeliveries.execute(arguments: [mailbox.rawValue, uid])
                try forgetPending.execute(arguments: [mailbox.rawValue, uid])
                try forgetContents.execute(arguments: [mailbox.rawValue, uid])
            }
            let insert = try db.makeStatement(
                sql:
                    "INSERT OR IGNORE INTO messages (account, uidl, first_seen, last_seen, size) VALUES (?, ?, ?, ?, ?)"
            )
            for (uid, size) in newRows {
                try insert.execute(arguments: [mailbox.rawValue, uid, t, t, size])
            }
            let touch = try db.makeStatement(sql: "UPDATE messages SET last_seen = ? WHERE account = ? AND uidl = ?")
            for uid in refreshRows { try touch.execute(arguments: [t, mailbox.rawValue, uid]) }
            let setSize = try db.makeStatement(sql: "UPDATE messages SET size = ? WHERE account = ? AND uidl = ?")
            for (uid, size) in sizedRows { try setSize.execute(arguments: [size, mailbox.rawValue, uid]) }
            let pending = try db.makeStatement(
                sql: "UPDATE messages SET delete_pending = 1 WHERE account = ? AND uidl = ?")
            for uid in uncertain { try pending.execute(arguments: [mailbox.rawValue, uid]) }
            let gone = try db.makeStatement(
                sql: "UPDATE messages SET delete_pending = \(Self.vanishedMark) WHERE account = ? AND uidl = ?")
            for uid in vanishedRows { try gone.execute(arguments: [mailbox.rawValue, uid]) }
        }
    }

    /// The message listed again under a key (after popfetch deleted it, or with another LIST size) has the digest
    /// of the one delivered: it is that message, still on the server. Its record is current again.
    public func recordSameAgain(mailbox: MailboxID, uid: String, size: Int, at now: Date) throws {
        let t = now.timeIntervalSince1970
        try self.write { db in
            try db.execute(
                sql: """
                    UPDATE messages SET deleted_at = NULL, delete_pending = 0, size = ?, last_seen = ?
                    WHERE account = ? AND uidl = ?
                    """,
                arguments: [size, t, mailbox.rawValue, uid])
            try db.execute(
                sql: "DELETE FROM imap_pending WHERE account = ? AND uidl = ?", arguments: [mailbox.rawValue, uid])
        }
    }

    /// A delivered message whose DELE was due, fetched to compare, held other content: its digest, for the next
    /// comparison (see ``MessageRecord/otherDigest``).
    public func recordOtherContent(mailbox: MailboxID, uid: String, digest: String) throws {
        try self.write { db in
            try db.execute(
                sql: "UPDATE messages SET other_digest = ? WHERE account = ? AND uidl = ?",
                arguments: [digest, mailbox.rawValue, uid])
        }
    }

    /// Records messages as seen without delivering them (the user's answer to a flood-protection pause).
    /// `listed`: the keys with their LIST sizes (nil where not known: a message identified by content).
    public func recordSeen(mailbox: MailboxID, listed: [String: Int?], at now: Date) throws {
        let t = now.timeIntervalSince1970
        try self.write { db in
            let upsert = try db.makeStatement(
                sql: """
                    INSERT INTO messages (account, uidl, first_seen, last_seen, size, delivered_at, last_error, seen_only)
                    VALUES (?, ?, ?, ?, ?, ?, 'marked seen without delivery', 1)
                    ON CONFLICT (account, uidl) DO UPDATE SET
                        seen_only = CASE WHEN delivered_at IS NULL THEN 1 ELSE seen_only END,
                        last_error = CASE WHEN delivered_at IS NULL THEN excluded.last_error ELSE last_error END,
                        delivered_at = COALESCE(delivered_at, excluded.delivered_at),
                        failed_at = NULL
                    """)
            for (uid, size) in listed { try upsert.execute(arguments: [mailbox.rawValue, uid, t, t, size, t]) }
        }
    }

    /// A listing place's failed retrievals are forgotten (a message identified by content was received whole
    /// there: see ``recordRetrievalFailure``).
    public func clearRetrievalFailures(mailbox: MailboxID, uid: String) throws {
        try self.write { db in
            try db.execute(
                sql: "UPDATE messages SET retrieval_attempts = 0, failed_at = NULL WHERE account = ? AND uidl = ?",
                arguments: [mailbox.rawValue, uid])
        }
    }

    /// Records a failed retrieval: RETR refused, the connection lost mid-message, fewer octets than LIST said, or a
    /// malformed reply after the message. Returns true when the message is now marked failed (`maxAttempts`).
    @discardableResult
    public func recordRetrievalFailure(mailbox: MailboxID, uid: String, error: String, maxAttempts: Int, at now: Date)
        throws -> Bool
    {
        let t = now.timeIntervalSince1970
        return try self.write { db in
            try db.cachedStatement(
                sql: "INSERT OR IGNORE INTO messages (account, uidl, first_seen, last_seen) VALUES (?, ?, ?, ?)"
            ).execute(arguments: [mailbox.rawValue, uid, t, t])
            try db.cachedStatement(
                sql: """
                    UPDATE messages SET retrieval_attempts = retrieval_attempts + 1, last_error = ?
                    WHERE account = ? AND uidl = ?
                    """
            ).execute(arguments: [error, mailbox.rawValue, uid])
            let attempts =
                try Int.fetchOne(
                    db.cachedStatement(sql: "SELECT retrieval_attempts FROM messages WHERE account = ? AND uidl = ?"),
                    arguments: [mailbox.rawValue, uid]) ?? 0
            if attempts >= maxAttempts {
                try db.cachedStatement(
                    sql: "UPDATE messages SET failed_at = ? WHERE account = ? AND uidl = ? AND failed_at IS NULL"
                ).execute(arguments: [t, mailbox.rawValue, uid])
                return true
            }
            return false
        }
    }

    /// Commits that `recipients` accepted the message. When every recipient of `allRecipients` has it, the message
    /// counts as delivered (and may be deleted on the server).
    ///
    /// Delivered to every recipient at once (one MDA run or SMTP transaction for all: the common case), the commit is
    /// one statement on the message's row. Per-recipient rows (`deliveries`) are written only for a delivery to
    /// some of the recipients: they are read only while the message is not yet delivered to all (which recipients
    /// to leave out when it is tried again), and they are dropped when a message is fetched again from the start.
    @discardableResult
    public func recordDelivered(
        mailbox: MailboxID, uid: String, recipients: [String], allRecipients: [String], digest: String? = nil,
        at now: Date
    ) throws -> Bool {
        let t = now.timeIntervalSince1970
        return try self.write { db in
            if allRecipients.allSatisfy(Set(recipients).contains) {
                try Self.markDelivered(db, mailbox: mailbox, uid: uid, digest: digest, at: t)
                return true
            }
            try db.cachedStatement(sql: "INSERT OR IGNORE INTO messages (account, uidl, first_seen) VALUES (?, ?, ?)")
                .execute(arguments: [mailbox.rawValue, uid, t])
            // The content the first recipients got: the rest get the message only if it is still that content.
            if let digest {
                try db.cachedStatement(
                    sql: "UPDATE messages SET digest = COALESCE(digest, ?) WHERE account = ? AND uidl = ?"
                ).execute(arguments: [digest, mailbox.rawValue, uid])
            }
            for r in recipients {
                try db.cachedStatement(
                    sql: """
                        INSERT INTO deliveries (account, uidl, recipient, delivered_at, attempts) VALUES (?, ?, ?, ?, 1)
                        ON CONFLICT (account, uidl, recipient) DO UPDATE SET delivered_at = excluded.delivered_at,
                            attempts = attempts + 1, last_error = NULL
                        """
                ).execute(arguments: [mailbox.rawValue, uid, r, t])
            }
            let done = try String.fetchSet(
                db.cachedStatement(
                    sql: "SELECT recipient FROM deliveries WHERE account = ? AND uidl = ? AND delivered_at IS NOT NULL"
                ),
                arguments: [mailbox.rawValue, uid])
            guard allRecipients.allSatisfy(done.contains) else { return false }
            // Delivered to all: nothing reads the per-recipient rows any more; who got which content is kept.
            try Self.keepContentDeliveries(db, mailbox: mailbox, uid: uid)
            try db.cachedStatement(sql: "DELETE FROM deliveries WHERE account = ? AND uidl = ?")
                .execute(arguments: [mailbox.rawValue, uid])
            try Self.markDelivered(db, mailbox: mailbox, uid: uid, digest: digest, at: t)
            return true
        }
    }

    /// The message's row says delivered (created if the listing did not record it), and an IMAP append of it is
    /// recorded, in the caller's transaction.
    private static func markDelivered(
        _ db: Database, mailbox: MailboxID, uid: String, digest: String?, at t: Double
    ) throws {
        try db.cachedStatement(
            sql: """
                INSERT INTO messages (account, uidl, first_seen, delivered_at, attempts, digest) VALUES (?, ?, ?, ?, 1, ?)
                ON CONFLICT (account, uidl) DO UPDATE SET delivered_at = excluded.delivered_at,
                    attempts = attempts + 1, last_error = NULL, failed_at = NULL,
                    digest = COALESCE(excluded.digest, digest)
                """
        ).execute(arguments: [mailbox.rawValue, uid, t, t, digest])
        try db.cachedStatement(sql: "DELETE FROM imap_pending WHERE account = ? AND uidl = ?")
            .execute(arguments: [mailbox.rawValue, uid])
    }

    /// Records a failed delivery attempt. `countsTowardLimit` is false for temporary failures (EX_TEMPFAIL).
    /// Returns true when the message is now marked failed (attempts reached `maxAttempts`).
    @discardableResult
    public func recordDeliveryFailure(
        mailbox: MailboxID, uid: String, error: String, countsTowardLimit: Bool, maxAttempts: Int, at now: Date
    ) throws -> Bool {
        let t = now.timeIntervalSince1970
        return try self.write { db in
            try db.cachedStatement(sql: "INSERT OR IGNORE INTO messages (account, uidl, first_seen) VALUES (?, ?, ?)")
                .execute(arguments: [mailbox.rawValue, uid, t])
            if countsTowardLimit {
                try db.cachedStatement(
                    sql: "UPDATE messages SET attempts = attempts + 1, last_error = ? WHERE account = ? AND uidl = ?"
                ).execute(arguments: [error, mailbox.rawValue, uid])
            } else {
                try db.cachedStatement(
                    sql: "UPDATE messages SET last_error = ? WHERE account = ? AND uidl = ?"
                ).execute(arguments: [error, mailbox.rawValue, uid])
            }
            let attempts =
                try Int.fetchOne(
                    db.cachedStatement(sql: "SELECT attempts FROM messages WHERE account = ? AND uidl = ?"),
                    arguments: [mailbox.rawValue, uid])
                ?? 0
            if countsTowardLimit && attempts >= maxAttempts {
                try db.cachedStatement(
                    sql: "UPDATE messages SET failed_at = ? WHERE account = ? AND uidl = ? AND failed_at IS NULL"
                ).execute(arguments: [t, mailbox.rawValue, uid])
                return true
            }
            return false
        }
    }

    /// Marks messages deleted on the server (after QUIT was answered +OK).
    public func recordDeleted(mailbox: MailboxID, uids: [String], at now: Date) throws {
        guard !uids.isEmpty else { return }
        let t = now.timeIntervalSince1970
        try self.write { db in
            let s = try db.makeStatement(
                sql: "UPDATE messages SET deleted_at = ?, delete_pending = 0 WHERE account = ? AND uidl = ?")
            for uid in uids { try s.execute(arguments: [t, mailbox.rawValue, uid]) }
        }
    }

    /// Before QUIT: the server acknowledged DELE for these. Until ``recordDeleted`` confirms it, a message listed
    /// again under one of these keys is fetched and compared, never deleted unread (its UIDL may have been reused).
    public func recordDeletePending(mailbox: MailboxID, uids: [String]) throws {
        guard !uids.isEmpty else { return }
        try self.write { db in
            let s = try db.makeStatement(sql: "UPDATE messages SET delete_pending = 1 WHERE account = ? AND uidl = ?")
            for uid in uids { try s.execute(arguments: [mailbox.rawValue, uid]) }
        }
    }
}
