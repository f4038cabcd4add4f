import Crypto
import FoundationEssentials
import _CryptoExtras

/// RFC 5802 SCRAM-SHA-1 and RFC 7677 SCRAM-SHA-256 (without channel binding: gs2 header `n,,`), verifying the
/// server's signature: a server that does not know the password cannot pass.
public struct SCRAMMechanism: SASLMechanism {
    public enum Hash: String, Sendable {
        case sha1 = "SCRAM-SHA-1"
        case sha256 = "SCRAM-SHA-256"
    }

    public var name: String { self.hash.rawValue }
    let hash: Hash
    let user: String
    let password: String
    let clientNonce: String
    private var clientFirstBare = ""
    private var expectedServerSignature: [UInt8]?
    private var serverVerified = false
    private var step = 0

    /// Iteration counts above this are refused (a hostile server could make the client burn CPU).
    public static let maximumIterations = 1_000_000

    public init(hash: Hash, user: String, password: String, nonce: String? = nil) {
        self.hash = hash
        self.user = user
        self.password = password
        self.clientNonce = nonce ?? Self.randomNonce()
    }

    static func randomNonce() -> String {
        let chars = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
        var rng = SystemRandomNumberGenerator()
        return String((0..<24).map { _ in chars[Int(rng.next() % UInt64(chars.count))] })
    }

    /// RFC 5802 §5.1: `=` → `=3D`, `,` → `=2C` in the user name.
    static func saslName(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "=": out += "=3D"
            case ",": out += "=2C"
            default: out.append(c)
            }
        }
        return out
    }

    public mutating func initialResponse() -> [UInt8]? {
        self.clientFirstBare = "n=\(Self.saslName(self.user)),r=\(self.clientNonce)"
        self.step = 1
        return Array(("n,," + self.clientFirstBare).utf8)
    }

    public mutating func respond(to challenge: [UInt8]) throws -> [UInt8] {
        if self.step == 0 {
            // The server ignored the initial response (empty challenge): send it now.
            guard let first = self.initialResponse() else { return [] }
            if challenge.isEmpty { return first }
        }
        let text = String(decoding: challenge, as: UTF8.self)
        if self.step == 1 {
            self.step = 2
            return try self.clientFinal(serverFirst: text)
        }
        if self.step == 2 {
            self.step = 3
            try self.verify(serverFinal: text)
            return []
        }
        throw SASLError(self.name, "unexpected challenge")
    }

    public func verifyCompletion() throws {
        guard self.serverVerified else {
            throw SASLError(self.name, "the server reported success without proving it knows the password")
        }
    }

    static func attributes(_ s: String) -> [Character: String] {
        var out: [Character: String] = [:]
        for part in s.split(separator: ",") {
            guard let key = part.first, part.dropFirst().first == "=" else { continue }
            out[key] = String(part.dropFirst(2))
        }
        return out
    }

    private mutating func clientFinal(serverFirst: String) throws -> [UInt8] {
        let a = Self.attributes(serverFirst)
        if let e = a["e"] { throw SASLError(self.name, "server error \(e)") }
        guard let nonce = a["r"], nonce.hasPrefix(self.clientNonce), nonce.count > self.clientNonce.count else {
            throw SASLError(self.name, "server nonce does not extend the client nonce")
        }
        guard let saltB64 = a["s"], let salt = Base64.decode(saltB64), let iText = a["i"], let iterations = Int(iText),
            iterations > 0
        else { throw SASLError(self.name, "malformed server-first-message") }
        guard iterations <= Self.maximumIterations else {
            throw SASLError(self.name, "iteration count \(iterations) is over \(Self.maximumIterations)")
        }
        let withoutProof = "c=biws,r=\(nonce)"
        let authMessage = Array((self.clientFirstBare + "," + serverFirst + "," + withoutProof).utf8)
        let salted = try self.saltedPassword(salt: salt, iterations: iterations)
        let clientKey = self.hmac(key: salted, Array("Client Key".utf8))
        let storedKey = self.digest(clientKey)
        let clientSignature = self.hmac(key: storedKey, authMessage)
        let proof = zip(clientKey, clientSignature).map { $0 ^ $1 }
        let serverKey = self.hmac(key: salted, Array("Server Key".utf8))
        self.expectedServerSignature = self.hmac(key: serverKey, authMessage)
        return Array((withoutProof + ",p=" + Base64.encode(proof)).utf8)
    }

    private mutating func verify(serverFinal: String) throws {
        let a = Self.attributes(serverFinal)
        if let e = a["e"] { throw SASLError(self.name, "server error \(e)") }
        guard let v = a["v"], let signature = Base64.decode(v), let expected = self.expectedServerSignature,
            signature == expected
        else { throw SASLError(self.name, "the server's signature does not verify: it does not know the password") }
        self.serverVerified = true
    }

    private func saltedPassword(salt: [UInt8], iterations: Int) throws -> [UInt8] {
        let length = self.hash == .sha1 ? 20 : 32
        let key = try KDF.Insecure.PBKDF2.deriveKey(
            from: Array(self.password.utf8), salt: salt,
            using: self.hash == .sha1 ? .insecureSHA1 : .sha256, outputByteCount: length,
            unsafeUncheckedRounds: iterations)
        return key.withUnsafeBytes { Array($0) }
    }

    private func hmac(key: [UInt8], _ data: [UInt8]) -> [UInt8] {
        let k = SymmetricKey(data: key)
        switch self.hash {
        case .sha1: return Array(HMAC<Insecure.SHA1>.authenticationCode(for: data, using: k))
        case .sha256: return Array(HMAC<SHA256>.authenticationCode(for: data, using: k))
        }
    }

    private func digest(_ data: [UInt8]) -> [UInt8] {
        switch self.hash {
        case .sha1: return Array(Insecure.SHA1.hash(data: data))
        case .sha256: return Array(SHA256.hash(data: data))
        }
    }
}

/// RFC 4648 base64 for SASL exchanges: Foundation's, tolerant of the whitespace and missing padding that some
/// servers send.
public enum Base64 {
    public static func encode(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
    }

    public static func decode(_ s: String) -> [UInt8]? {
        var text = s.filter { !$0.isWhitespace }
        while text.count % 4 != 0 { text.append("=") }
        return Data(base64Encoded: text).map { Array($0) }
    }
}
