import Foundation

/// Durations and sizes as people write them: in the config, and in messages about it.
public enum Units {
    /// "30s", "5m", "2h", "30d", "1w" or a bare number of seconds.
    public static func parseDuration(_ s: String) -> Int? {
        let t = s.trimmingCharacters(in: .whitespaces).lowercased()
        guard let last = t.last else { return nil }
        let mult: Int
        var digits = t
        switch last {
        case "s": mult = 1
        case "m": mult = 60
        case "h": mult = 3600
        case "d": mult = 86400
        case "w": mult = 7 * 86400
        default: mult = 1
        }
        if !last.isNumber { digits.removeLast() }
        guard let n = Int(digits.trimmingCharacters(in: .whitespaces)), n >= 0 else { return nil }
        return n.multipliedReportingOverflow(by: mult).overflow ? nil : n * mult
    }

    /// "50MB", "512KB", "1GB", "100B" or a bare number of bytes (binary multiples: 1KB = 1024 bytes).
    public static func parseSize(_ s: String) -> Int? {
        let t = s.trimmingCharacters(in: .whitespaces).uppercased()
        let units: [(String, Int)] = [
            ("KIB", 1024), ("MIB", 1 << 20), ("GIB", 1 << 30), ("KB", 1024), ("MB", 1 << 20), ("GB", 1 << 30),
            ("K", 1024), ("M", 1 << 20), ("G", 1 << 30), ("B", 1),
        ]
        for (suffix, mult) in units where t.hasSuffix(suffix) {
            let num = t.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)
            guard let n = Int(num), n >= 0 else { return nil }
            return n.multipliedReportingOverflow(by: mult).overflow ? nil : n * mult
        }
        guard let n = Int(t), n >= 0 else { return nil }
        return n
    }

    public static func formatDuration(_ seconds: Int) -> String {
        if seconds % 86400 == 0 && seconds > 0 { return "\(seconds / 86400)d" }
        if seconds % 3600 == 0 && seconds > 0 { return "\(seconds / 3600)h" }
        if seconds % 60 == 0 && seconds > 0 { return "\(seconds / 60)m" }
        return "\(seconds)s"
    }

    public static func formatSize(_ bytes: Int) -> String {
        if bytes >= 1 << 30 && bytes % (1 << 30) == 0 { return "\(bytes >> 30)GB" }
        if bytes >= 1 << 20 && bytes % (1 << 20) == 0 { return "\(bytes >> 20)MB" }
        if bytes >= 1024 && bytes % 1024 == 0 { return "\(bytes >> 10)KB" }
        return "\(bytes)B"
    }
}
