public import Logging

/// What the daemon logs about an account's polls, and when it polls next: the rule that keeps a failure that
/// repeats from being logged at every poll.
///
/// | poll outcome                                | lines                                      |
/// |---------------------------------------------|--------------------------------------------|
/// | first failure                               | warning "backing off: next poll in N s"    |
/// | a different failure after a failure         | error "poll failed: …", then that warning  |
/// | the same failure again                      | debug "still failing (n in a row): …"      |
/// | success after failures                      | notice "recovered after n failed polls"    |
/// | success after success                       | nothing                                    |
///
/// The poll's own summary line ("poll failed: …", with its counts) is logged by the poller, at
/// ``pollSummaryLevel``: error while the account was healthy, debug once it is failing (a new failure is then
/// logged at error by this rule instead). An authentication failure's warning says how to retry at once.
/// Per-message errors are never muted: they are not poll outcomes.
public struct RepeatedFailureRule: Hashable, Sendable {
    /// One line to log.
    public struct Line: Hashable, Sendable, CustomStringConvertible {
        public var level: Logger.Level
        public var text: String
        public init(_ level: Logger.Level, _ text: String) {
            self.level = level
            self.text = text
        }
        public var description: String { "\(self.level): \(self.text)" }
    }

    /// What follows a poll: the seconds until the next one (before jitter) and what to log now.
    public struct Verdict: Hashable, Sendable {
        public var delay: Int
        public var lines: [Line]
        public init(delay: Int, lines: [Line]) {
            self.delay = delay
            self.lines = lines
        }
    }

    /// Polls in a row that failed, up to the last recorded.
    public private(set) var consecutiveFailures = 0
    /// The message of the last failure while the account is failing; nil while it is healthy.
    public private(set) var lastFailure: String?

    public init() {}

    /// The level at which the poller logs a failed poll's summary (`PollEnvironment.repeatedFailure`).
    public var pollSummaryLevel: Logger.Level { self.lastFailure == nil ? .error : .debug }

    /// Records a finished poll of an account polled every `interval` seconds.
    public mutating func record(_ outcome: PollOutcome, interval: Int) -> Verdict {
        guard let failure = outcome.failure else {
            let lines =
                self.consecutiveFailures > 0
                ? [Line(.notice, "recovered after \(self.consecutiveFailures) failed polls")] : []
            self.consecutiveFailures = 0
            self.lastFailure = nil
            return Verdict(
                delay: PollSchedule.delay(after: outcome, interval: interval, consecutiveFailures: 0), lines: lines)
        }
        self.consecutiveFailures += 1
        let delay = PollSchedule.delay(
            after: outcome, interval: interval, consecutiveFailures: self.consecutiveFailures)
        var lines: [Line] = []
        if failure.message == self.lastFailure {
            lines.append(Line(.debug, "still failing (\(self.consecutiveFailures) in a row): \(failure.message)"))
        } else {
            // The poller logged this poll's summary at debug, expecting the previous failure again.
            if self.lastFailure != nil { lines.append(Line(.error, "poll failed: \(failure.message)")) }
            var hint = ""
            if case .authentication = failure { hint = "; fix the credentials, then `popfetch wake` or SIGHUP" }
            lines.append(Line(.warning, "backing off: next poll in \(delay) s\(hint)"))
        }
        self.lastFailure = failure.message
        return Verdict(delay: delay, lines: lines)
    }
}
