extension SMTPDefaults {
    /// RFC 5321 §4.5.3.1.4: a command line is at most 512 octets including CRLF. It decides whether an AUTH initial
    /// response may ride on the command (RFC 4954 §4).
    public static let maximumCommandLineLength = 512

    /// RFC 4422 §3.1: a SASL mechanism name is 1 to 20 characters.
    public static let maximumSASLMechanismNameLength = 20

    /// The most `334` challenges one AUTH exchange may bring. Not from an RFC: real mechanisms need at most two
    /// (LOGIN, SCRAM); a server that keeps challenging is looping, and the session is given up.
    public static let maximumAuthenticationChallenges = 16
}

/// The client side of an SMTP (RFC 5321) or LMTP (RFC 2033) session as a pure value type: replies and the caller's
/// decisions go in, ``Action``s come out. It does no I/O, holds no clock and no logger; the connection carries out
/// the actions (write commands, run the TLS handshake, stream the body, close).
///
/// A session, as popfetch's delivery runs it:
/// ```
/// S: 220 mx.example.org ESMTP                  receivedReply       -> .send([EHLO])      (LMTP: LHLO)
/// C: EHLO client.example.org
/// S: 250-mx.example.org / 250-PIPELINING / 250 STARTTLS
///                                              receivedReply       -> .send([STARTTLS])  (security = .startTLS)
/// S: 220 go ahead                              receivedReply       -> .startTLS
///    (TLS handshake)                           tlsEstablished()    -> .send([EHLO])
/// S: 250-mx.example.org / 250-PIPELINING / 250 AUTH PLAIN
///                                              receivedReply       -> .ready(capabilities)
/// C: AUTH PLAIN AGFsaWNlAHNlY3JldA==           authenticate(...)   -> .sendAuthentication(.auth(...))
/// S: 235 ok                                    receivedReply       -> .authenticated
/// C: MAIL FROM:<a@x> / RCPT TO:<b@y> / DATA    beginTransaction    -> .send([MAIL, RCPT, DATA]) (pipelined)
/// S: 250 / 250 / 354                           receivedReply x3    -> .waitForReply, .waitForReply, .sendBody
/// C: (body, dot-stuffed) .                     bodySent()          -> .waitForReply
/// S: 250 queued                                receivedReply       -> .transactionComplete([b@y: accepted])
/// C: QUIT                                      quit()              -> .send([QUIT])
/// S: 221 bye                                   receivedReply       -> .close
/// ```
///
/// Reply accounting: the machine keeps the list of replies it awaits, in order (``awaitedReplies``), and pairs each
/// reply with the oldest. Under PIPELINING (RFC 2920) it sends `RSET`, `MAIL`, every `RCPT` and `DATA` as one group
/// and checks every reply of the group (RFC 2920 §3.1); without it, one command at a time.
///
/// Errors: a reply that ends the session throws ``SMTPClientError`` and moves the machine to
/// ``SessionState/failed``; the connection must then be closed. An event the current state does not allow is a bug
/// in the caller and throws ``UsageError`` without changing anything.
public struct SMTPClientStateMachine: Sendable {
    // MARK: - State

    public let configuration: Configuration
    public internal(set) var state: SessionState = .awaitingGreeting
    /// What the last EHLO/LHLO reply announced; empty after a HELO fallback, and forgotten at STARTTLS.
    public private(set) var capabilities = SMTPCapabilities()
    /// The connection is encrypted: implicit TLS, or STARTTLS completed.
    public private(set) var isEncrypted: Bool
    public private(set) var isAuthenticated = false

    var pending: [Step] = [.greeting]
    var pendingHead = 0
    var transaction: Transaction?
    /// The server holds transaction state (a MAIL was accepted, and neither the end of data nor RSET ended it), so
    /// the next transaction starts with RSET (RFC 5321 §4.1.1.5).
    var serverTransactionOpen = false
    /// RFC 4954 §4: an initial response too long for the AUTH line, sent after the server's empty challenge.
    private var deferredInitialResponse: String?
    private var challengeCount = 0

    public init(configuration: Configuration) {
        self.configuration = configuration
        self.isEncrypted = configuration.security == .implicitTLS
    }

