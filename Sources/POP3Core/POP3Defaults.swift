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

    /// The longest CAPA reply accepted, in octets (its lines and line breaks). RFC 2449 servers send a dozen short
    /// lines (Dovecot some 150 octets); each word becomes a string of its own, so without a bound a hostile server
    /// could fill memory with one reply (issue 9's review: 240 MB of capabilities took 1.9 GB).
    public static let maximumCapabilityOctets = 65_536

    /// RFC 2449 §4: a command line is at most 255 octets including the terminating CRLF.
    public static let maximumCommandLength = 255

    /// RFC 1939 §7: a unique-id consists of 1 to 70 characters in the range 0x21 to 0x7E.
    public static let maximumUIDLength = 70

    /// Printable unique-ids (0x21-0x7E) up to this length are used as they are, although RFC 1939 §7 allows only
    /// 70 characters: some servers send longer ones, and changing their keys would deliver those messages again.
    /// Anything else is kept under an escaped key (see ``UIDLEntry/escapedKey(for:)``).
    public static let maximumVerbatimUIDLength = maximumUIDLength * 4

    /// RFC 1939 §5: message numbers start at 1. No real maildrop comes near 2^31 messages; a larger number is a
    /// broken or hostile server, not a message.
    public static let maximumMessageNumber = Int(Int32.max)

    /// Sizes in LIST and STAT replies are clamped to this (1 TiB): far above any real message, yet the sum of
    /// ``maximumListingEntries`` of them cannot overflow an `Int`.
    public static let maximumMessageSize = 1 << 40

    /// RFC 2449 §6.5 LOGIN-DELAY is clamped to one day: a larger value would only park the account (and seconds
    /// far beyond this overflow nanosecond timers).
    public static let maximumLoginDelay = 86_400

    /// RFC 2449 §6.7 EXPIRE is clamped to 100 years of days.
    public static let maximumExpireDays = 36_500
}
