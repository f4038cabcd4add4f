import Logging
import Testing

@testable import Daemon

/// Table tests of ``RepeatedFailureRule``: a sequence of poll outcomes in, at each step the level of the poller's
/// own summary line (decided before the poll), the lines the daemon logs and the delay to the next poll.
@Suite("RepeatedFailureRule (pure)")
struct RepeatedFailureRuleTests {
    typealias Line = RepeatedFailureRule.Line

    struct Step: Sendable {
        var outcome: PollOutcome
        /// The level the poller logs a failure summary at, before this poll.
        var summary: Logger.Level
        var lines: [Line]
        var delay: Int
    }

    struct Case: Sendable, CustomStringConvertible {
        var description: String
        var interval = 60
        var steps: [Step]
    }

    static let down = PollOutcome.failed(.other("cannot connect to pop.example:110"))
    static let timeout = PollOutcome.failed(.other("time-out talking to pop.example:110 while RETR 1"))
    static let denied = PollOutcome.failed(.authentication("authentication failed: -ERR [AUTH] invalid"))
    static let tooSoon = PollOutcome.failed(.loginDelay("-ERR [LOGIN-DELAY] wait"))

    static func backingOff(_ s: Int, auth: Bool = false) -> Line {
        let hint = auth ? "; fix the credentials, then `popfetch wake` or SIGHUP" : ""
        return Line(.warning, "backing off: next poll in \(s) s\(hint)")
    }

    static let cases: [Case] = [
        .init(
            description: "healthy: nothing logged, the interval",
            steps: [
                Step(outcome: .succeeded, summary: .error, lines: [], delay: 60),
                Step(outcome: .succeeded, summary: .error, lines: [], delay: 60),
            ]),
        .init(
            description: "first failure: the poller's error, then a warning with the backoff",
            steps: [
                Step(outcome: down, summary: .error, lines: [backingOff(120)], delay: 120)
            ]),
        .init(
            description: "the same failure again: debug only, the backoff grows",
            steps: [
                Step(outcome: down, summary: .error, lines: [backingOff(120)], delay: 120),
                Step(
                    outcome: down, summary: .debug,
                    lines: [Line(.debug, "still failing (2 in a row): cannot connect to pop.example:110")], delay: 240),
                Step(
                    outcome: down, summary: .debug,
                    lines: [Line(.debug, "still failing (3 in a row): cannot connect to pop.example:110")], delay: 480),
            ]),
        .init(
            description: "a different failure while failing: error (the poller's went to debug) and warning",
            steps: [
                Step(outcome: down, summary: .error, lines: [backingOff(120)], delay: 120),
                Step(
                    outcome: timeout, summary: .debug,
                    lines: [
                        Line(.error, "poll failed: time-out talking to pop.example:110 while RETR 1"), backingOff(240),
                    ], delay: 240),
            ]),
        .init(
            description: "recovery: a notice, the interval again, the next failure is a first again",
            steps: [
                Step(outcome: down, summary: .error, lines: [backingOff(120)], delay: 120),
                Step(
                    outcome: down, summary: .debug,
                    lines: [Line(.debug, "still failing (2 in a row): cannot connect to pop.example:110")], delay: 240),
                Step(
                    outcome: .succeeded, summary: .debug, lines: [Line(.notice, "recovered after 2 failed polls")],
                    delay: 60),
                Step(outcome: down, summary: .error, lines: [backingOff(120)], delay: 120),
            ]),
        .init(
            description: "authentication failure: the warning says how to retry; once",
            steps: [
                Step(outcome: denied, summary: .error, lines: [backingOff(120, auth: true)], delay: 120),
                Step(
                    outcome: denied, summary: .debug,
                    lines: [
                        Line(.debug, "still failing (2 in a row): authentication failed: -ERR [AUTH] invalid")
                    ], delay: 240),
            ]),
        .init(
            description: "refused for LOGIN-DELAY: waits a whole interval more", interval: 300,
            steps: [
                Step(outcome: tooSoon, summary: .error, lines: [backingOff(600)], delay: 600)
            ]),
        .init(
            description: "backoff reaches the cap and stays", interval: 1000,
            steps: [
                Step(outcome: down, summary: .error, lines: [backingOff(2000)], delay: 2000),
                Step(
                    outcome: down, summary: .debug,
                    lines: [Line(.debug, "still failing (2 in a row): cannot connect to pop.example:110")], delay: 3600),
                Step(
                    outcome: down, summary: .debug,
                    lines: [Line(.debug, "still failing (3 in a row): cannot connect to pop.example:110")], delay: 3600),
            ]),
        .init(
            description: "a LOGIN-DELAY announced on success sets the pace",
            steps: [
                Step(outcome: .init(loginDelay: 900), summary: .error, lines: [], delay: 900)
            ]),
    ]

    @Test("outcome sequences", arguments: cases)
    func sequence(_ c: Case) {
        var rule = RepeatedFailureRule()
        for (i, step) in c.steps.enumerated() {
            #expect(rule.pollSummaryLevel == step.summary, "step \(i + 1): summary level")
            let verdict = rule.record(step.outcome, interval: c.interval)
            #expect(verdict.lines == step.lines, "step \(i + 1): lines")
            #expect(verdict.delay == step.delay, "step \(i + 1): delay")
        }
    }

    @Test("a success resets the count and the remembered failure")
    func reset() {
        var rule = RepeatedFailureRule()
        _ = rule.record(Self.down, interval: 60)
        _ = rule.record(Self.down, interval: 60)
        #expect(rule.consecutiveFailures == 2)
        #expect(rule.lastFailure == Self.down.failure?.message)
        _ = rule.record(.succeeded, interval: 60)
        #expect(rule.consecutiveFailures == 0)
        #expect(rule.lastFailure == nil)
    }
}
