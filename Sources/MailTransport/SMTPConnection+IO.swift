import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import NIOTLS
import SMTPCore

/// The edge itself: bytes to replies, actions to writes and TLS, time-outs, errors.
extension SMTPConnection {
    /// Carries out `first` and every action that follows from it, until one is for the caller: `.ready`, an AUTH
    /// step, `.sendBody`, `.transactionComplete` or `.close`.
    func drive(_ first: SMTPClientStateMachine.Action) async throws -> SMTPClientStateMachine.Action {
        var action = first
        while true {
            switch action {
            case .send(let commands):
                var out = ByteBuffer()
                var keywords: [String] = []
                for command in commands {
                    let line = try command.encoded()
                    keywords.append(String(decoding: line.prefix { $0 != 32 && $0 != 13 }, as: UTF8.self))
                    out.writeBytes(line)
                    self.trace?("> " + String(decoding: line.prefix { $0 != 13 }, as: UTF8.self))
                }
                self.phase = "sending " + keywords.joined(separator: ", ")
                try await self.write(out)
                action = try await self.receiveReply()
            case .sendAuthentication(let line):
                self.phase = "sending AUTH"
                self.trace?("> \(line)")
                try await self.write(ByteBuffer(bytes: try line.encoded()))
                action = try await self.receiveReply()
            case .startTLS:
                try await self.upgradeToTLS()
                action = try self.machine.tlsEstablished()
            case .sendEmptyBody:
                // RFC 2920 §3.1: the pipelined DATA was accepted although no recipient was; the lone end-of-data
                // line ends it, or what comes next would be read as message text.
                self.phase = "ending a DATA without recipients"
                self.trace?("> .")
                try await self.write(ByteBuffer(string: ".\r\n"))
                action = try self.machine.bodySent()
            case .waitForReply:
                action = try await self.receiveReply()
            case .close:
                self.channel.close(promise: nil)
                return action
            case .ready, .authenticationChallenge, .authenticated, .sendBody, .transactionComplete:
                return action
            }
        }
    }

    /// Reads up to the next complete reply and hands it to the machine, within the time-out of the step it answers.
    func receiveReply() async throws -> SMTPClientStateMachine.Action {
        let step = self.machine.awaitedReplies.first
        switch step {
        case .greeting?: self.phase = "waiting for the greeting"
        case let step?: self.phase = "waiting for the reply to \(step)"
        case nil: self.phase = "waiting for a reply"
        }
        let limit = self.timeouts.reply(to: step ?? .quit)
        let deadline = NIODeadline.now() + limit
        while true {
            if let reply = try self.parser.parse(&self.buffer) {
                if self.buffer.readableBytes == 0 { self.buffer.clear() }
                if let trace = self.trace {
                    for (i, line) in reply.lines.enumerated() {
                        // 334 carries a SASL challenge (SCRAM's salt and server signature): masked, as in POP3.
                        let text = reply.code == 334 ? "******** (\(line.utf8.count) bytes of SASL challenge)" : line
                        trace("< \(reply.code)\(i == reply.lines.count - 1 ? " " : "-")\(text)")
                    }
                }
                return try self.machine.receivedReply(reply)
            }
            var chunk = try await self.readChunk(
                deadline: deadline, timeoutDetail: "no reply within \(Self.seconds(limit))")
            if self.buffer.readableBytes == 0 {
                self.buffer = chunk
            } else {
                self.buffer.discardReadBytes()
                self.buffer.writeBuffer(&chunk)
            }
        }
    }

    /// RFC 3207 §4.2: after the `220` to STARTTLS, TLS; nothing received in clear text after that `220` counts.
    /// The buffer and the parser's state are dropped, the TLS handler goes in front, and every chunk the channel had
    /// already handed up is read and dropped, up to the boundary marker (``STARTTLSBoundaryHandler``).
    func upgradeToTLS() async throws {
        guard let tlsContext = self.tlsContext else { preconditionFailure("STARTTLS without a TLS context") }
        self.buffer.clear()
        self.parser = SMTPReplyParser()
        self.phase = "TLS handshake"
        let channel = self.channel
        let boundary = self.boundary
        let host = self.endpoint.host
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
        try await Self.awaitHandshake(
            handshake.futureResult, channel: channel, endpoint: self.endpoint, timeout: self.timeouts.connect)
        let deadline = NIODeadline.now() + self.timeouts.connect
        while try await self.readChunk(deadline: deadline, timeoutDetail: "no TLS boundary").readableBytes > 0 {}
    }

