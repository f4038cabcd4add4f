/// Named limits of the IMAP client core. Every number a server sends is checked against one of these, or against
/// the grammar's own range (RFC 3501 §9: `number` and `nz-number` are 32-bit unsigned).
public enum IMAPDefaults {
    /// Longest physical response line (between literals) accepted. RFC 7162 §4 asks clients to take at least 8,192
    /// octets; a CAPABILITY or SEARCH response of a large mailbox can be longer.
    public static let maximumLineLength = 65_536
    /// Largest literal a server may send in a response. popfetch never asks for message contents, so a literal it
    /// receives (in an unsolicited FETCH, say) is skipped, not kept; this only bounds how long it keeps skipping.
    public static let maximumResponseLiteral = 64 * 1024 * 1024
    /// Most literals in one response.
    public static let maximumLiteralsPerResponse = 1_000
    /// Most numbers kept from one SEARCH response; the rest are counted and dropped.
    public static let maximumSearchResults = 10_000
    /// The largest message popfetch appends (RFC 3501's literal length is a 32-bit number; servers set lower
    /// limits of their own and say so with `[LIMIT]` or `APPENDLIMIT`).
    public static let maximumAppendSize = Int(UInt32.max)
    /// RFC 7888 §4 (LITERAL-): a non-synchronizing literal is at most this long.
    public static let literalMinusLimit = 4_096
}
