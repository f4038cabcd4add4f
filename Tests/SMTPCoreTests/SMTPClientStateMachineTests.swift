import NIOCore
import SMTPCore
import Testing

@Suite("SMTPClientStateMachine")
struct SMTPClientStateMachineTests {
    @Test("table", arguments: Table.all)
    func table(_ row: Row) {
        run(row)
    }

    @Test("the table has enough distinct rows")
    func tableShape() {
        #expect(Table.all.count >= 40)
        #expect(Set(Table.all.map(\.name)).count == Table.all.count, "row names must be unique")
    }

    // MARK: - AUTH lines

    @Test(
        "AUTH lines on the wire",
        arguments: [
            (SMTPAuthenticationLine.auth(mechanism: "PLAIN", initialResponse: "AGEAYg=="), "AUTH PLAIN AGEAYg==\r\n"),
            (.auth(mechanism: "LOGIN", initialResponse: nil), "AUTH LOGIN\r\n"),
            (.auth(mechanism: "EXTERNAL", initialResponse: ""), "AUTH EXTERNAL =\r\n"),
            (.auth(mechanism: "SCRAM-SHA-256", initialResponse: "biwsbj11c2Vy"), "AUTH SCRAM-SHA-256 biwsbj11c2Vy\r\n"),
            (.response("YWxpY2U="), "YWxpY2U=\r\n"),
            (.response(""), "\r\n"),
            (.response("*"), "*\r\n"),
        ] as [(SMTPAuthenticationLine, String)])
    func authLineEncoding(line: SMTPAuthenticationLine, wire: String) throws {
        #expect(try line.encoded() == Array(wire.utf8))
    }

    @Test(
        "AUTH lines SMTP cannot carry are refused, without the secret in the message",
        arguments: [
            SMTPAuthenticationLine.auth(mechanism: "", initialResponse: nil),
            .auth(mechanism: "PLAIN X", initialResponse: nil),
            .auth(mechanism: "A-MECHANISM-NAME-LONGER-THAN-20", initialResponse: nil),
            .auth(mechanism: "PLAIN", initialResponse: "c2VjcmV0\r\nRSET"),
            .response("hunter2 secret"),
            .response("**"),
        ])
    func authLineRefused(line: SMTPAuthenticationLine) {
        let error = #expect(throws: SMTPCommand.EncodingError.self) { try line.encoded() }
        #expect(error?.message.contains("secret") == false)
        #expect(error?.message.contains("c2VjcmV0") == false)
    }

