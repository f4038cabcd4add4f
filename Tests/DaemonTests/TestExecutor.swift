import NIOCore
import NIOPosix

/// A thread of its own for the jobs of the in-process async tests. The end-to-end tests are synchronous and keep the
/// cooperative pool's threads (two on a 2-core machine) blocked for seconds at a time, which would stall an async
/// test that runs beside them for as long, and break its timing checks (a deadline of 2 s, a cancellation that must
/// end a wait at once). Use it with `withTaskExecutorPreference(TestExecutor.shared)` and
/// `Task(executorPreference: TestExecutor.shared)`; child tasks inherit it.
final class TestExecutor: TaskExecutor {
    static let shared = TestExecutor()

    private let loop: any EventLoop = MultiThreadedEventLoopGroup(numberOfThreads: 1).next()

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = self.asUnownedTaskExecutor()
        self.loop.execute { job.runSynchronously(on: executor) }
    }
}