    /// The replies awaited, oldest first.
    public var awaitedReplies: [Step] { Array(self.pending[self.pendingHead...]) }

    // MARK: - Events

    /// A complete reply from the server (``SMTPReplyParser``).
    public mutating func receivedReply(_ reply: SMTPReply) throws -> Action {
        switch self.state {
        case .closed, .failed:
            throw UsageError(event: "receivedReply", state: self.state, reason: "the session is over")
        default:
            break
        }
        do {
            return try self.handle(reply)
        } catch {
            self.state = .failed
            self.transaction = nil
            self.pending = []
            self.pendingHead = 0
            throw error
        }
    }

    /// The TLS handshake after ``Action/startTLS`` succeeded. Capabilities seen in clear text are forgotten and EHLO
    /// (LHLO) is sent again (RFC 3207 §4.2).
    public mutating func tlsEstablished() throws -> Action {
        guard self.state == .negotiatingTLS else {
            throw UsageError(event: "tlsEstablished", state: self.state, reason: "no STARTTLS was accepted")
        }
        self.isEncrypted = true
        self.capabilities = SMTPCapabilities()
        return self.sendHello()
    }

    /// Starts AUTH (RFC 4954 §4) with the caller's SASL mechanism. `initialResponse` is base64 (empty for an empty
    /// response); it goes on the AUTH line when the line fits ``SMTPDefaults/maximumCommandLineLength``, else after
    /// the server's empty `334` challenge, which the machine answers itself. Allowed once, when ready: RFC 4954 §4
    /// forbids AUTH during a transaction and after a successful AUTH. Whether the mechanism is offered
    /// (`capabilities.keywords["AUTH"]`) and whether clear text is acceptable (``isEncrypted``) is the caller's policy.
    public mutating func authenticate(mechanism: String, initialResponse: String?) throws -> Action {
        guard self.state == .ready else {
            throw UsageError(event: "AUTH", state: self.state, reason: "AUTH is only allowed between transactions")
        }
        guard !self.isAuthenticated else {
            throw UsageError(event: "AUTH", state: self.state, reason: "already authenticated (RFC 4954 §4)")
        }
        var line = SMTPAuthenticationLine.auth(mechanism: mechanism, initialResponse: initialResponse)
        let bytes = try line.encoded()
        self.deferredInitialResponse = nil
        if bytes.count > SMTPDefaults.maximumCommandLineLength, let initialResponse {
            line = .auth(mechanism: mechanism, initialResponse: nil)
            self.deferredInitialResponse = initialResponse
        }
        self.challengeCount = 0
        self.state = .authenticating
        self.expect(.authentication)
        return .sendAuthentication(line)
    }

    /// The caller's base64 answer to the challenge of ``Action/authenticationChallenge(_:)``, or `*` to cancel.
    public mutating func authenticationStep(response: String) throws -> Action {
        guard self.state == .awaitingAuthenticationResponse else {
            throw UsageError(event: "SASL response", state: self.state, reason: "no challenge is waiting for an answer")
        }
        let line = SMTPAuthenticationLine.response(response)
        _ = try line.encoded()
        self.state = .authenticating
        self.expect(.authentication)
        return .sendAuthentication(line)
    }

