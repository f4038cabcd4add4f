/// How the loader compares names: mailbox identities as DNS compares hosts, and unknown keys with the nearest known.
extension ConfigurationLoader {
    /// A mailbox identity `user@host` as DNS compares hosts: without case or a final dot, so that one mailbox
    /// written two ways is found to be one (two accounts on one mailbox would each fetch it, with separate records).
    static func comparableMailbox(_ key: String) -> String {
        guard let at = key.lastIndex(of: "@") else { return key }
        var host = key[key.index(after: at)...].lowercased()
        if host.hasSuffix(".") { host.removeLast() }
        return key[...at] + host
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
