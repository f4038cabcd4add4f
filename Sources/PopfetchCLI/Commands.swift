import ArgumentParser
import Configuration
import Foundation
import Logging
import NIOConcurrencyHelpers
import OAuth
import Retrieval
import SystemSupport
import UIDLStore
import UnixSignals

#if canImport(Glibc)
    import Glibc
#endif

extension Popfetch {
    /// `popfetch poll`: poll every enabled account once (concurrently), then exit.
    struct Poll: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "poll",
            abstract: "Poll every enabled account (or those named) once, then exit.",
            discussion: """
                Exit status: 0 when every account succeeded (no new mail is success); otherwise the most serious \
                of 78 config, 70 internal, 74 state/spool I/O, 77 authentication, 76 protocol/TLS, 68 unknown host, \
                69 connection refused or time-out, 75 temporary (IN-USE, LOGIN-DELAY, SYS/TEMP) or any message not \
                delivered in this poll (deferred, failed, refused by the server, short of its LIST size), or an \
                account paused by flood protection.
                """)

        @OptionGroup var globals: GlobalOptions
        @ParentCommand var root: Popfetch

        @Option(
            name: .long, help: "Poll only this account (repeatable). A disabled account named here is polled.",
            completion: .accountNames)
        var account: [String] = []

        @Flag(
            name: [.customShort("k"), .long],
            help: ArgumentHelp(
                "Leave every message on the server this time, whatever keep, delete_after, oversize and "
                    + "on_permanent_failure say."))
        var keep = false

        @Flag(
            name: [.customShort("n"), .long],
            help: "Log in and list, then say what would be fetched, delivered and deleted; change nothing.")
        var dryRun = false

        func run() async throws {
            let g = self.globals.merged(with: self.root.globals)
            let logger = try g.makeLogger()
            let config = try g.loadConfiguration()
            let named = try PollRound.select(config, names: self.account, logger: logger)
            let selected = self.keep ? named.map(Self.keepingEverything) : named
            if selected.isEmpty {
                logger.notice("no enabled accounts in \(config.path)")
                return
            }
            if self.dryRun {
                let status = try await g.withStoreForLooking(logger: logger) { store, directory, stopRequested in
                    let env = PollEnvironment(
                        store: store, stateDirectory: directory, logger: logger, stopRequested: stopRequested)
                    return await Self.dryRun(selected, environment: env)
                }
                if status != .ok { throw CommandExit(status: status) }
                return
            }
            let store = try g.openStore()
            let stop = NIOLockedValueBox(false)
            let env = PollEnvironment(
                store: store, stateDirectory: g.stateDirectory, logger: logger,
                stopRequested: { stop.withLockedValue { $0 } })
            // Trapped before any poll starts: a signal that came between the two would end popfetch at once.
            let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
            let reports = await withTaskGroup(of: [PollReport]?.self) { group in
                group.addTask { await Self.stopOnSignal(signals, stop, logger: logger) }
                group.addTask {
                    await PollRound.poll(selected, environment: env, limit: config.global.maxConcurrentPolls)
                }
                var reports: [PollReport] = []
                for await result in group {
                    guard let result else { continue }
                    reports = result
                    group.cancelAll()
                }
                return reports
            }
            MetricsWiring.writeAfterPoll(config, polled: selected, reports: reports, store: store, logger: logger)
            // A stop that left messages is in each report (`stopped`, or a temporary error): exit 75.
            let status = ExitStatus.mostSerious(reports.map(\.exitStatus))
            if status != .ok { throw CommandExit(status: status) }
        }

        /// `account` with nothing deleted on its server: `poll --keep` (fetchmail's `-k`).
        static func keepingEverything(_ account: AccountConfiguration) -> AccountConfiguration {
            var a = account
            a.retention.keep = true
            a.retention.deleteAfter = nil
            if a.retention.oversize == .delete { a.retention.oversize = .skip }
            // A message the MTA rejects permanently is kept (marked failed, as on_permanent_failure = "keep"):
            // "delete" and "bounce" would DELE it, and --keep deletes nothing.
            a.delivery.onPermanentFailure = .keep
            return a
        }

        /// `poll --dry-run`: each account's login and listing, and what a poll would do with it, printed; nothing
        /// fetched, delivered, deleted or recorded. Returns the most serious status of the accounts.
        static func dryRun(_ accounts: [AccountConfiguration], environment: PollEnvironment) async -> ExitStatus {
            var statuses: [ExitStatus] = []
            for a in accounts {
                let r = await AccountPoller(account: a, environment: environment, checkOnly: true).poll()
                if let e = r.error {
                    print("\(a.name): error: \(TerminalSafe.escaped(e.message))")
                    statuses.append(e.exitCode)
                    continue
                }
                print("\(a.name): \(r.listed) on the server, \(r.new) new")
                if let why = r.paused {
                    print("  would pause the account instead of fetching: \(why)")
                    continue
                }
                for line in (r.preview ?? PlanPreview()).lines(delivery: Self.destination(a)) { print("  " + line) }
            }
            print("dry run: nothing was fetched, delivered, deleted or recorded")
            return ExitStatus.mostSerious(statuses)
        }

        /// Where `account`'s messages go, in a few words.
        static func destination(_ account: AccountConfiguration) -> String {
            switch account.delivery.method {
            case .mda(let mda): return "the MDA " + mda.arguments.map { $0.debugDescription }.joined(separator: " ")
            case .maildir(let path): return "the Maildir \(path)"
            case .smtp(let t): return "SMTP \(t)"
            case .lmtp(let t): return "LMTP \(t)"
            case .imap(let d): return "IMAP \(d)"
            }
        }

        /// SIGTERM or SIGINT (systemd stopping a timer's unit, Ctrl-C): each poll finishes the message in hand
        /// (delivered and committed, or not delivered at all), sends its DELEs and QUIT, and stops, so a stop costs
        /// no duplicate. A second signal ends popfetch at once (at most one duplicate per account, as with kill -9).
        /// Returns nil when the task is cancelled (the polls are over).
        static func stopOnSignal(
            _ signals: UnixSignalsSequence, _ stop: NIOLockedValueBox<Bool>, logger: Logger
        ) async -> [PollReport]? {
            for await signal in signals {
                if stop.withLockedValue({ $0 }) {
                    logger.warning("\(signal) again: stopping now")
                    Glibc._exit(ExitStatus.tempFail.rawValue)
                }
                stop.withLockedValue { $0 = true }
                logger.notice("\(signal): finishing the message in hand, then stopping (again to stop at once)")
            }
            return nil
        }
    }

    /// `popfetch config check`.
    struct ConfigCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "config", abstract: "Work with the configuration file.", subcommands: [Validate.self])

        struct Validate: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "check",
                abstract: "Validate the configuration and print what popfetch understood (secrets hidden).")

            @OptionGroup var globals: GlobalOptions
            @ParentCommand var parent: ConfigCommand

            func run() async throws {
                let g = self.globals.merged(with: self.parent.globals)
                let config = try g.loadConfiguration()
                // What a poll would refuse or fail on at run time, said now.
                let environment = ProcessInfo.processInfo.environment
                let problems =
                    Preflight.globalProblems(config)
                    + config.accounts.flatMap { Preflight.problems($0, environment: environment) }
                print(ConfigurationSummary.render(config, statePath: g.statePath, problems: problems.count))
                if config.accounts.isEmpty {
                    writeStderr("popfetch: warning: \(config.path) has no [[account]]: there is nothing to poll\n")
                }
                if let address = config.global.metricsListen, !address.isLoopback {
                    writeStderr(
                        "popfetch: warning: metrics_listen \(address) is not a loopback address: anyone who can reach "
                            + "it reads account names and poll results\n")
                }
                for p in problems {
                    let line = p.account.isEmpty ? nil : config.accounts.first { $0.name == p.account }?.line
                    writeStderr("popfetch: \(config.path)\(line.map { ":\($0)" } ?? ""): \(p)\n")
                }
                if !problems.isEmpty { throw CommandExit(status: .config) }
            }
        }

        @OptionGroup var globals: GlobalOptions
        @ParentCommand var root: Popfetch
    }

    /// `popfetch oauth login|set-refresh-token --account NAME`.
    struct OAuth: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "oauth", abstract: "Obtain and store OAuth2 tokens for an account.",
            subcommands: [Login.self, SetRefreshToken.self])

        @OptionGroup var globals: GlobalOptions
        @ParentCommand var root: Popfetch

        static func tokens(_ g: GlobalOptions, _ name: String, imap: Bool = false) throws -> OAuthTokenSource {
            let config = try g.loadConfiguration()
            let a = try config.account(named: name)
            if imap {
                guard let s = a.delivery.imap.oauth, let key = a.imapTokenKey else {
                    throw ConfigurationError(
                        file: config.path, line: a.line, key: "imap_oauth_token_url",
                        message: "account \(name) has no IMAP delivery with imap_oauth_token_url / imap_oauth_client_id"
                    )
                }
                return OAuthTokenSource(
                    settings: s, store: try g.openStore(), accountName: a.name, mailbox: MailboxID(key))
            }
            guard let s = a.authentication.oauth else {
                throw ConfigurationError(
                    file: config.path, line: a.line, key: "oauth_token_url",
                    message: "account \(name) has no oauth_token_url / oauth_client_id")
            }
            return OAuthTokenSource(settings: s, store: try g.openStore(), accountName: a.name, mailbox: a.mailbox)
        }

        /// RFC 8628 device flow: shows a code to enter in a browser, waits, stores the refresh token.
        struct Login: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "login",
                abstract: "Authorize popfetch for an account (OAuth2 device flow) and store its refresh token.")
            @OptionGroup var globals: GlobalOptions
            @ParentCommand var parent: OAuth
            @Option(name: .long, help: "The account.", completion: .accountNames) var account: String
            @Flag(name: .long, help: "The IMAP identity the account delivers to (imap_oauth_*), not its POP3 login.")
            var imap = false

            func run() async throws {
                let g = self.globals.merged(with: self.parent.globals.merged(with: self.parent.root.globals))
                let tokens = try OAuth.tokens(g, self.account, imap: self.imap)
                let name = tokens.accountName
                do {
                    try await tokens.login { uri, code in
                        print("To authorize popfetch for \(name), open \(uri) and enter the code \(code)")
                    }
                    print("\(name): authorized; the refresh token is stored in \(g.statePath)")
                } catch let e as OAuth2.OAuthError {
                    writeStderr("popfetch: \(name): \(e.message)\n")
                    throw CommandExit(status: .authFailed)
                }
            }
        }

        /// For refresh tokens obtained elsewhere: read one line from standard input.
        struct SetRefreshToken: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "set-refresh-token",
                abstract: "Store a refresh token (read from standard input) for an account.")
            @OptionGroup var globals: GlobalOptions
            @ParentCommand var parent: OAuth
            @Option(name: .long, help: "The account.", completion: .accountNames) var account: String
            @Flag(name: .long, help: "The IMAP identity the account delivers to (imap_oauth_*), not its POP3 login.")
            var imap = false

            func run() async throws {
                let g = self.globals.merged(with: self.parent.globals.merged(with: self.parent.root.globals))
                let tokens = try OAuth.tokens(g, self.account, imap: self.imap)
                guard let line = readLine(strippingNewline: true), !line.isEmpty else {
                    throw ValidationError("no refresh token on standard input")
                }
                try tokens.storeRefreshToken(line)
                print("\(tokens.accountName): refresh token stored")
            }
        }
    }

    /// `popfetch import-fetchmailrc [FILE]`: print an equivalent popfetch config.
    struct ImportFetchmailrc: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "import-fetchmailrc",
            abstract: "Read a .fetchmailrc and print an equivalent popfetch TOML configuration.",
            discussion: """
                Options without an equivalent become comments. Default file: ~/.fetchmailrc. With -o the \
                configuration is written to a new file, readable by its owner only (it may hold passwords).
                """)

        @Argument(help: "The .fetchmailrc to read.")
        var file: String?

        @Option(name: [.customShort("o"), .long], help: "Write the configuration to this new file (mode 0600).")
        var output: String?

        func run() async throws {
            let path = Paths.expandTilde(self.file ?? "~/.fetchmailrc")
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ConfigurationError(file: path, line: nil, key: nil, message: "cannot read the file")
            }
            let toml: String
            do {
                toml = try FetchmailrcImporter.convert(
                    String(decoding: data, as: UTF8.self), source: path,
                    workingDirectory: FileManager.default.currentDirectoryPath)
            } catch let e as FetchmailrcImporter.ParseError {
                throw ConfigurationError(file: path, line: e.line, key: nil, message: e.message)
            }
            guard let output = self.output.map(Paths.expandTilde) else {
                print(toml, terminator: "")
                return
            }
            // Created, never replaced: an existing config is not overwritten, and the file is 0600 from the start.
            var fd = open(output, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            if fd < 0 && errno == ENOENT {
                // `-o ~/.config/popfetch/config.toml` on a fresh account: its directory is made (0700), as
                // popfetch makes its state directory.
                let directory = (output as NSString).deletingLastPathComponent
                if !directory.isEmpty,
                    (try? FileManager.default.createDirectory(
                        atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700]))
                        != nil
                {
                    fd = open(output, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
                }
            }
            guard fd >= 0 else {
                let why = errno == EEXIST ? "it exists already" : String(cString: strerror(errno))
                throw ConfigurationError(file: output, line: nil, key: nil, message: "cannot create: \(why)")
            }
            defer { close(fd) }
            var bytes = Array(toml.utf8)[...]
            while !bytes.isEmpty {
                let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                guard n > 0 else {
                    throw ConfigurationError(
                        file: output, line: nil, key: nil, message: "cannot write: \(String(cString: strerror(errno)))")
                }
                bytes = bytes.dropFirst(n)
            }
            guard fsync(fd) == 0 else {
                throw ConfigurationError(
                    file: output, line: nil, key: nil, message: "cannot write: \(String(cString: strerror(errno)))")
            }
            writeStderr(
                "popfetch: wrote \(output) (mode 0600); check it with `popfetch --config \(output) config check`\n")
        }
    }
}
