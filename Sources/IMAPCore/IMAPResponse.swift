/// The three results a command can end with (RFC 3501 §7.1), and the two conditions only an untagged response
/// carries (PREAUTH in the greeting, BYE before a close).
public enum IMAPCondition: String, Hashable, Sendable {
    case ok = "OK"
    case no = "NO"
    case bad = "BAD"
    case preauth = "PREAUTH"
    case bye = "BYE"
}

/// A response code, the bracketed part of a status response (RFC 3501 §7.1, RFC 4315 §3, RFC 5530, RFC 7889).
public enum IMAPResponseCode: Hashable, Sendable {
    case alert
    case capability([String])
    /// RFC 4315: the mailbox's UIDVALIDITY and the UID the appended message got.
    case appendUID(uidValidity: UInt32, uid: UInt32)
    case tryCreate
    /// RFC 5530.
    case overQuota
    /// RFC 5530: the operation went past a server limit (message size, for one).
    case limit
    case authenticationFailed
    case authorizationFailed
    case expired
    case unavailable
    case serverBug
    case inUse
    case nonExistent
    case alreadyExists
    case cannot
    /// RFC 7889: the largest message this server (or mailbox) takes.
    case appendLimit(UInt32)
    /// RFC 3501 §7.1: the selected mailbox's UIDVALIDITY and next UID.
    case uidValidity(UInt32)
    case uidNext(UInt32)
    /// Any other code, by its name (upper case) and what followed it, as received.
    case other(String, String)

    /// Whether this code says that trying again later may work (RFC 5530 §3: UNAVAILABLE, INUSE, SERVERBUG).
    public var isTransient: Bool {
        switch self {
        case .unavailable, .inUse, .serverBug: return true
        default: return false
        }
    }
}

/// The status part of a response: condition, optional code, human-readable text.
public struct IMAPStatus: Hashable, Sendable, CustomStringConvertible {
    public var condition: IMAPCondition
    public var code: IMAPResponseCode?
    /// The text after the code, control characters removed.
    public var text: String

    public init(condition: IMAPCondition, code: IMAPResponseCode? = nil, text: String) {
        self.condition = condition
        self.code = code
        self.text = text
    }

    public var description: String {
        var s = self.condition.rawValue
        if let code = self.code { s += " [\(code.name)]" }
        if !self.text.isEmpty { s += " " + self.text }
        return s
    }
}

extension IMAPResponseCode {
    /// The code's name as a server writes it.
    public var name: String {
        switch self {
        case .alert: return "ALERT"
        case .capability: return "CAPABILITY"
        case .appendUID(let v, let u): return "APPENDUID \(v) \(u)"
        case .tryCreate: return "TRYCREATE"
        case .overQuota: return "OVERQUOTA"
        case .limit: return "LIMIT"
        case .authenticationFailed: return "AUTHENTICATIONFAILED"
        case .authorizationFailed: return "AUTHORIZATIONFAILED"
        case .expired: return "EXPIRED"
        case .unavailable: return "UNAVAILABLE"
        case .serverBug: return "SERVERBUG"
        case .inUse: return "INUSE"
        case .nonExistent: return "NONEXISTENT"
        case .alreadyExists: return "ALREADYEXISTS"
        case .cannot: return "CANNOT"
        case .appendLimit(let n): return "APPENDLIMIT \(n)"
        case .uidValidity(let n): return "UIDVALIDITY \(n)"
        case .uidNext(let n): return "UIDNEXT \(n)"
        case .other(let name, let rest): return rest.isEmpty ? name : "\(name) \(rest)"
        }
    }
}

/// One complete server response (RFC 3501 §7): a continuation request, untagged data, or a command's completion.
public enum IMAPResponse: Hashable, Sendable {
    /// `+ text`: the server waits for a literal's bytes or for the next line of an AUTHENTICATE exchange (the text
    /// is then base64).
    case continuation(String)
    /// `* OK/NO/BAD/PREAUTH/BYE ...`.
    case untaggedStatus(IMAPStatus)
    /// `* CAPABILITY ...` (names as sent; compare them case-insensitively, as ``IMAPCapabilities`` does).
    case capability([String])
    /// `* SEARCH n n ...`: the numbers (UIDs after UID SEARCH), at most ``IMAPDefaults/maximumSearchResults``.
    case search([UInt32])
    /// `* n EXISTS`.
    case exists(UInt32)
    /// Any other untagged response, by its keyword (upper case; for `* n FETCH ...`: "FETCH").
    case untaggedOther(String)
    /// `tag OK/NO/BAD ...`: the command with this tag is done.
    case tagged(tag: String, status: IMAPStatus)
}
