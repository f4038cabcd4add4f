/// LIST's sizes by message number, looked up several times per listed message each poll (the listings' agreement,
/// the fingerprint, the plan). Numbers 1...n, as RFC 1939 has servers number their messages, are kept in an array
/// indexed by number; any other number (a server's own numbering, or a gap too large) in a dictionary. For a poll
/// that finds nothing new in a 20,000-message mailbox these lookups are a large part of its own work; as array
/// indexes they cost next to nothing.
public struct ListedSizes: Sendable, ExpressibleByDictionaryLiteral {
    /// `dense[n - 1]`: the size of message n, or -1 when it is not listed.
    private var dense: [Int] = []
    private var sparse: [Int: Int] = [:]
    /// How many message numbers have a size.
    public private(set) var count = 0

    /// The largest run of unlisted numbers the array bridges before a number goes to the dictionary.
    static let gapLimit = 1024

    /// Slots the array holds, listed or not: at most twice the numbers listed plus ``gapLimit``, however a server
    /// spreads its numbers (1, 1026, 2051, … once bridged every gap, 8 KB per 14-byte listing line).
    var arraySlots: Int { self.dense.count }

    public init(capacity: Int = 0) {
        self.dense.reserveCapacity(capacity)
    }

    public init(dictionaryLiteral elements: (Int, Int)...) {
        for (number, size) in elements { _ = self.insert(size, for: number) }
    }

    /// Records `size` for message `number`. Returns false, changing nothing, when the number has a size already.
    public mutating func insert(_ size: Int, for number: Int) -> Bool {
        guard self[number] == nil else { return false }
        let slot = number &- 1  // wraps for Int.min, which then goes to the dictionary
        if size >= 0, slot >= 0, slot < self.dense.count {
            self.dense[slot] = size
        } else if size >= 0, slot >= self.dense.count, slot - self.dense.count <= Self.gapLimit,
            slot < 2 * self.count + Self.gapLimit
        {
            // A listing names the next number: the generic gap fill only for a gap.
            if slot > self.dense.count {
                self.dense.append(contentsOf: repeatElement(-1, count: slot - self.dense.count))
            }
            self.dense.append(size)
        } else {
            self.sparse[number] = size
        }
        self.count += 1
        return true
    }

    public subscript(number: Int) -> Int? {
        let slot = number &- 1
        if slot >= 0, slot < self.dense.count {
            let size = self.dense[slot]
            if size >= 0 { return size }
        }
        return self.sparse.isEmpty ? nil : self.sparse[number]
    }
}
