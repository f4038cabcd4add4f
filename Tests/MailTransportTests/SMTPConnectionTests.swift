import MailTestKit
import NIOConcurrencyHelpers
import NIOCore
import SMTPCore
import Testing

@testable import MailTransport

#if canImport(Glibc)
    import Glibc
#endif

/// The SMTP edge against an in-process server on 127.0.0.1: what goes on the wire, STARTTLS, time-outs.
@Suite("SMTPConnection against an in-process server", .offThePool)
struct SMTPConnectionTests {
    static let configuration = SMTPClientStateMachine.Configuration(clientName: "client.test")
    /// Generous, for a loaded machine. (The tests run on an event loop, `.offThePool`: EndToEndTests' synchronous
    /// waits for child processes can hold every thread of the concurrency pool for minutes.)
    static let timeouts = SMTPConnection.Timeouts(connect: .seconds(120), cap: .seconds(120))

    /// A well-behaved server: PIPELINING, RCPTs containing "refused" refused, every DATA answered 354.
    static func answer(_ line: String) -> [ServerStep] {
        switch line.prefix(4).uppercased() {
        case "EHLO": return [.send("250-mx.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n")]
        case "MAIL", "RSET", "NOOP": return [.send("250 2.1.0 ok\r\n")]
        case "RCPT": return [.send(line.contains("refused") ? "550 5.1.1 no such user\r\n" : "250 2.1.5 ok\r\n")]
        case "DATA": return [.send("354 go ahead\r\n")]
        case "QUIT": return [.send("221 2.0.0 bye\r\n"), .close]
        default: return [.send("502 5.5.2 unknown\r\n")]
        }
    }

    static func body(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test("a pipelined transaction: the commands, the body as written and one result per recipient; QUIT at the end")
    func pipelinedTransaction() async throws {
        let server = try await ScriptedSMTPServer.start(.init(respond: Self.answer))
        let endpoint = SMTPEndpoint.tcp(host: "127.0.0.1", port: server.port)
        let results = try await SMTPConnection.withConnection(
            to: endpoint, configuration: Self.configuration, tlsContext: nil, timeouts: Self.timeouts
        ) { conn -> [SMTPClientStateMachine.RecipientResult] in
            #expect(conn.capabilities.pipelining)
            #expect(!conn.isEncrypted)
            let step = try await conn.beginTransaction(
                sender: "a@x.test", recipients: ["b@y.test", "c@y.test"], size: nil, needsUTF8: false, eightBit: true)
            #expect(step == .sendBody)
            try await conn.writeBody(Self.body("Subject: hi\r\n\r\n..dot\r\n"))
            try await conn.writeBody(Self.body("last line\r\n.\r\n"))
            let results = try await conn.bodySent()
            await conn.quit()
            return results
        }
        await server.stop()
        #expect(results.map(\.recipient) == ["b@y.test", "c@y.test"])
        #expect(results.allSatisfy { $0.status == .accepted && $0.step == .endOfData })
        #expect(
            server.lines == [
                "EHLO client.test", "MAIL FROM:<a@x.test> BODY=8BITMIME", "RCPT TO:<b@y.test>", "RCPT TO:<c@y.test>",
                "DATA", "NOOP", "QUIT",
            ])
        #expect(server.bodies == [Self.body("Subject: hi\r\n\r\n..dot\r\nlast line\r\n")])
    }

