import ArgumentParser
import Configuration
import Foundation
import Logging
import NIOCore
import POP3Core
import Retrieval
import SystemSupport
import UIDLStore

#if canImport(Glibc)
    import Glibc
#endif

extension Popfetch {
    /// `popfetch status`: the last poll of every account, from the state database.
    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "status",
            abstract: "Show the last poll results of every account (works whether or not the daemon runs).",
            discussion: """
                Exit status 0 when no account's last poll is "error" or "partial", 1 otherwise (for monitoring). \
                --json prints {"daemon": {...}, "accounts": [...]} with every documented key present (null when \
                unknown).
                """)

        @OptionGroup var globals: GlobalOptions
        @ParentCommand var root: Popfetch

        @Flag(name: .long, help: "Print JSON instead of a table.")
        var json = false

        @Option(name: .long, help: "Only this account.", completion: .accountNames)
        var account: String?

        @Option(name: .long, help: "Show the last N polls of the account given with --account.")
        var history: Int?

        func validate() throws {
            if self.history != nil && self.account == nil {
                throw ValidationError("--history needs --account NAME")
            }
            if let h = self.history, h < 1 { throw ValidationError("--history must be at least 1") }
        }

        /// A table of several lines, each made safe to print: errors in it may quote a server's text.
        static func safe(_ table: String) -> String {
            table.split(separator: "\n", omittingEmptySubsequences: false).map { TerminalSafe.escaped(String($0)) }
                .joined(separator: "\n")
        }

        func run() async throws {
            let g = self.globals.merged(with: self.root.globals)
            let config = try g.loadConfiguration()
            var accounts = config.accounts
            if let name = self.account {
                accounts = accounts.filter { $0.name == name }
                if accounts.isEmpty {
                    throw ConfigurationError(
                        file: config.path, line: nil, key: nil, message: "no account named \(name.debugDescription)")
                }
            }
            let store = try g.openStore()
            let daemon = LockFile.probe(
                path: LockFile.daemonLockPath(stateDirectory: g.stateDirectory, stateFile: g.stateFileName))
            if let n = self.history, let a = accounts.first {
                let polls = try store.recentPolls(accountName: a.name, limit: n)
                print(
                    self.json ? StatusRenderer.historyJSON(a, polls) : Self.safe(StatusRenderer.historyTable(a, polls)))
                return
            }
            var rows: [(AccountConfiguration, AccountStatusRecord)] = []
            var failures: [String: [MessageRecord]] = [:]
            for a in accounts {
                var record = try store.accountStatus(accountName: a.name, mailbox: a.mailbox)
                if daemon == nil { record.nextPoll = nil }
                if let poll = record.unfinishedPoll {
                    // Still running, unless no process holds the mailbox's lock (the kernel drops it with its
                    // holder, whatever killed it); read again, so that a poll that just ended is not taken for dead.
                    let lock = LockFile.accountLockPath(stateDirectory: g.stateDirectory, stateKey: a.mailbox.rawValue)
                    record.interrupted = try LockFile.probe(path: lock) == nil && store.pollIsRunning(id: poll.id)
                }
                rows.append((a, record))
                if record.failedMessages > 0 { failures[a.name] = try store.failedMessages(mailbox: a.mailbox) }
            }
            if self.json {
                print(StatusRenderer.json(daemon: daemon, rows: rows, failures: failures))
            } else {
                print(Self.safe(StatusRenderer.table(daemon: daemon, rows: rows, now: Date(), failures: failures)))
            }
            // Exit 1 while anything needs attention: a failed, partial or interrupted last poll, a message marked
            // failed, a pause.
            let bad = rows.contains {
                ($0.1.lastPoll.map { $0.outcome == "error" || $0.outcome == "partial" } ?? false)
                    || $0.1.failedMessages > 0 || $0.1.pausedReason != nil || $0.1.interrupted
            }
            if bad { throw ExitCode(1) }
        }
    }

    /// `popfetch check`: log in and report how many new messages wait, without fetching.
    /// `popfetch serverinfo`: `check --capabilities` under mpop's name for it.
    struct Serverinfo: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "serverinfo",
            abstract: "Print what each server announces (CAPA, SASL, EXPIRE, LOGIN-DELAY, TLS), without logging in.")

        @OptionGroup var globals: GlobalOptions
        @ParentCommand var root: Popfetch

        @Option(name: .long, help: "Only this account (repeatable).", completion: .accountNames)
        var account: [String] = []

        func run() async throws {
            let g = self.globals.merged(with: self.root.globals)
            let logger = try g.makeLogger()
            let config = try g.loadConfiguration()
            let selected = try PollRound.select(config, names: self.account, logger: logger)
            let status = try await Check.serverInfo(selected, g: g, logger: logger)
            if status != .ok { throw CommandExit(status: status) }
        }
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check",
            abstract: "Log in to each account and report how many new messages wait, without fetching anything.",
            discussion: "Exit 0 when there is new mail, 1 when there is none, another sysexits code on error.")

        @OptionGroup var globals: GlobalOptions
        @ParentCommand var root: Popfetch

        @Option(name: .long, help: "Check only this account (repeatable).", completion: .accountNames)
        var account: [String] = []

        @Flag(name: .long, help: "Print each server's certificate (names, validity, SHA-256 fingerprint for pinning).")
        var showCertificate = false

        @Flag(
            name: .long,
            help: "Print what each server announces (CAPA, SASL, EXPIRE, LOGIN-DELAY, TLS), without logging in.")
        var capabilities = false

        func run() async throws {
            let g = self.globals.merged(with: self.root.globals)
            let logger = try g.makeLogger()
            let config = try g.loadConfiguration()
            let selected = try PollRound.select(config, names: self.account, logger: logger)
            if self.capabilities {
                let status = try await Self.serverInfo(selected, g: g, logger: logger)
                if status != .ok { throw CommandExit(status: status) }
                return
            }
            if self.showCertificate {
                for a in selected where a.server.tls != .none {
                    do {
                        let c = try await ServerCertificate.fetch(for: a)
                        print("\(a.name): \(a.server.host):\(a.server.port)")
                        print("  names        \(c.names.joined(separator: ", "))")
                        print("  valid        \(Self.day(c.notValidBefore)) to \(Self.day(c.notValidAfter))")
                        print("  fingerprint  \(c.fingerprint)")
                        print("  pin it with  fingerprint = \"\(c.fingerprint)\"")
                    } catch {
                        print("\(a.name): cannot get the certificate: \(error)")
                    }
                }
            }
            let (total, statuses) = try await g.withStoreForLooking(logger: logger) {
                store, directory, stopRequested in
                var total = 0
                var statuses: [ExitStatus] = []
                let env = PollEnvironment(
                    store: store, stateDirectory: directory, logger: logger, stopRequested: stopRequested)
                for a in selected {
                    let r = await AccountPoller(account: a, environment: env, checkOnly: true).poll()
                    if let e = r.error {
                        print("\(a.name): error: \(TerminalSafe.escaped(e.message))")
                        statuses.append(e.exitCode)
                    } else {
                        print("\(a.name): \(r.new) new message\(r.new == 1 ? "" : "s") (\(r.listed) on the server)")
                        total += r.new
                    }
                    switch await AccountPoller(account: a, environment: env, checkOnly: true).probeIMAPDelivery() {
                    case .success(let text)?: print("  delivers to " + TerminalSafe.escaped(text))
                    case .failure(let e)?:
                        print("  delivers to \(a.delivery.method.keyName): error: \(TerminalSafe.escaped(e.message))")
                        statuses.append(e.exitCode)
                    case nil: break
                    }
                }
                return (total, statuses)
            }
            let worst = ExitStatus.mostSerious(statuses)
            if worst != .ok { throw CommandExit(status: worst) }
            if total == 0 { throw ExitCode(1) }
        }

        /// `check --capabilities` / `serverinfo`: each account's server, as it announces itself before login.
        static func serverInfo(_ accounts: [AccountConfiguration], g: GlobalOptions, logger: Logger)
            async throws -> ExitStatus
        {
            // No state is read or written; none is created.
            let statuses = try await g.withStoreForLooking(logger: logger, graceful: false) { store, directory, _ in
                var statuses: [ExitStatus] = []
                let env = PollEnvironment(store: store, stateDirectory: directory, logger: logger)
                for a in accounts {
                    print("\(a.name): \(a.server.host):\(a.server.port) (tls \(a.server.tls.rawValue))")
                    do {
                        let info = try await AccountPoller(account: a, environment: env, checkOnly: true).serverInfo()
                        for line in info.lines { print("  " + TerminalSafe.escaped(line)) }
                    } catch {
                        let e = AccountPoller.classify(error)
                        print("  error: \(TerminalSafe.escaped(e.message))")
                        statuses.append(e.exitCode)
                    }
                }
                return statuses
            }
            return ExitStatus.mostSerious(statuses)
        }

        static func day(_ d: Date) -> String {
            let f = DateFormatter()
            f.locale = Locale(identifier: "en_US_POSIX")
            f.timeZone = TimeZone(identifier: "UTC")
            f.dateFormat = "yyyy-MM-dd HH:mm:ss 'UTC'"
            return f.string(from: d)
        }
    }
}

