import Synchronization

/// At most N polls at once across all accounts. A waiter whose task is cancelled stops waiting.
public final class PollSlots: Sendable {
    private struct State {
        var free: Int
        var waiters: [(id: Int, continuation: CheckedContinuation<Bool, Never>)] = []
        var nextID = 0
    }

    private let state: Mutex<State>
    /// How many polls may run at once.
    public let count: Int

    public init(_ count: Int) {
        self.count = max(1, count)
        self.state = Mutex(State(free: self.count))
    }

    /// Waits for a slot: true when one was granted (give it back with ``release()``), false when the task was
    /// cancelled first.
    public func acquire() async -> Bool {
        let id = self.state.withLock { s in
            s.nextID += 1
            return s.nextID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
                let now: Bool? = self.state.withLock { s in
                    // Cancelled before this point: the handler below found no waiter to remove.
                    if Task.isCancelled { return false }
                    if s.free > 0 {
                        s.free -= 1
                        return true
                    }
                    s.waiters.append((id, c))
                    return nil
                }
                if let now { c.resume(returning: now) }
            }
        } onCancel: {
            let c = self.state.withLock { s -> CheckedContinuation<Bool, Never>? in
                guard let i = s.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return s.waiters.remove(at: i).continuation
            }
            c?.resume(returning: false)
        }
    }

    /// Gives a slot back: to the longest waiter, if any.
    public func release() {
        let next = self.state.withLock { s -> CheckedContinuation<Bool, Never>? in
            if s.waiters.isEmpty {
                s.free += 1
                return nil
            }
            return s.waiters.removeFirst().continuation
        }
        next?.resume(returning: true)
    }
}
