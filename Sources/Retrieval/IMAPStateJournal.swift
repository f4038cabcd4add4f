import Crypto
import Delivery
import Foundation
import UIDLStore

/// IMAP delivery's journal of appends, kept in the state store per POP3 mailbox: whatever the `imap` URL, the entry
/// makes the next attempt look the message up in the folder it now delivers to (a different folder does not have it,
/// so a changed folder gets its own copy).
struct IMAPStateJournal: IMAPAppendJournal {
    let store: StateStore
    let mailbox: MailboxID

    func pending() throws -> [IMAPPendingAppend: Double?] {
        var out: [IMAPPendingAppend: Double?] = [:]
        for r in try self.store.imapPending(mailbox: self.mailbox) {
            out[IMAPPendingAppend(key: r.uid, id: r.deliveryID)] = r.late ? r.appendedAt.timeIntervalSince1970 : nil
        }
        return out
    }

    func willAppend(_ entry: IMAPPendingAppend) throws {
        try self.store.addIMAPPending(mailbox: self.mailbox, uid: entry.key, deliveryID: entry.id, at: Date())
    }

    func timedOut(_ entry: IMAPPendingAppend) throws {
        try self.store.addIMAPPending(
            mailbox: self.mailbox, uid: entry.key, deliveryID: entry.id, late: true, at: Date())
    }

    func refused(_ entry: IMAPPendingAppend) throws {
        try self.store.removeIMAPPending(mailbox: self.mailbox, uid: entry.key, deliveryID: entry.id)
    }

    /// What identifies one message to a receiver that can be searched (IMAP): its mailbox, its UIDL key and its
    /// contents' digest, hashed to 32 hex digits. Every ID has the same length, so IMAP's substring search finds only
    /// the same ID. The contents are in it so that a new message under a reused UIDL is never taken for the one
    /// delivered before (that would lose it). The price: a POP3 server that changes a message between retrievals
    /// (a `Status:` header added once it was read) gives it a new ID, so a copy left by a cut-off APPEND is not found
    /// and the message arrives twice; never lost.
    static func deliveryID(mailbox: MailboxID, uid: String, digest: String) -> String {
        var hash = SHA256()
        hash.update(data: Array(mailbox.rawValue.utf8) + [0] + Array(uid.utf8) + [0] + Array(digest.utf8))
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for b in hash.finalize().prefix(16) {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
