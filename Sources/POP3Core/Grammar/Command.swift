/// A POP3 command the client can send (RFC 1939, RFC 2449, RFC 2595, RFC 5034).
public enum Command: Hashable, Sendable {
    case capa
    case stls
    case user(String)
    case pass(String)
    /// `APOP name digest` (RFC 1939 §7); the digest is the lowercase hex MD5 of timestamp+secret.
    case apop(user: String, digest: String)
    /// `AUTH mechanism [initial-response]` (RFC 5034).
    case auth(mechanism: String, initialResponse: String?)
    /// A line answering a SASL continuation (base64, or `*` to cancel).
    case saslResponse(String)
    case stat
    case list(Int?)
    case uidl(Int?)
    case retr(Int)
    case top(Int, lines: Int)
    case dele(Int)
    case rset
    case noop
    case quit
    /// `UTF8` (RFC 6856 §2): switch the session to UTF-8 mode, so the server hands out 8-bit messages unaltered.
    case utf8

    /// Whether a positive answer to this command is followed by a multi-line block ending in `.CRLF`.
    public var expectsMultilineOnSuccess: Bool {
        switch self {
        case .capa, .retr, .top: return true
        case .list(let n), .uidl(let n): return n == nil
        default: return false
        }
    }

    /// The command keyword, safe to log.
    public var keyword: String {
        switch self {
        case .capa: return "CAPA"
        case .stls: return "STLS"
        case .user: return "USER"
        case .pass: return "PASS"
        case .apop: return "APOP"
        case .auth: return "AUTH"
        case .saslResponse: return "(SASL response)"
        case .stat: return "STAT"
        case .list: return "LIST"
        case .uidl: return "UIDL"
        case .retr: return "RETR"
        case .top: return "TOP"
        case .dele: return "DELE"
        case .rset: return "RSET"
        case .noop: return "NOOP"
        case .quit: return "QUIT"
        case .utf8: return "UTF8"
        }
    }

    /// Whether the command carries a credential and must never be logged verbatim.
    public var carriesSecret: Bool {
        switch self {
        case .pass, .apop, .auth, .saslResponse: return true
        default: return false
        }
    }
}

extension Command: CustomStringConvertible {
    /// A description without secrets: `PASS ********`, `APOP alice ********`.
    public var description: String {
        switch self {
        case .pass: return "PASS ********"
        case .apop(let user, _): return "APOP \(user) ********"
        case .auth(let mech, let ir): return "AUTH \(mech)" + (ir == nil ? "" : " ********")
        case .saslResponse: return "********"
        case .user(let u): return "USER \(u)"
        case .list(let n): return n.map { "LIST \($0)" } ?? "LIST"
        case .uidl(let n): return n.map { "UIDL \($0)" } ?? "UIDL"
        case .retr(let n): return "RETR \(n)"
        case .top(let n, let l): return "TOP \(n) \(l)"
        case .dele(let n): return "DELE \(n)"
        default: return self.keyword
        }
    }
}
