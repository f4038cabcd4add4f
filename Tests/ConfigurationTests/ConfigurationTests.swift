import Foundation
import MailTestKit
import POP3Core
import SMTPCore
import Testing

@testable import Configuration
@testable import SystemSupport

@Suite("Configuration: every error names file, line and key")
struct ConfigurationTests {
    static let good = """
        [defaults]
        keep = true

        [[account]]
        name = "work"
        host = "pop.example.org"
        user = "alice"
        password_command = "pass show mail/work"
        mda = "/usr/bin/procmail -d %T"
        recipient = ["alice", "bob"]
        max_size = "50MB"
        timeout = "30s"
        delete_after = "30d"
        """

    func parse(_ text: String) throws -> Configuration {
        try ConfigurationLoader(defaultRecipient: "tester", checkPermissions: false).parse(
            text: text, path: "/x/c.toml")
    }

    @Test("a good config parses with defaults applied")
    func goodConfig() throws {
        let c = try self.parse(Self.good)
        let a = try #require(c.accounts.first)
        #expect(a.name == "work")
        #expect(a.server.port == 995)
        #expect(a.server.tls == .implicit)
        #expect(a.retention.keep == true, "[defaults] keep = true is inherited")
        #expect(a.retention.maxSize == 50 * 1024 * 1024)
        #expect(a.server.timeout == 30)
        #expect(a.retention.deleteAfter == 30 * 86400)
        #expect(a.delivery.recipients == ["alice", "bob"])
        #expect(a.delivery.method == .mda(try MDACommand("/usr/bin/procmail -d %T")))
        #expect(a.stateKey == "alice@pop.example.org", "the mailbox identity leaves out the port")
        #expect(a.line == 4)
    }

    struct BadCase: Sendable, CustomStringConvertible {
        var name: String
        var text: String
        var line: Int?
        var key: String?
        var fragment: String
        var description: String { self.name }
    }

    static let base = """
        [[account]]
        name = "a"
        host = "pop.example.org"
        user = "u"
        password = "p"
        mda = "/bin/cat"
        """

