import Configuration
import Foundation
import Logging
import MailTransport
import POP3Core
import Spool
import UIDLStore

/// Messages identified by content (``PollPlan/Item/identify``) in a session: their keys settled once received, what
/// is known of that content acted on, and the contents a flood-protection pause records for mark-seen.
extension PollSession {
    /// A message identified by content (``PollPlan/Item/identify``), fetched whole: settles its key
    /// (``PollPlan/identify(_:digest:copy:known:claimed:)``) and acts on what is known of that content. Returns the
    /// recipients to deliver it to, or nil when it is not to be delivered now (known, marked failed, recorded as
    /// seen, beyond fetch_limit).
    func identify(
        _ item: inout PollPlan.Item, _ message: inout SpooledMessage, proven: inout Bool, plan: PollPlan,
        known: [String: MessageRecord], trackState: Bool
    ) async throws -> [String]? {
        let (key, record, action) = self.settleKey(item, digest: message.digest, plan: plan, known: known)
        let place = item.key
        item.key = key
        var delivers = false
        if case .fetch = action { delivers = true }
        // The next reply proves the message whole, and the replies in step, before anything else is read. Needed
        // now when a reply after this content was malformed before (its stray line would be read as the next
        // reply and charged to the next message: a poisoned message must not block the rest), and when it is not
        // delivered (no settlement will wait for that reply). A delivered one is proven before it is settled.
        let troubled = (record?.retrievalAttempts ?? 0) > 0
        if !proven && (troubled || !delivers) {
            do {
                try await self.proveWhole(item, message, trackState: trackState)
            } catch {
                // Its place too: it goes last at the next poll, behind the messages it would hold back.
                if trackState {
                    _ = try? self.store.recordRetrievalFailure(
                        mailbox: self.key, uid: place, error: "the reply after this message was malformed",
                        maxAttempts: Int.max, at: Date())
                }
                throw error
            }
            proven = true
        }
        // The place's failed retrievals were another message's, or this one's now received whole: the place is
        // clear (not for a content whose replies went wrong before: it stays last).
        if trackState, proven, !troubled, (known[place]?.retrievalAttempts ?? 0) > 0 {
            try self.store.clearRetrievalFailures(mailbox: self.key, uid: place)
        }
        if case .imap = self.account.delivery.method {
            message.deliveryID = IMAPStateJournal.deliveryID(mailbox: self.key, uid: key, digest: message.digest)
            if trackState { message.deliveryKey = key }
        }
        let metadata: Logger.Metadata = ["uid": "\(item.uid)"]
        switch action {
        case .fetch(let recipients):
            if self.limitLeft <= 0 {
                self.report.skipped += 1
                self.logger.info(
                    "message \(item.number) is new but beyond fetch_limit; left on the server for a later poll",
                    metadata: metadata)
                return nil
            }
            if self.limitLeft != Int.max { self.limitLeft -= 1 }
            self.identifiedNew += 1
            return recipients
        case .keep:
            self.identifiedKnown += 1
            self.logger.debug(
                "message \(item.number) is one delivered before (same content); kept on the server", metadata: metadata)
        case .deleteDelivered, .deleteExpired:
            self.identifiedKnown += 1
            if action == .deleteDelivered {
                self.logger.notice(
                    "message \(item.number) is one already delivered (same content); not delivered again",
                    metadata: metadata)
            }
            self.pendingDeles.append(PendingDele(number: item.number, key: key))
        case .skipFailed:
            self.identifiedKnown += 1
            self.report.skipped += 1
            let why = "(same content); left on the server (`popfetch retry` tries it again)"
            self.logger.notice(
                "message \(item.number) is one marked failed after max_attempts \(why)", metadata: metadata)
        case .deleteOversize, .skipOversize, .skipLimit:
            break
        }
        return nil
    }

    /// A NOOP whose well-formed reply proves `message` whole before any receiver sees it (nothing is sent ahead
    /// when a message is not yet proven). A malformed reply counts as a failed retrieval of it, toward
    /// `maxAttempts` (the account's by default).
    func proveWhole(
        _ item: PollPlan.Item, _ message: SpooledMessage, trackState: Bool, maxAttempts: Int? = nil
    ) async throws {
        precondition(self.requested.isEmpty, "NOOP with a RETR sent ahead still unanswered")
        do {
            _ = try await self.conn.execute(.noop)
        } catch let e as POP3ProtocolError {
            if trackState {
                try self.store.recordRetrievalFailure(
                    mailbox: self.key, uid: item.key,
                    error: "the reply after this message (\(message.receivedSize) octets, LIST said \(item.size)) "
                        + "was malformed: it may have arrived truncated; not delivered",
                    maxAttempts: maxAttempts ?? self.account.retention.maxAttempts, at: Date())
            }
            throw e
        }
    }

