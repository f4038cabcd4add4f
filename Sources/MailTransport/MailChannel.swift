import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS

/// The SwiftNIO edge the IMAP and SMTP connections sit on: a connected channel (TCP_NODELAY on TCP sockets), implicit
/// TLS or a STARTTLS upgrade behind a ``STARTTLSBoundaryHandler``, chunk reads and writes each bounded by a deadline,
/// and every failure from below turned into the protocol's transport error (``Profile``). It knows nothing of the
/// protocol above it. Use it only inside
/// ``withChannel(to:implicitTLS:tlsContext:connectTimeout:setup:countingReceived:profile:body:)``; it is not shared
/// between tasks.
final class MailChannel {
    /// Where to connect.
    enum Address: Hashable, Sendable {
        case tcp(host: String, port: Int)
        case unix(path: String)

        /// The host name or address, for TLS (SNI and the certificate check); nil for a unix socket.
        var host: String? {
            if case .tcp(let host, _) = self { return host }
            return nil
        }
    }

    /// What differs between the protocols on this edge.
    struct Profile: Sendable {
        /// The protocol's transport error: a failure of `kind` while `phase`, with `detail`.
        var transportError: @Sendable (_ kind: TransportError.Kind, _ phase: String, _ detail: String?) -> any Error
        /// Errors that pass through unchanged: the protocol's own, and cancellation.
        var passesThrough: @Sendable (any Error) -> Bool
        /// Added to the detail of a TLS handshake failure that points at the port (a clear-text port, or not TLS).
        var tlsPortHint: String
    }

    let channel: any Channel
    let profile: Profile
    /// The host name the certificate is checked against (nil: none, a unix socket).
    let tlsHost: String?
    let tlsContext: NIOSSLContext?
    /// Each TLS handshake, and the wait for the STARTTLS boundary after it.
    let handshakeTimeout: TimeAmount
    /// What was going on (`connecting`, `TLS handshake`, the protocol's phases), for errors.
    var phase = "connecting"
    private var iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    private let boundary: NIOLoopBound<STARTTLSBoundaryHandler>
    private let timedOut = NIOLockedValueBox(false)
    /// Bytes the channel has received (counted as they arrive, by ``InboundByteCounter``; nil: not counted) and bytes
    /// read of them.
    private let received: NIOLockedValueBox<Int>?
    private var bytesRead = 0

    private init(
        channel: any Channel, inbound: NIOAsyncChannelInboundStream<ByteBuffer>,
        outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>, boundary: NIOLoopBound<STARTTLSBoundaryHandler>,
        received: NIOLockedValueBox<Int>?, profile: Profile, tlsHost: String?, tlsContext: NIOSSLContext?,
        handshakeTimeout: TimeAmount
    ) {
        self.channel = channel
        self.iterator = inbound.makeAsyncIterator()
        self.outbound = outbound
        self.boundary = boundary
        self.received = received
        self.profile = profile
        self.tlsHost = tlsHost
        self.tlsContext = tlsContext
        self.handshakeTimeout = handshakeTimeout
    }

