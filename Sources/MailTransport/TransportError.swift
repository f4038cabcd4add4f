import NIOCore
import NIOPosix
import POP3Core

/// A failure below the POP3 protocol: name resolution, TCP, TLS, time-outs, a dropped connection.
public struct TransportError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Kind: Hashable, Sendable {
        /// The host name did not resolve.
        case unknownHost
        /// Every address refused the connection, or could not be reached.
        case connectionRefused
        /// No answer within the configured time-out.
        case timeout
        /// The server closed the connection unexpectedly.
        case connectionClosed
        /// The TLS handshake or certificate verification failed.
        case tlsFailed
        /// `tls = "starttls"` but the server does not announce STLS.
        case stlsNotOffered
        /// `tls = "starttls"` and the server answered STLS with -ERR.
        case stlsRefused
    }

    public var kind: Kind
    public var host: String
    public var port: Int
    /// What was going on (`connecting`, `waiting for the greeting`, `RETR 3`, ...).
    public var phase: String
    /// Extra detail from below (never contains secrets: it comes from the network layer).
    public var detail: String?
    /// The server's certificate chain failed verification (the reason is not known yet).
    public var certificateUnverified = false

    public init(_ kind: Kind, host: String, port: Int, phase: String, detail: String? = nil) {
        self.kind = kind
        self.host = host
        self.port = port
        self.phase = phase
        self.detail = detail
    }

    public var description: String {
        let endpoint = "\(self.host):\(self.port)"
        var s: String
        switch self.kind {
        case .unknownHost: s = "cannot resolve host name \(self.host)"
        case .connectionRefused: s = "cannot connect to \(endpoint)"
        case .timeout: s = "time-out talking to \(endpoint) while \(self.phase)"
        case .connectionClosed: s = "\(endpoint) closed the connection while \(self.phase)"
        case .tlsFailed: s = "TLS with \(endpoint) failed"
        case .stlsNotOffered:
            s = "\(endpoint) does not offer STLS, and tls = \"starttls\" forbids continuing in clear text"
        case .stlsRefused:
            s = "\(endpoint) refused STLS, and tls = \"starttls\" forbids continuing in clear text"
        }
        if let d = self.detail, !d.isEmpty { s += ": " + d }
        return s
    }
}

extension TransportError.Kind {
    /// What a failed connect means (POP3 and SMTP alike): the resolver found nothing, every address refused or could
    /// not be reached, or the time-out passed; with the detail from below, if any.
    static func ofConnectFailure(_ error: any Error) -> (kind: TransportError.Kind, detail: String?) {
        if let e = error as? NIOConnectionError {
            if e.connectionErrors.isEmpty && (e.dnsAError != nil || e.dnsAAAAError != nil) {
                return (.unknownHost, nil)
            }
            return (.connectionRefused, e.connectionErrors.map { "\($0.target): \($0.error)" }.joined(separator: "; "))
        }
        if case ChannelError.connectTimeout = error { return (.timeout, nil) }
        if let e = error as? IOError { return (.connectionRefused, e.description) }
        if error is SocketAddressError { return (.unknownHost, nil) }
        return (.connectionRefused, "\(error)")
    }
}
