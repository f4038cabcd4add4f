#if canImport(Glibc)
import Glibc
#endif
import Foundation
import TOMLKit
import POP3Core
import SMTPCore
import SystemSupport

/// Reads and validates a popfetch TOML configuration file.
///
/// Every key is checked: unknown keys, wrong types, missing required keys and duplicate account names are errors
/// that name the file, the line and the key. TOMLKit reports lines only for syntax errors, so the loader indexes the
/// lines of `[[account]]` headers and `key =` assignments itself.
///
/// Root keys: `max_concurrent_polls`. `[defaults]`: any account key except `name`. `[[account]]`: see
/// ``AccountConfiguration`` and `etc/config.example.toml`.
public struct ConfigurationLoader: Sendable {
    public static let accountKeys: Set<String> = [
        "name", "enabled", "host", "port", "tls", "allow_insecure_auth", "ca_file", "user", "password",
        "password_command", "password_file", "auth", "keep", "delete_after", "max_size", "oversize", "fetch_limit",
        "without_uidl", "timeout", "mda", "mda_timeout", "mda_partial_read", "recipient", "max_attempts", "interval",
        "smtp", "lmtp", "maildir", "on_permanent_failure", "smtp_tls", "bounce_to", "smtp_ca_file", "smtp_user",
        "smtp_password", "smtp_password_command", "smtp_password_file", "oauth_token_command", "fingerprint", "oauth_client_id", "tls_client_cert", "tls_client_key",
        "oauth_client_secret", "oauth_client_secret_command", "oauth_token_url", "oauth_device_url", "oauth_scope",
        "tls_min_version", "size_tolerance", "forget_after", "flood_limit", "poll_timeout", "smtp_timeout", "mailbox_id",
    ]
    public static let rootKeys: Set<String> = ["defaults", "account", "max_concurrent_polls", "shutdown_grace"]

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
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigurationError(file: path, line: nil, key: nil, message: "is not valid UTF-8")
        }
        let config = try self.parse(text: text, path: path)
        if self.checkPermissions {
            try Self.checkMode(path: path, config: config)
        }
        return config
    }

    static func checkMode(path: String, config: Configuration) throws {
        guard config.accounts.contains(where: { a in
            if case .literal = a.password { return true }
            if case .literal = a.smtpPassword { return true }
            return false
        }) else {
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
            table = try TOMLTable(string: text)
        } catch let e as TOMLParseError {
            throw ConfigurationError(
                file: path, line: e.source.begin.line, key: nil, message: "TOML syntax error: \(e.description)")
        }
        let index = LineIndex(text: text)
        var ctx = Context(path: path, index: index)

        for key in table.keys where !Self.rootKeys.contains(key) {
            throw ctx.error(.root, key: key, "unknown key" + Self.suggestion(key, Self.rootKeys.union(Self.accountKeys)))
        }
        var global = GlobalSettings()
        if let v = table["max_concurrent_polls"] {
            global.maxConcurrentPolls = try ctx.positiveInt(v, section: .root, key: "max_concurrent_polls")
        }
        if let v = table["shutdown_grace"] {
            global.shutdownGrace = try ctx.duration(v, section: .root, key: "shutdown_grace")
        }

        var defaults: [String: any TOMLValueConvertible] = [:]
        if let d = table["defaults"] {
            guard let dt = d.table else { throw ctx.error(.root, key: "defaults", "must be a table: [defaults]") }
            for key in dt.keys {
                if key == "name" { throw ctx.error(.defaults, key: key, "an account name cannot be a default") }
                guard Self.accountKeys.contains(key) else {
                    throw ctx.error(.defaults, key: key, "unknown key" + Self.suggestion(key, Self.accountKeys))
                }
                if let v = dt[key] { defaults[key] = v }
            }
        }

        var accounts: [AccountConfiguration] = []
        if let a = table["account"] {
            guard let array = a.array else {
                throw ctx.error(.root, key: "account", "must be an array of tables: [[account]]")
            }
            for i in 0..<array.count {
                guard let t = array[i].table else {
                    throw ctx.error(.root, key: "account", "must be an array of tables: [[account]]")
                }
                let account = try self.account(t, number: i, defaults: defaults, ctx: &ctx)
                if let prior = accounts.first(where: { $0.name == account.name }) {
                    throw ctx.error(
                        .account(i), key: "name",
                        "duplicate account name \(account.name.debugDescription) (first used on line \(prior.line))")
                }
                if let prior = accounts.first(where: { $0.stateKey == account.stateKey }) {
                    throw ctx.error(
                        .account(i), key: account.mailboxID == nil ? "user" : "mailbox_id",
                        "accounts \(prior.name.debugDescription) (line \(prior.line)) and "
                            + "\(account.name.debugDescription) are both the mailbox \(account.stateKey) (its identity "
                            + "leaves out the port and TLS mode); if they are two mailboxes, give one a mailbox_id, "
                            + "e.g. mailbox_id = \"\(account.user)@\(account.host):\(account.port)\" (the identity "
                            + "popfetch used before version 4 of its state, which keeps that mailbox's history)")
                }
                accounts.append(account)
            }
        }
        return Configuration(path: path, global: global, accounts: accounts)
    }

    private func account(
        _ t: TOMLTable, number i: Int, defaults: [String: any TOMLValueConvertible], ctx: inout Context
    ) throws -> AccountConfiguration {
        for key in t.keys where !Self.accountKeys.contains(key) {
            throw ctx.error(.account(i), key: key, "unknown key" + Self.suggestion(key, Self.accountKeys))
        }
        // A key set in the account wins over [defaults]; errors point at wherever the value came from.
        func value(_ key: String) -> (any TOMLValueConvertible, Section)? {
            if let v = t[key] { return (v, .account(i)) }
            if let v = defaults[key] { return (v, .defaults) }
            return nil
        }
        func string(_ key: String) throws -> String? {
            guard let (v, s) = value(key) else { return nil }
            guard let str = v.string else { throw ctx.error(s, key: key, "must be a string, not \(v.type)") }
            return str
        }
        func bool(_ key: String) throws -> Bool? {
            guard let (v, s) = value(key) else { return nil }
            guard let b = v.bool else { throw ctx.error(s, key: key, "must be true or false, not \(v.type)") }
            return b
        }
        func nonNegativeInt(_ key: String) throws -> Int? {
            guard let (v, s) = value(key) else { return nil }
            guard let n = v.int, v.type == .int else { throw ctx.error(s, key: key, "must be an integer, not \(v.type)") }
            guard n >= 0 else { throw ctx.error(s, key: key, "must not be negative") }
            return n
        }
        func duration(_ key: String) throws -> Int? {
            guard let (v, s) = value(key) else { return nil }
            return try ctx.duration(v, section: s, key: key)
        }
        func size(_ key: String) throws -> Int? {
            guard let (v, s) = value(key) else { return nil }
            return try ctx.size(v, section: s, key: key)
        }
        func choice<E: RawRepresentable & CaseIterable>(_ key: String, _: E.Type) throws -> E?
        where E.RawValue == String {
            guard let raw = try string(key) else { return nil }
            guard let e = E(rawValue: raw) else {
                let (_, s) = value(key) ?? (raw, .account(i))
                let allowed = E.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
                throw ctx.error(s, key: key, "must be one of \(allowed), not \(raw.debugDescription)")
            }
            return e
        }
        func required<T>(_ key: String, _ v: T?) throws -> T {
            guard let v else { throw ctx.error(.account(i), key: key, "is required but missing") }
            return v
        }

        let name = try required("name", try string("name"))
        if name.isEmpty || name.contains(where: { $0.isWhitespace || $0 == "/" }) {
            throw ctx.error(.account(i), key: "name", "must be non-empty, without spaces or '/'")
        }
        let host = try required("host", try string("host"))
        if host.isEmpty { throw ctx.error(.account(i), key: "host", "must not be empty") }
        let user = try required("user", try string("user"))
        if user.isEmpty { throw ctx.error(.account(i), key: "user", "must not be empty") }

        let secretKeys = ["password", "password_command", "password_file"].filter { value($0) != nil }
        let password: SecretSource
        if secretKeys.count > 1 {
            throw ctx.error(
                .account(i), key: secretKeys[1], "give only one of password, password_command, password_file")
        }
        if let p = try string("password") {
            password = .literal(p)
        } else if let c = try string("password_command") {
            if c.trimmingCharacters(in: .whitespaces).isEmpty {
                throw ctx.error(.account(i), key: "password_command", "must not be empty")
            }
            password = .command(c)
        } else if let f = try string("password_file") {
            password = .file(Paths.expandTilde(f))
        } else if try value("oauth_token_command") != nil || value("oauth_token_url") != nil
            || string("auth") == "external"
        {
            password = .literal("")
        } else if let netrc = Netrc.lookup(host: host, user: user) {
            password = .literal(netrc)
        } else {
            throw ctx.error(
                .account(i), key: "password",
                "is required but missing (or password_command / password_file / oauth_token_command, or a ~/.netrc entry)")
        }

        let methods = ["mda", "smtp", "lmtp", "maildir"].filter { value($0) != nil }
        if methods.count > 1 {
            throw ctx.error(
                value(methods[1])?.1 ?? .account(i), key: methods[1],
                "give exactly one delivery method (mda, smtp, lmtp or maildir); this account also has \(methods[0])")
        }
        let delivery: DeliveryMethod
        if let mdaRaw = try string("mda") {
            do {
                delivery = .mda(try MDACommand(mdaRaw))
            } catch let e as MDACommand.ParseError {
                let s = value("mda")?.1 ?? .account(i)
                throw ctx.error(s, key: "mda", e.message)
            }
        } else if let raw = try string("smtp") {
            guard let t = SMTPEndpoint.parse(raw, defaultPort: 25) else {
                throw ctx.error(
                    value("smtp")?.1 ?? .account(i), key: "smtp",
                    "must be host:port, [v6-address]:port or an absolute unix socket path")
            }
            delivery = .smtp(t)
        } else if let raw = try string("lmtp") {
            guard let t = SMTPEndpoint.parse(raw, defaultPort: 24) else {
                throw ctx.error(
                    value("lmtp")?.1 ?? .account(i), key: "lmtp",
                    "must be host:port, [v6-address]:port or an absolute unix socket path")
            }
            delivery = .lmtp(t)
        } else if let raw = try string("maildir") {
            if raw.isEmpty { throw ctx.error(value("maildir")?.1 ?? .account(i), key: "maildir", "must not be empty") }
            delivery = .maildir(Paths.expandTilde(raw))
        } else {
            throw ctx.error(
                .account(i), key: "mda", "is required but missing (a delivery method: mda, smtp, lmtp or maildir)")
        }

        let tls = try choice("tls", TLSMode.self) ?? .implicit
        let port = try nonNegativeInt("port") ?? (tls == .implicit ? 995 : 110)
        if port == 0 || port > 65535 {
            throw ctx.error(value("port")?.1 ?? .account(i), key: "port", "must be between 1 and 65535")
        }

        var recipients: [String] = [self.defaultRecipient]
        if let (v, s) = value("recipient") {
            if let str = v.string {
                recipients = [str]
            } else if let arr = v.array {
                var out: [String] = []
                for j in 0..<arr.count {
                    guard let str = arr[j].string else {
                        throw ctx.error(s, key: "recipient", "must be a string or an array of strings")
                    }
                    out.append(str)
                }
                recipients = out
            } else {
                throw ctx.error(s, key: "recipient", "must be a string or an array of strings")
            }
            if recipients.isEmpty || recipients.contains(where: { $0.isEmpty }) {
                throw ctx.error(s, key: "recipient", "must name at least one non-empty recipient")
            }
        }

        var account = AccountConfiguration(
            name: name, host: host, port: port, user: user, password: password, delivery: delivery,
            recipients: recipients,
            line: ctx.index.accountLine(i) ?? 0)
        account.tls = tls
        account.enabled = try bool("enabled") ?? true
        account.allowInsecureAuth = try bool("allow_insecure_auth") ?? false
        account.caFile = try string("ca_file").map(Paths.expandTilde)
        account.tlsClientCertificate = try string("tls_client_cert").map(Paths.expandTilde)
        account.tlsClientKey = try string("tls_client_key").map(Paths.expandTilde)
        if (account.tlsClientCertificate == nil) != (account.tlsClientKey == nil) {
            throw ctx.error(
                .account(i), key: account.tlsClientCertificate == nil ? "tls_client_cert" : "tls_client_key",
                "tls_client_cert and tls_client_key go together")
        }
        if let fp = try string("fingerprint") {
            guard let bytes = CertificateFingerprint.parse(fp) else {
                throw ctx.error(
                    value("fingerprint")?.1 ?? .account(i), key: "fingerprint",
                    "must be \"sha256:AB:CD:...\" (32 bytes, as `openssl x509 -noout -fingerprint -sha256` prints)")
            }
            account.fingerprint = bytes
        }
        if let v = try string("tls_min_version") {
            guard v == "1.2" || v == "1.3" else {
                throw ctx.error(value("tls_min_version")?.1 ?? .account(i), key: "tls_min_version", "must be \"1.2\" or \"1.3\"")
            }
            account.tlsMinimumVersion = v
        }
        account.auth = try choice("auth", AuthMethod.self) ?? .auto
        account.oauthTokenCommand = try string("oauth_token_command")
        if let url = try string("oauth_token_url") {
            guard let id = try string("oauth_client_id") else {
                throw ctx.error(value("oauth_token_url")?.1 ?? .account(i), key: "oauth_client_id", "is required with oauth_token_url")
            }
            var secret: SecretSource?
            if let s = try string("oauth_client_secret") { secret = .literal(s) }
            if let c = try string("oauth_client_secret_command") { secret = .command(c) }
            account.oauth = OAuthSettings(
                tokenURL: url, deviceURL: try string("oauth_device_url"), clientID: id, clientSecret: secret,
                scope: try string("oauth_scope"))
        }
        if account.auth == .external && (account.tlsClientCertificate == nil || account.tls == .none) {
            throw ctx.error(
                value("auth")?.1 ?? .account(i), key: "auth",
                "\"external\" needs tls_client_cert and tls_client_key, and TLS (tls = \"implicit\" or \"starttls\")")
        }
        if (account.auth == .xoauth2 || account.auth == .oauthbearer) && account.oauthTokenCommand == nil
            && account.oauth == nil
        {
            throw ctx.error(
                value("auth")?.1 ?? .account(i), key: "auth",
                "\"\(account.auth.rawValue)\" needs oauth_token_command, or oauth_token_url with oauth_client_id")
        }
        account.keep = try bool("keep") ?? false
        account.deleteAfter = try duration("delete_after")
        if let ms = try size("max_size") { account.maxSize = ms == 0 ? nil : ms }
        account.oversize = try choice("oversize", OversizePolicy.self) ?? .skip
        account.fetchLimit = try nonNegativeInt("fetch_limit") ?? 0
        account.withoutUIDL = try choice("without_uidl", WithoutUIDLPolicy.self) ?? .refuse
        account.timeout = try duration("timeout") ?? 60
        if account.timeout == 0 { throw ctx.error(value("timeout")?.1 ?? .account(i), key: "timeout", "must be > 0") }
        account.smtpTimeout = try duration("smtp_timeout")
        if account.smtpTimeout == 0 {
            throw ctx.error(value("smtp_timeout")?.1 ?? .account(i), key: "smtp_timeout", "must be > 0")
        }
        account.pollTimeout = try duration("poll_timeout") ?? 3600
        if account.pollTimeout < account.timeout {
            throw ctx.error(
                value("poll_timeout")?.1 ?? .account(i), key: "poll_timeout", "must be at least timeout")
        }
        account.mdaTimeout = try duration("mda_timeout") ?? 600
        if account.mdaTimeout == 0 {
            throw ctx.error(value("mda_timeout")?.1 ?? .account(i), key: "mda_timeout", "must be > 0")
        }
        account.mdaPartialRead = try choice("mda_partial_read", MDAPartialReadPolicy.self) ?? .fail
        account.onPermanentFailure = try choice("on_permanent_failure", PermanentFailurePolicy.self) ?? .keep
        account.bounceTo = try string("bounce_to")
        if account.onPermanentFailure == .bounce {
            switch delivery {
            case .smtp, .lmtp: break
            default:
                throw ctx.error(
                    value("on_permanent_failure")?.1 ?? .account(i), key: "on_permanent_failure",
                    "\"bounce\" needs smtp or lmtp delivery (the bounce goes through the same MTA)")
            }
        }
        account.smtpTLS = try choice("smtp_tls", SMTPTLSMode.self) ?? .none
        account.smtpCAFile = try string("smtp_ca_file").map(Paths.expandTilde)
        account.smtpUser = try string("smtp_user")
        let smtpSecrets = ["smtp_password", "smtp_password_command", "smtp_password_file"].filter { value($0) != nil }
        if smtpSecrets.count > 1 {
            throw ctx.error(.account(i), key: smtpSecrets[1], "give only one of \(smtpSecrets.joined(separator: ", "))")
        }
        if let p = try string("smtp_password") {
            account.smtpPassword = .literal(p)
        } else if let c = try string("smtp_password_command") {
            account.smtpPassword = .command(c)
        } else if let f = try string("smtp_password_file") {
            account.smtpPassword = .file(Paths.expandTilde(f))
        }
        if (account.smtpUser == nil) != (account.smtpPassword == nil) {
            throw ctx.error(
                .account(i), key: account.smtpUser == nil ? "smtp_user" : "smtp_password",
                "smtp_user and smtp_password (or smtp_password_command / smtp_password_file) go together")
        }
        account.interval = try duration("interval") ?? 300
        if account.interval == 0 {
            throw ctx.error(value("interval")?.1 ?? .account(i), key: "interval", "must be at least 1 second")
        }
        account.maxAttempts = try nonNegativeInt("max_attempts") ?? 5
        if account.maxAttempts == 0 {
            throw ctx.error(value("max_attempts")?.1 ?? .account(i), key: "max_attempts", "must be at least 1")
        }
        account.sizeTolerance = try size("size_tolerance") ?? 0
        account.mailboxID = try string("mailbox_id")
        if account.mailboxID?.isEmpty == true {
            throw ctx.error(value("mailbox_id")?.1 ?? .account(i), key: "mailbox_id", "must not be empty")
        }
        account.forgetAfter = try duration("forget_after") ?? AccountConfiguration.defaultForgetAfter
        if account.forgetAfter < 86_400 {
            throw ctx.error(
                value("forget_after")?.1 ?? .account(i), key: "forget_after",
                "must be at least 1d (a shorter memory would re-deliver messages after a server hiccup)")
        }
        account.floodLimit = try nonNegativeInt("flood_limit") ?? 20
        if account.deleteAfter != nil && !account.keep {
            throw ctx.error(
                value("delete_after")?.1 ?? .account(i), key: "delete_after",
                "only applies with keep = true (with keep = false every message is deleted once delivered)")
        }
        if account.tls == .none && !account.hostIsLoopback && !account.allowInsecureAuth {
            throw ctx.error(
                value("tls")?.1 ?? .account(i), key: "tls",
                "\"none\" would send the password in clear text to \(host); use \"implicit\" or \"starttls\", "
                    + "or set allow_insecure_auth = true if you accept that risk")
        }
        if account.withoutUIDL == .fetchAndDelete && account.keep {
            throw ctx.error(
                value("without_uidl")?.1 ?? .account(i), key: "without_uidl",
                "\"fetch-and-delete\" cannot be combined with keep = true (nothing would tell old mail from new)")
        }
        return account
    }

    static func suggestion(_ key: String, _ known: Set<String>) -> String {
        let best = known.min { Self.distance(key, $0) < Self.distance(key, $1) }
        if let best, Self.distance(key, best) <= 2 { return " (did you mean \(best)?)" }
        return ""
    }

    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a)
        let b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var prev = Array(0...b.count)
        for i in 1...a.count {
            var cur = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            prev = cur
        }
        return prev[b.count]
    }
}

