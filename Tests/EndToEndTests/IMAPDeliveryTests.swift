import Foundation
import MailTestKit
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// IMAP delivery (APPEND) into a real Dovecot IMAP server: the same private Dovecot that serves POP3, with a second
/// user as the IMAP mailbox (its Maildir is read back directly).
@Suite("IMAP delivery through Dovecot")
struct IMAPDeliveryTests {
    /// One appended message as Dovecot stored it: its file name, its modification time (Dovecot's Maildir keeps the
    /// internal date there), the X-Popfetch-ID popfetch put on it, and the message without that header and without
    /// popfetch's trace header.
    struct Stored {
        var name: String
        var mtime: Int
        var id: String
        var message: [UInt8]
    }

    static func stored(_ user: MailUser, folder: String? = nil) throws -> [Stored] {
        var out: [Stored] = []
        let root = folder.map { user.maildir + "/." + $0 } ?? user.maildir
        for sub in ["new", "cur"] {
            let dir = root + "/" + sub
            for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
                let path = dir + "/" + name
                var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
                let prefix = Array("X-Popfetch-ID: ".utf8)
                try #require(bytes.starts(with: prefix), "appended message does not start with X-Popfetch-ID")
                let eol = try #require(bytes.firstIndex(of: 10))
                let id = String(decoding: bytes[prefix.count..<eol], as: UTF8.self)
                bytes = Array(bytes[(eol + 1)...])
                var st = stat()
                stat(path, &st)
                out.append(
                    Stored(
                        name: sub + "/" + name, mtime: Int(st.st_mtim.tv_sec), id: id,
                        message: try PopfetchFixture.stripTraceHeader(bytes)))
            }
        }
        return out
    }

    /// One message as the IMAP server gives it back: FETCH FLAGS, INTERNALDATE and BODY.PEEK[].
    struct Fetched {
        var flags: [String]
        var internalDate: Int
        var body: [UInt8]
    }

    /// The folder read back over IMAP (`Scripts/imap-fetch.py`, Python's imaplib).
    static func fetched(_ f: PopfetchFixture, _ user: MailUser, folder: String = "INBOX") throws -> [Fetched] {
        let script = Package.root + "/Tests/MailTestKit/Scripts/imap-fetch.py"
        let r = try runProgram(
            ["/usr/bin/python3", script, String(try Self.imapPort(f)), user.name, user.password, folder])
        try #require(r.status == 0, "imap-fetch.py: \(r.stderr)")
        return try r.stdout.split(separator: "\n").map { line in
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] ?? [:]
            let body = Data(base64Encoded: object["body"] as? String ?? "").map { [UInt8]($0) } ?? []
            return Fetched(
                flags: object["flags"] as? [String] ?? [], internalDate: object["internaldate"] as? Int ?? 0,
                body: body)
        }
    }

    static func delivered(_ user: MailUser, folder: String? = nil) throws -> [[UInt8]] {
        try Self.stored(user, folder: folder).map(\.message)
    }

    static func imapPort(_ f: PopfetchFixture) throws -> Int {
        try #require(f.server.imapPort, "dovecot-imapd is not installed (run scripts/install)")
    }

    static func config(_ url: String, _ target: MailUser, _ more: String = "") -> String {
        """
        imap = "\(url)"
        imap_user = "\(target.name)"
        imap_password = "\(target.password)"
        \(more)
        """
    }

    @Test("byte-exact through APPEND, unread, dated by the Date header; a second poll appends nothing")
    func byteExact() throws {
        let f = try PopfetchFixture()
        let target = try f.server.addUser()
        try f.writeConfig(extra: Self.config("imap://127.0.0.1:\(try Self.imapPort(f))/INBOX", target), mda: "")
        var corpus = (0..<15).map { Corpus.message($0, seed: 130, bareCR: false) }
        // A message with an unusual Date (a folded header, a zone, a comment), and one with none.
        corpus.append(
            Array(
                "From: a@example.org\nDate: Tue, 1 Jul 2003\n 10:52:37 +0200 (CEST)\nSubject: dated\n\nbody\n".utf8))
        corpus.append(Array("From: b@example.org\nSubject: undated\n\nno date here\n".utf8))
        try f.user.deliver(corpus)
        let before = Int(time(nil))
        let r = try f.poll()
        #expect(r.status == 0, "\(r.stderr)")
        let got = try Self.stored(target)
        #expect(sameMessages(got.map(\.message), corpus), "messages appended over IMAP differ from the originals")
        #expect(f.user.messageCount() == 0)
        // Unread: no flags, so Dovecot files them in new/ without ":2,S".
        #expect(got.allSatisfy { !$0.name.contains(":2,") || !$0.name.split(separator: ",").last!.contains("S") })
        // Internal dates: the Date header (2026-11-26 12:00:00 UTC in the corpus), else the time of delivery.
        for s in got {
            let subject = String(decoding: s.message.prefix(400), as: UTF8.self)
            if subject.contains("Subject: dated") {
                #expect(s.mtime == 1_057_049_557, "internal date of the folded Date header")
            } else if subject.contains("Subject: undated") {
                #expect(s.mtime >= before - 1 && s.mtime <= Int(time(nil)) + 1)
            } else {
                #expect(s.mtime == 1_795_694_400)
            }
        }
        // The same, read back over IMAP: BODY.PEEK[] (CRLF) is the original with popfetch's two headers on top,
        // no \Seen flag, INTERNALDATE from the Date header.
        let back = try Self.fetched(f, target)
        #expect(back.count == corpus.count)
        let bodies = try back.map { b -> [UInt8] in
            var lf: [UInt8] = []
            for (i, c) in b.body.enumerated() where !(c == 13 && i + 1 < b.body.count && b.body[i + 1] == 10) {
                lf.append(c)
            }
            let eol = try #require(lf.firstIndex(of: 10))
            #expect(lf.starts(with: Array("X-Popfetch-ID: ".utf8)))
            return try PopfetchFixture.stripTraceHeader(Array(lf[(eol + 1)...]))
        }
        #expect(sameMessages(bodies, corpus), "FETCH BODY.PEEK[] differs from the originals")
        #expect(back.allSatisfy { !$0.flags.contains("\\Seen") }, "\(back.map(\.flags))")
        #expect(back.filter { $0.internalDate == 1_795_694_400 }.count == 15)
        // IDs: one per message, all different.
        #expect(Set(got.map(\.id)).count == got.count && got.allSatisfy { $0.id.utf8.count == 32 })
        let again = try f.poll()
        #expect(again.status == 0)
        #expect(try Self.stored(target).count == corpus.count)
    }

    @Test("IMAPS with the instance CA, and imap:// with STARTTLS; flags as configured")
    func tlsAndFlags() throws {
        let f = try PopfetchFixture()
        let a = try f.server.addUser()
        let imaps = try #require(f.server.imapsPort)
        try f.writeConfig(
            extra: Self.config(
                "imaps://localhost:\(imaps)/", a,
                "imap_ca_file = \"\(f.server.caFile)\"\nimap_flags = [\"\\\\Seen\", \"$Forwarded\"]"), mda: "")
        try f.user.deliver([Corpus.message(1, seed: 131, bareCR: false)])
        let r = try f.poll()
        #expect(r.status == 0, "\(r.stderr)")
        let got = try Self.stored(a)
        #expect(got.count == 1)
        // \Seen (with a keyword): Dovecot files it in cur/ with "S" among the flags.
        #expect(
            got.first?.name.hasPrefix("cur/") == true && got.first?.name.contains(":2,S") == true, "\(got.map(\.name))")

        let b = try f.server.addUser()
        try f.writeConfig(
            extra: Self.config(
                "imap://localhost:\(try Self.imapPort(f))", b,
                "imap_tls = \"starttls\"\nimap_ca_file = \"\(f.server.caFile)\""), mda: "")
        try f.user.deliver([Corpus.message(2, seed: 131, bareCR: false)])
        let trace = try f.poll(["--log-level", "trace"])
        #expect(trace.status == 0, "\(trace.stderr)")
        #expect(try Self.stored(b).count == 1)
        #expect(trace.stderr.contains("STARTTLS"))
        // The password never reaches the trace.
        #expect(!trace.stderr.contains(b.password), "the IMAP password appears in the trace")
    }

    @Test("a CA the certificate does not chain to: nothing is sent, the message stays on the server")
    func untrustedCertificate() throws {
        let f = try PopfetchFixture()
        let target = try f.server.addUser()
        let imaps = try #require(f.server.imapsPort)
        try f.writeConfig(extra: Self.config("imaps://127.0.0.1:\(imaps)/INBOX", target), mda: "")
        try f.user.deliver([Corpus.message(1, seed: 132, bareCR: false)])
        let r = try f.poll()
        #expect(r.status != 0)
        #expect(r.stderr.contains("TLS"), "\(r.stderr)")
        #expect(f.user.messageCount() == 1)
        #expect(try Self.stored(target).isEmpty)
    }

    @Test(
        "over quota (Dovecot's NO [OVERQUOTA]): a temporary failure; the message stays on the server",
        .fault(
            .imap, "IMAP APPEND refused with NO [OVERQUOTA] (real Dovecot quota)",
            expect: "exit 75, OVERQUOTA in the error; status exits 1, outcome partial; the message stays on the server")
    )
    func overQuota() throws {
        let f = try PopfetchFixture()
        let full = MailUser(
            name: "quotafull", password: "secret-quotafull", maildir: f.server.mailDirectory + "/quotafull")
        try f.writeConfig(extra: Self.config("imap://127.0.0.1:\(try Self.imapPort(f))/INBOX", full), mda: "")
        var m = Corpus.message(1, seed: 133, bareCR: false)
        m += Array(repeating: UInt8(ascii: "Q"), count: 4000) + [10]
        try f.user.deliver([m])
        let r = try f.poll()
        #expect(r.status == 75, "\(r.stderr)")
        #expect(r.stderr.contains("OVERQUOTA"), "\(r.stderr)")
        #expect(f.user.messageCount() == 1)
        let status = try popfetch(["--config", f.configPath, "--state", f.statePath, "status"])
        #expect(status.status == 1 && status.stdout.contains("partial"), "\(status.stdout)")
    }

    @Test(
        "a folder that does not exist: kept on the server (TRYCREATE) unless imap_create_folder, which creates it",
        .fault(
            .imap, "IMAP folder missing (NO [TRYCREATE])",
            expect: "without imap_create_folder: exit 75, message kept; with it: folder created, delivered once"))
    func missingFolder() throws {
        let f = try PopfetchFixture()
        let target = try f.server.addUser()
        // Dovecot's Maildir++ separates levels with "."; the name goes in modified UTF-7.
        let url = "imap://127.0.0.1:\(try Self.imapPort(f))/Archive.2026%20Re%C3%A7us"
        try f.writeConfig(extra: Self.config(url, target), mda: "")
        try f.user.deliver([Corpus.message(1, seed: 134, bareCR: false)])
        let r = try f.poll()
        #expect(r.status == 75, "\(r.stderr)")
        #expect(r.stderr.contains("imap_create_folder"), "\(r.stderr)")
        #expect(f.user.messageCount() == 1)
        try f.writeConfig(extra: Self.config(url, target, "imap_create_folder = true"), mda: "")
        let r2 = try f.poll()
        #expect(r2.status == 0, "\(r2.stderr)")
        // On disk, Dovecot keeps the modified UTF-7 name: the directory ".Archive.2026 Re&AOc-us".
        #expect(try Self.delivered(target, folder: "Archive.2026 Re&AOc-us").count == 1)
        #expect(f.user.messageCount() == 0)
    }

    @Test(
        "a cut-off session (APPEND done, not recorded): the next poll finds the message there and does not append it again",
        .fault(
            .process, "IMAP: crash between the server's OK to APPEND and the local commit (appends still pending)",
            expect: "next poll looks each pending message up by X-Popfetch-ID: 0 duplicates, 0 lost; a new one goes"))
    func cutOffSessionIsExactlyOnce() throws {
        let f = try PopfetchFixture()
        let target = try f.server.addUser()
        try f.writeConfig(
            extra: Self.config("imap://127.0.0.1:\(try Self.imapPort(f))/INBOX", target) + "\nkeep = true", mda: "")
        let corpus = (0..<5).map { Corpus.message($0, seed: 135, bareCR: false) }
        try f.user.deliver(corpus)
        #expect(try f.poll().status == 0)
        #expect(try Self.stored(target).count == 5)
        // What a kill -9 after the APPENDs and before their commits leaves: the messages are in the folder, their
        // records not delivered, their pending-append entries there. (Here: all five.)
        let ids = try Self.cutOff(f)
        #expect(Set(ids) == Set(try Self.stored(target).map(\.id)), "the IDs in the folder are popfetch's")
        try f.user.deliver([Corpus.message(9, seed: 135, bareCR: false)])
        let r = try f.poll(["--log-level", "info"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("not appended again"), "\(r.stderr)")
        let got = try Self.stored(target)
        #expect(got.count == 6, "5 found in the folder, 1 new appended; got \(got.count)")
        #expect(sameMessages(got.map(\.message), corpus + [Corpus.message(9, seed: 135, bareCR: false)]))
    }

    @Test(
        "each login the server offers: SCRAM-SHA-256, PLAIN, LOGIN, and OAuth2 (XOAUTH2, OAUTHBEARER) with a token command",
        arguments: ["auto", "scram-sha-256", "plain", "login", "xoauth2", "oauthbearer"])
    func logins(_ auth: String) throws {
        let f = try PopfetchFixture()
        let target = try f.server.addUser()
        let url = "imap://127.0.0.1:\(try Self.imapPort(f))/INBOX"
        // The test Dovecot takes "tok-USER" as a valid OAuth2 token for USER (its introspection endpoint).
        let oauth = auth == "xoauth2" || auth == "oauthbearer"
        try f.writeConfig(
            extra: """
                imap = "\(url)"
                imap_user = "\(target.name)"
                imap_auth = "\(auth)"
                \(oauth ? "imap_oauth_token_command = \"echo tok-\(target.name)\"" : "imap_password = \"\(target.password)\"")
                """, mda: "")
        try f.user.deliver([Corpus.message(1, seed: 137, bareCR: false)])
        let r = try f.poll(["--log-level", "trace"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try Self.stored(target).count == 1)
        if auth != "auto" {
            #expect(r.stderr.contains(auth == "login" ? "LOGIN" : auth.uppercased()), "\(r.stderr)")
        }
        for secret in [target.password, "tok-\(target.name)"] {
            #expect(!r.stderr.contains(secret), "a secret in the trace")
        }
    }

    @Test("a 50 MB message is appended byte-exact, streamed as one literal with flat memory (peak RSS bounded)")
    func fiftyMegabyteMessage() throws {
        let f = try PopfetchFixture()
        let target = try f.server.addUser()
        var big = Array("From: big@example.org\nSubject: fifty megabytes\n\n".utf8)
        let line = Array(repeating: UInt8(ascii: "x"), count: 75) + [10]
        big.reserveCapacity(50 * 1024 * 1024 + 1000)
        while big.count < 50 * 1024 * 1024 { big += line }
        big += Array(".dot line at the end\n".utf8)
        try f.user.deliver([big])
        try f.writeConfig(extra: Self.config("imap://127.0.0.1:\(try Self.imapPort(f))/INBOX", target), mda: "")
        // Baseline: the same binary polling an empty mailbox of another user.
        let g = try PopfetchFixture()
        try g.writeConfig()
        let baseline = try CrashSafetyTests.peakRSS(["--config", g.configPath, "--state", g.statePath, "poll", "-q"])
        let peak = try CrashSafetyTests.peakRSS(["--config", f.configPath, "--state", f.statePath, "poll", "-q"])
        let got = try Self.delivered(target)
        #expect(got.count == 1)
        let exact = got.first == big
        #expect(exact, "the 50 MB message arrived byte-exact")
        #expect(f.user.messageCount() == 0)
        let growthMB = Double(peak - baseline) / 1024
        #expect(growthMB < 16, "peak RSS grew by \(growthMB) MB over an empty poll (\(baseline) KB → \(peak) KB)")
    }

    @Test("a wrong IMAP password: temporary failure naming the login; every message stays on the server")
    func wrongPassword() throws {
        let f = try PopfetchFixture()
        var target = try f.server.addUser()
        target.password = "wrong"
        try f.writeConfig(extra: Self.config("imap://127.0.0.1:\(try Self.imapPort(f))/INBOX", target), mda: "")
        try f.user.deliver((0..<3).map { Corpus.message($0, seed: 136, bareCR: false) })
        let r = try f.poll()
        #expect(r.status == 75, "\(r.stderr)")
        #expect(r.stderr.contains("refused the login"), "\(r.stderr)")
        #expect(!r.stderr.contains("wrong"), "the password appears in the error")
        #expect(f.user.messageCount() == 3)
    }

    @Test("a config error names the key: imap:// in clear text to a remote host, missing imap_user, bad flags")
    func configErrors() throws {
        let f = try PopfetchFixture()
        let target = try f.server.addUser()
        let cases: [(String, String)] = [
            (Self.config("imap://imap.example.com/INBOX", target), "imap"),
            ("imap = \"imaps://imap.example.com/\"\nimap_password = \"x\"", "imap_user"),
            (Self.config("imaps://imap.example.com/", target, "imap_flags = [\"\\\\Recent\"]"), "imap_flags"),
            (Self.config("imaps://u@imap.example.com/", target), "imap"),
            (Self.config("imaps://imap.example.com/", target, "imap_tls = \"starttls\""), "imap_tls"),
            (Self.config("pop3://imap.example.com/", target), "imap"),
        ]
        for (extra, key) in cases {
            try f.writeConfig(extra: extra, mda: "")
            let r = try popfetch(["--config", f.configPath, "--state", f.statePath, "config", "check"])
            #expect(r.status == 78, "\(extra): \(r.stdout) \(r.stderr)")
            #expect(r.stderr.contains(key), "\(extra): \(r.stderr)")
        }
    }

    /// Leaves the state as a kill -9 between the APPENDs and their commits would (`Scripts/imap-cut-off.py`);
    /// returns the delivery IDs of the messages now pending.
    static func cutOff(_ f: PopfetchFixture) throws -> [String] {
        let r = try runProgram(
            ["/usr/bin/python3", Package.root + "/Tests/MailTestKit/Scripts/imap-cut-off.py", f.statePath])
        try #require(r.status == 0, "imap-cut-off.py: \(r.stderr)")
        return r.stdout.split(separator: "\n").map(String.init)
    }

    /// The messages a scripted IMAP server stored, with their X-Popfetch-ID lines and trace headers removed.
    static func scriptedStored(_ server: ScriptedServer) throws -> [[UInt8]] {
        let names = try FileManager.default.contentsOfDirectory(atPath: server.output).filter { $0.hasPrefix("msg.") }
        return try names.map { name in
            var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: server.output + "/" + name)))
            let eol = try #require(bytes.firstIndex(of: 10))
            bytes = Array(bytes[(eol + 1)...])
            // As sent: CRLF line ends; the corpus has LF.
            var lf: [UInt8] = []
            lf.reserveCapacity(bytes.count)
            for (i, b) in bytes.enumerated() where !(b == 13 && i + 1 < bytes.count && bytes[i + 1] == 10) {
                lf.append(b)
            }
            return try PopfetchFixture.stripTraceHeader(lf)
        }
    }

    struct FaultCase: Sendable, CustomTestStringConvertible {
        var mode: String
        var testDescription: String { self.mode }
    }

    @Test(
        "the IMAP connection fails around an APPEND: the message is looked up at the next poll, then sent; exactly once",
        .fault(
            .imap,
            "IMAP connection dropped mid-literal, dropped after the literal before the OK, stalled after it, "
                + "or garbage after it; and a server without LITERAL+",
            expect: "once the message was written: deferred (75), looked up at the next poll; each stored exactly once"),
        arguments: [
            "drop-mid-literal", "drop-after-literal", "stall-after-literal", "garbage-after-literal",
            "no-literal-plus",
        ])
    func faultsAroundAppend(_ mode: String) throws {
        let f = try PopfetchFixture()
        let server = try ScriptedServer.start(.imap, mode: mode, in: f)
        defer { server.stop() }
        let target = MailUser(name: "someone", password: "any", maildir: "")
        try f.writeConfig(
            extra: Self.config("imap://127.0.0.1:\(server.port)/INBOX", target, "imap_timeout = \"2s\""), mda: "")
        let corpus = (0..<4).map { Corpus.message($0, seed: 138, bareCR: false) }
        try f.user.deliver(corpus)
        let r = try f.poll()
        // A failure once the whole message was written (with LITERAL+ a small message is written at once, so a drop
        // mid-literal on the server's side looks the same): the message waits for the next poll, which looks it
        // up first.
        let afterLiteral = mode != "no-literal-plus"
        #expect(r.status == (afterLiteral ? 75 : 0), "\(r.stderr)")
        if afterLiteral {
            #expect(r.stderr.contains("looked up in the folder before it is sent again"), "\(r.stderr)")
            try "accept".write(toFile: server.output + "/mode", atomically: true, encoding: .utf8)
            let again = try f.poll()
            #expect(again.status == 0, "\(again.stderr)")
        }
        let got = try Self.scriptedStored(server)
        #expect(got.count == corpus.count, "\(got.count) stored for \(corpus.count) messages: \(r.stderr)")
        #expect(sameMessages(got, corpus))
        #expect(f.user.messageCount() == 0)
        let commands = (try? String(contentsOfFile: server.output + "/commands", encoding: .utf8)) ?? ""
        if afterLiteral {
            #expect(commands.contains("UID SEARCH"), "the resend must look the message up first: \(commands)")
        }
        #expect(!commands.contains(target.password))
        let pending = try runProgram(["sqlite3", f.statePath, "SELECT count(*) FROM imap_pending"])
        #expect(pending.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "0")
    }

    @Test(
        "a message whose APPEND may have gone through stays pending until it is found or appended: no duplicate",
        .fault(
            .imap, "IMAP connection dropped after the literal, then the reconnection refused, or UID SEARCH refused",
            expect: "exit 75, message kept, its append pending; the next poll finds it; each message stored once"),
        arguments: ["drop-after-literal-refuse-rest", "drop-after-literal-search-no"])
    func unresolvedKeepsTheMarkOpen(_ mode: String) throws {
        let f = try PopfetchFixture()
        let target = MailUser(name: "someone", password: "any", maildir: "")
        let corpus = (0..<3).map { Corpus.message($0, seed: 139, bareCR: false) }
        try f.user.deliver(corpus)
        let server = try ScriptedServer.start(.imap, mode: mode, in: f)
        defer { server.stop() }
        try f.writeConfig(
            extra: Self.config("imap://127.0.0.1:\(server.port)/INBOX", target, "imap_timeout = \"2s\""), mda: "")
        let first = try f.poll()
        #expect(first.status == 75, "\(first.stderr)")
        #expect(try Self.scriptedStored(server).count >= 1, "the first message reached the folder")
        let pending = try runProgram(["sqlite3", f.statePath, "SELECT count(*) FROM imap_pending"])
        #expect(pending.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "1", "its append stays pending")
        // The same server, now well-behaved.
        try "accept".write(toFile: server.output + "/mode", atomically: true, encoding: .utf8)
        let second = try f.poll()
        #expect(second.status == 0, "\(second.stderr)")
        let got = try Self.scriptedStored(server)
        #expect(got.count == corpus.count, "\(got.count) stored for \(corpus.count) messages")
        #expect(sameMessages(got, corpus))
        #expect(f.user.messageCount() == 0)
        let left = try runProgram(["sqlite3", f.statePath, "SELECT count(*) FROM imap_pending"])
        #expect(left.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "0", "found and recorded")
    }

    @Test(
        "an OK to APPEND before the message was sent is not a delivery",
        .fault(
            .imap, "IMAP server answers APPEND with OK before the literal (no LITERAL+)",
            expect: "protocol error; exit 75, every message kept on the server; none counted as delivered"))
    func okBeforeLiteral() throws {
        let f = try PopfetchFixture()
        let server = try ScriptedServer.start(.imap, mode: "ok-before-continuation", in: f)
        defer { server.stop() }
        try f.writeConfig(
            extra: Self.config(
                "imap://127.0.0.1:\(server.port)/INBOX", MailUser(name: "x", password: "y", maildir: "")),
            mda: "")
        try f.user.deliver((0..<2).map { Corpus.message($0, seed: 140, bareCR: false) })
        let r = try f.poll()
        #expect(r.status == 75, "\(r.stderr)")
        #expect(r.stderr.contains("before its literal"), "\(r.stderr)")
        #expect(f.user.messageCount() == 2)
    }

    @Test("the IMAP identity's own OAuth2 tokens: oauth login --imap, then polls use and refresh them")
    func builtInOAuth() throws {
        let f = try PopfetchFixture()
        let target = try f.server.addUser()
        let port = f.server.oauthPort
        try #require(port > 0)
        try f.writeConfig(
            extra: """
                imap = "imap://127.0.0.1:\(try Self.imapPort(f))/INBOX"
                imap_user = "\(target.name)"
                imap_auth = "xoauth2"
                imap_oauth_token_url = "http://127.0.0.1:\(port)/token"
                imap_oauth_device_url = "http://127.0.0.1:\(port)/device"
                imap_oauth_client_id = "client-\(target.name)"
                imap_oauth_client_secret = "client-secret-imap"
                """, mda: "")
        try f.user.deliver([Corpus.message(1, seed: 141, bareCR: false)])
        let before = try f.poll()
        #expect(before.status == 77, "\(before.stderr)")
        #expect(before.stderr.contains("oauth login --account test --imap"), "\(before.stderr)")
        #expect(f.user.messageCount() == 1)
        let login = try popfetch([
            "--config", f.configPath, "--state", f.statePath, "oauth", "login", "--account", "test", "--imap",
        ])
        #expect(login.status == 0, "\(login.stderr)")
        let r = try f.poll(["--log-level", "trace"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try Self.stored(target).count == 1)
        #expect(!r.stderr.contains("tok-") && !r.stderr.contains("refresh-") && !r.stderr.contains("client-secret"))
        // Expired: the next poll refreshes it with the stored refresh token.
        let expire = try runProgram([
            "sqlite3", f.statePath, "UPDATE oauth_tokens SET expires_at = 0, access_token = 'stale'",
        ])
        #expect(expire.status == 0)
        try f.user.deliver([Corpus.message(2, seed: 141, bareCR: false)])
        let r2 = try f.poll(["-v"])
        #expect(r2.status == 0, "\(r2.stderr)")
        #expect(r2.stderr.contains("refreshed the IMAP identity's OAuth2 access token"), "\(r2.stderr)")
        #expect(try Self.stored(target).count == 2)
    }

    @Test("popfetch check logs in to the IMAP mailbox too: folder there, folder missing, login refused")
    func check() throws {
        let f = try PopfetchFixture()
        var target = try f.server.addUser()
        let port = try Self.imapPort(f)
        try f.user.deliver([Corpus.message(1, seed: 142, bareCR: false)])
        func run(_ url: String) throws -> RunResult {
            try f.writeConfig(extra: Self.config(url, target), mda: "")
            return try popfetch(["--config", f.configPath, "--state", f.statePath, "check"])
        }
        let ok = try run("imap://127.0.0.1:\(port)/INBOX")
        #expect(ok.status == 0, "\(ok.stdout) \(ok.stderr)")
        #expect(
            ok.stdout.contains("logged in as \(target.name)") && ok.stdout.contains("folder INBOX is there"),
            "\(ok.stdout)")
        let missing = try run("imap://127.0.0.1:\(port)/Nowhere")
        #expect(missing.stdout.contains("folder Nowhere does not exist"), "\(missing.stdout)")
        target.password = "wrong"
        let refused = try run("imap://127.0.0.1:\(port)/INBOX")
        #expect(refused.status == 77, "\(refused.stdout) \(refused.stderr)")
        #expect(refused.stdout.contains("refused the login"), "\(refused.stdout)")
        #expect(!refused.stdout.contains("wrong") && !refused.stderr.contains("wrong"))
        // Nothing was fetched or appended.
        #expect(f.user.messageCount() == 1)
        #expect(try Self.stored(target).isEmpty)
    }

    @Test(
        "a pending append survives polls that do not fetch its message, and other messages' appends",
        .fault(
            .process, "IMAP: an append left pending by a crash, its message then skipped (max_size) while others go",
            expect: "the entry stays until its message comes again and is found in the folder: 0 duplicates"))
    func pendingSurvivesOtherPolls() throws {
        let f = try PopfetchFixture()
        let target = try f.server.addUser()
        let url = "imap://127.0.0.1:\(try Self.imapPort(f))/INBOX"
        let big = Corpus.message(1, seed: 143, bareCR: false) + Array(repeating: UInt8(ascii: "B"), count: 3000) + [10]
        let small = Array("From: s@example.org\nSubject: small\n\nshort\n".utf8)
        try #require(big.count > 2000)
        try f.user.deliver([big])
        try f.writeConfig(extra: Self.config(url, target, "keep = true"), mda: "")
        #expect(try f.poll().status == 0)
        // A crash after its APPEND and before its record.
        #expect(try Self.cutOff(f).count == 1)
        // A poll that skips it (too large now) and appends another message.
        try f.user.deliver([small])
        try f.writeConfig(extra: Self.config(url, target, "keep = true\nmax_size = 2000"), mda: "")
        _ = try f.poll()
        let pending = try runProgram(["sqlite3", f.statePath, "SELECT count(*) FROM imap_pending"])
        #expect(pending.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "1", "the big one is still pending")
        #expect(try Self.stored(target).count == 2)
        // Its message comes again: found, not appended twice.
        try f.writeConfig(extra: Self.config(url, target, "keep = true"), mda: "")
        let r = try f.poll()
        #expect(r.status == 0, "\(r.stderr)")
        let got = try Self.stored(target)
        #expect(got.count == 2, "\(got.count) in the folder")
        #expect(sameMessages(got.map(\.message), [big, small]))
    }

    @Test(
        "an APPEND that timed out after the message was sent is not sent again while it may still arrive",
        .fault(
            .imap, "IMAP server stores an APPENDed message 8 s late and never answers it (imap_timeout = 3s)",
            expect: "exit 75; the next poll within 2 × imap_timeout does not send it again; later: found, stored once"))
    func slowStoreIsNotSentTwice() throws {
        let f = try PopfetchFixture()
        let server = try ScriptedServer.start(.imap, mode: "store-late", in: f)
        defer { server.stop() }
        let target = MailUser(name: "someone", password: "any", maildir: "")
        try f.writeConfig(
            extra: Self.config("imap://127.0.0.1:\(server.port)/INBOX", target, "imap_timeout = \"3s\""), mda: "")
        let corpus = [Corpus.message(1, seed: 144, bareCR: false)]
        try f.user.deliver(corpus)
        let first = try f.poll()
        #expect(first.status == 75, "\(first.stderr)")
        // At once: not in the folder yet, and not sent again.
        let second = try f.poll()
        #expect(second.status == 75, "\(second.stderr)")
        #expect(second.stderr.contains("not sent again yet"), "\(second.stderr)")
        // The slow server has stored it by now; the next poll finds it.
        #expect(eventually(20) { (try? Self.scriptedStored(server).count) == 1 })
        let third = try f.poll()
        #expect(third.status == 0, "\(third.stderr)")
        let got = try Self.scriptedStored(server)
        #expect(got.count == 1, "\(got.count) copies")
        #expect(sameMessages(got, corpus))
        #expect(f.user.messageCount() == 0)
    }
}
