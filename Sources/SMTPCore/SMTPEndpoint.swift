/// Where an SMTP/LMTP connection goes.
public enum SMTPEndpoint: Hashable, Sendable, CustomStringConvertible {
    case tcp(host: String, port: Int)
    case unix(path: String)

    public var description: String {
        switch self {
        case .tcp(let h, let p): return h.contains(":") ? "[\(h)]:\(p)" : "\(h):\(p)"
        case .unix(let path): return path
        }
    }
}

/// Reading an SMTP/LMTP target as the config writes it.
extension SMTPEndpoint {
    /// `host:port`, `[v6]:port`, or an absolute unix socket path. `defaultPort` applies to a bare host.
    public static func parse(_ s: String, defaultPort: Int) -> SMTPEndpoint? {
        if s.hasPrefix("/") { return .unix(path: s) }
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]") else { return nil }
            let host = String(s[s.index(after: s.startIndex)..<close])
            let rest = s[s.index(after: close)...]
            if rest.isEmpty { return host.isEmpty ? nil : .tcp(host: host, port: defaultPort) }
            guard rest.hasPrefix(":"), let p = Int(rest.dropFirst()), p > 0, p < 65536, !host.isEmpty else {
                return nil
            }
            return .tcp(host: host, port: p)
        }
        let parts = s.split(separator: ":", omittingEmptySubsequences: false)
        if parts.count == 1 { return s.isEmpty ? nil : .tcp(host: s, port: defaultPort) }
        guard parts.count == 2, !parts[0].isEmpty, let p = Int(parts[1]), p > 0, p < 65536 else { return nil }
        return .tcp(host: String(parts[0]), port: p)
    }
}

/// How an SMTP/LMTP connection is protected: clear text, upgraded with STARTTLS (RFC 3207), or TLS from the
/// first byte (RFC 8314, port 465).
public enum SMTPTLSMode: String, Hashable, Sendable, CaseIterable {
    case none
    case starttls
    case implicit
}
