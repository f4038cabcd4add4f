public import UIDLStore

/// sysexits(3) codes, as `poll` returns them.
public enum ExitStatus: Int32, Hashable, Sendable, CaseIterable {
    case ok = 0
    /// EX_NOHOST: the host name does not resolve.
    case unknownHost = 68
    /// EX_UNAVAILABLE: connection refused or timed out.
    case unavailable = 69
    /// EX_SOFTWARE: an internal error.
    case internalError = 70
    /// EX_IOERR: the state database or the spool failed.
    case ioError = 74
    /// EX_TEMPFAIL: try again later (IN-USE, LOGIN-DELAY, SYS/TEMP, MDA exit 75, another poll running).
    case tempFail = 75
    /// EX_PROTOCOL: the server broke the protocol, or TLS failed.
    case protocolError = 76
    /// EX_NOPERM: authentication failed.
    case authFailed = 77
    /// EX_CONFIG: the configuration is wrong.
    case config = 78

    /// Higher is more serious; `poll` exits with the most serious status of all accounts.
    public var severity: Int {
        switch self {
        case .ok: return 0
        case .tempFail: return 1
        case .unavailable: return 2
        case .unknownHost: return 3
        case .protocolError: return 4
        case .authFailed: return 5
        case .ioError: return 6
        case .internalError: return 7
        case .config: return 8
        }
    }

    public static func mostSerious(_ statuses: [ExitStatus]) -> ExitStatus {
        statuses.max { $0.severity < $1.severity } ?? .ok
    }
}

/// Why a poll of one account failed. The message never contains a secret.
public struct PollError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Kind: String, Hashable, Sendable {
        case config
        case internalError = "internal"
        case io
        case auth
        case protocolError = "protocol"
        case unknownHost = "unknown-host"
        case unavailable
        case mailboxInUse = "in-use"
        case loginDelay = "login-delay"
        case temporary
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var exitCode: ExitStatus {
        switch self.kind {
        case .config: return .config
        case .internalError: return .internalError
        case .io: return .ioError
        case .auth: return .authFailed
        case .protocolError: return .protocolError
        case .unknownHost: return .unknownHost
        case .unavailable: return .unavailable
        case .mailboxInUse, .loginDelay, .temporary: return .tempFail
        }
    }

    public var description: String { self.message }
}

/// What one poll of one account did.
public struct PollReport: Hashable, Sendable {
    public enum Outcome: String, Hashable, Sendable {
        /// Logged in; every message due was delivered (or there was nothing new).
        case ok
        /// Logged in, but some messages were deferred or failed, or a stop left some for the next poll.
        case partial
        /// The poll failed (connection, login, protocol, state).
        case error
        /// The account is disabled or no poll ran.
        case skipped
        /// Flood protection paused the account until the user runs `popfetch mark-seen` or `fetch-all`.
        case paused
    }

    public var account: String
    public var outcome: Outcome = .ok
    /// Messages on the server.
    public var listed = 0
    /// Messages not delivered before this poll (new, or retried).
    public var new = 0
    public var delivered = 0
    /// Bytes of delivered messages (as received).
    public var bytes = 0
    public var deleted = 0
    /// Delivery deferred (temporary failure); kept on the server, retried next poll.
    public var deferred = 0
    /// Delivery failed this poll, or the message was marked failed after max_attempts.
    public var failed = 0
    /// Not fetched: over max_size, beyond fetch_limit, or already marked failed.
    public var skipped = 0
    /// Fetched to be compared and found to be a message delivered before (listed again after a DELE that may not
    /// have taken effect, or under a UIDL listed several times): not delivered again, and neither new nor pending.
    public var alreadyDelivered = 0
    /// Messages still waiting on the server after this poll (not delivered yet, not marked failed).
    public var pending = 0
    /// Why the last message not delivered in this poll was not (a deferral, a failure, a refused RETR): what
    /// `status` shows for a partial poll.
    public var latestFailure: String?
    /// A stop (SIGTERM, SIGINT) ended the poll before every message due was fetched: the rest wait for the next
    /// poll, so the poll is partial (exit 75), not ok.
    public var stopped = false
    /// Seconds the server asked between logins (RFC 2449 LOGIN-DELAY), when it announced it.
    public var loginDelay: Int?
    public var error: PollError?
    /// Why flood protection paused the account (nothing was fetched or deleted).
    public var paused: String?
    /// What the poll would have done (a check or `poll --dry-run`: nothing was done).
    public var preview: PlanPreview?
    public var durationSeconds: Double = 0

    public init(account: String) { self.account = account }

    public var exitStatus: ExitStatus {
        if let error { return error.exitCode }
        // Any message not delivered in this poll (deferred, failed, refused, short) or a pause: EX_TEMPFAIL.
        if self.deferred > 0 || self.failed > 0 || self.paused != nil || self.stopped { return .tempFail }
        return .ok
    }
}

extension PollReport {
    /// What the state store records of this poll.
    public var summary: PollSummary {
        var s = PollSummary(outcome: self.outcome.rawValue)
        s.listed = self.listed
        s.new = self.new
        s.delivered = self.delivered
        s.bytes = self.bytes
        s.deleted = self.deleted
        s.deferred = self.deferred
        s.failed = self.failed
        s.skipped = self.skipped
        s.pending = self.pending
        s.error =
            self.error?.message
            ?? (self.deferred + self.failed > 0
                ? self.latestFailure.map { "\(self.deferred + self.failed) not delivered; the latest: \($0)" } : nil)
        return s
    }
}