    static let badCases: [BadCase] = [
        BadCase(name: "unknown key", text: base + "\nkepp = true", line: 7, key: "kepp", fragment: "did you mean keep"),
        BadCase(name: "wrong type", text: base + "\nport = \"995\"", line: 7, key: "port", fragment: "integer"),
        BadCase(name: "bad enum", text: base + "\ntls = \"maybe\"", line: 7, key: "tls", fragment: "must be one of"),
        BadCase(
            name: "missing host", text: base.replacingOccurrences(of: "host = \"pop.example.org\"\n", with: ""),
            line: 1, key: "host", fragment: "required"),
        BadCase(
            name: "missing mda", text: base.replacingOccurrences(of: "\nmda = \"/bin/cat\"", with: ""), line: 1,
            key: "mda", fragment: "required"),
        BadCase(
            name: "duplicate account", text: base + "\n\n" + base, line: 9, key: "name", fragment: "duplicate"),
        BadCase(
            name: "shell syntax in mda", text: base.replacingOccurrences(of: "/bin/cat", with: "cat >> /tmp/x"),
            line: 6, key: "mda", fragment: "sh -c"),
        BadCase(
            name: "bad duration", text: base + "\ntimeout = \"soon\"", line: 7, key: "timeout", fragment: "duration"),
        BadCase(name: "bad size", text: base + "\nmax_size = \"big\"", line: 7, key: "max_size", fragment: "size"),
        BadCase(
            name: "unknown root key", text: "colour = 1\n" + base, line: 1, key: "colour", fragment: "unknown key"),
        BadCase(
            name: "unknown key in defaults", text: "[defaults]\nkeeep = true\n" + base, line: 2,
            key: "defaults.keeep", fragment: "unknown key"),
        BadCase(
            name: "two secrets", text: base + "\npassword_file = \"/x\"", line: 7, key: "password_file",
            fragment: "only one"),
        BadCase(
            name: "clear text to a remote host", text: base + "\ntls = \"none\"", line: 7, key: "tls",
            fragment: "clear text"),
        BadCase(name: "syntax error", text: base + "\nport = ", line: 7, key: nil, fragment: "syntax"),
        BadCase(
            name: "two delivery methods", text: base + "\nmaildir = \"~/Maildir\"", line: 7, key: "maildir",
            fragment: "exactly one delivery method"),
        BadCase(
            name: "bad smtp target",
            text: base.replacingOccurrences(of: "mda = \"/bin/cat\"", with: "smtp = \"host:x\""),
            line: 6, key: "smtp", fragment: "host:port"),
        BadCase(
            name: "delete_after without keep", text: base + "\ndelete_after = \"1d\"", line: 7, key: "delete_after",
            fragment: "keep = true"),
        // The line of the key whose value is wrong, wherever the file puts it.
        BadCase(
            name: "bad item in a multi-line array", text: base + "\nrecipient = [\n  \"x\",\n  1,\n]\nport = 1",
            line: 7, key: "recipient", fragment: "array of strings"),
        BadCase(
            name: "after a multi-line string",
            text: base.replacingOccurrences(of: "mda = \"/bin/cat\"", with: "mda = \"\"\"\n/bin/cat \\\n\"\"\"")
                + "\nport = \"x\"",
            line: 9, key: "port", fragment: "integer"),
        BadCase(
            name: "after CR LF lines", text: (base + "\nport = \"x\"").replacingOccurrences(of: "\n", with: "\r\n"),
            line: 7, key: "port", fragment: "integer"),
        BadCase(
            name: "in [defaults]", text: "[defaults]\nkeep = true\nport = \"x\"\n\n" + base, line: 3,
            key: "defaults.port", fragment: "integer"),
        BadCase(
            name: "in dotted defaults", text: "defaults.keep = true\ndefaults.port = \"x\"\n" + base, line: 2,
            key: "defaults.port", fragment: "integer"),
        BadCase(
            name: "in the third account",
            text: base + "\n"
                + base.replacingOccurrences(of: "\"a\"", with: "\"b\"").replacingOccurrences(of: "\"u\"", with: "\"v\"")
                + "\n"
                + base.replacingOccurrences(of: "\"a\"", with: "\"c\"").replacingOccurrences(of: "\"u\"", with: "\"w\"")
                + "\nport = \"x\"",
            line: 19, key: "port", fragment: "integer"),
        BadCase(
            name: "missing in the second account",
            text: base + "\n" + base.replacingOccurrences(of: "name = \"a\"", with: ""),
            line: 7, key: "name", fragment: "required"),
        BadCase(
            name: "under a dotted key", text: base + "\nserver.port = 1", line: 7, key: "server",
            fragment: "unknown key"),
        BadCase(
            name: "a sub-table of an account", text: base + "\n[account.server]\nport = 1", line: 7, key: "server",
            fragment: "unknown key"),
        BadCase(
            name: "in an inline array of accounts",
            text: "account = [\n  { name = \"a\", host = \"h\", user = \"u\", password = \"p\", mda = \"/bin/cat\" },\n"
                + "  { name = \"b\", host = \"h\", user = \"v\", password = \"p\", mda = \"/bin/cat\", port = \"x\" },\n]",
            line: 3, key: "port", fragment: "integer"),
    ]

    @Test(
        "bad config files",
        .fault(
            .config,
            "broken configs (a table): unknown key, wrong type or value, missing key, duplicate account, bad TOML",
            expect: "refused with an error naming file, line and key and the cause; the password never in it"),
        arguments: badCases)
    func badConfig(_ c: BadCase) throws {
        do {
            _ = try self.parse(c.text)
            Issue.record("\(c.name): expected an error")
        } catch let e as ConfigurationError {
            #expect(e.file == "/x/c.toml")
            #expect(e.line == c.line, "\(c.name): \(e)")
            #expect(e.key == c.key, "\(c.name): \(e)")
            #expect(e.description.contains(c.fragment), "\(c.name): \(e)")
            #expect(!e.description.contains("\"p\""), "no secret in errors")
        }
    }

