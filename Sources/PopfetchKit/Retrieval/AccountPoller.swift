#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import MailTransport
import NIOCore
import NIOSSL
import Crypto
import POP3Core
import SASL
import SMTPCore

/// Everything a poll needs from outside the account's configuration.
public struct PollEnvironment: Sendable {
    public var store: StateStore
    /// Directory of the state database: lock files and spool files go here.
    public var stateDirectory: String
    public var logger: Logger
    /// How long to wait for another process's poll of the same account to finish.
    public var lockWait: Double
    public var localHostName: String
    /// Asked between messages: when true, the poll finishes the message in hand, then QUITs (daemon shutdown).
    public var stopRequested: @Sendable () -> Bool

    public init(
        store: StateStore, stateDirectory: String, logger: Logger, lockWait: Double = 30,
        stopRequested: @escaping @Sendable () -> Bool = { false }
    ) {
        self.store = store
        self.stateDirectory = stateDirectory
        self.logger = logger
        self.lockWait = lockWait
        self.localHostName = TraceHeader.localHostName()
        self.stopRequested = stopRequested
    }
}

/// Polls one account once: connect, log in, list, fetch what is new into the spool, deliver, commit, delete, quit.
///
/// The order per message is fixed: RETR into the spool → the terminating dot line arrived → deliver → the receiver
/// accepted → commit "delivered" in SQLite → DELE. So a crash at any instant can cause at most one duplicate
/// (delivered but not yet committed), never a loss, and never a truncated message handed to a receiver.
public struct AccountPoller: Sendable {
    public var account: AccountConfiguration
    public var environment: PollEnvironment
    /// `check` only logs in and counts what is new; it fetches, delivers, deletes and records nothing.
    public var checkOnly: Bool

    public init(account: AccountConfiguration, environment: PollEnvironment, checkOnly: Bool = false) {
        self.account = account
        self.environment = environment
        self.checkOnly = checkOnly
    }

    var logger: Logger {
        var l = self.environment.logger
        l[metadataKey: "account"] = "\(self.account.name)"
        return l
    }

    public func poll() async -> PollReport {
        var report = PollReport(account: self.account.name)
        let started = Date()
        let store = self.environment.store
        let key = self.account.stateKey
        var lock: AccountLock?
        do {
            lock = try await AccountLock.acquire(
                stateDirectory: self.environment.stateDirectory, stateKey: key, wait: self.environment.lockWait)
        } catch {
            report.error = Self.classify(error)
        }
        if lock == nil && report.error == nil {
            report.error = PollError(
                .temporary, "another popfetch process is polling \(key); try again when it has finished")
        }
        if let error = report.error {
            report.outcome = .error
            report.durationSeconds = Date().timeIntervalSince(started)
            self.logger.error("poll failed: \(error.message)")
            return report
        }
        defer { lock?.release() }

        var pollID: Int64?
        do {
            if !self.checkOnly {
                pollID = try store.beginPoll(account: key, name: self.account.name, at: started)
            }
            try await self.run(&report)
            report.outcome = (report.deferred > 0 || report.failed > 0) ? .partial : .ok
        } catch {
            report.error = Self.classify(error)
            report.outcome = .error
        }
        report.durationSeconds = Date().timeIntervalSince(started)
        if let pollID {
            do {
                try store.finishPoll(id: pollID, report: report, at: Date())
            } catch {
                if report.error == nil {
                    report.error = Self.classify(error)
                    report.outcome = .error
                }
            }
        }
        self.log(report)
        return report
    }

    private func log(_ r: PollReport) {
        let metadata: Logger.Metadata = [
            "listed": "\(r.listed)", "new": "\(r.new)", "delivered": "\(r.delivered)", "bytes": "\(r.bytes)",
            "deleted": "\(r.deleted)", "deferred": "\(r.deferred)", "failed": "\(r.failed)",
            "skipped": "\(r.skipped)", "duration": "\(String(format: "%.3f", r.durationSeconds))s",
            "outcome": "\(r.outcome.rawValue)",
        ]
        if self.checkOnly {
            if let e = r.error {
                self.logger.error("check failed: \(e.message)")
            } else {
                self.logger.info("check: \(r.new) new of \(r.listed) on the server")
            }
        } else if let e = r.error {
            self.logger.error("poll failed: \(e.message)", metadata: metadata)
        } else if r.outcome == .partial {
            self.logger.warning("poll finished with deferred or failed messages", metadata: metadata)
        } else {
            self.logger.info("poll finished", metadata: metadata)
        }
    }

