import GRDB

/// What the state knows of the IMAP folder one mailbox delivers to (see the v7 migration).
public struct IMAPSessionRecord: Hashable, Sendable {
    /// A session began appending and never ended cleanly: a message may be in the folder without being recorded.
    public var open = false
    public var uidValidity: UInt32?
    /// The highest UID popfetch appended in the folder (under `uidValidity`).
    public var lastUID: UInt32?

    public init(open: Bool = false, uidValidity: UInt32? = nil, lastUID: UInt32? = nil) {
        self.open = open
        self.uidValidity = uidValidity
        self.lastUID = lastUID
    }
}

/// Exactly-once IMAP delivery: the per-target session flag and the last UID appended.
extension StateStore {
    public func imapSession(mailbox: MailboxID, target: String) throws -> IMAPSessionRecord {
        try self.read { db in
            guard
                let r = try Row.fetchOne(
                    db, sql: "SELECT open, uid_validity, last_uid FROM imap_sessions WHERE account = ? AND target = ?",
                    arguments: [mailbox.rawValue, target])
            else { return IMAPSessionRecord() }
            return IMAPSessionRecord(
                open: (r[0] as Int64? ?? 0) != 0, uidValidity: (r[1] as Int64?).flatMap(UInt32.init(exactly:)),
                lastUID: (r[2] as Int64?).flatMap(UInt32.init(exactly:)))
        }
    }

    /// Marks the session open, before its first APPEND.
    public func openIMAPSession(mailbox: MailboxID, target: String) throws {
        try self.write { db in
            try db.execute(
                sql: """
                    INSERT INTO imap_sessions (account, target, open) VALUES (?, ?, 1)
                    ON CONFLICT (account, target) DO UPDATE SET open = 1
                    """, arguments: [mailbox.rawValue, target])
        }
    }

    /// Marks the session closed cleanly: every message it appended is recorded. A new UIDVALIDITY replaces the
    /// old one and its last UID.
    public func closeIMAPSession(mailbox: MailboxID, target: String, uidValidity: UInt32?, lastUID: UInt32?) throws {
        try self.write { db in
            try db.execute(
                sql: """
                    INSERT INTO imap_sessions (account, target, open, uid_validity, last_uid) VALUES (?, ?, 0, ?, ?)
                    ON CONFLICT (account, target) DO UPDATE SET open = 0,
                        last_uid = CASE
                            WHEN excluded.uid_validity IS NULL THEN last_uid
                            WHEN uid_validity IS excluded.uid_validity
                                THEN NULLIF(MAX(COALESCE(last_uid, 0), COALESCE(excluded.last_uid, 0)), 0)
                            ELSE excluded.last_uid END,
                        uid_validity = COALESCE(excluded.uid_validity, uid_validity)
                    """,
                arguments: [
                    mailbox.rawValue, target, uidValidity.map { Int64($0) }, lastUID.map { Int64($0) },
                ])
        }
    }
}
