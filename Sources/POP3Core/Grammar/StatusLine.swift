/// A POP3 status indicator line: `+OK ...`, `-ERR ...`, or a SASL continuation `+ ...`.
///
/// ```
/// S: +OK 2 messages (320 octets)
/// S: -ERR [IN-USE] Mailbox locked by another session
/// ```
public struct StatusLine: Hashable, Sendable {
    public enum Indicator: Hashable, Sendable {
        case ok
        case err
        /// RFC 5034 §4: `+ ` followed by base64 data (a SASL challenge).
        case continuation
    }

    public var indicator: Indicator
    /// An RFC 2449 / RFC 3206 response code in square brackets at the start of the text, if any.
    public var code: ResponseCode?
    /// The human-readable text after the indicator (and after the response code, if any).
    public var text: String

    public init(indicator: Indicator, code: ResponseCode? = nil, text: String) {
        self.indicator = indicator
        self.code = code
        self.text = text
    }

    public var isOK: Bool { self.indicator == .ok }
}

extension StatusLine: CustomStringConvertible {
    public var description: String {
        var s: String
        switch self.indicator {
        case .ok: s = "+OK"
        case .err: s = "-ERR"
        case .continuation: s = "+"
        }
        if let code = self.code { s += " [\(code.rawValue)]" }
        if !self.text.isEmpty { s += " " + self.text }
        return s
    }
}

/// Extended response codes (RFC 2449 §8, RFC 3206).
public enum ResponseCode: Hashable, Sendable {
    /// RFC 2449 §8.1.1: the mailbox is locked by another session.
    case inUse
    /// RFC 2449 §8.1.2: the user logged in too recently.
    case loginDelay
    /// RFC 3206 §4: a temporary system problem.
    case sysTemp
    /// RFC 3206 §4: a permanent system problem.
    case sysPerm
    /// RFC 3206 §5: the credentials were wrong.
    case auth
    /// Any other code, kept verbatim (for example `UTF8` or a vendor code).
    case other(String)

    public init(rawValue: String) {
        switch rawValue.uppercased() {
        case "IN-USE": self = .inUse
        case "LOGIN-DELAY": self = .loginDelay
        case "SYS/TEMP": self = .sysTemp
        case "SYS/PERM": self = .sysPerm
        case "AUTH": self = .auth
        default: self = .other(rawValue)
        }
    }

    public var rawValue: String {
        switch self {
        case .inUse: return "IN-USE"
        case .loginDelay: return "LOGIN-DELAY"
        case .sysTemp: return "SYS/TEMP"
        case .sysPerm: return "SYS/PERM"
        case .auth: return "AUTH"
        case .other(let s): return s
        }
    }
}
