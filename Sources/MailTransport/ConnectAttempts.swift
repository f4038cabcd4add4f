import NIOConcurrencyHelpers
import NIOCore

/// The channels of a connect in progress (happy eyeballs may try several addresses), so that a cancelled task can
/// close them. NIO's async `connect` does not end on task cancellation by itself: it would wait for the connect
/// time-out. Closing a channel fails its connect at once; an attempt that starts after the cancellation fails in
/// its channel initializer (see ``register(_:)``).
final class ConnectAttempts: Sendable {
    private struct State {
        var channels: [any Channel] = []
        var cancelled = false
    }

    private let state = NIOLockedValueBox(State())

    /// Runs `body` (a connect whose channel initializer calls ``register(_:)``) so that cancelling the task closes
    /// every channel it registered.
    func whileConnecting<T>(_ body: () async throws -> T) async throws -> T {
        try await withTaskCancellationHandler {
            try await body()
        } onCancel: {
            self.cancel()
        }
    }

    /// Called from a channel initializer. Throws `CancellationError` once the task was cancelled: that attempt fails.
    func register(_ channel: any Channel) throws {
        let cancelled = self.state.withLockedValue { s -> Bool in
            if !s.cancelled { s.channels.append(channel) }
            return s.cancelled
        }
        if cancelled { throw CancellationError() }
    }

    private func cancel() {
        let channels = self.state.withLockedValue { s -> [any Channel] in
            s.cancelled = true
            return s.channels
        }
        for c in channels { c.close(promise: nil) }
    }
}
