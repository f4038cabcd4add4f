import Crypto
import _CryptoExtras

/// A SASL mechanism failed on the client side (bad challenge, or the server's proof did not verify).
public struct SASLError: Error, Hashable, Sendable, CustomStringConvertible {
    public var mechanism: String
    public var message: String
    public init(_ mechanism: String, _ message: String) {
        self.mechanism = mechanism
        self.message = message
    }
    public var description: String { "\(self.mechanism): \(self.message)" }
}

/// The client side of a SASL mechanism (RFC 4422) as a pure value: it produces an optional initial response and
/// answers each server challenge. No I/O, no base64 (the protocol layer encodes).
public protocol SASLMechanism: Sendable {
    /// The IANA name, e.g. `SCRAM-SHA-256`.
    var name: String { get }
    /// The initial response, if this mechanism sends one (empty means an empty response, nil means none).
    mutating func initialResponse() throws -> [UInt8]?
    /// The answer to one server challenge.
    mutating func respond(to challenge: [UInt8]) throws -> [UInt8]
    /// Called when the server reported success: a mechanism that authenticates the server (SCRAM) checks here
    /// that it did.
    func verifyCompletion() throws
}

extension SASLMechanism {
    public func verifyCompletion() throws {}
}

/// RFC 4616 PLAIN: `authzid NUL authcid NUL password` in one initial response.
public struct PlainMechanism: SASLMechanism {
    public let name = "PLAIN"
    let user: String
    let password: String
    let authorizationID: String
    public init(user: String, password: String, authorizationID: String = "") {
        self.user = user
        self.password = password
        self.authorizationID = authorizationID
    }
    public func initialResponse() -> [UInt8]? {
        Array(self.authorizationID.utf8) + [0] + Array(self.user.utf8) + [0] + Array(self.password.utf8)
    }
    public func respond(to challenge: [UInt8]) throws -> [UInt8] {
        // A server that ignores the initial response sends an empty challenge.
        guard challenge.isEmpty, let r = self.initialResponse() else {
            throw SASLError(self.name, "unexpected challenge")
        }
        return r
    }
}

/// The (non-standard but ubiquitous) LOGIN mechanism: user name, then password, each on request.
public struct LoginMechanism: SASLMechanism {
    public let name = "LOGIN"
    let user: String
    let password: String
    var step = 0
    public init(user: String, password: String) {
        self.user = user
        self.password = password
    }
    public func initialResponse() -> [UInt8]? { nil }
    public mutating func respond(to challenge: [UInt8]) throws -> [UInt8] {
        defer { self.step += 1 }
        let prompt = String(decoding: challenge, as: UTF8.self).lowercased()
        if prompt.hasPrefix("user") || (self.step == 0 && !prompt.hasPrefix("pass")) { return Array(self.user.utf8) }
        if prompt.hasPrefix("pass") || self.step == 1 { return Array(self.password.utf8) }
        throw SASLError(self.name, "unexpected third challenge")
    }
}

/// RFC 2195 CRAM-MD5: `user SP hex(HMAC-MD5(password, challenge))`.
public struct CramMD5Mechanism: SASLMechanism {
    public let name = "CRAM-MD5"
    let user: String
    let password: String
    public init(user: String, password: String) {
        self.user = user
        self.password = password
    }
    public func initialResponse() -> [UInt8]? { nil }
    public func respond(to challenge: [UInt8]) throws -> [UInt8] {
        guard !challenge.isEmpty else { throw SASLError(self.name, "empty challenge") }
        let key = SymmetricKey(data: Array(self.password.utf8))
        let mac = HMAC<Insecure.MD5>.authenticationCode(for: challenge, using: key)
        return Array((self.user + " " + Hex.encode(Array(mac))).utf8)
    }
}

/// RFC 7628 OAUTHBEARER: `n,a=user,^Aauth=Bearer token^A^A`; an error challenge (JSON) is answered with `^A`.
public struct OAuthBearerMechanism: SASLMechanism {
    public let name = "OAUTHBEARER"
    let user: String
    let token: String
    public init(user: String, token: String) {
        self.user = user
        self.token = token
    }
    public func initialResponse() -> [UInt8]? {
        Array("n,a=\(SCRAMMechanism.saslName(self.user)),\u{1}auth=Bearer \(self.token)\u{1}\u{1}".utf8)
    }
    public func respond(to challenge: [UInt8]) throws -> [UInt8] { [1] }
}

/// Google/Microsoft XOAUTH2: `user=U^Aauth=Bearer T^A^A`; an error challenge is answered with an empty response.
public struct XOAuth2Mechanism: SASLMechanism {
    public let name = "XOAUTH2"
    let user: String
    let token: String
    public init(user: String, token: String) {
        self.user = user
        self.token = token
    }
    public func initialResponse() -> [UInt8]? {
        Array("user=\(self.user)\u{1}auth=Bearer \(self.token)\u{1}\u{1}".utf8)
    }
    public func respond(to challenge: [UInt8]) throws -> [UInt8] { [] }
}

/// RFC 4422 Appendix A EXTERNAL: the identity comes from the TLS client certificate; empty response.
public struct ExternalMechanism: SASLMechanism {
    public let name = "EXTERNAL"
    public init() {}
    public func initialResponse() -> [UInt8]? { [] }
    public func respond(to challenge: [UInt8]) throws -> [UInt8] { [] }
}

enum Hex {
    static func encode(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
