public import Configuration
import IMAPCore
public import Logging
public import MailTransport
import NIOCore
public import NIOSSL
import SASL
public import Spool
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A message popfetch appended, or was about to append, whose delivery the state has not recorded yet: its UIDL key
/// and its delivery ID (``SpooledMessage/deliveryID``).
public struct IMAPPendingAppend: Hashable, Sendable {
    public var key: String
    public var id: String

    public init(key: String, id: String) {
        self.key = key
        self.id = id
    }
}

/// Where IMAP delivery records each APPEND before it is sent (the poll implements it over the state store, which
/// drops a message's entries in the same transaction that records its delivery).
public protocol IMAPAppendJournal: Sendable {
    /// The account's appends not recorded as delivered (each may be in the folder), with the time of the last one
    /// that timed out after the whole message was sent (nil: none did).
    func pending() throws -> [IMAPPendingAppend: Double?]
    /// Recorded (committed) before the APPEND is sent.
    func willAppend(_ entry: IMAPPendingAppend) throws
    /// The APPEND timed out after the whole message was sent: the server may store it later.
    func timedOut(_ entry: IMAPPendingAppend) throws
    /// The server refused the APPEND: the message is not in the folder.
    func refused(_ entry: IMAPPendingAppend) throws
}

/// Delivery into a folder of an IMAP server by APPEND (RFC 3501 §6.3.11): Gmail, Fastmail, any IMAP mailbox.
///
/// One connection serves a whole poll (``withDeliveries(_:)``). Each message goes as one literal, streamed from the
/// spool with CRLF line ends, headed by `X-Popfetch-ID: <id>` (see ``SpooledMessage/deliveryID``), with its Date
/// header as the internal date (the time it was fetched when it has none) and the configured flags (none: unread).
///
/// Exactly once: before each APPEND the journal records the message as pending (committed); the state drops the entry
/// in the transaction that records the delivery, and the deliverer when the server refuses the APPEND. A message
/// found pending (popfetch was killed between the server's OK and the record, a connection was lost or timed out
/// after the whole message was sent, a poll failed) is looked up in the folder by its `X-Popfetch-ID`
/// (`UID SEARCH HEADER`) before it is appended again: found, it counts as delivered. A message whose connection
/// failed after it was sent is not sent again in the same poll (the server may still be storing it): it is deferred,
/// and looked up at the next poll. One that failed while it was being sent is sent again at once.
///
/// Outcomes, as SMTP's: `NO [OVERQUOTA]`, `[UNAVAILABLE]`, `[INUSE]`, `[SERVERBUG]`, a missing folder, the connection
/// or login failing: temporary (the message stays on the server); `[LIMIT]`, a message above `APPENDLIMIT`, NUL bytes:
/// permanent (`on_permanent_failure`); any other NO or BAD: a failure that counts toward `max_attempts`.
public final class IMAPDeliverer: Deliverer {
    /// The header popfetch puts on each appended message.
    public static let idHeader = "X-Popfetch-ID"

    public struct Login: Sendable {
        public var user: String
        public var secret: String
        public var method: IMAPAuthMethod
        /// Called when the server refuses the login (an OAuth2 access token is then forgotten).
        public var onRefused: (@Sendable () -> Void)?

        public init(
            user: String, secret: String, method: IMAPAuthMethod, onRefused: (@Sendable () -> Void)? = nil
        ) {
            self.user = user
            self.secret = secret
            self.method = method
            self.onRefused = onRefused
        }
    }

    let destination: IMAPDestination
    let security: IMAPConnection.Security
    let tlsContext: NIOSSLContext?
    let login: Login
    let clearTextAllowed: Bool
    let flags: [String]
    let createFolder: Bool
    let timeouts: IMAPConnection.Timeouts
    let journal: (any IMAPAppendJournal)?
    let stopRequested: @Sendable () -> Bool
    let trace: (@Sendable (String) -> Void)?
    let logger: Logger

    struct Request: Sendable {
        var message: SpooledMessage
        var recipients: [String]
        var reply: CheckedContinuation<[RecipientOutcome], Never>

        func answer(_ result: DeliveryResult) {
            self.reply.resume(returning: [RecipientOutcome(recipients: self.recipients, result: result)])
        }
    }

    let queue = SessionQueue<Request>()
    let session = Mutex(SessionState())

