/// Hands a poll's messages, one at a time, to the task that owns a connection for the whole poll (IMAP delivery):
/// the poll waits for each message's answer; the connection's task waits for the next message, or for the end of
/// the session.
actor SessionQueue<Item: Sendable> {
    private var open = false
    private var items: [Item] = []
    private var waiting: CheckedContinuation<Item?, Never>?

    /// Opens the session; false if one is open already.
    func openSession() -> Bool {
        guard !self.open else { return false }
        self.open = true
        return true
    }

    /// Closes it: the connection's task gets nil once the items queued are taken.
    func closeSession() {
        self.open = false
        if let waiting = self.waiting {
            self.waiting = nil
            waiting.resume(returning: nil)
        }
    }

    /// Queues the item `make` builds around the continuation its answer goes to, and waits for that answer; nil at
    /// once when no session is open.
    func submit<Answer: Sendable>(_ make: (CheckedContinuation<Answer, Never>) -> Item) async -> Answer? {
        guard self.open else { return nil }
        return await withCheckedContinuation { reply in
            let item = make(reply)
            if let waiting = self.waiting {
                self.waiting = nil
                waiting.resume(returning: item)
            } else {
                self.items.append(item)
            }
        }
    }

    /// The next item; nil once the session is closed and nothing is left.
    func next() async -> Item? {
        if !self.items.isEmpty { return self.items.removeFirst() }
        guard self.open else { return nil }
        return await withCheckedContinuation { self.waiting = $0 }
    }
}
