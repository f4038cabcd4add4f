import MailTransport
import SMTPCore
import Spool

/// The session task: connections to the MTA, one message after another, and the policy for failures.
extension SMTPDeliverer {
    /// What becomes of a message whose connection failed.
    enum Disposition {
        /// Send it again on a new connection (once: the MTA dropped the connection, timed out, or broke the
        /// protocol before the transaction began).
        case resend
        /// Send it again on a new connection, authenticating with the next mechanism; not counted as a failure.
        case nextMechanism
        case done([RecipientOutcome])
    }

    /// Serves the session's messages until it is closed: a connection is opened for the first message and kept
    /// for the next ones; when it fails, the message it was carrying is settled by ``disposition(_:of:resent:)`` and
    /// the next one gets a new connection.
    nonisolated func serve() async {
        var auth = SMTPAuthPlan()
        var carried: Request?
        var resent = false
        // Sessions in a row that could not be set up (connect, TLS, greeting, EHLO). Not `resent`: that is also set
        // by a connection dropped mid-transaction, which says nothing of whether the MTA can be reached.
        var setupFailures = 0
        while true {
            var current: Request?
            if let request = carried {
                current = request
            } else {
                current = await self.nextRequest()
            }
            carried = nil
            guard let first = current else { return }
            if let failure = auth.failure {
                first.answer(.temporaryFailure(failure))
                continue
            }
            if let why = await self.unreachable {
                first.answer(.temporaryFailure(why))
                continue
            }
            var ready = false
            let setup = SessionSetup()
            do {
                try await self.abandoningOnStop(setup) {
                    try await SMTPConnection.withConnection(
                        to: self.endpoint, configuration: self.sessionConfiguration, tlsContext: self.tlsContext,
                        timeouts: self.timeouts, setup: setup, trace: self.trace
                    ) { conn in
                        ready = true
                        setupFailures = 0
                        try await self.authenticate(conn, plan: &auth)
                        guard setup.markReady() else { throw CancellationError() }
                        try await self.serveMessages(on: conn, current: &current, resent: &resent)
                    }
                }
                carried = current
            } catch {
                guard let request = current else { continue }
                if setup.wasAbandoned {
                    // Stopped while the session was being set up: nothing of the message was sent. It stays on the
                    // server, and so do the rest (the poll stops fetching).
                    await self.markUnreachable(Self.stoppedDuringSetup)
                    request.answer(.temporaryFailure(Self.stoppedDuringSetup))
                    continue
                }
                if !ready { setupFailures += 1 }
                if setupFailures >= 2 {
                    // The second session in a row that could not even be set up: the MTA is down or refuses us.
                    await self.markUnreachable("\(error)")
                }
                switch self.disposition(error, of: request, resent: resent) {
                case .resend:
                    resent = true
                    carried = request
                case .nextMechanism:
                    carried = request
                case .done(let outcomes):
                    resent = false
                    request.answer(outcomes)
                }
            }
        }
    }

    /// Why a message is deferred when popfetch is stopped while the MTA session is set up (a notice, not an error).
    public static let stoppedDuringSetup = "popfetch was asked to stop while the MTA session was being set up"

    /// Runs `body`; while `setup` is setting up, a stop request (looked at every 100 ms) abandons it.
    nonisolated func abandoningOnStop(_ setup: SessionSetup, _ body: () async throws -> Void) async throws {
        try await SessionSetup.abandoningOnStop(setup, stopRequested: self.stopRequested, body)
    }

    /// The session's messages, one transaction after another on `conn`, until the session is closed (QUIT) or the
    /// MTA closed an idle connection (`current` is then the next message, for a new connection).
    nonisolated func serveMessages(on conn: SMTPConnection, current: inout Request?, resent: inout Bool) async throws {
        while let request = current {
            let outcomes = try await self.transaction(request, on: conn)
            request.answer(outcomes)
            current = nil
            resent = false
            guard let next = await self.nextRequest() else {
                await conn.quit()
                return
            }
            current = next
            // An MTA may close a connection left idle (RFC 5321 §4.5.3.2.7): the next one goes on a new one.
            if !conn.isActive { return }
        }
    }

    nonisolated var sessionConfiguration: SMTPClientStateMachine.Configuration {
        let security: SMTPClientStateMachine.Configuration.Security
        switch self.tls {
        case .none: security = .none
        case .starttls: security = .startTLS
        case .implicit: security = .implicitTLS
        }
        return SMTPClientStateMachine.Configuration(
            dialect: self.lmtp ? .lmtp : .smtp, clientName: self.heloName, security: security)
    }

