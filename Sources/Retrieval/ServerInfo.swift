import Configuration
import MailTransport
public import POP3Core
import SystemSupport

/// What a POP3 server says about itself before login, as `popfetch check --capabilities` (`serverinfo`) shows it:
/// the greeting, the TLS version and certificate (verified as a poll verifies them), and the capabilities, after
/// STLS where the account uses it. Nothing is sent after CAPA but QUIT; no credential leaves popfetch.
public struct ServerInfo: Hashable, Sendable {
    public var greeting: String
    /// The greeting carries an APOP timestamp.
    public var offersAPOP: Bool
    public var tlsVersion: String?
    /// Names, validity and SHA-256 fingerprint.
    public var certificate: String?
    /// The certificate's subject and issuer (distinguished names).
    public var subject: String?
    public var issuer: String?
    /// The capabilities in clear text, before STLS (nil without STLS, or when CAPA is not supported).
    public var beforeTLS: Capabilities?
    /// The capabilities that hold for the session (after STLS where used); nil when CAPA is not supported.
    public var capabilities: Capabilities?

    /// The lines `check --capabilities` prints, indented under the account's name.
    public var lines: [String] {
        var lines = ["greeting       \(self.greeting)"]
        lines.append("TLS            \(self.tlsVersion.map { "\($0), certificate verified" } ?? "none (clear text)")")
        if let c = self.certificate { lines.append("certificate    \(c)") }
        if let s = self.subject { lines.append("  subject      \(s)") }
        if let i = self.issuer { lines.append("  issuer       \(i)") }
        guard let caps = self.capabilities else {
            lines.append("capabilities   none announced (the server does not support CAPA)")
            lines.append("APOP           \(self.offersAPOP ? "offered (timestamp in the greeting)" : "not offered")")
            return lines
        }
        lines.append(
            "capabilities   "
                + caps.all.map { ([$0.name] + $0.parameters).joined(separator: " ") }.joined(separator: ", "))
        if let before = self.beforeTLS, before != caps {
            lines.append(
                "before STLS    "
                    + before.all.map { ([$0.name] + $0.parameters).joined(separator: " ") }.joined(separator: ", "))
        }
        let sasl = caps.saslMechanisms
        lines.append("SASL           \(sasl.isEmpty ? "none announced" : sasl.joined(separator: " "))")
        lines.append("USER/PASS      \(caps.supportsUSER ? "offered" : "not announced")")
        lines.append("APOP           \(self.offersAPOP ? "offered (timestamp in the greeting)" : "not offered")")
        lines.append("UIDL           \(caps.supportsUIDL ? "yes" : "not announced")")
        lines.append("PIPELINING     \(caps.supportsPipelining ? "yes" : "no")")
        switch caps.expire {
        case .never?: lines.append("EXPIRE         never (the server keeps messages until they are deleted)")
        case .days(0)?:
            lines.append("EXPIRE         0 (the server deletes every message retrieved at the end of the session)")
        case .days(let n)?: lines.append("EXPIRE         \(n) days after retrieval")
        case nil: lines.append("EXPIRE         not announced")
        }
        lines.append("LOGIN-DELAY    \(caps.loginDelay.map { "\($0) s between logins" } ?? "not announced")")
        return lines
    }
}

extension AccountPoller {
    /// Connects as a poll does (TLS verified, pinned fingerprint honoured), reads the greeting and CAPA (before and
    /// after STLS where configured), and QUITs without logging in.
    public func serverInfo() async throws -> ServerInfo {
        let tlsContext = try self.makeTLSContext()
        let usesSTLS = self.account.server.tls == .starttls
        return try await POP3Connection.withConnection(to: self.endpoint, tlsContext: tlsContext) { conn in
            let greeting = conn.greeting.map { "\($0)" } ?? ""
            var before: Capabilities?
            var caps = try await conn.capabilities()
            if usesSTLS {
                before = caps
                try await conn.startTLS()
                caps = try await conn.capabilities()
            }
            let version = try await conn.tlsVersion()
            let certificate = try await conn.peerCertificate()
            _ = try? await conn.quit()
            return ServerInfo(
                greeting: greeting, offersAPOP: conn.apopTimestamp != nil, tlsVersion: version,
                certificate: certificate.map { "\($0)" }, subject: certificate?.subject, issuer: certificate?.issuer,
                beforeTLS: before, capabilities: caps)
        }
    }
}
