import Crypto
import Delivery
import UIDLStore

/// IMAP delivery's session journal, kept in the state store per mailbox and IMAP target (`user@imaps://host/folder`).
struct IMAPStateJournal: IMAPSessionJournal {
    let store: StateStore
    let mailbox: MailboxID
    let target: String

    func lastSession() throws -> (open: Bool, uidValidity: UInt32?, lastUID: UInt32?) {
        let r = try self.store.imapSession(mailbox: self.mailbox, target: self.target)
        return (r.open, r.uidValidity, r.lastUID)
    }

    func open() throws { try self.store.openIMAPSession(mailbox: self.mailbox, target: self.target) }

    func close(uidValidity: UInt32?, lastUID: UInt32?) throws {
        try self.store.closeIMAPSession(
            mailbox: self.mailbox, target: self.target, uidValidity: uidValidity, lastUID: lastUID)
    }

    /// What identifies one message to a receiver that can be searched (IMAP): its mailbox, UIDL key and contents,
    /// hashed to 32 hex digits. Every ID has the same length, so IMAP's substring search finds only the same ID;
    /// the contents are in it, so a new message under a reused UIDL is a new message.
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