    // MARK: - The session

    private func run(_ report: inout PollReport) async throws {
        let account = self.account
        let password = try await SecretResolver.resolve(account.password, account: account.name)
        let tlsContext: NIOSSLContext?
        if account.tls == .none {
            tlsContext = nil
        } else {
            do {
                var client: (certificate: String, key: String)?
                if let c = account.tlsClientCertificate, let k = account.tlsClientKey { client = (c, k) }
                tlsContext = try TLSContextFactory.makeContext(
                    caFile: account.caFile, minimumVersion: account.tlsMinimumVersion == "1.3" ? .tlsv13 : .tlsv12,
                    pinned: account.fingerprint != nil, clientCertificate: client)
            } catch {
                throw PollError(.config, "\(account.name): cannot set up TLS (ca_file \(account.caFile ?? "-")): \(error)")
            }
        }
        let endpoint = POP3Endpoint(
            host: account.host, port: account.port, tls: account.tls, timeout: .seconds(Int64(account.timeout)),
            pinnedFingerprint: account.fingerprint)
        self.logger.debug("connecting to \(account.host):\(account.port) (tls \(account.tls.rawValue))")
        var result = report
        do {
            try await POP3Connection.withConnection(to: endpoint, tlsContext: tlsContext) { conn in
                try await self.session(conn, password: password, report: &result)
            }
        } catch var e as TransportError where e.certificateUnverified {
            // BoringSSL does not say why; look at the certificate on a second connection (nothing is sent on it).
            if let summary = try? await POP3Connection.inspectCertificate(
                host: account.host, port: account.port, tls: account.tls, timeout: .seconds(Int64(account.timeout)))
            {
                e.detail = summary.diagnose(host: account.host, now: Int(Date().timeIntervalSince1970))
            }
            throw e
        }
        report = result
    }