    // Found by scripts/fuzz ConfigurationLoader: on these headers toml++ (in TOMLKit, the TOML library popfetch used
    // before its own parser) failed an assertion and popfetch aborted, `config check` included.
    @Test(
        "a table header without a name is a syntax error on its line, not an abort",
        .fault(
            .config, "TOML table header without a name (fuzzer finds: \"[\", \"[=]\", \"[[ [a]]\", ...)",
            expect: "a TOML syntax error on the right line, not an abort"),
        arguments: [
            ("[\n\n\u{FFFD}", 1), ("[\n", 1), ("[.account]\n", 1), ("[=]\n", 1), ("[[\n", 1), ("[[ [a]]\n", 1),
            (base + "\n  [ # comment\n", 7), ("[defaults]\nkeep = true\n[\r\n", 3),
            // The fuzzer's second input: `[` and a combining mark are one Character but two scalars to toml++.
            ("[\u{031E}\"\"ri\n", 1), ("keep = true\r\n[\r\n", 2),
        ])
    func headerWithoutName(_ text: String, line: Int) throws {
        let error = try #require(throws: ConfigurationError.self) { try self.parse(text) }
        #expect(error.line == line && error.message.hasPrefix("TOML syntax error"), "\(error)")
    }

    @Test(
        "errors in a file with CRLF line ends name the right line",
        .fault(.config, "unknown key in a config with CRLF line ends", expect: "the error names line 7 and the key"))
    func crlfLines() throws {
        let text = (Self.base + "\nkepp = true\n").replacingOccurrences(of: "\n", with: "\r\n")
        let error = try #require(throws: ConfigurationError.self) { try self.parse(text) }
        #expect(error.line == 7 && error.key == "kepp", "\(error)")
    }

    @Test("headers with blanks and quoted names parse; brackets apart are a syntax error")
    func headersWithBlanks() throws {
        let spaced = "[ defaults ]\nkeep = true\n\n[[ account ]]\n" + Self.base.dropFirst("[[account]]\n".count)
        #expect(try self.parse(spaced).accounts.count == 1)
        #expect(try self.parse("[\"defaults\"]\n").accounts.isEmpty)
        let error = try #require(throws: ConfigurationError.self) { try self.parse("[ [account]]\n") }
        #expect(error.line == 1 && error.message.hasPrefix("TOML syntax error"), "\(error)")
    }

    @Test(
        "mda splitting honours quotes and substitutes %T %F %U as single arguments",
        .fault(
            .config, "mda with a pipe or $VAR; a recipient with shell syntax (\"a b; rm -rf /\") for %T",
            expect: "pipe and $VAR refused; %T substituted sanitised, as one argument"))
    func mdaSplitting() throws {
        let m = try MDACommand("/usr/bin/maildrop -d '%T' \"-f\" %F -u%U")
        #expect(m.arguments == ["/usr/bin/maildrop", "-d", "%T", "-f", "%F", "-u%U"])
        #expect(m.perRecipient)
        // `%%T` is a literal `%T`: the command runs once for all recipients.
        #expect(try !MDACommand("deliver -x 100%%T %F").perRecipient)
        #expect(try MDACommand("deliver %%%T").perRecipient)
        #expect(try !MDACommand("deliver %U T%").perRecipient)
        // A T with a combining mark is another character: not substituted, so not once per recipient either.
        let accented = try MDACommand("deliver %T\u{301}")
        #expect(!accented.perRecipient)
        #expect(accented.expanded(recipient: "r", sender: "s", user: "u") == ["deliver", "%T\u{301}"])
        let e = m.expanded(recipient: "a b; rm -rf /", sender: "x@y", user: "u")
        // %T and %F are sanitised: nothing from a message can become shell syntax or an option.
        #expect(e == ["/usr/bin/maildrop", "-d", "a_b__rm_-rf__", "-f", "x@y", "-uu"])
        #expect(throws: MDACommand.ParseError.self) { try MDACommand("procmail | tee") }
        #expect(throws: MDACommand.ParseError.self) { try MDACommand("deliver $HOME") }
        let sh = try MDACommand("sh -c 'cat >> $HOME/mbox'")
        #expect(sh.arguments == ["sh", "-c", "cat >> $HOME/mbox"])
    }

