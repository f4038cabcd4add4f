import MailTestKit
import NIOCore
import NIOSSL
import SMTPCore
import Testing

@testable import MailTransport

/// The one TLS-context factory: each option's effect on the configuration, and on a real handshake.
@Suite("TLSContextFactory options", .offThePool)
struct TLSContextFactoryTests {
    @Test("defaults: full verification, TLS 1.2 or later, the system's authorities only, no client certificate")
    func defaults() throws {
        let config = try TLSContextFactory.makeConfiguration(TLSClientOptions())
        #expect(config.certificateVerification == .fullVerification)
        #expect(config.minimumTLSVersion == .tlsv12)
        #expect(config.additionalTrustRoots.isEmpty)
        #expect(config.certificateChain.isEmpty)
        #expect(config.privateKey == nil)
    }

    @Test(
        "verification: a pinned fingerprint or inspection skips the chain check; tls_min_version 1.3",
        arguments: [
            (TLSClientOptions.Verification.full, CertificateVerification.fullVerification),
            (.pinnedFingerprint, .none), (.inspectionOnly, .none),
        ])
    func verification(_ verification: TLSClientOptions.Verification, expected: CertificateVerification) throws {
        let config = try TLSContextFactory.makeConfiguration(
            TLSClientOptions(verification: verification, minimumVersion: .tls13))
        #expect(config.certificateVerification == expected)
        #expect(config.minimumTLSVersion == .tlsv13)
    }

    @Test("a trust roots file and a client certificate are loaded; files that are not there throw")
    func files() throws {
        let cert = try TestCertificate.get()
        let options = TLSClientOptions(
            trustRootsFile: cert.certificateFile,
            clientCertificate: .init(certificateFile: cert.certificateFile, keyFile: cert.keyFile))
        let config = try TLSContextFactory.makeConfiguration(options)
        #expect(config.additionalTrustRoots == [.file(cert.certificateFile)])
        #expect(config.certificateChain.count == 1)
        #expect(config.privateKey != nil)
        _ = try TLSContextFactory.makeContext(options)

        let missing = cert.directory + "/missing.pem"
        #expect(throws: (any Error).self) {
            try TLSContextFactory.makeContext(TLSClientOptions(trustRootsFile: missing))
        }
        #expect(throws: (any Error).self) {
            try TLSContextFactory.makeContext(
                TLSClientOptions(clientCertificate: .init(certificateFile: missing, keyFile: cert.keyFile)))
        }
    }

    /// Implicit TLS to a server whose certificate only the test trusts.
    func connect(_ options: TLSClientOptions) async throws -> Bool {
        let cert = try TestCertificate.get()
        let server = try await ScriptedSMTPServer.start(
            .init(implicitTLS: true, respond: SMTPConnectionTests.answer), tls: try cert.serverContext())
        let configuration = SMTPClientStateMachine.Configuration(clientName: "client.test", security: .implicitTLS)
        let encrypted: Result<Bool, any Error>
        do {
            encrypted = .success(
                try await SMTPConnection.withConnection(
                    to: .tcp(host: "localhost", port: server.port), configuration: configuration,
                    tlsContext: try TLSContextFactory.makeContext(options), timeouts: SMTPConnectionTests.timeouts
                ) { conn in
                    await conn.quit()
                    return conn.isEncrypted
                })
        } catch {
            encrypted = .failure(error)
        }
        await server.stop()
        return try encrypted.get()
    }

    @Test(
        "handshakes: trusted through the trust roots file, refused without it (a TLS error, not a time-out), accepted unchecked when pinned"
    )
    func handshakes() async throws {
        let cert = try TestCertificate.get()
        #expect(try await self.connect(TLSClientOptions(trustRootsFile: cert.certificateFile)))
        #expect(try await self.connect(TLSClientOptions(verification: .pinnedFingerprint)))
        do {
            _ = try await self.connect(TLSClientOptions())
            Issue.record("an untrusted certificate was accepted")
        } catch let e as SMTPTransportError {
            #expect(e.kind == .tlsFailed, "\(e)")
            #expect(e.phase == "TLS handshake")
        }
    }
}
