public import Foundation
import Prometheus
public import Retrieval
import Synchronization
public import UIDLStore

/// What popfetch tells a monitoring system, in Prometheus' text exposition format (swift-prometheus' registry):
/// per account, the state of its last poll and of its mailbox, read from the state database after every poll, and
/// in the daemon also counters over the process's life (polls by outcome, errors by kind, messages by result,
/// bytes, a poll-duration histogram). Every name begins with `popfetch_`; every series is labelled `account`.
///
/// Two scopes: ``Scope/daemon`` exports everything; ``Scope/run`` (a one-shot `poll` writing `metrics_file`, as
/// cron runs it) leaves out the process counters, which would start again from zero at every run. The series both
/// scopes share come from the database, so they carry on across runs: timestamps, the last outcome, pending and
/// failed messages, and `popfetch_delivered_messages_total` (the state's running total).
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

    private let registry = PrometheusCollectorRegistry()
    private let scope: Scope
    /// The running total of delivered messages already exported per account (the counter only goes up, by the
    /// difference to the state's total).
    private let deliveredTotals = Mutex<[String: Int]>([:])

    public init(scope: Scope, version: String, now: Date = Date()) {
        self.scope = scope
        self.gauge("build_info", "", [("version", version)], "popfetch's version (always 1)").set(to: 1)
        if scope == .daemon {
            self.registry.makeGauge(
                descriptor: Self.name("start_time", "seconds", "When the daemon started (Unix time)")
            ).set(to: now.timeIntervalSince1970)
        }
    }

    /// The account's series, all present from the start (counters at 0), with its state from the database.
    public func register(account: String, status: AccountStatusRecord?) {
        if self.scope == .daemon {
            for outcome in Self.outcomes { _ = self.polls(account, outcome.rawValue) }
            for result in Self.results { _ = self.messages(account, result) }
            _ = self.bytes(account)
            _ = self.duration(account)
        }
        if let status { self.update(account: account, status: status) }
    }

    /// One finished poll: the daemon's counters from its report, the rest from the state it left.
    public func record(_ report: PollReport, status: AccountStatusRecord?) {
        let account = report.account
        if self.scope == .daemon {
            self.polls(account, report.outcome.rawValue).increment()
            if let error = report.error {
                self.registry.makeCounter(
                    descriptor: Self.name("poll_errors", "total", "Failed polls since the daemon started, by kind"),
                    labels: [("account", account), ("kind", error.kind.rawValue)]
                ).increment()
            }
            let counts = [
                ("delivered", report.delivered), ("deferred", report.deferred), ("failed", report.failed),
                ("deleted", report.deleted), ("skipped", report.skipped),
            ]
            for (result, n) in counts where n > 0 { self.messages(account, result).increment(by: Int64(n)) }
            if report.bytes > 0 { self.bytes(account).increment(by: Int64(report.bytes)) }
            self.duration(account).record(.milliseconds(Int64((report.durationSeconds * 1000).rounded())))
        }
        if let status { self.update(account: account, status: status) }
    }

    /// The metrics as Prometheus text (format 0.0.4).
    public func render() -> [UInt8] { self.registry.emitToBuffer() }

    private func update(account: String, status: AccountStatusRecord) {
        let labels = [("account", account)]
        let last = status.lastPoll
        self.gauge(
            "last_poll_timestamp", "seconds", labels, "When the last poll finished (Unix time; 0: never)"
        ).set(to: last?.finished?.timeIntervalSince1970 ?? 0)
        self.gauge(
            "last_success_timestamp", "seconds", labels,
            "When the last poll with outcome ok finished (Unix time; 0: none in the polls kept)"
        ).set(to: status.lastSuccess?.timeIntervalSince1970 ?? 0)
        for outcome in Self.outcomes {
            self.gauge(
                "last_poll_outcome", "", labels + [("outcome", outcome.rawValue)],
                "1 for the outcome of the last poll, 0 for the others"
            ).set(to: last?.outcome == outcome.rawValue ? 1 : 0)
        }
        self.gauge(
            "pending", "messages", labels, "Messages waiting on the server after the last poll (not delivered)"
        ).set(to: Double(last?.pending ?? 0))
        self.gauge(
            "failed", "messages", labels,
            "Messages marked failed (kept on the server, skipped until popfetch retry)"
        ).set(to: Double(status.failedMessages))
        self.gauge(
            "consecutive_failed", "polls", labels, "Polls in a row that ended with outcome error"
        ).set(to: Double(status.consecutiveFailures))
        self.gauge(
            "paused", "", labels, "1 while flood protection holds the account for the user's decision"
        ).set(to: status.pausedReason == nil ? 0 : 1)
        let counter = self.registry.makeCounter(
            descriptor: Self.name(
                "delivered_messages", "total", "Messages delivered since the state database was created"),
            labels: labels)
        let step = self.deliveredTotals.withLock { totals -> Int in
            let step = max(0, status.deliveredTotal - (totals[account] ?? 0))
            totals[account] = max(totals[account] ?? 0, status.deliveredTotal)
            return step
        }
        if step > 0 { counter.increment(by: Int64(step)) }
    }

    /// `popfetch_NAME_UNIT` with its help text.
    private static func name(_ name: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "popfetch", metricName: name, unitName: unit, helpText: help)
    }

    private func gauge(_ name: String, _ unit: String, _ labels: [(String, String)], _ help: String) -> Gauge {
        self.registry.makeGauge(descriptor: Self.name(name, unit, help), labels: labels)
    }

    private func polls(_ account: String, _ outcome: String) -> Counter {
        self.registry.makeCounter(
            descriptor: Self.name("polls", "total", "Polls since the daemon started, by outcome"),
            labels: [("account", account), ("outcome", outcome)])
    }

    private func messages(_ account: String, _ result: String) -> Counter {
        self.registry.makeCounter(
            descriptor: Self.name(
                "messages", "total", "Messages since the daemon started, by what happened to them in a poll"),
            labels: [("account", account), ("result", result)])
    }

    private func bytes(_ account: String) -> Counter {
        self.registry.makeCounter(
            descriptor: Self.name(
                "delivered", "bytes_total", "Bytes of the messages delivered since the daemon started"),
            labels: [("account", account)])
    }

    private func duration(_ account: String) -> DurationHistogram {
        self.registry.makeDurationHistogram(
            descriptor: Self.name("poll_duration", "seconds", "How long polls took"),
            labels: [("account", account)], buckets: Self.durationBuckets)
    }
}
