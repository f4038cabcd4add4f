import Foundation

// The TOML side of the import: quoting, comments, the MDA command, and the rendered configuration.
extension FetchmailrcImporter {
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
