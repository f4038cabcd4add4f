public import IMAPCore
public import NIOCore
public import NIOSSL

/// A connected IMAP session (RFC 3501): a thin SwiftNIO transport over ``IMAPResponseParser`` and ``IMAPEncoder``.
/// It sends commands, waits for each one's completion (answering literal continuations), keeps the server's
/// capabilities current, and bounds every wait by a deadline; what the answers mean is the caller's business. Use
/// it only inside ``withConnection(host:port:security:tlsContext:timeouts:setup:trace:body:)``; it is not shared
/// between tasks.
///
/// ```
/// withConnection  S: * OK [CAPABILITY ...] / C: A1 STARTTLS / S: A1 OK / (TLS) / C: A2 CAPABILITY / S: ...
/// authenticate    C: A3 AUTHENTICATE PLAIN <redacted>  /  S: A3 OK
/// append          C: A4 APPEND INBOX "date" {n+} / (n bytes, CRLF)  /  S: A4 OK [APPENDUID v u]
/// logout          C: A5 LOGOUT  /  S: * BYE / A5 OK
/// ```
public final class IMAPConnection {
    public enum Security: Hashable, Sendable {
        case none
        case startTLS
        case implicitTLS
    }

    public struct Timeouts: Hashable, Sendable {
        /// The answer to LOGOUT: nothing depends on it.
        public static let logoutReply: TimeAmount = .seconds(5)

        /// Connecting and each TLS handshake.
        public var connect: TimeAmount
        /// Each wait for a server's answer and each block written (the default: 5 minutes, as SMTP's final reply;
        /// a server may take that long to store a large message).
        public var command: TimeAmount

        public init(connect: TimeAmount, command: TimeAmount = .minutes(5)) {
            self.connect = connect
            self.command = command
        }
    }

    public let host: String
    public let port: Int
    let timeouts: Timeouts
    var parser = IMAPResponseParser()
    var buffer = ByteBuffer()
    /// The channel, its deadlines and its TLS.
    let io: MailChannel
    /// What is going on (`waiting for the greeting`, `APPEND`, ...), for errors.
    var phase: String {
        get { self.io.phase }
        set { self.io.phase = newValue }
    }
    var nextTag = 1
    var trace: (@Sendable (String) -> Void)?

    /// What the server announced last (after STARTTLS and after authentication: what it announced then).
    public internal(set) var capabilities = IMAPCapabilities()
    /// The greeting was PREAUTH: the session is authenticated already.
    public internal(set) var preauthenticated = false
    /// TLS protects the session (implicit TLS, or STARTTLS done).
    public internal(set) var isEncrypted = false
    /// The server said BYE: the connection is closing.
    public internal(set) var closing = false
    public var isActive: Bool { self.io.isActive && !self.closing }

    private init(host: String, port: Int, timeouts: Timeouts, io: MailChannel) {
        self.host = host
        self.port = port
        self.timeouts = timeouts
        self.io = io
    }

    /// Connects (with implicit TLS: and completes the handshake), reads the greeting and the capabilities, upgrades
    /// with STARTTLS when `security` says so (a server that does not offer it, or greets with PREAUTH, is refused:
    /// nothing would protect the session), runs `body`, and closes. `tlsContext` is required unless `security` is
    /// `.none`. `setup`, when given, can abandon the connection until its owner marks the session ready.
    public static func withConnection<Result>(
        host: String, port: Int, security: Security, tlsContext: NIOSSLContext?, timeouts: Timeouts,
        setup: SessionSetup? = nil, trace: (@Sendable (String) -> Void)? = nil,
        body: (IMAPConnection) async throws -> Result
    ) async throws -> Result {
        if security != .none && tlsContext == nil { preconditionFailure("TLS requested without a TLS context") }
        return try await MailChannel.withChannel(
            to: .tcp(host: host, port: port), implicitTLS: security == .implicitTLS, tlsContext: tlsContext,
            connectTimeout: timeouts.connect, setup: setup, profile: Self.edgeProfile(host: host, port: port)
        ) { io in
            let connection = IMAPConnection(host: host, port: port, timeouts: timeouts, io: io)
            connection.trace = trace
            connection.isEncrypted = security == .implicitTLS
            try await connection.greeting()
            if security == .startTLS { try await connection.startTLS() }
            if connection.capabilities.names.isEmpty || !connection.capabilities.isIMAP4rev1 {
                try await connection.refreshCapabilities()
            }
            return try await body(connection)
        }
    }

    // MARK: - Commands

    /// Sends `command` and waits for its completion. NO and BAD come back as a completion (the caller decides
    /// what they mean); BYE and broken bytes throw.
    public func execute(_ command: IMAPCommand) async throws -> IMAPCompletion {
        let tag = self.makeTag()
        let encoded = try IMAPEncoder(capabilities: self.capabilities).encode(command, tag: tag)
        self.phase = command.name
        for (i, part) in encoded.parts.enumerated() {
            if part.waitForContinuation {
                if let early = try await self.awaitContinuation(tag: tag) { return early }
            }
            if i == 0 { self.traceCommand(part.bytes, command: command) }
            try await self.write(ByteBuffer(bytes: part.bytes))
        }
        return try await self.completion(of: tag)
    }

    /// CAPABILITY, and the answer kept in ``capabilities``.
    public func refreshCapabilities() async throws {
        let done = try await self.execute(.capability)
        guard done.isOK else { throw IMAPCommandError(command: "CAPABILITY", status: done.status) }
    }

    /// LOGIN (RFC 3501 §6.2.3); the caller checks LOGINDISABLED and whether the connection may carry a password.
    public func login(user: String, password: String) async throws -> IMAPCompletion {
        let done = try await self.execute(.login(user: user, password: password))
        try await self.afterAuthentication(done.status)
        return done
    }