    /// Starts a mail transaction (RFC 5321 §3.3). The MAIL parameters follow the capabilities: `SIZE=size` when
    /// SIZE is announced and the size known (RFC 1870 §6), `BODY=8BITMIME` when `eightBit` and 8BITMIME is announced
    /// (RFC 6152 §2), `SMTPUTF8` when `needsUTF8` (8-bit header) or an address is not ASCII, and SMTPUTF8 is
    /// announced (RFC 6531 §3.4). A missing extension drops its parameter and the message goes as it is: the
    /// server decides. `sender` empty is the null reverse-path `<>`. Addresses are sent as given; one that SMTP
    /// cannot carry throws ``SMTPCommand/EncodingError`` and the machine stays ready.
    public mutating func beginTransaction(
        sender: String, recipients: [String], size: Int?, needsUTF8: Bool, eightBit: Bool
    ) throws -> Action {
        guard self.state == .ready else {
            throw UsageError(event: "MAIL", state: self.state, reason: "a transaction needs a ready session")
        }
        guard !recipients.isEmpty else {
            throw UsageError(
                event: "MAIL", state: self.state, reason: "a transaction needs a recipient (RFC 5321 §3.3)")
        }
        let caps = self.capabilities
        var parameters: [String] = []
        if let size, caps.size != nil { parameters.append("SIZE=\(max(0, size))") }
        if eightBit && caps.eightBitMIME { parameters.append("BODY=8BITMIME") }
        let nonASCII = ([sender] + recipients).contains { $0.unicodeScalars.contains { !$0.isASCII } }
        if (needsUTF8 || nonASCII) && caps.smtpUTF8 { parameters.append("SMTPUTF8") }
        let mail = SMTPCommand.mailFrom(sender, parameters: parameters)
        let rcpts = recipients.map { SMTPCommand.rcptTo($0) }
        for command in [mail] + rcpts { _ = try command.encoded() }

        let pipelined = caps.pipelining
        self.transaction = Transaction(recipients: recipients, pipelined: pipelined, mailCommand: mail)
        self.state = .transaction
        var commands: [SMTPCommand] = []
        if self.serverTransactionOpen {
            commands.append(.rset)
            self.expect(.rset)
        }
        if pipelined {
            commands.append(mail)
            self.expect(.mailFrom)
            commands += rcpts
            for _ in rcpts { self.expect(.rcptTo) }
            commands.append(.data)
            self.expect(.data)
            return .send(commands)
        }
        if commands.isEmpty {
            commands.append(mail)
            self.expect(.mailFrom)
        }
        return .send(commands)
    }

    /// The body (``Action/sendBody``) or the lone end-of-data line (``Action/sendEmptyBody``) was written.
    public mutating func bodySent() throws -> Action {
        guard self.state == .sendingBody, var t = self.transaction else {
            throw UsageError(event: "bodySent", state: self.state, reason: "no body was asked for")
        }
        // RFC 5321 §4.1.1.4: one reply; RFC 2033 §4.2: one per successful RCPT, in RCPT order.
        t.acceptedAtEndOfData = t.acceptedRecipients
        let replies = self.configuration.dialect == .lmtp ? t.acceptedAtEndOfData.count : 1
        t.endOfDataExpected = replies
        self.transaction = t
        for _ in 0..<replies { self.expect(.endOfData) }
        self.state = .transaction
        if t.pipelined && !t.emptyBody {
            // Right behind the end of data: the NOOP's reply, in step after the end-of-data replies, proves that they
            // answered the end of data (see ``Step/noop``). No round trip more.
            self.expect(.noop)
            return .send([.noop])
        }
        return .waitForReply
    }

    /// Ends the session. When ready, QUIT is sent (RFC 5321 §4.1.1.10) and its reply, whatever it is, closes.
    /// In any other state the connection is simply closed; a transaction in flight is abandoned (the server
    /// commits nothing before its end-of-data reply).
    public mutating func quit() -> Action {
        switch self.state {
        case .ready:
            self.state = .quitting
            self.expect(.quit)
            return .send([.quit])
        default:
            if self.state != .failed { self.state = .closed }
            self.transaction = nil
            self.pending = []
            self.pendingHead = 0
            return .close
        }
    }

    // MARK: - Replies

    private mutating func handle(_ reply: SMTPReply) throws -> Action {
        let step = self.popPending()
        if step == .quit {
            // RFC 5321 §4.1.1.10: the server answers 221 and closes; any answer ends the session.
            self.state = .closed
            return .close
        }
        if self.state == .negotiatingTLS {
            throw self.failure(
                .unexpectedReply, reply, step: nil,
                "reply in clear text after the 220 to STARTTLS; bytes received before the TLS handshake must be "
                    + "discarded (RFC 3207 §4.2)")
        }
        guard (200...599).contains(reply.code) else {
            throw self.failure(.unexpectedReply, reply, step: step, "reply code outside 2yz-5yz (RFC 5321 §4.2.1)")
        }
        if reply.code == 421 {
            throw self.failure(.serviceClosing, reply, step: step, "the server is closing the connection")
        }
        guard let step else {
            let what = self.state == .sendingBody ? "while the message body was being sent" : "when none was awaited"
            throw self.failure(.unexpectedReply, reply, step: nil, "reply \(what)")
        }
        switch step {
        case .greeting, .hello, .helo, .startTLS:
            return try self.handleConnectionReply(reply, step: step)
        case .authentication:
            return try self.handleAuthenticationReply(reply)
        case .rset, .mailFrom, .rcptTo, .data, .endOfData, .noop:
            return try self.handleTransactionReply(reply, step: step)
        case .quit:
            preconditionFailure("QUIT reply handled above")
        }
    }

