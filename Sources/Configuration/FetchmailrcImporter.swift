import Foundation

/// Translates a `.fetchmailrc` into an equivalent popfetch TOML configuration, with a comment for every option
/// that has no equivalent. Pure: text in, text out.
///
/// Grammar (fetchmail(1)): `set` globals; `defaults` and `poll`/`skip` entries with server options (`via`,
/// `proto`, `port`/`service`, `auth`, `timeout`, `interval`, ...) followed by user descriptions
/// (`user NAME [there] [with password PW] [is LOCAL here]`, `keep`, `fetchall`, `ssl`, `sslcertck`, `mda`,
/// `smtphost`, `limit`, `fetchlimit`, ...). Noise words (`and`, `with`, `has`, `wants`, `options`, `here`, `there`,
/// and the punctuation `: ; ,`) are ignored, as fetchmail does.
public enum FetchmailrcImporter {
    public struct ParseError: Error, Hashable, Sendable, CustomStringConvertible {
        public var line: Int
        public var message: String
        public var description: String { "line \(self.line): \(self.message)" }
    }

    struct Token {
        var text: String
        var quoted: Bool
        var line: Int
    }

    static func tokenize(_ text: String) throws -> [Token] {
        var tokens: [Token] = []
        var line = 1
        var it = Array(text)
        var i = 0
        _ = it.isEmpty
        while i < it.count {
            let c = it[i]
            if c == "\n" || c == "\r\n" {
                line += 1
                i += 1
            } else if c == " " || c == "\t" || c == "\r" || c == ":" || c == ";" || c == "," {
                i += 1
            } else if c == "#" {
                while i < it.count && it[i] != "\n" { i += 1 }
            } else if c == "\"" || c == "'" {
                let quote = c
                let start = line
                var s = ""
                i += 1
                var closed = false
                while i < it.count {
                    let d = it[i]
                    if d == "\\" && i + 1 < it.count {
                        let e = it[i + 1]
                        s.append(e == "n" ? "\n" : e == "t" ? "\t" : e)
                        i += 2
                        continue
                    }
                    if d == quote {
                        closed = true
                        i += 1
                        break
                    }
                    if d == "\n" { line += 1 }
                    s.append(d)
                    i += 1
                }
                if !closed { throw ParseError(line: start, message: "unterminated string") }
                tokens.append(Token(text: s, quoted: true, line: start))
            } else {
                var s = ""
                while i < it.count, !Self.separators.contains(it[i]) {
                    s.append(it[i])
                    i += 1
                }
                tokens.append(Token(text: s, quoted: false, line: line))
            }
        }
        it.removeAll()
        return tokens
    }

    static let separators: Set<Character> = [" ", "\t", "\r", "\n", "\r\n", ":", ";", ",", "#", "\"", "'"]

    static let noise: Set<String> = ["and", "with", "has", "wants", "options", "here", "there"]

    struct User {
        var remote: String
        var password: String?
        var locals: [String] = []
        var keep: Bool?
        var mda: String?
        var smtphost: String?
        /// `lmtp`: the smtphost speaks LMTP (a unix socket, or host/port).
        var lmtp = false
        /// `esmtpname` / `esmtppassword`: SMTP AUTH to the relay (smtp_user / smtp_password).
        var esmtpName: String?
        var esmtpPassword: String?
        var limit: Int?
        var fetchlimit: Int?
        var ssl = false
        var sslcertck = false
        var sslfingerprint: String?
        var sslcertfile: String?
        /// `is * here`: fetchmail's multidrop (recipients read from the headers), which popfetch does not do.
        var multidrop = false
        var notes: [String] = []
    }

    struct Server {
        var host: String = ""
        var skip = false
        var via: String?
        var proto: String?
        var port: Int?
        var auth: String?
        var timeout: Int?
        var interval: Int?
        var notes: [String] = []
        var users: [User] = []
    }

