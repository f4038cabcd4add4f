import NIOCore
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
                self.io.close()
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
        self.buffer.clear()
        self.parser = SMTPReplyParser()
        try await self.io.upgradeToTLS(boundaryTimeoutDetail: "no TLS boundary")
    }

    /// SMTP's face of the shared edge: its transport error, its own errors, its hint for TLS on the wrong port.
    static func edgeProfile(_ endpoint: SMTPEndpoint) -> MailChannel.Profile {
        MailChannel.Profile(
            transportError: { kind, phase, detail in
                SMTPTransportError(kind, endpoint: endpoint, phase: phase, detail: detail)
            },
            passesThrough: { error in
                error is SMTPTransportError || error is SMTPClientError || error is SMTPProtocolError
                    || error is SMTPCommand.EncodingError || error is SMTPClientStateMachine.UsageError
                    || error is CancellationError
            },
            tlsPortHint: "; use smtp_tls = \"starttls\", or the port for implicit TLS (465)")
    }

    // MARK: - Bytes

    /// One chunk from the socket, by `deadline`.
    func readChunk(deadline: NIODeadline, timeoutDetail: String) async throws -> ByteBuffer {
        try await self.io.readChunk(deadline: deadline, timeoutDetail: timeoutDetail)
    }

    /// RFC 5321 §4.1.1.4 (RFC 2033 §4.2): the server answers the body only after its end-of-data line. Anything it
    /// sent before popfetch has written that line cannot be this message's verdict: it is read through the machine,
    /// which refuses a reply while the body is being sent (every open recipient deferred, the connection closed), so
    /// neither this message nor the next takes a stale verdict for its own. Called before each block of the body.
    func refuseEarlyReply() async throws {
        guard self.buffer.readableBytes > 0 || self.io.hasUnreadBytes else { return }
        self.phase = "sending the message (the MTA replied before the end of data)"
        _ = try await self.receiveReply()
        throw SMTPTransportError(.connectionClosed, endpoint: self.endpoint, phase: self.phase)
    }

    /// One write (several pipelined commands, or a block of the body), within ``Timeouts/dataBlock``.
    func write(_ buffer: ByteBuffer) async throws {
        let limit = self.timeouts.dataBlock
        try await self.io.write(
            buffer, within: limit, timeoutDetail: "the MTA did not take the data within \(Self.seconds(limit))")
    }

    static func seconds(_ t: TimeAmount) -> String {
        let s = Double(t.nanoseconds) / 1e9
        return s == s.rounded() ? "\(Int(s)) s" : "\(s) s"
    }
}
