import Configuration
import Foundation
import Logging
import MailTransport
import POP3Core
import Spool
import UIDLStore

#if canImport(Glibc)
    import Glibc
#endif

/// RETR of one message into a spool file of its own, and the checks before any receiver may see it: the size
/// against LIST, the next reply when the message is not yet proven whole, the space the commit will need.
extension PollSession {
    enum Retrieval {
        /// `confirmed`: a well-formed reply in step with the commands followed its dot line already (the `UIDL n`
        /// after a RETR sent ahead, or a NOOP): it is proven whole before it is handed on.
        case message(SpooledMessage, confirmed: Bool)
        /// The server answered RETR with -ERR.
        case refused
        /// Fewer octets than LIST announced: not delivered, counted as a failed retrieval.
        case short
    }

    /// Messages may run past their LIST size (a server counting LF line ends lists fewer octets than it sends), but
    /// not without bound: a server sending an endless message would fill the state directory's disk.
    static func sizeCap(listed: Int) -> Int { max(2 * listed, listed + 1 << 20) }

    /// Free space the state directory's filesystem must have before a delivery (for the commit that follows it).
    static let minimumStateSpace = 1 << 20

    func requireStateSpace() throws {
        var st = statvfs()
        guard statvfs(self.poller.environment.stateDirectory, &st) == 0 else { return }
        let free = Int(st.f_bavail) * Int(st.f_frsize)
        if free < Self.minimumStateSpace {
            throw PollError(
                .io,
                "the state directory \(self.poller.environment.stateDirectory) has \(free / 1024) KB free; popfetch "
                    + "stops before delivering, since the commit that follows a delivery could fail and the message "
                    + "would be delivered again")
        }
    }

    /// Reads the reply to the `UIDL n` sent after a RETR sent ahead: it must be `+OK n uid` for this very message
    /// (its number, and its UIDL when that is plain RFC 1939 text), or the replies are out of step with the commands
    /// and nothing read since can be trusted to be the message it seems.
    func checkInStep(_ item: PollPlan.Item, refused: Bool) async throws {
        let status = try await self.conn.awaitResponse(to: .uidl(item.number))
        // A message the server refused to RETR may be refused here too (it vanished, or is locked): nothing of it is
        // handed on, and the next message's check still proves the replies in step.
        if refused && !status.isOK { return }
        guard Self.answers(status, uidlOf: item, matchingUID: true) else {
            throw POP3ProtocolError(
                .malformedReply(
                    command: "UIDL \(item.number) (sent after its RETR, to check that the replies are in step)",
                    excerpt: "\(status)"))
        }
    }

    /// The message's first line when it is a POP3 status line that would not be there had the replies been in step:
    /// it starts with `+OK`, and without it (and its CRLF) the message is exactly as long as LIST said. A
    /// server that sent a single-line reply twice (a DELE's, a `UIDL n`'s) had that copy read as the RETR's status
    /// line, and the real one as the message's first line.
    static func statusLineOnTop(_ spool: SpoolFile, listed: Int) -> String? {
        guard let line = spool.firstLine, line.starts(with: "+OK".utf8),
            spool.receivedSoFar - (line.count + 2) == listed
        else { return nil }
        return String.excerpt(of: line)
    }

    /// Whether `status` is `+OK n uid` for `item`'s number (and, with `matchingUID`, its UIDL when that is plain
    /// RFC 1939 text: a UIDL that is not was escaped by the listing's parser, and cannot be compared).
    static func answers(_ status: StatusLine, uidlOf item: PollPlan.Item, matchingUID: Bool = false) -> Bool {
        guard status.isOK, let entry = try? status.uidlEntry(), entry.number == item.number else { return false }
        let plain = item.uid.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
        return !matchingUID || !plain || entry.uid == item.uid
    }

