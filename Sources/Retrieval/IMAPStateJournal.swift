import Crypto
import Delivery
import UIDLStore

/// IMAP delivery's journal of appends, kept in the state store per mailbox (whatever the IMAP server: a changed
/// `imap` URL still finds what an earlier one may have received).
struct IMAPStateJournal: IMAPAppendJournal {
    let store: StateStore
    let mailbox: MailboxID

    func pending() throws -> Set<IMAPPendingAppend> {
        Set(try self.store.imapPending(mailbox: self.mailbox).map { IMAPPendingAppend(key: $0.uid, digest: $0.digest) })
    }

    func willAppend(_ entry: IMAPPendingAppend) throws {
        try self.store.addIMAPPending(mailbox: self.mailbox, uid: entry.key, digest: entry.digest)
    }

    func refused(_ entry: IMAPPendingAppend) throws {
        try self.store.removeIMAPPending(mailbox: self.mailbox, uid: entry.key, digest: entry.digest)
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