enum StatusRenderer {
    static func outcome(_ r: AccountStatusRecord) -> String {
        if r.pausedReason != nil { return "paused" }
        if r.interrupted { return "aborted" }
        guard let p = r.lastPoll else { return "never" }
        switch p.outcome {
        case "ok", "partial", "error": return p.outcome
        default: return "error"
        }
    }

    static func json(
        daemon: LockFile.Holder?, rows: [(AccountConfiguration, AccountStatusRecord)],
        failures: [String: [MessageRecord]] = [:]
    ) -> String {
        let d: JSONValue = .object([
            ("running", .bool(daemon != nil)),
            ("pid", .optional(daemon?.pid.map(Int.init))),
            ("started", .optional(daemon?.started)),
        ])
        let accounts: [JSONValue] = rows.map { a, r in
            .object([
                ("account", .string(a.name)),
                ("last_poll_started", .optional(Self.shownPoll(r)?.started)),
                ("last_poll_finished", .optional(Self.shownPoll(r)?.finished)),
                ("outcome", .string(Self.outcome(r))),
                ("error", .optional(Self.error(r))),
                ("delivered_last_poll", .optional(r.interrupted ? nil : r.lastPoll?.delivered)),
                ("bytes_last_poll", .optional(r.interrupted ? nil : r.lastPoll?.bytes)),
                ("pending", .optional(r.interrupted ? nil : r.lastPoll?.pending)),
                ("failed", .int(r.failedMessages)),
                (
                    "failed_messages",
                    .array(
                        (failures[a.name] ?? []).prefix(20).map { m in
                            .object([("uidl", .string(m.uid)), ("error", .optional(m.lastError))])
                        })
                ),
                ("paused", .optional(r.pausedReason)),
                ("delivered_total", .int(r.deliveredTotal)),
                ("consecutive_failures", .int(r.consecutiveFailures)),
                ("next_poll", .optional(r.nextPoll)),
            ])
        }
        return JSONValue.object([("daemon", d), ("accounts", .array(accounts))]).render()
    }

