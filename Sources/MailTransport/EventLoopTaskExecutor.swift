public import NIOCore
import NIOPosix

/// Runs a task (and its child tasks and default actors) on one NIO event loop, the one its connections use.
///
/// Without it every await on a connection hops from NIO's thread to Swift Concurrency's pool and back, and those
/// wake-ups cost more CPU per message than the mail itself. A poll runs under this executor
/// (`withTaskExecutorPreference`), and the connections it opens take the loop it runs on
/// (``EventLoopTaskExecutor/loopForNewConnection()``). Blocking work (a SQLite commit, a spool write) holds the loop
/// as it held a pool thread before; children are waited for on threads of their own (ProcessRunner).
public final class EventLoopTaskExecutor: TaskExecutor {
    public let eventLoop: any EventLoop

    public init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    /// An executor on the next loop of NIO's shared group (round robin, so concurrent polls spread over cores).
    public static func next() -> EventLoopTaskExecutor {
        EventLoopTaskExecutor(MultiThreadedEventLoopGroup.singleton.next())
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        self.eventLoop.execute {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }

    /// An executor on the loop this code runs on, if it runs on one of NIO's loops. A child task created without an
    /// explicit preference is started on Swift's global pool (seen in profiles: each SMTP delivery's task and each
    /// resumption of it woke a pool thread), so the children of a poll name this one.
    public static var current: EventLoopTaskExecutor? {
        MultiThreadedEventLoopGroup.currentEventLoop.map { EventLoopTaskExecutor($0) }
    }

    /// The loop a new connection should use: the one this code runs on when it runs on one of the shared group's
    /// loops (a poll under ``EventLoopTaskExecutor``), so that its reads resume the task without a thread switch;
    /// else the next one of the group.
    static func loopForNewConnection() -> any EventLoop {
        MultiThreadedEventLoopGroup.currentEventLoop ?? MultiThreadedEventLoopGroup.singleton.next()
    }
}