    /// The key of a message identified by content, received whole (``PollPlan/identify(_:digest:copy:known:claimed:)``),
    /// counting byte-identical copies and claiming the key for this poll.
    func settleKey(_ item: PollPlan.Item, digest: String, plan: PollPlan, known: [String: MessageRecord])
        -> (key: String, record: MessageRecord?, action: PollPlan.Action)
    {
        let content = item.uid + " " + digest
        let copy = (self.copies[content] ?? 0) + 1
        self.copies[content] = copy
        let found = plan.identify(item, digest: digest, copy: copy, known: known, claimed: self.claimed)
        self.claimed.insert(found.key)
        return found
    }

    /// The keys of the contents of the messages identified by content that are new (no record of that content):
    /// each is fetched (and dropped) to learn it. For the snapshot of a flood-protection pause.
    func newContentKeys(_ plan: PollPlan, known: [String: MessageRecord]) async throws -> [String] {
        var keys: [String] = []
        for (index, item) in plan.items.enumerated() where item.identify {
            guard case .fetch = item.action else { continue }
            try await self.request(index, item, chain: [], items: plan.items, pipelining: self.pipelining)
            guard
                case .message(let message, _) = try await self.retrieve(
                    item, trackState: true, previousUnconfirmed: false)
            else { continue }
            let (key, record, _) = self.settleKey(item, digest: message.digest, plan: plan, known: known)
            if record == nil { keys.append(key) }
        }
        return keys
    }

    /// A delivered message whose DELE was due (``PollPlan/Item/deleteIfSame``) held other content than the copy
    /// delivered. Either its UIDL now names a new message (another client deleted the one delivered, and the server
    /// gave the UIDL to the next: popa3d does), or the server rewrites the message at every RETR (a boundary, a
    /// header). The other content is noted; the same other content at the next comparison is a new message (returns
    /// true: deliver it). Yet another content is noted in its place: the message stays on the server, neither
    /// delivered nor deleted, until two comparisons agree. Nothing is deleted unread on a digest's word.
    /// `planned`: the plan counted the message as one to deliver (a partial delivery's rest), so fetch_limit and
    /// the counts already hold it.
    func otherContentIsNew(
        _ item: PollPlan.Item, _ message: SpooledMessage, trackState: Bool, planned: Bool = false
    ) throws -> Bool {
        let metadata: Logger.Metadata = ["uid": "\(item.uid)"]
        switch item.otherDigest {
        case message.digest? where planned:
            let why = "a new message under a reused UIDL, delivered to every recipient"
            self.logger.notice(
                "message \(item.number) holds the same other content as at the last poll: \(why)", metadata: metadata)
            return true
        case message.digest?:
            if self.limitLeft <= 0 {
                self.report.skipped += 1
                self.renewed += 1
                self.logger.info(
                    "message \(item.number) is new but beyond fetch_limit; left on the server", metadata: metadata)
                return false
            }
            if self.limitLeft != Int.max { self.limitLeft -= 1 }
            self.renewed += 1
            let why = "a new message under a reused UIDL, delivered"
            self.logger.notice(
                "message \(item.number) holds the same other content as at the last poll: \(why)", metadata: metadata)
            return true
        default:
            if planned {
                // The rest of a partial delivery, held back: not delivered in this poll, and said so.
                self.report.deferred += 1
                self.report.latestFailure =
                    "message \(item.number) is not the content its first recipients got; held, compared again next poll"
            } else {
                self.renewed += 1
            }
            if trackState {
                try self.store.recordOtherContent(mailbox: self.key, uid: item.key, digest: message.digest)
            }
            let why =
                (item.otherDigest == nil
                    ? "a new message, or a server that rewrites it at each RETR"
                    : "and from the content found at the last comparison (a server that rewrites it at each RETR?)")
                + "; left on the server and compared again at the next poll"
            self.logger.notice(
                "message \(item.number) differs from the one delivered under its UIDL, \(why)", metadata: metadata)
            return false
        }
    }
}