    /// What one poll's session learned on the way.
    struct SessionState: Sendable {
        /// Why nothing more can be delivered in this poll.
        var unreachable: String?
        /// The journal's pending appends, read at the first delivery and kept current.
        var pending: [IMAPPendingAppend: Double?]?
        /// The message in hand's entry, for a failure that ends its APPEND.
        var entry: IMAPPendingAppend?
        /// Where the APPEND in hand stands: a connection that fails once its literal was sent may have delivered it.
        var append = AppendPhase.none
    }

    enum AppendPhase: Sendable {
        case none
        case sending
        case sent
    }

    public init(
        destination: IMAPDestination, security: IMAPConnection.Security, tlsContext: NIOSSLContext?, login: Login,
        clearTextAllowed: Bool, flags: [String], createFolder: Bool, timeouts: IMAPConnection.Timeouts,
        journal: (any IMAPAppendJournal)?, stopRequested: @escaping @Sendable () -> Bool = { false },
        trace: (@Sendable (String) -> Void)? = nil, logger: Logger = Logger(label: "popfetch.imap")
    ) {
        self.destination = destination
        self.security = security
        self.tlsContext = tlsContext
        self.login = login
        self.clearTextAllowed = clearTextAllowed
        self.flags = flags
        self.createFolder = createFolder
        self.timeouts = timeouts
        self.journal = journal
        self.stopRequested = stopRequested
        self.trace = trace
        self.logger = logger
    }

    public func recipientGroups(_ recipients: [String]) -> [[String]] { [recipients] }

    public func unavailability() async -> String? { self.session.withLock { $0.unreachable } }

    public func deliver(_ message: SpooledMessage, to recipients: [String]) async throws -> [RecipientOutcome] {
        if let outcomes = await self.submit(message, recipients) { return outcomes }
        var outcomes: [RecipientOutcome] = []
        try await self.withDeliveries {
            outcomes = await self.submit(message, recipients) ?? []
        }
        return outcomes
    }

    private func submit(_ message: SpooledMessage, _ recipients: [String]) async -> [RecipientOutcome]? {
        await self.queue.submit { Request(message: message, recipients: recipients, reply: $0) }
    }

    public func withDeliveries(_ body: () async throws -> Void) async throws {
        guard await self.queue.openSession() else { return try await body() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask(executorPreference: EventLoopTaskExecutor.current) { await self.serve() }
            do {
                try await body()
            } catch {
                await self.queue.closeSession()
                throw error
            }
            await self.queue.closeSession()
            try await group.waitForAll()
        }
    }

    /// `popfetch check`: connects, logs in and looks at the folder, appending nothing. Returns what it found; a
    /// refused login throws.
    public func probe() async throws -> String {
        try await IMAPConnection.withConnection(
            host: self.destination.host, port: self.destination.port, security: self.security,
            tlsContext: self.tlsContext, timeouts: self.timeouts, trace: self.trace
        ) { conn in
            try await self.logIn(conn)
            let examined = try await conn.execute(.examine(mailbox: self.destination.folder))
            var missing = false
            if !examined.isOK { missing = try await Self.folderMissing(examined, self.destination.folder, on: conn) }
            await conn.logout()
            let tls = conn.isEncrypted ? "TLS" : "no TLS"
            if examined.isOK {
                return
                    "\(self.destination): logged in as \(self.login.user) (\(tls)); folder \(self.destination.folder) is there"
            }
            if missing {
                let then =
                    self.createFolder
                    ? "imap_create_folder creates it at the first delivery" : "set imap_create_folder or create it"
                return
                    "\(self.destination): logged in as \(self.login.user) (\(tls)); folder \(self.destination.folder) does not exist (\(then))"
            }
            throw IMAPCommandError(command: "EXAMINE", status: examined.status)
        }
    }

    // MARK: - The session task