    /// Waits for a TLS handshake, then checks the certificate against the host name (as for POP3).
    static func awaitHandshake(
        _ future: EventLoopFuture<Void>, channel: any Channel, endpoint: SMTPEndpoint, timeout: TimeAmount
    ) async throws {
        do {
            try await TLSHandshake.complete(future, channel: channel, timeout: timeout, host: endpoint.host, pin: nil)
        } catch TLSHandshakeFailure.timeout {
            throw SMTPTransportError(.timeout, endpoint: endpoint, phase: "TLS handshake")
        } catch TLSHandshakeFailure.rejected(let detail, _) {
            let hint =
                TLSHandshake.pointsAtPort(detail)
                ? "; use smtp_tls = \"starttls\", or the port for implicit TLS (465)" : ""
            throw SMTPTransportError(.tlsFailed, endpoint: endpoint, phase: "TLS handshake", detail: detail + hint)
        }
    }

    // MARK: - Bytes

    /// One chunk from the socket, by `deadline`.
    func readChunk(deadline: NIODeadline, timeoutDetail: String) async throws -> ByteBuffer {
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

    /// RFC 5321 §4.1.1.4 (RFC 2033 §4.2): the server answers the body only after its end-of-data line. Anything it
    /// sent before popfetch has written that line cannot be this message's verdict: it is read through the machine,
    /// which refuses a reply while the body is being sent (every open recipient deferred, the connection closed), so
    /// neither this message nor the next takes a stale verdict for its own. Called before each block of the body.
    func refuseEarlyReply() async throws {
        guard self.buffer.readableBytes > 0 || self.received.withLockedValue({ $0 }) > self.bytesRead else { return }
        self.phase = "sending the message (the MTA replied before the end of data)"
        _ = try await self.receiveReply()
        throw SMTPTransportError(.connectionClosed, endpoint: self.endpoint, phase: self.phase)
    }

    /// One write (several pipelined commands, or a block of the body), within ``Timeouts/dataBlock``.
    func write(_ buffer: ByteBuffer) async throws {
        let limit = self.timeouts.dataBlock
        let timer = self.armTimer(.now() + limit)
        defer { timer.cancel() }
        do {
            try await self.outbound.write(buffer)
        } catch {
            throw self.mapIOError(error, timeoutDetail: "the MTA did not take the data within \(Self.seconds(limit))")
        }
    }

    /// At `deadline` the channel is closed, which ends the read or write in progress; the flag says why.
    private func armTimer(_ deadline: NIODeadline) -> Scheduled<Void> {
        let channel = self.channel
        let flag = self.timedOut
        return channel.eventLoop.scheduleTask(deadline: deadline) {
            flag.withLockedValue { $0 = true }
            channel.close(promise: nil)
        }
    }

    private func closedError(timeoutDetail: String?) -> SMTPTransportError {
        if self.timedOut.withLockedValue({ $0 }) {
            return SMTPTransportError(.timeout, endpoint: self.endpoint, phase: self.phase, detail: timeoutDetail)
        }
        return SMTPTransportError(.connectionClosed, endpoint: self.endpoint, phase: self.phase)
    }

    private func mapIOError(_ error: any Error, timeoutDetail: String?) -> any Error {
        if error is SMTPTransportError || error is SMTPClientError || error is SMTPProtocolError
            || error is SMTPCommand.EncodingError || error is SMTPClientStateMachine.UsageError
            || error is CancellationError
        {
            return error
        }
        if self.timedOut.withLockedValue({ $0 }) { return self.closedError(timeoutDetail: timeoutDetail) }
        if error is NIOSSLError {
            return SMTPTransportError(
                .tlsFailed, endpoint: self.endpoint, phase: self.phase, detail: TLSHandshake.describe(error))
        }
        return SMTPTransportError(.connectionClosed, endpoint: self.endpoint, phase: self.phase, detail: "\(error)")
    }

    static func seconds(_ t: TimeAmount) -> String {
        let s = Double(t.nanoseconds) / 1e9
        return s == s.rounded() ? "\(Int(s)) s" : "\(s) s"
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
