import Crypto
import NIOConcurrencyHelpers
public import NIOCore
import NIOPosix
public import NIOSSL
import NIOTLS
public import POP3Core

/// Where and how to connect.
public struct POP3Endpoint: Hashable, Sendable {
    public var host: String
    public var port: Int
    public var tls: TLSMode
    /// Applies to connecting, the TLS handshake, the greeting and every reply (and to each read inside a message).
    public var timeout: TimeAmount
    /// A pinned certificate (SHA-256 of its DER): then it alone decides, instead of the authorities.
    public var pinnedFingerprint: [UInt8]?
    /// The whole session must end within this (nil: no limit). A server that keeps a poll busy longer loses it.
    public var sessionTimeout: TimeAmount?
    /// Replies must progress at least this fast on average (bytes per second) after the first `timeout`: a server
    /// that trickles a byte every second never trips a per-read time-out, but trips this.
    public var minimumRate: Int = 1024
    /// Only looking at the server's certificate: no checks, and nothing is sent after TLS.
    var inspectOnly = false

    public init(host: String, port: Int, tls: TLSMode, timeout: TimeAmount, pinnedFingerprint: [UInt8]? = nil) {
        self.host = host
        self.port = port
        self.tls = tls
        self.timeout = timeout
        self.pinnedFingerprint = pinnedFingerprint
    }
}

/// A connected POP3 session: a thin SwiftNIO transport that feeds bytes to ``POP3ClientStateMachine`` and carries
/// out what it says. Use it only inside ``withConnection(to:tlsContext:body:)``; it is not shared between tasks.
///
/// TCP_NODELAY is set on the socket (Nagle plus delayed ACK costs ~45 ms a round trip on loopback).
public final class POP3Connection {
    public let endpoint: POP3Endpoint
    public internal(set) var greeting: StatusLine?
    public internal(set) var apopTimestamp: String?
    /// True once TLS protects the connection (implicit TLS or after STLS).
    public internal(set) var isEncrypted: Bool

    var machine = POP3ClientStateMachine()
    var buffer = ByteBuffer()
    var iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    let channel: any Channel
    let tlsContext: NIOSSLContext?
    let stlsGuard: NIOLoopBound<STLSGuardHandler>
    let timedOut = NIOLockedValueBox(false)
    var phase = "connecting"
    /// Receives each line of the dialogue for a protocol trace (`--log-level trace`), every secret masked: what the
    /// client sends as ``Command``'s description gives it (`PASS ********`), SASL answers as `********`; what the
    /// server sends as status lines, listings and messages by their size. nil: no trace.
    public var trace: (@Sendable (String) -> Void)?
    /// Bytes of the message being read, for its trace line.
    var tracedMessageBytes = 0
    /// When the reply being read started (the last command was sent), and how many bytes of it arrived since:
    /// the reply's deadline is `replyStarted + timeout + replyBytes / minimumRate`.
    var replyStarted = NIODeadline.now()
    var replyBytes = 0
    let sessionDeadline: NIODeadline?

    init(
        endpoint: POP3Endpoint,
        channel: any Channel,
        inbound: NIOAsyncChannelInboundStream<ByteBuffer>,
        outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>,
        tlsContext: NIOSSLContext?,
        stlsGuard: NIOLoopBound<STLSGuardHandler>
    ) {
        self.endpoint = endpoint
        self.channel = channel
        self.iterator = inbound.makeAsyncIterator()
        self.outbound = outbound
        self.tlsContext = tlsContext
        self.stlsGuard = stlsGuard
        self.isEncrypted = endpoint.tls == .implicit
        self.sessionDeadline = endpoint.sessionTimeout.map { NIODeadline.now() + $0 }
    }

    /// A command went out: its reply's deadline starts now.
    func startReply() {
        self.replyStarted = .now()
        self.replyBytes = 0
    }

    public var state: POP3ClientStateMachine.SessionState { self.machine.state }

