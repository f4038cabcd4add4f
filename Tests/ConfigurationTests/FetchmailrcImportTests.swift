import Foundation
import MailTestKit
import POP3Core
import SMTPCore
import Testing

@testable import Configuration

#if canImport(Glibc)
    import Glibc
#endif

@Suite("popfetch import-fetchmailrc")
struct FetchmailrcImportTests {
    static let fixtures = ["typical", "multiuser"]

    func convert(_ name: String) throws -> String {
        let path = Package.root + "/Tests/ConfigurationTests/Fixtures/\(name).fetchmailrc"
        let r = try popfetch(["import-fetchmailrc", path])
        try #require(r.status == 0, "\(r.stderr)")
        return r.stdout
    }

    @Test("the output passes popfetch config check", arguments: fixtures)
    func passesConfigCheck(_ name: String) throws {
        // `config check` also looks for the MDA: the fixtures' procmail need not be installed where this runs.
        let toml = try self.convert(name).replacingOccurrences(of: "/usr/bin/procmail", with: "/bin/cat")
        let dir = try makeTempDirectory("import")
        let path = dir + "/config.toml"
        try toml.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o600)
        let r = try popfetch(["--config", path, "config", "check"])
        #expect(r.status == 0, "\(r.stderr)\n\(toml)")
    }

    @Test("translations: skip, ssl, keep/flush, limits, mda with shell syntax, smtphost host/port, is ... here")
    func translations() throws {
        let t = try self.convert("typical")
        let config = try ConfigurationLoader(defaultRecipient: "x", checkPermissions: false).parse(text: t, path: "t")
        let alice = try #require(config.accounts.first { $0.authentication.user == "alice" })
        #expect(alice.server.tls == .implicit && alice.server.port == 995)
        #expect(alice.retention.keep, "`defaults ... keep` applies")
        #expect(alice.authentication.password == .literal("s3cr\"et"))
        #expect(alice.retention.fetchLimit == 50 && alice.retention.maxSize == 2_000_000)
        #expect(alice.delivery.method == .mda(try MDACommand("/usr/bin/procmail -d %T")))
        #expect(alice.schedule.interval == 300)
        let bob = try #require(config.accounts.first { $0.authentication.user == "bob" })
        #expect(!bob.enabled, "skip becomes enabled = false")
        #expect(bob.delivery.recipients == ["bob", "carol"])
        #expect(bob.delivery.method == .smtp(.tcp(host: "mail.local", port: 2525)))
        #expect(!bob.retention.keep)
        let dave = try #require(config.accounts.first { $0.authentication.user == "dave" })
        #expect(!dave.enabled, "IMAP is out of scope")
        #expect(dave.delivery.method == .mda(try MDACommand("sh -c 'cat >> $HOME/mbox'")))

        let m = try self.convert("multiuser")
        let c2 = try ConfigurationLoader(defaultRecipient: "x", checkPermissions: false).parse(text: m, path: "m")
        #expect(c2.accounts.count == 3)
        let joe = try #require(c2.accounts.first { $0.authentication.user == "joe" })
        #expect(joe.server.host == "192.0.2.10", "via names the host to connect to")
        #expect(joe.server.port == 110 && joe.server.timeout == 30 && joe.authentication.method == .user)
        #expect(m.contains("sh -c '/usr/bin/procmail -a %T >> /tmp/log 2>&1'"))
        let ann = try #require(c2.accounts.first { $0.authentication.user == "ann" })
        #expect(ann.authentication.password == .literal("ann'pw"))
        #expect(ann.delivery.method == .smtp(.tcp(host: "localhost", port: 25)))
        #expect(m.contains("MD5 fingerprint"), "an MD5 pin is explained, not carried over")
        #expect(m.contains("set logfile"), "an option without equivalent becomes a comment")
    }

    @Test(
        "an mda that needs a shell gets the sender as \"$POPFETCH_SENDER\", never substituted into the script",
        arguments: [
            ("procmail -f %F -d $USER", "sh -c 'procmail -f \"$POPFETCH_SENDER\" -d $USER'"),
            ("procmail -f '%F' -d $USER", "sh -c 'procmail -f \"$POPFETCH_SENDER\" -d $USER'"),
            ("cat >> $HOME/mbox", "sh -c 'cat >> $HOME/mbox'"),
            ("/usr/bin/procmail -d %T", "/usr/bin/procmail -d %T"),
            ("/usr/bin/procmail -f %F -d %T", "/usr/bin/procmail -f %F -d %T"),
            ("procmail -a %T >> /tmp/log 2>&1", "sh -c 'procmail -a %T >> /tmp/log 2>&1'"),
        ] as [(String, String)])
    func mdaTranslation(fetchmail: String, popfetch: String) throws {
        #expect(FetchmailrcImporter.mda(fetchmail) == popfetch)
        _ = try MDACommand(popfetch)
    }

    @Test("an imported shell mda run with a hostile sender runs nothing and sees the sender verbatim")
    func importedMDAWithHostileSender() throws {
        let f = try PopfetchFixture()
        let pwned = f.directory + "/pwned"
        let sender = "$(touch \(pwned))@evil.example"
        try f.user.deliver([Corpus.message(0, seed: 310, returnPath: sender)])
        let out = f.directory + "/sender"
        let rc = f.directory + "/fetchmailrc"
        try """
        poll 127.0.0.1 proto pop3 port \(f.server.pop3Port)
          user "\(f.user.name)" there with password "\(f.user.password)" is x here
          mda "cat >/dev/null; printf %s %F > \(out)"

        """.write(toFile: rc, atomically: true, encoding: .utf8)
        let r = try popfetch(["import-fetchmailrc", rc])
        try #require(r.status == 0, "\(r.stderr)")
        let mdaLine = try #require(r.stdout.split(separator: "\n").first { $0.hasPrefix("mda = ") })
        try f.writeConfig(extra: "allow_insecure_auth = true\n" + mdaLine, mda: "")
        let poll = try f.poll()
        #expect(poll.status == 0, "\(poll.stderr)")
        #expect(!FileManager.default.fileExists(atPath: pwned), "the sender ran a command")
        #expect(try String(contentsOfFile: out, encoding: .utf8) == sender)
    }

    // Found by scripts/fuzz Fetchmailrc: the importer wrote control characters as they were, into comments and
    // strings, so its output was not TOML ("\u{2}" was the fuzzer's input), and a newline in a word it did not know
    // ended its comment and set a key of the .fetchmailrc's choosing.
    @Test(
        "control characters are escaped: the output is TOML and sets no key of its own",
        arguments: [
            "\u{2}", "poll pop.example.org user alice password \"p\rw\u{7F}\"",
            "poll pop.example.org \"\\nflood_limit = 7 #\" user alice password pw",
            "poll pop.example.org proto \"x\r\nkeep = true\" user alice password pw",
            "poll pop.example.org user \"al\r\nice\" password pw is \"a\u{1B}[0m\"",
        ])
    func controlCharacters(_ fetchmailrc: String) throws {
        let toml = try FetchmailrcImporter.convert(fetchmailrc, source: "t")
        let config = try ConfigurationLoader(defaultRecipient: "x", checkPermissions: false).parse(
            text: toml, path: "t")
        for account in config.accounts {
            #expect(account.retention.floodLimit == 20 && !account.retention.keep, "\(toml)")
        }
    }

    @Test("a newline in the source path stays in the header comment")
    func sourcePath() throws {
        let rc = "poll pop.example.org user alice password pw"
        let toml = try FetchmailrcImporter.convert(rc, source: "rc\nkeep = 1")
        let config = try ConfigurationLoader(defaultRecipient: "x", checkPermissions: false).parse(
            text: toml, path: "t")
        #expect(config.accounts.count == 1, "\(toml)")
    }

    @Test("a password with control characters comes through unchanged")
    func passwordRoundTrip() throws {
        let toml = try FetchmailrcImporter.convert(
            "poll pop.example.org user \"al\r\nice\" password \"p\rw\u{7F}\\t\"", source: "t")
        let config = try ConfigurationLoader(defaultRecipient: "x", checkPermissions: false).parse(
            text: toml, path: "t")
        let account = try #require(config.accounts.first)
        #expect(account.authentication.password == .literal("p\rw\u{7F}\t"))
        #expect(account.authentication.user == "al\r\nice")
    }

    @Test("an unterminated string is an error with the line")
    func parseError() throws {
        #expect(throws: FetchmailrcImporter.ParseError.self) {
            try FetchmailrcImporter.convert("poll x\n user \"broken\n", source: "t")
        }
    }

    static func parse(_ toml: String) throws -> Configuration {
        try ConfigurationLoader(defaultRecipient: "x", checkPermissions: false).parse(text: toml, path: "t")
    }

    @Test("`set syslog` is a flag: the `defaults` after it keeps its timeout and fetchlimit")
    func setFlagThenDefaults() throws {
        let rc = "set syslog\ndefaults timeout 60 fetchlimit 50\npoll pop.example.org user alice password pw\n"
        let toml = try FetchmailrcImporter.convert(rc, source: "t")
        let account = try #require(try Self.parse(toml).accounts.first, "\(toml)")
        #expect(account.server.timeout == 60, "\(toml)")
        #expect(account.retention.fetchLimit == 50, "\(toml)")
        #expect(toml.contains("# fetchmail: set syslog: run popfetch with --syslog"), "\(toml)")
        // A `set` with a value still takes it.
        let logfile = try FetchmailrcImporter.convert("set logfile /var/log/fm\n" + rc, source: "t")
        #expect(logfile.contains("set logfile /var/log/fm: no popfetch equivalent"), "\(logfile)")
        #expect(try Self.parse(logfile).accounts.first?.server.timeout == 60)
    }

    @Test("multidrop (`is * here`): the account is written disabled with the reason, never recipient \"*\"")
    func multidrop() throws {
        let toml = try FetchmailrcImporter.convert(
            "poll pop.example.org user alice password pw is * here\n", source: "t")
        #expect(!toml.contains("\"*\""), "\(toml)")
        #expect(toml.contains("multidrop"), "\(toml)")
        let account = try #require(try Self.parse(toml).accounts.first)
        #expect(!account.enabled)
        // And a config that names "*" as a recipient is refused at load.
        let refused = #expect(throws: ConfigurationError.self) {
            try Self.parse(
                "[[account]]\nname = \"a\"\nhost = \"h\"\nuser = \"u\"\npassword = \"p\"\nmda = \"/bin/cat\"\n"
                    + "recipient = [\"*\"]\n")
        }
        #expect(refused?.key == "recipient" && refused?.line == 7, "\(String(describing: refused))")
    }

    @Test("an option without an equivalent is one comment with its arguments; `interval 2` is every 2nd cycle")
    func optionArguments() throws {
        let rc = """
            poll pop.example.org interval 2 antispam 571 550 501 preconnect "ssh -f -L 1110:h:110 gw sleep 5"
              user alice password pw envelope X-Envelope-To
            """
        let toml = try FetchmailrcImporter.convert(rc, source: "t")
        #expect(toml.contains("# fetchmail: antispam 571 550 501: no popfetch equivalent"), "\(toml)")
        #expect(
            toml.contains("# fetchmail: preconnect \"ssh -f -L 1110:h:110 gw sleep 5\": no popfetch equivalent"),
            "\(toml)")
        #expect(toml.contains("# fetchmail: envelope X-Envelope-To: no popfetch equivalent"), "\(toml)")
        #expect(toml.contains("every 2nd cycle"), "\(toml)")
        #expect(!toml.contains("# fetchmail: 571"), "one comment per option, not per word:\n\(toml)")
        #expect(try Self.parse(toml).accounts.count == 1)
        #expect(FetchmailrcImporter.ordinal(1) == "1st" && FetchmailrcImporter.ordinal(12) == "12th")
        #expect(FetchmailrcImporter.ordinal(23) == "23rd" && FetchmailrcImporter.ordinal(111) == "111th")
    }

    @Test("-o writes a new 0600 file and never overwrites one")
    func outputFile() throws {
        let dir = try makeTempDirectory("import-o")
        let rc = dir + "/rc"
        try "poll pop.example.org user alice password secret\n".write(toFile: rc, atomically: true, encoding: .utf8)
        let out = dir + "/config.toml"
        let r = try popfetch(["import-fetchmailrc", rc, "-o", out])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.isEmpty)
        var st = stat()
        #expect(stat(out, &st) == 0 && st.st_mode & 0o777 == 0o600)
        let again = try popfetch(["import-fetchmailrc", rc, "-o", out])
        #expect(again.status == 78, "\(again.stderr)")
        #expect(again.stderr.contains("exists already"), "\(again.stderr)")
    }

    @Test("a relative sslcertfile becomes absolute against the directory fetchmail would have run in")
    func relativeCertificateFile() throws {
        let rc = "poll pop.example.org proto pop3 user u password p sslcertfile certs/ca.pem sslcertck\n"
        let toml = try FetchmailrcImporter.convert(rc, source: "t", workingDirectory: "/home/u")
        #expect(toml.contains("ca_file = \"/home/u/certs/ca.pem\""), "\(toml)")
        let absolute = try FetchmailrcImporter.convert(
            rc.replacingOccurrences(of: "certs/ca.pem", with: "/etc/ca.pem"), source: "t", workingDirectory: "/home/u")
        #expect(absolute.contains("ca_file = \"/etc/ca.pem\""), "\(absolute)")
    }
}
