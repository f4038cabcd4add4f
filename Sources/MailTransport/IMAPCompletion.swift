public import IMAPCore

/// How a command ended, with what the server said on the way (untagged SEARCH results, CAPABILITY).
public struct IMAPCompletion: Hashable, Sendable {
    public var status: IMAPStatus
    /// The numbers of every `* SEARCH` response to the command.
    public var searchResults: [UInt32] = []
    /// The codes of untagged status responses to the command (SELECT's UIDVALIDITY, UIDNEXT).
    public var untaggedCodes: [IMAPResponseCode] = []
    /// How many `* LIST` responses came (LIST: the mailboxes that matched).
    public var listed = 0

    public var isOK: Bool { self.status.condition == .ok }
}