    private func session(_ conn: POP3Connection, password: String, report: inout PollReport) async throws {
        let account = self.account
        var caps = try await conn.capabilities()
        if account.tls == .starttls {
            guard let c = caps, c.supportsSTLS else {
                throw TransportError(.stlsNotOffered, host: account.host, port: account.port, phase: "CAPA")
            }
            try await conn.startTLS()
            caps = try await conn.capabilities()
        }
        try await self.login(conn, password: password, capabilities: caps)
        self.logger.debug("logged in as \(account.user)")

        // Listing: UIDL (one command), then LIST for sizes.
        let uidl = try await conn.uidlListing()
        let scan = try await conn.scanListing()
        var sizes: [Int: Int] = [:]
        sizes.reserveCapacity(scan.count)
        for e in scan { sizes[e.number] = e.size }
        let store = self.environment.store
        let key = account.stateKey
        let now = Date()

        let listing: [UIDLEntry]
        let trackState: Bool
        if let uidl {
            listing = uidl
            trackState = true
        } else {
            switch account.withoutUIDL {
            case .refuse:
                throw PollError(
                    .protocolError,
                    "\(account.host) does not support UIDL, so popfetch cannot tell new mail from old; set "
                        + "without_uidl = \"fetch-and-delete\" (with keep = false) to fetch and delete everything")
            case .fetchAndDelete:
                listing = scan.map { UIDLEntry(number: $0.number, uid: "no-uidl-\($0.number)") }
                trackState = false
            }
        }
        let known = trackState ? try store.messages(account: key) : [:]
        if trackState && !self.checkOnly {
            var listed: [String: Int] = [:]
            listed.reserveCapacity(listing.count)
            for e in listing { listed[e.uid] = sizes[e.number] ?? 0 }
            try store.recordListing(account: key, listed: listed, known: known, at: now)
        }
        let policy = PollPlan.Policy(
            keep: account.keep, deleteAfter: account.deleteAfter, maxSize: account.maxSize,
            deleteOversize: account.oversize == .delete, fetchLimit: account.fetchLimit,
            recipients: account.recipients)
        let plan = PollPlan(listing: listing, sizes: sizes, known: known, policy: policy, now: now)
        report.listed = listing.count
        report.new = plan.fetchCount
        if self.checkOnly {
            _ = try await conn.quit()
            return
        }
        report.loginDelay = caps?.loginDelay
        let waiting = plan.items.reduce(0) { n, item in
            switch item.action {
            case .fetch, .skipLimit, .skipOversize: return n + 1
            default: return n
            }
        }

        let pipelining = caps?.supportsPipelining ?? false
        let deliverer: any Deliverer
        switch account.delivery {
        case .mda(let command):
            deliverer = MDADeliverer(
                command: command, timeout: account.mdaTimeout, accountUser: account.user, accountName: account.name,
                partialRead: account.mdaPartialRead)
            if geteuid() == 0 && plan.fetchCount > 0 {
                self.logger.warning("running the MDA as root: consider running popfetch as the mail's owner")
            }
        case .maildir(let path):
            deliverer = MaildirDeliverer(directory: path)
        case .smtp(let target), .lmtp(let target):
            var lmtp = false
            if case .lmtp = account.delivery { lmtp = true }
            let endpoint = target
            var tlsContext: NIOSSLContext?
            if account.smtpTLS != .none {
                do {
                    tlsContext = try TLSContextFactory.makeContext(caFile: account.smtpCAFile)
                } catch {
                    throw PollError(.config, "\(account.name): cannot set up TLS for the MTA (smtp_ca_file): \(error)")
                }
            }
            var credentials: (user: String, password: String)?
            if let user = account.smtpUser, let secret = account.smtpPassword {
                credentials = (user, try await SecretResolver.resolve(secret, account: account.name))
            }
            let clearOK: Bool = {
                if case .tcp(let h, _) = target { return AccountConfiguration.isLoopback(h) }
                return true
            }()
            deliverer = SMTPDeliverer(
                endpoint: endpoint, lmtp: lmtp, heloName: self.environment.localHostName,
                connectTimeout: .seconds(Int64(account.timeout)), tls: account.smtpTLS, tlsContext: tlsContext,
                credentials: credentials, clearTextAuthAllowed: clearOK)
        }
        defer { Task { await deliverer.finish() } }
        // Two spool files: while the MDA reads one message, the next one streams into the other.
        var spools: [SpoolFile] = []
        var nextSpool = 0
        var deletedUIDs: [String] = []
        // A DELE waiting to be sent; with PIPELINING it goes out in the same write as the next RETR.
        var pendingDele: (number: Int, uid: String)?
        // The delivery running while the next message is fetched.
        var inFlight: InFlightDelivery?

        func flushDele() async throws {
            guard let d = pendingDele else { return }
            pendingDele = nil
            let status = try await conn.execute(.dele(d.number))
            if status.isOK { deletedUIDs.append(d.uid) } else {
                self.logger.warning("server refused DELE \(d.number): \(status)")
            }
        }

        /// Waits for the delivery in flight, commits its outcome, and queues its DELE.
        func settle() async throws {
            guard let d = inFlight else { return }
            inFlight = nil
            let outcomes = await d.task.value
            switch try self.record(outcomes, uid: d.uid, trackState: trackState, report: &report) {
            case .complete:
                report.delivered += 1
                report.bytes += d.receivedSize
                if !account.keep {
                    try await flushDele()
                    pendingDele = (d.number, d.uid)
                }
            case .rejectedDelete:
                try await flushDele()
                pendingDele = (d.number, d.uid)
            case .bounce(let reason, let rejected):
                if try await self.bounce(
                    d.message, uid: d.uid, reason: reason, rejected: rejected, deliverer: deliverer,
                    trackState: trackState)
                {
                    try await flushDele()
                    pendingDele = (d.number, d.uid)
                }
            case .incomplete:
                break
            }
        }

        do {
            messages: for item in plan.items {
                switch item.action {
                case .keep:
                    continue
                case .skipFailed, .skipLimit, .skipOversize:
                    report.skipped += 1
                    if item.action == .skipOversize {
                        self.logger.notice(
                            "message \(item.number) is \(item.size) bytes, over max_size; left on the server",
                            metadata: ["uid": "\(item.uid)"])
                    }
                    continue
                case .deleteDelivered, .deleteExpired, .deleteOversize:
                    try await flushDele()
                    if item.action == .deleteOversize {
                        self.logger.notice(
                            "message \(item.number) is \(item.size) bytes, over max_size; deleting it unread",
                            metadata: ["uid": "\(item.uid)"])
                        report.skipped += 1
                    }
                    pendingDele = (item.number, item.uid)
                    continue
                case .fetch(let recipients):
                    if self.environment.stopRequested() {
                        // Shutting down: no new message; what is in hand is settled below, then QUIT.
                        self.logger.notice("stopping: remaining messages are left for the next poll")
                        break messages
                    }
                    if spools.count < 2 {
                        do {
                            spools.append(try SpoolFile(directory: self.environment.stateDirectory))
                        } catch {
                            throw PollError(.io, "\(error)")
                        }
                    }
                    let spool = spools[nextSpool % spools.count]
                    nextSpool += 1
                    try spool.begin(
                        traceHeader: TraceHeader.make(
                            serverHost: account.host, accountName: account.name,
                            localHost: self.environment.localHostName, date: Date()))
                    let retr = Command.retr(item.number)
                    if let d = pendingDele, pipelining {
                        pendingDele = nil
                        try await conn.sendPipelined([.dele(d.number), retr])
                        let status = try await conn.awaitResponse(to: .dele(d.number))
                        if status.isOK { deletedUIDs.append(d.uid) }
                    } else {
                        try await flushDele()
                        try await conn.send(retr)
                    }
                    let refused = try await conn.receiveMessage(retr) { bytes in try spool.append(bytes) }
                    if let refused {
                        report.failed += 1
                        self.logger.warning("server refused RETR \(item.number): \(refused)")
                        continue
                    }
                    // The terminating dot line has arrived: only now may any receiver see the message.
                    let message = try spool.finish()
                    // The previous delivery must be settled (committed) before this one starts.
                    try await settle()
                    let groups = deliverer.recipientGroups(recipients)
                    let task = Task { await Self.deliver(message, groups: groups, deliverer: deliverer) }
                    inFlight = InFlightDelivery(
                        number: item.number, uid: item.uid, receivedSize: message.receivedSize, message: message,
                        task: task)
                }
            }
            try await settle()
        } catch {
            // Whatever failed, a delivery that ran must be committed before giving up: no avoidable duplicate.
            if inFlight != nil { try? await settle() }
            throw error
        }
        report.pending = max(0, waiting - report.delivered)
        try await flushDele()
        let bye = try await conn.quit()
        if bye.isOK {
            if trackState {
                try store.recordDeleted(account: key, uids: deletedUIDs, at: Date())
            }
            report.deleted = deletedUIDs.count
        } else if !deletedUIDs.isEmpty {
            // RFC 1939 §6: -ERR to QUIT means some deletions may not have happened; the next poll retries them.
            self.logger.warning("server answered QUIT with \(bye); deletions may not have taken effect")
        }
    }

