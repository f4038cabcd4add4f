import Foundation
import SystemSupport

/// `~/.netrc` lookup (the format ftp, curl and fetchmail read): `machine HOST login USER password SECRET`.
/// Used when an account gives no password of its own. A netrc readable by group or others is ignored, as ftp does.
public enum Netrc {
    public static func lookup(host: String, user: String, path: String? = nil) -> String? {
        let file = path ?? (ProcessInfo.processInfo.environment["NETRC"] ?? Paths.home() + "/.netrc")
        var st = stat()
        guard stat(file, &st) == 0, st.st_mode & 0o077 == 0,
            let text = try? String(contentsOfFile: file, encoding: .utf8)
        else { return nil }
        return Self.parse(text, host: host, user: user)
    }

    static func parse(_ text: String, host: String, user: String) -> String? {
        let tokens = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }).map(
            String.init)
        var i = 0
        var machine: String?
        var login: String?
        var password: String?
        var fallback: String?
        func finish() -> String? {
            if machine == host && (login == nil || login == user), let password { return password }
            if machine == nil, login == nil || login == user, let password, fallback == nil { fallback = password }
            return nil
        }
        while i < tokens.count {
            switch tokens[i] {
            case "machine", "default":
                if let found = finish() { return found }
                if tokens[i] == "default" {
                    machine = nil
                    i += 1
                } else {
                    machine = i + 1 < tokens.count ? tokens[i + 1] : nil
                    i += 2
                }
                login = nil
                password = nil
            case "login":
                login = i + 1 < tokens.count ? tokens[i + 1] : nil
                i += 2
            case "password":
                password = i + 1 < tokens.count ? tokens[i + 1] : nil
                i += 2
            case "account", "macdef":
                i += 2
            default:
                i += 1
            }
        }
        return finish() ?? fallback
    }
}

#if canImport(Glibc)
    import Glibc
#endif
