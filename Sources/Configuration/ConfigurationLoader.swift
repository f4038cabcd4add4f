import Foundation
import POP3Core
import SMTPCore
import SystemSupport
import TOML

#if canImport(Glibc)
    import Glibc
#endif

/// Reads and validates a popfetch TOML configuration file.
///
/// Every key is checked: unknown keys, wrong types, missing required keys and duplicate account names are errors
/// that name the file, the line and the key: the TOML parser (``TOMLParser``, our own) records the line of every key
/// and header.
///
/// Root keys: `max_concurrent_polls`, `shutdown_grace`, `metrics_listen`, `metrics_file`. `[defaults]`: any account key except `name`. `[[account]]`: see
/// ``AccountConfiguration`` and `etc/config.example.toml`.
public struct ConfigurationLoader: Sendable {
    /// Every key an `[[account]]` or `[defaults]` may hold (see ``AccountKeys``).
    public static var accountKeys: Set<String> { AccountKeys.names }
    public static let rootKeys: Set<String> = [
        "defaults", "account", "max_concurrent_polls", "shutdown_grace", "metrics_listen", "metrics_file",
    ]

    /// Login name of the user running popfetch: the default recipient.
    public var defaultRecipient: String
    /// Whether to refuse a config that holds a password and is readable by group or others.
    public var checkPermissions: Bool

    public init(defaultRecipient: String = ConfigurationLoader.currentLoginName(), checkPermissions: Bool = true) {
        self.defaultRecipient = defaultRecipient
        self.checkPermissions = checkPermissions
    }

    public static func currentLoginName() -> String {
        if let pw = getpwuid(geteuid()), let name = pw.pointee.pw_name {
            return String(cString: name)
        }
        return ProcessInfo.processInfo.environment["USER"] ?? "root"
    }

    public func load(path: String) throws -> Configuration {
        guard let data = FileManager.default.contents(atPath: path) else {
            let exists = FileManager.default.fileExists(atPath: path)
            throw ConfigurationError(
                file: path, line: nil, key: nil,
                message: exists ? "cannot read the file (permissions?)" : "file not found")
        }
        // Not String(data:encoding:), which drops a byte order mark: the TOML parser skips one, and two are an error.
        guard let text = String(validating: data, as: UTF8.self) else {
            throw ConfigurationError(file: path, line: nil, key: nil, message: "is not valid UTF-8")
        }
        let config = try self.parse(text: text, path: path)
        if self.checkPermissions {
            try Self.checkMode(path: path, config: config)
        }
        return config
    }

    static func checkMode(path: String, config: Configuration) throws {
        guard
            config.accounts.contains(where: { a in
                if case .literal = a.authentication.password { return true }
                if case .literal = a.delivery.relay.password { return true }
                return false
            })
        else {
            return
        }
        var st = stat()
        guard stat(path, &st) == 0 else { return }
        if st.st_mode & 0o077 != 0 {
            throw ConfigurationError(
                file: path, line: nil, key: "password",
                message: "the file holds a password and is readable by group or others (mode "
                    + String(st.st_mode & 0o777, radix: 8) + "); run: chmod 600 \(path), "
                    + "or use password_command / password_file instead")
        }
    }

