public import NIOCore
import NIOPosix

/// One poll on one thread: its tasks run on the event loop that also carries its connections.
///
/// Without this, every message crosses threads several times: bytes arrive on an event loop, the task that reads
/// them runs on Swift's cooperative pool, and each write and reply hops back and forth again. On 2 cores the cost
/// of those wake-ups (the scheduler, not popfetch) was the largest item in the profile of a poll that forwards
/// mail over SMTP. Inside ``run(_:)``, the task and its child tasks prefer the chosen loop as their executor
/// (SE-0417), and ``loopForNewWork`` hands the same loop to every connection and wait the poll starts, so an
/// await on a channel resumes on the thread that completed it.
///
/// Blocking work (SQLite, spool writes) then runs on that loop, where before it ran on one of the two cooperative
/// threads: either way it holds up other accounts' work for as long as it blocks. Waits that block for long (a
/// child process, a lock) go to NIO's thread pool as before.
public enum EventLoopAffinity {
    @TaskLocal static var current: (any EventLoop)?

    /// The loop of the running ``run(_:)``, or the next loop of the shared group outside one.
    public static var loopForNewWork: any EventLoop {
        self.current ?? MultiThreadedEventLoopGroup.singleton.next()
    }

    /// Runs `body` (and the child tasks it starts) on one event loop of the shared group.
    public static func run<Result: Sendable>(_ body: () async throws -> Result) async rethrows -> Result {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        return try await self.$current.withValue(loop) {
            try await withTaskExecutorPreference(EventLoopTaskExecutor(loop: loop)) {
                try await body()
            }
        }
    }
}

/// A task executor (SE-0417) that runs jobs on a NIO event loop.
final class EventLoopTaskExecutor: TaskExecutor {
    let loop: any EventLoop

    init(loop: any EventLoop) {
        self.loop = loop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        self.loop.execute {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }
}
