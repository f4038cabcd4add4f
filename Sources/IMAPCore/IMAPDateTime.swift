/// A moment with the sender's UTC offset, as APPEND's `date-time` carries it (RFC 3501 §9:
/// `"dd-Mon-yyyy hh:mm:ss +hhmm"`), read from a message's Date header (RFC 5322 §3.3, obsolete forms included).
public struct IMAPDateTime: Hashable, Sendable, CustomStringConvertible {
    public var year: Int
    public var month: Int
    public var day: Int
    public var hour: Int
    public var minute: Int
    public var second: Int
    /// Minutes east of UTC.
    public var offsetMinutes: Int

    static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// nil when a field is out of range (the day checked against the month, leap years included).
    public init?(year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int, offsetMinutes: Int) {
        guard (1900...9999).contains(year), (1...12).contains(month),
            (1...Self.daysIn(month: month, year: year)).contains(day), (0...23).contains(hour),
            (0...59).contains(minute), (0...60).contains(second),
            (-(99 * 60 + 59)...(99 * 60 + 59)).contains(offsetMinutes)
        else { return nil }
        self.year = year
        self.month = month
        self.day = day
        self.hour = hour
        self.minute = minute
        // IMAP's time has no leap second.
        self.second = min(second, 59)
        self.offsetMinutes = offsetMinutes
    }

    /// The moment given as seconds since 1970 (UTC), shown in UTC.
    public init?(secondsSince1970 t: Int64) {
        guard t >= -2_208_988_800 && t < 253_402_300_800 else { return nil }
        let days = Int(t >= 0 ? t / 86_400 : (t - 86_399) / 86_400)
        let rest = Int(t - Int64(days) * 86_400)
        let (y, m, d) = Self.civil(fromDays: days)
        self.init(
            year: y, month: m, day: d, hour: rest / 3600, minute: rest / 60 % 60, second: rest % 60, offsetMinutes: 0)
    }

    public var imapString: String {
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        let sign = self.offsetMinutes < 0 ? "-" : "+"
        let off = abs(self.offsetMinutes)
        let day = self.day < 10 ? " \(self.day)" : "\(self.day)"
        return "\(day)-\(Self.months[self.month - 1])-\(self.year) \(two(self.hour)):\(two(self.minute)):"
            + "\(two(self.second)) \(sign)\(two(off / 60))\(two(off % 60))"
    }

    public var description: String { self.imapString }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    static func civil(fromDays z0: Int) -> (Int, Int, Int) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }

    /// The value of a Date header (RFC 5322 §3.3 and §4.3): `[day-name ","] day month year hour:minute[:second]
    /// zone`, with comments, two- and three-digit years and the old zone names. nil when it is not a date.
    public static func parseRFC5322(_ text: String) -> IMAPDateTime? {
        // Comments (which may nest) and folding become spaces; "," and ":" separate tokens as well.
        var cleaned: [UInt8] = []
        var depth = 0
        for c in text.utf8.prefix(998) {
            if c == UInt8(ascii: "(") { depth += 1; continue }
            if c == UInt8(ascii: ")") && depth > 0 { depth -= 1; continue }
            if depth > 0 { continue }
            cleaned.append(c == 9 || c == 13 || c == 10 ? 32 : c)
        }
        var tokens = cleaned.split(separator: 32).map { String(decoding: $0, as: UTF8.self) }
        if let first = tokens.first, first.hasSuffix(",") {
            tokens.removeFirst()
        } else if tokens.count > 1, tokens[1] == "," {
            tokens.removeFirst(2)
        } else if let first = tokens.first, first.count >= 3, Int(first) == nil,
            !Self.months.contains(where: {
                first.lowercased().hasPrefix($0.lowercased())
            })
        {
            tokens.removeFirst()
        }
        // "2 Dec 2026 10:00:00 +0100"; also "2-Dec-2026" run together.
        if let first = tokens.first, first.contains("-"), Int(first) == nil {
            let pieces = first.split(separator: "-").map(String.init)
            if pieces.count == 3 { tokens.replaceSubrange(0..<1, with: pieces) }
        }
        guard tokens.count >= 4, let day = Int(tokens[0]), day >= 1, day <= 31,
            let month = Self.months.firstIndex(where: { tokens[1].lowercased().hasPrefix($0.lowercased()) }),
            tokens[2].count <= 4, var year = Int(tokens[2]), year >= 0
        else { return nil }
        if tokens[2].count <= 2 { year += year < 50 ? 2000 : 1900 } else if tokens[2].count == 3 { year += 1900 }
        let time = tokens[3].split(separator: ":", omittingEmptySubsequences: false)
        guard time.count == 2 || time.count == 3, time.allSatisfy({ $0.count == 2 || $0.count == 1 }),
            let hour = Int(time[0]), let minute = Int(time[1])
        else { return nil }
        let second = time.count == 3 ? Int(time[2]) : 0
        guard let second else { return nil }
        let offset = tokens.count > 4 ? Self.zone(tokens[4]) : 0
        guard let offset else { return nil }
        return IMAPDateTime(
            year: year, month: month + 1, day: day, hour: hour, minute: minute, second: second,
            offsetMinutes: offset)
    }

    /// `+hhmm` / `-hhmm`, or an obsolete zone name (RFC 5322 §4.3; the military letters mean "unknown": UTC).
    static func zone(_ token: String) -> Int? {
        let u = Array(token.utf8)
        if u.count == 5, u[0] == UInt8(ascii: "+") || u[0] == UInt8(ascii: "-"),
            u[1...].allSatisfy({ $0 >= 48 && $0 <= 57 })
        {
            let hh = Int(u[1] - 48) * 10 + Int(u[2] - 48)
            let mm = Int(u[3] - 48) * 10 + Int(u[4] - 48)
            guard mm < 60 else { return nil }
            return (u[0] == UInt8(ascii: "-") ? -1 : 1) * (hh * 60 + mm)
        }
        switch token.uppercased() {
        case "UT", "UTC", "GMT", "Z": return 0
        case "EST": return -5 * 60
        case "EDT": return -4 * 60
        case "CST": return -6 * 60
        case "CDT": return -5 * 60
        case "MST": return -7 * 60
        case "MDT": return -6 * 60
        case "PST": return -8 * 60
        case "PDT": return -7 * 60
        default: return token.count == 1 && token.first?.isLetter == true ? 0 : nil
        }
    }
}
