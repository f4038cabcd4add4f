/// One line of a UIDL listing (RFC 1939 §7): `msg-number SP unique-id`.
///
/// A unique-id outside the grammar (8-bit or control bytes, spaces, or longer than
/// ``POP3Defaults/maximumVerbatimUIDLength``) does not fail the listing: its ``uid`` is the escaped key
/// ``escapedKey(for:)`` of its raw bytes, so only that message is affected.
public struct UIDLEntry: Hashable, Sendable {
    public var number: Int
    /// The unique-id, or the escaped key of an invalid one (``isEscaped``).
    public var uid: String
    public init(number: Int, uid: String) {
        self.number = number
        self.uid = uid
    }

    static let escapedPrefix = "invalid "

    /// The key for a unique-id outside RFC 1939's grammar: `"invalid "` followed by the lowercase hex of the raw
    /// bytes. A valid unique-id never contains a space, so no escaped key can equal a valid one, and distinct raw
    /// bytes give distinct keys.
    public static func escapedKey<C: Collection>(for raw: C) -> String where C.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var out = Array(Self.escapedPrefix.utf8)
        out.reserveCapacity(out.count + raw.count * 2)
        for b in raw {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Whether ``uid`` is the escaped key of a unique-id the server sent outside the grammar.
    public var isEscaped: Bool { self.uid.hasPrefix(Self.escapedPrefix) }
}

/// One line of a LIST ("scan") listing (RFC 1939 §5): `msg-number SP size-in-octets`.
public struct ScanEntry: Hashable, Sendable {
    public var number: Int
    public var size: Int
    public init(number: Int, size: Int) {
        self.number = number
        self.size = size
    }
}

/// The answer to STAT: `+OK nn mm`.
public struct MaildropStatus: Hashable, Sendable {
    public var count: Int
    public var size: Int
    public init(count: Int, size: Int) {
        self.count = count
        self.size = size
    }
}
