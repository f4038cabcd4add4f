public import Configuration
import Foundation
public import Logging
public import Retrieval
public import ServiceLifecycle
import Synchronization
import SystemSupport
public import UIDLStore
import UnixSignals

#if canImport(Glibc)
    import Glibc
#endif

/// The daemon's poller, a `Service`: polls every enabled account on its own interval, concurrently (at most
/// `max_concurrent_polls`), with jitter, exponential backoff on failure, LOGIN-DELAY honoured; reloads the config
/// on SIGHUP (keeping the old one if the new one is invalid); SIGUSR1 and the control socket wake accounts.
///
/// Shutdown is the service group's: on graceful shutdown (SIGTERM/SIGINT) it starts no new poll and polls in flight
/// finish the message in hand and QUIT; `run()` returns when the last one has. When the group's
/// `maximumGracefulShutdownDuration` (`shutdown_grace`) runs out, the group cancels this task: every poll is a child
/// task of it, and each wait in a poll ends on cancellation (network reads and writes, connects, the TLS handshake,
/// the MDA, SMTP replies, OAuth requests, slot and timer waits), so `run()` returns promptly. What an abandoned poll
/// did not commit is fetched again at the next poll (at most one duplicate, never a loss).
///
/// Two waits are bounded but not cut short: resolving a host name before the first connection attempt (NIO's
/// connector cannot be cancelled then; the attempt is refused the moment it would start, and the account's
/// `timeout` bounds the lookup), and SQLite waiting for a lock another process holds on the state database (its
/// busy time-out, 30 s). Neither keeps the daemon from exiting; at worst it exits that much later.
public final class PollScheduler: Service, Sendable {
    struct State {
        var config: Configuration
        var wakers: [String: Waker] = [:]
        var stopping = false
        /// Why the daemon stopped of its own accord (its state database was removed or replaced): it exits 74.
        var stoppedBecause: String?
        var spawn: AsyncStream<String>.Continuation?
        /// Accounts whose poll is in flight.
        var polling: Set<String> = []
    }

    let state: Mutex<State>
    let loader: ConfigurationLoader
    let store: StateStore
    let stateDirectory: String
    let logger: Logger
    let notifier: SystemdNotifier
    let slots: PollSlots
    /// Told of every poll that ran to an outcome (the metrics); called on the account's task, so it must be quick.
    let observer: (@Sendable (AccountConfiguration, PollReport) -> Void)?
    /// Told of every configuration a SIGHUP put in force (the metrics forget removed accounts).
    let reloaded: (@Sendable (Configuration) -> Void)?
    /// `shutdown_grace` as the service group was built with it: a reload cannot change it.
    public let shutdownGrace: Int

    public init(
        configuration: Configuration, loader: ConfigurationLoader, store: StateStore, stateDirectory: String,
        logger: Logger, notifier: SystemdNotifier = SystemdNotifier(),
        observer: (@Sendable (AccountConfiguration, PollReport) -> Void)? = nil,
        reloaded: (@Sendable (Configuration) -> Void)? = nil
    ) {
        self.state = Mutex(State(config: configuration))
        self.loader = loader
        self.store = store
        self.stateDirectory = stateDirectory
        self.logger = logger
        self.notifier = notifier
        self.observer = observer
        self.reloaded = reloaded
        self.slots = PollSlots(configuration.global.maxConcurrentPolls)
        self.shutdownGrace = configuration.global.shutdownGrace
    }

    var isStopping: Bool { self.state.withLock { $0.stopping } }

    /// Answers a control request (the control socket's handler).
    public func handle(_ request: ControlRequest) -> ControlReply {
        switch request {
        case .wake(let name):
            if self.isStopping { return .shuttingDown }
            if let name,
                self.state.withLock({ s in
                    s.wakers[name] == nil && s.config.accounts.contains { $0.name == name && !$0.enabled }
                })
            {
                return .disabledAccount(name)
            }
            return self.wake(name) ? .ok : .unknownAccount(name ?? "")
        }
    }

    /// Wakes one account (or all with nil). Returns false for a name that is not in the configuration.
    @discardableResult
    public func wake(_ name: String?) -> Bool {
        let (wakers, known): ([Waker], Bool) = self.state.withLock { s in
            guard let name else { return (Array(s.wakers.values), true) }
            if let w = s.wakers[name] { return ([w], true) }
            return ([], s.config.accounts.contains { $0.name == name })
        }
        for w in wakers { w.wake() }
        return known
    }

