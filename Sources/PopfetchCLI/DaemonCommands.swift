import ArgumentParser
import Configuration
import Daemon
import Logging
import Retrieval
import ServiceLifecycle
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

extension Popfetch {
    /// `popfetch daemon`: the long-running service (foreground, for systemd and terminals).
    struct Daemon: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "daemon",
            abstract: "Run in the foreground, polling every enabled account on its interval.",
            discussion: """
                SIGTERM/SIGINT: stop starting polls, let polls in flight finish within shutdown_grace, exit 0. \
                SIGHUP: re-read the configuration (an invalid one is logged and the running one kept). \
                SIGUSR1 or `popfetch wake`: poll now. One daemon per state database.
                """)

        @OptionGroup var globals: GlobalOptions
        @ParentCommand var root: Popfetch

        func run() async throws {
            let g = self.globals.merged(with: self.root.globals)
            let logger = try g.makeLogger()
            let loader = ConfigurationLoader()
            let config = try loader.load(path: g.configPath)
            let lock = try Self.takeDaemonLock(g)
            defer { lock.release() }
            let store = try g.openStore()
            if geteuid() == 0 {
                logger.warning("running as root: MDAs run as root too")
            }
            let monitoring = try await MetricsWiring.daemonServices(config, store: store, logger: logger)
            let scheduler = PollScheduler(
                configuration: config, loader: loader, store: store, stateDirectory: g.stateDirectory, logger: logger,
                observer: monitoring.observer, reloaded: monitoring.reloaded)
            let control = try await ControlSocket.bind(
                stateDirectory: g.stateDirectory, stateFile: g.stateFileName, logger: logger
            ) {
                scheduler.handle($0)
            }
            let group = ServiceGroup(
                configuration: DaemonGroup.configuration(
                    scheduler: scheduler, control: control, monitoring: monitoring.services, logger: logger))
            try await group.run()
            if scheduler.stoppedBecause != nil { throw CommandExit(status: .ioError) }
        }

        /// One daemon per state database: a second one is refused (EX_TEMPFAIL), saying which process runs.
        private static func takeDaemonLock(_ g: GlobalOptions) throws -> LockFile {
            switch try LockFile.tryAcquire(
                path: LockFile.daemonLockPath(stateDirectory: g.stateDirectory, stateFile: g.stateFileName))
            {
            case .acquired(let lock):
                return lock
            case .heldBy(let holder):
                let pid = holder.pid.map { " (pid \($0))" } ?? ""
                writeStderr(
                    "popfetch: another popfetch daemon\(pid) is already running for \(g.statePath); "
                        + "use `popfetch wake` to make it poll now\n")
                throw CommandExit(status: .tempFail)
            }
        }
    }

    /// `popfetch wake [--account NAME]`: ask the running daemon to poll now.
    struct Wake: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "wake", abstract: "Ask the running daemon to poll now.")

        @OptionGroup var globals: GlobalOptions
        @ParentCommand var root: Popfetch

        @Option(name: .long, help: "Only this account.", completion: .accountNames)
        var account: String?

        func run() async throws {
            let g = self.globals.merged(with: self.root.globals)
            let reply: ControlReply
            do {
                reply = try await ControlClient.send(
                    .wake(account: self.account), stateDirectory: g.stateDirectory, stateFile: g.stateFileName)
            } catch {
                switch error.code {
                case .notRunning:
                    Popfetch.printError("no daemon is running for \(g.statePath) (start one with `popfetch daemon`)")
                    throw CommandExit(status: .unavailable)
                case .badRequest:
                    Popfetch.printError(error.message)
                    throw CommandExit(status: .config)
                default:
                    Popfetch.printError(error.message)
                    throw CommandExit(status: .unavailable)
                }
            }
            switch reply {
            case .ok:
                print(self.account.map { "woke \($0)" } ?? "woke every account")
            case .unknownAccount, .disabledAccount:
                Popfetch.printError(reply.description)
                throw CommandExit(status: .config)
            case .shuttingDown:
                Popfetch.printError(reply.description)
                throw CommandExit(status: .unavailable)
            case .badRequest, .failed:
                Popfetch.printError(reply.description)
                throw CommandExit(status: .protocolError)
            }
        }
    }
}