    /// Returns the TOML text.
    public static func convert(_ text: String, source: String) throws -> String {
        let tokens = try self.tokenize(text)
        var daemonInterval: Int?
        var globalNotes: [String] = []
        var servers: [Server] = []
        var defaults = Server()
        var defaultUser = User(remote: "")
        var i = 0
        func peek() -> Token? { i < tokens.count ? tokens[i] : nil }
        func next() -> Token? {
            defer { i += 1 }
            return peek()
        }
        func value(_ key: String, _ at: Int) throws -> Token {
            guard let t = next() else { throw ParseError(line: at, message: "\(key) needs a value") }
            return t
        }
        func int(_ key: String, _ at: Int) throws -> Int {
            let t = try value(key, at)
            guard let n = Int(t.text) else { throw ParseError(line: t.line, message: "\(key) needs a number") }
            return n
        }

        var current: Server?
        var user: User?
        // User options given after `poll HOST` but before `user` apply to that server's users.
        var pendingUser = User(remote: "")
        func mutateUser(_ f: (inout User) -> Void) {
            if var u = user {
                f(&u)
                user = u
            } else {
                f(&pendingUser)
            }
        }
        func closeUser() {
            if let u = user {
                current?.users.append(u)
                user = nil
            }
        }
        func closeServer() {
            closeUser()
            if var s = current {
                if s.users.isEmpty { s.users.append(defaultUser) }
                servers.append(s)
            }
            current = nil
        }

        while let t = next() {
            let word = t.quoted ? t.text : t.text.lowercased()
            if !t.quoted && Self.noise.contains(word) { continue }
            switch word {
            case "set":
                guard let what = next() else { throw ParseError(line: t.line, message: "set needs a name") }
                switch what.text.lowercased() {
                case "daemon": daemonInterval = try int("set daemon", t.line)
                case "no":
                    let n = next()?.text ?? ""
                    globalNotes.append("set no \(n): no popfetch equivalent (popfetch never bounces to senders)")
                case "syslog":
                    globalNotes.append(
                        "set syslog: run popfetch with --syslog (facility mail); without it, it logs to stderr (the "
                            + "journal under its systemd unit)")
                case let name where Self.valuedSets.contains(name):
                    // `set logfile FILE`, `set postmaster NAME`, ...: one value. Other `set`s are flags, and a word
                    // after them is the next statement (`set syslog` then `defaults`).
                    let v = next()?.text ?? ""
                    globalNotes.append("set \(what.text) \(v): no popfetch equivalent")
                default:
                    globalNotes.append("set \(what.text): no popfetch equivalent")
                }
            case "defaults":
                closeServer()
                current = Server()
                current?.host = "\u{0}defaults"
                // User options given in `defaults` apply to every user that follows.
                user = defaultUser
            case "poll", "skip":
                closeServer()
                let host = try value(word, t.line)
                var s = defaults
                s.users = []
                s.host = host.text
                s.skip = word == "skip"
                current = s
                pendingUser = defaultUser
            case "via": current?.via = try value("via", t.line).text
            case "proto", "protocol":
                current?.proto = try value("proto", t.line).text.uppercased()
            case "port", "service":
                current?.port = try int("port", t.line)
            case "auth", "authenticate":
                current?.auth = try value("auth", t.line).text.lowercased()
            case "timeout": current?.timeout = try int("timeout", t.line)
            case "interval":
                let n = try int("interval", t.line)
                current?.notes.append(
                    "interval \(n): fetchmail polled this server every \(Self.ordinal(n)) cycle; "
                        + "set this account's interval instead")
            case "uidl", "no":
                if word == "no" {
                    let n = next()?.text.lowercased() ?? ""
                    if n == "keep" {
                        mutateUser { $0.keep = false }
                    } else if n == "uidl" || n == "dns" || n == "envelope" {
                        current?.notes.append("no \(n): not needed with popfetch")
                    } else if user != nil {
                        user?.notes.append("no \(n): no popfetch equivalent")
                    } else {
                        current?.notes.append("no \(n): no popfetch equivalent")
                    }
                }
            case "user", "username":
                if current == nil { throw ParseError(line: t.line, message: "user outside a poll entry") }
                closeUser()
                var u = pendingUser
                u.remote = try value("user", t.line).text
                user = u
            case "pass", "password":
                let v = try value("password", t.line).text; mutateUser { $0.password = v }
            case "is", "to":
                while let n = peek(), n.quoted || !["here", "and", "with"].contains(n.text.lowercased()) {
                    if Self.isUserOption(n.text) && !n.quoted { break }
                    if n.text == "*" {
                        mutateUser { $0.multidrop = true }
                    } else {
                        mutateUser { $0.locals.append(n.text) }
                    }
                    i += 1
                }
            case "keep": mutateUser { $0.keep = true }
            case "nokeep", "flush": mutateUser { $0.keep = false }
            case "fetchall":
                mutateUser {
                    $0.notes.append(
                        "fetchall: popfetch fetches only new mail; `popfetch forget --account NAME` fetches it all "
                            + "again")
                }
            case "ssl": mutateUser { $0.ssl = true }
            case "sslcertck": mutateUser { $0.sslcertck = true }
            case "sslfingerprint":
                let v = try value("sslfingerprint", t.line).text; mutateUser { $0.sslfingerprint = v }
            case "sslcertfile", "sslcertpath": let v = try value(word, t.line).text; mutateUser { $0.sslcertfile = v }
            case "sslproto": _ = next()
            case "mda": let v = try value("mda", t.line).text; mutateUser { $0.mda = v }
            case "smtphost", "smtphosts": let v = try value("smtphost", t.line).text; mutateUser { $0.smtphost = v }
            case "lmtp": mutateUser { $0.lmtp = true }
            case "esmtpname": let v = try value("esmtpname", t.line).text; mutateUser { $0.esmtpName = v }
            case "esmtppassword":
                let v = try value("esmtppassword", t.line).text; mutateUser { $0.esmtpPassword = v }
            case "limit": let v = try int("limit", t.line); mutateUser { $0.limit = v }
            case "fetchlimit": let v = try int("fetchlimit", t.line); mutateUser { $0.fetchlimit = v }
            default:
                // An option's arguments (numbers, quoted strings: `antispam 571 550 501`, `preconnect "cmd"`) go in
                // its one comment, not a comment each.
                var words = [t.text]
                while let n = peek(), n.quoted || (!n.text.isEmpty && n.text.allSatisfy(\.isNumber)) {
                    words.append(n.quoted ? "\"\(n.text)\"" : n.text)
                    i += 1
                }
                if Self.valuedOptions.contains(word), words.count == 1, let n = next() { words.append(n.text) }
                let note = "\(words.joined(separator: " ")): no popfetch equivalent"
                if user != nil {
                    user?.notes.append(note)
                } else if current != nil {
                    current?.notes.append(note)
                } else {
                    globalNotes.append(note)
                }
            }
            if current?.host == "\u{0}defaults", let d = current {
                defaults = d
                if let u = user { defaultUser = u }
            }
        }
        closeServer()
        servers.removeAll { $0.host == "\u{0}defaults" }
        return Self.render(servers, daemonInterval: daemonInterval, notes: globalNotes, source: source)
    }

