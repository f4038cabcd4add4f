public import Foundation
import SystemSupport

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
        String(
            s.unicodeScalars.filter { $0.value > 0x20 && $0.value < 0x7F && $0 != "(" && $0 != ")" && $0 != ";" }
                .map(Character.init))
    }

    /// `Thu, 26 Nov 2026 16:18:31 +0000` (RFC 5322 §3.3), formatted without Foundation's (costly) DateFormatter.
    public static func rfc5322Date(_ date: Date) -> String {
        var t = time_t(date.timeIntervalSince1970.rounded(.down))
        var tm = tm()
        gmtime_r(&t, &tm)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let day = days[Int(tm.tm_wday) % 7]
        let month = months[Int(tm.tm_mon) % 12]
        return "\(day), \(two(tm.tm_mday)) \(month) \(tm.tm_year + 1900) \(two(tm.tm_hour)):\(two(tm.tm_min)):"
            + "\(two(tm.tm_sec)) +0000"
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