    /// A delivery running in the background while the next message is fetched.
    private struct InFlightDelivery {
        var number: Int
        var uid: String
        var receivedSize: Int
        var message: SpooledMessage
        var task: Task<[RecipientOutcome], Never>
    }

    /// Delivers one spooled message to each recipient group in turn, stopping at the first that does not accept.
    private static func deliver(_ message: SpooledMessage, groups: [[String]], deliverer: any Deliverer) async
        -> [RecipientOutcome]
    {
        var out: [RecipientOutcome] = []
        for group in groups {
            let outcomes: [RecipientOutcome]
            do {
                outcomes = try await deliverer.deliver(message, to: group)
            } catch {
                outcomes = [RecipientOutcome(recipients: group, result: .temporaryFailure("\(error)"))]
            }
            out += outcomes
            if outcomes.contains(where: { $0.result != .delivered }) { break }
        }
        return out
    }

    /// Sends a delivery status notification for a permanently rejected message to `bounce_to` (else the first
    /// recipient) through the same MTA. Returns whether it was accepted (then the original may be deleted);
    /// otherwise the original is kept and marked failed.
    private func bounce(
        _ message: SpooledMessage, uid: String, reason: String, rejected: [String], deliverer: any Deliverer,
        trackState: Bool
    ) async throws -> Bool {
        let to = self.account.bounceTo ?? self.account.recipients.first ?? ConfigurationLoader.currentLoginName()
        let dsn = BounceMessage.make(
            original: message, reason: reason, rejectedRecipients: rejected, bounceTo: to, account: self.account,
            localHost: self.environment.localHostName, date: Date())
        let spool = try SpoolFile(directory: self.environment.stateDirectory)
        try spool.begin(traceHeader: [])
        try spool.append(ByteBuffer(bytes: dsn))
        let bounceMessage = try spool.finish()
        let outcomes = (try? await deliverer.deliver(bounceMessage, to: [to])) ?? []
        let accepted = !outcomes.isEmpty && outcomes.allSatisfy { $0.result == .delivered }
        if accepted {
            self.logger.notice("bounce sent to \(to); deleting the rejected message", metadata: ["uid": "\(uid)"])
            return true
        }
        let why = outcomes.first.map { "\($0.result)" } ?? "no answer"
        self.logger.error(
            "the bounce to \(to) was not accepted either (\(why)); message kept on the server and marked failed",
            metadata: ["uid": "\(uid)"])
        if trackState {
            try self.environment.store.recordDeliveryFailure(
                account: self.account.stateKey, uid: uid, error: reason, countsTowardLimit: true, maxAttempts: 1,
                at: Date())
        }
        return false
    }

