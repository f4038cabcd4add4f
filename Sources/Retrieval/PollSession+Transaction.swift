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

// The transaction loop: each planned message fetched into its spool file, delivered while the next one is fetched,
// settled (committed) before the next delivery starts, and its DELE sent (pipelined with a later RETR). With
// PIPELINING, the RETRs of the next small messages go out before this one is read (up to a window of octets), so a
// link's round trip is paid once per window, not once per message; each message is still proven whole by the reply
// that follows it.
extension PollSession {
    /// A DELE the session owes the server (the message is settled), with the key it deletes.
    struct PendingDele {
        var number: Int
        var key: String
    }

    /// A RETR sent ahead, and the DELEs sent just before it whose replies precede its own.
    struct Requested {
        /// The message's index in the plan.
        var index: Int
        var number: Int
        var size: Int
        var deles: [PendingDele]
        /// A `UIDL n` follows the RETR: its reply, checked before the message is handed on, proves that the replies
        /// are still in step with the commands (a server that skipped or added a reply would otherwise shift every
        /// message of the window onto the next one's UIDL).
        var checksUIDL: Bool
    }

    /// How far ahead RETRs go: at most this many LIST octets outstanding (each message at most the in-memory spool
    /// size), and at most this many messages. Bounds what a stop must read and drop.
    static let windowOctets = 1 << 20
    static let windowCommands = 16

    /// A message whose delivery runs while the next one is fetched.
    struct InFlight {
        var item: PollPlan.Item
        var message: SpooledMessage
        /// A well-formed reply from the server arrived after the message's dot line.
        var confirmed = false
    }