    /// `set` statements that take a value (the others are flags).
    static let valuedSets: Set<String> = [
        "logfile", "idfile", "postmaster", "pidfile", "properties", "fetchmailrc", "daemon",
    ]

    /// Options without an equivalent that take one value, quoted or not (`envelope X-Envelope-To`, `folder INBOX`).
    static let valuedOptions: Set<String> = [
        "envelope", "qvirtual", "principal", "preconnect", "postconnect", "plugin",
        "plugout", "folder", "smtpaddress", "smtpname", "bsmtp", "expunge", "batchlimit", "fetchsizelimit",
        "fastuidl", "warnings", "sslkey", "sslcert", "sslcommonname", "bad-header", "retrieve-error",
    ]

    /// 1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st ...
    static func ordinal(_ n: Int) -> String {
        let suffix: String
        switch (n % 10, n % 100) {
        case (_, 11...13): suffix = "th"
        case (1, _): suffix = "st"
        case (2, _): suffix = "nd"
        case (3, _): suffix = "rd"
        default: suffix = "th"
        }
        return "\(n)\(suffix)"
    }

    static func isUserOption(_ s: String) -> Bool {
        [
            "keep", "nokeep", "flush", "fetchall", "ssl", "sslcertck", "mda", "smtphost", "limit", "fetchlimit",
            "password", "pass", "user", "username", "poll", "skip", "sslfingerprint",
        ].contains(s.lowercased())
    }

