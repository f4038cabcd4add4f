/// A mailbox's identity in the state database: `user@host` (or the account's `mailbox_id`). Every record of
/// UIDLs, deliveries, pauses and tokens is kept under it; an account's name is only a label for people.
public struct MailboxID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let rawValue: String

    public init(_ rawValue: String) { self.rawValue = rawValue }

    public var description: String { self.rawValue }

    public static func < (a: MailboxID, b: MailboxID) -> Bool { a.rawValue < b.rawValue }
}
