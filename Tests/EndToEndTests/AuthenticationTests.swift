import Foundation
import GRDB
import MailTestKit
import Testing

@testable import OAuth

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Authentication mechanisms against the real Dovecot")
struct AuthenticationTests {
    static let mechanisms = ["user", "apop", "plain", "login", "cram-md5", "scram-sha-1", "scram-sha-256", "auto"]

    @Test("each mechanism logs in and fetches, over TLS and over loopback clear text", arguments: mechanisms)
    func mechanism(_ auth: String) throws {
        for tls in auth == "apop" ? ["none"] : ["none", "starttls"] {
            let f = try PopfetchFixture()
            try f.user.deliver(Corpus.messages(1, seed: 160))
            try f.writeConfig(tls: tls, extra: "auth = \"\(auth)\"")
            let r = try f.poll(["-v"])
            #expect(r.status == 0, "\(auth) over \(tls): \(r.stderr)")
            let n = try f.delivered().count
            #expect(n == 1, "\(auth) over \(tls): \(n) delivered: \(r.stderr)")
            #expect(!r.stderr.contains(f.user.password), "the password never reaches the log")
            if auth == "auto" {
                #expect(r.stderr.contains("authenticating with scram-sha-256"), "auto picks the strongest offered")
            }
        }
    }

    @Test(
        "a wrong password fails with exit 77 for every mechanism, and the password is never logged",
        .fault(
            .config, "wrong password with each mechanism (USER, APOP, PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-1/256, auto)",
            expect: "exit 77; password never printed, even at trace level; message stays on the server"),
        arguments: mechanisms)
    func wrongPassword(_ auth: String) throws {
        let f = try PopfetchFixture()
        try f.user.deliver(Corpus.messages(1, seed: 161))
        try f.writeConfig(extra: "auth = \"\(auth)\"", password: "Wrong-Secret-\(auth)")
        let r = try f.poll(["--log-level", "trace"])
        #expect(r.status == 77, "\(auth): \(r.stderr)")
        #expect(!r.stderr.contains("Wrong-Secret"))
        #expect(f.user.messageCount() == 1)
    }

    @Test(
        "~/.netrc supplies the password when the account has none",
        .fault(
            .config, "~/.netrc made group-readable (0644)",
            expect: "at 0600 it supplies the password, exit 0; at 0644 it is ignored and config check exits 78"))
    func netrc() throws {
        let f = try PopfetchFixture()
        try f.user.deliver(Corpus.messages(1, seed: 162))
        let netrc = f.directory + "/netrc"
        try "machine 127.0.0.1 login \(f.user.name) password \(f.user.password)\n".write(
            toFile: netrc, atomically: true, encoding: .utf8)
        chmod(netrc, 0o600)
        try f.writeConfig()
        var text = try String(contentsOfFile: f.configPath, encoding: .utf8)
        text = text.split(separator: "\n").filter { !$0.hasPrefix("password =") }.joined(separator: "\n") + "\n"
        try text.write(toFile: f.configPath, atomically: true, encoding: .utf8)
        chmod(f.configPath, 0o600)
        let r = try f.poll([], environment: ["NETRC": netrc])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try f.delivered().count == 1)
        chmod(netrc, 0o644)
        let refused = try popfetch(["--config", f.configPath, "config", "check"], environment: ["NETRC": netrc])
        #expect(refused.status == 78, "a group-readable netrc is ignored, so the password is missing")
    }
}