    func serve() async {
        var carried: Request?
        var resent = false
        var setupFailures = 0
        while true {
            var current: Request?
            if let request = carried {
                current = request
            } else {
                current = await self.queue.next()
            }
            carried = nil
            guard let first = current else { return }
            if let why = self.session.withLock({ $0.unreachable }) {
                first.answer(.temporaryFailure(why))
                continue
            }
            var ready = false
            let setup = SessionSetup()
            do {
                try await SessionSetup.abandoningOnStop(setup, stopRequested: self.stopRequested) {
                    try await IMAPConnection.withConnection(
                        host: self.destination.host, port: self.destination.port, security: self.security,
                        tlsContext: self.tlsContext, timeouts: self.timeouts, setup: setup, trace: self.trace
                    ) { conn in
                        ready = true
                        try await self.logIn(conn)
                        guard setup.markReady() else { throw CancellationError() }
                        setupFailures = 0
                        var folder = FolderState()
                        while let request = current {
                            let result = try await self.deliverOne(request.message, on: conn, folder: &folder)
                            request.answer(result)
                            current = nil
                            resent = false
                            guard let next = await self.queue.next() else {
                                await conn.logout()
                                return
                            }
                            current = next
                            // The server closed an idle connection (BYE): the next message gets a new one.
                            guard conn.isActive else { return }
                        }
                    }
                }
                carried = current
            } catch {
                guard let request = current else { continue }
                let (phase, entry) = self.session.withLock { s -> (AppendPhase, IMAPPendingAppend?) in
                    defer { s.append = .none }
                    return (s.append, s.entry)
                }
                if setup.wasAbandoned {
                    self.markUnreachable(Self.stoppedDuringSetup)
                    request.answer(.temporaryFailure(Self.stoppedDuringSetup))
                    continue
                }
                if let refused = error as? LoginRefused {
                    self.markUnreachable(refused.description)
                    request.answer(.temporaryFailure(refused.description))
                    continue
                }
                if !ready { setupFailures += 1 }
                if setupFailures >= 2 { self.markUnreachable("\(error)") }
                if phase == .sent {
                    // The whole message went out: the server may have stored it, or may still be storing it. It is
                    // not sent again now; the next poll finds it pending and looks it up first.
                    if let e = error as? IMAPTransportError, e.kind == .timeout {
                        self.markUnreachable("\(error)")
                        // It may land later still: the next polls give it time before they send it again.
                        if let entry, let journal = self.journal {
                            try? journal.timedOut(entry)
                            self.session.withLock { _ = $0.pending?.updateValue(Self.now(), forKey: entry) }
                        }
                    }
                    resent = false
                    request.answer(
                        .temporaryFailure(
                            "\(error) (after the whole message was sent: it is looked up in the folder before it is "
                                + "sent again)"))
                } else if !resent && Self.isWorthResending(error) {
                    // Nothing of it can have been stored: once more on a new connection.
                    resent = true
                    carried = request
                } else {
                    if resent, let e = error as? IMAPTransportError, e.kind == .timeout {
                        // The server timed out on this message twice in a row: the rest would wait as long.
                        self.markUnreachable("\(error) (twice in a row)")
                    }
                    resent = false
                    request.answer(.temporaryFailure("\(error)"))
                }
            }
        }
    }

    /// Why a message is deferred when popfetch is stopped while the IMAP session is set up.
    public static let stoppedDuringSetup = "popfetch was asked to stop while the IMAP session was being set up"

    func markUnreachable(_ why: String) { self.session.withLock { $0.unreachable = $0.unreachable ?? why } }

    static func isWorthResending(_ error: any Error) -> Bool {
        if let e = error as? IMAPTransportError { return e.kind == .connectionClosed || e.kind == .timeout }
        if let e = error as? IMAPCommandError { return e.status.condition == .bye }
        return error is IMAPProtocolError
    }

    /// The journal's pending appends (read once per poll).
    func pendingAppends() throws -> [IMAPPendingAppend: Double?] {
        if let known = self.session.withLock({ $0.pending }) { return known }
        let read = try self.journal?.pending() ?? [:]
        self.session.withLock { $0.pending = read }
        if !read.isEmpty {
            let text =
                "\(read.count) message(s) appended to IMAP before without a record: each is looked up in "
                + "\(self.destination) before it is appended"
            self.logger.notice("\(text)")
        }
        return read
    }

    static func now() -> Double { Double(time(nil)) }

    /// How long after an APPEND timed out (the whole message sent) it is not sent again, unless found: twice the
    /// wait for an answer, so a slow server that stores it late is not sent a second copy.
    var lateGrace: Double { 2 * Double(self.timeouts.command.nanoseconds) / 1e9 }
}
