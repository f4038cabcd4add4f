public import POP3Core
public import SMTPCore

/// Where a secret comes from. Its description never shows the secret itself.
public enum SecretSource: Hashable, Sendable, CustomStringConvertible {
    case literal(String)
    /// A command whose first line of standard output is the secret.
    case command(String)
    /// A file whose first line is the secret.
    case file(String)

    public var description: String {
        switch self {
        case .literal: return "password (inline, hidden)"
        case .command(let c): return "password_command \(c.debugDescription)"
        case .file(let f): return "password_file \(f.debugDescription)"
        }
    }
}

/// How to log in.
public enum AuthMethod: String, Hashable, Sendable, CaseIterable {
    /// The strongest the server offers that the account can use: OAUTHBEARER/XOAUTH2 (with a token), then
    /// SCRAM-SHA-256, SCRAM-SHA-1, CRAM-MD5, APOP (clear-text connections), PLAIN, LOGIN, USER/PASS.
    case auto
    case user
    case apop
    case plain
    case login
    case cramMD5 = "cram-md5"
    case scramSHA1 = "scram-sha-1"
    case scramSHA256 = "scram-sha-256"
    case xoauth2
    case oauthbearer
    /// RFC 4422 EXTERNAL: the identity is the TLS client certificate (tls_client_cert / tls_client_key).
    case external
}

public enum OversizePolicy: String, Hashable, Sendable, CaseIterable {
    /// Leave it on the server and report it (default).
    case skip
    /// Delete it from the server without fetching it (reported).
    case delete
}

public enum WithoutUIDLPolicy: String, Hashable, Sendable, CaseIterable {
    /// Stop with a clear error: without UIDL, "only new mail" cannot be guaranteed with keep = true.
    case refuse
    /// Fetch every message and delete each once delivered (only safe with keep = false).
    case fetchAndDelete = "fetch-and-delete"
}

/// One `[[account]]`, with `[defaults]` applied and every value checked.
public struct AccountConfiguration: Hashable, Sendable {
    public var name: String
    public var enabled: Bool = true
    public var host: String
    public var port: Int
    public var tls: TLSMode = .implicit
    public var allowInsecureAuth: Bool = false
    public var caFile: String?
    /// A pinned server certificate (SHA-256 of its DER).
    public var fingerprint: [UInt8]?
    /// TLS client certificate and key (PEM files), for servers that authenticate clients by certificate.
    public var tlsClientCertificate: String?
    public var tlsClientKey: String?
    /// "1.2" (default) or "1.3".
    public var tlsMinimumVersion: String = "1.2"
    public var user: String
    public var password: SecretSource
    /// A command printing an OAuth2 access token (for XOAUTH2/OAUTHBEARER).
    public var oauthTokenCommand: String?
    /// Built-in OAuth2: refresh tokens kept in the state database, access tokens refreshed before expiry.
    public var oauth: OAuthSettings?
    public var auth: AuthMethod = .auto
    public var keep: Bool = false
    /// With keep = true: delete messages delivered longer ago than this many seconds.
    public var deleteAfter: Int?
    /// Larger messages (by LIST size) are not fetched. nil = no limit.
    public var maxSize: Int?
    public var oversize: OversizePolicy = .skip
    /// At most this many messages per poll (0 = no limit).
    public var fetchLimit: Int = 0
    public var withoutUIDL: WithoutUIDLPolicy = .refuse
    /// Network time-out in seconds: for connecting, for each read and write, and for each reply to start; a reply
    /// must then keep arriving at 1 KB/s or more.
    public var timeout: Int = 60
    /// Caps every SMTP/LMTP wait (reads and writes); nil: RFC 5321's time-outs (5 min per command, 3 min per data
    /// block, 10 min after the final dot).
    public var smtpTimeout: Int?
    /// The whole POP3 session of one poll must end within this many seconds; what is left waits for the next poll.
    public var pollTimeout: Int = 3600
    /// Where delivered mail goes: exactly one of `mda`, `smtp`, `lmtp`, `maildir`.
    public var delivery: DeliveryMethod
    public var mdaTimeout: Int = 600
    /// An MDA that exits 0 without reading all of the message: a failure (the default), or accepted.
    public var mdaPartialRead: MDAPartialReadPolicy = .fail
    public var recipients: [String]
    /// After this many failed delivery attempts a message is marked failed and skipped until `popfetch retry`.
    public var maxAttempts: Int = 5
    /// How many octets a message may fall short of its LIST size and still count as complete (0: none). A shorter
    /// message is not delivered: it is counted as a failed retrieval, and never deleted.
    public var sizeTolerance: Int = 0
    /// A message's record is forgotten this many seconds after a listing last showed it.
    public var forgetAfter: Int = AccountConfiguration.defaultForgetAfter
    public static let defaultForgetAfter = 30 * 86_400
    /// Flood protection: with keep = true, a mailbox popfetch has no record of (first poll, lost state file) holding
    /// more than this many messages, or a UIDL reset bringing more than this many unknown ones, pauses the account
    /// until the user runs `popfetch mark-seen` or `popfetch fetch-all`. 0 turns it off.
    public var floodLimit: Int = 20
    /// Reaction to a permanent (5xx) rejection by the MTA.
    public var onPermanentFailure: PermanentFailurePolicy = .keep
    /// Where bounces go (default: the first recipient).
    public var bounceTo: String?
    public var smtpTLS: SMTPTLSMode = .none
    /// Extra trust anchor for the SMTP relay's certificate.
    public var smtpCAFile: String?
    /// AUTH PLAIN/LOGIN to the relay, when set.
    public var smtpUser: String?
    public var smtpPassword: SecretSource?
    /// Seconds between polls in the daemon.
    public var interval: Int = 300
    /// Line of the `[[account]]` header in the config file.
    public var line: Int

