import Configuration
import Delivery
import Foundation
import Logging
import MailTransport
import NIOCore
import POP3Core
import Spool
import UIDLStore

#if canImport(Glibc)
    import Glibc
#endif

/// One POP3 session of one account, in RFC 1939's order: AUTHORIZATION (CAPA, STLS, login), TRANSACTION (UIDL,
/// LIST, then RETR/DELE per message), UPDATE (QUIT). The decisions are made by pure types: ``PollPlan`` (what to do
/// with each listed message), ``FloodGuard`` (whether to act at all), ``Settlement`` (what a delivery outcome means).
/// This type carries them out, and owns the delivery pipeline: each message streams into its own spool file; its
/// delivery runs as a child task while the next message is fetched; and it is always settled (committed) before
/// the next delivery starts and before any error leaves the session.
final class PollSession {
    let poller: AccountPoller
    let conn: POP3Connection
    let password: String
    /// Masks the login's secrets in what the server says (it may quote them back).
    let redactor: SecretRedactor
    var report: PollReport

    /// Computed once: read on every message.
    let account: AccountConfiguration
    let store: StateStore
    /// The mailbox in the state database.
    let key: MailboxID
    let logger: Logger

    /// DELEs waiting to be sent; with PIPELINING they go out in the same write as the next RETR.
    var pendingDeles: [PendingDele] = []
    /// RETRs sent ahead (with PIPELINING; ``requestAhead(_:items:)``), oldest first, each with the DELEs sent just
    /// before it: their replies are still to be read, in that order, before any other command may be sent.
    var requested: [Requested] = []
    /// The server offers PIPELINING (CAPA): DELEs and RETRs go out several to a write.
    var pipelining = false
    /// Keys whose DELE the server acknowledged; recorded as deleted once QUIT is answered +OK.
    var deletedKeys: [String] = []
    /// A RETR's reply arrived well-formed and in step since the message in flight was read: that message is complete.
    var provenByReply = false
    /// Messages identified by content (``PollPlan/Item/identify``) in this poll: the keys given, and how many
    /// byte-identical copies of each UIDL's content were fetched.
    var claimed: Set<String> = []
    var copies: [String: Int] = [:]
    /// Of those, how many were found to be known messages (not new, not pending) and how many new.
    var identifiedKnown = 0
    var identifiedNew = 0
    /// Messages whose DELE was due that turned out to be new (``PollPlan/Item/deleteIfSame``): neither new nor
    /// waiting in the plan's count.
    var renewed = 0
    /// How many more messages fetch_limit lets this poll deliver, after the plan's own fetches.
    var limitLeft = Int.max

    /// A stop request ends the session at once until login, and with QUIT once the listing is in until then.
    let earlyStop: EarlyStop

    init(poller: AccountPoller, conn: POP3Connection, password: String, report: PollReport, earlyStop: EarlyStop) {
        self.earlyStop = earlyStop
        self.poller = poller
        self.conn = conn
        self.password = password
        self.redactor = SecretRedactor.login(user: poller.account.authentication.user, password: password)
        self.report = report
        self.account = poller.account
        self.store = poller.environment.store
        self.key = poller.account.mailbox
        self.logger = poller.logger
    }

