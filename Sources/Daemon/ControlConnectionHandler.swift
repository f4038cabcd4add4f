import Logging
import NIOCore

/// One control-socket connection, on its event loop: collects the request line (LF-terminated, or ended by the
/// client's half-close), answers it with one reply line, and closes. A client that has not finished within the
/// deadline is disconnected without a reply. A bad request is answered `error bad-request …`; nothing a client
/// sends can do more than end its own connection.
final class ControlConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let handler: ControlSocket.Handler
    private let logger: Logger
    private let deadline: TimeAmount
    private var buffer = ByteBuffer()
    private var answered = false
    private var timer: Scheduled<Void>?

    init(handler: @escaping ControlSocket.Handler, logger: Logger, deadline: TimeAmount) {
        self.handler = handler
        self.logger = logger
        self.deadline = deadline
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        self.timer = context.eventLoop.scheduleTask(in: self.deadline) { Self.end(channel) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.timer?.cancel()
        self.timer = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.answered else { return }
        var chunk = self.unwrapInboundIn(data)
        self.buffer.writeBuffer(&chunk)
        if let end = self.buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) {
            let line = self.buffer.getString(at: self.buffer.readerIndex, length: end - self.buffer.readerIndex) ?? ""
            self.reply(self.answer(line), context: context)
        } else if self.buffer.readableBytes >= ControlRequest.maximumLineLength {
            let limit = ControlRequest.maximumLineLength
            self.reply(.badRequest("the request is longer than \(limit) octets"), context: context)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // The client shut down its side: what it sent is the whole request (`nc -N`); nothing at all gets no reply.
        if let e = event as? ChannelEvent, e == .inputClosed, !self.answered {
            if self.buffer.readableBytes == 0 {
                Self.end(context.channel)
            } else {
                self.reply(self.answer(String(buffer: self.buffer)), context: context)
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.logger.debug("control socket: a client went away: \(error)")
        context.close(promise: nil)
    }

    private func answer(_ line: String) -> ControlReply {
        do {
            return self.handler(try ControlRequest(parsing: line))
        } catch {
            self.logger.notice("control socket: refused a request: \(error)")
            return .badRequest(error.message)
        }
    }

    private func reply(_ reply: ControlReply, context: ChannelHandlerContext) {
        self.answered = true
        let channel = context.channel
        context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: reply.encoded))).whenComplete { _ in
            Self.end(channel)
        }
    }

    /// Ends a connection: its sending side is shut down first, so the client sees the end even when a child
    /// process holds a copy of the descriptor (NIO does not open accepted sockets close-on-exec), then it is closed.
    private static func end(_ channel: any Channel) {
        channel.close(mode: .output).whenComplete { _ in channel.close(promise: nil) }
    }
}
