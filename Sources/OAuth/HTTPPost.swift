import MailTransport
public import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import SystemSupport

/// A minimal HTTP/1.1 POST client on SwiftNIO (NIOHTTP1 + NIOSSL), for OAuth2 token endpoints: one request per
/// connection, verified TLS for https, a bounded response body.
public enum HTTPPost {
    public struct Failure: Error, Hashable, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { self.message }
    }

    /// Responses larger than this are refused.
    public static let maximumBodyBytes = 1 << 20

    public static func post(
        url: String, body: [UInt8], contentType: String, timeout: TimeAmount = .seconds(30)
    ) async throws -> (status: Int, body: [UInt8]) {
        guard let target = Target(url) else { throw Failure(message: "invalid URL \(url)") }
        let context = target.tls ? try TLSContextFactory.makeContext(TLSClientOptions()) : nil
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let promise = loop.makePromise(of: (Int, [UInt8]).self)
        let channel: any Channel
        do {
            let connecting = ClientBootstrap(group: loop)
                .connectTimeout(timeout)
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .channelInitializer { ch in
                    ch.eventLoop.makeCompletedFuture {
                        let sync = ch.pipeline.syncOperations
                        if let context {
                            let sni = TLSContextFactory.serverName(for: target.host)
                            try sync.addHandler(NIOSSLClientHandler(context: context, serverHostname: sni))
                        }
                        try sync.addHTTPClientHandlers()
                        try sync.addHandler(ResponseCollector(promise: promise))
                    }
                }
                .connect(host: target.host, port: target.port)
            // A cancelled task (the daemon's shutdown grace ran out) stops waiting; a late connection is closed.
            channel = try await connecting.getUnlessCancelled { connecting.whenSuccess { $0.close(promise: nil) } }
        } catch {
            promise.fail(error)
            if error is CancellationError { throw error }
            throw Failure(message: "cannot connect to \(target.host):\(target.port): \(error)")
        }
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: target.hostHeader)
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: String(body.count))
        headers.add(name: "Accept", value: "application/json")
        headers.add(name: "Connection", value: "close")
        headers.add(name: "User-Agent", value: "popfetch")
        let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: target.path, headers: headers)
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        let timer = loop.scheduleTask(in: timeout) {
            promise.fail(Failure(message: "no answer from \(target.host) in time"))
            channel.close(promise: nil)
        }
        defer {
            timer.cancel()
            channel.close(promise: nil)
        }
        do {
            let (status, bytes) = try await promise.futureResult.getUnlessCancelled { channel.close(promise: nil) }
            return (status, bytes)
        } catch let e as Failure {
            throw e
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw Failure(message: "HTTP request to \(target.host) failed: \(error)")
        }
    }

    struct Target {
        var tls: Bool
        var host: String
        var port: Int
        var path: String
        var hostHeader: String

        init?(_ url: String) {
            var rest: Substring
            if url.hasPrefix("https://") {
                self.tls = true
                rest = url.dropFirst(8)
            } else if url.hasPrefix("http://") {
                self.tls = false
                rest = url.dropFirst(7)
            } else {
                return nil
            }
            let slash = rest.firstIndex(of: "/") ?? rest.endIndex
            let authority = rest[..<slash]
            self.path = slash == rest.endIndex ? "/" : String(rest[slash...])
            rest = authority
            var host = String(rest)
            var port = self.tls ? 443 : 80
            if host.hasPrefix("["), let close = host.firstIndex(of: "]") {
                let after = host[host.index(after: close)...]
                if after.hasPrefix(":"), let p = Int(after.dropFirst()) { port = p }
                host = String(host[host.index(after: host.startIndex)..<close])
            } else if let colon = host.lastIndex(of: ":"), let p = Int(host[host.index(after: colon)...]) {
                port = p
                host = String(host[..<colon])
            }
            guard !host.isEmpty, port > 0, port < 65536 else { return nil }
            self.host = host
            self.port = port
            self.hostHeader = String(authority)
        }
    }
}

/// Collects one HTTP response.
final class ResponseCollector: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let promise: EventLoopPromise<(Int, [UInt8])>
    private var status = 0
    private var body: [UInt8] = []
    private var done = false

    init(promise: EventLoopPromise<(Int, [UInt8])>) { self.promise = promise }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.status = Int(head.status.code)
        case .body(var buffer):
            if self.body.count + buffer.readableBytes > HTTPPost.maximumBodyBytes {
                self.finish(.failure(HTTPPost.Failure(message: "HTTP response too large")))
                context.close(promise: nil)
                return
            }
            self.body += buffer.readBytes(length: buffer.readableBytes) ?? []
        case .end:
            self.finish(.success((self.status, self.body)))
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.finish(.failure(error))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.finish(.failure(HTTPPost.Failure(message: "the server closed the connection before answering")))
    }

    private func finish(_ result: Result<(Int, [UInt8]), any Error>) {
        guard !self.done else { return }
        self.done = true
        self.promise.completeWith(result)
    }
}
