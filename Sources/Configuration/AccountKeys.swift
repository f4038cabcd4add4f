import SystemSupport
import TOML

/// The one table of `[[account]]` keys: each key's name, and how its value is read into an
/// ``AccountConfiguration``. A key without a reader is read by a rule of ``ConfigurationLoader`` together with the
/// keys it belongs with (the identity, the secrets, the delivery method, OAuth2). Defaults are not here: they are
/// the property initializers of ``AccountConfiguration`` and its parts.
struct AccountKey: Sendable {
    typealias Read = @Sendable (inout AccountConfiguration, AccountReader) throws -> Void
    let name: String
    let read: Read?

    init(_ name: String, _ read: Read? = nil) {
        self.name = name
        self.read = read
    }
}

enum AccountKeys {
    static let table: [AccountKey] = [
        // Identity, secrets and delivery: read by the loader's rules.
        .rule("name"), .rule("host"), .rule("user"),
        .rule("password"), .rule("password_command"), .rule("password_file"),
        .rule("mda"), .rule("smtp"), .rule("lmtp"), .rule("maildir"), .rule("imap"), .rule("recipient"),
        .bool("enabled", \.enabled),
        .nonEmptyString("mailbox_id", \.mailboxID),
        // The server.
        .choice("tls", \.server.tls),
        .integer("port", \.server.port, 1...65535, "must be between 1 and 65535"),
        .bool("allow_insecure_auth", \.server.allowInsecureAuth),
        .path("ca_file", \.server.caFile),
        AccountKey("fingerprint", fingerprint),
        .path("tls_client_cert", \.server.clientCertificate),
        .path("tls_client_key", \.server.clientKey),
        .choice("tls_min_version", \.server.minimumTLSVersion),
        .duration("timeout", \.server.timeout, atLeast: 1, "must be > 0"),
        .duration("poll_timeout", \.server.pollTimeout),
        // Authentication.
        .choice("auth", \.authentication.method),
        .string("oauth_token_command", \.authentication.oauthTokenCommand),
        AccountKey("oauth_token_url") { a, r in a.authentication.oauth = try oauth(r, prefix: "") },
        .rule("oauth_client_id"), .rule("oauth_client_secret"),
        .rule("oauth_client_secret_command"), .rule("oauth_device_url"), .rule("oauth_scope"),
        // Retention.
        .bool("keep", \.retention.keep),
        .optionalDuration("delete_after", \.retention.deleteAfter),
        AccountKey("max_size", maxSize),
        .choice("oversize", \.retention.oversize),
        .integer("fetch_limit", \.retention.fetchLimit),
        .choice("without_uidl", \.retention.withoutUIDL),
        .integer("max_attempts", \.retention.maxAttempts, 1...Int.max, "must be at least 1"),
        .size("size_tolerance", \.retention.sizeTolerance),
        .duration(
            "forget_after",
            \.retention.forgetAfter, atLeast: AccountConfiguration.Retention.minimumForgetAfter,
            "must be at least 1d (a shorter memory would re-deliver messages after a server hiccup)"),
        .integer("flood_limit", \.retention.floodLimit),
        // Delivery.
        .duration("mda_timeout", \.delivery.mdaTimeout, atLeast: 1, "must be > 0"),
        .choice("mda_partial_read", \.delivery.mdaPartialRead),
        .choice("on_permanent_failure", \.delivery.onPermanentFailure),
        .string("bounce_to", \.delivery.bounceTo),
        .choice("smtp_tls", \.delivery.relay.tls),
        .path("smtp_ca_file", \.delivery.relay.caFile),
        .string("smtp_user", \.delivery.relay.user),
        AccountKey("smtp_password", relayPassword), .rule("smtp_password_command"),
        .rule("smtp_password_file"),
        .optionalDuration("smtp_timeout", \.delivery.relay.timeout, atLeast: 1, "must be > 0"),
        AccountKey("imap_tls", imapTLS),
        .string("imap_user", \.delivery.imap.user),
        AccountKey("imap_password", imapPassword), .rule("imap_password_command"), .rule("imap_password_file"),
        .choice("imap_auth", \.delivery.imap.auth),
        .string("imap_oauth_token_command", \.delivery.imap.oauthTokenCommand),
        AccountKey("imap_oauth_token_url") { a, r in a.delivery.imap.oauth = try oauth(r, prefix: "imap_") },
        .rule("imap_oauth_client_id"), .rule("imap_oauth_client_secret"), .rule("imap_oauth_client_secret_command"),
        .rule("imap_oauth_device_url"), .rule("imap_oauth_scope"),
        AccountKey("imap_flags", imapFlags),
        .bool("imap_create_folder", \.delivery.imap.createFolder),
        .path("imap_ca_file", \.delivery.imap.caFile),
        .optionalDuration("imap_timeout", \.delivery.imap.timeout, atLeast: 1, "must be > 0"),
        // The schedule.
        .duration("interval", \.schedule.interval, atLeast: 1, "must be at least 1 second"),
    ]

    /// Every key an `[[account]]` or `[defaults]` may hold.
    static let names: Set<String> = Set(table.map(\.name))

    // MARK: - Keys with a rule of their own

    /// `max_size`: a size; 0 means no limit.
    static let maxSize: AccountKey.Read = { a, r in
        if let v = try r.size("max_size") { a.retention.maxSize = v == 0 ? nil : v }
    }

