public import NIOCore
public import NIOSSL
public import SMTPCore

/// A connected SMTP or LMTP session (RFC 5321, RFC 2033): a thin SwiftNIO transport that parses the server's bytes
/// into replies (``SMTPReplyParser``), feeds them to ``SMTPClientStateMachine`` and carries out the actions it
/// returns — writes, the STARTTLS handshake, the lone dot of an empty body. It decides nothing itself. Use it only
/// inside ``withConnection(to:configuration:tlsContext:timeouts:body:)``; it is not shared between tasks.
///
/// ```
/// withConnection  S: 220 / C: EHLO / S: 250-STARTTLS / C: STARTTLS / S: 220 / (TLS) / C: EHLO / S: 250 ...
/// authenticate    C: AUTH PLAIN <redacted>  /  S: 235
/// beginTransaction  C: MAIL FROM / RCPT TO / DATA (pipelined when offered)  /  S: 250 / 250 / 354
/// writeBody...    C: (the message, dot-stuffed, .CRLF in the last block)
/// bodySent        S: 250 (LMTP: one per accepted recipient)
/// quit            C: QUIT  /  S: 221
/// ```
///
/// Every wait for a reply is bounded by the RFC 5321 §4.5.3.2 time-out of the step it answers, every write by the
/// 3 minutes of §4.5.3.2.5 (both lowered by ``Timeouts/cap``). TCP_NODELAY is set on TCP sockets.
public final class SMTPConnection {
    /// Time-outs: RFC 5321 §4.5.3.2 per reply (``SMTPClientStateMachine/Step/minimumTimeoutSeconds``), and per
    /// block written; `cap` (`smtp_timeout`) lowers all of them.
    public struct Timeouts: Hashable, Sendable {
        /// RFC 5321 §4.5.3.2.5: each block of data written, 3 minutes.
        public static let dataBlockMinimum: TimeAmount = .minutes(3)
        /// The reply to QUIT: the mail is delivered by then, and the answer changes nothing.
        public static let quitReply: TimeAmount = .seconds(5)

        /// Connecting and each TLS handshake.
        public var connect: TimeAmount
        /// When set, no wait is longer than this.
        public var cap: TimeAmount?

        public init(connect: TimeAmount, cap: TimeAmount? = nil) {
            self.connect = connect
            self.cap = cap
        }

        /// How long to wait for the reply to `step`.
        public func reply(to step: SMTPClientStateMachine.Step) -> TimeAmount {
            if step == .quit { return self.capped(Self.quitReply) }
            return self.capped(.seconds(Int64(step.minimumTimeoutSeconds)))
        }

        /// How long one write may take.
        public var dataBlock: TimeAmount { self.capped(Self.dataBlockMinimum) }

        private func capped(_ t: TimeAmount) -> TimeAmount { self.cap.map { min(t, $0) } ?? t }
    }

    /// Where an AUTH exchange stands (RFC 4954 §4).
    public enum AuthenticationStep: Hashable, Sendable {
        /// A `334` challenge, base64: answer it with ``answerChallenge(_:)``.
        case challenge(String)
        /// `235`.
        case authenticated
    }

    /// Where a mail transaction stands after MAIL, RCPT and DATA.
    public enum TransactionStep: Hashable, Sendable {
        /// `354`: write the message with ``writeBody(_:)``, then call ``bodySent()``.
        case sendBody
        /// Over without a body (MAIL or every RCPT refused, or DATA refused): one result per recipient.
        case complete([SMTPClientStateMachine.RecipientResult])
    }

    public let endpoint: SMTPEndpoint
    let timeouts: Timeouts
    var machine: SMTPClientStateMachine
    var parser = SMTPReplyParser()
    var buffer = ByteBuffer()
    /// The channel, its deadlines and its TLS; it counts the bytes received, so that a reply out of turn is seen
    /// without reading.
    let io: MailChannel
    /// What is going on (`waiting for the reply to RCPT TO`, ...), for errors.
    var phase: String {
        get { self.io.phase }
        set { self.io.phase = newValue }
    }
    /// Receives each line of the dialogue for a protocol trace (`--log-level trace`): commands as sent, AUTH lines
    /// with their payloads masked, the body by its size, replies line by line. nil: no trace.
    var trace: (@Sendable (String) -> Void)?
    /// Bytes of the body written in the transaction, for its trace line.
    var tracedBodyBytes = 0

