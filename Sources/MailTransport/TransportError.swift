import NIOCore
import NIOPosix
import POP3Core

#if canImport(Glibc)
    import Glibc
#endif

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
    /// A hint at the configuration when the failure points at the TLS mode or port (a clear-text port with implicit
    /// TLS, a TLS port with STLS): what to change.
    public var hint: String?

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
        case .connectionRefused:
            // No detail: every address refused (the commonest case, said first).
            s = self.detail == nil ? "connection refused by \(endpoint)" : "cannot connect to \(endpoint)"
        case .timeout:
            let when = self.phase == "TLS handshake" ? "in the TLS handshake" : "while \(self.phase)"
            s = "time-out talking to \(endpoint) \(when)"
        case .connectionClosed: s = "\(endpoint) closed the connection while \(self.phase)"
        case .tlsFailed: s = "TLS with \(endpoint) failed"
        case .stlsNotOffered:
            s = "\(endpoint) does not offer STLS, and tls = \"starttls\" forbids continuing in clear text"
        case .stlsRefused:
            s = "\(endpoint) refused STLS, and tls = \"starttls\" forbids continuing in clear text"
        }
        if let d = self.detail, !d.isEmpty { s += ": " + d }
        if let h = self.hint { s += "; " + h }
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
            let reasons = e.connectionErrors.map { Self.reason($0.error) }
            if !reasons.isEmpty && reasons.allSatisfy({ $0 == Self.refused }) { return (.connectionRefused, nil) }
            if Set(reasons).count == 1, let reason = reasons.first { return (.connectionRefused, reason) }
            let each = zip(e.connectionErrors, reasons).map { failure, reason in
                "\(failure.target.ipAddress ?? "\(failure.target)"): \(reason)"
            }
            return (.connectionRefused, each.joined(separator: "; "))
        }
        if case ChannelError.connectTimeout = error { return (.timeout, nil) }
        if let e = error as? IOError, e.errnoCode == ECONNREFUSED { return (.connectionRefused, nil) }
        if let e = error as? IOError { return (.connectionRefused, Self.reason(e)) }
        if error is SocketAddressError { return (.unknownHost, nil) }
        return (.connectionRefused, "\(error)")
    }

    static let refused = "connection refused"

    /// Why one connect failed, in plain words: the system's words for its errno, not NIO's wrapping of them.
    static func reason(_ error: any Error) -> String {
        guard let e = error as? IOError else {
            if case ChannelError.connectTimeout = error { return "no answer (time-out)" }
            return "\(error)"
        }
        switch e.errnoCode {
        case ECONNREFUSED: return Self.refused
        case ENETUNREACH: return "network unreachable"
        case EHOSTUNREACH: return "host unreachable"
        case ETIMEDOUT: return "no answer (time-out)"
        case EADDRNOTAVAIL: return "address not available"
        default: return String(cString: strerror(e.errnoCode)).lowercased()
        }
    }
}
