import MailTransport
package import Testing

/// Runs each test of a suite on one of NIO's event loops (``EventLoopTaskExecutor``) instead of Swift's global pool.
///
/// The end-to-end tests wait for child processes synchronously (a test function that is not `async` still runs on a
/// pool thread), some for minutes (KillMatrixTests). Two of them at once hold every thread of the pool on two cores;
/// an in-process test sharing the process then cannot resume from an await, while its connection's time-out runs on
/// the event loop, and fails with a time-out it did not cause. On an event loop the test resumes whatever the pool
/// is doing. Give it to every suite whose tests await connections or deadlines in process.
package struct OffThePool: SuiteTrait, TestTrait, TestScoping {
    package var isRecursive: Bool { true }

    package func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        guard testCase != nil else { return try await function() }
        try await withTaskExecutorPreference(EventLoopTaskExecutor.next()) { try await function() }
    }
}

extension Trait where Self == OffThePool {
    /// Each test runs on an event loop, not on Swift's global pool (``OffThePool``).
    package static var offThePool: Self { OffThePool() }
}