    func transact(
        _ plan: PollPlan, known: [String: MessageRecord], trackState: Bool, deliverer: any Deliverer, pipelining: Bool
    ) async throws {
        // Not with size_tolerance: a message short of LIST within it is proven whole by a NOOP, and no reply of
        // another command may come first.
        // Nor without UIDL (the messages sent ahead are checked by `UIDL n`).
        var chain =
            pipelining && trackState && self.account.retention.sizeTolerance == 0 ? Self.lookahead(plan.items) : []
        // No window when no message has one to follow it: each RETR then goes out alone, as without PIPELINING.
        if !chain.contains(where: { $0 != nil }) { chain = [] }
        if !chain.isEmpty, let probe = plan.items.first(where: { if case .fetch = $0.action { true } else { false } }) {
            // One round trip per poll with new mail: a server that does not answer `UIDL n` as RFC 1939 has it gets
            // no window (each RETR alone, as before), rather than a failed check at every poll.
            let status = try await self.conn.execute(.uidl(probe.number))
            if !Self.answers(status, uidlOf: probe) {
                self.logger.debug("UIDL \(probe.number) answered \(status): RETRs go out one at a time")
                chain = []
            }
        }
        try await withThrowingTaskGroup(of: [RecipientOutcome].self) { group in
            var inFlight: InFlight?
            var previousShort = false
            // The message settled last, kept open until the next delivery has started: closing a spool file frees
            // its pages, work better done while the next MDA runs than between one MDA's exit and the next start.
            var retired: SpooledMessage?
            // Records of vanished messages already matched by a renumbered one in this poll: each matches once.
            var claimed: Set<String> = []

            func settle() async throws {
                guard let pending = inFlight else { return }
                if !pending.confirmed {
                    // The message's completeness rests on the next reply being well-formed: ask for one. If this
                    // fails, the message is still in flight for the error path below to settle. (A RETR sent ahead
                    // is only ever followed by its receipt, which confirms the message before this.)
                    precondition(self.requested.isEmpty, "NOOP with a RETR sent ahead still unanswered")
                    _ = try await self.conn.execute(.noop)
                }
                inFlight = nil
                var d = pending
                d.confirmed = true
                let outcomes = try await group.next() ?? []
                try await self.settle(
                    d, outcomes: outcomes, complete: true, known: known, trackState: trackState, deliverer: deliverer)
                retired = d.message
            }

            do {
                messages: for (index, item) in plan.items.enumerated() {
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
                        if item.action == .deleteOversize {
                            self.logger.notice(
                                "message \(item.number) is \(item.size) bytes, over max_size; deleting it unread",
                                metadata: ["uid": "\(item.uid)"])
                            self.report.skipped += 1
                        }
                        self.pendingDeles.append(PendingDele(number: item.number, key: item.key))
                        continue
                    case .fetch(let recipients):
                        // Messages whose RETR went out ahead are read and dropped (they stay on the server), so that
                        // the session can still end with QUIT and its DELEs take effect.
                        if self.poller.environment.stopRequested() {
                            self.logger.notice("stopping: remaining messages are left for the next poll")
                            self.report.stopped = true
                            if try await self.drainRequested() { inFlight?.confirmed = true }
                            break messages
                        }
                        if let why = await deliverer.unavailability() {
                            self.logger.error(
                                "nothing can be delivered now (\(why)); the rest stay on the server for the next poll")
                            if try await self.drainRequested() { inFlight?.confirmed = true }
                            break messages
                        }
                        try await self.request(index, item, chain: chain, items: plan.items, pipelining: pipelining)
                        let fetched = try await self.retrieve(
                            item, trackState: trackState,
                            previousUnconfirmed: (inFlight.map { !$0.confirmed } ?? false) || previousShort)
                        // Refused or short: a well-formed reply did arrive after the previous message.
                        inFlight?.confirmed = true
                        previousShort = false
                        var message: SpooledMessage
                        var proven: Bool
                        switch fetched {
                        case .refused:
                            continue
                        case .short:
                            // Its tail may arrive as the reply to the next command: that is its fault, not the
                            // next message's.
                            previousShort = true
                            continue
                        case .message(let m, let confirmed):
                            message = m
                            proven = confirmed
                        }
                        // The RETR reply after the previous message was well-formed: it is complete. Settle it
                        // (commit, queue its DELE) before this message's delivery starts.
                        inFlight?.confirmed = true
                        try await settle()
                        if self.poller.environment.stopRequested() {
                            // Asked to stop while the message before was delivered: that was the message in hand.
                            // This one, received but not delivered, stays on the server for the next poll.
                            self.logger.notice("stopping: remaining messages are left for the next poll")
                            self.report.stopped = true
                            _ = try await self.drainRequested()
                            break messages
                        }
                        var item = item
                        var recipients = recipients
                        if item.identify {
                            guard
                                let to = try await self.identify(
                                    &item, &message, proven: &proven, plan: plan, known: known,
                                    trackState: trackState)
                            else { continue }
                            recipients = to
                        }
                        if known[item.key] == nil, !item.identify, let was = plan.vanishedByDigest[message.digest],
                            claimed.insert(was).inserted
                        {
                            // A message delivered under another UIDL that is no longer listed: the server gave it a
                            // new one (a partial UIDL reset). Recorded under the new UIDL, not delivered again.
                            self.logger.notice(
                                "message \(item.number) is one delivered before under another UIDL (same content); not delivered again",
                                metadata: ["uid": "\(item.uid)", "was": "\(was)"])
                            self.report.alreadyDelivered += 1
                            if trackState {
                                let all = self.account.delivery.recipients
                                try self.store.recordDelivered(
                                    mailbox: self.key, uid: item.key, recipients: all, allRecipients: all,
                                    digest: message.digest, at: Date())
                                // Its old record is used up: a second copy under yet another UIDL is new.
                                try self.store.recordDeleted(mailbox: self.key, uids: [was], at: Date())
                            }
                            if !self.account.retention.keep {
                                self.pendingDeles.append(PendingDele(number: item.number, key: item.key))
                            }
                            continue
                        }
                        if let expected = item.verify, message.digest == expected {
                            if item.deleteIfSame {
                                // The message delivered, whose DELE is due: the same content, so it is deleted.
                                self.logger.debug(
                                    "message \(item.number) is the one delivered (same content); deleting it",
                                    metadata: ["uid": "\(item.uid)"])
                            } else {
                                // The message delivered before, listed again (the server kept it after DELE and QUIT,
                                // or its LIST size changed): not delivered twice.
                                self.logger.notice(
                                    "message \(item.number) is one already delivered (same content); not delivered again",
                                    metadata: ["uid": "\(item.uid)"])
                                self.report.alreadyDelivered += 1
                                if trackState {
                                    try self.store.recordSameAgain(
                                        mailbox: self.key, uid: item.key, size: item.size, at: Date())
                                }
                            }
                            if !self.account.retention.keep || item.deleteIfSame {
                                self.pendingDeles.append(PendingDele(number: item.number, key: item.key))
                            }
                            continue
                        }
                        if item.deleteIfSame || item.confirmOther {
                            guard try self.otherContentIsNew(item, message, trackState: trackState) else { continue }
                        }
                        if let first = item.partialDigest, message.digest != first {
                            // Not the content the first recipients got: a new message under the UIDL (delivered
                            // to every recipient, the record started over) once two comparisons agree.
                            guard try self.otherContentIsNew(item, message, trackState: trackState, planned: true)
                            else { continue }
                            item.restart = true
                            recipients = self.account.delivery.recipients
                        }
                        if trackState && (item.verify != nil || item.restart) {
                            // The record starts over; recipients that got this very content under the key before (a
                            // content that came back under its UIDL) are not sent it again.
                            switch try self.store.restartMessage(
                                mailbox: self.key, uid: item.key, size: item.size, digest: message.digest,
                                recipients: self.account.delivery.recipients, at: Date())
                            {
                            case .new:
                                break
                            case .partly(let had):
                                recipients = recipients.filter { !had.contains($0) }
                                self.logger.notice(
                                    "message \(item.number) is a content some recipients got under its UIDL before; only the others get it",
                                    metadata: ["uid": "\(item.uid)"])
                                if recipients.isEmpty { continue }
                            case .delivered:
                                self.logger.notice(
                                    "message \(item.number) is a content every recipient got under its UIDL before; not delivered again",
                                    metadata: ["uid": "\(item.uid)"])
                                self.report.alreadyDelivered += 1
                                if !self.account.retention.keep || item.deleteIfSame {
                                    self.pendingDeles.append(PendingDele(number: item.number, key: item.key))
                                }
                                continue
                            }
                        }
                        // The commit after the delivery must not fail for want of space (the message would be
                        // delivered again at every poll): stop before delivering when the state's disk is nearly full.
                        try self.requireStateSpace()
                        let groups = deliverer.recipientGroups(recipients)
                        // A Maildir write runs off the poll's event loop, beside the next message's retrieval; an
                        // MDA (started without blocking), an SMTP, LMTP or IMAP delivery stays on it.
                        let executor: (any TaskExecutor)? =
                            deliverer.blocksItsThread ? globalConcurrentExecutor : EventLoopTaskExecutor.current
                        let spooled = message
                        group.addTask(executorPreference: executor) {
                            await Self.deliver(spooled, groups: groups, deliverer: deliverer)
                        }
                        // On the loop, the delivery starts (an MDA is spawned, an SMTP DATA goes out) before this
                        // task goes on to write more RETRs: waking the server first let it take the CPU from the
                        // loop between one MDA's exit and the next one's start.
                        if !deliverer.blocksItsThread { await Task.yield() }
                        if retired != nil { retired = nil }
                        inFlight = InFlight(item: item, message: message, confirmed: proven)
                        self.provenByReply = false
                    }
                }
                // The DELEs still owed go out now: their replies prove the last message whole without a NOOP.
                if try await self.flushDeles() { inFlight?.confirmed = true }
                try await settle()
            } catch {
                // Whatever failed, a delivery that ran is settled before giving up, so no avoidable duplicate: as
                // delivered if the message is known complete (a well-formed reply followed it, or the connection
                // merely ended and it has all its LIST octets); otherwise not committed, fetched again next poll.
                if let d = inFlight {
                    inFlight = nil
                    let outcomes = (try? await group.next()) ?? []
                    let malformed = error is POP3ProtocolError
                    let complete =
                        d.confirmed || self.provenByReply || (!malformed && d.message.receivedSize >= d.item.size)
                    try? await self.settle(
                        d, outcomes: outcomes, complete: complete, known: known, trackState: trackState,
                        deliverer: nil)
                }
                throw error
            }
        }
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
        for w in settlement.writes {
            switch w {
            case .deliveryFailure(let error, _, _), .retrievalFailure(let error): self.report.latestFailure = error
            case .delivered: break
            }
        }
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
            self.pendingDeles.append(PendingDele(number: d.item.number, key: d.item.key))
        case .bounce(let reason, let rejected):
            guard let deliverer else { return }
            if try await self.poller.bounce(
                d.message, uid: d.item.key, reason: reason, rejected: rejected, deliverer: deliverer,
                trackState: trackState)
            {
                self.pendingDeles.append(PendingDele(number: d.item.number, key: d.item.key))
            }
        }
    }

    /// Delivers one spooled message to each recipient group in turn, stopping at the first that does not accept.
    private static func deliver(_ message: SpooledMessage, groups: [[String]], deliverer: any Deliverer) async
        -> [RecipientOutcome]
    {
        // Every group is tried: one recipient's failure (its mailbox full, its MDA run refused) must not keep the
        // message from the others. Only a cancelled poll (the daemon's grace ran out) starts no more runs.
        var out: [RecipientOutcome] = []
        for (index, group) in groups.enumerated() {
            let outcomes: [RecipientOutcome]
            do {
                outcomes = try await deliverer.deliver(message, to: group)
            } catch is CancellationError {
                let why = AccountPoller.abandoned
                let rest = groups[index...].flatMap { $0 }
                return out + [RecipientOutcome(recipients: rest, result: .temporaryFailure(why))]
            } catch {
                outcomes = [RecipientOutcome(recipients: group, result: .temporaryFailure("\(error)"))]
            }
            out += outcomes
        }
        return out
    }
}
