public import Foundation
import Prometheus
public import Retrieval
import Synchronization
public import UIDLStore

/// What popfetch tells a monitoring system, in Prometheus' text exposition format (swift-prometheus' registry):
/// per account, its last poll (time, outcome, messages left on the server), its last successful poll, failed polls
/// in a row, and from the state database the messages marked failed, the flood-protection pause and the running
/// total of delivered messages; in the daemon also counters over the process's life (polls by outcome, errors by
/// kind, messages by result, bytes, a poll-duration histogram). Every name begins with `popfetch_`; every series
/// but two is labelled `account`.
///
/// Two scopes: ``Scope/daemon`` exports everything; ``Scope/run`` (a one-shot `poll` writing `metrics_file`, as
/// cron runs it) leaves out the process counters, which would start again from zero at every run. What a poll
/// reports sets the gauges of its last poll (so a poll that failed before the state recorded it still shows); the
/// state database seeds them at start and supplies the rest, so those carry on across runs.
public final class PollMetrics: Sendable {
    public enum Scope: Sendable { case daemon, run }

    /// Upper bounds of the poll-duration buckets, in seconds.
    static let durationBuckets: [Duration] = [
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5),
        .seconds(10), .seconds(30), .seconds(60), .seconds(120), .seconds(300), .seconds(600),
    ]
    /// Every outcome a poll can have, each exported (0 or 1) as the last poll's outcome.
    static let outcomes: [PollReport.Outcome] = [.ok, .partial, .error, .paused, .skipped]
    /// What happened to messages in a poll, as the `result` label of `popfetch_messages_total`.
    static let results = ["delivered", "deferred", "failed", "deleted", "skipped"]

    /// What the metrics remember of one account between polls.
    private struct Account {
        /// Every series registered for the account, to remove them with it.
        var counters: [Counter] = []
        var gauges: [Gauge] = []
        var histograms: [DurationHistogram] = []
        var deliveredTotal = 0
        var consecutiveFailures = 0
        var lastPoll: Double = 0
        var lastOutcome: String?
        var lastSuccess: Double = 0
        var pending = 0
    }

    private let registry = PrometheusCollectorRegistry()
    private let scope: Scope
    private let accounts = Mutex<[String: Account]>([:])

    public init(scope: Scope, version: String, now: Date = Date()) {
        self.scope = scope
        self.registry.makeGauge(
            descriptor: Self.name("build_info", "", "popfetch's version (always 1)"), labels: [("version", version)]
        ).set(to: 1)
        if scope == .daemon {
            self.registry.makeGauge(
                descriptor: Self.name("start_time", "seconds", "When the daemon started (Unix time)")
            ).set(to: now.timeIntervalSince1970)
        }
    }

    /// The account's series, all present from the start (counters at 0), seeded from the state database. Only a
    /// registered account gets series: a poll that ends after its account was removed adds none.
    public func register(account name: String, status: AccountStatusRecord?) {
        self.accounts.withLock { accounts in
            var a = accounts[name] ?? Account()
            if let status {
                a.lastPoll = status.lastPoll?.finished?.timeIntervalSince1970 ?? 0
                a.lastOutcome = status.lastPoll?.outcome
                a.lastSuccess = status.lastSuccess?.timeIntervalSince1970 ?? 0
                a.pending = status.lastKnownPending ?? 0
                a.consecutiveFailures = status.consecutiveFailures
            }
            if self.scope == .daemon {
                for outcome in Self.outcomes { _ = self.polls(name, outcome.rawValue, &a) }
                for result in Self.results { _ = self.messages(name, result, &a) }
                _ = self.bytes(name, &a)
                _ = self.duration(name, &a)
            }
            self.export(name, &a, status: status)
            accounts[name] = a
        }
    }

    /// One finished poll of a registered account: its report, then the state it left.
    public func record(_ report: PollReport, status: AccountStatusRecord?, now: Date = Date()) {
        let name = report.account
        let scope = self.scope
        self.accounts.withLock { accounts in
            guard var a = accounts[name] else { return }
            if scope == .daemon {
                self.polls(name, report.outcome.rawValue, &a).increment()
                if let error = report.error {
                    self.counter(
                        name, "poll_errors", "total", "Failed polls since the daemon started, by kind", &a,
                        extra: [("kind", error.kind.rawValue)]
                    ).increment()
                }
                let counts = [
                    ("delivered", report.delivered), ("deferred", report.deferred), ("failed", report.failed),
                    ("deleted", report.deleted), ("skipped", report.skipped),
                ]
                for (result, n) in counts where n > 0 { self.messages(name, result, &a).increment(by: Int64(n)) }
                if report.bytes > 0 { self.bytes(name, &a).increment(by: Int64(report.bytes)) }
                self.duration(name, &a).record(.milliseconds(Int64((report.durationSeconds * 1000).rounded())))
            }
            a.lastPoll = now.timeIntervalSince1970
            a.lastOutcome = report.outcome.rawValue
            switch report.outcome {
            case .ok:
                a.lastSuccess = now.timeIntervalSince1970
                a.pending = report.pending
                a.consecutiveFailures = 0
            case .partial:
                a.pending = report.pending
                a.consecutiveFailures = 0
            case .paused:
                // Flood protection stopped before counting what waits: the last known count stands.
                a.consecutiveFailures = 0
            case .error:
                // The daemon counts for itself; a one-shot run reads the state, which has this poll unless it
                // failed before the state recorded it (another process held the account's lock).
                a.consecutiveFailures =
                    scope == .daemon ? a.consecutiveFailures + 1 : max(1, status?.consecutiveFailures ?? 1)
            case .skipped:
                break
            }
            self.export(name, &a, status: status)
            accounts[name] = a
        }
    }

    /// Removes every series of the accounts not in `names` (removed or renamed by a reload).
    public func keep(only names: Set<String>) {
        self.accounts.withLock { accounts in
            for name in accounts.keys where !names.contains(name) {
                guard let a = accounts.removeValue(forKey: name) else { continue }
                for c in a.counters { self.registry.unregisterCounter(c) }
                for g in a.gauges { self.registry.unregisterGauge(g) }
                for h in a.histograms { self.registry.unregisterDurationHistogram(h) }
            }
        }
    }

    /// The metrics as Prometheus text (format 0.0.4).
    public func render() -> [UInt8] { self.registry.emitToBuffer() }

    /// Sets the account's gauges from what the metrics remember and the state database says (under the lock).
    private func export(_ name: String, _ a: inout Account, status: AccountStatusRecord?) {
        self.gauge(name, "last_poll_timestamp", "seconds", "When the last poll finished (Unix time; 0: never)", &a)
            .set(to: a.lastPoll)
        self.gauge(
            name, "last_success_timestamp", "seconds",
            "When the last poll with outcome ok finished (Unix time; 0: none known)", &a
        ).set(to: a.lastSuccess)
        for outcome in Self.outcomes {
            self.gauge(
                name, "last_poll_outcome", "", "1 for the outcome of the last poll, 0 for the others", &a,
                extra: [("outcome", outcome.rawValue)]
            ).set(to: a.lastOutcome == outcome.rawValue ? 1 : 0)
        }
        self.gauge(
            name, "pending", "messages",
            "Messages left on the server, not delivered, after the last poll that logged in", &a
        ).set(to: Double(a.pending))
        self.gauge(name, "consecutive_failed", "polls", "Polls in a row that ended with outcome error", &a)
            .set(to: Double(a.consecutiveFailures))
        guard let status else { return }
        self.gauge(
            name, "failed", "messages", "Messages marked failed (kept on the server, skipped until popfetch retry)",
            &a
        ).set(to: Double(status.failedMessages))
        self.gauge(name, "paused", "", "1 while flood protection holds the account for the user's decision", &a)
            .set(to: status.pausedReason == nil ? 0 : 1)
        let counter = self.counter(
            name, "delivered_messages", "total", "Messages delivered since the state database was created", &a)
        let step = max(0, status.deliveredTotal - a.deliveredTotal)
        a.deliveredTotal = max(a.deliveredTotal, status.deliveredTotal)
        if step > 0 { counter.increment(by: Int64(step)) }
    }

    /// `popfetch_NAME_UNIT` with its help text.
    private static func name(_ name: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "popfetch", metricName: name, unitName: unit, helpText: help)
    }

    // The series of one account, made (or found) in the registry and remembered with the account, to be removed
    // with it. Called with the accounts' lock held (the registry has a lock of its own and never calls back).

    private func gauge(
        _ account: String, _ name: String, _ unit: String, _ help: String, _ a: inout Account,
        extra: [(String, String)] = []
    ) -> Gauge {
        let g = self.registry.makeGauge(
            descriptor: Self.name(name, unit, help), labels: [("account", account)] + extra)
        if !a.gauges.contains(where: { $0 === g }) { a.gauges.append(g) }
        return g
    }

    private func counter(
        _ account: String, _ name: String, _ unit: String, _ help: String, _ a: inout Account,
        extra: [(String, String)] = []
    ) -> Counter {
        let c = self.registry.makeCounter(
            descriptor: Self.name(name, unit, help), labels: [("account", account)] + extra)
        if !a.counters.contains(where: { $0 === c }) { a.counters.append(c) }
        return c
    }

    private func polls(_ account: String, _ outcome: String, _ a: inout Account) -> Counter {
        self.counter(
            account, "polls", "total", "Polls since the daemon started, by outcome", &a, extra: [("outcome", outcome)])
    }

    private func messages(_ account: String, _ result: String, _ a: inout Account) -> Counter {
        self.counter(
            account, "messages", "total", "Messages since the daemon started, by what happened to them in a poll", &a,
            extra: [("result", result)])
    }

    private func bytes(_ account: String, _ a: inout Account) -> Counter {
        self.counter(
            account, "delivered", "bytes_total", "Bytes of the messages delivered since the daemon started", &a)
    }

    private func duration(_ account: String, _ a: inout Account) -> DurationHistogram {
        let h = self.registry.makeDurationHistogram(
            descriptor: Self.name("poll_duration", "seconds", "How long polls took"),
            labels: [("account", account)], buckets: Self.durationBuckets)
        if !a.histograms.contains(where: { $0 === h }) { a.histograms.append(h) }
        return h
    }
}
