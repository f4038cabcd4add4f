#if canImport(Glibc)
import Glibc
#endif
import Foundation
public import Logging
public import ServiceLifecycle
import Synchronization
import UnixSignals
public import Configuration
import Retrieval
import SystemSupport
public import UIDLStore

/// The daemon: polls every enabled account on its own interval, concurrently (at most `max_concurrent_polls`),
/// with jitter, exponential backoff on failure, LOGIN-DELAY honoured; reloads the config on SIGHUP (keeping the
/// old one if the new one is invalid); SIGUSR1 and the control socket wake accounts; on graceful shutdown it
/// starts no new poll, lets polls in flight finish the message in hand and QUIT within `shutdown_grace`, and
/// abandons them after that (an abandoned delivery is not committed, so it is simply delivered again later).
public final class PollScheduler: Service, Sendable {
    struct State {
        var config: Configuration
        var wakers: [String: Waker] = [:]
        var stopping = false
        var spawn: AsyncStream<String>.Continuation?
    }

    private let state: Mutex<State>
    private let loader: ConfigurationLoader
    private let store: StateStore
    private let stateDirectory: String
    private let logger: Logger
    private let notifier: SystemdNotifier
    private let slots: PollSlots

    public init(
        configuration: Configuration, loader: ConfigurationLoader, store: StateStore, stateDirectory: String,
        logger: Logger, notifier: SystemdNotifier = SystemdNotifier()
    ) {
        self.state = Mutex(State(config: configuration))
        self.loader = loader
        self.store = store
        self.stateDirectory = stateDirectory
        self.logger = logger
        self.notifier = notifier
        self.slots = PollSlots(configuration.global.maxConcurrentPolls)
    }

    var isStopping: Bool { self.state.withLock { $0.stopping } }

    /// Names of the configured accounts (for the control socket).
    public func accountNames() -> [String] { self.state.withLock { $0.config.accounts.map(\.name) } }

    /// Wakes one account (or all with nil). Returns false for an unknown name.
    @discardableResult
    public func wake(_ name: String?) -> Bool {
        let wakers: [Waker] = self.state.withLock { s in
            if let name { return s.wakers[name].map { [$0] } ?? [] }
            return Array(s.wakers.values)
        }
        if let name, wakers.isEmpty {
            return self.state.withLock { $0.config.accounts.contains { $0.name == name } }
        }
        for w in wakers { Task { await w.wake() } }
        return true
    }

