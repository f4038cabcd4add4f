import Retrieval

/// What the scheduler needs to know about one finished poll: did it fail, how, and what LOGIN-DELAY the server
/// announced. A plain value, so that ``PollSchedule`` and ``RepeatedFailureRule`` stay pure and table-tested.
public struct PollOutcome: Hashable, Sendable {
    /// Why a poll failed, as far as scheduling and logging care.
    public enum Failure: Hashable, Sendable {
        /// The server refused the credentials: only the user can fix that (the log says how to retry).
        case authentication(String)
        /// The server refused the login as too soon after the last (RFC 2449 `[LOGIN-DELAY]`).
        case loginDelay(String)
        /// Anything else (network, TLS, protocol, a busy mailbox, ...).
        case other(String)

        /// The failure's one-line message, as logged.
        public var message: String {
            switch self {
            case .authentication(let m), .loginDelay(let m), .other(let m): return m
            }
        }
    }

    /// Nil when the poll succeeded (a partial poll, some messages deferred, counts as a success here).
    public var failure: Failure?
    /// Seconds the server asked between logins (CAPA `LOGIN-DELAY`), when it announced it.
    public var loginDelay: Int?

    public init(failure: Failure? = nil, loginDelay: Int? = nil) {
        self.failure = failure
        self.loginDelay = loginDelay
    }

    public static let succeeded = PollOutcome()

    public static func failed(_ failure: Failure, loginDelay: Int? = nil) -> PollOutcome {
        PollOutcome(failure: failure, loginDelay: loginDelay)
    }
}

extension PollOutcome {
    /// The outcome of a poll as the poller reported it.
    init(_ report: PollReport) {
        self.loginDelay = report.loginDelay
        guard let error = report.error else {
            self.failure = nil
            return
        }
        switch error.kind {
        case .auth: self.failure = .authentication(error.message)
        case .loginDelay: self.failure = .loginDelay(error.message)
        default: self.failure = .other(error.message)
        }
    }
}
