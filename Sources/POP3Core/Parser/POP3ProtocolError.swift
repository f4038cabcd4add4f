/// The server broke the POP3 protocol. The connection cannot continue after this.
public struct POP3ProtocolError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Reason: Hashable, Sendable {
        /// A status line exceeded ``POP3Defaults/maximumStatusLineLength``.
        case statusLineTooLong(limit: Int)
        /// A line that should be a status line does not start with `+OK`, `-ERR` or `+`.
        case invalidStatusLine(excerpt: String)
        /// A CAPA/LIST/UIDL line exceeded ``POP3Defaults/maximumListingLineLength``.
        case listingLineTooLong(limit: Int)
        /// A LIST/UIDL line that does not parse.
        case invalidListingLine(excerpt: String)
        /// More listing entries than ``POP3Defaults/maximumListingEntries``.
        case tooManyListingEntries(limit: Int)
        /// A CAPA reply longer than ``POP3Defaults/maximumCapabilityOctets``.
        case capabilitiesTooLong(limit: Int)
        /// The server sent a response while no command was outstanding.
        case unsolicitedResponse(excerpt: String)
        /// A single-line reply (STAT, `UIDL n`, `LIST n`) whose arguments do not parse.
        case malformedReply(command: String, excerpt: String)
        /// The server sent a SASL continuation to a command that is not AUTH.
        case unexpectedContinuation(command: String)
        /// A number that cannot be what it claims (a message number of 0 or beyond
        /// ``POP3Defaults/maximumMessageNumber``, a message count beyond it).
        case numberOutOfRange(field: String, excerpt: String)
    }

    public var reason: Reason

    public init(_ reason: Reason) { self.reason = reason }

    public var description: String {
        switch self.reason {
        case .statusLineTooLong(let limit): return "server sent a status line longer than \(limit) octets"
        case .invalidStatusLine(let e): return "server sent an invalid status line: \(e.debugDescription)"
        case .listingLineTooLong(let limit): return "server sent a listing line longer than \(limit) octets"
        case .invalidListingLine(let e): return "server sent an invalid listing line: \(e.debugDescription)"
        case .tooManyListingEntries(let limit): return "server sent more than \(limit) listing entries"
        case .capabilitiesTooLong(let limit): return "server sent a CAPA reply longer than \(limit) octets"
        case .unsolicitedResponse(let e): return "server sent a response nobody asked for: \(e.debugDescription)"
        case .malformedReply(let c, let e): return "server's reply to \(c) does not parse: \(e.debugDescription)"
        case .unexpectedContinuation(let c): return "server sent a SASL continuation in reply to \(c)"
        case .numberOutOfRange(let f, let e): return "server sent a \(f) out of range: \(e.debugDescription)"
        }
    }
}

extension String {
    /// A short printable excerpt of untrusted bytes, for error messages.
    public static func excerpt<S: Sequence>(of bytes: S, limit: Int = 80) -> String where S.Element == UInt8 {
        var out = ""
        var n = 0
        for b in bytes {
            if n >= limit {
                out += "..."
                break
            }
            if b >= 0x20 && b < 0x7F {
                out.unicodeScalars.append(Unicode.Scalar(b))
            } else if b == 13 || b == 10 {
                continue
            } else {
                out += "\\x" + String(b, radix: 16)
            }
            n += 1
        }
        return out
    }
}
