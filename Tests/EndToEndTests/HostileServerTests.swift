import Foundation
import MailTestKit
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// What a real server cannot be made to do, from a small scripted server: each has a defined outcome.
@Suite("Hostile or broken POP3 servers")
struct HostileServerTests {
    struct Case: Sendable, CustomStringConvertible {
        var mode: String
        var tls: String
        var exit: Int32
        var fragment: String
        var description: String { self.mode }
    }

    static let cases: [Case] = [
        Case(mode: "stls-err", tls: "starttls", exit: 76, fragment: "refused STLS"),
        Case(mode: "login-delay", tls: "none", exit: 75, fragment: "LOGIN-DELAY"),
        Case(mode: "sys-temp", tls: "none", exit: 75, fragment: "SYS/TEMP"),
        Case(mode: "drop-mid-retr", tls: "none", exit: 69, fragment: "closed the connection"),
        Case(mode: "garbage", tls: "none", exit: 76, fragment: "invalid status line"),
        Case(mode: "long-line", tls: "none", exit: 76, fragment: "longer than"),
    ]

    @Test(
        "RFC 5034: an initial response that would make the AUTH line exceed 255 octets goes in a second step",
        .fault(
            .pop3, "server refuses AUTH lines over 255 octets (RFC 5034, as Office 365); a 400-octet OAuth2 token",
            expect: "exit 0; message delivered; AUTH XOAUTH2 sent bare, the token sent in a second step"))
    func authLineLimit() throws {
        let f = try PopfetchFixture()
        let server = try ScriptedServer.start(.pop3, mode: "strict-255", in: f)
        defer { server.stop() }
        let port = server.port
        let log = server.output
        let token = String(repeating: "t", count: 400)
        try f.writeConfig(
            extra: "auth = \"xoauth2\"\noauth_token_command = \"echo \(token)\"", port: port, timeout: "5s")
        let r = try f.poll()
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try f.delivered().count == 1)
        let sent = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(sent.contains("AUTH XOAUTH2\r\n"), "the AUTH line went without the initial response")
    }

    @Test(
        "defined outcome, nothing delivered, no credential sent where TLS was required",
        .fault(
            .pop3, "STLS refused; PASS answered [LOGIN-DELAY] or [SYS/TEMP]; drop mid-RETR; garbage; 20 KB line",
            expect: "exit 76, 75 or 69 naming the cause; nothing delivered; no credential after refused STLS"),
        arguments: cases)
    func hostile(_ c: Case) throws {
        let f = try PopfetchFixture()
        let server = try ScriptedServer.start(.pop3, mode: c.mode, in: f)
        defer { server.stop() }
        let port = server.port
        let log = server.output
        try f.writeConfig(tls: c.tls, port: port, timeout: "5s")
        let r = try f.poll()
        #expect(r.status == c.exit, "\(c.mode): \(r.stderr)")
        #expect(r.stderr.contains(c.fragment), "\(c.mode): \(r.stderr)")
        #expect(try f.delivered().isEmpty, "no truncated or partial message is ever delivered")
        let sent = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        if c.tls == "starttls" {
            #expect(
                !sent.contains("USER") && !sent.contains("PASS") && !sent.contains("AUTH"),
                "no credential after a refused STLS: \(sent)")
        }
        #expect(!r.stderr.contains(f.user.password))
    }
}
