/// A failure below the IMAP protocol: name resolution, the connection, TLS, a time-out, a dropped connection.
/// (What the server answered is an ``IMAPCommandError``; bytes outside the grammar an ``IMAPProtocolError``.)
public struct IMAPTransportError: Error, Hashable, Sendable, CustomStringConvertible {
    public var kind: TransportError.Kind
    public var host: String
    public var port: Int
    /// What was going on (`connecting`, `TLS handshake`, `APPEND`, ...).
    public var phase: String
    /// Extra detail from below (never a secret: it comes from the network layer).
    public var detail: String?

    public init(_ kind: TransportError.Kind, host: String, port: Int, phase: String, detail: String? = nil) {
        self.kind = kind
        self.host = host
        self.port = port
        self.phase = phase
        self.detail = detail
    }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.kind == rhs.kind }
    public func hash(into hasher: inout Hasher) { hasher.combine(self.kind) }

    public var description: String {
        let server = "the IMAP server at \(self.host.contains(":") ? "[\(self.host)]" : self.host):\(self.port)"
        var s: String
        switch self.kind {
        case .unknownHost: s = "cannot resolve the host name of \(server)"
        case .connectionRefused:
            s = self.detail == nil ? "connection refused by \(server)" : "cannot connect to \(server)"
        case .timeout: s = "time-out talking to \(server) while \(self.phase)"
        case .connectionClosed: s = "\(server) closed the connection while \(self.phase)"
        case .tlsFailed: s = "TLS with \(server) failed (\(self.phase))"
        case .stlsNotOffered: s = "\(server) does not offer STARTTLS"
        case .stlsRefused: s = "\(server) refused STARTTLS"
        }
        if let d = self.detail, !d.isEmpty { s += ": " + d }
        return s
    }
}
