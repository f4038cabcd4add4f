public import IMAPCore
import NIOConcurrencyHelpers
public import NIOCore
import NIOPosix
public import NIOSSL
import NIOTLS

/// A failure below the IMAP protocol: name resolution, the connection, TLS, a time-out, a dropped connection.
/// (What the server answered is an ``IMAPCommandError``; bytes outside the grammar an ``IMAPProtocolError``.)
public struct IMAPTransportError: Error, Hashable, Sendable, CustomStringConvertible {
    public var kind: TransportError.Kind
    public var host: String
    public var port: Int
    /// What was going on (`connecting`, `TLS handshake`, `APPEND`, ...).
    public var phase: String
    /// Extra detail from below (never a secret: it comes from the network layer).
    public var detail: String?

    public init(_ kind: TransportError.Kind, host: String, port: Int, phase: String, detail: String? = nil) {
        self.kind = kind
        self.host = host
        self.port = port
        self.phase = phase
        self.detail = detail
    }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.kind == rhs.kind }
    public func hash(into hasher: inout Hasher) { hasher.combine(self.kind) }

    public var description: String {
        let server = "the IMAP server at \(self.host.contains(":") ? "[\(self.host)]" : self.host):\(self.port)"
        var s: String
        switch self.kind {
        case .unknownHost: s = "cannot resolve the host name of \(server)"
        case .connectionRefused:
            s = self.detail == nil ? "connection refused by \(server)" : "cannot connect to \(server)"
        case .timeout: s = "time-out talking to \(server) while \(self.phase)"
        case .connectionClosed: s = "\(server) closed the connection while \(self.phase)"
        case .tlsFailed: s = "TLS with \(server) failed (\(self.phase))"
        case .stlsNotOffered: s = "\(server) does not offer STARTTLS"
        case .stlsRefused: s = "\(server) refused STARTTLS"
        }
        if let d = self.detail, !d.isEmpty { s += ": " + d }
        return s
    }
}

/// The server answered a command with NO or BAD (or BYE).
public struct IMAPCommandError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The command's name (never its arguments: LOGIN's carry the password).
    public var command: String
    public var status: IMAPStatus

    public init(command: String, status: IMAPStatus) {
        self.command = command
        self.status = status
    }

    public var description: String { "the IMAP server answered \(self.command) with \(self.status)" }
}

/// How a command ended, with what the server said on the way (untagged SEARCH results, CAPABILITY).
public struct IMAPCompletion: Hashable, Sendable {
    public var status: IMAPStatus
    /// The numbers of every `* SEARCH` response to the command.
    public var searchResults: [UInt32] = []
    /// The codes of untagged status responses to the command (SELECT's UIDVALIDITY, UIDNEXT).
    public var untaggedCodes: [IMAPResponseCode] = []
    /// How many `* LIST` responses came (LIST: the mailboxes that matched).
    public var listed = 0

