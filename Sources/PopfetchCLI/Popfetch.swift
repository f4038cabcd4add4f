public import ArgumentParser
import Configuration
import Daemon
import Foundation
import Logging
import Monitoring
import NIOConcurrencyHelpers
import Retrieval
import SystemSupport
import UIDLStore
import UnixSignals

#if canImport(Glibc)
    import Glibc
#endif

/// The root command.
public struct Popfetch: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "popfetch",
        abstract: "Fetch new mail from POP3 servers and hand it to local delivery, without ever losing a message.",
        version: Popfetch.versionLine,
        subcommands: [
            Poll.self, Daemon.self, Status.self, Check.self, Wake.self, ConfigCommand.self, Retry.self,
            ImportFetchmailrc.self, OAuth.self, MarkSeen.self, FetchAll.self, Forget.self, Serverinfo.self,
        ]
    )

    @OptionGroup var globals: GlobalOptions

    /// What `popfetch --version` prints.
    public static let versionLine = "popfetch \(PopfetchVersion.current)"

    /// The subcommand named in `arguments` (those after the program's name), read without the argument parser:
    /// the first word that is neither an option nor the value of one of the global options that take a value
    /// (`--config`, `--state`, `--log-level`, unless written `--option=value`). For what must happen before the
    /// parser runs (the daemon's signals); an account or file named like a subcommand is not taken for one.
    public static func subcommandName(_ arguments: some Sequence<String>) -> String? {
        let takingValue: Set<String> = ["--config", "--state", "--log-level"]
        var skipNext = false
        for argument in arguments {
            if skipNext {
                skipNext = false
                continue
            }
            if argument.hasPrefix("-") {
                skipNext = takingValue.contains(argument)
                continue
            }
            return argument
        }
        return nil
    }

    public init() {}

    /// Entry point used by `main.swift`: maps every error to a sysexits code, never a crash.
    public static func run(arguments: [String]? = nil) async -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        // A parent that ignores SIGCHLD passes that on through exec, and the kernel then reaps popfetch's children
        // itself: an MDA's exit status could not be read (it is what says whether the message was delivered).
        signal(SIGCHLD, SIG_DFL)
        umask(0o077)
        ResourceLimits.raiseOpenFileLimit()
        do {
            var command = try Self.parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            return 0
        } catch let e as CommandExit {
            return e.status.rawValue
        } catch let e as ConfigurationError {
            Self.printError(e.description)
            for other in e.more { Self.printError(other.description) }
            if !e.more.isEmpty { Self.printError("\(e.more.count + 1) errors") }
            return ExitStatus.config.rawValue
        } catch let e as StateError {
            Self.printError(e.description)
            return e.isBusy ? ExitStatus.tempFail.rawValue : ExitStatus.ioError.rawValue
        } catch let e as LockError {
            Self.printError(e.description)
            return ExitStatus.ioError.rawValue
        } catch let e as ControlSocketError {
            Self.printError(e.description)
            return ExitStatus.ioError.rawValue
        } catch let e as MetricsEndpointError {
            // The address is taken or cannot be bound: EX_UNAVAILABLE, as for a server that cannot be reached.
            Self.printError(e.description)
            return ExitStatus.unavailable.rawValue
        } catch {
            let code = Self.exitCode(for: error)
            if code.rawValue != 0 {
                let message = Self.fullMessage(for: error)
                if !message.isEmpty { writeStderr(message + "\n") }
            } else {
                let message = Self.fullMessage(for: error)
                if !message.isEmpty { print(message) }
            }
            return code.rawValue
        }
    }

    static func printError(_ message: String) {
        writeStderr("popfetch: \(TerminalSafe.escaped(message))\n")
    }
}

/// Ends a command with an exit status (after it printed what it had to say).
struct CommandExit: Error {
    var status: ExitStatus
}

extension GlobalOptions {
    func loadConfiguration() throws -> Configuration {
        try ConfigurationLoader().load(path: self.configPath)
    }

    func openStore() throws -> StateStore {
        try StateStore(path: self.statePath)
    }

    var stateDirectory: String { (self.statePath as NSString).deletingLastPathComponent }
    /// The state database's file name: the daemon's lock and socket are named after it.
    var stateFileName: String { (self.statePath as NSString).lastPathComponent }

    /// For the commands that only look (`check`, `serverinfo`, `poll --dry-run`): the state database and its
    /// directory when the database exists; otherwise an empty one in a temporary directory, removed afterwards, so
    /// that looking before the first poll creates no state (and needs no writable state directory).
    ///
    /// `body` gets whether a stop was asked for. A first SIGINT or SIGTERM asks it (each account's poll then ends as
    /// a stopped poll does: at once before login, with QUIT once a listing under way is in, since Dovecot keeps a
    /// mailbox locked for minutes when a client goes away while it sends a listing). A second one, or SIGHUP, ends
    /// popfetch at once by that signal, the temporary directory removed first. Without `graceful` (nothing is
    /// logged in to, as for `serverinfo`), the first one does.
    func withStoreForLooking<T: Sendable>(
        logger: Logger, graceful: Bool = true,
        _ body: @escaping @Sendable (StateStore, String, @escaping @Sendable () -> Bool) async throws -> T
    ) async throws -> T {
        let signals = await UnixSignalsSequence(trapping: .sigint, .sigterm, .sighup)
        let stop = NIOLockedValueBox(false)
        let store: StateStore
        let directory: String
        var temporary: String?
        if FileManager.default.fileExists(atPath: self.statePath) {
            store = try self.openStore()
            directory = self.stateDirectory
        } else {
            let base = NSTemporaryDirectory()
            var template = Array((base + "/popfetch-look.XXXXXX").utf8CString)
            guard let made = mkdtemp(&template) else {
                let reason = String(cString: strerror(errno))
                throw StateError(path: base, message: "cannot create a temporary directory (no state yet): \(reason)")
            }
            directory = String(cString: made)
            temporary = directory
            do {
                store = try StateStore(path: directory + "/state.sqlite")
            } catch {
                try? FileManager.default.removeItem(atPath: directory)
                throw error
            }
        }
        let made = temporary
        defer { if let made { try? FileManager.default.removeItem(atPath: made) } }
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                for await signal in signals {
                    if graceful && signal != .sighup && !stop.withLockedValue({ $0 }) {
                        stop.withLockedValue { $0 = true }
                        logger.notice("\(signal): stopping once the listing under way is in (again to stop at once)")
                        continue
                    }
                    if let made { try? FileManager.default.removeItem(atPath: made) }
                    Glibc.signal(signal.rawValue, SIG_DFL)
                    Glibc.kill(getpid(), signal.rawValue)
                    Glibc._exit(128 + signal.rawValue)
                }
                return nil
            }
            group.addTask { try await body(store, directory, { stop.withLockedValue { $0 } }) }
            defer { group.cancelAll() }
            while let result = try await group.next() {
                if let result { return result }
            }
            throw CancellationError()
        }
    }
}

/// Writes to file descriptor 2 without going through the C library's shared `stderr` stream.
func writeStderr(_ s: String) {
    var bytes = Array(s.utf8)[...]
    while !bytes.isEmpty {
        let n = bytes.withUnsafeBytes { p -> Int in
            guard let b = p.baseAddress else { return 0 }
            return write(2, b, p.count)
        }
        if n <= 0 { return }
        bytes = bytes.dropFirst(n)
    }
}
