public import Logging
public import ServiceLifecycle
import UnixSignals

/// The daemon as one `ServiceGroup`: the metrics services (when configured), the control socket, then the poll
/// scheduler.
///
/// Services start in that order and shut down in reverse: on SIGTERM or SIGINT the scheduler stops first (no new
/// poll; polls in flight finish the message in hand and QUIT) while the control socket still answers
/// `error shutting-down`; then the socket closes. `shutdown_grace` is the group's
/// `maximumGracefulShutdownDuration`: when it runs out, the group cancels its services, which ends every poll still
/// in flight (see ``PollScheduler``), and `run()` returns normally: the daemon exits 0.
public enum DaemonGroup {
    /// Signals that start a graceful shutdown.
    static let gracefulShutdownSignals: [UnixSignal] = [.sigterm, .sigint]

    /// `monitoring` (the metrics endpoint and file writer) start first and stop last, after the scheduler's last
    /// poll; one that fails stops the daemon gracefully, as the control socket does.
    public static func configuration(
        scheduler: PollScheduler, control: ControlSocket, monitoring: [any Service] = [], logger: Logger
    ) -> ServiceGroupConfiguration {
        let first: [ServiceGroupConfiguration.ServiceConfiguration] = monitoring.map {
            .init(
                service: $0, successTerminationBehavior: .cancelGroup,
                failureTerminationBehavior: .gracefullyShutdownGroup)
        }
        var configuration = ServiceGroupConfiguration(
            services: first + [
                // A control socket that fails (it cannot accept any more) stops the daemon gracefully: an exit
                // with an error, which systemd's Restart=on-failure answers.
                .init(
                    service: control, successTerminationBehavior: .cancelGroup,
                    failureTerminationBehavior: .gracefullyShutdownGroup, serviceName: "control-socket"),
                .init(service: scheduler, serviceName: "poll-scheduler"),
            ],
            gracefulShutdownSignals: Self.gracefulShutdownSignals,
            logger: logger)
        configuration.maximumGracefulShutdownDuration = .seconds(scheduler.shutdownGrace)
        // No maximumCancellationDuration: past it lifecycle crashes the process, and two waits in a poll are bounded
        // but not cut short by cancellation (see PollScheduler). A crash there would be worse than a late exit.
        return configuration
    }
}