    func run() async throws {
        // AUTHORIZATION
        var caps = try await self.conn.capabilities()
        if self.account.server.tls == .starttls {
            guard let c = caps, c.supportsSTLS else {
                throw TransportError(
                    .stlsNotOffered, host: self.account.server.host, port: self.account.server.port, phase: "CAPA")
            }
            try await self.conn.startTLS()
            caps = try await self.conn.capabilities()
        }
        try await self.poller.login(self.conn, password: self.password, capabilities: caps)
        self.logger.debug("logged in as \(self.account.authentication.user)")
        guard self.earlyStop.loggedIn() else {
            // A stop came as login succeeded: QUIT without asking for the listing.
            if self.earlyStop.quitsNow { _ = try? await self.conn.quit() }
            throw CancellationError()
        }
        self.report.loginDelay = caps?.loginDelay
        let pipelining = caps?.supportsPipelining ?? false
        self.pipelining = pipelining

        // TRANSACTION: the listing, and what to do with it.
        let (listing, sizes, trackState) = try await self.list(pipelining: pipelining)
        // From here on a stop lets the session finish in order (see EarlyStop).
        guard self.earlyStop.beginMessages() else {
            // A stop came while the listing arrived: end the session in order, acting on nothing (see EarlyStop).
            if self.earlyStop.quitsNow { _ = try? await self.conn.quit() }
            throw CancellationError()
        }
        let now = Date()
        let policy = PollPlan.Policy(
            keep: self.account.retention.keep, deleteAfter: self.account.retention.deleteAfter,
            maxSize: self.account.retention.maxSize,
            deleteOversize: self.account.retention.oversize == .delete, fetchLimit: self.account.retention.fetchLimit,
            recipients: self.account.delivery.recipients)
        self.report.listed = listing.count
        // The poll a daemon runs most: the listing of the last poll, which needed nothing done, and no record of the
        // mailbox changed since (any write forgets the fingerprint). Then nothing is to be done now either.
        let mailbox = trackState ? try self.store.mailboxState(mailbox: self.key) : nil
        let fingerprint = trackState ? PollPlan.fingerprint(listing: listing, sizes: sizes, policy: policy) : nil
        if let mailbox, let fingerprint, mailbox.isQuiet(fingerprint: fingerprint, at: now) {
            self.logger.debug("nothing new: the listing is the last poll's, and no record changed since")
            if self.poller.checkOnly {
                var preview = PlanPreview()
                preview.kept = listing.count
                self.report.preview = preview
            }
            _ = try await self.conn.quit()
            return
        }
        // The generation of the records the plan is made from (read before they are loaded; see recordQuiet).
        var generation = mailbox?.generation ?? 0
        var known = trackState ? try self.store.messages(mailbox: self.key) : [:]
        var plan = PollPlan(listing: listing, sizes: sizes, known: known, policy: policy, now: now)
        if trackState, let mailbox {
            if mailbox.decision == .markSeen && self.poller.checkOnly {
                // What the poll would do: record the messages listed at the pause as seen (not delivered), then
                // act on the rest as usual. The flood guard is not asked again: the user answered it.
                let snapshot = try self.store.pausedKeys(mailbox: self.key)
                let unseen = Set(
                    plan.listed.keys.filter {
                        snapshot.contains($0) && known[$0]?.deliveredAt == nil && PollPlan.sharedUID(ofKey: $0) == nil
                    })
                plan.items.removeAll { unseen.contains($0.key) }
                var preview = PlanPreview(plan: plan, keep: self.account.retention.keep)
                preview.markSeen = unseen.count + Self.contentKeys(in: snapshot, unknownTo: known).count
                self.report.new = plan.fetchCount + plan.diff.unidentified
                self.report.preview = preview
                _ = try await self.conn.quit()
                return
            } else if mailbox.decision == .markSeen {
                // Only what was listed when the account paused: mail that arrived since is delivered as usual.
                let snapshot = try self.store.pausedKeys(mailbox: self.key)
                var unseen: [String: Int?] = [:]
                for (key, size) in plan.listed
                where snapshot.contains(key) && known[key]?.deliveredAt == nil && PollPlan.sharedUID(ofKey: key) == nil
                {
                    unseen[key] = size
                }
                // Messages identified by content were fetched when the account paused: the snapshot holds the keys
                // of their contents, recorded as seen here with the rest (whatever their place now).
                for key in Self.contentKeys(in: snapshot, unknownTo: known) { unseen[key] = .some(nil) }
                try self.store.recordSeen(mailbox: self.key, listed: unseen, at: now)
                try self.store.resolvePause(mailbox: self.key)
                self.logger.notice("recorded \(unseen.count) messages as seen without delivering them (mark-seen)")
                generation = try self.store.mailboxState(mailbox: self.key).generation
                known = try self.store.messages(mailbox: self.key)
                plan = PollPlan(listing: listing, sizes: sizes, known: known, policy: policy, now: now)
            } else if case .pause(let why) = FloodGuard.assess(
                plan: plan, known: known, mailbox: mailbox, keep: self.account.retention.keep,
                limit: self.account.retention.floodLimit)
            {
                self.report.new = plan.fetchCount + plan.diff.unidentified
                self.report.paused = why.replacingOccurrences(of: "NAME", with: self.account.name)
                if !self.poller.checkOnly {
                    // The snapshot mark-seen acts on, taken when the account pauses (kept while it stays paused):
                    // the UIDLs listed, and for messages identified by content, the keys of their contents (fetched
                    // now: a place in the listing names no message).
                    var keys: [String]?
                    if mailbox.pausedReason == nil {
                        keys = plan.listed.keys.filter { PollPlan.sharedUID(ofKey: $0) == nil }
                        keys? += try await self.newContentKeys(plan, known: known)
                    }
                    try self.store.pause(
                        mailbox: self.key, reason: self.report.paused ?? why, keys: keys, at: now)
                }
                _ = try await self.conn.quit()
                return
            } else if mailbox.decision == .fetchAll && !self.poller.checkOnly {
                try self.store.resolvePause(mailbox: self.key)
            } else if mailbox.pausedReason != nil && !self.poller.checkOnly {
                // The condition that paused it is gone (say, the user emptied the mailbox).
                try self.store.resolvePause(mailbox: self.key)
            }
        }
        self.report.new = plan.fetchCount
        if self.poller.checkOnly {
            // Which messages identified by content are new shows only once they are fetched: a check counts the
            // places no delivered message accounts for.
            self.report.new += plan.diff.unidentified + plan.recheckCount
            self.report.preview = PlanPreview(plan: plan, keep: self.account.retention.keep)
            _ = try await self.conn.quit()
            return
        }
        if trackState {
            try self.store.recordListing(
                mailbox: self.key, listed: plan.listed, diff: plan.diff, known: known, at: now,
                forgetAfter: Double(self.account.retention.forgetAfter))
        }
        let waiting = plan.items.reduce(0) { n, item in
            switch item.action {
            case .fetch where item.deleteIfSame: return n
            case .fetch, .skipLimit, .skipOversize: return n + 1
            default: return n
            }
        }
        if policy.fetchLimit > 0 { self.limitLeft = max(0, policy.fetchLimit - plan.fetchCount) }
        let deliverer = try await self.poller.makeDeliverer(fetchCount: plan.fetchCount + plan.compareCount)
        try await deliverer.withDeliveries {
            try await self.transact(
                plan, known: known, trackState: trackState, deliverer: deliverer, pipelining: pipelining)
        }
        // Messages identified by content: those found known are neither new nor waiting; any not reached counts as
        // waiting (it may be new).
        self.report.pending = max(
            0, waiting + self.renewed - self.report.delivered - self.report.alreadyDelivered - self.identifiedKnown)
        self.report.new = max(0, self.report.new - self.report.alreadyDelivered) + self.identifiedNew + self.renewed

        // UPDATE. Before QUIT, the acknowledged DELEs are recorded as pending: if the QUIT's outcome is lost (refused,
        // dropped, popfetch killed), a message listed again under one of those keys is fetched and compared with
        // what was delivered, never deleted unread (its UIDL may have been reused for a new message).
        try await self.flushDeles()
        if trackState { try self.store.recordDeletePending(mailbox: self.key, uids: self.deletedKeys) }
        let bye = try await self.conn.quit()
        if bye.isOK {
            if trackState { try self.store.recordDeleted(mailbox: self.key, uids: self.deletedKeys, at: Date()) }
            self.report.deleted = self.deletedKeys.count
            if let fingerprint, let until = plan.quietUntil, self.deletedKeys.isEmpty {
                try self.store.recordQuiet(
                    mailbox: self.key, listing: fingerprint, until: until, generation: generation)
            }
        } else if !self.deletedKeys.isEmpty {
            // RFC 1939 §6: -ERR to QUIT means some deletions may not have happened; the next poll retries them.
            self.logger.warning(
                "server answered QUIT with \(self.redactor.apply("\(bye)")); deletions may not have taken effect")
        }
    }

