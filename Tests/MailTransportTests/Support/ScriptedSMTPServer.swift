import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// What the server does in answer to a line.
enum ServerStep: Sendable {
    /// Write these bytes at once (several replies may go in one write).
    case send(String)
    /// Put TLS in front now, presenting the server certificate (after the `220` to STARTTLS).
    case startTLS
    case close
}

/// An in-process SMTP server on 127.0.0.1 (a free port) for one test: a greeting, then every command line answered
/// by `respond`; after a `354` the body is collected up to its dot line and answered by `endOfData`. It records the
/// command lines and bodies it received (after STARTTLS: what came over TLS).
final class ScriptedSMTPServer: Sendable {
    struct Script: Sendable {
        var greeting: String? = "220 mx.test ESMTP\r\n"
        /// TLS from the first byte (the greeting goes once the handshake is done).
        var implicitTLS = false
        var respond: @Sendable (String) -> [ServerStep]
        var endOfData: @Sendable ([UInt8]) -> [ServerStep] = { _ in [.send("250 2.0.0 queued\r\n")] }
    }

    struct Log: Sendable {
        var lines: [String] = []
        var bodies: [[UInt8]] = []
    }

    let port: Int
    private let channel: any Channel
    private let log: NIOLockedValueBox<Log>

    private init(port: Int, channel: any Channel, log: NIOLockedValueBox<Log>) {
        self.port = port
        self.channel = channel
        self.log = log
    }

    static func start(_ script: Script, tls: NIOSSLContext? = nil) async throws -> ScriptedSMTPServer {
        let log = NIOLockedValueBox(Log())
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { child in
                child.eventLoop.makeCompletedFuture {
                    let sync = child.pipeline.syncOperations
                    if script.implicitTLS, let tls {
                        try sync.addHandler(NIOSSLServerHandler(context: tls))
                    }
                    try sync.addHandler(ScriptHandler(script: script, tls: tls, log: log))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        guard let port = channel.localAddress?.port else { throw TestError("the server has no port") }
        return ScriptedSMTPServer(port: port, channel: channel, log: log)
    }

    /// The command lines received, without CRLF.
    var lines: [String] { self.log.withLockedValue { $0.lines } }
    /// The message bodies received, dot lines and CRLFs as sent, without the end-of-data line.
    var bodies: [[UInt8]] { self.log.withLockedValue { $0.bodies } }

    func stop() async {
        try? await self.channel.close()
    }
}

private final class ScriptHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let script: ScriptedSMTPServer.Script
    let tls: NIOSSLContext?
    let log: NIOLockedValueBox<ScriptedSMTPServer.Log>
    private var pending: [UInt8] = []
    /// The body so far, while in DATA.
    private var body: [UInt8]?

    init(script: ScriptedSMTPServer.Script, tls: NIOSSLContext?, log: NIOLockedValueBox<ScriptedSMTPServer.Log>) {
        self.script = script
        self.tls = tls
        self.log = log
    }

    func channelActive(context: ChannelHandlerContext) {
        if let greeting = self.script.greeting { self.perform([.send(greeting)], context: context) }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.pending += Array(self.unwrapInboundIn(data).readableBytesView)
        while let lf = self.pending.firstIndex(of: 10) {
            let line = Array(self.pending[...lf])
            self.pending.removeFirst(lf + 1)
            if var body = self.body {
                if line == Array(".\r\n".utf8) {
                    self.body = nil
                    self.log.withLockedValue { $0.bodies.append(body) }
                    self.perform(self.script.endOfData(body), context: context)
                } else {
                    body += line
                    self.body = body
                }
                continue
            }
            let text = String(decoding: line.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self)
            self.log.withLockedValue { $0.lines.append(text) }
            let steps = self.script.respond(text)
            let goAhead = steps.contains {
                if case .send(let s) = $0 { return s.hasPrefix("354") }
                return false
            }
            if text.uppercased() == "DATA" && goAhead { self.body = [] }
            self.perform(steps, context: context)
        }
    }

    private func perform(_ steps: [ServerStep], context: ChannelHandlerContext) {
        for step in steps {
            switch step {
            case .send(let text):
                context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: text)), promise: nil)
            case .startTLS:
                guard let tls = self.tls else {
                    context.close(promise: nil)
                    return
                }
                try? context.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls), position: .first)
            case .close:
                context.close(promise: nil)
            }
        }
    }
}
