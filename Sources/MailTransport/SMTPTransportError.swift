public import SMTPCore

/// A failure below the SMTP/LMTP protocol: name resolution, the connection, TLS, a time-out, a dropped connection.
/// (What the server said is an ``SMTPClientError``; a reply that cannot be parsed an ``SMTPProtocolError``.)
///
/// Errors compare by ``kind`` only; the rest is context for people.
public struct SMTPTransportError: Error, Hashable, Sendable, CustomStringConvertible {
    public var kind: TransportError.Kind
    public var endpoint: SMTPEndpoint
    /// What was going on (`connecting`, `TLS handshake`, `waiting for the reply to RCPT TO`, ...).
    public var phase: String
    /// Extra detail from below (never contains secrets: it comes from the network layer).
    public var detail: String?

    public init(_ kind: TransportError.Kind, endpoint: SMTPEndpoint, phase: String, detail: String? = nil) {
        self.kind = kind
        self.endpoint = endpoint
        self.phase = phase
        self.detail = detail
    }

    public static func == (lhs: SMTPTransportError, rhs: SMTPTransportError) -> Bool { lhs.kind == rhs.kind }
    public func hash(into hasher: inout Hasher) { hasher.combine(self.kind) }

    public var description: String {
        let mta = "the MTA at \(self.endpoint)"
        var s: String
        switch self.kind {
        case .unknownHost: s = "cannot resolve the host name of \(mta)"
        case .connectionRefused: s = self.detail == nil ? "connection refused by \(mta)" : "cannot connect to \(mta)"
        case .timeout: s = "time-out talking to \(mta) while \(self.phase)"
        case .connectionClosed: s = "\(mta) closed the connection while \(self.phase)"
        case .tlsFailed: s = "TLS with \(mta) failed (\(self.phase))"
        case .stlsNotOffered, .stlsRefused: s = "\(mta) cannot do STARTTLS (\(self.phase))"
        }
        if let d = self.detail, !d.isEmpty { s += ": " + d }
        return s
    }
}