    enum Settlement {
        /// Every recipient has the message: it may be deleted (keep = false).
        case complete
        /// Some recipient still lacks it: it stays on the server.
        case incomplete
        /// Rejected permanently with on_permanent_failure = "delete": delete it undelivered.
        case rejectedDelete
        /// Rejected permanently with on_permanent_failure = "bounce": send a DSN, then delete it.
        case bounce(reason: String, recipients: [String])
    }

    /// Commits the outcome of one message's delivery, recipient by recipient.
    private func record(_ outcomes: [RecipientOutcome], uid: String, trackState: Bool, report: inout PollReport)
        throws -> Settlement
    {
        let store = self.environment.store
        let key = self.account.stateKey
        var settlement: Settlement = outcomes.isEmpty ? .incomplete : .complete
        var counted = false
        for outcome in outcomes {
            switch outcome.result {
            case .delivered:
                if trackState {
                    try store.recordDelivered(
                        account: key, uid: uid, recipients: outcome.recipients,
                        allRecipients: self.account.recipients, at: Date())
                }
            case .temporaryFailure(let why):
                if !counted { report.deferred += 1 }
                counted = true
                settlement = .incomplete
                self.logger.warning("delivery deferred, message kept on the server: \(why)", metadata: ["uid": "\(uid)"])
                if trackState {
                    try store.recordDeliveryFailure(
                        account: key, uid: uid, error: why, countsTowardLimit: false,
                        maxAttempts: self.account.maxAttempts, at: Date())
                }
            case .failure(let why):
                if !counted { report.failed += 1 }
                counted = true
                settlement = .incomplete
                var marked = false
                if trackState {
                    marked = try store.recordDeliveryFailure(
                        account: key, uid: uid, error: why, countsTowardLimit: true,
                        maxAttempts: self.account.maxAttempts, at: Date())
                }
                if marked {
                    self.logger.error(
                        """
                        delivery failed \(self.account.maxAttempts) times; message marked failed and kept on the \
                        server until `popfetch retry --account \(self.account.name)`: \(why)
                        """,
                        metadata: ["uid": "\(uid)"])
                } else {
                    self.logger.warning("delivery failed, message kept on the server: \(why)", metadata: ["uid": "\(uid)"])
                }
            case .permanentFailure(let why):
                if !counted { report.failed += 1 }
                counted = true
                switch self.account.onPermanentFailure {
                case .keep:
                    settlement = .incomplete
                    if trackState {
                        try store.recordDeliveryFailure(
                            account: key, uid: uid, error: why, countsTowardLimit: true, maxAttempts: 1, at: Date())
                    }
                    self.logger.error(
                        """
                        rejected permanently; message marked failed and kept on the server until \
                        `popfetch retry --account \(self.account.name)`: \(why)
                        """,
                        metadata: ["uid": "\(uid)"])
                case .bounce:
                    if case .complete = settlement { settlement = .bounce(reason: why, recipients: outcome.recipients) }
                    if trackState {
                        try store.recordDeliveryFailure(
                            account: key, uid: uid, error: why, countsTowardLimit: false,
                            maxAttempts: self.account.maxAttempts, at: Date())
                    }
                case .delete:
                    if case .complete = settlement { settlement = .rejectedDelete }
                    if trackState {
                        try store.recordDeliveryFailure(
                            account: key, uid: uid, error: why, countsTowardLimit: false,
                            maxAttempts: self.account.maxAttempts, at: Date())
                    }
                    self.logger.error(
                        "rejected permanently; deleting it from the server (on_permanent_failure = \"delete\"): \(why)",
                        metadata: ["uid": "\(uid)"])
                }
            }
        }
        return settlement
    }
}
