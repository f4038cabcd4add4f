public import Configuration
public import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
public import ServiceLifecycle

/// `metrics_listen`: the daemon's metrics over HTTP for Prometheus to scrape, a `Service`. `GET /metrics` (or
/// `HEAD`) answers the metrics in the text exposition format; any other path is 404, any other method 405, a
/// malformed request 400. One request per connection (`Connection: close`); a client silent for
/// ``idleDeadline``, or connected longer than ``connectionDeadline``, is disconnected, and at most
/// ``maxConnections`` are open at once. Nothing is read from a request but its request line and headers (NIOHTTP1's
/// limits bound those), and nothing a client sends changes anything.
public struct MetricsEndpoint: Service {
    /// How long a connection may stay without traffic.
    public static let idleDeadline: Duration = .seconds(10)
    /// How long a connection may stay at all, however it trickles: a scrape takes milliseconds.
    public static let connectionDeadline: Duration = .seconds(10)
    /// Connections open at once; more are closed as they are accepted (a scraper needs one at a time). Each holds a
    /// descriptor, and descriptors are what polls need: hundreds of idle connections must not starve them.
    public static let maxConnections = 16
    static let backlog: Int32 = 16

    public let address: MetricsAddress
    /// The port actually bound (the configured one, or the kernel's choice for port 0 in tests).
    public let port: Int
    private let server: any Channel
    private let closing: NIOLockedValueBox<Bool>

    /// Binds the address and serves at once. Throws ``MetricsEndpointError`` when it cannot be bound.
    public static func bind(address: MetricsAddress, metrics: PollMetrics, logger: Logger) async throws
        -> MetricsEndpoint
    {
        let server: any Channel
        let open = NIOLockedValueBox(0)
        do {
            server = try await ServerBootstrap(group: MetricsLoop.group)
                .serverChannelOption(.backlog, value: Self.backlog)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    let admitted = open.withLockedValue { n -> Bool in
                        guard n < Self.maxConnections else { return false }
                        n += 1
                        return true
                    }
                    guard admitted else { return channel.close() }
                    channel.closeFuture.whenComplete { _ in open.withLockedValue { $0 -= 1 } }
                    let deadline = channel.eventLoop.scheduleTask(in: TimeAmount(Self.connectionDeadline)) {
                        channel.close(promise: nil)
                    }
                    channel.closeFuture.whenComplete { _ in deadline.cancel() }
                    return channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        try sync.addHandler(IdleStateHandler(allTimeout: TimeAmount(Self.idleDeadline)))
                        try sync.configureHTTPServerPipeline(withErrorHandling: true)
                        try sync.addHandler(MetricsRequestHandler(metrics: metrics))
                    }
                }
                .bind(host: address.host, port: address.port).get()
        } catch let error as SocketAddressError.UnknownHost {
            throw MetricsEndpointError(
                address: address, message: "cannot resolve host name \(error.host): \(error.errorDescription)")
        } catch is SocketAddressError {
            throw MetricsEndpointError(address: address, message: "not an address to listen on")
        } catch {
            throw MetricsEndpointError(address: address, message: "cannot listen: \(Self.reason(error))")
        }
        let port = server.localAddress?.port ?? address.port
        logger.info("metrics served on http://\(MetricsAddress(host: address.host, port: port))/metrics")
        return MetricsEndpoint(address: address, port: port, server: server, closing: NIOLockedValueBox(false))
    }

    private static func reason(_ error: any Error) -> String {
        if let io = error as? IOError { return String(cString: strerror(io.errnoCode)) }
        return "\(error)"
    }

    /// Serves until graceful shutdown or cancellation, then closes. Throws if the socket closed by itself.
    public func run() async throws {
        let (server, closing) = (self.server, self.closing)
        let close: @Sendable () -> Void = {
            closing.withLockedValue { $0 = true }
            server.close(promise: nil)
        }
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                try? await server.closeFuture.get()
            } onGracefulShutdown: {
                close()
            }
        } onCancel: {
            close()
        }
        guard closing.withLockedValue({ $0 }) else {
            throw MetricsEndpointError(address: self.address, message: "the metrics socket closed unexpectedly")
        }
    }
}

/// The metrics address cannot be bound, or its socket failed.
public struct MetricsEndpointError: Error, Hashable, Sendable, CustomStringConvertible {
    public var address: MetricsAddress
    public var message: String
    public var description: String { "metrics_listen \(self.address): \(self.message)" }
}

/// One HTTP connection: answers its first request, then closes.
final class MetricsRequestHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let metrics: PollMetrics
    private var request: HTTPRequestHead?
    private var answered = false

    init(metrics: PollMetrics) { self.metrics = metrics }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head): self.request = head
        case .body: break
        case .end:
            guard let head = self.request, !self.answered else { return }
            self.answered = true
            self.respond(to: head, context: context)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        let status: HTTPResponseStatus
        var body: [UInt8]
        var contentType = "text/plain; charset=utf-8"
        var headers = HTTPHeaders()
        if head.method != .GET && head.method != .HEAD {
            (status, body) = (.methodNotAllowed, Array("only GET and HEAD\n".utf8))
            headers.add(name: "Allow", value: "GET, HEAD")
        } else if path == "/metrics" {
            (status, body) = (.ok, self.metrics.render())
            contentType = "text/plain; version=0.0.4; charset=utf-8"
        } else {
            (status, body) = (.notFound, Array("popfetch serves its metrics at /metrics\n".utf8))
        }
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: String(body.count))
        headers.add(name: "Connection", value: "close")
        if head.method == .HEAD { body = [] }
        context.write(
            self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))),
            promise: nil)
        if !body.isEmpty {
            var buffer = context.channel.allocator.buffer(capacity: body.count)
            buffer.writeBytes(body)
            context.write(self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        let channel = context.channel
        context.writeAndFlush(self.wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }
}