    public func run() async {
        try? self.store.clearSchedule()
        let (stream, continuation) = AsyncStream.makeStream(of: String.self)
        let initial: [String] = self.state.withLock { s in
            s.spawn = continuation
            return s.config.accounts.filter(\.enabled).map(\.name)
        }
        for name in initial { continuation.yield(name) }
        let count = initial.count
        self.logger.info("daemon started: \(count) account\(count == 1 ? "" : "s") to poll")
        // Trapped before READY=1: systemd may send the reload (SIGHUP) the moment it reads that, and an untrapped
        // SIGHUP or SIGUSR1 ends the process (review: 7 of 10 starts died of a SIGHUP sent on READY=1). Signals
        // that come before the loop below reads them wait in the sequence.
        let signals = await UnixSignalsSequence(trapping: .sighup, .sigusr1)
        self.notifier.notify("READY=1\nSTATUS=polling \(count) account\(count == 1 ? "" : "s")")

        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                // One child task per account loop, plus the signal handler and the watchdog. A discarding group
                // frees each child as it ends; it is awaited as a whole, no polling.
                await withDiscardingTaskGroup { group in
                    group.addTask { await self.handleSignals(signals) }
                    if let interval = self.notifier.watchdogInterval {
                        group.addTask { await self.watchdog(every: interval) }
                    }
                    group.addTask { await self.watchState(every: Self.stateCheckInterval) }
                    // Ends at graceful shutdown (beginShutdown finishes it) or when the task is cancelled.
                    for await name in stream {
                        group.addTask { await self.accountLoop(name) }
                    }
                }
            } onGracefulShutdown: {
                self.beginShutdown()
            }
        } onCancel: {
            self.abandon()
        }
        continuation.finish()
        try? self.store.clearSchedule()
        self.logger.info("daemon stopped")
    }

    /// Graceful shutdown: no new poll; sleeping account loops are woken to end; polls in flight see
    /// `stopRequested` between messages and QUIT.
    private func beginShutdown() {
        let (wakers, spawn): ([Waker], AsyncStream<String>.Continuation?) = self.state.withLock { s in
            s.stopping = true
            defer { s.spawn = nil }
            return (Array(s.wakers.values), s.spawn)
        }
        self.notifier.notify("STOPPING=1\nSTATUS=stopping")
        self.logger.notice("shutting down: no new polls; polls in flight get \(self.shutdownGrace) s to finish")
        spawn?.finish()
        for w in wakers { w.wake() }
    }

    /// The task is cancelled: the service group's grace period ran out (or the group is being torn down).
    private func abandon() {
        let left = self.state.withLock { s in
            s.stopping = true
            return s.polling.sorted()
        }
        if !left.isEmpty {
            self.logger.warning(
                """
                grace period over; abandoning polls in flight: \(left.joined(separator: ", ")) \
                (what they did not commit is fetched again at the next poll)
                """)
        }
    }

    private func handleSignals(_ signals: UnixSignalsSequence) async {
        for await signal in signals.cancelOnGracefulShutdown() {
            if signal == .sighup {
                self.reload()
            } else if signal == .sigusr1 {
                self.logger.info("SIGUSR1: polling every account now")
                self.wake(nil)
            }
        }
    }

    /// systemd's watchdog: pings until graceful shutdown (then STOPPING=1 has been sent).
    private func watchdog(every seconds: Double) async {
        let notifier = self.notifier
        try? await cancelWhenGracefulShutdown {
            while true {
                notifier.notify("WATCHDOG=1")
                try await Task.sleep(for: .seconds(seconds))
            }
        }
    }

    /// How often the daemon checks that its state database is still where it was opened.
    static let stateCheckInterval: Double = 5

    /// Why the daemon stopped of its own accord, if it did: the caller exits with an error (74).
    public var stoppedBecause: String? { self.state.withLock { $0.stoppedBecause } }

    private func watchState(every seconds: Double) async {
        try? await cancelWhenGracefulShutdown {
            while true {
                try await Task.sleep(for: .seconds(seconds))
                if !self.store.isInPlace {
                    self.stateGone()
                    return
                }
            }
        }
    }

    /// The state database was removed or replaced under the daemon: what it records would go to a file nobody reads
    /// (and `status` shows another one). Stop, loudly, so that a new start (systemd's Restart=on-failure) uses the
    /// file now at the path, with its flood protection.
    func stateGone() {
        let first: Bool = self.state.withLock { s in
            guard s.stoppedBecause == nil else { return false }
            s.stoppedBecause =
                "the state database \(self.store.path) was removed or replaced while the daemon ran; it stops (exit "
                + "74) so that a new start uses the file there now"
            return true
        }
        guard first else { return }
        self.logger.error("\(self.stoppedBecause ?? "")")
        // The way SIGTERM stops the daemon (polls in flight finish the message in hand), then the exit status.
        kill(getpid(), SIGTERM)
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
        let (spawn, stale, old): ([String], [Waker], GlobalSettings) = self.state.withLock { s in
            let old = s.config.global
            s.config = newConfig
            let enabled = Set(newConfig.accounts.filter(\.enabled).map(\.name))
            let runningNames = Set(s.wakers.keys)
            let toSpawn = enabled.subtracting(runningNames).sorted()
            for name in toSpawn { s.spawn?.yield(name) }
            let gone = runningNames.subtracting(enabled).compactMap { s.wakers[$0] }
            return (toSpawn, gone, old)
        }
        for w in stale { w.wake() }
        self.reloaded?(newConfig)
        let added = spawn.isEmpty ? "" : "; now polling \(spawn.joined(separator: ", "))"
        self.logger.notice("SIGHUP: configuration reloaded (\(newConfig.accounts.count) accounts\(added))")
        if newConfig.global.shutdownGrace != self.shutdownGrace {
            self.logger.notice(
                """
                SIGHUP: shutdown_grace changed to \(newConfig.global.shutdownGrace) s; it takes effect when the \
                daemon is restarted (\(self.shutdownGrace) s until then)
                """)
        }
        if newConfig.global.metricsListen != old.metricsListen || newConfig.global.metricsFile != old.metricsFile {
            self.logger.notice(
                "SIGHUP: metrics_listen or metrics_file changed; that takes effect when the daemon is restarted")
        }
        if newConfig.global.maxConcurrentPolls != self.slots.count {
            self.logger.notice(
                """
                SIGHUP: max_concurrent_polls changed to \(newConfig.global.maxConcurrentPolls); it takes effect \
                when the daemon is restarted (\(self.slots.count) until then)
                """)
        }
    }
}