    /// The keys of contents in a pause's snapshot (``newContentKeys(_:known:)``) that have no record of a delivery.
    static func contentKeys(in snapshot: Set<String>, unknownTo known: [String: MessageRecord]) -> [String] {
        snapshot.filter { $0.contains(" #=") && known[$0]?.deliveredAt == nil }
    }

    /// UIDL (one command), then LIST for sizes. Without UIDL, only fetch-and-delete is possible.
    private func list(pipelining: Bool) async throws -> ([UIDLEntry], ListedSizes, Bool) {
        let (uidl, scan) = try await self.conn.listings(pipelining: pipelining)
        var sizes = ListedSizes(capacity: scan.count)
        for e in scan {
            guard sizes.insert(e.size, for: e.number) else {
                throw self.listingsDisagree("LIST names message \(e.number) twice")
            }
        }
        if let uidl {
            // Every message number once in each listing, and the same numbers in both: otherwise a RETR or DELE
            // by number could reach another message than the one its UIDL names.
            var numbers = ListedSizes(capacity: uidl.count)
            for e in uidl {
                guard numbers.insert(0, for: e.number) else {
                    throw self.listingsDisagree("UIDL names message \(e.number) twice")
                }
                guard sizes[e.number] != nil else {
                    throw self.listingsDisagree("UIDL names message \(e.number), LIST does not")
                }
            }
            guard numbers.count == sizes.count else {
                throw self.listingsDisagree("LIST names \(sizes.count) messages, UIDL \(numbers.count)")
            }
            return (uidl, sizes, true)
        }
        switch self.account.retention.withoutUIDL {
        case .refuse:
            throw PollError(
                .protocolError,
                "\(self.account.server.host) does not support UIDL, so popfetch cannot tell new mail from old; set "
                    + "without_uidl = \"fetch-and-delete\" (with keep = false) to fetch and delete everything")
        case .fetchAndDelete:
            // Only `poll --keep` gets here with keep = true (the configuration refuses the pair).
            guard !self.account.retention.keep else {
                throw PollError(
                    .config,
                    "\(self.account.server.host) does not support UIDL, and without_uidl = \"fetch-and-delete\" "
                        + "must delete what it fetches: it cannot run with --keep")
            }
            return (scan.map { UIDLEntry(number: $0.number, uid: "no-uidl-\($0.number)") }, sizes, false)
        }
    }

    private func listingsDisagree(_ what: String) -> PollError {
        PollError(
            .protocolError,
            "\(self.account.server.host) sent inconsistent listings (\(what)); nothing was fetched or deleted, since a "
                + "message number could not be trusted to name one message")
    }
}
