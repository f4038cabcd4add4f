public import Configuration
public import Delivery

/// How one fetched message's poll ends: a pure decision from its delivery outcomes and the account's policy.
///
/// Outcome in; the state writes, the counters, the log lines and whether the message may be deleted out. The
/// session carries the decision out in that order: commit the writes, then (only then) queue the DELE.
public struct Settlement: Hashable, Sendable {
    /// What the poll may do with the message on the server.
    public enum Disposition: Hashable, Sendable {
        /// Delete it (DELE after the commit).
        case delete
        /// Leave it on the server.
        case keepOnServer
        /// Permanently rejected with on_permanent_failure = "bounce": send a DSN; delete the original only if the
        /// DSN was accepted.
        case bounce(reason: String, recipients: [String])
    }

    /// One write to the state database.
    public enum Write: Hashable, Sendable {
        /// These recipients accepted the message.
        case delivered(recipients: [String])
        /// A delivery attempt failed; `countsTowardLimit` false for temporary failures; `maxAttempts` 1 marks the
        /// message failed at once.
        case deliveryFailure(error: String, countsTowardLimit: Bool, maxAttempts: Int)
        /// The message may not have arrived whole: counts toward max_attempts as a failed retrieval.
        case retrievalFailure(error: String)
    }

    /// How the poll report counts the message.
    public enum Count: Hashable, Sendable {
        case delivered
        case deferred
        case failed
    }

    public struct LogLine: Hashable, Sendable {
        public enum Level: Hashable, Sendable { case notice, warning, error }
        public var level: Level
        public var text: String
    }

    public var writes: [Write] = []
    public var disposition: Disposition
    public var count: Count
    public var log: [LogLine] = []

    public struct Policy: Hashable, Sendable {
        public var keep: Bool
        public var onPermanentFailure: PermanentFailurePolicy
        public var maxAttempts: Int
        public var accountName: String

        public init(keep: Bool, onPermanentFailure: PermanentFailurePolicy, maxAttempts: Int, accountName: String) {
            self.keep = keep
            self.onPermanentFailure = onPermanentFailure
            self.maxAttempts = maxAttempts
            self.accountName = accountName
        }
    }

    /// - Parameters:
    ///   - outcomes: the delivery's outcomes, recipient group by recipient group.
    ///   - complete: whether the message is known to have arrived whole (the dot line, the size, and the next reply
    ///     well-formed). When false, nothing is committed as delivered and the message is never deleted: it is
    ///     fetched again next poll (a duplicate at worst, never a loss).
    ///   - priorAttempts: failed delivery attempts already recorded.
    public init(outcomes: [RecipientOutcome], complete: Bool, priorAttempts: Int, policy: Policy) {
        guard complete else {
            let why =
                "the server's reply after this message was malformed, so it may have arrived truncated; it stays "
                + "on the server and is fetched again"
            self.writes = [.retrievalFailure(error: why)]
            self.disposition = .keepOnServer
            self.count = .failed
            self.log = [LogLine(level: .error, text: why)]
            return
        }
        var disposition: Disposition? = outcomes.isEmpty ? .keepOnServer : nil
        var count: Count = outcomes.isEmpty ? .failed : .delivered
        var failedCounted = false
        var deferredCounted = false
        let retry = "`popfetch retry --account \(policy.accountName)`"
        for outcome in outcomes {
            switch outcome.result {
            case .delivered:
                self.writes.append(.delivered(recipients: outcome.recipients))
            case .temporaryFailure(let why):
                if !failedCounted && !deferredCounted { count = .deferred }
                deferredCounted = true
                disposition = .keepOnServer
                self.writes.append(
                    .deliveryFailure(error: why, countsTowardLimit: false, maxAttempts: policy.maxAttempts))
                // Deferred by a stop (SIGTERM, the daemon shutting down) is the normal course, not a failure.
                let level: LogLine.Level = why == SMTPDeliverer.stoppedDuringSetup ? .notice : .error
                self.log.append(LogLine(level: level, text: "delivery deferred, message kept on the server: \(why)"))
            case .failure(let why):
                count = .failed
                failedCounted = true
                disposition = .keepOnServer
                self.writes.append(
                    .deliveryFailure(error: why, countsTowardLimit: true, maxAttempts: policy.maxAttempts))
                if priorAttempts + 1 >= policy.maxAttempts {
                    self.log.append(
                        LogLine(
                            level: .error,
                            text: "delivery failed \(policy.maxAttempts) times; message marked failed and kept on the "
                                + "server until \(retry): \(why)"))
                } else {
                    self.log.append(LogLine(level: .error, text: "delivery failed, message kept on the server: \(why)"))
                }
            case .permanentFailure(let why):
                count = .failed
                failedCounted = true
                switch policy.onPermanentFailure {
                case .keep:
                    disposition = .keepOnServer
                    self.writes.append(.deliveryFailure(error: why, countsTowardLimit: true, maxAttempts: 1))
                    self.log.append(
                        LogLine(
                            level: .error,
                            text: "rejected permanently; message marked failed and kept on the server until "
                                + "\(retry): \(why)"))
                case .bounce:
                    if disposition == nil { disposition = .bounce(reason: why, recipients: outcome.recipients) }
                    self.writes.append(
                        .deliveryFailure(error: why, countsTowardLimit: false, maxAttempts: policy.maxAttempts))
                case .delete:
                    if disposition == nil { disposition = .delete }
                    self.writes.append(
                        .deliveryFailure(error: why, countsTowardLimit: false, maxAttempts: policy.maxAttempts))
                    self.log.append(
                        LogLine(
                            level: .error,
                            text: "rejected permanently; deleting it from the server (on_permanent_failure = "
                                + "\"delete\"): \(why)"))
                }
            }
        }
        // Every recipient accepted it: delete it unless the account keeps its mail.
        self.disposition = disposition ?? (policy.keep ? .keepOnServer : .delete)
        self.count = count
    }
}