    private mutating func handleConnectionReply(_ reply: SMTPReply, step: Step) throws -> Action {
        switch step {
        case .greeting:
            // RFC 5321 §4.3.2 connection establishment: S: 220, E: 554.
            if reply.code == 220 { return self.sendHello() }
            if reply.isTransient || reply.isPermanent {
                throw self.failure(.greetingRefused, reply, step: step, "the server refused the session")
            }
            throw self.failure(.unexpectedReply, reply, step: step, "a greeting must be 220 (RFC 5321 §4.3.2)")
        case .hello:
            if reply.isPositive {
                self.capabilities = SMTPCapabilities(ehloReply: reply)
                return try self.sessionUp(reply)
            }
            guard reply.isTransient || reply.isPermanent else {
                throw self.failure(.unexpectedReply, reply, step: step, "EHLO/LHLO answered \(reply.code)")
            }
            if self.configuration.dialect == .lmtp {
                throw self.failure(.helloRefused, reply, step: step, "LHLO refused (RFC 2033 §4.1, no fallback)")
            }
            if self.configuration.security == .startTLS && self.isEncrypted {
                throw self.failure(.helloRefused, reply, step: step, "EHLO after STARTTLS refused (RFC 3207 §4.2)")
            }
            // RFC 5321 §4.1.4: a server that does not take EHLO may still take HELO.
            self.expect(.helo)
            return .send([.helo(self.configuration.clientName)])
        case .helo:
            if reply.isPositive {
                self.capabilities = SMTPCapabilities()
                return try self.sessionUp(reply)
            }
            guard reply.isTransient || reply.isPermanent else {
                throw self.failure(.unexpectedReply, reply, step: step, "HELO answered \(reply.code)")
            }
            throw self.failure(.helloRefused, reply, step: step, "EHLO and HELO refused (RFC 5321 §4.1.4)")
        case .startTLS:
            if reply.code == 220 {
                self.state = .negotiatingTLS
                return .startTLS
            }
            guard reply.isTransient || reply.isPermanent else {
                throw self.failure(.unexpectedReply, reply, step: step, "STARTTLS must be answered 220 (RFC 3207 §4)")
            }
            throw self.failure(.startTLSRefused, reply, step: step, "the server refused STARTTLS (RFC 3207 §4)")
        default:
            preconditionFailure("not a connection step: \(step)")
        }
    }

    /// EHLO/LHLO/HELO succeeded: STARTTLS if required and not done, else ready.
    private mutating func sessionUp(_ reply: SMTPReply) throws -> Action {
        if self.configuration.security == .startTLS && !self.isEncrypted {
            guard self.capabilities.startTLS else {
                throw self.failure(
                    .startTLSNotOffered, reply, step: .hello,
                    "STARTTLS is required but not offered; not going on in clear text (RFC 3207 §4)")
            }
            // RFC 2920 §3.1, RFC 3207 §4: STARTTLS is never pipelined; it goes alone.
            self.state = .awaitingSTARTTLS
            self.expect(.startTLS)
            return .send([.startTLS])
        }
        self.state = .ready
        return .ready(self.capabilities)
    }

    private mutating func sendHello() -> Action {
        self.state = .awaitingHello
        self.expect(.hello)
        let name = self.configuration.clientName
        return .send([self.configuration.dialect == .lmtp ? .lhlo(name) : .ehlo(name)])
    }

