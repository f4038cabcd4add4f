import Foundation
import MailTestKit
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 8, items 4-7, against the scripted server: numbers, 8-bit UIDLs, auth fallback, UTF8.
@Suite("Server quirks: huge numbers, 8-bit UIDLs, auth = auto fallback, UTF8")
struct ServerQuirkTests {

    /// Polls the scripted server in `mode` once; returns the result and what the client sent.
    static func poll(mode: String, extra: String = "") throws -> (PopfetchFixture, RunResult, String) {
        let f = try PopfetchFixture()
        let server = try ScriptedServer.start(.pop3, mode: mode, in: f)
        defer { server.stop() }
        let port = server.port
        let log = server.output
        try f.writeConfig(extra: extra, port: port, timeout: "5s")
        let r = try f.poll(["-v"])
        return (f, r, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
    }

    @Test(
        "CAPA LOGIN-DELAY 100000000000 does not crash popfetch poll",
        .fault(.pop3, "CAPA announces LOGIN-DELAY 100000000000", expect: "no crash: exit 0; the message delivered"))
    func hugeLoginDelay() throws {
        let (f, r, _) = try Self.poll(mode: "huge-login-delay")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try f.delivered().count == 1)
    }

    @Test(
        "one message with an 8-bit UIDL: all three are delivered, and none again at the next poll",
        .fault(
            .pop3, "one UIDL of three holds 8-bit octets (0xE9, 0xFF)",
            expect: "exit 0; all 3 delivered (keep = true); a second poll exits 0 and delivers none again"))
    func eightBitUIDL() throws {
        let f = try PopfetchFixture()
        let server = try ScriptedServer.start(.pop3, mode: "uidl-8bit", in: f)
        defer { server.stop() }
        let port = server.port
        try f.writeConfig(extra: "keep = true", port: port, timeout: "5s")
        let r1 = try f.poll()
        #expect(r1.status == 0, "\(r1.stderr)")
        #expect(try f.delivered().count == 3, "\(r1.stderr)")
        let r2 = try f.poll()
        #expect(r2.status == 0, "\(r2.stderr)")
        #expect(try f.delivered().count == 3, "the escaped key is stable: nothing delivered twice")
    }

    @Test(
        "auto: CRAM-MD5 refused without a response code, then USER/PASS logs in (Courier)",
        .fault(
            .pop3, "CRAM-MD5 offered, then refused with a bare -ERR (Courier); auth = auto",
            expect: "exit 0 after falling back to USER/PASS; message delivered; password not printed"))
    func cramFallback() throws {
        let (f, r, sent) = try Self.poll(mode: "cram-fallback")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try f.delivered().count == 1)
        #expect(sent.contains("AUTH CRAM-MD5"), "\(sent)")
        #expect(sent.contains("USER "), "\(sent)")
        #expect(!r.stderr.contains(f.user.password))
    }

    @Test(
        "auto: APOP refused without a response code, then USER/PASS logs in (solid-pop3d)",
        .fault(
            .pop3, "APOP timestamp in the greeting, APOP refused with a bare -ERR (solid-pop3d); auth = auto",
            expect: "exit 0 after falling back to USER/PASS; message delivered"))
    func apopFallback() throws {
        let (f, r, sent) = try Self.poll(mode: "apop-fallback")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try f.delivered().count == 1)
        #expect(sent.contains("APOP "), "\(sent)")
        #expect(sent.contains("USER "), "\(sent)")
    }

    @Test(
        "auto: -ERR [AUTH] ends the login at once; no other mechanism is tried",
        .fault(
            .pop3, "AUTH CRAM-MD5 answered -ERR [AUTH]; auth = auto",
            expect: "exit 77 after one AUTH; no USER or PASS sent; nothing delivered"))
    func authCodeStops() throws {
        let (f, r, sent) = try Self.poll(mode: "auth-code")
        #expect(r.status == 77, "\(r.stderr)")
        #expect(sent.components(separatedBy: "AUTH ").count == 2, "one AUTH: \(sent)")
        #expect(!sent.contains("USER") && !sent.contains("PASS"), "\(sent)")
        #expect(try f.delivered().isEmpty)
    }

    @Test(
        "-ERR [SYS/PERM] after PASS is a server error in the server's words, not an authentication failure",
        .fault(
            .pop3, "PASS answered -ERR [SYS/PERM] mailbox is damaged",
            expect: "exit 76 quoting the server's text; not reported as an authentication failure"))
    func sysPermIsNotAuth() throws {
        let (_, r, _) = try Self.poll(mode: "sys-perm")
        #expect(r.status == 76, "\(r.stderr)")
        #expect(r.stderr.contains("mailbox is damaged"), "\(r.stderr)")
        #expect(!r.stderr.contains("authentication failed"), "\(r.stderr)")
    }

    @Test(
        "a server that quotes the password in its refusal: the password is masked in the log, status and the state",
        .fault(
            .pop3, "PASS answered -ERR [SYS/TEMP] quoting the password, as sent and in base64",
            expect: "exit 75; the trace, the error, status and status --json show ******** and never the password"))
    func echoedPasswordMasked() throws {
        try self.echoedPasswordMasked(mode: "echo-pass", status: 75, said: "you sent PASS ********")
        try self.echoedPasswordMasked(mode: "echo-retr", status: 75, said: "password is ********")
    }

    func echoedPasswordMasked(mode: String, status expected: Int32, said: String) throws {
        let f = try PopfetchFixture()
        let server = try ScriptedServer.start(.pop3, mode: mode, in: f)
        defer { server.stop() }
        try f.writeConfig(port: server.port, timeout: "5s")
        let r = try popfetch(["--config", f.configPath, "--state", f.statePath, "--log-level", "trace", "poll"])
        #expect(r.status == expected, "\(mode): \(r.stderr)")
        #expect(r.stderr.contains(said), "\(mode): \(r.stderr)")
        let password = f.user.password
        let encoded = Data(password.utf8).base64EncodedString()
        let status = try popfetch(["--config", f.configPath, "--state", f.statePath, "status"])
        let json = try popfetch(["--config", f.configPath, "--state", f.statePath, "status", "--json"])
        for (name, text) in [("poll", r.stdout + r.stderr), ("status", status.stdout), ("json", json.stdout)] {
            #expect(!text.contains(password) && !text.contains(encoded), "\(name): \(text)")
        }
        #expect(status.stdout.contains("********"), "\(status.stdout)")
        let state = try Data(contentsOf: URL(fileURLWithPath: f.statePath))
        let wal = (try? Data(contentsOf: URL(fileURLWithPath: f.statePath + "-wal"))) ?? Data()
        for bytes in [state, wal] {
            #expect(bytes.range(of: Data(password.utf8)) == nil, "the password is in the state database")
        }
    }

    @Test(
        "UTF8 is sent in the AUTHORIZATION state (before login) when CAPA offers it, and not otherwise",
        arguments: [("utf8", true), ("login-ok", false)])
    func utf8(mode: String, offered: Bool) throws {
        let (f, r, sent) = try Self.poll(mode: mode)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try f.delivered().count == 1)
        let lines = sent.split(separator: "\r\n").map(String.init)
        if offered {
            let user = try #require(lines.firstIndex { $0.hasPrefix("USER") })
            let utf8 = try #require(lines.firstIndex(of: "UTF8"), "\(lines.filter { !$0.hasPrefix("PASS") })")
            #expect(utf8 < user, "RFC 6856: UTF8 is valid in the AUTHORIZATION state, so before the login")
        } else {
            #expect(!lines.contains("UTF8"))
        }
    }
}
