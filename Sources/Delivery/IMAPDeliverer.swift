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

/// What the state knows of the folder a mailbox delivers to, and how the deliverer records its sessions (the poll
/// implements it over the state store).
public protocol IMAPSessionJournal: Sendable {
    /// Whether the last session was cut off, and the highest UID appended before (with its UIDVALIDITY).
    func lastSession() throws -> (open: Bool, uidValidity: UInt32?, lastUID: UInt32?)
    /// Marks a session open; called before its first APPEND.
    func open() throws
    /// Marks it closed cleanly: everything it appended is recorded as delivered.
    func close(uidValidity: UInt32?, lastUID: UInt32?) throws
}

/// Delivery into a folder of an IMAP server by APPEND (RFC 3501 §6.3.11): Gmail, Fastmail, any IMAP mailbox.
///
/// One connection serves a whole poll (``withDeliveries(_:)``). Each message goes as one literal, streamed from the
/// spool with CRLF line ends, headed by `X-Popfetch-ID: <id>` (see ``SpooledMessage/deliveryID``), with its Date
/// header as the internal date (the time it was fetched when it has none) and the configured flags (none: unread).
///
/// Exactly once: before a poll's first APPEND the journal marks the session open; it is marked closed only when the
/// poll ended normally and no message that may have been appended was left unrecorded. A poll that finds the mark
/// still open (popfetch was killed, or a poll failed, between an APPEND and its record) looks each message up by its
/// `X-Popfetch-ID` (`UID SEARCH HEADER`, among the UIDs above the last one recorded) before it appends it: found, it
/// counts as delivered and is not appended again. The same after a connection lost during an APPEND.
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
    let journal: (any IMAPSessionJournal)?
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
        /// The last session was cut off, or a connection was lost during an APPEND: look messages up first.
        var inDoubt = false
        /// The journal was read (once per poll), and found the last session cut off.
        var journalRead = false
        var journalWasOpen = false
        var journalOpened = false
        var recordedValidity: UInt32?
        var recordedLastUID: UInt32?
        /// An APPEND is under way: if its connection fails now, the message may be in the folder.
        var appendInFlight = false
        /// A message that may be in the folder was answered as not delivered: the journal stays open.
        var uncertain = false
        var appendedValidity: UInt32?
        var appendedLastUID: UInt32?
    }

    public init(
        destination: IMAPDestination, security: IMAPConnection.Security, tlsContext: NIOSSLContext?, login: Login,
        clearTextAllowed: Bool, flags: [String], createFolder: Bool, timeouts: IMAPConnection.Timeouts,
        journal: (any IMAPSessionJournal)?, stopRequested: @escaping @Sendable () -> Bool = { false },
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
            group.addTask { await self.serve() }
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

    /// The poll recorded every answer: unless a message may be in the folder unrecorded, the session ended cleanly
    /// and its mark is cleared. After a cut-off session, only a poll that delivered every message waiting on the
    /// server clears it: the message the cut-off session appended was among them (looked up, found, recorded).
    public func pollEnded(everythingDelivered: Bool) async throws {
        let end = self.session.withLock { s -> (UInt32?, UInt32?)? in
            guard s.journalOpened, !s.uncertain, !s.appendInFlight, !s.journalWasOpen || everythingDelivered else {
                return nil
            }
            s.journalOpened = false
            return (s.appendedValidity, s.appendedLastUID)
        }
        if let end, let journal = self.journal {
            try journal.close(uidValidity: end.0, lastUID: end.1)
        }
    }

    // MARK: - The session task

    func serve() async {
        var carried: Request?
        var resent = false
        var setupFailures = 0
        // Whether the message in hand may be in the folder already (nil: only if the last session was cut off). It
        // goes with the message through a resend, and is cleared only by an answer: a lookup that did not find it, a
        // refused APPEND, an OK.
        var mayBeThere: Bool?
        while true {
            var current: Request?
            if let request = carried {
                current = request
            } else {
                current = await self.queue.next()
                mayBeThere = nil
            }
            carried = nil
            guard let first = current else { return }
            if let why = self.session.withLock({ $0.unreachable }) {
                self.answer(first, .temporaryFailure(why), mayBeThere: mayBeThere)
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
                        try self.openJournal()
                        var folder = FolderState()
                        while let request = current {
                            let result = try await self.deliverOne(
                                request.message, on: conn, folder: &folder, mayBeThere: &mayBeThere)
                            self.answer(request, result, mayBeThere: mayBeThere)
                            current = nil
                            resent = false
                            guard let next = await self.queue.next() else {
                                await conn.logout()
                                return
                            }
                            current = next
                            mayBeThere = nil
                            // The server closed an idle connection (BYE): the next message gets a new one.
                            guard conn.isActive else { return }
                        }
                    }
                }
                carried = current
            } catch {
                guard let request = current else { continue }
                let inFlight = self.session.withLock { s -> Bool in
                    defer { s.appendInFlight = false }
                    if s.appendInFlight { s.inDoubt = true }
                    return s.appendInFlight
                }
                if inFlight { mayBeThere = true }
                if setup.wasAbandoned {
                    self.markUnreachable(Self.stoppedDuringSetup)
                    self.answer(request, .temporaryFailure(Self.stoppedDuringSetup), mayBeThere: mayBeThere)
                    continue
                }
                if let refused = error as? LoginRefused {
                    self.markUnreachable(refused.description)
                    self.answer(request, .temporaryFailure(refused.description), mayBeThere: mayBeThere)
                    continue
                }
                if !ready { setupFailures += 1 }
                if setupFailures >= 2 { self.markUnreachable("\(error)") }
                if !resent && Self.isWorthResending(error) {
                    // Once more on a new connection; if the APPEND may have gone through, it is looked up first.
                    resent = true
                    carried = request
                } else {
                    if resent, let e = error as? IMAPTransportError, e.kind == .timeout {
                        // The server timed out on this message twice in a row: the rest would wait as long.
                        self.markUnreachable("\(error) (twice in a row)")
                    }
                    resent = false
                    self.answer(request, .temporaryFailure("\(error)"), mayBeThere: mayBeThere)
                }
            }
        }
    }

    /// Answers the poll. A message not delivered that may be in the folder (`mayBeThere`, or when unknown: the
    /// last session was cut off) keeps the session's mark open, so the next poll looks it up before appending it.
    func answer(_ request: Request, _ result: DeliveryResult, mayBeThere: Bool?) {
        if result != .delivered {
            self.session.withLock { s in
                if mayBeThere ?? s.journalWasOpen { s.uncertain = true }
            }
        }
        request.answer(result)
    }

    /// Why a message is deferred when popfetch is stopped while the IMAP session is set up.
    public static let stoppedDuringSetup = "popfetch was asked to stop while the IMAP session was being set up"

    func markUnreachable(_ why: String) { self.session.withLock { $0.unreachable = $0.unreachable ?? why } }

    static func isWorthResending(_ error: any Error) -> Bool {
        if let e = error as? IMAPTransportError { return e.kind == .connectionClosed || e.kind == .timeout }
        if let e = error as? IMAPCommandError { return e.status.condition == .bye }
        return error is IMAPProtocolError
    }

    /// Reads the journal once per poll, and marks the session open before the first APPEND.
    func openJournal() throws {
        guard let journal = self.journal else { return }
        let read = self.session.withLock { $0.journalRead }
        if !read {
            let last = try journal.lastSession()
            self.session.withLock {
                $0.journalRead = true
                $0.recordedValidity = last.uidValidity
                $0.recordedLastUID = last.lastUID
                if last.open {
                    $0.inDoubt = true
                    $0.journalWasOpen = true
                }
            }
            if last.open {
                let text =
                    "the last delivery to \(self.destination) was cut off: each message is looked up there "
                    + "before it is appended"
                self.logger.notice("\(text)")
            }
        }
        let opened = self.session.withLock { $0.journalOpened }
        if !opened {
            try journal.open()
            self.session.withLock { $0.journalOpened = true }
        }
    }

    // MARK: - One message

    struct FolderState {
        /// EXAMINE was done (for SEARCH), and the UIDVALIDITY it reported.
        var examined = false
        var exists = true
        var uidValidity: UInt32?
        var created = false
    }

    func deliverOne(
        _ message: SpooledMessage, on conn: IMAPConnection, folder: inout FolderState, mayBeThere: inout Bool?
    ) async throws -> DeliveryResult {
        if mayBeThere == nil { mayBeThere = self.session.withLock { $0.journalWasOpen } }
        if message.hasNUL {
            return .permanentFailure("the message contains NUL bytes, which IMAP cannot carry (RFC 3501 §4.3)")
        }
        let header = message.deliveryID.map { Array("\(Self.idHeader): \($0)\r\n".utf8) } ?? []
        if let id = message.deliveryID, self.session.withLock({ $0.inDoubt }) {
            let found = try await self.lookUp(id, on: conn, folder: &folder)
            mayBeThere = found != nil
            if let uid = found {
                let text =
                    "message \(id) is in \(self.destination) already (UID \(uid), appended before popfetch "
                    + "was interrupted): not appended again"
                self.logger.notice("\(text)")
                return .delivered
            }
        }
        let size = header.count + (try Self.wireSize(message))
        guard size <= IMAPDefaults.maximumAppendSize else {
            return .permanentFailure("the message (\(size) bytes) is larger than IMAP can append (4 GiB)")
        }
        if let limit = conn.capabilities.appendLimit, size > limit {
            return .permanentFailure("the message (\(size) bytes) is above the server's APPENDLIMIT (\(limit) bytes)")
        }
        let date = Self.internalDate(of: message)
        while true {
            self.session.withLock { $0.appendInFlight = true }
            let done = try await conn.append(
                mailbox: self.destination.folder, flags: self.flags, date: date, size: size
            ) { writer in
                try await Self.writeMessage(message, header: header, to: writer)
            }
            self.session.withLock { $0.appendInFlight = false }
            // Answered: in the folder if OK, not if refused.
            mayBeThere = done.isOK
            if done.isOK {
                if case .appendUID(let validity, let uid) = done.status.code {
                    self.session.withLock {
                        if $0.appendedValidity != validity {
                            $0.appendedValidity = validity
                            $0.appendedLastUID = uid
                        } else {
                            $0.appendedLastUID = max($0.appendedLastUID ?? 0, uid)
                        }
                    }
                }
                return .delivered
            }
            if done.status.code == .tryCreate && self.createFolder && !folder.created {
                let created = try await conn.execute(.create(mailbox: self.destination.folder))
                guard created.isOK || created.status.code == .alreadyExists else {
                    return .temporaryFailure(
                        "folder \(self.destination.folder) does not exist and could not be created: \(created.status)")
                }
                self.logger.notice("created folder \(self.destination.folder) on \(self.destination.host)")
                folder.created = true
                continue
            }
            return self.result(of: done.status)
        }
    }

    /// What a refused APPEND means for the message.
    func result(of status: IMAPStatus) -> DeliveryResult {
        let said = "IMAP server answered APPEND with \(status)"
        switch status.code {
        case .overQuota?:
            return .temporaryFailure(said)
        case .tryCreate?, .nonExistent?:
            return .temporaryFailure(
                "\(said) (folder \(self.destination.folder) does not exist; create it, or set imap_create_folder)")
        case .limit?:
            return .permanentFailure(said)
        case let code? where code.isTransient:
            return .temporaryFailure(said)
        default:
            return .failure(said)
        }
    }

    /// The UID of a message carrying `id` in the folder, if one is there.
    func lookUp(_ id: String, on conn: IMAPConnection, folder: inout FolderState) async throws -> UInt32? {
        if !folder.examined {
            let examined = try await conn.execute(.examine(mailbox: self.destination.folder))
            folder.examined = true
            guard examined.isOK else {
                if examined.status.code == .nonExistent || examined.status.code == .tryCreate {
                    folder.exists = false
                    return nil
                }
                throw IMAPCommandError(command: "EXAMINE", status: examined.status)
            }
            for case .uidValidity(let v) in examined.untaggedCodes { folder.uidValidity = v }
        }
        guard folder.exists else { return nil }
        let (validity, last) = self.session.withLock { ($0.recordedValidity, $0.recordedLastUID) }
        var from: UInt32?
        if let validity, validity == folder.uidValidity, let last, last < UInt32.max { from = last + 1 }
        let found = try await conn.execute(
            .uidSearchHeader(field: Self.idHeader, value: id, fromUID: from))
        guard found.isOK else { throw IMAPCommandError(command: "UID SEARCH", status: found.status) }
        return found.searchResults.first
    }

    // MARK: - Logging in

    struct LoginRefused: Error, CustomStringConvertible {
        var description: String
    }

    func logIn(_ conn: IMAPConnection) async throws {
        if conn.preauthenticated { return }
        guard conn.isEncrypted || self.clearTextAllowed else {
            throw LoginRefused(
                description: "not sending the IMAP password to \(self.destination.host) without TLS (use imaps://, "
                    + "imap_tls = \"starttls\", or allow_insecure_auth)")
        }
        let offered = conn.capabilities.authenticationMechanisms
        let user = self.login.user
        let secret = self.login.secret
        var mechanism: (any SASLMechanism)?
        switch self.login.method {
        case .auto:
            if offered.contains("SCRAM-SHA-256") {
                mechanism = SCRAMMechanism(hash: .sha256, user: user, password: secret)
            } else if offered.contains("PLAIN") {
                mechanism = PlainMechanism(user: user, password: secret)
            }
        case .plain: mechanism = PlainMechanism(user: user, password: secret)
        case .login: mechanism = LoginMechanism(user: user, password: secret)
        case .scramSHA256: mechanism = SCRAMMechanism(hash: .sha256, user: user, password: secret)
        case .xoauth2: mechanism = XOAuth2Mechanism(user: user, token: secret)
        case .oauthbearer: mechanism = OAuthBearerMechanism(user: user, token: secret)
        }
        let done: IMAPCompletion
        if var m = mechanism {
            let initial = try m.initialResponse().map { $0.isEmpty ? "=" : Base64.encode($0) }
            done = try await conn.authenticate(mechanism: m.name, initialResponse: initial) { challenge in
                guard let bytes = Base64.decode(challenge) else {
                    throw SASLError(m.name, "the server's challenge is not base64")
                }
                return Base64.encode(try m.respond(to: bytes))
            }
            if done.isOK { try m.verifyCompletion() }
        } else {
            guard !conn.capabilities.loginDisabled else {
                throw LoginRefused(
                    description: "the IMAP server offers no login popfetch can use (LOGINDISABLED, no AUTH=PLAIN)")
            }
            done = try await conn.login(user: user, password: secret)
        }
        guard done.isOK else {
            let why = "the IMAP server refused the login of \(user): \(done.status)"
            if done.status.code?.isTransient == true {
                throw IMAPCommandError(command: "login", status: done.status)
            }
            self.login.onRefused?()
            throw LoginRefused(description: why)
        }
    }

    // MARK: - The message on the wire

    /// Bytes of the spool file as sent: every LF becomes CRLF.
    static func wireSize(_ message: SpooledMessage) throws -> Int {
        var reader = message.makeReader(chunkSize: 256 * 1024)
        var lineFeeds = 0
        while let n = try reader.nextChunk({ raw -> Int in
            var count = 0
            guard let base = raw.baseAddress else { return 0 }
            var i = 0
            while i < raw.count, let found = memchr(base + i, 10, raw.count - i) {
                count += 1
                i = base.distance(to: UnsafeRawPointer(found)) + 1
            }
            return count
        }) {
            lineFeeds += n
        }
        return message.length + lineFeeds
    }

    /// Streams the header line and the spool file (trace header, then message) with CRLF line ends.
    static func writeMessage(_ message: SpooledMessage, header: [UInt8], to writer: IMAPLiteralWriter) async throws {
        if !header.isEmpty { try await writer.write(ByteBuffer(bytes: header)) }
        var reader = message.makeReader(chunkSize: 64 * 1024)
        var out = ByteBuffer()
        while true {
            out.clear()
            let more = try reader.nextChunk { raw -> Bool in
                guard let base = raw.baseAddress else { return true }
                var i = 0
                while i < raw.count {
                    guard let found = memchr(base + i, 10, raw.count - i) else {
                        out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[i...]))
                        break
                    }
                    let lf = base.distance(to: UnsafeRawPointer(found))
                    out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[i..<lf]))
                    out.writeBytes([13, 10])
                    i = lf + 1
                }
                return true
            }
            guard more != nil else { return }
            try await writer.write(out)
        }
    }

    /// The message's Date header as APPEND's internal date; the time it is delivered when it has none that
    /// parses.
    static func internalDate(of message: SpooledMessage) -> IMAPDateTime? {
        // Zones beyond ±14 hours exist on no clock: a server may refuse them, so such a date is not used.
        if let header = try? message.prefix(64 * 1024), let value = Self.headerValue("date", in: header),
            let date = IMAPDateTime.parseRFC5322(value), abs(date.offsetMinutes) <= 14 * 60
        {
            return date
        }
        return IMAPDateTime(secondsSince1970: Int64(time(nil)))
    }

    /// The first `name:` field of a header section (LF line ends), unfolded.
    static func headerValue(_ name: String, in bytes: [UInt8]) -> String? {
        var value: [UInt8]?
        var lineStart = 0
        while lineStart < bytes.count {
            let end = bytes[lineStart...].firstIndex(of: 10) ?? bytes.count
            let line = bytes[lineStart..<end]
            if line.isEmpty || line == [13] { break }
            if var v = value {
                guard line.first == 32 || line.first == 9 else { break }
                v += line
                value = v
            } else if let colon = line.firstIndex(of: UInt8(ascii: ":")),
                String(decoding: line[..<colon], as: UTF8.self).lowercased() == name
            {
                value = Array(line[(colon + 1)...])
            }
            lineStart = end + 1
        }
        return value.map { String(decoding: $0, as: UTF8.self) }
    }
}