    private mutating func handleAuthenticationReply(_ reply: SMTPReply) throws -> Action {
        if reply.code == 235 {
            self.isAuthenticated = true
            self.deferredInitialResponse = nil
            self.state = .ready
            return .authenticated
        }
        if reply.code == 334 {
            // RFC 4954 §4: `334 SP [base64]`; the text is the challenge.
            let challenge = (reply.lines.first ?? "").trimmingSpaces()
            // RFC 4954 §4 (through RFC 2222 §5.1): without its initial response, the server's first challenge is
            // empty and the answer is that response.
            let deferred = self.deferredInitialResponse
            self.deferredInitialResponse = nil
            if let deferred, challenge.isEmpty {
                self.expect(.authentication)
                return .sendAuthentication(.response(deferred))
            }
            self.challengeCount += 1
            guard self.challengeCount <= SMTPDefaults.maximumAuthenticationChallenges else {
                throw self.failure(
                    .unexpectedReply, reply, step: .authentication,
                    "more than \(SMTPDefaults.maximumAuthenticationChallenges) AUTH challenges")
            }
            self.state = .awaitingAuthenticationResponse
            return .authenticationChallenge(challenge)
        }
        if reply.isTransient || reply.isPermanent {
            throw self.failure(.authenticationFailed, reply, step: .authentication, "the server refused AUTH")
        }
        throw self.failure(
            .unexpectedReply, reply, step: .authentication, "AUTH must end with 235 or go on with 334 (RFC 4954 §4)")
    }

    // MARK: - Pending replies

    mutating func expect(_ step: Step) {
        self.pending.append(step)
    }

    private mutating func popPending() -> Step? {
        guard self.pendingHead < self.pending.count else { return nil }
        let step = self.pending[self.pendingHead]
        self.pendingHead += 1
        if self.pendingHead == self.pending.count {
            self.pending.removeAll(keepingCapacity: true)
            self.pendingHead = 0
        }
        return step
    }

    /// The connection was lost (dropped, timed out) while the end-of-data replies came in. LMTP answers each
    /// accepted recipient on its own (RFC 2033 §4.2): the replies received stand and every recipient still open is a
    /// temporary failure, so a recipient that has the message is not sent it again. Nil when no end-of-data reply
    /// had come: nothing was decided, and the message may be sent again whole. The session is over either way.
    public mutating func connectionLost(_ detail: String) -> SMTPClientError? {
        defer {
            self.state = .failed
            self.transaction = nil
            self.pending = []
            self.pendingHead = 0
        }
        // Before any end-of-data reply: nothing was decided, and the message may be sent again whole.
        guard let transaction = self.transaction, transaction.endOfDataReceived > 0 else { return nil }
        // Lost after some or every end-of-data reply, before the NOOP's that proves them in step: none stands (an
        // early reply would credit a recipient with another's verdict), and the server may have the message for
        // some. Deferred, every recipient, counted toward max_attempts: not sent again on a new connection now.
        let reply = SMTPReply(code: 421, lines: ["4.4.2 connection lost (\(detail))"])
        return self.failure(
            .connectionLost, reply, step: .noop,
            "the connection was lost after the end of data, before the server's answers were proven")
    }

    /// An error for `reply`; with a transaction in flight, its results (open recipients: temporary, because of
    /// `reply`).
    func failure(_ code: SMTPClientError.Code, _ reply: SMTPReply, step: Step?, _ detail: String) -> SMTPClientError {
        // After the end of data and before the NOOP's reply, nothing the server said is proven: as at the NOOP.
        let step = (self.transaction.map { $0.endOfDataReceived > 0 && !$0.proven } ?? false) ? .noop : step
        var results =
            self.transaction?.results(
                fallback: Verdict(status: .temporaryFailure, reply: reply, step: step ?? .endOfData)) ?? []
        if step == .noop {
            // Nothing proves the replies of this transaction in step: none of them stands.
            results = results.map {
                RecipientResult(recipient: $0.recipient, status: .temporaryFailure, reply: reply, step: .noop)
            }
        }
        return SMTPClientError(code: code, reply: reply, step: step, detail: detail, transactionResults: results)
    }
}

extension String {
    fileprivate func trimmingSpaces() -> String {
        let scalars = self.unicodeScalars
        guard let first = scalars.firstIndex(where: { $0 != " " && $0 != "\t" }),
            let last = scalars.lastIndex(where: { $0 != " " && $0 != "\t" })
        else { return "" }
        return String(scalars[first...last])
    }
}