    /// The poll a summary shows: the last one that finished, or one whose process died after it.
    static func shownPoll(_ r: AccountStatusRecord) -> PollRecord? {
        r.interrupted ? r.unfinishedPoll : r.lastPoll
    }

    /// What went wrong in the poll shown.
    static func error(_ r: AccountStatusRecord) -> String? {
        if r.interrupted {
            return "the poll started \(r.unfinishedPoll.map { ISO8601.format($0.started) } ?? "last") never finished: "
                + "popfetch was killed or crashed during it, or could not write its end to the state database (the "
                + "next poll fetches again what it had not committed)"
        }
        return r.lastPoll?.error
    }

    static func relative(_ date: Date, now: Date) -> String {
        let s = Int(now.timeIntervalSince(date).rounded())
        let future = s < 0
        let a = abs(s)
        let text: String
        if a < 60 {
            text = "\(a) s"
        } else if a < 3600 {
            text = "\(a / 60) min"
        } else if a < 86400 {
            text = "\(a / 3600) h"
        } else {
            text = "\(a / 86400) d"
        }
        return future ? "in \(text)" : "\(text) ago"
    }

    static func bytes(_ n: Int) -> String {
        if n < 1024 { return "\(n) B" }
        if n < 1024 * 1024 { return "\(n / 1024) KB" }
        if n < 1024 * 1024 * 1024 { return String(format: "%.1f MB", Double(n) / 1_048_576) }
        return String(format: "%.1f GB", Double(n) / 1_073_741_824)
    }

    static func pad(_ s: String, _ width: Int) -> String {
        let t = s.count > width ? String(s.prefix(width - 1)) + "…" : s
        return t + String(repeating: " ", count: max(0, width - t.count))
    }