    @Test(
        "354 after every pipelined RCPT was refused: the connection ends the DATA with a lone dot, the next transaction goes through"
    )
    func loneDotAfterAllRefused() async throws {
        let server = try await ScriptedSMTPServer.start(
            .init(
                respond: Self.answer,
                endOfData: { body in
                    [.send(body.isEmpty ? "554 5.5.1 no valid recipients\r\n" : "250 2.0.0 queued\r\n")]
                }))
        let endpoint = SMTPEndpoint.tcp(host: "127.0.0.1", port: server.port)
        try await SMTPConnection.withConnection(
            to: endpoint, configuration: Self.configuration, tlsContext: nil, timeouts: Self.timeouts
        ) { conn in
            let first = try await conn.beginTransaction(
                sender: "a@x.test", recipients: ["refused@y.test"], size: nil, needsUTF8: false, eightBit: false)
            let refusal = SMTPReply(code: 550, lines: ["5.1.1 no such user"])
            #expect(
                first
                    == .complete([
                        .init(recipient: "refused@y.test", status: .permanentFailure, reply: refusal, step: .rcptTo)
                    ]))
            #expect(conn.state == .ready)
            let second = try await conn.beginTransaction(
                sender: "a@x.test", recipients: ["b@y.test"], size: nil, needsUTF8: false, eightBit: false)
            #expect(second == .sendBody)
            try await conn.writeBody(Self.body("hello\r\n.\r\n"))
            #expect(try await conn.bodySent().map(\.status) == [.accepted])
        }
        await server.stop()
        #expect(server.bodies == [[], Self.body("hello\r\n")], "the first DATA was ended by a lone dot")
        #expect(server.lines.filter { $0.hasPrefix("MAIL") }.count == 2)
    }

    @Test(
        "STARTTLS: replies that came in clear text with the 220 are discarded; EHLO again over TLS, its capabilities count"
    )
    func startTLSDiscardsClearText() async throws {
        let cert = try TestCertificate.get()
        let hellos = NIOLockedValueBox(0)
        let server = try await ScriptedSMTPServer.start(
            .init(respond: { line in
                switch line.prefix(4).uppercased() {
                case "EHLO":
                    let n = hellos.withLockedValue {
                        $0 += 1; return $0
                    }
                    return [
                        .send(
                            n == 1
                                ? "250-mx.test\r\n250 STARTTLS\r\n"
                                : "250-mx.test\r\n250-PIPELINING\r\n250 AUTH PLAIN\r\n")
                    ]
                case "STAR":
                    // One write, so the client reads the injected lines with the 220, in clear text. (Clear text
                    // arriving after the client put TLS in front fails the handshake, as it should.)
                    return [.send("220 2.0.0 ready\r\n250-injected\r\n250 AUTH INJECTED\r\n"), .startTLS]
                default: return Self.answer(line)
                }
            }), tls: try cert.serverContext())
        let context = try TLSContextFactory.makeContext(TLSClientOptions(trustRootsFile: cert.certificateFile))
        var configuration = Self.configuration
        configuration.security = .startTLS
        try await SMTPConnection.withConnection(
            to: .tcp(host: "127.0.0.1", port: server.port), configuration: configuration, tlsContext: context,
            timeouts: Self.timeouts
        ) { conn in
            #expect(conn.isEncrypted)
            #expect(conn.state == .ready)
            #expect(
                conn.capabilities.keywords["AUTH"] == ["PLAIN"], "the capabilities announced over TLS, nothing injected"
            )
            #expect(conn.capabilities.pipelining)
            await conn.quit()
        }
        await server.stop()
        #expect(server.lines == ["EHLO client.test", "STARTTLS", "EHLO client.test", "QUIT"])
    }

    @Test("a greeting that never comes: a time-out naming the phase")
    func greetingTimeout() async throws {
        let server = try await ScriptedSMTPServer.start(.init(greeting: nil, respond: Self.answer))
        let timeouts = SMTPConnection.Timeouts(connect: .seconds(10), cap: .milliseconds(300))
        do {
            try await SMTPConnection.withConnection(
                to: .tcp(host: "127.0.0.1", port: server.port), configuration: Self.configuration, tlsContext: nil,
                timeouts: timeouts
            ) { _ -> Void in Issue.record("the session came up without a greeting") }
        } catch let e as SMTPTransportError {
            #expect(e.kind == .timeout)
            #expect(e.phase == "waiting for the greeting")
            #expect(e.description.contains("no reply within 0.3 s"), "\(e)")
        }
        await server.stop()
    }

    @Test("nobody listening: connection refused, while connecting")
    func connectionRefused() async throws {
        // A port bound but not listening refuses connections, and no other socket can take it meanwhile (a port just
        // closed could be taken by a parallel test's server, or be a client's own source port: a self-connect).
        let (fd, port) = try boundPort()
        defer { close(fd) }
        do {
            try await SMTPConnection.withConnection(
                to: .tcp(host: "127.0.0.1", port: port), configuration: Self.configuration, tlsContext: nil,
                timeouts: Self.timeouts
            ) { _ -> Void in Issue.record("connected to a closed port") }
        } catch let e as SMTPTransportError {
            #expect(e.kind == .connectionRefused)
            #expect(e.phase == "connecting")
        }
    }
}

/// A TCP socket bound to 127.0.0.1 on a free port, not listening: connections to it are refused while it is open.
func boundPort() throws -> (fd: Int32, port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestError("socket() failed") }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let rc = withUnsafeMutablePointer(to: &address) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa -> Int32 in
            guard bind(fd, sa, length) == 0 else { return -1 }
            return getsockname(fd, sa, &length)
        }
    }
    guard rc == 0 else {
        close(fd)
        throw TestError("cannot bind a port")
    }
    return (fd, Int(UInt16(bigEndian: address.sin_port)))
}
