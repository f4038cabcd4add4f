import MailTestKit
import NIOCore
import SMTPCore
import Testing

@testable import MailTransport

/// Adversarial review of issue 10: a reply that came before the body was sent is not the answer to its dot.
@Suite("SMTPConnection: a reply out of turn", .offThePool)
struct SMTPConnectionEarlyReplyTests {
    @Test("a 250 sent with the 354, before the body, is not taken as the end-of-data reply")
    func premature250() async throws {
        let server = try await ScriptedSMTPServer.start(
            .init(
                respond: { line in
                    line.prefix(4).uppercased() == "DATA"
                        ? [.send("354 go ahead\r\n250 2.0.0 premature\r\n")] : SMTPConnectionTests.answer(line)
                },
                endOfData: { _ in [.send("554 5.7.1 refused after the dot\r\n")] }))
        let outcome: Result<[SMTPClientStateMachine.RecipientResult], any Error> = await Result(catching: {
            try await SMTPConnection.withConnection(
                to: .tcp(host: "127.0.0.1", port: server.port), configuration: SMTPConnectionTests.configuration,
                tlsContext: nil, timeouts: SMTPConnectionTests.timeouts
            ) { conn in
                let step = try await conn.beginTransaction(
                    sender: "a@x.test", recipients: ["b@y.test"], size: nil, needsUTF8: false, eightBit: false)
                #expect(step == .sendBody)
                try await conn.writeBody(Array("hello\r\n.\r\n".utf8))
                return try await conn.bodySent()
            }
        })
        await server.stop()
        if case .success(let results) = outcome {
            #expect(
                !results.contains { $0.status == .accepted },
                "the server refused the message (554 after its dot), yet popfetch counts it accepted: \(results)")
        }
    }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
