public import Configuration
public import Foundation
import MailTransport
import NIOCore
import SystemSupport

/// An account's POP3 server certificate as `popfetch check --show-certificate` shows it: fetched without
/// verification (to show what is there, even when it would be refused), never used to log in.
public struct ServerCertificate: Hashable, Sendable {
    /// The DNS names it is valid for.
    public var names: [String]
    /// `sha256:AB:CD:...`, the form `fingerprint = ...` in the config takes.
    public var fingerprint: String
    public var notValidBefore: Date
    public var notValidAfter: Date

    /// Connects (and upgrades with STLS where configured), reads the certificate, and disconnects.
    public static func fetch(for account: AccountConfiguration) async throws -> ServerCertificate {
        let c = try await POP3Connection.inspectCertificate(
            host: account.server.host, port: account.server.port, tls: account.server.tls,
            timeout: .seconds(Int64(account.server.timeout)))
        return ServerCertificate(
            names: c.dnsNames, fingerprint: CertificateFingerprint.format(c.fingerprint),
            notValidBefore: Date(timeIntervalSince1970: Double(c.notValidBefore)),
            notValidAfter: Date(timeIntervalSince1970: Double(c.notValidAfter)))
    }
}
