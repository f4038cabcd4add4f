import NIOConcurrencyHelpers
public import NIOCore
import NIOPosix
public import NIOSSL
import NIOTLS
import SystemSupport
public import SMTPCore

/// Collects SMTP replies on the event loop and hands each to the oldest waiter.
final class SMTPReplyHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private var parser = SMTPReplyParser()
    private var buffer = ByteBuffer()
    private var waiters = CircularBuffer<EventLoopPromise<SMTPReply>>()
    private var ready = CircularBuffer<SMTPReply>()
    private var failure: (any Error)?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = self.unwrapInboundIn(data)
        self.buffer.writeBuffer(&incoming)
        do {
            while let reply = try self.parser.parse(&self.buffer) {
                if let w = self.waiters.popFirst() {
                    w.succeed(reply)
                } else {
                    self.ready.append(reply)
                }
            }
            self.buffer.discardReadBytes()
        } catch {
            self.fail(error)
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.fail(ChannelError.eof)
        context.fireChannelInactive()
    }

    private func fail(_ error: any Error) {
        if self.failure == nil { self.failure = error }
        while let w = self.waiters.popFirst() { w.fail(error) }
    }

    /// Forgets anything received so far (after STARTTLS: clear text after the 220 must not count).
    func discardBuffered() {
        self.buffer.clear()
        self.parser = SMTPReplyParser()
        self.ready.removeAll()
    }

    /// Registers a waiter for the next reply.
    func expect(_ promise: EventLoopPromise<SMTPReply>) {
        if let r = self.ready.popFirst() {
            promise.succeed(r)
        } else if let f = self.failure {
            promise.fail(f)
        } else {
            self.waiters.append(promise)
        }
    }
}

/// A failure talking to the MTA.
public struct SMTPTransportError: Error, Hashable, Sendable, CustomStringConvertible {
    public var endpoint: String
    public var phase: String
    public var detail: String
    public var description: String { "MTA \(self.endpoint): \(self.detail) while \(self.phase)" }
    public init(endpoint: String, phase: String, detail: String) {
        self.endpoint = endpoint
        self.phase = phase
        self.detail = detail
    }
}

/// An SMTP or LMTP client connection (RFC 5321, RFC 2033) on SwiftNIO with TCP_NODELAY. Replies are parsed by
/// ``SMTPReplyParser``; commands may be pipelined (RFC 2920). The connection outlives a single message, so one
/// connection serves a whole poll (RSET between messages).
public final class SMTPConnection: Sendable {
    public let endpoint: SMTPEndpoint
    private let channel: any Channel
    private let handler: NIOLoopBound<SMTPReplyHandler>

    /// RFC 5321 §4.5.3.2 minimum time-outs.
    public enum Timeouts {
        public static let greeting: TimeAmount = .minutes(5)
        public static let command: TimeAmount = .minutes(5)
        public static let dataInitiation: TimeAmount = .minutes(2)
        public static let dataBlock: TimeAmount = .minutes(3)
        /// After the final dot: 10 minutes, so that a slow MTA does not cause a re-delivery loop.
        public static let dataTermination: TimeAmount = .minutes(10)
    }

    private init(endpoint: SMTPEndpoint, channel: any Channel, handler: NIOLoopBound<SMTPReplyHandler>) {
        self.endpoint = endpoint
        self.channel = channel
        self.handler = handler
    }

