public import POP3Core
public import SMTPCore

/// One `[[account]]`, with `[defaults]` applied and every value checked: plain values, grouped by what they
/// govern. Every default lives here, in the property initializers; the loader (``ConfigurationLoader``) only
/// overrides what the file sets.
public struct AccountConfiguration: Hashable, Sendable {
    /// Where the OAuth2 tokens of the IMAP identity delivered to are kept in the state: `imap:USER@HOST:PORT`.
    public var imapTokenKey: String? {
        guard case .imap(let d) = self.delivery.method, let user = self.delivery.imap.user else { return nil }
        return "imap:\(user)@\(d.host):\(d.port)"
    }

    public var name: String
    /// `enabled = false`: left out of `poll` and the daemon unless named.
    public var enabled = true
    /// Line of the `[[account]]` header in the config file.
    public var line: Int
    public var server: Server
    public var authentication: Authentication
    public var retention = Retention()
    public var delivery: Delivery
    public var schedule = Schedule()
    /// Names the mailbox explicitly when two accounts share a user@host (two servers behind tunnels).
    public var mailboxID: String?

    public init(name: String, line: Int, server: Server, authentication: Authentication, delivery: Delivery) {
        self.name = name
        self.line = line
        self.server = server
        self.authentication = authentication
        self.delivery = delivery
    }

    /// The mailbox's identity in the state database: `user@host`. Port and TLS mode are left out on purpose, so
    /// moving from 110 with STLS to 995 with implicit TLS keeps every record (and floods nothing).
    public var stateKey: String { self.mailboxID ?? "\(self.authentication.user)@\(self.server.host)" }

    /// The POP3 server and the connection to it.
    public struct Server: Hashable, Sendable {
        public var host: String
        /// `port`; by default 995 with implicit TLS, else 110.
        public var port: Int {
            get { self.explicitPort ?? (self.tls == .implicit ? 995 : 110) }
            set { self.explicitPort = newValue }
        }
        private var explicitPort: Int?
        public var tls: TLSMode = .implicit
        /// Credentials may go in clear text to a host that is not loopback.
        public var allowInsecureAuth = false
        /// An extra trust anchor (PEM) for the server's certificate.
        public var caFile: String?
        /// A pinned server certificate (SHA-256 of its DER).
        public var fingerprint: [UInt8]?
        /// TLS client certificate and key (PEM files), for servers that authenticate clients by certificate.
        public var clientCertificate: String?
        public var clientKey: String?
        public var minimumTLSVersion: TLSVersion = .tls12
        /// Network time-out in seconds: for connecting, for each read and write, and for each reply to start; a
        /// reply must then keep arriving at 1 KB/s or more.
        public var timeout = 60
        /// The whole POP3 session of one poll must end within this many seconds; what is left waits for the next
        /// poll.
        public var pollTimeout = 3600

        public init(host: String) { self.host = host }

        /// Whether the host is a loopback address (credentials may go there in clear text).
        public var isLoopback: Bool { Self.isLoopback(self.host) }

        public static func isLoopback(_ host: String) -> Bool {
            let h = host.lowercased()
            if h == "localhost" || h == "localhost." || h == "::1" || h == "[::1]" { return true }
            let parts = h.split(separator: ".")
            return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
        }
    }

    /// Who logs in, and how.
    public struct Authentication: Hashable, Sendable {
        public var user: String
        public var password: SecretSource
        public var method: AuthMethod = .auto
        /// A command printing an OAuth2 access token (for XOAUTH2/OAUTHBEARER).
        public var oauthTokenCommand: String?
        /// Built-in OAuth2: refresh tokens kept in the state database, access tokens refreshed before expiry.
        public var oauth: OAuthSettings?

        public init(user: String, password: SecretSource) {
            self.user = user
            self.password = password
        }
    }