    /// Capabilities may change with authentication (RFC 3501 §6.2.2): unless the OK carried them, ask again.
    func afterAuthentication(_ status: IMAPStatus) async throws {
        guard status.condition == .ok else { return }
        if case .capability(let names) = status.code {
            self.capabilities = IMAPCapabilities(names)
        } else {
            try await self.refreshCapabilities()
        }
    }

    /// AUTHENTICATE `mechanism`, with the initial response (base64) when given and the server takes SASL-IR
    /// (RFC 4959), else sent as the answer to the first, empty, challenge. Each later challenge (decoded text is
    /// the caller's) is answered by `respond`, which returns base64, or `*` to cancel. Challenges and answers
    /// never reach the trace.
    public func authenticate(
        mechanism: String, initialResponse: String?, respond: (String) throws -> String
    ) async throws -> IMAPCompletion {
        let tag = self.makeTag()
        let inline = self.capabilities.saslInitialResponse ? initialResponse : nil
        var pendingInitial = inline == nil ? initialResponse : nil
        let encoded = try IMAPEncoder(capabilities: self.capabilities).encode(
            .authenticate(mechanism: mechanism, initialResponse: inline), tag: tag)
        self.phase = "AUTHENTICATE \(mechanism)"
        self.trace?("> \(tag) AUTHENTICATE \(mechanism)\(inline == nil ? "" : " ********")")
        for part in encoded.parts { try await self.write(ByteBuffer(bytes: part.bytes)) }
        let deadline = NIODeadline.now() + self.timeouts.command
        while true {
            switch try await self.nextResponse(deadline: deadline) {
            case .continuation(let challenge):
                let answer: String
                if let initial = pendingInitial {
                    answer = initial == "=" ? "" : initial
                    pendingInitial = nil
                } else {
                    answer = try respond(challenge)
                }
                self.trace?("< + ******** (SASL challenge)")
                self.trace?("> ******** (SASL response)")
                try await self.write(ByteBuffer(string: answer + "\r\n"))
            case .tagged(let t, let status) where t == tag:
                self.trace?("< \(t) \(status)")
                try await self.afterAuthentication(status)
                return IMAPCompletion(status: status)
            case let other:
                var ignored = IMAPCompletion(status: IMAPStatus(condition: .ok, text: ""))
                try self.untagged(other, into: &ignored)
            }
        }
    }

    /// APPEND: the command, then the message's `size` bytes as a literal, written by `body` through the writer it is
    /// given (exactly `size` bytes, in as many blocks as it likes), then the end of the command. When the literal is
    /// synchronizing and the server refuses at once (TRYCREATE, OVERQUOTA, a size it will not take), `body` is not
    /// called and the refusal is returned.
    public func append(
        mailbox: String, flags: [String], date: IMAPDateTime?, size: Int,
        body: (IMAPLiteralWriter) async throws -> Void
    ) async throws -> IMAPCompletion {
        let tag = self.makeTag()
        let encoded = try IMAPEncoder(capabilities: self.capabilities).encode(
            .append(mailbox: mailbox, flags: flags, date: date, size: size), tag: tag)
        self.phase = "APPEND"
        for (i, part) in encoded.parts.enumerated() {
            if part.waitForContinuation {
                if let early = try await self.awaitContinuation(tag: tag) { return early }
            }
            if i == 0 {
                self.traceCommand(part.bytes, command: .append(mailbox: mailbox, flags: flags, date: date, size: size))
            }
            try await self.write(ByteBuffer(bytes: part.bytes))
        }
        if encoded.messageLiteral?.synchronizing == true {
            if let early = try await self.awaitContinuation(tag: tag) { return early }
        }
        self.phase = "sending the message (APPEND)"
        let writer = IMAPLiteralWriter(connection: self, size: size)
        try await body(writer)
        guard writer.written == size else {
            // The literal's length was announced: anything else would desynchronise the session.
            self.io.close()
            throw IMAPTransportError(
                .connectionClosed, host: self.host, port: self.port, phase: self.phase,
                detail: "the message was \(writer.written) bytes, not the \(size) announced; connection closed")
        }
        self.trace?("> (the message: \(size) bytes)")
        try await self.write(ByteBuffer(string: "\r\n"))
        self.phase = "waiting for the answer to APPEND"
        return try await self.completion(of: tag)
    }

    /// LOGOUT, its answer waited for briefly and ignored: whatever it says changes nothing.
    public func logout() async {
        guard self.isActive else { return }
        let tag = self.makeTag()
        self.trace?("> \(tag) LOGOUT")
        do {
            try await self.write(ByteBuffer(string: "\(tag) LOGOUT\r\n"))
            let deadline = NIODeadline.now() + Timeouts.logoutReply
            while true {
                if case .tagged(let t, _) = try await self.nextResponse(deadline: deadline, allowBye: true), t == tag {
                    return
                }
            }
        } catch {}
    }

    // MARK: - Bytes

    func traceCommand(_ bytes: [UInt8], command: IMAPCommand) {
        guard let trace = self.trace else { return }
        if command.carriesSecret {
            let tag = String(decoding: bytes.prefix { $0 != 32 }, as: UTF8.self)
            trace("> \(tag) \(command.name) ********")
        } else {
            trace("> " + String(decoding: bytes.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self))
        }
    }

    func readChunk(deadline: NIODeadline) async throws -> ByteBuffer {
        try await self.io.readChunk(deadline: deadline)
    }

    /// One write (a command, a block of a literal), within the command time-out.
    func write(_ buffer: ByteBuffer) async throws {
        try await self.io.write(buffer, within: self.timeouts.command)
    }
}
