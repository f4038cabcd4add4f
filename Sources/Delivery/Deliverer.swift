public import Configuration
import Logging
public import Spool
import SystemSupport

/// How one delivery attempt of one message to one set of recipients ended.
public enum DeliveryResult: Hashable, Sendable {
    /// The receiver accepted the message (MDA exit 0).
    case delivered
    /// A temporary failure: keep the message on the server and try again next poll.
    case temporaryFailure(String)
    /// A failure that counts toward `max_attempts`.
    case failure(String)
    /// A permanent rejection (SMTP/LMTP 5xx): handled per `on_permanent_failure`.
    case permanentFailure(String)
}

/// The result for some of a message's recipients.
public struct RecipientOutcome: Hashable, Sendable {
    public var recipients: [String]
    public var result: DeliveryResult
    public init(recipients: [String], result: DeliveryResult) {
        self.recipients = recipients
        self.result = result
    }
}

/// A local delivery method. Every method takes a complete spooled message.
public protocol Deliverer: Sendable {
    /// Groups of recipients, each delivered with one call of ``deliver(_:to:)``.
    func recipientGroups(_ recipients: [String]) -> [[String]]
    /// Delivers to one group of recipients; the outcomes cover every recipient of the group.
    func deliver(_ message: SpooledMessage, to recipients: [String]) async throws -> [RecipientOutcome]
    /// Runs `body` — one poll's deliveries — with what the deliverer keeps open across messages (SMTP/LMTP: the
    /// connection to the MTA), and releases it when `body` returns or throws.
    func withDeliveries(_ body: () async throws -> Void) async throws
    /// Why nothing more can be delivered in this poll (SMTP/LMTP: the MTA could not be reached, or refused the
    /// session, twice in a row), or nil. The poll then stops fetching: every further message would be fetched only
    /// to be deferred, each after its own connect time-out.
    func unavailability() async -> String?
    /// Whether a delivery holds its thread (writing and fsyncing a Maildir file): it then runs on Swift
    /// Concurrency's pool, not on the poll's event loop, so that the next message is received meanwhile. An MDA
    /// does not: it is started without blocking and waited for by ``ChildWaiter``'s thread.
    var blocksItsThread: Bool { get }
}

extension Deliverer {
    public func withDeliveries(_ body: () async throws -> Void) async throws { try await body() }
    public func unavailability() async -> String? { nil }
    public var blocksItsThread: Bool { false }
}

/// Delivery through a pipe to an MDA command (procmail, maildrop, dovecot-lda, ...): the spool file is its stdin.
///
/// Exit 0 = delivered, if the MDA read the whole message (see ``MDAPartialReadPolicy``); 75 (EX_TEMPFAIL) =
/// temporary; any other exit or a signal = failure. An MDA that runs past its time-out is killed and counts as a
/// failure. The MDA's environment is popfetch's plus `POPFETCH_SENDER`, `POPFETCH_RECIPIENT`, `POPFETCH_ACCOUNT`
/// and `POPFETCH_USER` (see ``environment(sender:recipients:)``).
public struct MDADeliverer: Deliverer {
    public var command: MDACommand
    public var timeout: Int
    public var accountUser: String
    public var accountName: String
    public var partialRead: MDAPartialReadPolicy

    public init(
        command: MDACommand, timeout: Int, accountUser: String, accountName: String = "",
        partialRead: MDAPartialReadPolicy = .fail
    ) {
        self.command = command
        self.timeout = timeout
        self.accountUser = accountUser
        self.accountName = accountName
        self.partialRead = partialRead
    }

    public var blocksItsThread: Bool { false }

    public func recipientGroups(_ recipients: [String]) -> [[String]] {
        // With %T the MDA runs once per recipient (as fetchmail does); otherwise once for all of them.
        self.command.perRecipient ? recipients.map { [$0] } : [recipients]
    }

    public func deliver(_ message: SpooledMessage, to recipients: [String]) async throws -> [RecipientOutcome] {
        [RecipientOutcome(recipients: recipients, result: try await self.run(message, recipients: recipients))]
    }

    /// The variables added to the MDA's environment. Values are as received, minus control characters (they
    /// cannot carry a NUL, and a CR or LF would confuse a log line); quoted in a shell (`"$POPFETCH_SENDER"`) they
    /// are safe whatever they contain.
    public func environment(sender: String, recipients: [String]) -> [String: String] {
        func clean(_ s: String) -> String {
            String(String.UnicodeScalarView(s.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F }))
        }
        return [
            "POPFETCH_SENDER": clean(sender),
            "POPFETCH_RECIPIENT": clean(recipients.joined(separator: ",")),
            "POPFETCH_ACCOUNT": clean(self.accountName),
            "POPFETCH_USER": clean(self.accountUser),
        ]
    }

    func run(_ message: SpooledMessage, recipients: [String]) async throws -> DeliveryResult {
        let argv = self.command.expanded(
            recipient: recipients.first ?? "", sender: message.envelopeSender, user: self.accountUser)
        // The MDA reads the whole spool file from the start (trace header, then the message) through a pipe, so
        // popfetch knows how much of it the MDA read.
        let outcome: ProcessOutcome
        do {
            outcome = try await ProcessRunner.run(
                arguments: argv, input: message.processInput, timeout: self.timeout,
                extraEnvironment: self.environment(sender: message.envelopeSender, recipients: recipients))
        } catch let e as ProcessLaunchError {
            return e.isTemporary ? .temporaryFailure(e.description) : .failure(e.description)
        } catch is CancellationError {
            // The daemon's shutdown grace ran out: the MDA is left to finish on its own, and the message, not
            // committed, is fetched again at the next poll.
            return .temporaryFailure("popfetch stopped waiting for \(argv.first ?? "the MDA") (shutdown grace over)")
        }
        let name = argv.first ?? "mda"
        let tail = outcome.output.isEmpty ? "" : ": " + String(outcome.output.suffix(300))
        if outcome.timedOut {
            return .failure("\(name) ran longer than \(Units.formatDuration(self.timeout)) and was killed")
        }
        switch outcome.termination {
        case .exited(0):
            if let input = outcome.input, !input.readAll, self.partialRead == .fail {
                let part =
                    input.consumed.map { "only \($0) of \(input.length) bytes" }
                    ?? "only part of the \(input.length) bytes"
                return .failure(
                    "\(name) exited 0 but read \(part) of the message, so it may not have delivered it; set "
                        + "mda_partial_read = \"accept\" for a filter that reads only the header\(tail)")
            }
            return .delivered
        case .exited(75):
            return .temporaryFailure("\(name) exited 75 (EX_TEMPFAIL)\(tail)")
        case .exited(let code):
            return .failure("\(name) exited \(code)\(tail)")
        case .signaled(let sig):
            return .failure("\(name) was killed by signal \(sig)\(tail)")
        }
    }
}

#if canImport(Glibc)
    import Glibc
#endif
