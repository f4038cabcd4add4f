/// At most N polls at once across all accounts.
public actor PollSlots {
    private var free: Int
    private var waiters: [CheckedContinuation<Void, Never>] = []

    public init(_ count: Int) { self.free = max(1, count) }

    public func acquire() async {
        if self.free > 0 {
            self.free -= 1
            return
        }
        await withCheckedContinuation { self.waiters.append($0) }
    }

    public func release() {
        if self.waiters.isEmpty {
            self.free += 1
        } else {
            self.waiters.removeFirst().resume()
        }
    }
}
