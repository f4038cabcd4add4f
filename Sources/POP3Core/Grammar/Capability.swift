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

    /// RFC 2449 §6.5: `LOGIN-DELAY n` — seconds the server wants between logins.
    public var loginDelay: Int? {
        guard let p = self.all.first(where: { $0.name == "LOGIN-DELAY" })?.parameters.first else { return nil }
        return Int(p)
    }
}
