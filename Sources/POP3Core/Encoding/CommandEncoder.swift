public import struct NIOCore.ByteBuffer

/// A command could not be encoded: an argument would break the framing, or the line is too long.
public struct CommandEncodingError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Reason: Hashable, Sendable {
        case forbiddenCharacter
        case emptyArgument
        case tooLong(length: Int)
    }
    public var keyword: String
    public var reason: Reason

    public var description: String {
        switch self.reason {
        case .forbiddenCharacter:
            return "\(self.keyword): an argument contains CR, LF or NUL, which POP3 cannot carry"
        case .emptyArgument:
            return "\(self.keyword): an argument is empty"
        case .tooLong(let length):
            return "\(self.keyword): the command line would be \(length) octets, over RFC 2449's "
                + "\(POP3Defaults.maximumCommandLength)"
        }
    }
}

extension Command {
    /// The bytes of the command line including CRLF.
    ///
    /// Arguments may not contain CR, LF or NUL (that would let a configured user name inject commands).
    public func encoded() throws -> [UInt8] {
        var line: String
        switch self {
        case .capa, .stls, .stat, .rset, .noop, .quit, .utf8:
            line = self.keyword
        case .user(let u):
            try Self.check(u, keyword: "USER")
            line = "USER \(u)"
        case .pass(let p):
            // RFC 1939 §7: the password may contain spaces; it is the rest of the line.
            try Self.check(p, keyword: "PASS")
            line = "PASS \(p)"
        case .apop(let u, let d):
            try Self.check(u, keyword: "APOP")
            try Self.check(d, keyword: "APOP")
            line = "APOP \(u) \(d)"
        case .auth(let mech, let ir):
            try Self.check(mech, keyword: "AUTH")
            line = "AUTH \(mech)"
            if let ir {
                try Self.check(ir, keyword: "AUTH", allowEmpty: true)
                line += " " + (ir.isEmpty ? "=" : ir)
            }
        case .saslResponse(let r):
            try Self.check(r, keyword: "AUTH", allowEmpty: true)
            line = r
        case .list(let n):
            line = n.map { "LIST \($0)" } ?? "LIST"
        case .uidl(let n):
            line = n.map { "UIDL \($0)" } ?? "UIDL"
        case .retr(let n):
            line = "RETR \(n)"
        case .top(let n, let l):
            line = "TOP \(n) \(l)"
        case .dele(let n):
            line = "DELE \(n)"
        }
        var bytes = Array(line.utf8)
        bytes.append(13)
        bytes.append(10)
        // SASL responses are not commands and may be longer (RFC 5034 §4 lifts the limit for them).
        if case .saslResponse = self {
        } else if bytes.count > POP3Defaults.maximumCommandLength {
            throw CommandEncodingError(keyword: self.keyword, reason: .tooLong(length: bytes.count))
        }
        return bytes
    }

    private static func check(_ s: String, keyword: String, allowEmpty: Bool = false) throws {
        if s.isEmpty && !allowEmpty {
            throw CommandEncodingError(keyword: keyword, reason: .emptyArgument)
        }
        if s.utf8.contains(where: { $0 == 13 || $0 == 10 || $0 == 0 }) {
            throw CommandEncodingError(keyword: keyword, reason: .forbiddenCharacter)
        }
    }
}

extension ByteBuffer {
    /// Appends the encoded command line.
    @discardableResult
    public mutating func writeCommand(_ command: Command) throws -> Int {
        self.writeBytes(try command.encoded())
    }
}
