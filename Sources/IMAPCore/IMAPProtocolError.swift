/// A server said something the grammar (RFC 3501 §9) or a limit (``IMAPDefaults``) does not allow. The connection
/// cannot be trusted after one: the caller closes it.
public struct IMAPProtocolError: Error, Hashable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "IMAP protocol error: \(self.message)" }
}