    public var isOK: Bool { self.status.condition == .ok }
}

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
    var iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    let channel: any Channel
    let tlsContext: NIOSSLContext?
    let boundary: NIOLoopBound<STARTTLSBoundaryHandler>
    let timedOut = NIOLockedValueBox(false)
    var phase = "connecting"
    var nextTag = 1
    var trace: (@Sendable (String) -> Void)?

    /// What the server announced last (after STARTTLS and after authentication: what it announced then).
    public private(set) var capabilities = IMAPCapabilities()
    /// The greeting was PREAUTH: the session is authenticated already.
    public private(set) var preauthenticated = false
    /// TLS protects the session (implicit TLS, or STARTTLS done).
    public private(set) var isEncrypted = false
    /// The server said BYE: the connection is closing.
    public private(set) var closing = false
    public var isActive: Bool { self.channel.isActive && !self.closing }

    private init(
        host: String, port: Int, timeouts: Timeouts, channel: any Channel,
        inbound: NIOAsyncChannelInboundStream<ByteBuffer>, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>,
        tlsContext: NIOSSLContext?, boundary: NIOLoopBound<STARTTLSBoundaryHandler>
    ) {
        self.host = host
        self.port = port
        self.timeouts = timeouts
        self.channel = channel
        self.iterator = inbound.makeAsyncIterator()
        self.outbound = outbound
        self.tlsContext = tlsContext
        self.boundary = boundary
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
        let eventLoop = EventLoopTaskExecutor.loopForNewConnection()
        let handshake = security == .implicitTLS ? eventLoop.makePromise(of: Void.self) : nil
        let initialize:
            @Sendable (any Channel) -> EventLoopFuture<
                (NIOAsyncChannel<ByteBuffer, ByteBuffer>, NIOLoopBound<STARTTLSBoundaryHandler>)
            > = { channel in
                channel.eventLoop.makeCompletedFuture {
                    try setup?.register(channel)
                    let sync = channel.pipeline.syncOperations
                    if let handshake, let tlsContext {
                        let sni = TLSContextFactory.serverName(for: host)
                        try sync.addHandler(NIOSSLClientHandler(context: tlsContext, serverHostname: sni))
                        try sync.addHandler(TLSHandshakeWaiter(promise: handshake))
                    }
                    let boundary = STARTTLSBoundaryHandler()
                    try sync.addHandler(boundary)
                    let async = try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    return (async, NIOLoopBound(boundary, eventLoop: channel.eventLoop))
                }
            }
        let asyncChannel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        let boundary: NIOLoopBound<STARTTLSBoundaryHandler>
        do {
            let bootstrap = ClientBootstrap(group: eventLoop).connectTimeout(timeouts.connect)
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            if let address = try? SocketAddress(ipAddress: host, port: port) {
                (asyncChannel, boundary) = try await bootstrap.connect(to: address, channelInitializer: initialize)
            } else {
                (asyncChannel, boundary) = try await bootstrap.connect(
                    host: host, port: port, channelInitializer: initialize)
            }
        } catch {
            handshake?.fail(error)
            let (kind, detail) = TransportError.Kind.ofConnectFailure(error)
            throw IMAPTransportError(kind, host: host, port: port, phase: "connecting", detail: detail)
        }
        return try await asyncChannel.executeThenClose { inbound, outbound in
            let connection = IMAPConnection(
                host: host, port: port, timeouts: timeouts, channel: asyncChannel.channel, inbound: inbound,
                outbound: outbound, tlsContext: tlsContext, boundary: boundary)
            connection.trace = trace
            if let handshake {
                try await connection.awaitHandshake(handshake.futureResult)
                connection.isEncrypted = true
            }
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
            self.channel.close(promise: nil)
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

    // MARK: - Responses

    func makeTag() -> String {
        defer { self.nextTag += 1 }
        let digits = String(self.nextTag)
        return "A" + String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    /// Reads responses up to the completion of `tag`.
    func completion(of tag: String) async throws -> IMAPCompletion {
        let deadline = NIODeadline.now() + self.timeouts.command
        var gathered = IMAPCompletion(status: IMAPStatus(condition: .ok, text: ""))
        while true {
            let response = try await self.nextResponse(deadline: deadline)
            switch response {
            case .tagged(let t, let status) where t == tag:
                self.trace?("< \(t) \(status)")
                self.takeCapabilities(from: status)
                gathered.status = status
                return gathered
            case .continuation:
                throw IMAPProtocolError("a continuation request where none was expected (\(self.phase))")
            default:
                try self.untagged(response, into: &gathered)
            }
        }
    }

    /// Waits for the `+` that lets a synchronizing literal go; returns the command's completion instead when the
    /// server ends the command first (a refusal).
    func awaitContinuation(tag: String) async throws -> IMAPCompletion? {
        let deadline = NIODeadline.now() + self.timeouts.command
        while true {
            let response = try await self.nextResponse(deadline: deadline)
            switch response {
            case .continuation:
                return nil
            case .tagged(let t, let status) where t == tag:
                self.trace?("< \(t) \(status)")
                guard status.condition != .ok else {
                    // Only a refusal may end a command before its literal was sent: an OK would claim a message
                    // (or a password) the server never received.
                    throw IMAPProtocolError("\(self.phase) answered OK before its literal was sent")
                }
                return IMAPCompletion(status: status)
            default:
                var ignored = IMAPCompletion(status: IMAPStatus(condition: .ok, text: ""))
                try self.untagged(response, into: &ignored)
            }
        }
    }

    /// Untagged data on the way to a completion: capabilities kept, SEARCH results gathered, a tagged response for
    /// another command refused (popfetch has one command in flight).
    func untagged(_ response: IMAPResponse, into gathered: inout IMAPCompletion) throws {
        switch response {
        case .capability(let names):
            self.trace?("< * CAPABILITY \(names.joined(separator: " "))")
            self.capabilities = IMAPCapabilities(names)
        case .search(let numbers):
            self.trace?("< * SEARCH (\(numbers.count) results)")
            gathered.searchResults += numbers.prefix(
                max(0, IMAPDefaults.maximumSearchResults - gathered.searchResults.count))
        case .untaggedStatus(let status):
            self.trace?("< * \(status)")
            self.takeCapabilities(from: status)
            if let code = status.code, gathered.untaggedCodes.count < 100 { gathered.untaggedCodes.append(code) }
        case .exists(let n):
            self.trace?("< * \(n) EXISTS")
        case .untaggedOther(let keyword):
            self.trace?("< * \(keyword) ...")
            if keyword == "LIST" { gathered.listed += 1 }
        case .tagged(let t, let status):
            throw IMAPProtocolError("a completion for tag \(t), which was never sent (\(status))")
        case .continuation:
            throw IMAPProtocolError("a continuation request where none was expected (\(self.phase))")
        }
    }

    func takeCapabilities(from status: IMAPStatus) {
        if case .capability(let names) = status.code { self.capabilities = IMAPCapabilities(names) }
    }

    /// The next response, within `deadline`. BYE marks the session closing and, unless `allowBye`, throws.
    func nextResponse(deadline: NIODeadline, allowBye: Bool = false) async throws -> IMAPResponse {
        while true {
            if let response = try self.parser.parse(&self.buffer) {
                if self.buffer.readableBytes == 0 { self.buffer.clear() }
                if case .untaggedStatus(let status) = response, status.condition == .bye {
                    self.closing = true
                    self.trace?("< * \(status)")
                    if !allowBye { throw IMAPCommandError(command: self.phase, status: status) }
                }
                return response
            }
            var chunk = try await self.readChunk(deadline: deadline)
            if self.buffer.readableBytes == 0 {
                self.buffer = chunk
            } else {
                self.buffer.discardReadBytes()
                self.buffer.writeBuffer(&chunk)
            }
        }
    }

    // MARK: - Session set-up

    func greeting() async throws {
        self.phase = "waiting for the greeting"
        let deadline = NIODeadline.now() + self.timeouts.connect
        let response = try await self.nextResponse(deadline: deadline)
        guard case .untaggedStatus(let status) = response, status.condition == .ok || status.condition == .preauth
        else {
            throw IMAPProtocolError("the greeting is not \"* OK\" or \"* PREAUTH\"")
        }
        self.trace?("< * \(status)")
        self.takeCapabilities(from: status)
        self.preauthenticated = status.condition == .preauth
    }

    func startTLS() async throws {
        guard !self.preauthenticated else {
            // RFC 3501 §6.2.1: STARTTLS only before authentication; a PREAUTH greeting on a connection that was to
            // be upgraded is a session nothing protects.
            throw IMAPTransportError(
                .stlsNotOffered, host: self.host, port: self.port, phase: "STARTTLS",
                detail: "the server greeted with PREAUTH, so the session cannot be protected by TLS")
        }
        if self.capabilities.names.isEmpty { try await self.refreshCapabilities() }
        guard self.capabilities.startTLS else {
            throw IMAPTransportError(.stlsNotOffered, host: self.host, port: self.port, phase: "STARTTLS")
        }
        let done = try await self.execute(.startTLS)
        guard done.isOK else {
            throw IMAPTransportError(
                .stlsRefused, host: self.host, port: self.port, phase: "STARTTLS", detail: "\(done.status)")
        }
        try await self.upgradeToTLS()
        // RFC 3501 §6.2.1: what was announced before TLS is forgotten.
        self.capabilities = IMAPCapabilities()
        try await self.refreshCapabilities()
    }

    /// After the OK to STARTTLS: TLS goes in front; nothing received in clear text after that OK counts.
    func upgradeToTLS() async throws {
        guard let tlsContext = self.tlsContext else { preconditionFailure("STARTTLS without a TLS context") }
        self.buffer.clear()
        self.parser = IMAPResponseParser()
        self.phase = "TLS handshake"
        let channel = self.channel
        let boundary = self.boundary
        let host = self.host
        let handshake = channel.eventLoop.makePromise(of: Void.self)
        do {
            try await channel.eventLoop.submit {
                boundary.value.arm()
                let sync = channel.pipeline.syncOperations
                let sni = TLSContextFactory.serverName(for: host)
                let ssl = try NIOSSLClientHandler(context: tlsContext, serverHostname: sni)
                try sync.addHandler(ssl, position: .first)
                try sync.addHandler(TLSHandshakeWaiter(promise: handshake), position: .after(ssl))
            }.get()
        } catch {
            handshake.fail(error)
            throw self.mapIOError(error)
        }
        try await self.awaitHandshake(handshake.futureResult)
        self.isEncrypted = true
        let deadline = NIODeadline.now() + self.timeouts.connect
        while try await self.readChunk(deadline: deadline).readableBytes > 0 {}
    }

    func awaitHandshake(_ future: EventLoopFuture<Void>) async throws {
        do {
            try await TLSHandshake.complete(
                future, channel: self.channel, timeout: self.timeouts.connect, host: self.host, pin: nil)
        } catch TLSHandshakeFailure.timeout {
            throw IMAPTransportError(.timeout, host: self.host, port: self.port, phase: "TLS handshake")
        } catch TLSHandshakeFailure.rejected(let detail, _) {
            let hint =
                TLSHandshake.pointsAtPort(detail)
                ? "; use imap:// with imap_tls = \"starttls\", or imaps:// on the port for implicit TLS (993)" : ""
            throw IMAPTransportError(
                .tlsFailed, host: self.host, port: self.port, phase: "TLS handshake", detail: detail + hint)
        }
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
        let timer = self.armTimer(deadline)
        defer { timer.cancel() }
        do {
            guard let chunk = try await self.iterator.next() else { throw self.closedError() }
            return chunk
        } catch {
            throw self.mapIOError(error)
        }
    }

    func write(_ buffer: ByteBuffer) async throws {
        let timer = self.armTimer(.now() + self.timeouts.command)
        defer { timer.cancel() }
        do {
            try await self.outbound.write(buffer)
        } catch {
            throw self.mapIOError(error)
        }
    }

    private func armTimer(_ deadline: NIODeadline) -> Scheduled<Void> {
        let channel = self.channel
        let flag = self.timedOut
        return channel.eventLoop.scheduleTask(deadline: deadline) {
            flag.withLockedValue { $0 = true }
            channel.close(promise: nil)
        }
    }

    private func closedError() -> IMAPTransportError {
        if self.timedOut.withLockedValue({ $0 }) {
            return IMAPTransportError(.timeout, host: self.host, port: self.port, phase: self.phase)
        }
        return IMAPTransportError(.connectionClosed, host: self.host, port: self.port, phase: self.phase)
    }

    private func mapIOError(_ error: any Error) -> any Error {
        if error is IMAPTransportError || error is IMAPCommandError || error is IMAPProtocolError
            || error is IMAPEncodingError || error is CancellationError
        {
            return error
        }
        if self.timedOut.withLockedValue({ $0 }) { return self.closedError() }
        if error is NIOSSLError {
            return IMAPTransportError(
                .tlsFailed, host: self.host, port: self.port, phase: self.phase, detail: TLSHandshake.describe(error))
        }
        return IMAPTransportError(
            .connectionClosed, host: self.host, port: self.port, phase: self.phase, detail: "\(error)")
    }
}

/// Writes an APPEND's literal: exactly the size announced, no more.
public final class IMAPLiteralWriter {
    let connection: IMAPConnection
    let size: Int
    public private(set) var written = 0

    init(connection: IMAPConnection, size: Int) {
        self.connection = connection
        self.size = size
    }

    /// One block of the message. More than announced throws, and the connection is closed.
    public func write(_ block: ByteBuffer) async throws {
        guard self.written + block.readableBytes <= self.size else {
            self.connection.channel.close(promise: nil)
            throw IMAPTransportError(
                .connectionClosed, host: self.connection.host, port: self.connection.port,
                phase: self.connection.phase, detail: "the message is longer than the \(self.size) bytes announced")
        }
        self.written += block.readableBytes
        try await self.connection.write(block)
    }
}