enum Section: Hashable {
    case root
    case defaults
    case account(Int)
}

/// Lines of section headers and `key =` assignments, found by scanning the text.
struct LineIndex {
    private var keyLines: [Section: [String: Int]] = [:]
    private var accountLines: [Int] = []
    private var defaultsLine: Int?

    init(text: String) {
        var section = Section.root
        var lineNumber = 0
        var inMultilineString = false
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            let tripleQuotes = line.components(separatedBy: "\"\"\"").count - 1
                + line.components(separatedBy: "'''").count - 1
            if inMultilineString {
                if tripleQuotes % 2 == 1 { inMultilineString = false }
                continue
            }
            if line.hasPrefix("[[") {
                let name = line.dropFirst(2).prefix { $0 != "]" }.trimmingCharacters(in: .whitespaces)
                if name == "account" {
                    self.accountLines.append(lineNumber)
                    section = .account(self.accountLines.count - 1)
                } else {
                    section = .root
                }
                continue
            }
            if line.hasPrefix("[") {
                let name = line.dropFirst().prefix { $0 != "]" }.trimmingCharacters(in: .whitespaces)
                section = name == "defaults" ? .defaults : .root
                if name == "defaults" { self.defaultsLine = lineNumber }
                continue
            }
            if let eq = line.firstIndex(of: "="), !line.hasPrefix("#") {
                var key = line[..<eq].trimmingCharacters(in: .whitespaces)
                if key.count >= 2, key.first == "\"" || key.first == "'", key.last == key.first {
                    key = String(key.dropFirst().dropLast())
                }
                if self.keyLines[section, default: [:]][key] == nil {
                    self.keyLines[section, default: [:]][key] = lineNumber
                }
                if tripleQuotes % 2 == 1 { inMultilineString = true }
            }
        }
    }

    func line(of key: String, in section: Section) -> Int? {
        if let l = self.keyLines[section]?[key] { return l }
        return self.sectionLine(section)
    }

    func sectionLine(_ section: Section) -> Int? {
        switch section {
        case .root: return nil
        case .defaults: return self.defaultsLine
        case .account(let i): return self.accountLine(i)
        }
    }

    func accountLine(_ i: Int) -> Int? { i < self.accountLines.count ? self.accountLines[i] : nil }
}