    public func parse(text: String, path: String) throws -> Configuration {
        let table: TOMLTable
        do {
            table = try TOMLParser.parse(text)
        } catch {
            throw ConfigurationError(
                file: path, line: error.line, key: nil,
                message: "TOML syntax error: \(error.message) (column \(error.column))")
        }
        let index = LineIndex(table: table)
        let ctx = Context(path: path, index: index)

        // Every error of the file is collected (root keys, [defaults], each account) and thrown together at the end.
        var errors: [ConfigurationError] = []
        for key in table.keys where !Self.rootKeys.contains(key) {
            if Self.accountKeys.contains(key) {
                // A key of the accounts' own, written above every table: "did you mean interval?" would puzzle.
                errors.append(
                    ctx.error(
                        .root, key: key,
                        "is an account key: put it in [defaults] (for every account) or in an [[account]]"))
                continue
            }
            errors.append(
                ctx.error(.root, key: key, "unknown key" + Self.suggestion(key, Self.rootKeys.union(Self.accountKeys))))
        }
        var global = GlobalSettings()  // its defaults, overridden by what the file sets
        do {
            if let v = table["max_concurrent_polls"] {
                global.maxConcurrentPolls = try ctx.positiveInt(v, section: .root, key: "max_concurrent_polls")
            }
        } catch let e as ConfigurationError { errors.append(e) }
        do {
            if let v = table["shutdown_grace"] {
                global.shutdownGrace = try ctx.duration(v, section: .root, key: "shutdown_grace")
            }
        } catch let e as ConfigurationError { errors.append(e) }
        if let v = table["metrics_listen"] {
            if let text = v.string, let address = MetricsAddress.parse(text) {
                global.metricsListen = address
            } else {
                errors.append(
                    ctx.error(.root, key: "metrics_listen", "must be \"host:port\", such as \"127.0.0.1:9101\""))
            }
        }
        if let v = table["metrics_file"] {
            // A file's name: not empty, not a directory's (`dir/`, `.`, `..`, `~`).
            let named = v.string.flatMap { text -> String? in
                let last = text.split(separator: "/").last
                return text.hasSuffix("/") || last == nil || last == "." || last == ".." || last == "~" ? nil : text
            }
            if let named {
                global.metricsFile = ctx.resolve(named)
            } else {
                errors.append(ctx.error(.root, key: "metrics_file", "must be the path of a file"))
            }
        }

        var defaults: [String: TOMLValue] = [:]
        if let d = table["defaults"] {
            guard let dt = d.table else { throw ctx.error(.root, key: "defaults", "must be a table: [defaults]") }
            for key in dt.keys {
                if key == "name" {
                    errors.append(ctx.error(.defaults, key: key, "an account name cannot be a default"))
                    continue
                }
                guard Self.accountKeys.contains(key) else {
                    errors.append(
                        ctx.error(.defaults, key: key, "unknown key" + Self.suggestion(key, Self.accountKeys)))
                    continue
                }
                if let v = dt[key] { defaults[key] = v }
            }
        }

        var accounts: [AccountConfiguration] = []
        // Earlier accounts by name and by mailbox, for the duplicate checks (one lookup each, not a scan).
        var byName: [String: Int] = [:]
        var byStateKey: [String: Int] = [:]
        if let a = table["account"] {
            guard let array = a.array else {
                throw ctx.error(.root, key: "account", "must be an array of tables: [[account]]")
            }
            for i in 0..<array.count {
                guard let t = array[i].table else {
                    throw ctx.error(.root, key: "account", "must be an array of tables: [[account]]")
                }
                let account: AccountConfiguration
                do {
                    account = try self.account(t, number: i, defaults: defaults, ctx: ctx)
                } catch let e as ConfigurationError {
                    // Every account is read, so that one run of `config check` reports every error.
                    errors.append(e)
                    errors.append(contentsOf: e.more)
                    continue
                }
                // Collected like the others: a duplicate must not hide the errors found before it.
                if let prior = byName[account.name].map({ accounts[$0] }) {
                    errors.append(
                        ctx.error(
                            .account(i), key: "name",
                            "duplicate account name \(account.name.debugDescription) (first used on line \(prior.line))"
                        ))
                    continue
                }
                if let prior = byStateKey[Self.comparableMailbox(account.stateKey)].map({ accounts[$0] }) {
                    errors.append(
                        ctx.error(
                            .account(i), key: account.mailboxID == nil ? "user" : "mailbox_id",
                            "accounts \(prior.name.debugDescription) (line \(prior.line)) and "
                                + "\(account.name.debugDescription) are both the mailbox \(account.stateKey) (its identity "
                                + "leaves out the port and TLS mode); if they are two mailboxes, give one a mailbox_id, "
                                + "e.g. mailbox_id = \"\(account.authentication.user)@\(account.server.host):\(account.server.port)\" (the identity "
                                + "popfetch used before version 4 of its state, which keeps that mailbox's history)"))
                    continue
                }
                byName[account.name] = accounts.count
                byStateKey[Self.comparableMailbox(account.stateKey)] = accounts.count
                accounts.append(account)
            }
        }
        if var first = errors.first {
            first.more = Array(errors.dropFirst()).map { e in
                var e = e
                e.more = []
                return e
            }
            throw first
        }
        return Configuration(path: path, global: global, accounts: accounts)
    }

