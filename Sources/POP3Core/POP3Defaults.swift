/// Named limits of the POP3 client, each with its source.
public enum POP3Defaults {
    /// RFC 2449 §4 raises the status-line limit to 512 octets including CRLF. Real servers exceed it now and then
    /// (long human-readable texts), so the parser accepts up to this many octets before declaring the peer broken.
    public static let maximumStatusLineLength = 8_192

    /// The longest single line accepted inside a CAPA, LIST or UIDL listing (RFC 1939 §7: a unique-id is at most
    /// 70 characters, so a listing line is far shorter; this bound only stops a hostile server).
    public static let maximumListingLineLength = 8_192

    /// The most entries accepted in one LIST or UIDL listing. Mailboxes with more messages than this are not
    /// realistic for POP3; a server that sends more is treated as broken rather than exhausting memory.
    public static let maximumListingEntries = 5_000_000

    /// RFC 2449 §4: a command line is at most 255 octets including the terminating CRLF.
    public static let maximumCommandLength = 255

    /// RFC 1939 §7: a unique-id consists of 1 to 70 characters in the range 0x21 to 0x7E.
    public static let maximumUIDLength = 70
}