    /// Connects (with implicit TLS: and completes the handshake), runs `body`, and closes. `tlsContext` is required
    /// for implicit TLS and STARTTLS. `setup`, when given, can abandon the connection until its owner marks the
    /// session ready. `countingReceived` counts the bytes received as they arrive (``hasUnreadBytes``).
    static func withChannel<Result>(
        to address: Address, implicitTLS: Bool, tlsContext: NIOSSLContext?, connectTimeout: TimeAmount,
        setup: SessionSetup?, countingReceived: Bool = false, profile: Profile,
        body: (MailChannel) async throws -> Result
    ) async throws -> Result {
        let eventLoop = EventLoopTaskExecutor.loopForNewConnection()
        let handshake = implicitTLS ? eventLoop.makePromise(of: Void.self) : nil
        let host = address.host
        let received = countingReceived ? NIOLockedValueBox(0) : nil
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
                    if let received { try sync.addHandler(InboundByteCounter(received)) }
                    let async = try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    return (async, NIOLoopBound(boundary, eventLoop: channel.eventLoop))
                }
            }
        let asyncChannel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        let boundary: NIOLoopBound<STARTTLSBoundaryHandler>
        do {
            let bootstrap = ClientBootstrap(group: eventLoop).connectTimeout(connectTimeout)
            switch address {
            case .tcp(let host, let port):
                let tcp = bootstrap.channelOption(.tcpOption(.tcp_nodelay), value: 1)
                if let address = try? SocketAddress(ipAddress: host, port: port) {
                    // An address literal needs no resolver.
                    (asyncChannel, boundary) = try await tcp.connect(to: address, channelInitializer: initialize)
                } else {
                    (asyncChannel, boundary) = try await tcp.connect(
                        host: host, port: port, channelInitializer: initialize)
                }
            case .unix(let path):
                (asyncChannel, boundary) = try await bootstrap.connect(
                    unixDomainSocketPath: path, channelInitializer: initialize)
            }
        } catch {
            handshake?.fail(error)
            let (kind, detail) = TransportError.Kind.ofConnectFailure(error)
            throw profile.transportError(kind, "connecting", detail)
        }
        return try await asyncChannel.executeThenClose { inbound, outbound in
            let io = MailChannel(
                channel: asyncChannel.channel, inbound: inbound, outbound: outbound, boundary: boundary,
                received: received, profile: profile, tlsHost: host, tlsContext: tlsContext,
                handshakeTimeout: connectTimeout)
            if let handshake { try await io.awaitHandshake(handshake.futureResult) }
            return try await body(io)
        }
    }

    var isActive: Bool { self.channel.isActive }

    func close() { self.channel.close(promise: nil) }

    /// The protocol's transport error for a failure of `kind` now, in the current phase.
    func error(_ kind: TransportError.Kind, detail: String? = nil) -> any Error {
        self.profile.transportError(kind, self.phase, detail)
    }

    // MARK: - TLS

    /// After the server's yes to STARTTLS (RFC 3207 §4.2, RFC 3501 §6.2.1): TLS goes in front, and nothing received
    /// in clear text after that yes counts. The caller drops its own buffer and parser state; here the TLS handler
    /// goes in front, and every chunk the channel had already handed up is read and dropped, up to the boundary
    /// marker (``STARTTLSBoundaryHandler``).
    func upgradeToTLS(boundaryTimeoutDetail: String? = nil) async throws {
        guard let tlsContext = self.tlsContext else { preconditionFailure("STARTTLS without a TLS context") }
        self.phase = "TLS handshake"
        let channel = self.channel
        let boundary = self.boundary
        let host = self.tlsHost
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
            throw self.mapIOError(error, timeoutDetail: nil)
        }
        try await self.awaitHandshake(handshake.futureResult)
        let deadline = NIODeadline.now() + self.handshakeTimeout
        while try await self.readChunk(deadline: deadline, timeoutDetail: boundaryTimeoutDetail).readableBytes > 0 {}
    }

    /// Waits for a TLS handshake, then checks the certificate against the host name (as for POP3).
    func awaitHandshake(_ future: EventLoopFuture<Void>) async throws {
        do {
            try await TLSHandshake.complete(
                future, channel: self.channel, timeout: self.handshakeTimeout, host: self.tlsHost, pin: nil)
        } catch TLSHandshakeFailure.timeout {
            throw self.profile.transportError(.timeout, "TLS handshake", nil)
        } catch TLSHandshakeFailure.rejected(let detail, _) {
            let hint = TLSHandshake.pointsAtPort(detail) ? self.profile.tlsPortHint : ""
            throw self.profile.transportError(.tlsFailed, "TLS handshake", detail + hint)
        }
    }

    // MARK: - Bytes

    /// One chunk from the socket, by `deadline`; a time-out says `timeoutDetail`.
    func readChunk(deadline: NIODeadline, timeoutDetail: String? = nil) async throws -> ByteBuffer {
        let timer = self.armTimer(deadline)
        defer { timer.cancel() }
        do {
            guard let chunk = try await self.iterator.next() else {
                throw self.closedError(timeoutDetail: timeoutDetail)
            }
            self.bytesRead += chunk.readableBytes
            return chunk
        } catch {
            throw self.mapIOError(error, timeoutDetail: timeoutDetail)
        }
    }

    /// One write, within `limit`; a time-out says `timeoutDetail`.
    func write(_ buffer: ByteBuffer, within limit: TimeAmount, timeoutDetail: String? = nil) async throws {
        let timer = self.armTimer(.now() + limit)
        defer { timer.cancel() }
        do {
            try await self.outbound.write(buffer)
        } catch {
            throw self.mapIOError(error, timeoutDetail: timeoutDetail)
        }
    }

    /// The channel has received bytes not read yet (only when counting them): the server has said something.
    var hasUnreadBytes: Bool { (self.received?.withLockedValue { $0 } ?? 0) > self.bytesRead }

    /// At `deadline` the channel is closed, which ends the read or write in progress; the flag says why.
    private func armTimer(_ deadline: NIODeadline) -> Scheduled<Void> {
        let channel = self.channel
        let flag = self.timedOut
        return channel.eventLoop.scheduleTask(deadline: deadline) {
            flag.withLockedValue { $0 = true }
            channel.close(promise: nil)
        }
    }

    private func closedError(timeoutDetail: String?) -> any Error {
        if self.timedOut.withLockedValue({ $0 }) { return self.error(.timeout, detail: timeoutDetail) }
        return self.error(.connectionClosed)
    }

    private func mapIOError(_ error: any Error, timeoutDetail: String?) -> any Error {
        if self.profile.passesThrough(error) { return error }
        if self.timedOut.withLockedValue({ $0 }) { return self.closedError(timeoutDetail: timeoutDetail) }
        if error is NIOSSLError { return self.error(.tlsFailed, detail: TLSHandshake.describe(error)) }
        return self.error(.connectionClosed, detail: "\(error)")
    }
}

/// Counts the bytes the channel receives (after TLS), as they arrive on the event loop: the connection compares the
/// count with what it has read to learn, without reading, whether the server has said something.
final class InboundByteCounter: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let count: NIOLockedValueBox<Int>

    init(_ count: NIOLockedValueBox<Int>) { self.count = count }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = self.unwrapInboundIn(data).readableBytes
        self.count.withLockedValue { $0 += bytes }
        context.fireChannelRead(data)
    }
}
