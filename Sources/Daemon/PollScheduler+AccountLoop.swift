import Configuration
import Foundation
import Logging
import Retrieval
import Synchronization
import SystemSupport
import UIDLStore

extension PollScheduler {
    private func currentAccount(_ name: String) -> AccountConfiguration? {
        self.state.withLock { s in s.config.accounts.first { $0.name == name && $0.enabled } }
    }

    /// Whether the loop should end: graceful shutdown began, or the task was cancelled.
    private var mustEnd: Bool { self.isStopping || Task.isCancelled }

    /// One account's life in the daemon: sleep (woken early by `wake`, SIGUSR1, reload or shutdown), take a slot,
    /// poll, then ask ``RepeatedFailureRule`` what to log and when to poll next.
    func accountLoop(_ name: String) async {
        let waker = Waker()
        let registered: Bool = self.state.withLock { s in
            guard s.wakers[name] == nil, !s.stopping else { return false }
            s.wakers[name] = waker
            return true
        }
        guard registered else { return }
        defer {
            self.state.withLock { _ = $0.wakers.removeValue(forKey: name) }
            try? self.store.setNextPoll(accountName: name, at: nil)
        }
        var rule = RepeatedFailureRule()
        // The first poll comes right away, spread by a little jitter.
        var delay = Double.random(in: 0..<1)
        while !self.mustEnd {
            guard self.currentAccount(name) != nil else { return self.removed(name) }
            try? self.store.setNextPoll(accountName: name, at: Date().addingTimeInterval(delay))
            await waker.sleep(seconds: delay)
            if self.mustEnd { return }
            guard self.currentAccount(name) != nil else { return self.removed(name) }
            guard await self.slots.acquire() else { return }
            // Read again once a slot is free: a reload while the account waited for one (all slots busy) may have
            // removed or changed it, and the poll must use the configuration in force now.
            guard !self.mustEnd, let account = self.currentAccount(name) else {
                self.slots.release()
                if !self.mustEnd { self.removed(name) }
                return
            }
            guard self.store.isInPlace else {
                self.slots.release()
                self.stateGone()
                return
            }
            let report = await self.poll(account, repeatedFailure: rule.pollSummaryLevel != .error)
            self.slots.release()
            // Abandoned at the end of the grace period, or stopped at shutdown before it did anything: its outcome
            // says nothing about the account.
            if Task.isCancelled || (self.mustEnd && report.outcome == .skipped) { return }
            self.observer?(account, report)
            let verdict = rule.record(PollOutcome(report), interval: account.schedule.interval)
            for line in verdict.lines { self.logger.log(level: line.level, "account=\(name) \(line.text)") }
            delay = Double(verdict.delay) + PollSchedule.jitter(for: verdict.delay, random: Double.random(in: 0..<1))
        }
    }

    /// One poll, as a child task: its frames live in that task's allocator, which goes with it (in the account's
    /// long-lived task they would stay allocated between polls, tens of KB per account). Cancelling the account's
    /// task cancels it.
    private func poll(_ account: AccountConfiguration, repeatedFailure: Bool) async -> PollReport {
        var env = PollEnvironment(
            store: self.store, stateDirectory: self.stateDirectory, logger: self.logger, lockWait: 5,
            stopRequested: { [weak self] in self?.isStopping ?? true })
        env.repeatedFailure = repeatedFailure
        self.pollStarted(account.name)
        defer { self.pollEnded(account.name) }
        async let polled = AccountPoller(account: account, environment: env).poll()
        return await polled
    }

    private func removed(_ name: String) {
        self.logger.notice("account \(name) removed or disabled; no longer polled")
    }

    private func pollStarted(_ name: String) { self.state.withLock { _ = $0.polling.insert(name) } }

    /// A poll allocates buffers on whichever threads it runs; glibc keeps what they freed in its arenas, so an idle
    /// daemon would hold the high-water mark of its busiest round for ever. Trimmed when no poll is in flight.
    private func pollEnded(_ name: String) {
        let idle = self.state.withLock { s -> Bool in
            s.polling.remove(name)
            return s.polling.isEmpty
        }
        if idle { MemoryTrim.releaseFreedMemory() }
    }
}
