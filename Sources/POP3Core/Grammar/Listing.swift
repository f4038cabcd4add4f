/// One line of a UIDL listing (RFC 1939 §7): `msg-number SP unique-id`.
public struct UIDLEntry: Hashable, Sendable {
    public var number: Int
    public var uid: String
    public init(number: Int, uid: String) {
        self.number = number
        self.uid = uid
    }
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