    @Test("AUTH lines never show their responses")
    func authLineRedaction() {
        #expect(
            SMTPAuthenticationLine.auth(mechanism: "PLAIN", initialResponse: "c2VjcmV0").description
                == "AUTH PLAIN <initial response redacted>")
        #expect(SMTPAuthenticationLine.auth(mechanism: "LOGIN", initialResponse: nil).description == "AUTH LOGIN")
        #expect(!SMTPAuthenticationLine.response("c2VjcmV0").description.contains("c2VjcmV0"))
        #expect("\(Action.sendAuthentication(.response("c2VjcmV0")))".contains("c2VjcmV0") == false)
    }

    // MARK: - Limits and errors

    @Test("RFC 5321 §4.5.3.2 time-outs per awaited reply")
    func timeouts() {
        #expect(Step.greeting.minimumTimeoutSeconds == 300)
        #expect(Step.mailFrom.minimumTimeoutSeconds == 300)
        #expect(Step.rcptTo.minimumTimeoutSeconds == 300)
        #expect(Step.data.minimumTimeoutSeconds == 120)
        #expect(Step.endOfData.minimumTimeoutSeconds == 600)
    }

    @Test("an AUTH line of exactly 512 octets keeps its initial response; one more octet defers it")
    func initialResponseBoundary() throws {
        // "AUTH PLAIN " (11) + response + CRLF (2) = 512
        for (length, inline) in [(499, true), (500, false)] {
            let response = String(repeating: "A", count: length)
            var machine = Machine(configuration: .init(clientName: client))
            _ = try machine.receivedReply(greeting)
            _ = try machine.receivedReply(ehlo("AUTH PLAIN"))
            let action = try machine.authenticate(mechanism: "PLAIN", initialResponse: response)
            let expected = SMTPAuthenticationLine.auth(mechanism: "PLAIN", initialResponse: inline ? response : nil)
            #expect(action == .sendAuthentication(expected), "length \(length)")
            if inline { #expect(try expected.encoded().count == SMTPDefaults.maximumCommandLineLength) }
        }
    }

    @Test("errors compare by code only and say what happened")
    func errorIdentity() {
        let a = SMTPClientError(code: .serviceClosing, reply: closing, step: .rcptTo, detail: "one")
        let b = SMTPClientError(code: .serviceClosing, reply: r(421, "other"), step: nil, detail: "two")
        #expect(a == b)
        #expect(a != SMTPClientError(code: .unexpectedReply, reply: closing, step: .rcptTo, detail: "one"))
        #expect(
            a.description == "SMTP service closing: one (server replied to RCPT TO: 421 4.3.2 Service shutting down)")
    }

    @Test("state as events go by")
    func states() throws {
        var machine = Machine(configuration: startTLS)
        #expect(machine.state == .awaitingGreeting)
        #expect(machine.awaitedReplies == [.greeting])
        #expect(!machine.isEncrypted)
        _ = try machine.receivedReply(greeting)
        #expect(machine.state == .awaitingHello)
        _ = try machine.receivedReply(Table.beforeTLS)
        #expect(machine.state == .awaitingSTARTTLS)
        #expect(machine.capabilities.startTLS)
        _ = try machine.receivedReply(r(220, "go"))
        #expect(machine.state == .negotiatingTLS)
        _ = try machine.tlsEstablished()
        #expect(machine.isEncrypted)
        #expect(machine.capabilities == SMTPCapabilities(), "what was said in clear text is forgotten")
        _ = try machine.receivedReply(Table.afterTLS)
        #expect(machine.state == .ready)
        #expect(machine.capabilities.size == 5000)
        _ = try machine.authenticate(mechanism: "LOGIN", initialResponse: nil)
        #expect(machine.state == .authenticating)
        _ = try machine.receivedReply(r(334, "VXNlcm5hbWU6"))
        #expect(machine.state == .awaitingAuthenticationResponse)
        _ = try machine.authenticationStep(response: "YQ==")
        _ = try machine.receivedReply(Table.authOK)
        #expect(machine.isAuthenticated)
        _ = try machine.beginTransaction(
            sender: "a@x.test", recipients: ["b@y.test"], size: 10, needsUTF8: false, eightBit: false)
        #expect(machine.state == .transaction)
        _ = try machine.receivedReply(mailOK)
        _ = try machine.receivedReply(rcptOK)
        _ = try machine.receivedReply(goAhead)
        #expect(machine.state == .sendingBody)
        _ = try machine.bodySent()
        #expect(machine.state == .transaction)
        _ = try machine.receivedReply(queued)
        #expect(machine.state == .transaction, "the NOOP's reply proves the end of data's in step")
        _ = try machine.receivedReply(noopOK)
        #expect(machine.state == .ready)
        _ = machine.quit()
        #expect(machine.state == .quitting)
        _ = try machine.receivedReply(bye)
        #expect(machine.state == .closed)
    }

    // MARK: - Bytes through the reply parser, as a connection would drive it

    /// A connection edge reduced to its duties: parse replies, hand them over, and on `.startTLS` throw away what is
    /// buffered.
    struct Edge {
        var machine: Machine
        var parser = SMTPReplyParser()
        var buffer = ByteBuffer()
        var wire: [UInt8] = []

        init(_ configuration: Machine.Configuration) { self.machine = Machine(configuration: configuration) }

        mutating func receive(_ text: String) throws -> [Action] {
            self.buffer.writeString(text)
            var actions: [Action] = []
            while let reply = try self.parser.parse(&self.buffer) {
                let action = try self.machine.receivedReply(reply)
                actions.append(action)
                try self.write(action)
                if action == .startTLS {
                    self.buffer.clear()
                    self.parser = SMTPReplyParser()
                    break
                }
            }
            return actions
        }

        mutating func write(_ action: Action) throws {
            switch action {
            case .send(let commands): for c in commands { self.wire += try c.encoded() }
            case .sendAuthentication(let line): self.wire += try line.encoded()
            case .sendBody: self.wire += Array("Subject: hi\r\n\r\nhello\r\n.\r\n".utf8)
            case .sendEmptyBody: self.wire += Array(".\r\n".utf8)
            default: break
            }
        }

        mutating func takeWire() -> String {
            defer { self.wire = [] }
            return String(decoding: self.wire, as: UTF8.self)
        }
    }

    @Test("bytes that came with the 220 to STARTTLS are discarded with the parser state; EHLO again")
    func startTLSDiscardsBufferedBytes() throws {
        var edge = Edge(startTLS)
        #expect(try edge.receive("220 mx.test ESMTP Postfix\r\n") == [.send([.ehlo(client)])])
        #expect(edge.takeWire() == "EHLO client.test\r\n")
        #expect(try edge.receive("250-mx.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n") == [.send([.startTLS])])
        #expect(edge.takeWire() == "STARTTLS\r\n")
        // A man in the middle appends a fake EHLO reply (and half a line) to the 220, in clear text.
        #expect(
            try edge.receive("220 2.0.0 Ready to start TLS\r\n250-mx.test\r\n250 AUTH PLAIN\r\n250-par") == [.startTLS])
        #expect(edge.buffer.readableBytes == 0)
        let hello = try edge.machine.tlsEstablished()
        try edge.write(hello)
        #expect(edge.takeWire() == "EHLO client.test\r\n")
        let after = "250-mx.test\r\n250-PIPELINING\r\n250 SIZE 1000\r\n"
        let actions = try edge.receive(after)
        #expect(actions.count == 1)
        guard case .ready(let caps) = actions.first else {
            Issue.record("expected ready, got \(actions)")
            return
        }
        #expect(caps.pipelining && caps.size == 1000 && !caps.has("AUTH"))
    }

    @Test("a pipelined transaction, replies arriving in one segment")
    func pipelinedTranscript() throws {
        var edge = Edge(.init(clientName: client))
        _ = try edge.receive("220 mx.test ESMTP\r\n250-mx.test\r\n")
        #expect(
            try edge.receive("250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n") == [
                .ready(caps(ehlo("PIPELINING", "SIZE 10240000", "8BITMIME")))
            ])
        _ = edge.takeWire()
        let group = try edge.machine.beginTransaction(
            sender: "a@x.test", recipients: ["b@y.test", "c@y.test"], size: 42, needsUTF8: false, eightBit: true)
        try edge.write(group)
        #expect(
            edge.takeWire()
                == "MAIL FROM:<a@x.test> SIZE=42 BODY=8BITMIME\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n")
        let actions = try edge.receive("250 2.1.0 Ok\r\n550 5.1.1 <b@y.test> unknown\r\n250 2.1.5 Ok\r\n354 go\r\n")
        #expect(actions == [.waitForReply, .waitForReply, .waitForReply, .sendBody])
        _ = try edge.machine.bodySent()
        #expect(edge.takeWire() == "Subject: hi\r\n\r\nhello\r\n.\r\n")
        let done = try edge.receive("250 2.0.0 Ok: queued\r\n250 2.0.0 Ok\r\n")
        #expect(
            done == [
                .waitForReply,
                .transactionComplete([
                    permanent("b@y.test", r(550, "5.1.1 <b@y.test> unknown"), .rcptTo),
                    accepted("c@y.test", r(250, "2.0.0 Ok: queued")),
                ]),
            ])
        // The next group starts with nothing to reset: the end of data ended the transaction.
        let next = try edge.machine.beginTransaction(
            sender: "", recipients: ["c@y.test"], size: nil, needsUTF8: false, eightBit: false)
        try edge.write(next)
        #expect(edge.takeWire() == "MAIL FROM:<>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n")
    }
}