    /// Connects, waits for the TLS handshake (implicit TLS) and the greeting, runs `body`, and closes.
    public static func withConnection<Result>(
        to endpoint: POP3Endpoint,
        tlsContext: NIOSSLContext?,
        body: (POP3Connection) async throws -> Result
    ) async throws -> Result {
        let handshake: EventLoopPromise<Void>?
        let asyncChannel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        let guardBox: NIOLoopBound<STLSGuardHandler>
        let eventLoop = EventLoopTaskExecutor.loopForNewConnection()
        handshake = endpoint.tls == .implicit ? eventLoop.makePromise(of: Void.self) : nil
        if endpoint.tls != .none && tlsContext == nil {
            preconditionFailure("TLS requested without a TLS context")
        }
        // A cancelled task (the daemon's shutdown grace ran out) closes the channels being connected.
        let attempts = ConnectAttempts()
        do {
            let bootstrap = ClientBootstrap(group: eventLoop)
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .connectTimeout(endpoint.timeout)
            let initialize:
                @Sendable (any Channel) -> EventLoopFuture<
                    (NIOAsyncChannel<ByteBuffer, ByteBuffer>, NIOLoopBound<STLSGuardHandler>)
                > = { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try attempts.register(channel)
                        let sync = channel.pipeline.syncOperations
                        if let handshake, let tlsContext {
                            let sni = TLSContextFactory.serverName(for: endpoint.host)
                            try sync.addHandler(NIOSSLClientHandler(context: tlsContext, serverHostname: sni))
                            try sync.addHandler(TLSHandshakeWaiter(promise: handshake))
                        }
                        let guardHandler = STLSGuardHandler()
                        try sync.addHandler(guardHandler)
                        let async = try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                        return (async, NIOLoopBound(guardHandler, eventLoop: channel.eventLoop))
                    }
                }
            let (ch, g): (NIOAsyncChannel<ByteBuffer, ByteBuffer>, NIOLoopBound<STLSGuardHandler>)
            (ch, g) = try await attempts.whileConnecting {
                if let address = try? SocketAddress(ipAddress: endpoint.host, port: endpoint.port) {
                    // An address literal needs no resolver (a thread-pool hop and getaddrinfo per connection).
                    try await bootstrap.connect(to: address, channelInitializer: initialize)
                } else {
                    try await bootstrap.connect(
                        host: endpoint.host, port: endpoint.port, channelInitializer: initialize)
                }
            }
            asyncChannel = ch
            guardBox = g
        } catch {
            handshake?.fail(error)
            if Task.isCancelled { throw CancellationError() }
            throw Self.mapConnectError(error, endpoint: endpoint)
        }
        return try await asyncChannel.executeThenClose { inbound, outbound in
            if let handshake {
                try await Self.awaitHandshake(handshake.futureResult, channel: asyncChannel.channel, endpoint: endpoint)
            }
            let connection = POP3Connection(
                endpoint: endpoint,
                channel: asyncChannel.channel,
                inbound: inbound,
                outbound: outbound,
                tlsContext: tlsContext,
                stlsGuard: guardBox
            )
            try await connection.readGreeting()
            return try await body(connection)
        }
    }

    static func awaitHandshake(_ future: EventLoopFuture<Void>, channel: any Channel, endpoint: POP3Endpoint)
        async throws
    {
        do {
            // Inspect-only connections accept any certificate and check nothing.
            try await TLSHandshake.complete(
                future, channel: channel, timeout: endpoint.timeout, host: endpoint.inspectOnly ? nil : endpoint.host,
                pin: endpoint.inspectOnly ? nil : endpoint.pinnedFingerprint)
        } catch TLSHandshakeFailure.timeout {
            throw TransportError(.timeout, host: endpoint.host, port: endpoint.port, phase: "TLS handshake")
        } catch TLSHandshakeFailure.rejected(let detail, let unverified) {
            var e = TransportError(
                .tlsFailed, host: endpoint.host, port: endpoint.port, phase: "TLS handshake", detail: detail)
            e.certificateUnverified = unverified
            if TLSHandshake.pointsAtPort(detail) {
                // After STLS the port is right (the server answered STLS +OK): it then failed to start TLS.
                e.hint =
                    endpoint.tls != .implicit
                    ? "the server accepted STLS, then did not start TLS (a broken server, or something in between "
                        + "that strips TLS)"
                    : endpoint.port == 995
                        ? "is it a POP3 server?"
                        : "use tls = \"starttls\" for this port, or port 995 for implicit TLS"
            }
            throw e
        }
    }

    static func mapConnectError(_ error: any Error, endpoint: POP3Endpoint) -> TransportError {
        if let t = error as? TransportError { return t }
        let (kind, detail) = TransportError.Kind.ofConnectFailure(error)
        return TransportError(kind, host: endpoint.host, port: endpoint.port, phase: "connecting", detail: detail)
    }

    // MARK: - Low level: send and receive

    /// Queues a command in the state machine and writes it (one write; pipelined commands may follow).
    public func send(_ command: Command) async throws {
        let bytes = try self.machine.send(command)
        self.trace?("> \(command)")
        self.phase = "waiting for the reply to \(command.keyword)"
        try await self.write(bytes)
        self.startReply()
    }

    /// Answers a SASL challenge of the AUTH in flight (base64, empty, or `*` to cancel). Never logged.
    public func sendSASL(_ line: String) async throws {
        let bytes = try self.machine.send(.saslResponse(line))
        self.trace?(line == "*" ? "> *" : "> ********")
        try await self.write(bytes)
        self.startReply()
    }

    /// Writes several commands in one write (RFC 2449 PIPELINING). The caller checks the server supports it.
    public func sendPipelined(_ commands: [Command]) async throws {
        var out = ByteBuffer()
        for c in commands {
            out.writeBytes(try self.machine.send(c))
            self.trace?("> \(c)")
        }
        if let last = commands.last { self.phase = "waiting for the reply to \(last.keyword)" }
        try await self.write(out)
        self.startReply()
    }

    func write(_ bytes: [UInt8]) async throws {
        try await self.write(ByteBuffer(bytes: bytes))
    }

    /// Writes within the time-out (and the session's deadline): a server that stops reading cannot hang a poll.
    func write(_ buffer: ByteBuffer) async throws {
        let timer = self.armTimer(self.deadline(progressive: false))
        defer { timer.cancel() }
        do {
            try await self.outbound.write(buffer)
        } catch {
            throw self.mapIOError(error)
        }
    }

    /// The earliest of: the time-out from now, the reply's progress deadline, the session's deadline.
    func deadline(progressive: Bool) -> NIODeadline {
        var d = NIODeadline.now() + self.endpoint.timeout
        if progressive {
            let allowance = TimeAmount.nanoseconds(
                Int64(min(Double(self.replyBytes) / Double(max(1, self.endpoint.minimumRate)), 1e9) * 1e9))
            d = min(d, self.replyStarted + self.endpoint.timeout + allowance)
        }
        if let s = self.sessionDeadline { d = min(d, s) }
        return d
    }

    func armTimer(_ deadline: NIODeadline) -> Scheduled<Void> {
        let channel = self.channel
        let flag = self.timedOut
        return channel.eventLoop.scheduleTask(deadline: deadline) {
            flag.withLockedValue { $0 = true }
            channel.close(promise: nil)
        }
    }

    /// The next protocol event, reading from the socket as needed, each read bounded by the time-out.
    public func nextEvent() async throws -> POP3ClientStateMachine.Event {
        while true {
            if let event = try self.machine.receive(&self.buffer) {
                if self.buffer.readableBytes == 0 {
                    self.buffer.clear()
                }
                if let trace = self.trace { self.traceEvent(event, trace) }
                return event
            }
            let more = try await self.readChunk()
            if self.buffer.readableBytes == 0 {
                self.buffer = more
            } else {
                self.buffer.discardReadBytes()
                var more = more
                self.buffer.writeBuffer(&more)
            }
        }
    }

    /// The trace line of what the server sent.
    private func traceEvent(_ event: POP3ClientStateMachine.Event, _ trace: @Sendable (String) -> Void) {
        switch event {
        case .greeting(let status, _), .response(_, let status): trace("< \(status)")
        case .continuation(let challenge):
            // A SASL challenge (SCRAM's salt, iteration count and server signature) would let a saved trace serve
            // an offline guess at the password: only its size is shown.
            trace("< + ******** (\(challenge.utf8.count) bytes of SASL challenge)")
        case .capabilities(let caps, let status):
            trace("< \(status)")
            for c in caps.all { trace("< " + ([c.name] + c.parameters).joined(separator: " ")) }
            trace("< .")
        case .uidlListing(let entries): trace("< +OK, then \(entries.count) UIDL lines and .")
        case .scanListing(let entries): trace("< +OK, then \(entries.count) LIST lines and .")
        case .messageBegin(_, let status):
            self.tracedMessageBytes = 0
            trace("< \(status)")
        case .messageBytes(let bytes): self.tracedMessageBytes += bytes.readableBytes
        case .messageEnd: trace("< (the message: \(self.tracedMessageBytes) bytes) .")
        }
    }

    func readChunk() async throws -> ByteBuffer {
        let timer = self.armTimer(self.deadline(progressive: true))
        defer { timer.cancel() }
        do {
            guard let chunk = try await self.iterator.next() else {
                throw self.closedError()
            }
            self.replyBytes += chunk.readableBytes
            return chunk
        } catch {
            throw self.mapIOError(error)
        }
    }

    func closedError() -> any Error {
        // A cancelled task's read ends as if the connection closed: it was abandoned, not closed by the server.
        if Task.isCancelled { return CancellationError() }
        if self.timedOut.withLockedValue({ $0 }) { return self.timeoutError() }
        return TransportError(.connectionClosed, host: self.endpoint.host, port: self.endpoint.port, phase: self.phase)
    }

    /// A time-out, saying which deadline passed.
    func timeoutError() -> TransportError {
        var detail: String?
        if let s = self.sessionDeadline, s <= .now() {
            detail = "the session ran past its deadline (poll_timeout)"
        } else if self.replyBytes == 0 {
            detail = "no answer within \(Self.seconds(self.endpoint.timeout))"
        } else if self.replyStarted + self.endpoint.timeout <= .now() {
            detail = "the reply came too slowly (under \(self.endpoint.minimumRate) bytes a second)"
        }
        var e = TransportError(
            .timeout, host: self.endpoint.host, port: self.endpoint.port, phase: self.phase, detail: detail)
        if self.greeting == nil && self.endpoint.tls != .implicit && self.endpoint.port == 995 {
            // A POP3S server waits for the client's TLS handshake and never greets in clear text.
            e.hint = "port 995 is for implicit TLS: use tls = \"implicit\""
        }
        return e
    }

    static func seconds(_ t: TimeAmount) -> String {
        let s = Double(t.nanoseconds) / 1e9
        return s == s.rounded() ? "\(Int(s)) s" : "\(s) s"
    }

    func mapIOError(_ error: any Error) -> any Error {
        if Task.isCancelled { return CancellationError() }
        if error is TransportError || error is POP3ProtocolError || error is CommandEncodingError
            || error is POP3ClientStateMachine.UsageError
        {
            return error
        }
        if self.timedOut.withLockedValue({ $0 }) { return self.timeoutError() }
        if error is NIOSSLError {
            return TransportError(
                .tlsFailed, host: self.endpoint.host, port: self.endpoint.port, phase: self.phase,
                detail: TLSHandshake.describe(error))
        }
        return TransportError(
            .connectionClosed, host: self.endpoint.host, port: self.endpoint.port, phase: self.phase,
            detail: error is IOError ? TransportError.Kind.reason(error) : "\(error)")
    }

}

/// The server answered a command with -ERR (or a greeting with -ERR).
public struct POP3CommandError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The command, with secrets redacted.
    public var command: String
    public var status: StatusLine
    public init(command: String, status: StatusLine) {
        self.command = command
        self.status = status
    }
    public var description: String { "server answered \(self.command) with \(self.status)" }
}