    /// An aligned table that fits 80 columns.
    static func table(
        daemon: LockFile.Holder?, rows: [(AccountConfiguration, AccountStatusRecord)], now: Date,
        failures: [String: [MessageRecord]] = [:]
    ) -> String {
        var lines: [String] = []
        if let daemon {
            let since = daemon.started.map { ", started " + Self.relative($0, now: now) } ?? ""
            lines.append("daemon: running (pid \(daemon.pid.map(String.init) ?? "?")\(since))")
        } else {
            lines.append("daemon: not running")
        }
        lines.append(
            Self.pad("ACCOUNT", 14) + Self.pad("LAST POLL", 12) + Self.pad("OUTCOME", 9) + Self.pad("DELIV", 7)
                + Self.pad("BYTES", 9) + Self.pad("PEND", 6) + Self.pad("FAIL", 6) + Self.pad("TOTAL", 7) + "NEXT")
        var errors: [String] = []
        for (a, r) in rows {
            let last = Self.shownPoll(r)
            // A poll that never finished recorded no counts.
            let counts = r.interrupted ? nil : last
            let when = last.map { Self.relative($0.started, now: now) } ?? "never"
            let next = r.nextPoll.map { Self.relative($0, now: now) } ?? "-"
            lines.append(
                Self.pad(a.name + (a.enabled ? "" : "*"), 14) + Self.pad(when, 12) + Self.pad(Self.outcome(r), 9)
                    + Self.pad(counts.map { String($0.delivered) } ?? "-", 7)
                    + Self.pad(counts.map { Self.bytes($0.bytes) } ?? "-", 9)
                    + Self.pad(counts.map { String($0.pending) } ?? "-", 6) + Self.pad(String(r.failedMessages), 6)
                    + Self.pad(String(r.deliveredTotal), 7) + next)
            if let e = Self.error(r) {
                let streak =
                    r.consecutiveFailures > 1 && !r.interrupted ? " (\(r.consecutiveFailures) failures in a row)" : ""
                errors.append("\(a.name): \(e)\(streak)")
            }
            if let why = r.pausedReason {
                errors.append("\(a.name): paused: \(why)")
            }
            if let failed = failures[a.name], !failed.isEmpty {
                let n = failed.count
                let why = failed.last?.lastError.map { "; the latest: \($0)" } ?? ""
                errors.append(
                    "\(a.name): \(n) message\(n == 1 ? "" : "s") marked failed, kept on the server until "
                        + "`popfetch retry --account \(a.name)`\(why)")
            }
        }
        if rows.contains(where: { !$0.0.enabled }) { lines.append("* disabled") }
        if !errors.isEmpty {
            lines.append("")
            // Escaped before it is wrapped: a line break inside an error (an MDA's stderr) would start a line of
            // its own, as if popfetch had printed it.
            for e in errors { lines.append(contentsOf: Self.wrap(TerminalSafe.escaped(e), width: 80, indent: "    ")) }
        }
        return lines.joined(separator: "\n")
    }

    /// Breaks a long line at spaces so that no line exceeds `width`; continuation lines are indented.
    static func wrap(_ text: String, width: Int, indent: String) -> [String] {
        var lines: [String] = []
        var current = ""
        for word in text.split(separator: " ", omittingEmptySubsequences: false) {
            let prefix = lines.isEmpty ? "" : indent
            if !current.isEmpty && prefix.count + current.count + 1 + word.count > width {
                lines.append(prefix + current)
                current = String(word)
            } else {
                current = current.isEmpty ? String(word) : current + " " + word
            }
        }
        if !current.isEmpty || lines.isEmpty { lines.append((lines.isEmpty ? "" : indent) + current) }
        // A single word longer than the width is cut rather than overflowing.
        return lines.map { $0.count > width ? String($0.prefix(width - 1)) + "…" : $0 }
    }

    static func historyTable(_ a: AccountConfiguration, _ polls: [PollRecord]) -> String {
        var lines = ["\(a.name) (\(a.stateKey)): last \(polls.count) poll\(polls.count == 1 ? "" : "s")"]
        lines.append(
            Self.pad("STARTED", 22) + Self.pad("TOOK", 8) + Self.pad("OUTCOME", 9) + Self.pad("NEW", 6)
                + Self.pad("DELIV", 7) + Self.pad("BYTES", 10) + "ERROR")
        for p in polls {
            let took = p.finished.map { String(format: "%.2fs", $0.timeIntervalSince(p.started)) } ?? "-"
            lines.append(
                Self.pad(ISO8601.format(p.started), 22) + Self.pad(took, 8) + Self.pad(p.outcome, 9)
                    + Self.pad(String(p.new), 6) + Self.pad(String(p.delivered), 7) + Self.pad(Self.bytes(p.bytes), 10)
                    + TerminalSafe.escaped(p.error ?? ""))
        }
        return lines.joined(separator: "\n")
    }

    static func historyJSON(_ a: AccountConfiguration, _ polls: [PollRecord]) -> String {
        JSONValue.object([
            ("account", .string(a.name)),
            (
                "polls",
                .array(
                    polls.map { p in
                        .object([
                            ("started", .optional(p.started)), ("finished", .optional(p.finished)),
                            ("outcome", .string(p.outcome)), ("listed", .int(p.listed)), ("new", .int(p.new)),
                            ("delivered", .int(p.delivered)), ("bytes", .int(p.bytes)), ("deleted", .int(p.deleted)),
                            ("deferred", .int(p.deferred)), ("failed", .int(p.failed)), ("skipped", .int(p.skipped)),
                            ("pending", .int(p.pending)), ("error", .optional(p.error)),
                        ])
                    })
            ),
        ]).render()
    }
}