    /// What is fetched, what stays on the server, and how long popfetch remembers.
    public struct Retention: Hashable, Sendable {
        /// Leave messages on the server after delivery.
        public var keep = false
        /// With keep = true: delete messages delivered longer ago than this many seconds.
        public var deleteAfter: Int?
        /// Larger messages (by LIST size) are not fetched. nil = no limit.
        public var maxSize: Int?
        public var oversize: OversizePolicy = .skip
        /// At most this many messages per poll (0 = no limit).
        public var fetchLimit = 0
        public var withoutUIDL: WithoutUIDLPolicy = .refuse
        /// After this many failed delivery attempts a message is marked failed and skipped until `popfetch retry`.
        public var maxAttempts = 5
        /// How many octets a message may fall short of its LIST size and still count as complete (0: none). A
        /// shorter message is not delivered: it is counted as a failed retrieval, and never deleted.
        public var sizeTolerance = 0
        /// A message's record is forgotten this many seconds after a listing last showed it.
        public var forgetAfter = Retention.defaultForgetAfter
        public static let defaultForgetAfter = 30 * 86_400
        /// The shortest `forget_after`: a shorter memory would re-deliver messages after a server hiccup.
        public static let minimumForgetAfter = 86_400
        /// Flood protection: with keep = true, a mailbox popfetch has no record of (first poll, lost state file)
        /// holding more than this many messages, or a UIDL reset bringing more than this many unknown ones, pauses
        /// the account until the user runs `popfetch mark-seen` or `popfetch fetch-all`. 0 turns it off.
        public var floodLimit = 20

        public init() {}
    }

    /// Where delivered mail goes, and what a failure there means.
    public struct Delivery: Hashable, Sendable {
        /// Exactly one of `mda`, `smtp`, `lmtp`, `maildir`.
        public var method: DeliveryMethod
        public var recipients: [String]
        public var mdaTimeout = 600
        /// An MDA that exits 0 without reading all of the message: a failure (the default), or accepted.
        public var mdaPartialRead: MDAPartialReadPolicy = .fail
        /// Reaction to a permanent (5xx) rejection by the MTA.
        public var onPermanentFailure: PermanentFailurePolicy = .keep
        /// Where bounces go (default: the first recipient).
        public var bounceTo: String?
        /// The SMTP/LMTP connection, for `smtp` and `lmtp`.
        public var relay = Relay()
        /// The IMAP connection and what APPEND sets, for `imap`.
        public var imap = IMAPSettings()

        public init(method: DeliveryMethod, recipients: [String]) {
            self.method = method
            self.recipients = recipients
        }
    }

    /// The connection to the MTA (`smtp_*` keys).
    public struct Relay: Hashable, Sendable {
        public var tls: SMTPTLSMode = .none
        /// An extra trust anchor for the relay's certificate.
        public var caFile: String?
        /// SMTP AUTH to the relay, when set (user and password go together).
        public var user: String?
        public var password: SecretSource?
        /// Caps every SMTP/LMTP wait (reads and writes); nil: RFC 5321's time-outs (5 min per command, 3 min per
        /// data block, 10 min after the final dot).
        public var timeout: Int?

        public init() {}
    }

    /// The IMAP server popfetch delivers to (`imap_*` keys).
    public struct IMAPSettings: Hashable, Sendable {
        /// For `imap://`: nil (clear text, loopback only unless allow_insecure_auth) or STARTTLS.
        public var tls: IMAPTLSMode?
        public var user: String?
        public var password: SecretSource?
        public var auth: IMAPAuthMethod = .auto
        /// A command that prints an OAuth2 access token for the IMAP identity (xoauth2, oauthbearer).
        public var oauthTokenCommand: String?
        /// popfetch's own OAuth2 client for the IMAP identity (`imap_oauth_token_url`, ...): tokens kept in the
        /// state under ``AccountConfiguration/imapTokenKey``.
        public var oauth: OAuthSettings?
        /// Flags the message is appended with; none by default, so it arrives unread.
        public var flags: [String] = []
        /// Create the folder when the server says it does not exist (TRYCREATE).
        public var createFolder = false
        /// An extra trust anchor for the IMAP server's certificate.
        public var caFile: String?
        /// Caps every wait for the IMAP server (default 5 minutes).
        public var timeout: Int?

        public init() {}
    }

    /// When the daemon polls.
    public struct Schedule: Hashable, Sendable {
        /// Seconds between polls.
        public var interval = 300

        public init() {}
    }
}
