/// A line of the SMTP AUTH exchange (RFC 4954 §4): the `AUTH` command, or the client's answer to a `334` challenge.
///
/// SASL itself is opaque here: the initial response and the responses are base64 text produced by the caller's
/// mechanism (SMTPCore does not depend on the SASL target). ``description`` never shows them: they carry secrets.
///
/// ```
/// C: AUTH PLAIN AGFsaWNlAHNlY3JldA==
/// S: 235 2.7.0 Authentication successful
/// ```
public enum SMTPAuthenticationLine: Hashable, Sendable, CustomStringConvertible {
    /// `AUTH mechanism [initial-response]` (RFC 4954 §4). An empty initial response goes on the wire as `=`.
    case auth(mechanism: String, initialResponse: String?)
    /// The base64 answer to a `334` challenge; an empty string is an empty response, and `*` cancels the exchange
    /// (the server then answers `501`, RFC 4954 §4).
    case response(String)

    /// The line with CRLF. The mechanism must be a SASL mechanism name (RFC 4422 §3.1: 1 to 20 of `A-Z`, `0-9`,
    /// `-`, `_`; lower case is accepted and sent as given), and responses must be base64 (RFC 4648 §4) or `*`.
    /// The error message never includes the response.
    public func encoded() throws -> [UInt8] {
        var line: [UInt8]
        switch self {
        case .auth(let mechanism, let initialResponse):
            guard Self.isMechanismName(mechanism) else {
                throw SMTPCommand.EncodingError(message: "invalid SASL mechanism name \(mechanism.debugDescription)")
            }
            line = Array("AUTH \(mechanism)".utf8)
            if let initialResponse {
                guard Self.isBase64(initialResponse) else {
                    throw SMTPCommand.EncodingError(message: "the AUTH \(mechanism) initial response is not base64")
                }
                line += Array(" \(initialResponse.isEmpty ? "=" : initialResponse)".utf8)
            }
        case .response(let response):
            guard response == "*" || Self.isBase64(response) else {
                throw SMTPCommand.EncodingError(message: "the SASL response is neither base64 nor \"*\"")
            }
            line = Array(response.utf8)
        }
        line += [13, 10]
        return line
    }

    public var description: String {
        switch self {
        case .auth(let mechanism, nil): return "AUTH \(mechanism)"
        case .auth(let mechanism, _): return "AUTH \(mechanism) <initial response redacted>"
        case .response("*"): return "* (cancel)"
        case .response: return "<SASL response redacted>"
        }
    }

    // sasl-mech = 1*20mech-char ; mech-char = UPPER-ALPHA / DIGIT / HYPHEN / UNDERSCORE   (RFC 4422 §3.1)
    static func isMechanismName(_ s: String) -> Bool {
        let scalars = s.unicodeScalars
        return (1...SMTPDefaults.maximumSASLMechanismNameLength).contains(scalars.count)
            && scalars.allSatisfy { c in
                ("A"..."Z").contains(c) || ("a"..."z").contains(c) || ("0"..."9").contains(c) || c == "-" || c == "_"
            }
    }

    // base64 = *(4base64-char) [base64-terminal]   (RFC 4954 §4, RFC 4648 §4 alphabet); only the alphabet is checked.
    static func isBase64(_ s: String) -> Bool {
        s.unicodeScalars.allSatisfy { c in
            ("A"..."Z").contains(c) || ("a"..."z").contains(c) || ("0"..."9").contains(c) || c == "+" || c == "/"
                || c == "="
        }
    }
}
