import Foundation
import MailTestKit
import SystemSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 12: `popfetch config check` says at check time what a poll would refuse or fail on at run time, and every
/// error of the file, not only the first.
@Suite("popfetch config check: everything a poll would meet")
struct ConfigCheckTests {
    func check(_ text: String) throws -> RunResult {
        let dir = try makeTempDirectory("config-check")
        let path = dir + "/config.toml"
        try text.replacingOccurrences(of: "DIR", with: dir).write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o600)
        return try popfetch(["--config", path, "--state", dir + "/state.sqlite", "config", "check"])
    }

    static func account(_ name: String, _ extra: String) -> String {
        "[[account]]\nname = \"\(name)\"\nhost = \"pop.example.org\"\nuser = \"\(name)\"\n\(extra)\n\n"
    }

    @Test("every error of the file at once: unknown keys, wrong values, in every account")
    func everyError() throws {
        let r = try self.check(
            Self.account("a", "password = \"p\"\nmda = \"/bin/cat\"\nkep = true\ntimeout = \"forever\"")
                + Self.account("b", "password = \"p\"\nmda = \"/bin/cat\"\nport = 99999")
                + Self.account("c", "password = \"p\""))
        #expect(r.status == 78)
        for expected in [
            ":7: kep: unknown key (did you mean keep?)", ":8: timeout: must be a duration",
            ":16: port: must be between 1 and 65535", ":18: mda: is required but missing", "4 errors",
        ] {
            #expect(r.stderr.contains(expected), "\(expected.debugDescription) missing:\n\(r.stderr)")
        }
    }

    @Test("an account key at the top level is named as one; one mailbox written with another host case is a duplicate")
    func misplacedKeyAndHostSpelling() throws {
        let r = try self.check(
            "interval = \"5m\"\n\n" + Self.account("a", "password = \"p\"\nmda = \"/bin/cat\"")
                + "[[account]]\nname = \"b\"\nhost = \"POP.Example.org.\"\nuser = \"a\"\npassword = \"p\"\n"
                + "mda = \"/bin/cat\"\n")
        #expect(r.status == 78)
        #expect(r.stderr.contains(":1: interval: is an account key: put it in [defaults]"), "\(r.stderr)")
        #expect(!r.stderr.contains("did you mean interval"), "\(r.stderr)")
        #expect(r.stderr.contains("are both the mailbox"), "\(r.stderr)")
    }

    @Test("what a poll would meet: an open password_file, a missing MDA, an unwritable Maildir, AUTH in clear text")
    func runTimeProblems() throws {
        let dir = try makeTempDirectory("secrets")
        let pw = dir + "/pw"
        try "secret\n".write(toFile: pw, atomically: true, encoding: .utf8)
        chmod(pw, 0o644)
        let r = try self.check(
            Self.account("a", "password_file = \"\(pw)\"\nmda = \"/usr/bin/no-such-mda -d a\"")
                + Self.account("b", "password = \"p\"\nmda = \"no-such-mda-in-path\"")
                + Self.account("c", "password = \"p\"\nmaildir = \"/proc/no/Maildir\"")
                + Self.account(
                    "d", "password = \"p\"\nsmtp = \"relay.example.org:587\"\nsmtp_user = \"me\"\nsmtp_password = \"s\""
                ))
        #expect(r.status == 78, "\(r.stdout)\n\(r.stderr)")
        #expect(r.stdout.contains("4 accounts, 5 problems a poll would meet"), "\(r.stdout)")
        for expected in [
            "password_file (account a): \(pw) can be read by others (mode 644): chmod 600",
            "mda (account a): /usr/bin/no-such-mda: No such file or directory",
            "mda (account b): no-such-mda-in-path is not found in PATH",
            "maildir (account c): /proc/no/Maildir does not exist",
            "smtp_user (account d): the SMTP password would go in clear text to relay.example.org:587",
        ] {
            #expect(r.stderr.contains(expected), "\(expected.debugDescription) missing:\n\(r.stderr)")
        }
        // Fixed, the same file checks clean; smtp_user and interval are shown, the secrets are not.
        chmod(pw, 0o600)
        let ok = try self.check(
            Self.account("a", "password_file = \"\(pw)\"\nmda = \"/bin/cat\"\ninterval = \"2m\"")
                + Self.account(
                    "d",
                    "password = \"hidden-pw\"\nsmtp = \"127.0.0.1:25\"\nsmtp_user = \"me\"\nsmtp_password = \"hidden-smtp\""
                ))
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stdout.contains("interval       2m"), "\(ok.stdout)")
        #expect(ok.stdout.contains("smtp_user      \"me\""), "\(ok.stdout)")
        #expect(!ok.stdout.contains("hidden-"), "\(ok.stdout)")
    }

    @Test("a config without accounts is valid, with a warning that there is nothing to poll")
    func noAccounts() throws {
        let r = try self.check("max_concurrent_polls = 4\n")
        #expect(r.status == 0)
        #expect(r.stderr.contains("warning") && r.stderr.contains("nothing to poll"), "\(r.stderr)")
    }

    @Test("completions: account names from the config the command line names, log levels, files")
    func completions() throws {
        let dir = try makeTempDirectory("completion")
        let path = dir + "/config.toml"
        try
            (Self.account("work", "password = \"p\"\nmda = \"/bin/cat\"")
            + Self.account("home", "password = \"p\"\nmda = \"/bin/cat\"")).write(
                toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o600)
        // What the generated bash script runs for `popfetch --config PATH poll --account w<TAB>`.
        let r = try popfetch([
            "---completion", "poll", "--", "--account", "4", "1", "popfetch", "--config", path, "poll", "--account",
            "w",
        ])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.split(separator: "\n") == ["work"], "\(r.stdout)")
        let bash = try popfetch(["--generate-completion-script", "bash"])
        #expect(bash.stdout.contains("---completion forget -- --account"), "account names for forget")
        #expect(bash.stdout.contains("'trace'$'\\n''debug'$'\\n''info'"), "log levels")
        let zsh = try popfetch(["--generate-completion-script", "zsh"])
        #expect(zsh.stdout.contains("--config[") && zsh.stdout.contains(":_files"), "file names for --config")
    }

    @Test("an account name is letters, digits and . _ - @ + only: it goes into shell completions and log lines")
    func accountNames() throws {
        for bad in ["$(touch PWNED)", "evil`id`", "a b", "x\\u001B[31m"] {
            let r = try self.check(Self.account(bad, "password = \"p\"\nmda = \"/bin/cat\""))
            #expect(r.status == 78, "\(bad.debugDescription) accepted")
            #expect(r.stderr.contains("name: must be non-empty, made of letters, digits"), "\(r.stderr)")
        }
        #expect(
            try self.check(Self.account("work.mail-1@example+x", "password = \"p\"\nmda = \"/bin/cat\"")).status == 0)
    }

    @Test("text from outside printed as visible escapes: ESC, CR and BEL cannot recolour or overwrite a line")
    func terminalSafe() {
        #expect(
            TerminalSafe.escaped("-ERR [AUTH] bad \u{1B}[41mpw\u{1B}[0m\rspoof\u{07}")
                == "-ERR [AUTH] bad \\x1b[41mpw\\x1b[0m\\x0dspoof\\x07")
        #expect(TerminalSafe.escaped("tab\tand é ok") == "tab\tand é ok")
        #expect(TerminalSafe.escaped("c1 \u{9B}31m del \u{7F}") == "c1 \\x9b31m del \\x7f")
    }
}