    /// Policy after `error` ended the connection that carried `request`.
    nonisolated func disposition(_ error: any Error, of request: Request, resent: Bool) -> Disposition {
        let everyone = { (result: DeliveryResult) in
            Disposition.done([RecipientOutcome(recipients: request.recipients, result: result)])
        }
        switch error {
        case let e as SMTPAuthPlan.Refusal:
            return e.tryNextMechanism ? .nextMechanism : everyone(.temporaryFailure(e.description))
        case let e as SMTPClientError
        where e.code == .serviceClosing && !resent && e.step != .noop
            && e.transactionResults.allSatisfy({ $0.reply == e.reply }):
            // 421 before the server decided anything in this transaction (an MTA that timed out the connection while
            // popfetch was fetching): once more, on a new connection.
            return .resend
        case let e as SMTPClientError where !e.transactionResults.isEmpty:
            // The server ended the session mid-transaction (421) or broke the protocol (a 2xx to DATA): what it
            // decided stands, the rest is deferred. Not sent again: the server may have taken part of it.
            return .done(self.outcomes(e.transactionResults, for: request.recipients, ending: e))
        case is AfterEndOfData:
            return resent ? everyone(.failure("\(error)")) : .resend
        case is SMTPTransportError, is SMTPProtocolError, is SMTPClientError:
            // Dropped, timed out, or the session could not be set up: once more from the spool, then deferred.
            return resent ? everyone(.temporaryFailure("\(error)")) : .resend
        case let e as SpoolError:
            // Mid-DATA: the connection was dropped without an end-of-data line (that would commit part of it).
            return everyone(.temporaryFailure(e.description))
        default:
            return everyone(.temporaryFailure("\(error)"))
        }
    }

    // MARK: - One message

    /// One mail transaction for `request` on `conn`.
    nonisolated func transaction(_ request: Request, on conn: SMTPConnection) async throws -> [RecipientOutcome] {
        let message = request.message
        var sender = message.envelopeSender
        if sender.unicodeScalars.contains(where: { $0.value <= 0x20 || $0 == "<" || $0 == ">" }) { sender = "" }
        let addresses = request.recipients.map {
            self.lmtp || $0.utf8.contains(UInt8(ascii: "@")) ? $0 : $0 + "@localhost"
        }
        let step: SMTPConnection.TransactionStep
        do {
            step = try await conn.beginTransaction(
                sender: sender, recipients: addresses, size: message.length, needsUTF8: message.headerHas8Bit,
                eightBit: message.has8Bit)
        } catch let e as SMTPCommand.EncodingError {
            // Nothing was sent; the session goes on.
            return [RecipientOutcome(recipients: request.recipients, result: .failure(e.description))]
        }
        switch step {
        case .complete(let results):
            return self.outcomes(results, for: request.recipients)
        case .sendBody:
            let last = try await Self.sendBody(message, on: conn)
            do {
                return self.outcomes(try await conn.finishBody(last), for: request.recipients)
            } catch let e where e is SMTPTransportError || e is SMTPProtocolError {
                throw AfterEndOfData(underlying: e)
            }
        }
    }

    /// The connection failed after the whole message and its end-of-data line were written, before any reply:
    /// the MTA may have stored it. Sent once more on a new connection; if that fails too, the failure counts
    /// toward `max_attempts`, so that an MTA that stores every message and then drops the connection does not get
    /// a copy at every poll for ever.
    struct AfterEndOfData: Error, CustomStringConvertible {
        var underlying: any Error
        var description: String {
            "\(self.underlying) (after the end of data: the MTA may have the message)"
        }
    }

    /// Streams the spool file (trace header and message) as DATA: CRLF, dot-stuffed, `.CRLF` at the end, which
    /// rides in the last block (one write and one wait fewer per message). The spool reader ends exactly at the
    /// recorded length, or throws.
    /// Returns the last block, not yet written: ``SMTPConnection/finishBody(_:)`` writes it with what follows the
    /// end of data.
    static func sendBody(_ message: SpooledMessage, on conn: SMTPConnection) async throws -> [UInt8] {
        var encoder = DataEncoder()
        var reader = message.makeReader()
        var out: [UInt8] = []
        while true {
            out.removeAll(keepingCapacity: true)
            _ = try reader.nextChunk { encoder.encode($0, into: &out) }
            if reader.isAtEnd {
                encoder.finish(into: &out)
                return out
            }
            try await conn.writeBody(out)
        }
    }

    /// The machine's verdicts as delivery outcomes, for the recipients as configured (`results` has them as sent,
    /// in the same order). Recipients with the same outcome are grouped.
    nonisolated func outcomes(
        _ results: [SMTPClientStateMachine.RecipientResult], for recipients: [String],
        ending error: SMTPClientError? = nil
    ) -> [RecipientOutcome] {
        var out: [RecipientOutcome] = []
        for (original, result) in zip(recipients, results) {
            let text: String
            if let error, result.status == .temporaryFailure, result.reply == error.reply {
                text = error.description
            } else {
                text = self.describe(result)
            }
            let delivery: DeliveryResult
            switch result.status {
            case .accepted: delivery = .delivered
            // Out of step after the end of data: the MTA may have stored it. Counted toward max_attempts.
            case .temporaryFailure where result.step == .noop: delivery = .failure(text)
            case .temporaryFailure: delivery = .temporaryFailure(text)
            case .permanentFailure: delivery = .permanentFailure(text)
            }
            if let last = out.last, last.result == delivery {
                out[out.count - 1].recipients.append(original)
            } else {
                out.append(RecipientOutcome(recipients: [original], result: delivery))
            }
        }
        return out
    }

    private nonisolated func describe(_ result: SMTPClientStateMachine.RecipientResult) -> String {
        let said = "MTA said \(result.reply)"
        switch result.step {
        case .rcptTo: return "RCPT TO:<\(result.recipient)>: \(said)"
        case .endOfData where self.lmtp: return "LMTP <\(result.recipient)>: \(said)"
        case let step: return "\(step): \(said)"
        }
    }
}
