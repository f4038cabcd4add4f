import Foundation
import SystemSupport

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
    /// `workingDirectory`: where fetchmail would have run, to make its relative file names (`sslcertfile`)
    /// absolute; popfetch reads a relative path in its config as relative to the config's directory.
    public static func convert(_ text: String, source: String, workingDirectory: String? = nil) throws -> String {
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
            case "sslcertfile", "sslcertpath":
                let v = try value(word, t.line).text
                let path = workingDirectory.map { Paths.resolve(v, relativeTo: $0) } ?? v
                mutateUser { $0.sslcertfile = path }
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
}
