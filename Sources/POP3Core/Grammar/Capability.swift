/// One line of a CAPA listing (RFC 2449 §6).
///
/// ```
/// S: +OK
/// S: TOP
/// S: UIDL
/// S: SASL PLAIN LOGIN
/// S: PIPELINING
/// S: .
/// ```
public struct Capability: Hashable, Sendable {
    /// The capability name, upper-cased (`TOP`, `UIDL`, `SASL`, `STLS`, `PIPELINING`, ...).
    public var name: String
    /// The parameters that follow the name.
    public var parameters: [String]

    public init(name: String, parameters: [String] = []) {
        self.name = name.uppercased()
        self.parameters = parameters
    }

    // capability = capa-tag *(SP param) ; RFC 2449 §9
    public init?(line: String) {
        let parts = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard let first = parts.first else { return nil }
        self.init(name: first, parameters: Array(parts.dropFirst()))
    }
}

/// The capabilities a server announced, with convenience queries.
public struct Capabilities: Hashable, Sendable {
    public var all: [Capability]

    public init(_ all: [Capability] = []) { self.all = all }

    public func contains(_ name: String) -> Bool {
        let upper = name.uppercased()
        return self.all.contains { $0.name == upper }
    }

    public var supportsSTLS: Bool { self.contains("STLS") }
    public var supportsUIDL: Bool { self.contains("UIDL") }
    public var supportsTOP: Bool { self.contains("TOP") }
    public var supportsPipelining: Bool { self.contains("PIPELINING") }
    public var supportsUSER: Bool { self.contains("USER") }
    public var supportsRespCodes: Bool { self.contains("RESP-CODES") }

    /// SASL mechanisms from the `SASL` capability, upper-cased.
    public var saslMechanisms: [String] {
        self.all.first { $0.name == "SASL" }?.parameters.map { $0.uppercased() } ?? []
    }

    /// RFC 6856 §2: the server offers the `UTF8` command (and may alter 8-bit messages for clients that do not
    /// send it).
    public var supportsUTF8: Bool { self.contains("UTF8") }

    // LOGIN-DELAY capa = "LOGIN-DELAY" SP delay-secs [SP "USER"]   ; RFC 2449 §6.5
    /// RFC 2449 §6.5: `LOGIN-DELAY n` — seconds the server wants between logins, clamped to
    /// ``POP3Defaults/maximumLoginDelay``; `nil` when absent or not a plain number.
    public var loginDelay: Int? {
        guard let p = self.all.first(where: { $0.name == "LOGIN-DELAY" })?.parameters.first,
            let n = DecimalNumber.parse(Substring(p))
        else { return nil }
        return min(n, POP3Defaults.maximumLoginDelay)
    }

    /// RFC 2449 §6.7: how long the server keeps a message after it was retrieved.
    public enum Expiry: Hashable, Sendable {
        /// `EXPIRE NEVER`: the server does not delete messages by itself.
        case never
        /// `EXPIRE n`: days, clamped to ``POP3Defaults/maximumExpireDays`` (0: deleted at the end of the session).
        case days(Int)
    }

    // EXPIRE capa = "EXPIRE" SP expire-policy [SP "USER"]; expire-policy = "NEVER" / 1*DIGIT   ; RFC 2449 §6.7
    /// The `EXPIRE` policy, or `nil` when absent or malformed.
    public var expire: Expiry? {
        guard let p = self.all.first(where: { $0.name == "EXPIRE" })?.parameters.first else { return nil }
        if p.uppercased() == "NEVER" { return .never }
        guard let n = DecimalNumber.parse(Substring(p)) else { return nil }
        return .days(min(n, POP3Defaults.maximumExpireDays))
    }
}
