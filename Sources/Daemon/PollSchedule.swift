/// When to poll an account next: pure functions of its interval and recent outcomes.
public enum PollSchedule {
    /// Longest wait after failures (unless the interval itself is longer).
    public static let maximumBackoff = 3600
    /// Doublings stop here (2^20 intervals is far past any cap), so the arithmetic cannot overflow.
    static let maximumDoublings = 20
    /// Jitter is at most this fraction of the delay ...
    public static let jitterFraction = 0.1
    /// ... and at most this many seconds.
    public static let maximumJitter = 30.0

    /// Seconds until the next poll, given how many polls in a row have failed.
    ///
    /// - Success (or partial): the account's interval.
    /// - Failure: the interval doubled per consecutive failure, capped at ``maximumBackoff`` (but never below the
    ///   interval), so a wrong password or a dead server is not hammered.
    /// - A server-announced LOGIN-DELAY is honoured: never poll sooner than it.
    public static func delay(interval: Int, consecutiveFailures: Int, loginDelay: Int?) -> Int {
        var d = interval
        if consecutiveFailures > 0 {
            let shift = min(consecutiveFailures, Self.maximumDoublings)
            let grown = interval.multipliedReportingOverflow(by: 1 << shift)
            d = grown.overflow ? Self.maximumBackoff : min(grown.partialValue, max(Self.maximumBackoff, interval))
        }
        if let loginDelay, loginDelay > d { d = loginDelay }
        return d
    }

    /// Seconds until the next poll after `outcome`; `consecutiveFailures` counts the failures in a row including
    /// this one (0 after a success). A login refused for LOGIN-DELAY waits at least a whole interval even when the
    /// server announced no delay, so the next try does not come too soon again.
    public static func delay(after outcome: PollOutcome, interval: Int, consecutiveFailures: Int) -> Int {
        var loginDelay = outcome.loginDelay
        if case .loginDelay? = outcome.failure { loginDelay = max(loginDelay ?? 0, interval) }
        let failures = outcome.failure == nil ? 0 : max(1, consecutiveFailures)
        return Self.delay(interval: interval, consecutiveFailures: failures, loginDelay: loginDelay)
    }

    /// A small random offset so that many accounts do not hit one server at the same instant: up to
    /// ``jitterFraction`` of the delay, at most ``maximumJitter`` seconds. `random` is in 0..<1 (clamped).
    public static func jitter(for delay: Int, random: Double) -> Double {
        let span = min(Double(max(0, delay)) * Self.jitterFraction, Self.maximumJitter)
        return span * max(0, min(1, random))
    }
}
