import Foundation
import MailTestKit
import Testing

/// Issue 12: `--log-level trace` shows the POP3 dialogue, with every secret masked.
@Suite("Protocol trace")
struct ProtocolTraceTests {
    @Test("--log-level trace shows the POP3 dialogue line by line; the password never appears")
    func pop3Dialogue() throws {
        let f = try PopfetchFixture()
        let mail = Corpus.messages(2, seed: 124)
        try f.user.deliver(mail)
        try f.writeConfig(extra: "keep = false\nauth = \"user\"")
        let r = try f.poll(["--log-level", "trace"])
        #expect(r.status == 0, "\(r.stderr)")
        for line in [
            "< +OK Dovecot", "> CAPA", "> USER \(f.user.name)", "> PASS ********", "UIDL lines and .",
            "LIST lines and .",
            "> RETR 1", "(the message: ", "> DELE 1", "> QUIT",
        ] {
            #expect(r.stderr.contains(line), "trace line \(line.debugDescription) missing:\n\(r.stderr)")
        }
        #expect(!r.stderr.contains(f.user.password), "the password in the trace")
        // At the default level the dialogue is not shown.
        try f.user.deliver(mail)
        let quiet = try f.poll()
        #expect(!quiet.stderr.contains("> RETR"), "\(quiet.stderr)")
    }

    @Test("SCRAM in the trace: the client's answers and the server's challenges (salt, signature) both masked")
    func scramMasked() throws {
        let f = try PopfetchFixture()
        try f.user.deliver(Corpus.messages(1, seed: 127))
        try f.writeConfig(extra: "auth = \"scram-sha-256\"")
        let r = try f.poll(["--log-level", "trace"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("> AUTH SCRAM-SHA-256 ********"), "\(r.stderr)")
        let challenges = r.stderr.components(separatedBy: "< + ").dropFirst()
        #expect(challenges.count >= 2, "\(r.stderr)")
        #expect(challenges.allSatisfy { $0.hasPrefix("******** (") }, "a challenge shown:\n\(r.stderr)")
        #expect(!r.stderr.contains(f.user.password))
    }

    @Test("--log-level trace shows the SMTP dialogue with Postfix too, lines marked MTA; the body by its size")
    func smtpDialogue() throws {
        let postfix = try PostfixServer.get()
        let rcpt = postfix.newRecipient()
        let f = try PopfetchFixture()
        try f.user.deliver(Corpus.messages(1, seed: 125))
        try f.writeConfig(extra: "smtp = \"127.0.0.1:\(postfix.smtpPort)\"\nrecipient = \"\(rcpt)\"", mda: "")
        let r = try f.poll(["--log-level", "trace"])
        #expect(r.status == 0, "\(r.stderr)")
        for line in [
            "MTA < 220 ", "MTA > EHLO ", "MTA < 250", "MTA > RCPT TO:<\(rcpt)>", "MTA > DATA", "MTA < 354",
            "MTA > (the message: ", "MTA > QUIT",
        ] {
            #expect(r.stderr.contains(line), "trace line \(line.debugDescription) missing:\n\(r.stderr)")
        }
    }

    @Test("check --capabilities (serverinfo): greeting, TLS version and certificate, CAPA before and after STLS")
    func serverInfo() throws {
        let f = try PopfetchFixture()
        try f.writeConfig(tls: "starttls")
        let r = try popfetch(["--config", f.configPath, "--state", f.statePath, "check", "--capabilities"])
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        for line in [
            "test: 127.0.0.1:", "(tls starttls)", "  greeting       +OK", "  TLS            TLS 1.",
            "certificate verified", "  certificate    names: ", "fingerprint sha256:", "    subject      CN=localhost",
            "    issuer       CN=popfetch test CA", "  capabilities   ",
            "  before STLS    ", "STLS", "  SASL           ", "PLAIN", "  PIPELINING     yes", "  EXPIRE         ",
            "  LOGIN-DELAY    ",
        ] {
            #expect(r.stdout.contains(line), "\(line.debugDescription) missing:\n\(r.stdout)")
        }
        let alias = try popfetch(["--config", f.configPath, "--state", f.statePath, "serverinfo"])
        // The same, but for the greeting (its APOP timestamp differs per connection).
        let withoutGreeting = { (s: String) in s.split(separator: "\n").filter { !$0.contains("greeting") } }
        #expect(alias.status == 0 && withoutGreeting(alias.stdout) == withoutGreeting(r.stdout), "\(alias.stdout)")
        // A server that cannot be reached: said, with its exit status.
        try f.writeConfig(port: try freePort())
        let down = try popfetch(["--config", f.configPath, "--state", f.statePath, "serverinfo"])
        #expect(down.status == 69)
        #expect(down.stdout.contains("error: connection refused by 127.0.0.1:"), "\(down.stdout)")
    }
}