    /// One `[[account]]`: the keys the rules below read together first (identity, secret, delivery), then every
    /// other key through ``AccountKeys/table``, then the rules that span keys.
    private func account(
        _ t: TOMLTable, number i: Int, defaults: [String: TOMLValue], ctx: Context
    ) throws -> AccountConfiguration {
        var errors: [ConfigurationError] = []
        for key in t.keys where !AccountKeys.names.contains(key) {
            errors.append(ctx.error(.account(i), key: key, "unknown key" + Self.suggestion(key, AccountKeys.names)))
        }
        let r = AccountReader(table: t, defaults: defaults, number: i, context: ctx)
        // The keys the others depend on (identity, secret, delivery) stop the account at their first error; every
        // other key is read, and its error collected.
        func collected(_ e: ConfigurationError) -> ConfigurationError {
            var first = errors.first ?? e
            first.more = Array(errors.dropFirst()) + (errors.isEmpty ? [] : [e])
            return first
        }

        var account: AccountConfiguration
        do {
            let name = try r.required("name", try r.string("name"))
            // Letters, digits and . _ - @ + only: the name goes into log lines, lock file names and shell
            // completions (bash's `compgen -W` expands `$(...)` and backquotes in the words it is given).
            if name.isEmpty || !name.allSatisfy({ $0.isLetter || $0.isNumber || "._-@+".contains($0) }) {
                throw r.error("name", "must be non-empty, made of letters, digits and . _ - @ + only")
            }
            let host = try r.required("host", try r.string("host"))
            if host.isEmpty { throw r.error("host", "must not be empty") }
            let user = try r.required("user", try r.string("user"))
            if user.isEmpty { throw r.error("user", "must not be empty") }
            account = AccountConfiguration(
                name: name, line: ctx.index.accountLine(i) ?? 0, server: .init(host: host),
                authentication: .init(user: user, password: try self.password(r, host: host, user: user)),
                delivery: .init(method: try Self.deliveryMethod(r), recipients: try self.recipients(r)))
        } catch let e as ConfigurationError {
            throw collected(e)
        }

        for key in AccountKeys.table {
            do {
                try key.read?(&account, r)
            } catch let e as ConfigurationError {
                errors.append(e)
            }
        }
        if let first = errors.first {
            var e = first
            e.more = Array(errors.dropFirst())
            throw e
        }
        try Self.checkRules(account, r)
        return account
    }

    /// `password`, `password_command` or `password_file` (one of them), else none for OAuth2 and EXTERNAL, else
    /// `~/.netrc`.
    private func password(_ r: AccountReader, host: String, user: String) throws -> SecretSource {
        if let secret = try r.secret(["password", "password_command", "password_file"]) { return secret }
        let external = try r.string("auth") == "external"
        if r.value("oauth_token_command") != nil || r.value("oauth_token_url") != nil || external {
            return .literal("")
        }
        if let netrc = Netrc.lookup(host: host, user: user) { return .literal(netrc) }
        throw r.error(
            "password",
            "is required but missing (or password_command / password_file / oauth_token_command, or a ~/.netrc entry)")
    }

    /// Exactly one of `mda`, `smtp`, `lmtp`, `maildir`.
    private static func deliveryMethod(_ r: AccountReader) throws -> DeliveryMethod {
        let methods = ["mda", "smtp", "lmtp", "maildir", "imap"].filter { r.value($0) != nil }
        if methods.count > 1 {
            throw r.error(
                methods[1],
                "give exactly one delivery method (mda, smtp, lmtp, maildir or imap); this account also has "
                    + methods[0])
        }
        if let raw = try r.string("mda") {
            do {
                return .mda(try MDACommand(raw))
            } catch let e as MDACommand.ParseError {
                throw r.error("mda", e.message)
            }
        }
        for (key, port) in [("smtp", 25), ("lmtp", 24)] {
            guard let raw = try r.string(key) else { continue }
            guard let endpoint = SMTPEndpoint.parse(raw, defaultPort: port) else {
                throw r.error(key, "must be host:port, [v6-address]:port or an absolute unix socket path")
            }
            return key == "smtp" ? .smtp(endpoint) : .lmtp(endpoint)
        }
        if let raw = try r.string("maildir") {
            if raw.isEmpty { throw r.error("maildir", "must not be empty") }
            return .maildir(r.context.resolve(raw))
        }
        if let raw = try r.string("imap") {
            switch IMAPDestination.parse(raw) {
            case .success(let destination): return .imap(destination)
            case .failure(let e): throw r.error("imap", e.message)
            }
        }
        throw r.error("mda", "is required but missing (a delivery method: mda, smtp, lmtp, maildir or imap)")
    }

