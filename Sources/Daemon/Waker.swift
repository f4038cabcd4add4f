import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// Sleeps until a deadline unless woken earlier (`popfetch wake`, SIGUSR1, shutdown) or cancelled.
///
/// The deadline is a timer on an event loop, cancelled (and freed) when the sleep ends early: a `Task.sleep` would
/// keep its timer, about 1 KB, until the original deadline (a day for a daily account), so every wake of every
/// account would hold memory for that long.
final class Waker: Sendable {
    private struct State {
        var continuation: CheckedContinuation<Void, Never>?
        var timer: Scheduled<Void>?
        var generation = 0
        /// A wake that came while not sleeping: the next sleep returns at once.
        var woken = false
    }

    /// A pthread mutex (NIOLockedValueBox), not `Synchronization.Mutex`: on Linux that one is a futex driven by the
    /// uninstrumented standard library, so ThreadSanitizer cannot see its ordering and reports every access here.
    private let state = NIOLockedValueBox(State())

    /// Returns when `seconds` have passed, ``wake()`` was called, or the task is cancelled (a wake that came while
    /// not sleeping is kept for the next sleep).
    func sleep(seconds: Double) async {
        // Clamped (to ~31 years) before the conversion: a huge delay would trap converting to Int64.
        let bounded = seconds.isFinite ? min(max(0, seconds), 1_000_000_000) : 0
        let loop = ControlPlane.group.next()
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let now: Bool = self.state.withLockedValue { s in
                    // Cancelled before this point: the handler below found no sleeper to wake, so return now.
                    if s.woken || Task.isCancelled {
                        s.woken = false
                        return true
                    }
                    s.generation += 1
                    let gen = s.generation
                    s.continuation = c
                    s.timer = loop.scheduleTask(in: .nanoseconds(Int64(bounded * 1_000_000_000))) {
                        self.timerFired(gen)
                    }
                    return false
                }
                if now { c.resume() }
            }
        } onCancel: {
            self.wake()
        }
    }

    private func timerFired(_ gen: Int) {
        let c: CheckedContinuation<Void, Never>? = self.state.withLockedValue { s in
            guard gen == s.generation else { return nil }
            s.timer = nil
            defer { s.continuation = nil }
            return s.continuation
        }
        c?.resume()
    }

    /// Ends the current sleep now, or the next one at once.
    func wake() {
        let (c, timer): (CheckedContinuation<Void, Never>?, Scheduled<Void>?) = self.state.withLockedValue { s in
            guard let c = s.continuation else {
                s.woken = true
                return (nil, nil)
            }
            s.continuation = nil
            s.generation += 1
            defer { s.timer = nil }
            return (c, s.timer)
        }
        timer?.cancel()
        c?.resume()
    }
}
