/// The control socket's protocol: one request line from the client (`popfetch wake`), one reply line from the
/// daemon, then the daemon closes the connection. Lines end in LF and are at most ``ControlRequest/maximumLineLength``
/// octets. Both sides encode and parse with these two types only.
///
///     C: wake                  S: ok
///     C: wake work             S: ok
///     C: wake nope             S: error unknown-account nope
///     C: frobnicate            S: error bad-request unknown request "frobnicate"
///     C: wake                  S: error shutting-down
public enum ControlRequest: Hashable, Sendable {
    /// Poll one account now (nil: every account).
    case wake(account: String?)

    /// The longest request or reply line, LF included.
    public static let maximumLineLength = 512

    /// Parses one request line (its LF, and a CR before it, already removed or not).
    public init(parsing line: some StringProtocol) throws(ControlProtocolError) {
        let text = ControlProtocolError.trimmed(line)
        guard !text.contains(where: \.isControlCharacter) else {
            throw ControlProtocolError(.malformed, line: text, "a control character in the request")
        }
        let parts = text.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        switch parts.first {
        case "wake":
            let name = parts.count > 1 ? String(parts[1]).trimmingSpaces() : ""
            self = .wake(account: name.isEmpty ? nil : name)
        default:
            throw ControlProtocolError(.unknownRequest, line: text, "unknown request \"\(text.prefix(80))\"")
        }
    }

    /// The request line, LF included. Throws for what one line cannot carry (a control character in a name, or a
    /// name too long).
    public func encoded() throws(ControlProtocolError) -> String {
        let line: String
        switch self {
        case .wake(nil): line = "wake"
        case .wake(let name?):
            guard !name.contains(where: \.isControlCharacter), !name.trimmingSpaces().isEmpty else {
                throw ControlProtocolError(.malformed, line: name, "an account name must be one line of text")
            }
            line = "wake \(name)"
        }
        guard line.utf8.count < Self.maximumLineLength else {
            throw ControlProtocolError(.tooLong, line: String(line.prefix(80)), "the request is too long")
        }
        return line + "\n"
    }
}

/// The daemon's answer to a ``ControlRequest``.
public enum ControlReply: Hashable, Sendable, CustomStringConvertible {
    case ok
    /// `wake NAME` named no account of the running configuration.
    case unknownAccount(String)
    /// `wake NAME` named an account with `enabled = false`: the daemon does not poll it.
    case disabledAccount(String)
    /// The request could not be parsed; the text says why.
    case badRequest(String)
    /// The daemon got SIGTERM/SIGINT and is letting its polls finish; it starts no new one.
    case shuttingDown
    /// Any other error line (from a newer or older daemon), verbatim.
    case failed(String)

    /// Parses one reply line.
    public init(parsing line: some StringProtocol) throws(ControlProtocolError) {
        let text = ControlProtocolError.trimmed(line)
        if text == "ok" {
            self = .ok
            return
        }
        guard text.hasPrefix("error ") else {
            throw ControlProtocolError(.malformed, line: text, "not a control reply")
        }
        let rest = text.dropFirst("error ".count)
        let parts = rest.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
        let detail = parts.count > 1 ? String(parts[1]) : ""
        switch parts.first {
        case "unknown-account": self = .unknownAccount(detail)
        case "disabled-account": self = .disabledAccount(detail)
        case "bad-request": self = .badRequest(detail)
        case "shutting-down": self = .shuttingDown
        default: self = .failed(String(rest))
        }
    }

    /// The reply line, LF included: control characters in a detail become spaces, and it is cut to fit one line.
    public var encoded: String {
        var line: String
        switch self {
        case .ok: line = "ok"
        case .unknownAccount(let name): line = "error unknown-account \(name)"
        case .disabledAccount(let name): line = "error disabled-account \(name)"
        case .badRequest(let why): line = "error bad-request \(why)"
        case .shuttingDown: line = "error shutting-down"
        case .failed(let text): line = "error \(text)"
        }
        line = String(line.map { $0.isControlCharacter ? " " : $0 })
        while line.utf8.count >= ControlRequest.maximumLineLength { line.removeLast() }
        return line + "\n"
    }

    public var isOK: Bool { self == .ok }

    /// For the user: what the daemon said.
    public var description: String {
        switch self {
        case .ok: return "ok"
        case .unknownAccount(let name): return "the daemon has no account named \"\(name)\""
        case .disabledAccount(let name):
            return "account \"\(name)\" is disabled (enabled = false): the daemon does not poll it; "
                + "`popfetch poll --account \(name)` polls it once"
        case .badRequest(let why): return "the daemon did not understand the request: \(why)"
        case .shuttingDown: return "the daemon is shutting down and starts no new poll"
        case .failed(let text): return "the daemon answered: \(text)"
        }
    }
}

/// A control line that cannot be parsed or encoded.
public struct ControlProtocolError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Backing: String, Hashable, Sendable { case malformed, unknownRequest, tooLong }
        private let backing: Backing
        public static let malformed = Code(backing: .malformed)
        public static let unknownRequest = Code(backing: .unknownRequest)
        public static let tooLong = Code(backing: .tooLong)
        public var description: String { self.backing.rawValue }
    }

    public var code: Code
    /// The offending line (or its start).
    public var line: String
    public var message: String

    public init(_ code: Code, line: String, _ message: String) {
        self.code = code
        self.line = line
        self.message = message
    }

    public var description: String { self.message }

    public static func == (a: Self, b: Self) -> Bool { a.code == b.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(self.code) }

    /// The line without its line end.
    static func trimmed(_ line: some StringProtocol) -> String {
        var text = String(line)
        while let last = text.last, last == "\n" || last == "\r" || last == "\r\n" { text.removeLast() }
        return text
    }
}

extension Character {
    var isControlCharacter: Bool { self.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F } }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return String(s)
    }
}
