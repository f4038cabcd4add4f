public import NIOCore

extension EventLoopFuture where Value: Sendable {
    /// Like `get()`, but a cancelled task stops waiting at once: it gets `CancellationError` while the future goes on
    /// to complete by itself (`get()` would wait for it however long that takes). `onCancel` runs at the
    /// cancellation, for example to close the channel the future belongs to, or to dispose of a late result.
    ///
    /// This is how waits that Swift's cancellation cannot reach by itself (a promise fulfilled by a channel
    /// handler, blocking work on NIO's thread pool) still end when the daemon's shutdown grace runs out.
    public func getUnlessCancelled(onCancel: @escaping @Sendable () -> Void = {}) async throws -> Value {
        let promise = self.eventLoop.makePromise(of: Value.self)
        self.cascade(to: promise)
        return try await withTaskCancellationHandler {
            try await promise.futureResult.get()
        } onCancel: {
            // A promise fulfilled twice keeps its first result: whichever of the two comes first wins.
            promise.fail(CancellationError())
            onCancel()
        }
    }
}
