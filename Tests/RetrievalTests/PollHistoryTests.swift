import Foundation
import GRDB
import Testing

@testable import UIDLStore

/// The record of polls stays bounded: `status` and the database must not grow with years of daemon polls.
@Suite("Poll history")
struct PollHistoryTests {
    static func temporaryStore() throws -> (StateStore, String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("history-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return (try StateStore(path: dir + "/state.sqlite"), dir)
    }

    static func finish(_ store: StateStore, _ name: String, delivered: Int, outcome: String = "ok", at t: Double)
        throws
    {
        let id = try store.beginPoll(
            mailbox: MailboxID("\(name)@pop.example"), accountName: name, at: Date(timeIntervalSince1970: t))
        var s = PollSummary(outcome: outcome)
        s.delivered = delivered
        try store.finishPoll(id: id, summary: s, at: Date(timeIntervalSince1970: t + 1))
    }

    @Test("each account keeps its newest polls only; the delivered total counts every poll")
    func bounded() throws {
        let (store, dir) = try Self.temporaryStore()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let kept = StateStore.pollsKept
        for i in 0..<(kept + 25) {
            try Self.finish(store, "a", delivered: 2, at: Double(i))
            if i % 100 == 0 { try Self.finish(store, "b", delivered: 1, at: Double(i)) }
        }
        let a = try store.recentPolls(accountName: "a", limit: 10 * kept)
        #expect(a.count == kept, "the newest \(kept) polls of a")
        #expect(a.first?.started == Date(timeIntervalSince1970: Double(kept + 24)), "the newest is kept")
        #expect(a.last?.started == Date(timeIntervalSince1970: 25), "the oldest 25 are gone")
        #expect(try store.recentPolls(accountName: "b", limit: 100).count == 11, "another account's polls untouched")
        let status = try store.accountStatus(accountName: "a", mailbox: MailboxID("a@pop.example"))
        #expect(status.deliveredTotal == 2 * (kept + 25), "the total counts the dropped polls too")
        #expect(status.lastPoll?.started == Date(timeIntervalSince1970: Double(kept + 24)))
    }

    @Test("failures in a row are still counted after old polls are dropped")
    func consecutiveFailures() throws {
        let (store, dir) = try Self.temporaryStore()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for i in 0..<(StateStore.pollsKept + 10) { try Self.finish(store, "a", delivered: 0, at: Double(i)) }
        for i in 0..<3 {
            try Self.finish(store, "a", delivered: 0, outcome: "error", at: Double(2 * StateStore.pollsKept + i))
        }
        let status = try store.accountStatus(accountName: "a", mailbox: MailboxID("a@pop.example"))
        #expect(status.consecutiveFailures == 3)
    }

    @Test("the v6 migration carries each account's delivered total over from its polls")
    func migration() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("history-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/state.sqlite"
        do {
            let q = try DatabaseQueue(path: path)
            try StateStore.migrator.migrate(q, upTo: "v5: quiet listings")
            try q.write { db in
                for (name, delivered) in [("a", 3), ("a", 4), ("b", 5)] {
                    try db.execute(
                        sql: """
                            INSERT INTO polls (account, account_name, started, finished, outcome, delivered)
                            VALUES (?, ?, 1, 2, 'ok', ?)
                            """, arguments: [name + "@pop.example", name, delivered])
                }
            }
        }
        let store = try StateStore(path: path)
        #expect(try store.accountStatus(accountName: "a", mailbox: MailboxID("a@pop.example")).deliveredTotal == 7)
        #expect(try store.accountStatus(accountName: "b", mailbox: MailboxID("b@pop.example")).deliveredTotal == 5)
        try Self.finish(store, "b", delivered: 1, at: 10)
        #expect(try store.accountStatus(accountName: "b", mailbox: MailboxID("b@pop.example")).deliveredTotal == 6)
    }
}
