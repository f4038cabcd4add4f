/// When to poll an account next: a pure function of its interval and recent outcome.
public struct PollSchedule: Hashable, Sendable {
    /// Longest wait after failures.
    public static let maximumBackoff = 3600

    /// Seconds until the next poll, given how many polls in a row have failed.
    ///
    /// - Success (or partial): the account's interval.
    /// - Failure: the interval doubled per consecutive failure, capped at ``maximumBackoff`` (but never below the
    ///   interval), so a wrong password or a dead server is not hammered.
    /// - A server-announced LOGIN-DELAY is honoured: never poll sooner than it.
    public static func delay(interval: Int, consecutiveFailures: Int, loginDelay: Int?) -> Int {
        var d = interval
        if consecutiveFailures > 0 {
            let shift = min(consecutiveFailures, 20)
            let grown = interval.multipliedReportingOverflow(by: 1 << shift)
            d = grown.overflow ? Self.maximumBackoff : min(grown.partialValue, max(Self.maximumBackoff, interval))
        }
        if let loginDelay, loginDelay > d { d = loginDelay }
        return d
    }

    /// A small random offset so that many accounts do not hit one server at the same instant: up to 10 % of the
    /// delay, at most 30 s.
    public static func jitter(for delay: Int, random: Double) -> Double {
        let span = min(Double(delay) * 0.1, 30)
        return span * max(0, min(1, random))
    }
}