    /// `s` as a TOML basic string. Control characters are escaped (TOML 1.0 "String": only tab may appear as it
    /// is), so a value from the .fetchmailrc cannot end the line and add keys of its own.
    static func q(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            default: out += Self.escaped(scalar)
            }
        }
        return out + "\""
    }

    /// `s` for a `#` comment: control characters written as escapes (TOML 1.0 "Comment": no control characters but
    /// tab), so text from the .fetchmailrc cannot end the comment and add keys of its own.
    static func comment(_ s: String) -> String {
        s.unicodeScalars.map(Self.escaped).joined()
    }

    /// A control character (but tab) as a TOML escape; any other character as it is.
    static func escaped(_ scalar: Unicode.Scalar) -> String {
        switch scalar {
        case "\n": return "\\n"
        case "\r": return "\\r"
        case "\t": return "\t"
        default:
            guard scalar.value < 0x20 || scalar.value == 0x7F else { return String(scalar) }
            let hex = String(scalar.value, radix: 16, uppercase: true)
            return "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        }
    }

    /// fetchmail runs mda through /bin/sh; popfetch runs it directly unless it needs a shell.
    ///
    /// Run directly, `%F` and `%T` become single (sanitised) arguments. Through `sh -c`, the sender (which whoever
    /// sends the mail chooses) is not substituted into the script at all: `%F` (also `'%F'` and `"%F"`) becomes
    /// `"$POPFETCH_SENDER"`, which the shell expands as one quoted word. `%T` stays: recipients come from the
    /// configuration, are sanitised too, and keep fetchmail's one run per recipient.
    static func mda(_ raw: String) -> String {
        if (try? MDACommand(raw)) != nil { return raw }
        var script = raw
        for form in ["'%F'", "\"%F\"", "%F"] {
            script = script.replacingOccurrences(of: form, with: "\"$POPFETCH_SENDER\"")
        }
        return "sh -c '" + script.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    static func render(_ servers: [Server], daemonInterval: Int?, notes: [String], source: String) -> String {
        var out = "# popfetch configuration imported from \(Self.comment(source)) by `popfetch import-fetchmailrc`.\n"
        out += "# Check it with `popfetch config check`; keep it private (chmod 600) if it holds passwords.\n"
        for n in notes { out += "# fetchmail: \(Self.comment(n))\n" }
        if let d = daemonInterval {
            out += "\n[defaults]\ninterval = \"\(d)s\"   # fetchmail's `set daemon \(d)`\n"
        }
        var names = Set<String>()
        for s in servers {
            for u in s.users {
                var name = s.host
                if s.users.count > 1 || names.contains(name) { name += "-" + u.remote }
                name = String(
                    name.map {
                        $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == "_" || $0 == "@" ? $0 : "-"
                    })
                while names.contains(name) { name += "-2" }
                names.insert(name)
                out += "\n[[account]]\n"
                out += "name = \(q(name))\n"
                var enabled = !s.skip
                if u.multidrop {
                    enabled = false
                    out += "# fetchmail: `is * here` (multidrop: recipients read from the headers) has no popfetch "
                    out += "equivalent:\n#   popfetch delivers every message of a mailbox to the recipients you set; "
                    out += "set recipient, then enabled = true\n"
                }
                if let p = s.proto, p != "POP3", p != "AUTO", p != "APOP", p != "RPOP" {
                    enabled = false
                    out +=
                        "# fetchmail: proto \(Self.comment(p)): popfetch is a POP3 retriever; this account is disabled\n"
                }
                if !enabled { out += "enabled = false\n" }
                out += "host = \(q(s.via ?? s.host))\n"
                if let via = s.via { out += "# fetchmail: poll \(Self.comment(s.host)) via \(Self.comment(via))\n" }
                let tls: String
                if u.ssl {
                    tls = "implicit"
                } else {
                    tls = "starttls"
                    out +=
                        "# fetchmail: no `ssl` here; popfetch never sends a password in clear text, so it requires STLS.\n"
                    out +=
                        "#   (tls = \"none\" with allow_insecure_auth = true would keep fetchmail's clear-text login)\n"
                }
                out += "tls = \(q(tls))\n"
                if let p = s.port { out += "port = \(p)\n" }
                if let fp = u.sslfingerprint {
                    out += "# fetchmail: sslfingerprint \(Self.comment(fp)) is an MD5 fingerprint; "
                    out += "pin the SHA-256 one instead:\n"
                    out += "#   popfetch check --show-certificate --account \(name)\n"
                }
                if let cf = u.sslcertfile { out += "ca_file = \(q(cf))\n" }
                if !u.sslcertck && u.ssl {
                    out +=
                        "# fetchmail: without sslcertck fetchmail did not verify the certificate; popfetch always does\n"
                }
                out += "user = \(q(u.remote))\n"
                if let p = u.password {
                    out += "password = \(q(p))\n"
                } else {
                    out += "# fetchmail: no password given; popfetch reads ~/.netrc, or set password_command\n"
                }
                if let a = s.auth {
                    let map = ["password": "user", "apop": "apop", "cram-md5": "cram-md5", "any": "auto"]
                    if let m = map[a] {
                        out += "auth = \(q(m))\n"
                    } else {
                        out +=
                            "# fetchmail: auth \(Self.comment(a)): not mapped; popfetch picks the strongest offered\n"
                    }
                }
                if let k = u.keep { out += "keep = \(k)\n" }
                if let l = u.limit { out += "max_size = \(l)\n" }
                if let f = u.fetchlimit { out += "fetch_limit = \(f)\n" }
                if let t = s.timeout { out += "timeout = \"\(t)s\"\n" }
                if let m = u.mda {
                    out += "mda = \(q(Self.mda(m)))\n"
                    if u.esmtpName != nil { out += "# fetchmail: esmtpname/esmtppassword: unused with mda\n" }
                } else {
                    var host = u.smtphost ?? "localhost"
                    if host.hasPrefix("/") {
                        // A unix socket path (fetchmail's LMTP to a local delivery agent): as given.
                    } else if let slash = host.firstIndex(of: "/") {
                        host = String(host[..<slash]) + ":" + String(host[host.index(after: slash)...])
                    } else {
                        host += u.lmtp ? ":24" : ":25"
                    }
                    out += "\(u.lmtp ? "lmtp" : "smtp") = \(q(host))\n"
                    if let name = u.esmtpName, !u.lmtp {
                        let relay = String((u.smtphost ?? "localhost").prefix { $0 != "/" })
                        if !relay.isEmpty, !AccountConfiguration.Server.isLoopback(relay) {
                            // popfetch sends the relay's password only over TLS to a remote host.
                            out += "smtp_tls = \"starttls\"\n"
                        }
                        out += "smtp_user = \(q(name))\n"
                        if let pw = u.esmtpPassword { out += "smtp_password = \(q(pw))\n" }
                    }
                }
                let recipients = u.locals.isEmpty ? [u.remote] : u.locals
                out += "recipient = [" + recipients.map(q).joined(separator: ", ") + "]\n"
                for n in s.notes + u.notes { out += "# fetchmail: \(Self.comment(n))\n" }
            }
        }
        return out
    }
}