    public func run() async throws {
        try? self.store.clearSchedule()
        let (stream, continuation) = AsyncStream.makeStream(of: String.self)
        let initial: [String] = self.state.withLock { s in
            s.spawn = continuation
            return s.config.accounts.filter(\.enabled).map(\.name)
        }
        for name in initial { continuation.yield(name) }
        let count = initial.count
        self.logger.info("daemon started: \(count) account\(count == 1 ? "" : "s") to poll")
        self.notifier.notify("READY=1\nSTATUS=polling \(count) account\(count == 1 ? "" : "s")")

        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.handleSignals() }
                if let interval = self.notifier.watchdogInterval {
                    group.addTask { await self.watchdog(every: interval) }
                }
                for await name in stream {
                    group.addTask { await self.accountLoop(name) }
                }
                // The stream ends at shutdown: the account loops finish their poll in hand; then stop the helpers.
                await self.waitForAccountLoops()
                group.cancelAll()
            }
        } onGracefulShutdown: {
            self.beginShutdown()
        }
        try? self.store.clearSchedule()
        self.logger.info("daemon stopped")
    }

    private let running = Mutex<Set<String>>([])
    /// Polls in flight; when the last one ends the daemon goes idle and hands freed memory back to the system.
    private let inFlight = Mutex<Int>(0)

    /// A poll allocates buffers on whichever threads it runs; glibc keeps what they freed in its arenas, so an idle
    /// daemon would hold the high-water mark of its busiest round for ever. Trimmed when no poll is in flight.
    private func pollStarted() { self.inFlight.withLock { $0 += 1 } }

    private func pollEnded() {
        let idle = self.inFlight.withLock { n -> Bool in
            n -= 1
            return n == 0
        }
        if idle { MemoryTrim.releaseFreedMemory() }
    }

    private func waitForAccountLoops() async {
        while !self.running.withLock({ $0.isEmpty }) {
            try? await Task.sleep(nanoseconds: 20_000_000)
        }
    }

    private func beginShutdown() {
        let (wakers, spawn, grace): ([Waker], AsyncStream<String>.Continuation?, Int) = self.state.withLock { s in
            s.stopping = true
            let sp = s.spawn
            s.spawn = nil
            return (Array(s.wakers.values), sp, s.config.global.shutdownGrace)
        }
        self.notifier.notify("STOPPING=1\nSTATUS=stopping")
        self.logger.notice("shutting down: no new polls; polls in flight get \(grace) s to finish")
        spawn?.finish()
        for w in wakers { Task { await w.wake() } }
        // Past the grace period, polls still in flight are abandoned: nothing they did not commit is lost.
        let t = Thread { [self] in
            Thread.sleep(forTimeInterval: Double(grace))
            let left = self.running.withLock { $0.sorted() }
            if !left.isEmpty {
                self.logger.warning("grace period over; abandoning polls in flight: \(left.joined(separator: ", "))")
                exit(0)
            }
        }
        t.start()
    }

    private func handleSignals() async {
        let signals = await UnixSignalsSequence(trapping: .sighup, .sigusr1)
        for await signal in signals.cancelOnGracefulShutdown() {
            if signal == .sighup {
                self.reload()
            } else if signal == .sigusr1 {
                self.logger.info("SIGUSR1: polling every account now")
                self.wake(nil)
            }
        }
    }

    private func watchdog(every seconds: Double) async {
        while !Task.isCancelled && !self.isStopping {
            self.notifier.notify("WATCHDOG=1")
            try? await Task.sleep(nanoseconds: UInt64(seconds * 1_000_000_000))
        }
    }

    /// SIGHUP: re-read the config. An invalid config is logged and the running one kept.
    func reload() {
        let path = self.state.withLock { $0.config.path }
        let newConfig: Configuration
        do {
            newConfig = try self.loader.load(path: path)
        } catch {
            self.logger.error("SIGHUP: the configuration is invalid, keeping the running one: \(error)")
            return
        }
        let (spawn, stale): ([String], [Waker]) = self.state.withLock { s in
            s.config = newConfig
            let enabled = Set(newConfig.accounts.filter(\.enabled).map(\.name))
            let runningNames = Set(s.wakers.keys)
            let toSpawn = enabled.subtracting(runningNames).sorted()
            for name in toSpawn { s.spawn?.yield(name) }
            let gone = runningNames.subtracting(enabled).compactMap { s.wakers[$0] }
            return (toSpawn, gone)
        }
        for w in stale { Task { await w.wake() } }
        let added = spawn.isEmpty ? "" : "; now polling \(spawn.joined(separator: ", "))"
        self.logger.notice("SIGHUP: configuration reloaded (\(newConfig.accounts.count) accounts\(added))")
    }

    private func currentAccount(_ name: String) -> AccountConfiguration? {
        self.state.withLock { s in s.config.accounts.first { $0.name == name && $0.enabled } }
    }

    private func accountLoop(_ name: String) async {
        let waker = Waker()
        let registered: Bool = self.state.withLock { s in
            guard s.wakers[name] == nil, !s.stopping else { return false }
            s.wakers[name] = waker
            return true
        }
        guard registered else { return }
        self.running.withLock { _ = $0.insert(name) }
        defer {
            self.state.withLock { _ = $0.wakers.removeValue(forKey: name) }
            self.running.withLock { _ = $0.remove(name) }
            try? self.store.setNextPoll(accountName: name, at: nil)
        }
        var failures = 0
        var lastError: String?
        // The first poll comes right away, spread by a little jitter.
        var delay = Double.random(in: 0..<1)
        while !self.isStopping {
            guard self.currentAccount(name) != nil else { return }
            try? self.store.setNextPoll(accountName: name, at: Date().addingTimeInterval(delay))
            await waker.sleep(seconds: delay)
            if self.isStopping { return }
            guard let account = self.currentAccount(name) else {
                self.logger.notice("account \(name) removed or disabled; no longer polled")
                return
            }
            await self.slots.acquire()
            if self.isStopping {
                await self.slots.release()
                return
            }
            let repeated = lastError != nil
            var env = PollEnvironment(
                store: self.store, stateDirectory: self.stateDirectory, logger: self.logger, lockWait: 5,
                stopRequested: { [weak self] in self?.isStopping ?? true })
            // The same poll failure again was logged clearly the first time: its summary goes to debug. Nothing
            // else is muted: every per-message error is still logged at its level.
            env.repeatedFailure = repeated
            self.pollStarted()
            // The poll runs as a child task: its frames live in that task's allocator, which goes with it. In the
            // account's own long-lived task they would stay allocated between polls (tens of KB per account).
            async let polled = AccountPoller(account: account, environment: env).poll()
            let report = await polled
            self.pollEnded()
            await self.slots.release()
            var loginDelay = report.loginDelay
            if let error = report.error {
                failures += 1
                if error.kind == .loginDelay { loginDelay = max(loginDelay ?? 0, account.schedule.interval) }
                let seconds = PollSchedule.delay(
                    interval: account.schedule.interval, consecutiveFailures: failures, loginDelay: loginDelay)
                if lastError != error.message {
                    if repeated { self.logger.error("account=\(name) poll failed: \(error.message)") }
                    let hint = error.kind == .auth ? "; fix the credentials, then `popfetch wake` or SIGHUP" : ""
                    self.logger.warning("account=\(name) backing off: next poll in \(seconds) s\(hint)")
                } else {
                    self.logger.debug("account=\(name) still failing (\(failures) in a row): \(error.message)")
                }
                lastError = error.message
                delay = Double(seconds)
            } else {
                if failures > 0 { self.logger.notice("account=\(name) recovered after \(failures) failed polls") }
                failures = 0
                lastError = nil
                delay = Double(
                    PollSchedule.delay(interval: account.schedule.interval, consecutiveFailures: 0, loginDelay: loginDelay))
            }
            delay += PollSchedule.jitter(for: Int(delay), random: Double.random(in: 0..<1))
        }
    }
}
