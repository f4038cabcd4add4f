import Foundation
import MailTestKit
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("MDA failures keep mail on the server")
struct DeliveryFailureTests {
    @Test(
        "MDA exit 75 and exit 1: kept on the server, delivered at the next poll once the MDA succeeds",
        .fault(
            .mda, "MDA exits 75 or 1",
            expect: "exit 75; nothing deleted; once the MDA works, next poll exits 0 and delivers all 3 unchanged"),
        arguments: [75, 1])
    func failingMDAKeepsMessage(code: Int) throws {
        let f = try PopfetchFixture()
        let corpus = Corpus.messages(3, seed: 20 + code)
        try f.user.deliver(corpus)
        try f.writeConfig()
        try "\(code)".write(toFile: f.mdaExitFile, atomically: true, encoding: .utf8)
        let r1 = try f.poll()
        #expect(r1.status == 75, "any message not delivered makes poll exit 75: \(r1.stderr)")
        #expect(try f.delivered().isEmpty)
        #expect(f.user.messageCount() == 3, "nothing deleted while the MDA fails")
        #expect(r1.stderr.contains(code == 75 ? "deferred" : "delivery failed"))
        // status says why the poll was partial, not only that it was.
        let st = try popfetch(["--config", f.configPath, "--state", f.statePath, "status"])
        #expect(st.stdout.contains("3 not delivered; the latest:"), "\(st.stdout)")
        #expect(st.stdout.contains("\(code)"), "the MDA's exit status is named: \(st.stdout)")

        try FileManager.default.removeItem(atPath: f.mdaExitFile)
        let r2 = try f.poll()
        #expect(r2.status == 0, "\(r2.stderr)")
        do {
            let same = sameMessages(try f.delivered(), corpus)
            #expect(same, "delivered messages differ from the originals")
        }
        #expect(f.user.messageCount() == 0)
    }

    @Test(
        "an MDA's stderr with a line break cannot add a line of its own to status",
        .fault(
            .mda, "the MDA writes 'refused\\nother: ok' to stderr and exits 1",
            expect: "status shows the break escaped (\\x0a) inside the account's error; no line begins 'other:'"))
    func mdaStderrCannotForgeStatusLines() throws {
        let f = try PopfetchFixture()
        try f.user.deliver(Corpus.messages(1, seed: 31))
        let mda = f.directory + "/forging-mda"
        try writeExecutable(
            "#!/bin/sh\ncat >/dev/null\nprintf 'refused\\nother: ok, nothing wrong\\n' >&2\nexit 1\n", to: mda)
        try f.writeConfig(mda: mda)
        #expect(try f.poll().status != 0)
        let s = try popfetch(["--config", f.configPath, "--state", f.statePath, "status"])
        let lines = s.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        #expect(!lines.contains { $0.hasPrefix("other:") }, "\(s.stdout)")
        #expect(s.stdout.contains("refused\\x0aother: ok"), "\(s.stdout)")
    }

    @Test(
        "after max_attempts a message is marked failed, skipped, and `retry` brings it back",
        .fault(
            .mda, "MDA exits 1 at 2 polls (max_attempts = 2)",
            expect: "marked failed, then skipped and kept on the server; after retry, delivered and deleted"))
    func maxAttemptsThenRetry() throws {
        let f = try PopfetchFixture()
        let corpus = Corpus.messages(1, seed: 30)
        try f.user.deliver(corpus)
        try f.writeConfig(extra: "max_attempts = 2")
        try "1".write(toFile: f.mdaExitFile, atomically: true, encoding: .utf8)
        _ = try f.poll()
        let r2 = try f.poll()
        #expect(r2.stderr.contains("marked failed"), "\(r2.stderr)")
        // The MDA works again, but the message is marked failed: it is skipped.
        try FileManager.default.removeItem(atPath: f.mdaExitFile)
        let r3 = try f.poll()
        #expect(r3.status == 0)
        #expect(r3.stderr.contains("skipped=1"), "\(r3.stderr)")
        #expect(try f.delivered().isEmpty)
        #expect(f.user.messageCount() == 1)

        let retry = try popfetch([
            "--config", f.configPath, "--state", f.statePath, "retry", "--account", f.accountName,
        ])
        #expect(retry.status == 0, "\(retry.stderr)")
        #expect(retry.stdout.contains("1 failed message"))
        let r4 = try f.poll()
        #expect(r4.status == 0, "\(r4.stderr)")
        do {
            let same = sameMessages(try f.delivered(), corpus)
            #expect(same, "delivered messages differ from the originals")
        }
        #expect(f.user.messageCount() == 0)
    }

