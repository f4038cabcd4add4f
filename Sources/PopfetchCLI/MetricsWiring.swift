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

    /// A reloaded configuration: the series of accounts no longer in it go, new accounts get theirs.
    func reloaded(_ config: Configuration) {
        self.metrics.keep(only: Set(config.accounts.map(\.name)))
        for account in config.accounts { self.metrics.register(account: account.name, status: self.status(account)) }
    }

    /// What the daemon wires for the configuration: the HTTP endpoint and the file writer (each when configured),
    /// the observer the scheduler calls after each poll, and the one it calls after a reload.
    struct DaemonParts {
        var services: [any Service] = []
        var observer: (@Sendable (AccountConfiguration, PollReport) -> Void)?
        var reloaded: (@Sendable (Configuration) -> Void)?
    }

    static func daemonServices(_ config: Configuration, store: StateStore, logger: Logger) async throws -> DaemonParts {
        let global = config.global
        guard global.metricsListen != nil || global.metricsFile != nil else { return DaemonParts() }
        let wiring = MetricsWiring(scope: .daemon, accounts: config.accounts, store: store, logger: logger)
        var services: [any Service] = []
        if let address = global.metricsListen {
            services.append(try await MetricsEndpoint.bind(address: address, metrics: wiring.metrics, logger: logger))
        }
        let writer = global.metricsFile.map {
            MetricsFileWriter(file: MetricsFile(path: $0), metrics: wiring.metrics, logger: logger)
        }
        if let writer { services.append(writer) }
        if let address = global.metricsListen, !address.isLoopback {
            logger.warning(
                "metrics_listen \(address) is not a loopback address: anyone who can reach it reads account names and poll results"
            )
        }
        return DaemonParts(
            services: services,
            observer: { account, report in
                wiring.record(account, report)
                writer?.changed()
            },
            reloaded: { config in
                wiring.reloaded(config)
                writer?.changed()
            })
    }

    /// `poll` with `metrics_file`: the file written once, after the round, from the state the polls left.
    static func writeAfterPoll(
        _ config: Configuration, polled: [AccountConfiguration], reports: [PollReport], store: StateStore,
        logger: Logger
    ) {
        guard let path = config.global.metricsFile else { return }
        let wiring = MetricsWiring(scope: .run, accounts: config.accounts, store: store, logger: logger)
        for report in reports {
            guard let account = polled.first(where: { $0.name == report.account }) else { continue }
            wiring.record(account, report)
        }
        do {
            try MetricsFile(path: path).write(wiring.metrics.render())
        } catch {
            logger.error("\(error)")
        }
    }
}
