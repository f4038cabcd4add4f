/// How a POP3 connection is protected (RFC 8314, RFC 2595).
public enum TLSMode: String, Hashable, Sendable, CaseIterable {
    /// TLS from the first byte (POP3S, port 995).
    case implicit
    /// Plain connection upgraded with STLS; never continues in clear text if that fails.
    case starttls
    /// No TLS at all.
    case none
}
