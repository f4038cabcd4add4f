import POP3Core
public import SMTPCore

// The values a configuration key can take. Each enum's raw values are what the config file says.

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

/// `oversize`: what happens to a message larger than `max_size`.
public enum OversizePolicy: String, Hashable, Sendable, CaseIterable {
    /// Leave it on the server and report it (default).
    case skip
    /// Delete it from the server without fetching it (reported).
    case delete
}

/// `without_uidl`: what to do with a server that has no UIDL command.
public enum WithoutUIDLPolicy: String, Hashable, Sendable, CaseIterable {
    /// Stop with a clear error: without UIDL, "only new mail" cannot be guaranteed with keep = true.
    case refuse
    /// Fetch every message and delete each once delivered (only safe with keep = false).
    case fetchAndDelete = "fetch-and-delete"
}

/// `tls_min_version`: the oldest TLS version a connection may use.
public enum TLSVersion: String, Hashable, Sendable, CaseIterable {
    case tls12 = "1.2"
    case tls13 = "1.3"
}

/// Local delivery methods.
public enum DeliveryMethod: Hashable, Sendable {
    case mda(MDACommand)
    /// A Maildir directory (tmp/ then rename into new/, fsync'd).
    case maildir(String)
    case smtp(SMTPEndpoint)
    case lmtp(SMTPEndpoint)
    /// A folder on an IMAP server (Gmail, Fastmail, any IMAP mailbox), by APPEND.
    case imap(IMAPDestination)

    public var keyName: String {
        switch self {
        case .mda: return "mda"
        case .maildir: return "maildir"
        case .smtp: return "smtp"
        case .lmtp: return "lmtp"
        case .imap: return "imap"
        }
    }
}

/// `imap`: `imaps://host[:port]/Folder` (TLS from the start, port 993) or `imap://host[:port]/Folder` (port 143;
/// clear text unless `imap_tls = "starttls"`). The folder is percent-decoded; none means INBOX.
public struct IMAPDestination: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var implicitTLS: Bool
    public var folder: String

    public init(host: String, port: Int, implicitTLS: Bool, folder: String) {
        self.host = host
        self.port = port
        self.implicitTLS = implicitTLS
        self.folder = folder
    }

    /// Why `text` is not an IMAP URL popfetch takes, or the destination.
    public static func parse(_ text: String) -> Result<IMAPDestination, ParseError> {
        let lower = text.lowercased()
        let implicit: Bool
        let rest: Substring
        if lower.hasPrefix("imaps://") {
            implicit = true
            rest = text.dropFirst("imaps://".count)
        } else if lower.hasPrefix("imap://") {
            implicit = false
            rest = text.dropFirst("imap://".count)
        } else {
            return .failure(ParseError("must start with imaps:// or imap://"))
        }
        if rest.contains("?") || rest.contains("#") || rest.contains(";") {
            return .failure(ParseError("takes no query, fragment or ;parameters: only imaps://host[:port]/Folder"))
        }
        let authority = rest.prefix { $0 != "/" }
        let path = rest.dropFirst(authority.count).dropFirst()
        if authority.contains("@") {
            return .failure(ParseError("must not hold a user name: put it in imap_user"))
        }
        let defaultPort = implicit ? 993 : 143
        guard case .tcp(let host, let port)? = SMTPEndpoint.parse(String(authority), defaultPort: defaultPort),
            !host.isEmpty, port > 0
        else {
            return .failure(ParseError("needs a host name (and optionally :port, 1-65535) after the scheme"))
        }
        guard let folder = Self.percentDecoded(path) else {
            return .failure(ParseError("has a bad %-escape or a folder name that is not UTF-8"))
        }
        if folder.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            return .failure(ParseError("has a control character in the folder name"))
        }
        return .success(
            IMAPDestination(host: host, port: port, implicitTLS: implicit, folder: folder.isEmpty ? "INBOX" : folder))
    }

    static func percentDecoded(_ s: Substring) -> String? {
        var bytes: [UInt8] = []
        var i = s.utf8.startIndex
        let u = s.utf8
        while i < u.endIndex {
            let c = u[i]
            if c == UInt8(ascii: "%") {
                let h = u.index(after: i)
                guard h < u.endIndex, u.index(after: h) < u.endIndex,
                    let hi = Self.hex(u[h]), let lo = Self.hex(u[u.index(after: h)])
                else { return nil }
                bytes.append(hi << 4 | lo)
                i = u.index(h, offsetBy: 2)
            } else {
                bytes.append(c)
                i = u.index(after: i)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    static func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - 48
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - 87
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - 55
        default: return nil
        }
    }

    public var isLoopback: Bool { AccountConfiguration.Server.isLoopback(self.host) }

    public var description: String {
        let host = self.host.contains(":") ? "[\(self.host)]" : self.host
        return "\(self.implicitTLS ? "imaps" : "imap")://\(host):\(self.port)/\(self.folder)"
    }

    public struct ParseError: Error, Hashable, Sendable {
        public var message: String
        init(_ message: String) { self.message = message }
    }
}

/// `imap_tls`, for an `imap://` destination: clear text, or upgraded with STARTTLS.
public enum IMAPTLSMode: String, Hashable, Sendable, CaseIterable {
    case none
    case starttls
}

/// `imap_auth`: how popfetch logs in to the IMAP server it delivers to.
public enum IMAPAuthMethod: String, Hashable, Sendable, CaseIterable {
    /// The strongest the server offers of SCRAM-SHA-256, PLAIN, LOGIN (then the LOGIN command).
    case auto
    case plain
    case login
    case scramSHA256 = "scram-sha-256"
    /// OAuth2 (Gmail, Microsoft 365), with the access token from `imap_oauth_token_command`.
    case xoauth2
    case oauthbearer
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
    /// `metrics_listen`: the address where the daemon serves its metrics over HTTP (Prometheus text format).
    public var metricsListen: MetricsAddress?
    /// `metrics_file`: a file the metrics are written to after polls (node_exporter's textfile collector).
    public var metricsFile: String?
    public init() {}
}

/// A TCP address to listen on: `host:port` or `[v6-address]:port`.
public struct MetricsAddress: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// `host:port` or `[v6]:port`, with a port from 1 to 65535; nil for anything else.
    public static func parse(_ text: String) -> MetricsAddress? {
        guard case .tcp(let host, let port)? = SMTPEndpoint.parse(text, defaultPort: 0), port > 0 else { return nil }
        return MetricsAddress(host: host, port: port)
    }

    /// Whether the host is this machine's loopback (`localhost`, 127.0.0.0/8, `::1`).
    public var isLoopback: Bool {
        self.host == "localhost" || self.host == "::1" || self.host.hasPrefix("127.")
    }

    public var description: String {
        self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)"
    }
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
