import ArgumentParser
import Configuration
import Foundation
import Retrieval
import SystemSupport
import UIDLStore

#if canImport(Glibc)
    import Glibc
#endif

// The commands that answer for the state: retry, the flood-protection decisions, forget.
extension Popfetch {
    /// `popfetch retry --account NAME`: failed messages are tried again at the next poll.
    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "retry",
            abstract: "Bring back messages marked failed after max_attempts, so the next poll tries them again.")

        @OptionGroup var globals: GlobalOptions
        @ParentCommand var root: Popfetch

        @Option(name: .long, help: "The account whose failed messages to retry.", completion: .accountNames)
        var account: String

        func run() async throws {
            let g = self.globals.merged(with: self.root.globals)
            let a = try g.loadConfiguration().account(named: self.account)
            let store = try g.openStore()
            let n = try store.retryFailed(mailbox: a.mailbox)
            print("\(a.name): \(n) failed message\(n == 1 ? "" : "s") will be tried again at the next poll")
        }
    }
}

extension Popfetch {
    /// `popfetch mark-seen --account NAME`: the answer to a flood-protection pause that records what is there.
    struct MarkSeen: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "mark-seen",
            abstract: "Answer a paused account: record every message now on its server as seen, without delivering.",
            discussion: """
                Flood protection pauses an account with keep = true when popfetch has no record of its mailbox (first \
                poll, lost state database) and it holds more than flood_limit messages, or when the server's UIDLs \
                look reset. The next poll carries the answer out; mail arriving after it is delivered as usual.
                """)

        @OptionGroup var globals: GlobalOptions
        @ParentCommand var root: Popfetch

        @Option(name: .long, help: "The paused account.", completion: .accountNames)
        var account: String

        func run() async throws {
            try Popfetch.decide(self.globals.merged(with: self.root.globals), account: self.account, .markSeen)
        }
    }

    /// `popfetch fetch-all --account NAME`: the answer to a flood-protection pause that delivers everything.
    struct FetchAll: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "fetch-all",
            abstract: "Answer a paused account: deliver every message on its server at the next poll.")

        @OptionGroup var globals: GlobalOptions
        @ParentCommand var root: Popfetch

        @Option(name: .long, help: "The paused account.", completion: .accountNames)
        var account: String

        func run() async throws {
            try Popfetch.decide(self.globals.merged(with: self.root.globals), account: self.account, .fetchAll)
        }
    }

    static func decide(_ g: GlobalOptions, account name: String, _ decision: MailboxState.Decision) throws {
        let a = try g.loadConfiguration().account(named: name)
        let store = try g.openStore()
        guard try store.mailboxState(mailbox: a.mailbox).pausedReason != nil else {
            // A usage error (EX_USAGE), not a failure of the state database.
            writeStderr(
                "popfetch: \(a.name) is not paused: mark-seen and fetch-all answer a flood-protection pause only "
                    + "(see `popfetch status`)\n")
            throw ExitCode(64)
        }
        try store.decide(mailbox: a.mailbox, decision)
        switch decision {
        case .markSeen:
            print("\(a.name): the next poll records the messages on the server as seen, without delivering them")
        case .fetchAll:
            print("\(a.name): the next poll delivers every message on the server")
        }
    }
}
extension Popfetch {
    /// `popfetch forget --account NAME [--uid UIDL...]`: fetch messages again.
    struct Forget: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "forget",
            abstract:
                "Forget what popfetch recorded of an account's messages, so that the next poll fetches them again.",
            discussion: """
                With --uid, only those messages are forgotten: the next poll fetches them again, if they are still on \
                the server, and delivers them once more. Without it, every message of the account is forgotten and \
                the next poll is treated as its first: every message on the server is new, and with keep = true more \
                than flood_limit of them pause the account to ask first (answer with fetch-all or mark-seen). The \
                poll history stays. A poll of the account in progress is waited for (up to 60 s).
                """)

        @OptionGroup var globals: GlobalOptions
        @ParentCommand var root: Popfetch

        @Option(name: .long, help: "The account whose records to forget.", completion: .accountNames)
        var account: String

        @Option(name: .long, help: "Forget only the message with this UIDL (repeatable), as the logs show it.")
        var uid: [String] = []

        func run() async throws {
            let g = self.globals.merged(with: self.root.globals)
            let a = try g.loadConfiguration().account(named: self.account)
            let store = try g.openStore()
            let lockPath = LockFile.accountLockPath(stateDirectory: g.stateDirectory, stateKey: a.mailbox.rawValue)
            guard let lock = try await LockFile.acquire(path: lockPath, wait: 60) else {
                writeStderr(
                    "popfetch: \(a.name): a poll of \(a.mailbox) is still running after 60 s; try again later\n")
                throw CommandExit(status: .tempFail)
            }
            defer { lock.release() }
            guard !self.uid.isEmpty else {
                let n = try store.forget(mailbox: a.mailbox)
                let pause =
                    a.retention.keep && a.retention.floodLimit > 0
                    ? " (with more than flood_limit = \(a.retention.floodLimit) of them, it pauses the account to ask)"
                    : ""
                print(
                    "\(a.name): forgot \(n) message\(n == 1 ? "" : "s"); the next poll treats every message on the "
                        + "server as new" + pause)
                return
            }
            // Counted per UIDL given: one listed twice has two records, and a typo must not hide behind it.
            let unknown = try store.unknownUIDs(mailbox: a.mailbox, self.uid)
            let n = try store.forget(mailbox: a.mailbox, uids: self.uid)
            print(
                "\(a.name): forgot \(n) message\(n == 1 ? "" : "s"); the next poll fetches again what is still listed")
            if !unknown.isEmpty {
                let list = unknown.map { TerminalSafe.escaped($0.debugDescription) }.joined(separator: ", ")
                writeStderr("popfetch: \(a.name): \(unknown.count) of the UIDLs given have no record: \(list)\n")
                throw CommandExit(status: .tempFail)
            }
        }
    }
}
