public import IMAPCore

/// The server answered a command with NO or BAD (or BYE).
public struct IMAPCommandError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The command's name (never its arguments: LOGIN's carry the password).
    public var command: String
    public var status: IMAPStatus

    public init(command: String, status: IMAPStatus) {
        self.command = command
        self.status = status
    }

    public var description: String { "the IMAP server answered \(self.command) with \(self.status)" }
}
