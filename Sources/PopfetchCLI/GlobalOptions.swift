public import ArgumentParser
import Configuration
import Foundation
import Logging
import SystemSupport

/// Options accepted before or after any subcommand.
public struct GlobalOptions: ParsableArguments {
    @Option(
        name: .long, help: "Configuration file (default: $XDG_CONFIG_HOME/popfetch/config.toml).",
        completion: .file(extensions: ["toml"]))
    var config: String?

    @Option(
        name: .long, help: "State database (default: $XDG_STATE_HOME/popfetch/state.sqlite).", completion: .file())
    var state: String?

    @Flag(name: [.short, .long], help: "Log more (debug level).")
    var verbose = false

    @Flag(name: [.short, .long], help: "Log only errors.")
    var quiet = false

    @Option(
        name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.",
        completion: .list(["trace", "debug", "info", "notice", "warning", "error", "critical"]))
    var logLevel: String?

    @Flag(name: .long, help: "Log to the system log (facility mail) instead of stderr.")
    var syslog = false

    public init() {}

    /// Merges the options given before the subcommand (`parent`) with those given after it (`self`).
    func merged(with parent: GlobalOptions?) -> GlobalOptions {
        guard let parent else { return self }
        var m = self
        m.config = self.config ?? parent.config
        m.state = self.state ?? parent.state
        m.verbose = self.verbose || parent.verbose
        m.quiet = self.quiet || parent.quiet
        m.logLevel = self.logLevel ?? parent.logLevel
        m.syslog = self.syslog || parent.syslog
        return m
    }

    var configPath: String { self.config.map(Paths.expandTilde) ?? Paths.defaultConfigFile() }
    /// The state database, its symbolic links resolved (``Paths/canonical(_:)``).
    var statePath: String { Paths.canonical(self.state.map(Paths.expandTilde) ?? Paths.defaultStateFile()) }

    func level() throws -> Logger.Level {
        if let raw = self.logLevel {
            guard let l = Logger.Level(rawValue: raw.lowercased()) else {
                throw ValidationError("unknown log level \(raw.debugDescription)")
            }
            return l
        }
        if self.verbose { return .debug }
        if self.quiet { return .error }
        return .info
    }

    func makeLogger() throws -> Logger {
        var logger: Logger
        if self.syslog {
            let path = ProcessInfo.processInfo.environment["POPFETCH_SYSLOG_SOCKET"] ?? "/dev/log"
            let socket = SyslogSocket(path: path)
            logger = Logger(label: "popfetch") { label in SyslogLogHandler(label: label, socket: socket) }
        } else {
            logger = Logger(label: "popfetch") { label in StderrLogHandler(label: label) }
        }
        logger.logLevel = try self.level()
        return logger
    }
}

extension CompletionKind {
    /// The account names of the configuration the command line names (`--config`), else of the default one.
    static var accountNames: CompletionKind {
        .custom { words, _, prefix in
            var path = Paths.defaultConfigFile()
            if let i = words.firstIndex(of: "--config"), i + 1 < words.count { path = Paths.expandTilde(words[i + 1]) }
            guard let config = try? ConfigurationLoader(checkPermissions: false).load(path: path) else { return [] }
            return config.accounts.map(\.name).filter { $0.hasPrefix(prefix) }
        }
    }
}