@Suite("OAuth2 logins against Dovecot's oauth2 passdb (local introspection endpoint)")
struct OAuthTests {
    @Test(
        "XOAUTH2, OAUTHBEARER and auto log in with the token from oauth_token_command; the token is never logged",
        arguments: ["xoauth2", "oauthbearer", "auto"])
    func token(_ auth: String) throws {
        let f = try PopfetchFixture()
        try f.user.deliver(Corpus.messages(1, seed: 180))
        try f.writeConfig(
            tls: "starttls", extra: "auth = \"\(auth)\"\noauth_token_command = \"echo tok-\(f.user.name)\"",
            password: "unused")
        let r = try f.poll(["--log-level", "trace"])
        #expect(r.status == 0, "\(auth): \(r.stderr)")
        #expect(try f.delivered().count == 1)
        #expect(!r.stderr.contains("tok-\(f.user.name)"), "the token never reaches the log")
        if auth == "auto" { #expect(r.stderr.contains("authenticating with oauthbearer")) }
    }

    @Test(
        "an invalid token fails with exit 77 (the XOAUTH2 error challenge is answered and the login refused)",
        .fault(
            .config, "oauth_token_command yields an invalid token (XOAUTH2, OAUTHBEARER)",
            expect: "exit 77; token never printed; message stays on the server"),
        arguments: ["xoauth2", "oauthbearer"])
    func badToken(_ auth: String) throws {
        let f = try PopfetchFixture()
        try f.user.deliver(Corpus.messages(1, seed: 181))
        try f.writeConfig(
            tls: "starttls", extra: "auth = \"\(auth)\"\noauth_token_command = \"echo expired-token-123\"",
            password: "unused")
        let r = try f.poll(["--log-level", "trace"])
        #expect(r.status == 77, "\(auth): \(r.stderr)")
        #expect(!r.stderr.contains("expired-token-123"))
        #expect(f.user.messageCount() == 1)
    }
}

@Suite("Built-in OAuth2: device login, stored refresh token, refresh before expiry", .serialized)
struct OAuthRefreshTests {
    @Test(
        "oauth login (device flow) stores a refresh token; polls refresh the access token; a refused refresh is clear",
        .fault(
            .pop3, "token endpoint refuses the stored OAuth2 refresh token (revoked)",
            expect: "exit 77 'refresh token was refused'; token not printed; message kept on the server"))
    func deviceFlowAndRefresh() throws {
        let f = try PopfetchFixture()
        let port = f.server.oauthPort
        try #require(port > 0)
        try f.writeConfig(
            tls: "starttls",
            extra: """
                auth = "oauthbearer"
                oauth_token_url = "http://127.0.0.1:\(port)/token"
                oauth_device_url = "http://127.0.0.1:\(port)/device"
                oauth_client_id = "client-\(f.user.name)"
                oauth_client_secret = "client-secret-xyz"
                """, password: "unused")
        try f.user.deliver(Corpus.messages(1, seed: 190))
        let before = try f.poll()
        #expect(before.status == 77)
        #expect(before.stderr.contains("oauth login"), "\(before.stderr)")

        let login = try popfetch([
            "--config", f.configPath, "--state", f.statePath, "oauth", "login", "--account", "test",
        ])
        #expect(login.status == 0, "\(login.stderr)")
        #expect(login.stdout.contains("WDJB-MJHT"), "the user code is shown")

        let r1 = try f.poll(["--log-level", "trace"])
        #expect(r1.status == 0, "\(r1.stderr)")
        #expect(try f.delivered().count == 1)
        #expect(!r1.stderr.contains("tok-") && !r1.stderr.contains("refresh-") && !r1.stderr.contains("client-secret"))

        // The access token expires: the next poll gets a new one with the stored refresh token.
        let db = try PopfetchKitStoreReader(path: f.statePath)
        try db.queue.write { try $0.execute(sql: "UPDATE oauth_tokens SET expires_at = 0, access_token = 'stale'") }
        try f.user.deliver(Corpus.messages(1, seed: 191))
        let r2 = try f.poll(["-v"])
        #expect(r2.status == 0, "\(r2.stderr)")
        #expect(r2.stderr.contains("refreshed the OAuth2 access token"))
        #expect(try f.delivered().count == 2)
        var st = stat()
        #expect(stat(f.statePath, &st) == 0 && st.st_mode & 0o077 == 0, "the refresh token lives in a 0600 database")

        // A refresh token the server refuses: a clear error, nothing fetched.
        try db.queue.write {
            try $0.execute(
                sql: "UPDATE oauth_tokens SET refresh_token = 'revoked', access_token = NULL, expires_at = 0")
        }
        try f.user.deliver(Corpus.messages(1, seed: 192))
        let r3 = try f.poll()
        #expect(r3.status == 77, "\(r3.stderr)")
        #expect(r3.stderr.contains("refresh token was refused"))
        #expect(!r3.stderr.contains("revoked"))
        #expect(f.user.messageCount() == 1)
    }
}

@Suite("Secrets never reach any output")
struct SecretHygieneTests {
    @Test("passwords, relay passwords, client secrets and tokens are absent from every command's output at every level")
    func noSecretsAnywhere() throws {
        let f = try PopfetchFixture()
        let g = try PopfetchFixture()
        try f.user.deliver(Corpus.messages(1, seed: 200))
        let secrets = ["Sup3r-Secret-Pass", "Smtp-Relay-S3cret", "Client-S3cret-Value"]
        try f.writeConfig(
            extra: """
                smtp_user = "relay"
                smtp_password = "\(secrets[1])"
                """, password: secrets[0])
        try f.writeConfig(
            extra: """
                auth = "oauthbearer"
                oauth_token_url = "http://127.0.0.1:\(f.server.oauthPort)/token"
                oauth_client_id = "client-\(g.user.name)"
                oauth_client_secret = "\(secrets[2])"
                """, password: "x", name: "oauth", append: true, user: g.user.name)
        let commands: [[String]] = [
            ["config", "check"], ["poll", "--log-level", "trace"], ["status"], ["status", "--json"],
            ["check", "--log-level", "trace"], ["status", "--account", "test", "--history", "5", "--json"],
        ]
        for c in commands {
            let r = try popfetch(["--config", f.configPath, "--state", f.statePath] + c)
            for s in secrets {
                #expect(!r.stdout.contains(s) && !r.stderr.contains(s), "\(c.joined(separator: " ")) shows a secret")
            }
        }
    }
}

@Suite("RFC 5034 initial responses")
struct InitialResponseTests {
    @Test("a token too long for a 255-octet AUTH line is sent after the server's empty challenge (the Office 365 trap)")
    func longToken() throws {
        let f = try PopfetchFixture()
        try f.user.deliver(Corpus.messages(1, seed: 210))
        let token = "tok-\(f.user.name)." + String(repeating: "x", count: 400)
        try f.writeConfig(
            tls: "starttls", extra: "auth = \"xoauth2\"\noauth_token_command = \"echo \(token)\"", password: "x")
        let r = try f.poll()
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try f.delivered().count == 1)
    }
}

