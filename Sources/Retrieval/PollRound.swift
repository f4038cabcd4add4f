public import Configuration
public import Logging

/// One round of polls, as `popfetch poll` and `popfetch check` run it: which accounts, and all of them
/// concurrently within the configured limit.
public enum PollRound {
    /// The enabled accounts, or the ones named (a disabled account named explicitly is included).
    public static func select(_ config: Configuration, names: [String], logger: Logger) throws
        -> [AccountConfiguration]
    {
        if names.isEmpty {
            for a in config.accounts where !a.enabled {
                logger.debug("account \(a.name) is disabled (enabled = false); skipped")
            }
            return config.accounts.filter(\.enabled)
        }
        return try names.map { name in
            guard let a = config.accounts.first(where: { $0.name == name }) else {
                throw ConfigurationError(
                    file: config.path, line: nil, key: nil, message: "no account named \(name.debugDescription)")
            }
            return a
        }
    }

    /// Polls the accounts concurrently, at most `limit` at a time (the daemon's ``PollSlots``); the reports come
    /// in the order the polls finish.
    public static func poll(_ accounts: [AccountConfiguration], environment: PollEnvironment, limit: Int) async
        -> [PollReport]
    {
        let slots = PollSlots(limit)
        return await withTaskGroup(of: PollReport.self) { group in
            for account in accounts {
                group.addTask {
                    guard await slots.acquire() else {
                        var report = PollReport(account: account.name)
                        report.outcome = .skipped
                        return report
                    }
                    let poller = AccountPoller(account: account, environment: environment)
                    if environment.stopRequested() {
                        // Stopped (SIGTERM) while this account waited for a slot: it is not started, since its
                        // connect and login alone could take a whole time-out. Its messages wait for the next poll.
                        slots.release()
                        var report = PollReport(account: account.name)
                        report.outcome = .skipped
                        report.error = PollError(.temporary, "stopped before this account was polled")
                        poller.logger.notice("not polled: stopped before its turn; its messages wait for the next poll")
                        return report
                    }
                    let report = await poller.poll()
                    slots.release()
                    return report
                }
            }
            var reports: [PollReport] = []
            for await report in group { reports.append(report) }
            return reports
        }
    }
}
