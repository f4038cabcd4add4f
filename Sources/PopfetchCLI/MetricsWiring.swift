import Configuration
import Logging
import Monitoring
import Retrieval
import ServiceLifecycle
import SystemSupport
import UIDLStore

/// The metrics as the daemon and `poll` set them up from the configuration's `metrics_listen` and `metrics_file`.
struct MetricsWiring {
    let metrics: PollMetrics
    let store: StateStore
    let logger: Logger

    init(scope: PollMetrics.Scope, accounts: [AccountConfiguration], store: StateStore, logger: Logger) {
        self.metrics = PollMetrics(scope: scope, version: PopfetchVersion.current)
        self.store = store
        self.logger = logger
        for account in accounts {
            self.metrics.register(account: account.name, status: self.status(account))
        }
    }

    /// The account's state as the database has it (nil, with a debug line, when it cannot be read: the metrics
    /// then keep their last values).
    func status(_ account: AccountConfiguration) -> AccountStatusRecord? {
        do {
            return try self.store.accountStatus(accountName: account.name, mailbox: account.mailbox)
        } catch {
            self.logger.debug("metrics: cannot read the state of account \(account.name): \(error)")
            return nil
        }
    }

    func record(_ account: AccountConfiguration, _ report: PollReport) {
        self.metrics.record(report, status: self.status(account))
    }

    /// The daemon's services for the configuration: the HTTP endpoint and the file writer, each when configured,
    /// and the observer the scheduler calls after each poll.
    static func daemonServices(
        _ config: Configuration, store: StateStore, logger: Logger
    ) async throws -> (services: [any Service], observer: (@Sendable (AccountConfiguration, PollReport) -> Void)?) {
        let global = config.global
        guard global.metricsListen != nil || global.metricsFile != nil else { return ([], nil) }
        let wiring = MetricsWiring(scope: .daemon, accounts: config.accounts, store: store, logger: logger)
        var services: [any Service] = []
        if let address = global.metricsListen {
            services.append(try await MetricsEndpoint.bind(address: address, metrics: wiring.metrics, logger: logger))
        }
        let writer = global.metricsFile.map {
            MetricsFileWriter(file: MetricsFile(path: $0), metrics: wiring.metrics, logger: logger)
        }
        if let writer { services.append(writer) }
        let observer: @Sendable (AccountConfiguration, PollReport) -> Void = { account, report in
            wiring.record(account, report)
            writer?.changed()
        }
        return (services, observer)
    }

    /// `poll` with `metrics_file`: the file written once, after the round, from the state the polls left.
    static func writeAfterPoll(_ config: Configuration, store: StateStore, logger: Logger) {
        guard let path = config.global.metricsFile else { return }
        let wiring = MetricsWiring(scope: .run, accounts: config.accounts, store: store, logger: logger)
        do {
            try MetricsFile(path: path).write(wiring.metrics.render())
        } catch {
            logger.error("\(error)")
        }
    }
}