    @Test(
        "an MDA that runs past mda_timeout is killed and the message kept",
        .fault(
            .mda, "MDA hangs 30 s (mda_timeout = 1s)",
            expect: "poll ends within 15 s, reporting the MDA killed; message stays on the server"))
    func mdaTimeout() throws {
        let f = try PopfetchFixture()
        try f.user.deliver(Corpus.messages(1, seed: 31))
        let slow = f.directory + "/slow-mda"
        try writeExecutable("#!/bin/sh\ncat >/dev/null\nsleep 30\n", to: slow)
        try f.writeConfig(extra: "mda_timeout = \"1s\"", mda: slow)
        let start = Date()
        let r = try f.poll()
        #expect(Date().timeIntervalSince(start) < 15)
        #expect(r.stderr.contains("was killed") || r.stderr.contains("longer than"), "\(r.stderr)")
        #expect(f.user.messageCount() == 1)
    }
}

@Suite("Connection and login failures: clear error, documented exit code, nothing touched")
struct FailureModeTests {
    @Test(
        "wrong password: exit 77, nothing delivered, nothing deleted",
        .fault(
            .config, "wrong password (STLS, default mechanism)",
            expect: "exit 77 'authentication failed'; password not printed; nothing delivered or deleted"))
    func wrongPassword() throws {
        let f = try PopfetchFixture()
        try f.user.deliver(Corpus.messages(2, seed: 40))
        try f.writeConfig(tls: "starttls", password: "not-the-password")
        let r = try f.poll()
        #expect(r.status == 77, "\(r.stderr)")
        #expect(r.stderr.contains("authentication failed"))
        #expect(!r.stderr.contains("not-the-password"), "the password must never be logged")
        #expect(try f.delivered().isEmpty)
        #expect(f.user.messageCount() == 2)
    }

    @Test(
        "connection refused: exit 69",
        .fault(
            .pop3, "connection refused (nothing listens on the port)",
            expect: "exit 69 'connection refused by HOST:PORT', in plain words, once"))
    func connectionRefused() throws {
        let f = try PopfetchFixture()
        // A port nobody listens on: bind one, note it, close it.
        let port = try freePort()
        try f.writeConfig(port: port)
        let r = try f.poll()
        #expect(r.status == 69, "\(r.stderr)")
        #expect(r.stderr.contains("poll failed: connection refused by 127.0.0.1:\(port)"), "\(r.stderr)")
        #expect(!r.stderr.contains("errno") && !r.stderr.contains("listed=0"), "no NIO words, no zero counters")
        // `check` prints it once (it used to be logged and printed).
        let c = try popfetch(["--config", f.configPath, "--state", f.statePath, "check"])
        #expect(c.status == 69)
        let said = (c.stdout + c.stderr).components(separatedBy: "connection refused by").count - 1
        #expect(said == 1, "\(c.stdout)\(c.stderr)")
    }