    /// What the last EHLO/LHLO announced (after STARTTLS: what it announced over TLS).
    public var capabilities: SMTPCapabilities { self.machine.capabilities }
    /// True once TLS protects the session (implicit TLS, or STARTTLS done).
    public var isEncrypted: Bool { self.machine.isEncrypted }
    public var state: SMTPClientStateMachine.SessionState { self.machine.state }
    public var isActive: Bool { self.io.isActive }

    private init(
        endpoint: SMTPEndpoint, configuration: SMTPClientStateMachine.Configuration, timeouts: Timeouts,
        io: MailChannel
    ) {
        self.endpoint = endpoint
        self.machine = SMTPClientStateMachine(configuration: configuration)
        self.timeouts = timeouts
        self.io = io
    }

    /// Connects (with implicit TLS: and completes the handshake), runs the session up to ready — greeting,
    /// EHLO/LHLO (HELO fallback), STARTTLS and EHLO again when `configuration.security` says so — runs `body`, and
    /// closes. `tlsContext` is required unless `configuration.security` is `.none`. `setup`, when given, can abandon
    /// the connection until its owner marks the session ready.
    public static func withConnection<Result>(
        to endpoint: SMTPEndpoint, configuration: SMTPClientStateMachine.Configuration, tlsContext: NIOSSLContext?,
        timeouts: Timeouts, setup: SessionSetup? = nil, trace: (@Sendable (String) -> Void)? = nil,
        body: (SMTPConnection) async throws -> Result
    ) async throws -> Result {
        if configuration.security != .none && tlsContext == nil {
            preconditionFailure("TLS requested without a TLS context")
        }
        return try await MailChannel.withChannel(
            to: endpoint.address, implicitTLS: configuration.security == .implicitTLS, tlsContext: tlsContext,
            connectTimeout: timeouts.connect, setup: setup, countingReceived: true,
            profile: Self.edgeProfile(endpoint)
        ) { io in
            let connection = SMTPConnection(
                endpoint: endpoint, configuration: configuration, timeouts: timeouts, io: io)
            connection.trace = trace
            guard case .ready = try await connection.drive(.waitForReply) else {
                preconditionFailure("the session setup ended without the session being ready")
            }
            return try await body(connection)
        }
    }

    // MARK: - The session, as the caller drives it

    /// Starts AUTH with a SASL mechanism; `initialResponse` is base64 (see
    /// ``SMTPClientStateMachine/authenticate(mechanism:initialResponse:)``). A refusal throws ``SMTPClientError``
    /// (`.authenticationFailed`), after which the connection is done.
    public func authenticate(mechanism: String, initialResponse: String?) async throws -> AuthenticationStep {
        self.phase = "AUTH \(mechanism)"
        let action = try self.machine.authenticate(mechanism: mechanism, initialResponse: initialResponse)
        return Self.authenticationStep(try await self.drive(action))
    }

    /// The base64 answer to the last challenge, or `*` to cancel the exchange.
    public func answerChallenge(_ response: String) async throws -> AuthenticationStep {
        let action = try self.machine.authenticationStep(response: response)
        return Self.authenticationStep(try await self.drive(action))
    }

    private static func authenticationStep(_ action: SMTPClientStateMachine.Action) -> AuthenticationStep {
        switch action {
        case .authenticationChallenge(let challenge): return .challenge(challenge)
        case .authenticated: return .authenticated
        default: preconditionFailure("AUTH ended in \(action)")
        }
    }

    /// MAIL FROM, RCPT TO and DATA (one write under PIPELINING; RSET first after a transaction), up to the `354`
    /// or the end of the transaction. A 354 that comes although no recipient was accepted is answered with the
    /// lone end-of-data line here (RFC 2920 §3.1). Addresses SMTP cannot carry throw
    /// ``SMTPCommand/EncodingError`` before anything is written, and the session stays usable.
    public func beginTransaction(
        sender: String, recipients: [String], size: Int?, needsUTF8: Bool, eightBit: Bool
    ) async throws -> TransactionStep {
        // A reply waiting before the first command of a transaction answers nothing of it: the replies of the one
        // before were out of step (a reply sent early, or one too many). Read as this transaction's, it would shift
        // every verdict (a RCPT refusal taken for DATA's, for every recipient). Nothing of it is sent: the session
        // ends, and the message goes on a new connection.
        if self.buffer.readableBytes > 0 || self.io.hasUnreadBytes {
            throw SMTPTransportError(
                .connectionClosed, endpoint: self.endpoint,
                phase: "starting a transaction (a reply nobody asked for was waiting: the replies were out of step)")
        }
        let action = try self.machine.beginTransaction(
            sender: sender, recipients: recipients, size: size, needsUTF8: needsUTF8, eightBit: eightBit)
        switch try await self.drive(action) {
        case .sendBody: return .sendBody
        case .transactionComplete(let results): return .complete(results)
        case let other: preconditionFailure("a transaction's commands ended in \(other)")
        }
    }

