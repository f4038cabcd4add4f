import Foundation
import MailTestKit
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("CLI behaviour")
struct CLITests {
    @Test("--version prints the version")
    func version() throws {
        let r = try popfetch(["--version"])
        #expect(r.status == 0)
        #expect(r.stdout.hasPrefix("popfetch "))
    }

    @Test("--config and --state are accepted after the subcommand too")
    func optionsAfterSubcommand() throws {
        let f = try PopfetchFixture()
        try f.user.deliver(Corpus.messages(2, seed: 60))
        try f.writeConfig()
        let r = try popfetch(["poll", "--config", f.configPath, "--state", f.statePath])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try f.delivered().count == 2)
    }

    @Test("XDG defaults: config from $XDG_CONFIG_HOME, state in $XDG_STATE_HOME (dir 0700, database 0600)")
    func xdgDefaults() throws {
        let f = try PopfetchFixture()
        try f.user.deliver(Corpus.messages(1, seed: 61))
        try f.writeConfig()
        let xdg = try makeTempDirectory("xdg")
        try FileManager.default.createDirectory(atPath: xdg + "/config/popfetch", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: f.configPath, toPath: xdg + "/config/popfetch/config.toml")
        let r = try popfetch(
            ["poll"], environment: ["XDG_CONFIG_HOME": xdg + "/config", "XDG_STATE_HOME": xdg + "/state"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try f.delivered().count == 1)
        var st = stat()
        #expect(stat(xdg + "/state/popfetch", &st) == 0)
        #expect(st.st_mode & 0o777 == 0o700)
        #expect(stat(xdg + "/state/popfetch/state.sqlite", &st) == 0)
        #expect(st.st_mode & 0o777 == 0o600)
    }

    @Test("two accounts in one config are both polled; --account selects one")
    func twoAccounts() throws {
        let f = try PopfetchFixture()
        let g = try PopfetchFixture()
        try f.user.deliver(Corpus.messages(3, seed: 62))
        try g.user.deliver(Corpus.messages(4, seed: 63))
        try f.writeConfig(name: "first")
        // Second account: g's mailbox, delivered through f's MDA.
        try f.writeConfig(password: g.user.password, name: "second", append: true, user: g.user.name)
        let only = try f.poll(["--account", "second"])
        #expect(only.status == 0, "\(only.stderr)")
        #expect(try f.delivered().count == 4)
        #expect(f.user.messageCount() == 3)
        let all = try f.poll()
        #expect(all.status == 0, "\(all.stderr)")
        #expect(try f.delivered().count == 7)
        #expect(all.stderr.contains("account=first"))
    }

    @Test(
        "an unknown --account is a config error (78)",
        .fault(.config, "--account names no configured account", expect: "exit 78 'no account named'"))
    func unknownAccount() throws {
        let f = try PopfetchFixture()
        try f.writeConfig()
        let r = try f.poll(["--account", "nope"])
        #expect(r.status == 78)
        #expect(r.stderr.contains("no account named"))
    }

    @Test(
        "implicit TLS to a server whose certificate is not trusted is refused (76), with the reason",
        .fault(
            .pop3, "implicit TLS to a server whose certificate is not trusted (no CA file)",
            expect: "exit 76 naming the certificate; nothing delivered; message stays on the server"))
    func untrustedCertificate() throws {
        let f = try PopfetchFixture()
        try f.user.deliver(Corpus.messages(1, seed: 64))
        try f.writeConfig(tls: "implicit", caFile: false)
        let r = try f.poll()
        #expect(r.status == 76, "\(r.stderr)")
        #expect(r.stderr.contains("certificate"), "\(r.stderr)")
        #expect(f.user.messageCount() == 1)
        #expect(try f.delivered().isEmpty)
    }

    @Test(
        "STLS upgrades and verifies the certificate against ca_file",
        .fault(
            .pop3, "certificate presented after STLS not trusted (no CA file)",
            expect: "exit 76; message stays on the server"))
    func starttlsVerifies() throws {
        let f = try PopfetchFixture()
        try f.user.deliver(Corpus.messages(1, seed: 65))
        try f.writeConfig(tls: "starttls", caFile: false)
        let r = try f.poll()
        #expect(r.status == 76, "untrusted certificate after STLS must stop the poll: \(r.stderr)")
        #expect(f.user.messageCount() == 1)
    }
}

@Suite("TLS host name verification")
struct HostNameTests {
    /// Runs popfetch in a private mount namespace whose /etc/hosts maps `name` to 127.0.0.1 (no DNS involved).
    func pollWithHostsEntry(_ f: PopfetchFixture, name: String) throws -> RunResult {
        let hosts = f.directory + "/hosts"
        try "127.0.0.1 localhost \(name)\n".write(toFile: hosts, atomically: true, encoding: .utf8)
        let script =
            "mount --bind \(hosts) /etc/hosts && exec \(Package.binary) --config \(f.configPath) "
            + "--state \(f.statePath) poll"
        return try runProgram(["/usr/bin/unshare", "-m", "/bin/sh", "-c", script])
    }

    @Test(
        "a certificate whose IP SAN matches but whose DNS names do not is refused for a host name",
        .fault(
            .pop3, "certificate matches the IP address, but none of its DNS names the host name",
            expect: "exit 76 'not for host name'; message stays on the server"))
    func ipSANDoesNotCoverAName() throws {
        let f = try PopfetchFixture()
        try f.user.deliver(Corpus.messages(1, seed: 66))
        try f.writeConfig(tls: "implicit", host: "wrong.example.test")
        let r = try self.pollWithHostsEntry(f, name: "wrong.example.test")
        #expect(r.status == 76, "\(r.stderr)")
        #expect(r.stderr.contains("not for host name wrong.example.test"), "\(r.stderr)")
        #expect(f.user.messageCount() == 1)
    }

    @Test("the certificate's DNS name is accepted")
    func matchingName() throws {
        let f = try PopfetchFixture()
        try f.user.deliver(Corpus.messages(1, seed: 67))
        try f.writeConfig(tls: "implicit", host: "localhost")
        let r = try f.poll()
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try f.delivered().count == 1)
    }
}
