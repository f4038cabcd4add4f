public import Foundation
import GRDB

/// An IMAP append whose delivery is not recorded (see the v7 migration).
public struct IMAPPendingRecord: Hashable, Sendable {
    public var uid: String
    public var deliveryID: String
    public var appendedAt: Date
    /// Its APPEND timed out after the whole message was sent.
    public var late: Bool

    public init(uid: String, deliveryID: String, appendedAt: Date, late: Bool) {
        self.uid = uid
        self.deliveryID = deliveryID
        self.appendedAt = appendedAt
        self.late = late
    }
}

/// Exactly-once IMAP delivery: each APPEND recorded before it is sent, until its delivery is.
extension StateStore {
    public func imapPending(mailbox: MailboxID) throws -> [IMAPPendingRecord] {
        try self.read { db in
            try Row.fetchAll(
                db, sql: "SELECT uidl, delivery_id, appended_at, late FROM imap_pending WHERE account = ?",
                arguments: [mailbox.rawValue]
            ).map {
                IMAPPendingRecord(
                    uid: $0[0], deliveryID: $0[1], appendedAt: Date(timeIntervalSince1970: $0[2]),
                    late: ($0[3] as Int64? ?? 0) != 0)
            }
        }
    }

    /// Records an APPEND about to be sent (`late`: one that timed out after it was sent).
    public func addIMAPPending(mailbox: MailboxID, uid: String, deliveryID: String, late: Bool = false, at now: Date)
        throws
    {
        try self.write { db in
            try db.execute(
                sql: """
                    INSERT INTO imap_pending (account, uidl, delivery_id, appended_at, late) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT (account, uidl, delivery_id) DO UPDATE SET appended_at = excluded.appended_at,
                        late = excluded.late
                    """, arguments: [mailbox.rawValue, uid, deliveryID, now.timeIntervalSince1970, late ? 1 : 0])
        }
    }

    /// The server refused the APPEND: the message is not in the folder.
    public func removeIMAPPending(mailbox: MailboxID, uid: String, deliveryID: String) throws {
        try self.write { db in
            try db.execute(
                sql: "DELETE FROM imap_pending WHERE account = ? AND uidl = ? AND delivery_id = ?",
                arguments: [mailbox.rawValue, uid, deliveryID])
        }
    }
}