    /// The mailbox's identity in the state database: `user@host`. Port and TLS mode are left out on purpose, so
    /// moving from 110 with STLS to 995 with implicit TLS keeps every record (and floods nothing).
    public var stateKey: String { self.mailboxID ?? "\(self.user)@\(self.host)" }
    /// Names the mailbox explicitly when two accounts share a user@host (two servers behind tunnels).
    public var mailboxID: String?

    /// Whether the host is a loopback address (credentials may go there in clear text).
    public var hostIsLoopback: Bool { Self.isLoopback(self.host) }

    public static func isLoopback(_ host: String) -> Bool {
        let h = host.lowercased()
        if h == "localhost" || h == "localhost." || h == "::1" || h == "[::1]" { return true }
        let parts = h.split(separator: ".")
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }
}

/// Local delivery methods.
public enum DeliveryMethod: Hashable, Sendable {
    case mda(MDACommand)
    /// A Maildir directory (tmp/ then rename into new/, fsync'd).
    case maildir(String)
    case smtp(SMTPEndpoint)
    case lmtp(SMTPEndpoint)

    public var keyName: String {
        switch self {
        case .mda: return "mda"
        case .maildir: return "maildir"
        case .smtp: return "smtp"
        case .lmtp: return "lmtp"
        }
    }
}

/// `mda_partial_read`: what an MDA exit 0 means when the MDA did not read the whole message.
public enum MDAPartialReadPolicy: String, Hashable, Sendable, CaseIterable {
    /// Not delivered: the message stays on the server and the attempt counts toward `max_attempts`.
    case fail
    /// Delivered: for filters that read only the header and decide from it.
    case accept
}

/// What to do when the local side rejects a message permanently (SMTP/LMTP 5xx).
public enum PermanentFailurePolicy: String, Hashable, Sendable, CaseIterable {
    /// Keep it on the server, marked failed (like the MDA's max_attempts); `popfetch retry` brings it back.
    case keep
    /// Delete it from the server.
    case delete
    /// Send a delivery status notification to the local recipient (or `bounce_to`) through the same MTA, then
    /// delete it. Never to the message's claimed sender: fetched mail's Return-Path is often forged (backscatter).
    case bounce
}

/// Root-level settings.
public struct GlobalSettings: Hashable, Sendable {
    /// Most accounts polled at once.
    public var maxConcurrentPolls: Int = 8
    /// How long the daemon lets polls in flight finish after SIGTERM/SIGINT, in seconds.
    public var shutdownGrace: Int = 30
    public init() {}
}

/// The whole validated configuration file.
public struct Configuration: Hashable, Sendable {
    public var path: String
    public var global: GlobalSettings
    public var accounts: [AccountConfiguration]

    /// The account called `name`, or a configuration error naming the file.
    public func account(named name: String) throws -> AccountConfiguration {
        guard let a = self.accounts.first(where: { $0.name == name }) else {
            throw ConfigurationError(
                file: self.path, line: nil, key: nil, message: "no account named \(name.debugDescription)")
        }
        return a
    }

    public init(path: String, global: GlobalSettings, accounts: [AccountConfiguration]) {
        self.path = path
        self.global = global
        self.accounts = accounts
    }
}

/// Built-in OAuth2 for XOAUTH2/OAUTHBEARER logins: the token endpoint (RFC 6749), the device authorization
/// endpoint (RFC 8628) for `popfetch oauth login`, and the client's identity.
public struct OAuthSettings: Hashable, Sendable {
    public var tokenURL: String
    public var deviceURL: String?
    public var clientID: String
    public var clientSecret: SecretSource?
    public var scope: String?

    public init(tokenURL: String, deviceURL: String?, clientID: String, clientSecret: SecretSource?, scope: String?) {
        self.tokenURL = tokenURL
        self.deviceURL = deviceURL
        self.clientID = clientID
        self.clientSecret = clientSecret
        self.scope = scope
    }
}