    static let fingerprint: AccountKey.Read = { a, r in
        guard let text = try r.string("fingerprint") else { return }
        guard let bytes = CertificateFingerprint.parse(text) else {
            throw r.error(
                "fingerprint",
                "must be \"sha256:AB:CD:...\" (32 bytes, as `openssl x509 -noout -fingerprint -sha256` prints)")
        }
        a.server.fingerprint = bytes
    }

    /// The built-in OAuth2 client: `oauth_token_url` with `oauth_client_id`, and the optional rest (for the IMAP
    /// identity: the same keys with `imap_` in front).
    static func oauth(_ r: AccountReader, prefix p: String) throws -> OAuthSettings? {
        guard let url = try r.string(p + "oauth_token_url") else { return nil }
        guard let id = try r.string(p + "oauth_client_id") else {
            throw r.error(
                p + "oauth_client_id", "is required with \(p)oauth_token_url", at: r.value(p + "oauth_token_url")?.1)
        }
        let secret = try r.secret([p + "oauth_client_secret", p + "oauth_client_secret_command"])
        return OAuthSettings(
            tokenURL: url, deviceURL: try r.string(p + "oauth_device_url"), clientID: id, clientSecret: secret,
            scope: try r.string(p + "oauth_scope"))
    }

    static let imapTLS: AccountKey.Read = { a, r in
        if let mode = try r.choice("imap_tls", IMAPTLSMode.self) { a.delivery.imap.tls = mode }
    }

    static let imapPassword: AccountKey.Read = { a, r in
        a.delivery.imap.password = try r.secret(["imap_password", "imap_password_command", "imap_password_file"])
    }

    /// `imap_flags`: an array of flags, each `\\Word` (a system flag) or a keyword atom; `\\Recent` cannot be set.
    static let imapFlags: AccountKey.Read = { a, r in
        guard let (v, _) = r.value("imap_flags") else { return }
        guard let array = v.array else { throw r.error("imap_flags", "must be an array of strings") }
        var flags: [String] = []
        for i in 0..<array.count {
            guard let flag = array[i].string else { throw r.error("imap_flags", "must be an array of strings") }
            let body = flag.hasPrefix("\\") ? flag.utf8.dropFirst() : flag.utf8[...]
            let atom = body.allSatisfy { c in
                c > 0x20 && c < 0x7F && !"(){%*\"\\]".utf8.contains(c)
            }
            guard !body.isEmpty, atom else {
                throw r.error(
                    "imap_flags", "\(flag.debugDescription) is not an IMAP flag (\\\\Seen, \\\\Flagged or a keyword)")
            }
            if flag.lowercased() == "\\recent" {
                throw r.error("imap_flags", "\\\\Recent is set by the server and cannot be given")
            }
            flags.append(flag)
        }
        a.delivery.imap.flags = flags
    }

    static let relayPassword: AccountKey.Read = { a, r in
        a.delivery.relay.password = try r.secret(["smtp_password", "smtp_password_command", "smtp_password_file"])
    }
}

/// Readers by kind of value: each sets the key's value (when the file has it) at a path of the account.
extension AccountKey {
    typealias Path<T> = WritableKeyPath<AccountConfiguration, T> & Sendable

    static func rule(_ name: String) -> AccountKey { AccountKey(name) }

    static func bool(_ name: String, _ p: any Path<Bool>) -> AccountKey {
        AccountKey(name) { a, r in if let v = try r.bool(name) { a[keyPath: p] = v } }
    }

    static func string(_ name: String, _ p: any Path<String?>) -> AccountKey {
        AccountKey(name) { a, r in if let v = try r.string(name) { a[keyPath: p] = v } }
    }

    static func nonEmptyString(_ name: String, _ p: any Path<String?>) -> AccountKey {
        AccountKey(name) { a, r in
            guard let v = try r.string(name) else { return }
            if v.isEmpty { throw r.error(name, "must not be empty") }
            a[keyPath: p] = v
        }
    }

    static func path(_ name: String, _ p: any Path<String?>) -> AccountKey {
        AccountKey(name) { a, r in if let v = try r.path(name) { a[keyPath: p] = v } }
    }

    static func integer(
        _ name: String, _ p: any Path<Int>, _ range: ClosedRange<Int> = 0...Int.max, _ outside: String = ""
    )
        -> AccountKey
    {
        AccountKey(name) { a, r in
            guard let v = try r.integer(name) else { return }
            if !range.contains(v) { throw r.error(name, outside) }
            a[keyPath: p] = v
        }
    }

    static func duration(_ name: String, _ p: any Path<Int>, atLeast minimum: Int = 0, _ tooShort: String = "")
        -> AccountKey
    {
        AccountKey(name) { a, r in
            guard let v = try r.duration(name) else { return }
            if v < minimum { throw r.error(name, tooShort) }
            a[keyPath: p] = v
        }
    }

    static func optionalDuration(_ name: String, _ p: any Path<Int?>, atLeast minimum: Int = 0, _ tooShort: String = "")
        -> AccountKey
    {
        AccountKey(name) { a, r in
            guard let v = try r.duration(name) else { return }
            if v < minimum { throw r.error(name, tooShort) }
            a[keyPath: p] = v
        }
    }

    static func size(_ name: String, _ p: any Path<Int>) -> AccountKey {
        AccountKey(name) { a, r in if let v = try r.size(name) { a[keyPath: p] = v } }
    }

    static func choice<E: RawRepresentable & CaseIterable & Sendable>(_ name: String, _ p: any Path<E>) -> AccountKey
    where E.RawValue == String {
        AccountKey(name) { a, r in if let v = try r.choice(name, E.self) { a[keyPath: p] = v } }
    }
}
