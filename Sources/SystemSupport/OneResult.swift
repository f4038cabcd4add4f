import Synchronization

/// One value handed from a thread to the task that awaits it, once, without a hop through an event loop. A
/// cancelled waiter gets `CancellationError` at once; the value, when it comes, is then dropped.
final class OneResult<Value: Sendable>: Sendable {
    private enum State {
        case empty
        case waiting(CheckedContinuation<Value, any Error>)
        case delivered(Value)
        case finished
    }

    private let state = Mutex<State>(.empty)

    /// Hands over the value (a second one, or one after the waiter gave up, is dropped).
    func deliver(_ value: Value) {
        let waiter = self.state.withLock { s -> CheckedContinuation<Value, any Error>? in
            switch s {
            case .empty:
                s = .delivered(value)
                return nil
            case .waiting(let c):
                s = .finished
                return c
            case .delivered, .finished:
                return nil
            }
        }
        waiter?.resume(returning: value)
    }

    /// The value, once it is delivered; `CancellationError` as soon as the task is cancelled.
    func value() async throws -> Value {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Value, any Error>) in
                let ready = self.state.withLock { s -> Result<Value, any Error>? in
                    switch s {
                    case .empty:
                        s = .waiting(c)
                        return nil
                    case .delivered(let v):
                        s = .finished
                        return .success(v)
                    case .waiting, .finished:
                        return .failure(CancellationError())
                    }
                }
                if let ready { c.resume(with: ready) }
            }
        } onCancel: {
            let waiter = self.state.withLock { s -> CheckedContinuation<Value, any Error>? in
                switch s {
                case .empty:
                    s = .finished
                    return nil
                case .waiting(let c):
                    s = .finished
                    return c
                case .delivered, .finished:
                    return nil
                }
            }
            waiter?.resume(throwing: CancellationError())
        }
    }
}