    @Test("SMTP/LMTP targets: host:port, [v6]:port, bare host, unix socket")
    func socketTargets() {
        #expect(SMTPEndpoint.parse("127.0.0.1:2525", defaultPort: 25) == .tcp(host: "127.0.0.1", port: 2525))
        #expect(SMTPEndpoint.parse("[::1]:24", defaultPort: 25) == .tcp(host: "::1", port: 24))
        #expect(SMTPEndpoint.parse("mail.example", defaultPort: 25) == .tcp(host: "mail.example", port: 25))
        #expect(SMTPEndpoint.parse("/run/dovecot/lmtp", defaultPort: 24) == .unix(path: "/run/dovecot/lmtp"))
        #expect(SMTPEndpoint.parse("host:0", defaultPort: 25) == nil)
        #expect(SMTPEndpoint.parse("[::1", defaultPort: 25) == nil)
    }

    @Test("durations and sizes")
    func units() {
        #expect(Units.parseDuration("30s") == 30)
        #expect(Units.parseDuration("5m") == 300)
        #expect(Units.parseDuration("2h") == 7200)
        #expect(Units.parseDuration("30d") == 2_592_000)
        #expect(Units.parseDuration("45") == 45)
        #expect(Units.parseDuration("x") == nil)
        #expect(Units.parseSize("50MB") == 52_428_800)
        #expect(Units.parseSize("512KB") == 524_288)
        #expect(Units.parseSize("1GB") == 1_073_741_824)
        #expect(Units.parseSize("100") == 100)
        #expect(Units.parseSize("lots") == nil)
    }