    @Test(
        "implicit TLS to a clear-text POP3 port: said in plain words, with what to change; no BoringSSL text",
        .fault(
            .pop3, "tls = \"implicit\" on the clear-text POP3 port (the server greets in clear text)",
            expect: "exit 76 'does not speak TLS on this port; use tls = \"starttls\" ... or port 995'"))
    func implicitTLSOnClearPort() throws {
        let f = try PopfetchFixture()
        try f.writeConfig(tls: "implicit", port: f.pop3.pop3Port)
        let r = try f.poll()
        #expect(r.status == 76, "\(r.stderr)")
        // Dovecot greets in clear text and hangs up on the handshake; which of the two the client sees first
        // depends on timing, and each is said in plain words, with the same hint.
        #expect(
            r.stderr.contains("the server does not speak TLS on this port")
                || r.stderr.contains("the server closed the connection during the TLS handshake"), "\(r.stderr)")
        #expect(r.stderr.contains("use tls = \"starttls\" for this port, or port 995"), "\(r.stderr)")
        #expect(!r.stderr.contains("WRONG_VERSION") && !r.stderr.contains(".build/"), "\(r.stderr)")
    }

    @Test(
        "unknown host: exit 68 (resolver pointed at loopback in a private mount namespace)",
        .fault(.config, "host name does not resolve", expect: "exit 68 'cannot resolve'"))
    func unknownHost() throws {
        let f = try PopfetchFixture()
        try f.writeConfig(extra: "allow_insecure_auth = true", host: "no-such-host.invalid")
        let resolv = f.directory + "/resolv.conf"
        try "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n".write(
            toFile: resolv, atomically: true, encoding: .utf8)
        // Never let a lookup leave the machine: the test resolver is 127.0.0.1, where nothing answers.
        let script =
            "mount --bind \(resolv) /etc/resolv.conf && exec \(Package.binary) --config \(f.configPath) "
            + "--state \(f.statePath) poll"
        let r = try runProgram(["/usr/bin/unshare", "-m", "/bin/sh", "-c", script])
        #expect(r.status == 68, "\(r.stderr)")
        #expect(r.stderr.contains("cannot resolve"))
    }

    @Test(
        "tls = starttls against a server without STLS: stops before any credential, exit 76",
        .fault(
            .pop3, "tls = starttls, but the server (Dovecot without TLS) offers no STLS",
            expect: "exit 76 'does not offer STLS'; no login attempted; message stays on the server"))
    func stlsNotOffered() throws {
        let plain = try DovecotServer(ssl: false)
        let f = try PopfetchFixture(server: plain)
        try f.user.deliver(Corpus.messages(1, seed: 41))
        try f.writeConfig(tls: "starttls")
        let r = try f.poll()
        #expect(r.status == 76, "\(r.stderr)")
        #expect(r.stderr.contains("does not offer STLS"))
        #expect(f.user.messageCount() == 1)
        let log = (try? String(contentsOfFile: plain.directory + "/run/dovecot.log", encoding: .utf8)) ?? ""
        #expect(!log.contains("user=<\(f.user.name)>"), "no login may have been attempted")
    }

    @Test(
        "[IN-USE]: a locked mailbox is a temporary failure (75), not a wrong password",
        .fault(
            .pop3, "mailbox locked by another session (Dovecot -ERR [IN-USE])",
            expect: "exit 75 naming the lock, not an auth failure; nothing delivered; both messages stay"))
    func mailboxInUse() throws {
        let f = try PopfetchFixture()
        try f.user.deliver(Corpus.messages(2, seed: 42))
        // Dovecot waits about 10 s for the session lock before it answers -ERR [IN-USE].
        try f.writeConfig(timeout: "40s")
        // Hold a session on the mailbox (Dovecot runs with pop3_lock_session = yes).
        let holder = try LineClient(port: f.server.pop3Port)
        _ = try holder.readLine()
        try holder.send("USER \(f.user.name)\r\n")
        _ = try holder.readLine()
        try holder.send("PASS \(f.user.password)\r\n")
        let ok = try holder.readLine()
        #expect(ok.hasPrefix("+OK"), "holder login: \(ok)")
        let r = try f.poll()
        holder.close()
        #expect(r.status == 75, "\(r.stderr)")
        #expect(r.stderr.contains("IN-USE") || r.stderr.contains("locked"))
        #expect(!r.stderr.contains("authentication failed"))
        #expect(try f.delivered().isEmpty)
        #expect(f.user.messageCount() == 2)
    }
}

func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let rc = withUnsafeMutablePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sp -> Int32 in
            guard bind(fd, sp, len) == 0 else { return -1 }
            return getsockname(fd, sp, &len)
        }
    }
    guard rc == 0 else { throw TestFailure("cannot bind") }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// A minimal blocking line client for holding a POP3 session open in tests.
final class LineClient {
    let fd: Int32
    private var pending: [UInt8] = []

    init(port: Int) throws {
        self.fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        let rc = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(self.fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else { throw TestFailure("connect failed") }
    }

    func send(_ s: String) throws {
        let bytes = Array(s.utf8)
        let n = bytes.withUnsafeBytes { Glibc.send(self.fd, $0.baseAddress, $0.count, 0) }
        guard n == bytes.count else { throw TestFailure("send failed") }
    }

    func readLine() throws -> String {
        while true {
            if let i = self.pending.firstIndex(of: 10) {
                let line = Array(self.pending[..<i])
                self.pending.removeFirst(i + 1)
                return String(decoding: line, as: UTF8.self)
            }
            var buf = [UInt8](repeating: 0, count: 4096)
            let n = buf.withUnsafeMutableBytes { recv(self.fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { throw TestFailure("connection closed") }
            self.pending += buf[0..<n]
        }
    }

    func close() { Glibc.close(self.fd) }
}
