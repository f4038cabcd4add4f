import MailTransport
public import NIOCore
public import NIOSSL
public import SMTPCore
public import Spool

/// Delivery into the local MTA over SMTP (RFC 5321) or LMTP (RFC 2033), from the spool.
///
/// The protocol is ``SMTPClientStateMachine``'s and the wire is ``SMTPConnection``'s; what is left here is policy:
/// the envelope (Return-Path, else From, else `<>`; a bare recipient name gets `@localhost` for SMTP), which SASL
/// mechanism AUTH uses and whether credentials may go in clear text (``SMTPAuthPlan``), what each server verdict
/// means for the message (``DeliveryResult``), and sending a message once more on a new connection when the MTA
/// drops it.
///
/// One connection serves a whole poll: ``withDeliveries(_:)`` opens a session whose task owns the connection, and
/// ``deliver(_:to:)`` hands each message to it (a delivery outside a session gets a connection of its own).
public actor SMTPDeliverer: Deliverer {
    public let endpoint: SMTPEndpoint
    public let lmtp: Bool
    let heloName: String
    let tls: SMTPTLSMode
    let tlsContext: NIOSSLContext?
    let credentials: SMTPCredentials?
    /// Credentials may go over a clear connection (a loopback host or a unix socket).
    let clearTextAuthAllowed: Bool
    /// RFC 5321 §4.5.3.2's time-outs, each at most `smtp_timeout` when it is set.
    let timeouts: SMTPConnection.Timeouts
    /// Whether popfetch was asked to stop: a session still being set up (nothing of the message sent) is abandoned.
    let stopRequested: @Sendable () -> Bool
    /// The protocol trace's sink (`--log-level trace`), nil when not tracing.
    let trace: (@Sendable (String) -> Void)?

    /// One message for the session's connection, and whom to tell how it went.
    struct Request: Sendable {
        var message: SpooledMessage
        var recipients: [String]
        var reply: CheckedContinuation<[RecipientOutcome], Never>

        func answer(_ outcomes: [RecipientOutcome]) { self.reply.resume(returning: outcomes) }
        func answer(_ result: DeliveryResult) {
            self.answer([RecipientOutcome(recipients: self.recipients, result: result)])
        }
    }

    /// Set when a session could not be set up twice in a row (connect, TLS, greeting, EHLO): the rest of the
    /// poll's messages are deferred at once, and the poll stops fetching (``unavailability()``).
    private(set) var unreachable: String?
    /// The session's messages, from the poll to the task that owns the connection.
    let queue = SessionQueue<Request>()

    public init(
        endpoint: SMTPEndpoint, lmtp: Bool, heloName: String, connectTimeout: TimeAmount,
        tls: SMTPTLSMode = .none, tlsContext: NIOSSLContext? = nil,
        credentials: (user: String, password: String)? = nil,
        clearTextAuthAllowed: Bool = false, timeoutCap: TimeAmount? = nil,
        stopRequested: @escaping @Sendable () -> Bool = { false }, trace: (@Sendable (String) -> Void)? = nil
    ) {
        self.endpoint = endpoint
        self.lmtp = lmtp
        self.heloName = heloName
        self.tls = tls
        self.tlsContext = tlsContext
        self.credentials = credentials.map { SMTPCredentials(user: $0.user, password: $0.password) }
        self.clearTextAuthAllowed = clearTextAuthAllowed
        self.timeouts = SMTPConnection.Timeouts(connect: connectTimeout, cap: timeoutCap)
        self.stopRequested = stopRequested
        self.trace = trace
    }

    public func unavailability() -> String? { self.unreachable }

    func markUnreachable(_ why: String) { self.unreachable = why }

    public nonisolated func recipientGroups(_ recipients: [String]) -> [[String]] { [recipients] }

    public nonisolated func deliver(_ message: SpooledMessage, to recipients: [String]) async throws
        -> [RecipientOutcome]
    {
        if let outcomes = await self.submit(message, recipients) { return outcomes }
        var outcomes: [RecipientOutcome] = []
        try await self.withDeliveries {
            outcomes = await self.submit(message, recipients) ?? []
        }
        return outcomes
    }

    public nonisolated func withDeliveries(_ body: () async throws -> Void) async throws {
        guard await self.openSession() else { return try await body() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask(executorPreference: EventLoopTaskExecutor.current) { await self.serve() }
            do {
                try await body()
            } catch {
                await self.closeSession()
                throw error
            }
            await self.closeSession()
        }
    }

    // MARK: - The session's queue

    /// Hands a message to the open session and waits for its outcome; nil when no session is open.
    private nonisolated func submit(_ message: SpooledMessage, _ recipients: [String]) async -> [RecipientOutcome]? {
        await self.queue.submit { Request(message: message, recipients: recipients, reply: $0) }
    }

    /// The next message for the session; nil once the session is closed and nothing is left.
    nonisolated func nextRequest() async -> Request? { await self.queue.next() }

    private nonisolated func openSession() async -> Bool { await self.queue.openSession() }

    private nonisolated func closeSession() async { await self.queue.closeSession() }
}

/// `smtp_user` and the resolved `smtp_password`.
struct SMTPCredentials: Sendable {
    var user: String
    var password: String
}
