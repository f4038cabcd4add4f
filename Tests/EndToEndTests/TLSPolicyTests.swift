import Foundation
import MailTestKit
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("TLS policy: clear reasons, pinning, check --show-certificate")
struct TLSPolicyTests {
    /// The SHA-256 fingerprint of the test Dovecot's certificate, as openssl prints it.
    static func opensslFingerprint(_ server: DovecotServer) throws -> String {
        let r = try runProgram(
            [
                "/usr/bin/openssl", "x509", "-in", server.directory + "/run/cert.pem", "-noout", "-fingerprint",
                "-sha256",
            ])
        let line = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        return "sha256:" + (line.split(separator: "=").last.map(String.init) ?? "")
    }

    @Test(
        "an expired certificate is refused with the reason, nothing sent",
        .fault(
            .pop3, "server certificate expired",
            expect: "exit 76 naming the expiry date; no login attempted; message stays on the server"))
    func expired() throws {
        let server = try DovecotServer(ssl: true, expiredCertificate: true)
        let f = try PopfetchFixture(server: server)
        try f.user.deliver(Corpus.messages(1, seed: 170))
        try f.writeConfig(tls: "implicit")
        let r = try f.poll()
        #expect(r.status == 76, "\(r.stderr)")
        #expect(r.stderr.contains("expired on 2020-12-31"), "\(r.stderr)")
        #expect(f.user.messageCount() == 1)
        let log = (try? String(contentsOfFile: server.directory + "/run/dovecot.log", encoding: .utf8)) ?? ""
        #expect(!log.contains("user=<\(f.user.name)>"), "no login was attempted")
    }

    @Test(
        "an untrusted issuer is named as such, with the fingerprint to pin",
        .fault(
            .pop3, "server certificate from an untrusted issuer (no CA file)",
            expect: "exit 76 naming the untrusted issuer, with the fingerprint to pin"))
    func untrustedIssuer() throws {
        let f = try PopfetchFixture()
        try f.writeConfig(tls: "implicit", caFile: false)
        let r = try f.poll()
        #expect(r.status == 76)
        #expect(r.stderr.contains("not issued by a trusted authority"), "\(r.stderr)")
        #expect(r.stderr.contains(try Self.opensslFingerprint(f.server)), "\(r.stderr)")
    }

    @Test(
        "fingerprint pinning: the pinned certificate is accepted without a CA; another pin is refused",
        .fault(
            .pop3, "pinned fingerprint does not match the server certificate",
            expect: "right pin without a CA: exit 0, delivered; wrong pin: exit 76 'pin mismatch', message stays"))
    func pinning() throws {
        let f = try PopfetchFixture()
        try f.user.deliver(Corpus.messages(1, seed: 171))
        let pin = try Self.opensslFingerprint(f.server)
        try f.writeConfig(tls: "implicit", extra: "fingerprint = \"\(pin)\"", caFile: false)
        let ok = try f.poll()
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(try f.delivered().count == 1)

        try f.user.deliver(Corpus.messages(1, seed: 172))
        let wrong = "sha256:" + Array(repeating: "AB", count: 32).joined(separator: ":")
        try f.writeConfig(tls: "starttls", extra: "fingerprint = \"\(wrong)\"", caFile: false)
        let bad = try f.poll()
        #expect(bad.status == 76, "\(bad.stderr)")
        #expect(bad.stderr.contains("pin mismatch"), "\(bad.stderr)")
        #expect(f.user.messageCount() == 1)
    }

    @Test("check --show-certificate prints the fingerprint openssl computes")
    func showCertificate() throws {
        let f = try PopfetchFixture()
        try f.writeConfig(tls: "starttls")
        let r = try popfetch(["--config", f.configPath, "--state", f.statePath, "check", "--show-certificate"])
        #expect(r.stdout.contains(try Self.opensslFingerprint(f.server)), "\(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("localhost"))
    }

    @Test(
        "tls_min_version = 1.3 works against a TLS 1.3 server; a bad value is a config error",
        .fault(.config, "tls_min_version = \"1.1\" (not supported)", expect: "poll exits 78; with \"1.3\" it exits 0"))
    func minimumVersion() throws {
        let f = try PopfetchFixture()
        try f.writeConfig(tls: "implicit", extra: "tls_min_version = \"1.3\"")
        #expect(try f.poll().status == 0)
        try f.writeConfig(tls: "implicit", extra: "tls_min_version = \"1.1\"")
        #expect(try f.poll().status == 78)
    }
}