    @Test(
        "a group-readable config holding a password is refused, with the fix",
        .fault(
            .config, "config holding a password is group-readable (0644)",
            expect: "load refused with a 'chmod 600' hint; loads once 0600"))
    func permissions() throws {
        let dir = NSTemporaryDirectory() + "popfetch-perm-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/config.toml"
        try Self.base.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o644)
        #expect(throws: ConfigurationError.self) { try ConfigurationLoader().load(path: path) }
        do {
            _ = try ConfigurationLoader().load(path: path)
        } catch let e as ConfigurationError {
            #expect(e.description.contains("chmod 600"))
        }
        chmod(path, 0o600)
        #expect(try ConfigurationLoader().load(path: path).accounts.count == 1)
    }

    @Test("a file's byte order mark is skipped once: two are a syntax error (String(data:encoding:) dropped one)")
    func byteOrderMark() throws {
        let dir = NSTemporaryDirectory() + "popfetch-bom-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/config.toml"
        let loader = ConfigurationLoader(defaultRecipient: "tester", checkPermissions: false)
        try ("\u{FEFF}" + Self.base).write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try loader.load(path: path).accounts.count == 1)
        try ("\u{FEFF}\u{FEFF}" + Self.base).write(toFile: path, atomically: true, encoding: .utf8)
        let e = try #require(throws: ConfigurationError.self) { try loader.load(path: path) }
        #expect(e.line == 1 && e.description.contains("syntax"), "\(e)")
    }

    @Test(
        "the CLI exits 78 on a broken config and names file, line and key",
        .fault(
            .config, "unknown key in the config given to the CLI",
            expect: "poll and config check exit 78; file:line: key named; no state file created"))
    func cliExitCode() throws {
        let dir = NSTemporaryDirectory() + "popfetch-cli-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/config.toml"
        try (Self.base + "\nkepp = true\n").write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o600)
        let r = try popfetch(["--config", path, "--state", dir + "/s.sqlite", "poll"])
        #expect(r.status == 78)
        #expect(r.stderr.contains("\(path):7: kepp: unknown key"), "\(r.stderr)")
        let check = try popfetch(["config", "check", "--config", path])
        #expect(check.status == 78)
        #expect(!FileManager.default.fileExists(atPath: dir + "/s.sqlite"), "a broken config changes nothing")
    }

    @Test("an account with only the required keys has exactly the defaults of AccountConfiguration's parts")
    func defaultsLiveInOnePlace() throws {
        let a = try #require(try self.parse(Self.base).accounts.first)
        var expected = AccountConfiguration(
            name: "a", line: 1, server: .init(host: "pop.example.org"),
            authentication: .init(user: "u", password: .literal("p")),
            delivery: .init(method: .mda(try MDACommand("/bin/cat")), recipients: ["tester"]))
        #expect(a == expected)
        #expect(a.server.port == 995, "implicit TLS: 995")
        expected.server.tls = .starttls
        #expect(expected.server.port == 110, "the default port follows the TLS mode")
        expected.server.port = 2110
        expected.server.tls = .implicit
        #expect(expected.server.port == 2110, "a port that was set stays set")
    }

    @Test(
        "every key read through the key table refuses a value of the wrong kind, naming the key and its line",
        .fault(
            .config, "every account key given an array, a value of the wrong kind",
            expect: "refused naming the key and line 7, with a 'must ...' message"),
        arguments: AccountKeys.table.filter { $0.read != nil }.map(\.name))
    func everyKeyChecksItsValue(key: String) throws {
        let text = Self.base + "\n\(key) = [1, 2]"
        do {
            _ = try self.parse(text)
            Issue.record("\(key) = [1, 2] was accepted")
        } catch let e as ConfigurationError {
            #expect(e.key == key, "\(e)")
            #expect(e.line == 7, "\(e)")
            #expect(e.message.hasPrefix("must"), "\(e)")
        }
    }

    @Test("relative paths are relative to the config's directory; ~ is home; absolute ones stay")
    func relativePaths() throws {
        let text = """
            metrics_file = "popfetch.prom"
            metrics_listen = "[::1]:9101"
            [[account]]
            name = "a"
            host = "pop.example.org"
            user = "u"
            password_file = "secrets/pop"
            ca_file = "./ca.pem"
            tls_client_cert = "/etc/ssl/c.pem"
            tls_client_key = "~/k.pem"
            maildir = "Mail"
            """
        let c = try self.parse(text)
        let a = try #require(c.accounts.first)
        #expect(c.global.metricsFile == "/x/popfetch.prom")
        #expect(c.global.metricsListen == MetricsAddress(host: "::1", port: 9101))
        #expect(a.authentication.password == .file("/x/secrets/pop"))
        #expect(a.server.caFile == "/x/ca.pem")
        #expect(a.server.clientCertificate == "/etc/ssl/c.pem")
        #expect(a.server.clientKey == Paths.home() + "/k.pem")
        #expect(a.delivery.method == .maildir("/x/Mail"))
        // A config named relative to the working directory: its paths resolve against that directory.
        let relative = try ConfigurationLoader(defaultRecipient: "tester", checkPermissions: false).parse(
            text: text, path: "conf/c.toml")
        #expect(relative.global.metricsFile == FileManager.default.currentDirectoryPath + "/conf/popfetch.prom")
        // Tidy: no doubled slashes or `.` components, whatever the directory looked like.
        #expect(Paths.resolve("./a//b/./c", relativeTo: "/") == "/a/b/c")
        #expect(Paths.resolve("x", relativeTo: "/etc/./popfetch/") == "/etc/popfetch/x")
        #expect(Paths.resolve("/abs/../y", relativeTo: "/z") == "/abs/../y")
    }

    @Test(
        "metrics_listen must be host:port; metrics_file a file",
        arguments: [
            ("metrics_listen = \"9101\"", "metrics_listen"), ("metrics_listen = \"127.0.0.1:0\"", "metrics_listen"),
            ("metrics_listen = \"127.0.0.1:70000\"", "metrics_listen"), ("metrics_listen = 9101", "metrics_listen"),
            ("metrics_listen = \"/run/metrics.sock\"", "metrics_listen"), ("metrics_file = \"\"", "metrics_file"),
            ("metrics_file = \"dir/\"", "metrics_file"), ("metrics_file = 1", "metrics_file"),
            ("metrics_file = \"/tmp/.\"", "metrics_file"), ("metrics_file = \"a/..\"", "metrics_file"),
        ])
    func metricsKeys(line: String, key: String) throws {
        let error = try #require(throws: ConfigurationError.self) { try self.parse(line + "\n" + Self.base) }
        #expect(error.key == key && error.line == 1, "\(error)")
    }

    @Test("the example config in etc/ is valid")
    func exampleConfig() throws {
        let c = try ConfigurationLoader(checkPermissions: false).load(path: Package.root + "/etc/config.example.toml")
        #expect(!c.accounts.isEmpty)
    }
}

#if canImport(Glibc)
    import Glibc
#endif
