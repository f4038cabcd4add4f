public import Foundation
import GRDB

/// A key's record starting over for another content, and what each recipient got under the key meanwhile.
extension StateStore {
    /// What the recipients already have of a message whose record started over (``restartMessage``).
    public enum Restarted: Hashable, Sendable {
        /// None of them got this content under the key: it goes to all of them.
        case new
        /// These got this very content under the key before (a delivery of it in parts, before the record started
        /// over for another content): it goes to the others only, and the record says these have it.
        case partly(Set<String>)
        /// Every recipient got this content under the key before: recorded as delivered, sent to none.
        case delivered
    }

    /// A new message under a key whose record described an earlier one (deleted before, or another size and
    /// content): the record starts over, with no delivery and the new size. What each recipient got under the key
    /// (``contentDeliveries``) is kept: a recipient that got this very content (`digest`) before is recorded as
    /// having it, in the same transaction, and is not sent it again (a content that comes back under its UIDL, as
    /// a server that flips between two versions of a message does, while a recipient keeps deferring).
    @discardableResult
    public func restartMessage(
        mailbox: MailboxID, uid: String, size: Int, digest: String? = nil, recipients: [String] = [], at now: Date
    ) throws -> Restarted {
        let t = now.timeIntervalSince1970
        return try self.write { db in
            try Self.keepContentDeliveries(db, mailbox: mailbox, uid: uid)
            try db.execute(
                sql: "DELETE FROM deliveries WHERE account = ? AND uidl = ?", arguments: [mailbox.rawValue, uid])
            try db.execute(
                sql: "DELETE FROM messages WHERE account = ? AND uidl = ?", arguments: [mailbox.rawValue, uid])
            let had: Set<String> =
                digest == nil || recipients.isEmpty
                ? []
                : try String.fetchSet(
                    db,
                    sql: "SELECT recipient FROM content_deliveries WHERE account = ? AND uidl = ? AND digest = ?",
                    arguments: [mailbox.rawValue, uid, digest]
                ).intersection(recipients)
            if let digest, !recipients.isEmpty, recipients.allSatisfy(had.contains) {
                try db.execute(
                    sql: """
                        INSERT INTO messages (account, uidl, first_seen, last_seen, size, delivered_at, attempts, digest)
                        VALUES (?, ?, ?, ?, ?, ?, 1, ?)
                        """,
                    arguments: [mailbox.rawValue, uid, t, t, size, t, digest])
                return .delivered
            }
            try db.execute(
                sql: """
                    INSERT INTO messages (account, uidl, first_seen, last_seen, size, digest) VALUES (?, ?, ?, ?, ?, ?)
                    """,
                arguments: [mailbox.rawValue, uid, t, t, size, had.isEmpty ? nil : digest])
            for r in had {
                try db.execute(
                    sql: """
                        INSERT INTO deliveries (account, uidl, recipient, delivered_at, attempts) VALUES (?, ?, ?, ?, 1)
                        """,
                    arguments: [mailbox.rawValue, uid, r, t])
            }
            return had.isEmpty ? .new : .partly(had)
        }
    }

    /// Copies who got what under `uid` (its per-recipient rows, with the record's digest) into
    /// `content_deliveries`, in the caller's transaction, before those rows go.
    static func keepContentDeliveries(_ db: Database, mailbox: MailboxID, uid: String) throws {
        try db.cachedStatement(
            sql: """
                INSERT OR IGNORE INTO content_deliveries (account, uidl, digest, recipient)
                SELECT d.account, d.uidl, m.digest, d.recipient FROM deliveries d
                JOIN messages m ON m.account = d.account AND m.uidl = d.uidl
                WHERE d.account = ? AND d.uidl = ? AND d.delivered_at IS NOT NULL AND m.digest IS NOT NULL
                """
        ).execute(arguments: [mailbox.rawValue, uid])
    }

    /// Which recipients got which content (by digest) under `uid`, as far as deliveries made in parts tell.
    public func contentDeliveries(mailbox: MailboxID, uid: String) throws -> [String: Set<String>] {
        try self.read { db in
            var out: [String: Set<String>] = [:]
            let rows = try Row.fetchAll(
                db, sql: "SELECT digest, recipient FROM content_deliveries WHERE account = ? AND uidl = ?",
                arguments: [mailbox.rawValue, uid])
            for row in rows {
                let digest: String = row["digest"]
                let recipient: String = row["recipient"]
                out[digest, default: []].insert(recipient)
            }
            return out
        }
    }
}
