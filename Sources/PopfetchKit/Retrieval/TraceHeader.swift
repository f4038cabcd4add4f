import Foundation

/// The `Received:` trace header popfetch puts at the top of every message it hands on (RFC 5321 §4.4 style).
public enum TraceHeader {
    public static func make(serverHost: String, accountName: String, localHost: String, date: Date) -> [UInt8] {
        let text =
            "Received: from \(Self.sanitize(serverHost))\n\tby \(Self.sanitize(localHost)) with POP3 "
            + "(popfetch \(PopfetchVersion.current); account \(Self.sanitize(accountName)));\n\t"
            + Self.rfc5322Date(date) + "\n"
        return Array(text.utf8)
    }

    /// Keeps header-safe characters only: a configured name can never break the header.
    static func sanitize(_ s: String) -> String {
        String(s.unicodeScalars.filter { $0.value > 0x20 && $0.value < 0x7F && $0 != "(" && $0 != ")" && $0 != ";" }
            .map(Character.init))
    }

    public static func rfc5322Date(_ date: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss '+0000'"
        return f.string(from: date)
    }

    public static func localHostName() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        if gethostname(&buf, buf.count - 1) == 0 {
            let name = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if !name.isEmpty { return name }
        }
        return "localhost"
    }
}

#if canImport(Glibc)
import Glibc
#endif
