import Testing

@testable import Daemon

/// Table tests of ``PollSchedule``: interval, backoff, LOGIN-DELAY, jitter.
@Suite("PollSchedule (pure)")
struct PollScheduleTests {
    struct DelayCase: Sendable, CustomStringConvertible {
        var description: String
        var interval: Int
        var failures: Int
        var loginDelay: Int?
        var expected: Int
    }

    static let delays: [DelayCase] = [
        .init(description: "success: the interval", interval: 300, failures: 0, loginDelay: nil, expected: 300),
        .init(description: "1 failure doubles", interval: 300, failures: 1, loginDelay: nil, expected: 600),
        .init(description: "2 failures: ×4", interval: 300, failures: 2, loginDelay: nil, expected: 1200),
        .init(description: "3 failures: ×8 hits the cap", interval: 300, failures: 3, loginDelay: nil, expected: 2400),
        .init(description: "4 failures: capped at 3600", interval: 300, failures: 4, loginDelay: nil, expected: 3600),
        .init(description: "1 s interval, 5 failures: 32", interval: 1, failures: 5, loginDelay: nil, expected: 32),
        .init(description: "many failures stay capped", interval: 1, failures: 1000, loginDelay: nil, expected: 3600),
        .init(
            description: "huge failure count: no overflow", interval: 60, failures: .max, loginDelay: nil,
            expected: 3600),
        .init(
            description: "interval over the cap: failures keep the interval", interval: 7200, failures: 3,
            loginDelay: nil, expected: 7200),
        .init(
            description: "interval near Int.max: no overflow", interval: .max / 2, failures: 2, loginDelay: nil,
            expected: 3600),
        .init(
            description: "LOGIN-DELAY longer than the interval wins", interval: 60, failures: 0, loginDelay: 900,
            expected: 900),
        .init(
            description: "LOGIN-DELAY shorter than the interval: the interval", interval: 600, failures: 0,
            loginDelay: 300, expected: 600),
        .init(
            description: "LOGIN-DELAY longer than the backoff wins", interval: 60, failures: 1, loginDelay: 900,
            expected: 900),
        .init(
            description: "backoff longer than LOGIN-DELAY wins", interval: 600, failures: 2, loginDelay: 900,
            expected: 2400),
    ]

    @Test("delay(interval:consecutiveFailures:loginDelay:)", arguments: delays)
    func delay(_ c: DelayCase) {
        let d = PollSchedule.delay(interval: c.interval, consecutiveFailures: c.failures, loginDelay: c.loginDelay)
        #expect(d == c.expected)
    }

    struct OutcomeCase: Sendable, CustomStringConvertible {
        var description: String
        var outcome: PollOutcome
        var interval: Int
        var failures: Int
        var expected: Int
    }

    static let outcomes: [OutcomeCase] = [
        .init(description: "success", outcome: .succeeded, interval: 120, failures: 0, expected: 120),
        .init(
            description: "success ignores a stale failure count", outcome: .succeeded, interval: 120, failures: 5,
            expected: 120),
        .init(
            description: "success with LOGIN-DELAY announced", outcome: .init(loginDelay: 600), interval: 120,
            failures: 0, expected: 600),
        .init(
            description: "first failure", outcome: .failed(.other("refused")), interval: 120, failures: 1,
            expected: 240),
        .init(
            description: "a failure counts at least once", outcome: .failed(.other("refused")), interval: 120,
            failures: 0, expected: 240),
        .init(
            description: "third authentication failure", outcome: .failed(.authentication("denied")),
            interval: 120, failures: 3, expected: 960),
        .init(
            description: "refused for LOGIN-DELAY, none announced: at least the interval, then backoff",
            outcome: .failed(.loginDelay("too soon")), interval: 600, failures: 1, expected: 1200),
        .init(
            description: "refused for LOGIN-DELAY with a long announced delay",
            outcome: .failed(.loginDelay("too soon"), loginDelay: 3000), interval: 60, failures: 1, expected: 3000),
    ]

    @Test("delay(after:interval:consecutiveFailures:)", arguments: outcomes)
    func delayAfter(_ c: OutcomeCase) {
        let d = PollSchedule.delay(after: c.outcome, interval: c.interval, consecutiveFailures: c.failures)
        #expect(d == c.expected)
    }

    struct JitterCase: Sendable, CustomStringConvertible {
        var description: String
        var delay: Int
        var random: Double
        var expected: Double
    }

    static let jitters: [JitterCase] = [
        .init(description: "no randomness: none", delay: 300, random: 0, expected: 0),
        .init(description: "10 % of the delay at most", delay: 100, random: 0.999_999, expected: 9.999_99),
        .init(description: "half way", delay: 100, random: 0.5, expected: 5),
        .init(description: "capped at 30 s", delay: 3600, random: 1, expected: 30),
        .init(description: "random above 1 is clamped", delay: 100, random: 7, expected: 10),
        .init(description: "random below 0 is clamped", delay: 100, random: -3, expected: 0),
        .init(description: "zero delay: none", delay: 0, random: 1, expected: 0),
        .init(description: "negative delay: none", delay: -5, random: 1, expected: 0),
    ]

    @Test("jitter(for:random:)", arguments: jitters)
    func jitter(_ c: JitterCase) {
        #expect(abs(PollSchedule.jitter(for: c.delay, random: c.random) - c.expected) < 1e-6)
    }
}