@Suite("TLS client certificates and AUTH EXTERNAL")
struct ExternalAuthTests {
    @Test(
        "EXTERNAL with a client certificate logs in (no password anywhere); without the certificate it fails (77)",
        .fault(
            .config, "no client certificate for a login that needs one (EXTERNAL)",
            expect: "with the certificate: exit 0, delivered; without it: exit 77, message stays on the server"))
    func external() throws {
        let server = try DovecotServer(ssl: true, clientCertificates: true)
        let f = try PopfetchFixture(server: server)
        try f.user.deliver(Corpus.messages(1, seed: 220))
        let prefix = f.directory + "/client"
        let r0 = try runProgram(
            [Package.root + "/scripts/dovecot-instance", "client-cert", server.directory, f.user.name, prefix])
        try #require(r0.status == 0, "\(r0.stderr)")
        try f.writeConfig(
            tls: "implicit",
            extra: "auth = \"external\"\ntls_client_cert = \"\(prefix).pem\"\ntls_client_key = \"\(prefix).key\"",
            password: "unused")
        let ok = try f.poll()
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(try f.delivered().count == 1)

        try f.user.deliver(Corpus.messages(1, seed: 221))
        try f.writeConfig(tls: "starttls", extra: "auth = \"auto\"", password: "unused")
        let noCert = try f.poll()
        #expect(noCert.status == 77, "without a certificate EXTERNAL cannot succeed: \(noCert.stderr)")
        #expect(f.user.messageCount() == 1)
    }
}