private struct Context {
    var path: String
    var index: LineIndex

    func error(_ section: Section, key: String, _ message: String) -> ConfigurationError {
        let prefix: String
        switch section {
        case .root: prefix = ""
        case .defaults: prefix = "defaults."
        case .account: prefix = ""
        }
        return ConfigurationError(
            file: self.path, line: self.index.line(of: key, in: section), key: prefix + key, message: message)
    }

    func positiveInt(_ v: any TOMLValueConvertible, section: Section, key: String) throws -> Int {
        guard v.type == .int, let n = v.int else { throw self.error(section, key: key, "must be an integer") }
        guard n > 0 else { throw self.error(section, key: key, "must be at least 1") }
        return n
    }

    func duration(_ v: any TOMLValueConvertible, section: Section, key: String) throws -> Int {
        if v.type == .int, let n = v.int {
            guard n >= 0 else { throw self.error(section, key: key, "must not be negative") }
            return n
        }
        guard let s = v.string, let d = Units.parseDuration(s) else {
            throw self.error(
                section, key: key, "must be a duration such as \"30s\", \"5m\", \"2h\", \"30d\" or integer seconds")
        }
        return d
    }

    func size(_ v: any TOMLValueConvertible, section: Section, key: String) throws -> Int {
        if v.type == .int, let n = v.int {
            guard n >= 0 else { throw self.error(section, key: key, "must not be negative") }
            return n
        }
        guard let s = v.string, let d = Units.parseSize(s) else {
            throw self.error(section, key: key, "must be a size such as \"50MB\", \"512KB\", \"1GB\" or integer bytes")
        }
        return d
    }
}
