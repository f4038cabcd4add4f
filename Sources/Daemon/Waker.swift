import Foundation
import NIOCore
import NIOPosix

/// Sleeps until a deadline unless woken earlier (`popfetch wake`, SIGUSR1, shutdown).
///
/// The deadline is a timer on an event loop, cancelled (and freed) when the sleep ends early: a `Task.sleep` would
/// keep its timer, about 1 KB, until the original deadline (a day for a daily account), so every wake of every
/// account would hold memory for that long.
actor Waker {
    private var continuation: CheckedContinuation<Void, Never>?
    private var timer: Scheduled<Void>?
    private var generation = 0
    private var woken = false

    /// Returns when `seconds` have passed or ``wake()`` was called (a wake that came while not sleeping is kept
    /// for the next sleep).
    func sleep(seconds: Double) async {
        if self.woken {
            self.woken = false
            return
        }
        self.generation += 1
        let gen = self.generation
        // Clamped (to ~31 years) before the conversion: a huge delay would trap converting to Int64.
        let bounded = seconds.isFinite ? min(max(0, seconds), 1_000_000_000) : 0
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            self.continuation = c
            self.timer = loop.scheduleTask(in: .nanoseconds(Int64(bounded * 1_000_000_000))) {
                Task { await self.timerFired(gen) }
            }
        }
        self.timer?.cancel()
        self.timer = nil
    }

    private func timerFired(_ gen: Int) {
        guard gen == self.generation, let c = self.continuation else { return }
        self.continuation = nil
        c.resume()
    }

    func wake() {
        if let c = self.continuation {
            self.continuation = nil
            self.generation += 1
            c.resume()
        } else {
            self.woken = true
        }
    }
}