    /// `recipient`: a string or an array of strings; by default the user running popfetch.
    private func recipients(_ r: AccountReader) throws -> [String] {
        guard let (v, _) = r.value("recipient") else { return [self.defaultRecipient] }
        var recipients: [String]
        if let str = v.string {
            recipients = [str]
        } else if let arr = v.array {
            recipients = []
            for j in 0..<arr.count {
                guard let str = arr[j].string else {
                    throw r.error("recipient", "must be a string or an array of strings")
                }
                recipients.append(str)
            }
        } else {
            throw r.error("recipient", "must be a string or an array of strings")
        }
        if recipients.isEmpty || recipients.contains(where: { $0.isEmpty }) {
            throw r.error("recipient", "must name at least one non-empty recipient")
        }
        if recipients.contains(where: { $0.contains("*") }) {
            throw r.error(
                "recipient",
                "\"*\" is fetchmail's multidrop (recipients taken from the headers), which popfetch does not do: "
                    + "name the recipients")
        }
        return recipients
    }

    /// The rules that span keys: what goes together, and what cannot.
    private static func checkRules(_ a: AccountConfiguration, _ r: AccountReader) throws {
        if (a.server.clientCertificate == nil) != (a.server.clientKey == nil) {
            throw r.error(
                a.server.clientCertificate == nil ? "tls_client_cert" : "tls_client_key",
                "tls_client_cert and tls_client_key go together", at: .account(r.number))
        }
        if a.authentication.method == .external && (a.server.clientCertificate == nil || a.server.tls == .none) {
            throw r.error(
                "auth",
                "\"external\" needs tls_client_cert and tls_client_key, and TLS (tls = \"implicit\" or \"starttls\")")
        }
        let method = a.authentication.method
        if (method == .xoauth2 || method == .oauthbearer) && a.authentication.oauthTokenCommand == nil
            && a.authentication.oauth == nil
        {
            throw r.error(
                "auth", "\"\(method.rawValue)\" needs oauth_token_command, or oauth_token_url with oauth_client_id")
        }
        if a.server.pollTimeout < a.server.timeout {
            throw r.error("poll_timeout", "must be at least timeout")
        }
        if a.delivery.onPermanentFailure == .bounce {
            switch a.delivery.method {
            case .smtp, .lmtp: break
            default:
                throw r.error(
                    "on_permanent_failure",
                    "\"bounce\" needs smtp or lmtp delivery (the bounce goes through the same MTA)")
            }
        }
        if case .imap(let destination) = a.delivery.method {
            try Self.validateIMAP(a, destination, r)
        }
        if (a.delivery.relay.user == nil) != (a.delivery.relay.password == nil) {
            throw r.error(
                a.delivery.relay.user == nil ? "smtp_user" : "smtp_password",
                "smtp_user and smtp_password (or smtp_password_command / smtp_password_file) go together",
                at: .account(r.number))
        }
        if a.retention.deleteAfter != nil && !a.retention.keep {
            throw r.error(
                "delete_after",
                "only applies with keep = true (with keep = false every message is deleted once delivered)")
        }
        if a.server.tls == .none && !a.server.isLoopback && !a.server.allowInsecureAuth {
            throw r.error(
                "tls",
                "\"none\" would send the password in clear text to \(a.server.host); use \"implicit\" or \"starttls\", "
                    + "or set allow_insecure_auth = true if you accept that risk")
        }
        if a.retention.withoutUIDL == .fetchAndDelete && a.retention.keep {
            throw r.error(
                "without_uidl",
                "\"fetch-and-delete\" cannot be combined with keep = true (nothing would tell old mail from new)")
        }
    }

    /// IMAP delivery: a user, a way to log in, and no password in clear text to a remote server.
    static func validateIMAP(_ a: AccountConfiguration, _ destination: IMAPDestination, _ r: AccountReader) throws {
        let imap = a.delivery.imap
        guard imap.user != nil else {
            throw r.error("imap_user", "is required with imap (the IMAP account's login name)", at: r.value("imap")?.1)
        }
        if imap.auth == .xoauth2 || imap.auth == .oauthbearer {
            guard imap.oauthTokenCommand != nil || imap.oauth != nil else {
                throw r.error(
                    "imap_auth",
                    "\"\(imap.auth.rawValue)\" needs imap_oauth_token_command, or imap_oauth_token_url with "
                        + "imap_oauth_client_id")
            }
        } else if imap.password == nil {
            throw r.error(
                "imap_password", "is required with imap (or imap_password_command / imap_password_file)",
                at: r.value("imap")?.1)
        }
        if destination.implicitTLS && imap.tls != nil {
            throw r.error("imap_tls", "applies to imap:// only (imaps:// is TLS from the start)")
        }
        if !destination.implicitTLS && imap.tls == nil && !destination.isLoopback && !a.server.allowInsecureAuth {
            throw r.error(
                "imap",
                "imap:// to \(destination.host) would send the password in clear text; use imaps://, or "
                    + "imap_tls = \"starttls\", or set allow_insecure_auth = true if you accept that risk")
        }
    }
}