    /// Connects; with `implicitTLS` the TLS handshake (verified, host name checked) completes first.
    public static func connect(
        to endpoint: SMTPEndpoint, connectTimeout: TimeAmount, implicitTLS: NIOSSLContext? = nil
    ) async throws -> SMTPConnection {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let handshake = implicitTLS.map { _ in loop.makePromise(of: Void.self) }
        let host: String? = {
            if case .tcp(let h, _) = endpoint { return h }
            return nil
        }()
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(connectTimeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let implicitTLS, let handshake {
                        let sni = TLSContextFactory.serverName(for: host)
                        try sync.addHandler(NIOSSLClientHandler(context: implicitTLS, serverHostname: sni))
                        try sync.addHandler(TLSHandshakeWaiter(promise: handshake))
                    }
                    try sync.addHandler(SMTPReplyHandler())
                }
            }
        do {
            let channel: any Channel
            switch endpoint {
            case .tcp(let host, let port):
                channel = try await Self.connected(
                    bootstrap.channelOption(.tcpOption(.tcp_nodelay), value: 1).connect(host: host, port: port))
            case .unix(let path):
                channel = try await Self.connected(bootstrap.connect(unixDomainSocketPath: path))
            }
            let handler = try await channel.eventLoop.submit {
                NIOLoopBound(try channel.pipeline.syncOperations.handler(type: SMTPReplyHandler.self), eventLoop: channel.eventLoop)
            }.get()
            let connection = SMTPConnection(endpoint: endpoint, channel: channel, handler: handler)
            if let handshake {
                try await connection.finishHandshake(handshake.futureResult, timeout: connectTimeout)
            }
            return connection
        } catch let e as SMTPTransportError {
            throw e
        } catch {
            if Task.isCancelled { throw CancellationError() }
            throw SMTPTransportError(endpoint: endpoint.description, phase: "connecting", detail: "\(error)")
        }
    }

    /// The connected channel. A cancelled task stops waiting at once (NIO's connect would go on until its time-out)
    /// and the channel, should it connect after all, is closed.
    private static func connected(_ connecting: EventLoopFuture<any Channel>) async throws -> any Channel {
        try await connecting.getUnlessCancelled { connecting.whenSuccess { $0.close(promise: nil) } }
    }

    /// The next reply, within `timeout`.
    public func reply(timeout: TimeAmount, phase: String) async throws -> SMTPReply {
        let loop = self.channel.eventLoop
        let promise = loop.makePromise(of: SMTPReply.self)
        let handler = self.handler
        loop.execute { handler.value.expect(promise) }
        let channel = self.channel
        let timer = loop.scheduleTask(in: timeout) {
            promise.fail(SMTPTransportError(endpoint: "", phase: phase, detail: "time-out"))
            channel.close(promise: nil)
        }
        defer { timer.cancel() }
        do {
            // A cancelled task (the daemon's shutdown grace ran out) closes the connection: no reply is awaited.
            return try await promise.futureResult.getUnlessCancelled { channel.close(promise: nil) }
        } catch is CancellationError {
            throw CancellationError()
        } catch let e as SMTPTransportError where e.endpoint.isEmpty {
            throw SMTPTransportError(endpoint: self.endpoint.description, phase: phase, detail: "no reply in time")
        } catch let e as SMTPProtocolError {
            throw e
        } catch {
            throw SMTPTransportError(
                endpoint: self.endpoint.description, phase: phase, detail: "connection lost (\(error))")
        }
    }

    /// Writes bytes (one write; several pipelined commands or a block of DATA), within `timeout` (RFC 5321
    /// §4.5.3.2.5: 3 minutes per data block): an MTA that stops reading cannot hold a poll for ever.
    public func write(_ bytes: [UInt8], phase: String, timeout: TimeAmount = Timeouts.dataBlock) async throws {
        let channel = self.channel
        let expired = NIOLockedValueBox(false)
        let timer = channel.eventLoop.scheduleTask(in: timeout) {
            expired.withLockedValue { $0 = true }
            channel.close(promise: nil)
        }
        defer { timer.cancel() }
        do {
            try await channel.writeAndFlush(ByteBuffer(bytes: bytes)).getUnlessCancelled { channel.close(promise: nil) }
        } catch {
            if error is CancellationError { throw error }
            if expired.withLockedValue({ $0 }) {
                throw SMTPTransportError(
                    endpoint: self.endpoint.description, phase: phase,
                    detail: "the MTA did not take the data within \(timeout.nanoseconds / 1_000_000_000) s")
            }
            throw SMTPTransportError(
                endpoint: self.endpoint.description, phase: phase, detail: "connection lost (\(error))")
        }
    }

    public func send(_ commands: [SMTPCommand], phase: String) async throws {
        var bytes: [UInt8] = []
        for c in commands { bytes += try c.encoded() }
        try await self.write(bytes, phase: phase)
    }

    /// RFC 3207 STARTTLS, after the server answered 220: TLS from now on, verified; what came before is forgotten.
    public func startTLS(context: NIOSSLContext, timeout: TimeAmount) async throws {
        let channel = self.channel
        let handlerBox = self.handler
        let handshake = channel.eventLoop.makePromise(of: Void.self)
        let host: String? = {
            if case .tcp(let h, _) = self.endpoint { return h }
            return nil
        }()
        try await channel.eventLoop.submit {
            handlerBox.value.discardBuffered()
            let sni = TLSContextFactory.serverName(for: host)
            let ssl = try NIOSSLClientHandler(context: context, serverHostname: sni)
            let sync = channel.pipeline.syncOperations
            try sync.addHandler(ssl, position: .first)
            try sync.addHandler(TLSHandshakeWaiter(promise: handshake), position: .after(ssl))
        }.get()
        try await self.finishHandshake(handshake.futureResult, timeout: timeout)
    }

    private func finishHandshake(_ future: EventLoopFuture<Void>, timeout: TimeAmount) async throws {
        var host: String?
        if case .tcp(let h, _) = self.endpoint { host = h }
        do {
            try await TLSHandshake.complete(future, channel: self.channel, timeout: timeout, host: host, pin: nil)
        } catch TLSHandshakeFailure.timeout {
            throw SMTPTransportError(endpoint: self.endpoint.description, phase: "TLS handshake", detail: "time-out")
        } catch TLSHandshakeFailure.rejected(let detail, _) {
            throw SMTPTransportError(
                endpoint: self.endpoint.description, phase: "TLS handshake", detail: "TLS failed: \(detail)")
        }
    }

    public func close() {
        self.channel.close(promise: nil)
    }

    public var isActive: Bool { self.channel.isActive }
}