    /// Writes one block of the message body (already dot-stuffed by ``DataEncoder``; the last block ends with the
    /// end-of-data line), within ``Timeouts/dataBlock``: an MTA that stops reading cannot hold a poll for ever.
    public func writeBody(_ block: [UInt8]) async throws {
        precondition(self.machine.state == .sendingBody, "body written without a 354")
        self.phase = "sending the message"
        try await self.refuseEarlyReply()
        try await self.write(ByteBuffer(bytes: block))
        self.tracedBodyBytes += block.count
    }

    /// The whole body, end-of-data line included, was written: the reply (LMTP: one per accepted recipient) decides.
    /// A connection lost after part of the LMTP replies throws an ``SMTPClientError`` with the verdicts received
    /// (see ``SMTPClientStateMachine/connectionLost(_:)``); lost before any, the transport error.
    public func bodySent() async throws -> [SMTPClientStateMachine.RecipientResult] {
        try await self.finishBody(nil)
    }

    /// Writes the body's last block (ending with the end-of-data line) and, in the same write, what the machine
    /// sends behind it (the NOOP that proves the replies in step, under PIPELINING), then reads the replies as
    /// ``bodySent()`` does. One write: the MTA reads the dot and the NOOP together and answers both at once.
    public func finishBody(_ lastBlock: [UInt8]?) async throws -> [SMTPClientStateMachine.RecipientResult] {
        var out = ByteBuffer()
        if let lastBlock {
            precondition(self.machine.state == .sendingBody, "body written without a 354")
            self.phase = "sending the message"
            try await self.refuseEarlyReply()
            out.writeBytes(lastBlock)
            self.tracedBodyBytes += lastBlock.count
        }
        self.trace?("> (the message: \(self.tracedBodyBytes) bytes, dot-stuffed, with the end-of-data line)")
        self.tracedBodyBytes = 0
        do {
            var action = try self.machine.bodySent()
            if case .send(let commands) = action, lastBlock != nil {
                for command in commands {
                    let line = try command.encoded()
                    out.writeBytes(line)
                    self.trace?("> " + String(decoding: line.prefix { $0 != 13 }, as: UTF8.self))
                }
                action = .waitForReply
            }
            if out.readableBytes > 0 { try await self.write(out) }
            switch try await self.drive(action) {
            case .transactionComplete(let results):
                // More bytes already in after the NOOP's reply: one reply too many came, so the one read as the
                // NOOP's may have been another's (a reply sent before the end of the message shifts every reply by
                // one). None stands; the session ends.
                if self.buffer.readableBytes > 0 || self.io.hasUnreadBytes {
                    let reply = SMTPReply(code: 421, lines: ["4.5.0 a reply nobody asked for followed the NOOP's"])
                    throw SMTPClientError(
                        code: .unexpectedReply, reply: reply, step: .noop,
                        detail: "the replies are out of step with the commands (one too many after the end of data), "
                            + "so none of this transaction's stands",
                        transactionResults: results.map {
                            .init(recipient: $0.recipient, status: .temporaryFailure, reply: reply, step: .noop)
                        })
                }
                return results
            case let other: preconditionFailure("the end of data ended in \(other)")
            }
        } catch let e as SMTPTransportError {
            if let lost = self.machine.connectionLost(e.description) { throw lost }
            throw e
        } catch let e as SMTPProtocolError {
            // A reply that cannot be read (garbage, an over-long line) ends the session like a lost connection: the
            // end-of-data replies read before it stand (LMTP), and nothing is sent again on a new connection now.
            if let lost = self.machine.connectionLost(e.description) { throw lost }
            throw e
        }
    }

    /// QUIT when the session is between transactions (its reply is waited for briefly and ignored), else nothing:
    /// the connection closes when ``withConnection(to:configuration:tlsContext:timeouts:body:)`` returns.
    public func quit() async {
        let action = self.machine.quit()
        guard case .send = action else { return }
        _ = try? await self.drive(action)
    }
}

extension SMTPEndpoint {
    /// Where the shared edge connects.
    var address: MailChannel.Address {
        switch self {
        case .tcp(let host, let port): return .tcp(host: host, port: port)
        case .unix(let path): return .unix(path: path)
        }
    }
}
