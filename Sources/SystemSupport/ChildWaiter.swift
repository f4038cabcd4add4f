import CSystemLinux
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// One long-lived thread that waits for every child ``ProcessRunner`` launches: an epoll set of their pidfds, each
/// readable the moment its process exits (a child added while the thread waits joins the set at once). A thread per
/// child cost a clone, a stack and its teardown per MDA run, on the path between one message's delivery and the next.
/// The thread also kills a child that runs past its time-out (its whole process group) and keeps each child's output
/// file from growing past ``ProcessRunner/outputFileLimit``.
///
/// ``shared`` is nil where the kernel has no `pidfd_open` (Linux < 5.3), or when the thread cannot be made;
/// ``ProcessRunner`` then waits on a thread of its own per child.
final class ChildWaiter: Sendable {
    static let shared: ChildWaiter? = ChildWaiter()

    /// How the child ended (its wait status) and whether it was killed for running too long.
    typealias Completion = @Sendable (_ status: Int32, _ timedOut: Bool) -> Void

    private struct Child {
        let pid: pid_t
        let pidfd: Int32
        let outputFD: Int32
        let deadline: ContinuousClock.Instant
        var timedOut = false
        let completion: Completion
    }

    private struct State {
        /// By pidfd.
        var children: [Int32: Child] = [:]
        /// When the thread will look at the clock next (nil: not before a child exits or it is woken).
        var plannedWake: ContinuousClock.Instant?
        /// When a child was last added or reaped.
        var lastActivity = ContinuousClock.now
    }

    private let epollFD: Int32
    /// A pipe whose read end is in the set: written to when a new child needs the clock sooner than planned.
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let state = Mutex(State())
    /// The thread keeps a one-second tick (time-outs, output size) this long after its last child ended, so that
    /// a run of MDAs one after the other does not wake it for each one.
    private static let idleTick: Duration = .seconds(10)
    /// How often a running child's output size is looked at (and time-outs): a child writing as fast as memory
    /// takes it (about 1 GB/s) gets some 50 MB past the cap at most (review of issue 9: ~1 GB with a 1 s tick).
    private static let tick: Duration = .milliseconds(50)

    private init?() {
        // A kernel before 5.3 has no pidfds.
        let probe = ProcessRunner.pidfdOpen(getpid())
        guard probe >= 0 else { return nil }
        close(probe)
        let ep = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard ep >= 0 else { return nil }
        var fds: [Int32] = [-1, -1]
        guard c_system_pipe_cloexec_nonblock(&fds) == 0 else {
            close(ep)
            return nil
        }
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.fd = fds[0]
        guard epoll_ctl(ep, EPOLL_CTL_ADD, fds[0], &event) == 0 else {
            for fd in [ep, fds[0], fds[1]] { close(fd) }
            return nil
        }
        self.epollFD = ep
        self.wakeRead = fds[0]
        self.wakeWrite = fds[1]
        // The thread holds this object for the life of the process (it is a static).
        if ProcessRunner.startDetachedThread({ [self] in self.run() }) != nil {
            for fd in [ep, fds[0], fds[1]] { close(fd) }
            return nil
        }
    }

    /// Starts watching a launched child. `completion` runs on the waiting thread once the child has been reaped
    /// (it must not block). False if the child cannot be watched (no pidfd): the caller waits for it itself.
    func watch(pid: pid_t, outputFD: Int32, timeout: Int, completion: @escaping Completion) -> Bool {
        let pidfd = ProcessRunner.pidfdOpen(pid)
        guard pidfd >= 0 else { return false }
        let deadline = ContinuousClock.now.advanced(by: .seconds(max(0, timeout)))
        let wake = self.state.withLock { s -> Bool in
            s.lastActivity = .now
            s.children[pidfd] = Child(
                pid: pid, pidfd: pidfd, outputFD: outputFD, deadline: deadline, completion: completion)
            // A child that may need the clock sooner than the thread plans to look (it sleeps until something
            // exits when it has had nothing to watch for a while) wakes it.
            let needed = min(deadline, ContinuousClock.now.advanced(by: Self.tick))
            return s.plannedWake.map { $0 > needed } ?? true
        }
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.fd = pidfd
        guard epoll_ctl(self.epollFD, EPOLL_CTL_ADD, pidfd, &event) == 0 else {
            _ = self.state.withLock { $0.children.removeValue(forKey: pidfd) }
            close(pidfd)  // also takes it out of the epoll set
            return false
        }
        if wake {
            var one: UInt8 = 1
            _ = write(self.wakeWrite, &one, 1)
        }
        return true
    }

    private func run() {
        var events = [epoll_event](repeating: epoll_event(), count: 64)
        var lastSizeCheck = ContinuousClock.now
        while true {
            let now = ContinuousClock.now
            let timeoutMS: Int32 = self.state.withLock { s in
                if s.children.isEmpty && now - s.lastActivity > Self.idleTick {
                    s.plannedWake = nil
                    return -1
                }
                var next = now.advanced(by: Self.tick)
                for child in s.children.values where !child.timedOut { next = min(next, child.deadline) }
                s.plannedWake = next
                let left = (next - now).components
                let ms = Double(left.seconds) * 1000 + Double(left.attoseconds) / 1e15
                return Int32(max(0, min(1000, ms.rounded(.up))))
            }
            let n = events.withUnsafeMutableBufferPointer { epoll_wait(self.epollFD, $0.baseAddress, 64, timeoutMS) }
            for i in 0..<Int(max(0, n)) {
                let fd = events[i].data.fd
                if fd == self.wakeRead {
                    var drain = [UInt8](repeating: 0, count: 64)
                    while read(self.wakeRead, &drain, drain.count) > 0 {}
                } else {
                    self.reap(pidfd: fd)
                }
            }
            let after = ContinuousClock.now
            let checkSizes = after - lastSizeCheck >= Self.tick
            if checkSizes { lastSizeCheck = after }
            self.state.withLock { s in
                for (fd, child) in s.children {
                    if !child.timedOut && after >= child.deadline {
                        s.children[fd]?.timedOut = true
                        ProcessRunner.killGroup(child.pid)
                    }
                    if checkSizes { ProcessRunner.capOutputFile(child.outputFD) }
                }
            }
        }
    }

    /// Reaps the child behind `pidfd` if it has ended, then hands its status on.
    private func reap(pidfd: Int32) {
        guard let child = self.state.withLock({ $0.children[pidfd] }) else { return }
        // Not ended yet: a spurious wake-up; keep watching.
        guard let status = ProcessRunner.reapIfEnded(child.pid) else { return }
        let ended = self.state.withLock { s in
            s.lastActivity = .now
            return s.children.removeValue(forKey: pidfd)
        }
        close(pidfd)  // also takes it out of the epoll set
        guard let ended else { return }
        ended.completion(status, ended.timedOut)
    }
}