    /// RETR of `item` (already sent: ``request(_:pipelining:)``) into a spool file of its own, with the checks
    /// before any receiver may see it.
    func retrieve(_ item: PollPlan.Item, trackState: Bool, previousUnconfirmed: Bool) async throws -> Retrieval {
        // A message identified by content has only its listing place as a key until it is received: failures there
        // order the poll (it goes last, proven by a NOOP) but never mark it failed, since another message may take
        // that place. The poll fails loudly each time instead.
        let maxRetrievals = item.identify ? Int.max : self.account.retention.maxAttempts
        let spool: SpoolFile
        do {
            spool = try SpoolFile(
                directory: self.poller.environment.stateDirectory, inMemory: item.size <= SpoolFile.memoryLimit)
        } catch {
            throw PollError(.io, "\(error)")
        }
        try spool.begin(
            traceHeader: TraceHeader.make(
                serverHost: self.account.server.host, accountName: self.account.name,
                localHost: self.poller.environment.localHostName, date: Date()))
        let retr = Command.retr(item.number)
        precondition(self.requested.first?.number == item.number, "RETR \(item.number) not sent")
        let sent = self.requested.removeFirst()
        for d in sent.deles {
            try await self.awaitDeleReply(d)
        }
        let refused: StatusLine?
        do {
            let cap = Self.sizeCap(listed: item.size)
            refused = try await self.conn.receiveMessage(retr) { bytes in
                try spool.append(bytes)
                if spool.receivedSoFar > cap {
                    throw PollError(
                        .protocolError,
                        "message \(item.number) ran past \(cap) octets although LIST announced \(item.size); "
                            + "retrieval abandoned")
                }
            }
            if sent.checksUIDL { try await self.checkInStep(item, refused: refused != nil) }
            if let line = Self.statusLineOnTop(spool, listed: item.size) {
                throw POP3ProtocolError(
                    .malformedReply(
                        command: "RETR \(item.number) (its first line is a status line, and the message is exactly "
                            + "as long as LIST said without it: a reply came twice, and the replies are out of step)",
                        excerpt: line))
            }
            // A well-formed reply in step followed the message before this one: it is complete, whatever
            // becomes of this one (a NOOP after it that fails must not cost the one before a duplicate).
            self.provenByReply = true
        } catch {
            // Connection lost or garbage mid-message: this message's retrieval failed (a poisoned message is
            // skipped after max_attempts and cannot block the ones behind it for ever). Garbage before any of its
            // bytes, right after a message not yet confirmed, is most likely the rest of that one (an unstuffed dot
            // ended it early): that one is charged, not this one.
            let blamesPrevious = previousUnconfirmed && error is POP3ProtocolError && spool.receivedSoFar == 0
            if trackState && !blamesPrevious {
                _ = try? self.store.recordRetrievalFailure(
                    mailbox: self.key, uid: item.key,
                    error: "retrieval failed: \(self.redactor.apply(AccountPoller.classify(error).message))",
                    maxAttempts: maxRetrievals, at: Date())
            }
            throw error
        }
        if let refused {
            // The server's words, with the secrets of the login masked (a server may quote them).
            let said = self.redactor.apply("\(refused)")
            self.report.failed += 1
            self.report.latestFailure = "server refused RETR: \(said)"
            self.logger.error("server refused RETR \(item.number): \(said)", metadata: ["uid": "\(item.uid)"])
            if trackState {
                try self.store.recordRetrievalFailure(
                    mailbox: self.key, uid: item.key, error: "server refused RETR: \(said)",
                    maxAttempts: maxRetrievals, at: Date())
            }
            return .refused
        }
        // The terminating dot line has arrived: only now may any receiver see the message, and only if it is as
        // long as LIST said.
        var message = try spool.finish()
        if case .imap = self.account.delivery.method {
            // IMAP delivery's exactly-once identity (see IMAPStateJournal.deliveryID); pending appends are kept
            // only with a state.
            message.deliveryID = IMAPStateJournal.deliveryID(mailbox: self.key, uid: item.key, digest: message.digest)
            if trackState { message.deliveryKey = item.key }
        }
        let shortWithinTolerance =
            message.receivedSize < item.size && message.receivedSize + self.account.retention.sizeTolerance >= item.size
        if shortWithinTolerance || item.confirmFirst {
            // Short of LIST but within size_tolerance, or its retrieval failed before: the next reply must prove the
            // message ended where the server meant it to before any receiver sees it.
            try await self.proveWhole(item, message, trackState: trackState, maxAttempts: maxRetrievals)
        }
        if message.receivedSize + self.account.retention.sizeTolerance < item.size {
            self.report.failed += 1
            let why =
                "received \(message.receivedSize) octets but LIST announced \(item.size): the message arrived "
                + "truncated (or the server's sizes are approximate: see size_tolerance); not delivered, kept on "
                + "the server"
            self.report.latestFailure = why
            self.logger.error("\(why)", metadata: ["uid": "\(item.uid)"])
            if trackState {
                try self.store.recordRetrievalFailure(
                    mailbox: self.key, uid: item.key, error: why, maxAttempts: maxRetrievals,
                    at: Date())
            }
            return .short
        }
        return .message(message, confirmed: sent.checksUIDL || shortWithinTolerance || item.confirmFirst)
    }
}
