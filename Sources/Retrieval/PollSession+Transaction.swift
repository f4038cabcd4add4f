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
// settled (committed) before the next delivery starts, and its DELE sent (pipelined with the next RETR).
extension PollSession {
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
                            self.report.stopped = true
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
                        // An MDA or a Maildir write runs off the poll's event loop, beside the next message's
                        // retrieval; an SMTP, LMTP or IMAP delivery stays on it, with its connection.
                        let executor: (any TaskExecutor)? = deliverer.blocksItsThread ? globalConcurrentExecutor : nil
                        group.addTask(executorPreference: executor) {
                            await Self.deliver(message, groups: groups, deliverer: deliverer)
                        }
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
