#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals
import Configuration
import Daemon
import SystemSupport
import Retrieval

extension Popfetch {
    /// `popfetch daemon`: the long-running service (foreground, for systemd and terminals).
    struct Daemon: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
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
            let lock: LockFile
            switch try LockFile.tryAcquire(path: LockFile.daemonLockPath(stateDirectory: g.stateDirectory)) {
            case .acquired(let l):
                lock = l
            case .heldBy(let holder):
                let pid = holder.pid.map { " (pid \($0))" } ?? ""
                writeStderr(
                    "popfetch: another popfetch daemon\(pid) is already running for \(g.statePath); "
                        + "use `popfetch wake` to make it poll now\n")
                throw CommandExit(status: .tempFail)
            }
            defer { lock.release() }
            let store = try g.openStore()
            let scheduler = PollScheduler(
                configuration: config, loader: loader, store: store, stateDirectory: g.stateDirectory, logger: logger)
            let control = try ControlSocket(stateDirectory: g.stateDirectory) { line in
                let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
                guard parts.first == "wake" else { return "error unknown request" }
                let name = parts.count > 1 ? parts[1] : nil
                return scheduler.wake(name) ? "ok" : "error unknown account \(name ?? "")"
            }
            defer { control.close() }
            if geteuid() == 0 {
                logger.warning("running as root: MDAs run as root too")
            }
            let group = ServiceGroup(
                services: [scheduler], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
            try await group.run()
        }
    }

    /// `popfetch wake [--account NAME]`: ask the running daemon to poll now.
    struct Wake: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Ask the running daemon to poll now.")

        @OptionGroup var globals: GlobalOptions
        @ParentCommand var root: Popfetch

        @Option(name: .long, help: "Only this account.")
        var account: String?

        func run() async throws {
            let g = self.globals.merged(with: self.root.globals)
            let request = self.account.map { "wake \($0)" } ?? "wake"
            guard let reply = ControlSocket.request(stateDirectory: g.stateDirectory, request) else {
                writeStderr("popfetch: no daemon is running for \(g.statePath) (start one with `popfetch daemon`)\n")
                throw CommandExit(status: .unavailable)
            }
            if reply == "ok" {
                print(self.account.map { "woke \($0)" } ?? "woke every account")
            } else {
                writeStderr("popfetch: \(reply)\n")
                throw CommandExit(status: .config)
            }
        }
    }
}
