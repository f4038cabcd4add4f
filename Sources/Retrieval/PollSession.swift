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
    var report: PollReport

    /// Computed once: read on every message.
    let account: AccountConfiguration
    let store: StateStore
    /// The mailbox in the state database.
    let key: MailboxID
    let logger: Logger

    /// A DELE waiting to be sent; with PIPELINING it goes out in the same write as the next RETR.
    var pendingDele: (number: Int, key: String)?
    /// Keys whose DELE the server acknowledged; recorded as deleted once QUIT is answered +OK.
    var deletedKeys: [String] = []

    /// A stop request ends the session at once until its listing has arrived.
    let earlyStop: EarlyStop

    init(poller: AccountPoller, conn: POP3Connection, password: String, report: PollReport, earlyStop: EarlyStop) {
        self.earlyStop = earlyStop
        self.poller = poller
        self.conn = conn
        self.password = password
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
        self.report.loginDelay = caps?.loginDelay
        let pipelining = caps?.supportsPipelining ?? false

        // TRANSACTION: the listing, and what to do with it.
        let (listing, sizes, trackState) = try await self.list(pipelining: pipelining)
        // From here on a stop lets the session finish in order (see EarlyStop).
        guard self.earlyStop.beginMessages() else { throw CancellationError() }
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
                    plan.listed.keys.filter { snapshot.contains($0) && known[$0]?.deliveredAt == nil })
                plan.items.removeAll { unseen.contains($0.key) }
                var preview = PlanPreview(plan: plan, keep: self.account.retention.keep)
                preview.markSeen = unseen.count
                self.report.new = plan.fetchCount
                self.report.preview = preview
                _ = try await self.conn.quit()
                return
            } else if mailbox.decision == .markSeen {
                // Only what was listed when the account paused: mail that arrived since is delivered as usual.
                let snapshot = try self.store.pausedKeys(mailbox: self.key)
                let unseen = plan.listed.filter { snapshot.contains($0.key) && known[$0.key]?.deliveredAt == nil }
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
                self.report.new = plan.fetchCount
                self.report.paused = why.replacingOccurrences(of: "NAME", with: self.account.name)
                if !self.poller.checkOnly {
                    try self.store.pause(
                        mailbox: self.key, reason: self.report.paused ?? why, keys: Array(plan.listed.keys), at: now)
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
            case .fetch, .skipLimit, .skipOversize: return n + 1
            default: return n
            }
        }
        let deliverer = try await self.poller.makeDeliverer(fetchCount: plan.fetchCount)
        try await deliverer.withDeliveries {
            try await self.transact(
                plan, known: known, trackState: trackState, deliverer: deliverer, pipelining: pipelining)
        }
        self.report.pending = max(0, waiting - self.report.delivered)

        // UPDATE. Before QUIT, the acknowledged DELEs are recorded as pending: if the QUIT's outcome is lost (refused,
        // dropped, popfetch killed), a message listed again under one of those keys is fetched and compared with
        // what was delivered, never deleted unread (its UIDL may have been reused for a new message).
        try await self.flushDele()
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
            self.logger.warning("server answered QUIT with \(bye); deletions may not have taken effect")
        }
    }

    /// UIDL (one command), then LIST for sizes. Without UIDL, only fetch-and-delete is possible.
    private func list(pipelining: Bool) async throws -> ([UIDLEntry], [Int: Int], Bool) {
        let (uidl, scan) = try await self.conn.listings(pipelining: pipelining)
        var sizes: [Int: Int] = [:]
        sizes.reserveCapacity(scan.count)
        for e in scan {
            guard sizes.updateValue(e.size, forKey: e.number) == nil else {
                throw self.listingsDisagree("LIST names message \(e.number) twice")
            }
        }
        if let uidl {
            // Every message number once in each listing, and the same numbers in both: otherwise a RETR or DELE
            // by number could reach another message than the one its UIDL names.
            var numbers = Set<Int>()
            numbers.reserveCapacity(uidl.count)
            for e in uidl {
                guard numbers.insert(e.number).inserted else {
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

    // MARK: - The transaction loop

    /// A message whose delivery runs while the next one is fetched.
    private struct InFlight {
        var item: PollPlan.Item
        var message: SpooledMessage
        /// A well-formed reply from the server arrived after the message's dot line.
        var confirmed = false
    }

    private func transact(
        _ plan: PollPlan, known: [String: MessageRecord], trackState: Bool, deliverer: any Deliverer, pipelining: Bool
    ) async throws {
        try await withThrowingTaskGroup(of: [RecipientOutcome].self) { group in
            var inFlight: InFlight?
            var previousShort = false

            func settle() async throws {
                guard let pending = inFlight else { return }
                if !pending.confirmed {
                    // The message's completeness rests on the next reply being well-formed: ask for one. If this
                    // fails, the message is still in flight for the error path below to settle.
                    _ = try await self.conn.execute(.noop)
                }
                inFlight = nil
                var d = pending
                d.confirmed = true
                let outcomes = try await group.next() ?? []
                try await self.settle(
                    d, outcomes: outcomes, complete: true, known: known, trackState: trackState, deliverer: deliverer)
            }

            do {
                messages: for item in plan.items {
                    switch item.action {
                    case .keep:
                        continue
                    case .skipFailed, .skipLimit, .skipOversize:
                        self.report.skipped += 1
                        if item.action == .skipOversize {
                            self.logger.notice(
                                "message \(item.number) is \(item.size) bytes, over max_size; left on the server",
                                metadata: ["uid": "\(item.uid)"])
                        }
                        continue
                    case .deleteDelivered, .deleteExpired, .deleteOversize:
                        if try await self.flushDele() { inFlight?.confirmed = true }
                        if item.action == .deleteOversize {
                            self.logger.notice(
                                "message \(item.number) is \(item.size) bytes, over max_size; deleting it unread",
                                metadata: ["uid": "\(item.uid)"])
                            self.report.skipped += 1
                        }
                        self.pendingDele = (item.number, item.key)
                        continue
                    case .fetch(let recipients):
                        if self.poller.environment.stopRequested() {
                            self.logger.notice("stopping: remaining messages are left for the next poll")
                            break messages
                        }
                        if let why = await deliverer.unavailability() {
                            self.logger.error(
                                "nothing can be delivered now (\(why)); the rest stay on the server for the next poll")
                            break messages
                        }
                        let fetched = try await self.retrieve(
                            item, pipelining: pipelining, trackState: trackState,
                            previousUnconfirmed: (inFlight.map { !$0.confirmed } ?? false) || previousShort)
                        // Refused or short: a well-formed reply did arrive after the previous message.
                        inFlight?.confirmed = true
                        previousShort = false
                        let message: SpooledMessage
                        switch fetched {
                        case .refused:
                            continue
                        case .short:
                            // Its tail may arrive as the reply to the next command: that is its fault, not the
                            // next message's.
                            previousShort = true
                            continue
                        case .message(let m):
                            message = m
                        }
                        // The RETR reply after the previous message was well-formed: it is complete. Settle it
                        // (commit, queue its DELE) before this message's delivery starts.
                        inFlight?.confirmed = true
                        try await settle()
                        if let expected = item.verify, message.digest == expected {
                            // The message delivered before, listed again (the server kept it after DELE and QUIT,
                            // or its LIST size changed): not delivered twice.
                            self.logger.notice(
                                "message \(item.number) is one already delivered (same content); not delivered again",
                                metadata: ["uid": "\(item.uid)"])
                            if trackState {
                                try self.store.recordSameAgain(
                                    mailbox: self.key, uid: item.key, size: item.size, at: Date())
                            }
                            if !self.account.retention.keep {
                                try await self.flushDele()
                                self.pendingDele = (item.number, item.key)
                            }
                            continue
                        }
                        if trackState && (item.verify != nil || item.restart) {
                            try self.store.restartMessage(mailbox: self.key, uid: item.key, size: item.size, at: Date())
                        }
                        // The commit after the delivery must not fail for want of space (the message would be
                        // delivered again at every poll): stop before delivering when the state's disk is nearly full.
                        try self.requireStateSpace()
                        let groups = deliverer.recipientGroups(recipients)
                        group.addTask { await Self.deliver(message, groups: groups, deliverer: deliverer) }
                        inFlight = InFlight(item: item, message: message)
                    }
                }
                try await settle()
            } catch {
                // Whatever failed, a delivery that ran is settled before giving up, so no avoidable duplicate: as
                // delivered if the message is known complete (a well-formed reply followed it, or the connection
                // merely ended and it has all its LIST octets); otherwise not committed, fetched again next poll.
                if let d = inFlight {
                    inFlight = nil
                    let outcomes = (try? await group.next()) ?? []
                    let malformed = error is POP3ProtocolError
                    let complete = d.confirmed || (!malformed && d.message.receivedSize >= d.item.size)
                    try? await self.settle(
                        d, outcomes: outcomes, complete: complete, known: known, trackState: trackState,
                        deliverer: nil)
                }
                throw error
            }
        }
    }

    /// RETR into a new spool file of its own. Returns nil when the server refused it or sent fewer octets than
    /// LIST announced (counted as a failed retrieval; never delivered, never deleted).
    /// Sends the pending DELE, if any, and waits for its reply. Returns whether a reply arrived.
    @discardableResult
    func flushDele() async throws -> Bool {
        guard let d = self.pendingDele else { return false }
        self.pendingDele = nil
        let status = try await self.conn.execute(.dele(d.number))
        if status.isOK {
            self.deletedKeys.append(d.key)
        } else {
            self.logger.warning("server refused DELE \(d.number): \(status)")
        }
        return true
    }

    /// Carries out the ``Settlement`` of one message: the state writes, then its DELE (or a bounce).
    private func settle(
        _ d: InFlight, outcomes: [RecipientOutcome], complete: Bool, known: [String: MessageRecord], trackState: Bool,
        deliverer: (any Deliverer)?
    ) async throws {
        let settlement = Settlement(
            outcomes: outcomes, complete: complete, priorAttempts: known[d.item.key]?.attempts ?? 0,
            policy: Settlement.Policy(
                keep: self.account.retention.keep, onPermanentFailure: self.account.delivery.onPermanentFailure,
                maxAttempts: self.account.retention.maxAttempts, accountName: self.account.name))
        if trackState {
            for w in settlement.writes {
                switch w {
                case .delivered(let recipients):
                    try self.store.recordDelivered(
                        mailbox: self.key, uid: d.item.key, recipients: recipients,
                        allRecipients: self.account.delivery.recipients,
                        digest: d.message.digest, at: Date())
                case .deliveryFailure(let error, let counts, let max):
                    try self.store.recordDeliveryFailure(
                        mailbox: self.key, uid: d.item.key, error: error, countsTowardLimit: counts, maxAttempts: max,
                        at: Date())
                case .retrievalFailure(let error):
                    try self.store.recordRetrievalFailure(
                        mailbox: self.key, uid: d.item.key, error: error,
                        maxAttempts: self.account.retention.maxAttempts,
                        at: Date())
                }
            }
        }
        for line in settlement.log {
            switch line.level {
            case .notice: self.logger.notice("\(line.text)", metadata: ["uid": "\(d.item.uid)"])
            case .warning: self.logger.warning("\(line.text)", metadata: ["uid": "\(d.item.uid)"])
            case .error: self.logger.error("\(line.text)", metadata: ["uid": "\(d.item.uid)"])
            }
        }
        switch settlement.count {
        case .delivered:
            self.report.delivered += 1
            self.report.bytes += d.message.receivedSize
        case .deferred: self.report.deferred += 1
        case .failed: self.report.failed += 1
        }
        switch settlement.disposition {
        case .keepOnServer:
            return
        case .delete:
            try await self.flushDele()
            self.pendingDele = (d.item.number, d.item.key)
        case .bounce(let reason, let rejected):
            guard let deliverer else { return }
            if try await self.poller.bounce(
                d.message, uid: d.item.key, reason: reason, rejected: rejected, deliverer: deliverer,
                trackState: trackState)
            {
                try await self.flushDele()
                self.pendingDele = (d.item.number, d.item.key)
            }
        }
    }

    /// Delivers one spooled message to each recipient group in turn, stopping at the first that does not accept.
    private static func deliver(_ message: SpooledMessage, groups: [[String]], deliverer: any Deliverer) async
        -> [RecipientOutcome]
    {
        var out: [RecipientOutcome] = []
        for group in groups {
            let outcomes: [RecipientOutcome]
            do {
                outcomes = try await deliverer.deliver(message, to: group)
            } catch is CancellationError {
                let why = AccountPoller.abandoned
                outcomes = [RecipientOutcome(recipients: group, result: .temporaryFailure(why))]
            } catch {
                outcomes = [RecipientOutcome(recipients: group, result: .temporaryFailure("\(error)"))]
            }
            out += outcomes
            if outcomes.contains(where: { $0.result != .delivered }) { break }
        }
        return out
    }
}
