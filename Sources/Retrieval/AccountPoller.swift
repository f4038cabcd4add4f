public import Configuration
import Crypto
import Delivery
import Foundation
public import Logging
import MailTransport
import NIOCore
import NIOSSL
import OAuth
import POP3Core
import SASL
import SMTPCore
import Spool
import SystemSupport
public import UIDLStore

#if canImport(Glibc)
    import Glibc
#endif

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
    /// The previous poll of this account failed already (daemon): a failed poll's summary line goes to debug.
    public var repeatedFailure = false

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
        // On one event loop: the poll's own awaits and its connections' reads meet on one thread.
        await withTaskExecutorPreference(EventLoopTaskExecutor.next()) { await self.pollOnLoop() }
    }

    private func pollOnLoop() async -> PollReport {
        var report = PollReport(account: self.account.name)
        let started = Date()
        let store = self.environment.store
        let key = self.account.mailbox
        var lock: LockFile?
        do {
            lock = try await LockFile.acquire(
                path: LockFile.accountLockPath(stateDirectory: self.environment.stateDirectory, stateKey: key.rawValue),
                wait: self.environment.lockWait, giveUp: self.environment.stopRequested)
        } catch {
            report.error = Self.classify(error)
        }
        if lock == nil && report.error == nil && self.environment.stopRequested() {
            return self.stoppedEarly(report, started: started)
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
                pollID = try store.beginPoll(mailbox: key, accountName: self.account.name, at: started)
            }
            try await self.run(&report)
            if report.paused != nil {
                report.outcome = .paused
            } else {
                report.outcome = (report.deferred > 0 || report.failed > 0 || report.stopped) ? .partial : .ok
            }
        } catch is EarlyStop.Stopped {
            // Stopped before the session acted on its listing: nothing was done, so the poll counts as not made.
            if let pollID { try? store.discardPoll(id: pollID) }
            return self.stoppedEarly(report, started: started)
        } catch {
            report.error = Self.classify(error)
            report.outcome = .error
        }
        report.durationSeconds = Date().timeIntervalSince(started)
        if let pollID {
            do {
                try store.finishPoll(id: pollID, summary: report.summary, at: Date())
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

    /// The report of a poll a stop ended before it did anything (see ``EarlyStop``): skipped, exit 75.
    private func stoppedEarly(_ report: PollReport, started: Date) -> PollReport {
        var r = report
        r.outcome = .skipped
        r.error = PollError(.temporary, EarlyStop.stoppedMessage)
        r.durationSeconds = Date().timeIntervalSince(started)
        self.logger.notice("not polled: \(EarlyStop.stoppedMessage)")
        return r
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
                // `check` and `poll --dry-run` print it themselves: once is enough.
                self.logger.debug("check failed: \(e.message)")
            } else {
                self.logger.info("check: \(r.new) new of \(r.listed) on the server")
            }
        } else if let e = r.error {
            // The error first and alone; counters only for what the poll did before it failed.
            let did = metadata.filter { key, value in key == "outcome" || key == "duration" || value != "0" }
            self.logger.log(
                level: self.environment.repeatedFailure ? .debug : .error, "poll failed: \(e.message)",
                metadata: did)
        } else if let why = r.paused {
            self.logger.error("account paused: \(why)", metadata: metadata)
        } else if r.outcome == .partial && r.stopped && r.deferred == 0 && r.failed == 0 {
            self.logger.notice(
                "poll stopped before every message was fetched; the rest stay on the server", metadata: metadata)
        } else if r.outcome == .partial {
            self.logger.error("poll finished with deferred or failed messages", metadata: metadata)
        } else {
            self.logger.info("poll finished", metadata: metadata)
        }
    }

    /// The MTA dialogue's trace sink at `--log-level trace` (lines begin with `MTA`), else nil.
    var mtaTrace: (@Sendable (String) -> Void)? {
        guard self.logger.logLevel <= .trace else { return nil }
        let logger = self.logger
        return { line in logger.trace("MTA \(line)") }
    }

    // MARK: - The session

    /// The TLS context of the account's POP3 connections: verification (full, or the pinned fingerprint), its
    /// ca_file, minimum version and client certificate. nil for tls = "none".
    func makeTLSContext() throws -> NIOSSLContext? {
        let account = self.account
        let tlsContext: NIOSSLContext?
        if account.server.tls == .none {
            tlsContext = nil
        } else {
            do {
                var client: TLSClientOptions.ClientCertificate?
                if let c = account.server.clientCertificate, let k = account.server.clientKey {
                    client = TLSClientOptions.ClientCertificate(certificateFile: c, keyFile: k)
                }
                tlsContext = try TLSContextFactory.makeContext(
                    TLSClientOptions(
                        verification: account.server.fingerprint != nil ? .pinnedFingerprint : .full,
                        trustRootsFile: account.server.caFile,
                        minimumVersion: TLSClientOptions.MinimumVersion(
                            rawValue: account.server.minimumTLSVersion.rawValue)
                            ?? .tls12,
                        clientCertificate: client))
            } catch {
                throw PollError(
                    .config, "\(account.name): cannot set up TLS (ca_file \(account.server.caFile ?? "-")): \(error)")
            }
        }
        return tlsContext
    }

    /// Where and how the account's POP3 connections go.
    var endpoint: POP3Endpoint {
        var endpoint = POP3Endpoint(
            host: self.account.server.host, port: self.account.server.port, tls: self.account.server.tls,
            timeout: .seconds(Int64(self.account.server.timeout)),
            pinnedFingerprint: self.account.server.fingerprint)
        endpoint.sessionTimeout = .seconds(Int64(self.account.server.pollTimeout))
        return endpoint
    }

    private func run(_ report: inout PollReport) async throws {
        let account = self.account
        let tlsContext = try self.makeTLSContext()
        let endpoint = self.endpoint
        self.logger.debug(
            "connecting to \(account.server.host):\(account.server.port) (tls \(account.server.tls.rawValue))")
        let start = report
        let early = EarlyStop(stopRequested: self.environment.stopRequested)
        do {
            report = try await self.stoppableBeforeMessages(early) { [endpoint] in
                let password = try await SecretResolver.resolve(account.authentication.password, account: account.name)
                let redactor = SecretRedactor.login(user: account.authentication.user, password: password)
                return try await POP3Connection.withConnection(to: endpoint, tlsContext: tlsContext) { conn in
                    if self.logger.logLevel <= .trace {
                        let logger = self.logger
                        // The server's replies too: one that quotes a refused PASS would show the password.
                        conn.trace = { line in logger.trace("\(redactor.apply(line))") }
                        // Read before the session starts.
                        if let greeting = conn.greeting { logger.trace("< \(redactor.apply("\(greeting)"))") }
                    }
                    let session = PollSession(
                        poller: self, conn: conn, password: password, report: start, earlyStop: early)
                    do {
                        try await session.run()
                    } catch {
                        throw SessionFailure(error: redactor.redact(error), report: session.report)
                    }
                    return session.report
                }
            }
        } catch let failure as SessionFailure {
            // What the session did before it failed (delivered, deferred, ...) is part of the poll's report.
            report = failure.report
            if var e = failure.error as? TransportError, e.certificateUnverified {
                if let summary = try? await POP3Connection.inspectCertificate(
                    host: account.server.host, port: account.server.port, tls: account.server.tls,
                    timeout: .seconds(Int64(account.server.timeout)))
                {
                    e.detail = summary.diagnose(host: account.server.host, now: Int(Date().timeIntervalSince1970))
                }
                throw e
            }
            throw failure.error
        } catch var e as TransportError where e.certificateUnverified {
            // BoringSSL does not say why; look at the certificate on a second connection (nothing is sent on it).
            if let summary = try? await POP3Connection.inspectCertificate(
                host: account.server.host, port: account.server.port, tls: account.server.tls,
                timeout: .seconds(Int64(account.server.timeout)))
            {
                e.detail = summary.diagnose(host: account.server.host, now: Int(Date().timeIntervalSince1970))
            }
            throw e
        }
    }

    /// Runs `session`; a stop request before login has succeeded ends it at once (a watcher looks every 100 ms) with
    /// ``EarlyStop/Stopped``; one while the listing arrives ends it with QUIT once the listing is in, or cuts it after
    /// ``EarlyStop/listingWait`` (or the account's time-out, if shorter). Once the session acts on its listing, the
    /// watcher ends and the session finishes in order.
    private func stoppableBeforeMessages(
        _ early: EarlyStop, _ session: @escaping @Sendable () async throws -> PollReport
    ) async throws -> PollReport {
        let stopRequested = self.environment.stopRequested
        return try await withThrowingTaskGroup(of: PollReport?.self) { group in
            group.addTask { try await session() }
            group.addTask {
                // A stop during the listing waits for it, and then for the answer to QUIT, at most this long.
                let wait = min(EarlyStop.listingWait, .seconds(self.account.server.timeout))
                var stopSeen: ContinuousClock.Instant?
                while !early.isActing {
                    try await Task.sleep(for: .milliseconds(100))
                    guard stopRequested() else { continue }
                    if early.stopNow() { throw EarlyStop.Stopped() }
                    let now = ContinuousClock.now
                    if let seen = stopSeen {
                        if now - seen >= wait && early.waitedEnough() { throw EarlyStop.Stopped() }
                    } else {
                        stopSeen = now
                    }
                }
                return nil
            }
            do {
                while let result = try await group.next() {
                    if let report = result {
                        group.cancelAll()
                        return report
                    }
                }
            } catch {
                // The session's own end (cancelled, its connection closed) may come in before the watcher's: a stop
                // it made is reported as the stop, whichever task finished first.
                if early.wasStopped { throw EarlyStop.Stopped() }
                throw error
            }
            throw PollError(.internalError, "the session ended without a report")
        }
    }

    /// A session's error, with the report of what it did before it failed.
    struct SessionFailure: Error {
        var error: any Error
        var report: PollReport
    }

    /// The deliverer for this poll's delivery method.
    func makeDeliverer(fetchCount: Int) async throws -> any Deliverer {
        let account = self.account
        switch account.delivery.method {
        case .mda(let command):
            if geteuid() == 0 && fetchCount > 0 {
                self.logger.warning("running the MDA as root: consider running popfetch as the mail's owner")
            }
            return MDADeliverer(
                command: command, timeout: account.delivery.mdaTimeout, accountUser: account.authentication.user,
                accountName: account.name,
                partialRead: account.delivery.mdaPartialRead)
        case .maildir(let path):
            return MaildirDeliverer(directory: path)
        case .smtp(let target), .lmtp(let target):
            var lmtp = false
            if case .lmtp = account.delivery.method { lmtp = true }
            var tlsContext: NIOSSLContext?
            if account.delivery.relay.tls != .none {
                do {
                    tlsContext = try TLSContextFactory.makeContext(
                        TLSClientOptions(trustRootsFile: account.delivery.relay.caFile))
                } catch {
                    throw PollError(.config, "\(account.name): cannot set up TLS for the MTA (smtp_ca_file): \(error)")
                }
            }
            var credentials: (user: String, password: String)?
            if let user = account.delivery.relay.user, let secret = account.delivery.relay.password {
                credentials = (user, try await SecretResolver.resolve(secret, account: account.name))
            }
            let clearOK: Bool = {
                if case .tcp(let h, _) = target { return AccountConfiguration.Server.isLoopback(h) }
                return true
            }()
            let smtp = SMTPDeliverer(
                endpoint: target, lmtp: lmtp, heloName: self.environment.localHostName,
                connectTimeout: .seconds(Int64(account.server.timeout)), tls: account.delivery.relay.tls,
                tlsContext: tlsContext,
                credentials: credentials, clearTextAuthAllowed: clearOK,
                timeoutCap: account.delivery.relay.timeout.map { .seconds(Int64($0)) },
                stopRequested: self.environment.stopRequested,
                trace: self.mtaTrace.map { trace in
                    let redactor = credentials.map { SecretRedactor.login(user: $0.user, password: $0.password) }
                    return { line in trace(redactor?.apply(line) ?? line) }
                })
            guard let credentials else { return smtp }
            // An MTA may quote the relay password in a refusal: masked in whatever the delivery says.
            return RedactingDeliverer(
                inner: smtp, redactor: SecretRedactor.login(user: credentials.user, password: credentials.password))
        case .imap(let destination):
            return try await self.makeIMAPDeliverer(destination)
        }
    }

    /// Sends a delivery status notification for a permanently rejected message to `bounce_to` (else the first
    /// recipient) through the same MTA. Returns whether it was accepted (then the original may be deleted);
    /// otherwise the original is kept and marked failed.
    func bounce(
        _ message: SpooledMessage, uid: String, reason: String, rejected: [String], deliverer: any Deliverer,
        trackState: Bool
    ) async throws -> Bool {
        let to =
            self.account.delivery.bounceTo ?? self.account.delivery.recipients.first
            ?? ConfigurationLoader.currentLoginName()
        let dsn = BounceMessage.make(
            original: message, reason: reason, rejectedRecipients: rejected, bounceTo: to,
            accountName: self.account.name, mailbox: self.account.stateKey,
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
        let temporary = outcomes.allSatisfy {
            if case .temporaryFailure = $0.result { return true }
            return false
        }
        if temporary && self.environment.stopRequested() {
            // Not refused: popfetch is stopping (the MTA session for the bounce was abandoned while being set up).
            // The message is not marked failed; the next poll rejects and bounces it again.
            self.logger.notice(
                "stopping before the bounce to \(to) was sent; message kept on the server for the next poll",
                metadata: ["uid": "\(uid)"])
            return false
        }
        self.logger.error(
            "the bounce to \(to) was not accepted either (\(why)); message kept on the server and marked failed",
            metadata: ["uid": "\(uid)"])
        if trackState {
            try self.environment.store.recordDeliveryFailure(
                mailbox: self.account.mailbox, uid: uid, error: reason, countsTowardLimit: true, maxAttempts: 1,
                at: Date())
        }
        return false
    }
}
