import Foundation
import GRDB

/// What the user asks of the records: failed messages brought back or listed, records forgotten, keys looked up.
extension StateStore {
    /// Brings failed messages back: they are tried again at the next poll. Returns how many.
    @discardableResult
    public func retryFailed(mailbox: MailboxID) throws -> Int {
        try self.write { db in
            try db.execute(
                sql: """
                    UPDATE messages SET failed_at = NULL, attempts = 0, retrieval_attempts = 0
                    WHERE account = ? AND failed_at IS NOT NULL
                    """, arguments: [mailbox.rawValue])
            return db.changesCount
        }
    }

    /// Forgets the records of the mailbox's messages, and where they were delivered: every one, or with `uids` those
    /// listed under these UIDLs (a UIDL listed several times at once has keys "UIDL #n": they go with it). The next
    /// poll counts them as new. Forgetting every one also forgets that the mailbox was ever listed, so that poll is
    /// treated as a first one: with keep = true, more than flood_limit messages pause the account to ask first. The
    /// poll history stays. Returns how many messages were forgotten.
    @discardableResult
    public func forget(mailbox: MailboxID, uids: [String]? = nil) throws -> Int {
        try self.write { db in
            let account = mailbox.rawValue
            guard let uids else {
                try db.execute(sql: "DELETE FROM deliveries WHERE account = ?", arguments: [account])
                try db.execute(sql: "DELETE FROM content_deliveries WHERE account = ?", arguments: [account])
                try db.execute(sql: "DELETE FROM imap_pending WHERE account = ?", arguments: [account])
                try db.execute(sql: "DELETE FROM messages WHERE account = ?", arguments: [account])
                let n = db.changesCount
                try db.execute(
                    sql: "UPDATE mailboxes SET first_listed = NULL, decision = NULL WHERE account = ?",
                    arguments: [account])
                return n
            }
            let match = "account = ? AND (uidl = ? OR substr(uidl, 1, ?) = ?)"
            let deliveries = try db.makeStatement(sql: "DELETE FROM deliveries WHERE " + match)
            let pending = try db.makeStatement(sql: "DELETE FROM imap_pending WHERE " + match)
            let contents = try db.makeStatement(sql: "DELETE FROM content_deliveries WHERE " + match)
            let messages = try db.makeStatement(sql: "DELETE FROM messages WHERE " + match)
            var n = 0
            for uid in Set(uids) {
                let prefix = uid + " #"
                let arguments: StatementArguments = [account, uid, prefix.unicodeScalars.count, prefix]
                try deliveries.execute(arguments: arguments)
                try pending.execute(arguments: arguments)
                try contents.execute(arguments: arguments)
                try messages.execute(arguments: arguments)
                n += db.changesCount
            }
            return n
        }
    }

    /// Those of `uids` the mailbox has no record of (neither as a UIDL nor as a "UIDL #n" key).
    public func unknownUIDs(mailbox: MailboxID, _ uids: [String]) throws -> [String] {
        try self.read { db in
            var unknown: [String] = []
            for uid in uids where !unknown.contains(uid) {
                let prefix = uid + " #"
                let found =
                    try Bool.fetchOne(
                        db,
                        sql: "SELECT EXISTS (SELECT 1 FROM messages WHERE account = ? "
                            + "AND (uidl = ? OR substr(uidl, 1, ?) = ?))",
                        arguments: [mailbox.rawValue, uid, prefix.unicodeScalars.count, prefix]) ?? false
                if !found { unknown.append(uid) }
            }
            return unknown
        }
    }

    /// Messages marked failed for the mailbox.
    public func failedMessages(mailbox: MailboxID) throws -> [MessageRecord] {
        try self.messages(mailbox: mailbox, includingErrors: true).values.filter {
            $0.failedAt != nil
        }
        .sorted { $0.firstSeen < $1.firstSeen }
    }
}
