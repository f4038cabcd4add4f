import GRDB

/// Exactly-once IMAP delivery: each APPEND recorded before it is sent, until its delivery is (see the v8 migration).
extension StateStore {
    /// The mailbox's appends whose delivery is not recorded, as (UIDL key, digest).
    public func imapPending(mailbox: MailboxID) throws -> [(uid: String, digest: String)] {
        try self.read { db in
            try Row.fetchAll(
                db, sql: "SELECT uidl, digest FROM imap_pending WHERE account = ?", arguments: [mailbox.rawValue]
            ).map { ($0[0], $0[1]) }
        }
    }

    /// Records an APPEND about to be sent.
    public func addIMAPPending(mailbox: MailboxID, uid: String, digest: String) throws {
        try self.write { db in
            try db.execute(
                sql: "INSERT OR IGNORE INTO imap_pending (account, uidl, digest) VALUES (?, ?, ?)",
                arguments: [mailbox.rawValue, uid, digest])
        }
    }

    /// The server refused the APPEND: the message is not in the folder.
    public func removeIMAPPending(mailbox: MailboxID, uid: String, digest: String) throws {
        try self.write { db in
            try db.execute(
                sql: "DELETE FROM imap_pending WHERE account = ? AND uidl = ? AND digest = ?",
                arguments: [mailbox.rawValue, uid, digest])
        }
    }
}
