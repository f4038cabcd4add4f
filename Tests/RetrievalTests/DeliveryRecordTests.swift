import Foundation
import GRDB
import Testing

@testable import UIDLStore

/// What a delivery commit leaves in the state: the message's row, and per-recipient rows only while some
/// recipients still lack the message.
@Suite("Delivery records")
struct DeliveryRecordTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)

    static func withStore(_ body: (StateStore, String) throws -> Void) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("records-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try body(try StateStore(path: dir + "/state.sqlite"), dir + "/state.sqlite")
    }

    static func deliveryRows(_ path: String) throws -> Int {
        try DatabaseQueue(path: path).read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM deliveries") ?? -1 }
    }

    @Test(
        "delivered to every recipient at once: the message's row says delivered, with its digest; no per-recipient rows"
    )
    func allAtOnce() throws {
        try Self.withStore { store, path in
            let box = MailboxID("me@pop.example")
            // Not recorded by a listing first (the row is created), then a second message that was.
            #expect(
                try store.recordDelivered(
                    mailbox: box, uid: "a", recipients: ["me", "you"], allRecipients: ["you", "me"], digest: "d1",
                    at: Self.now))
            let records = try store.messages(mailbox: box)
            let a = try #require(records["a"])
            #expect(a.deliveredAt == Self.now)
            #expect(a.attempts == 1)
            #expect(a.digest == "d1")
            #expect(a.firstSeen == Self.now)
            #expect(try Self.deliveryRows(path) == 0)
            // Delivered again (fetched again after a crash before DELE): attempts count up, the digest stays.
            #expect(
                try store.recordDelivered(
                    mailbox: box, uid: "a", recipients: ["me", "you"], allRecipients: ["me", "you"],
                    at: Self.now + 60))
            let again = try #require(try store.messages(mailbox: box)["a"])
            #expect(again.deliveredAt == Self.now + 60)
            #expect(again.attempts == 2)
            #expect(again.digest == "d1")
            #expect(again.firstSeen == Self.now)
        }
    }

    @Test("delivered to some recipients: not delivered, the others are left to the next try; then to the rest")
    func partThenRest() throws {
        try Self.withStore { store, path in
            let box = MailboxID("me@pop.example")
            #expect(
                try !store.recordDelivered(
                    mailbox: box, uid: "a", recipients: ["me"], allRecipients: ["me", "you"], at: Self.now))
            let part = try #require(try store.messages(mailbox: box)["a"])
            #expect(part.deliveredAt == nil)
            #expect(part.deliveredTo == ["me"])
            #expect(try Self.deliveryRows(path) == 1)
            #expect(
                try store.recordDelivered(
                    mailbox: box, uid: "a", recipients: ["you"], allRecipients: ["me", "you"], digest: "d",
                    at: Self.now + 60))
            let whole = try #require(try store.messages(mailbox: box)["a"])
            #expect(whole.deliveredAt == Self.now + 60)
            #expect(whole.digest == "d")
            #expect(try Self.deliveryRows(path) == 0, "delivered to all: the per-recipient rows are gone")
        }
    }

    @Test(
        "who got which content under a key outlives the record starting over: a content back is not sent again to them"
    )
    func contentsOutliveRestarts() throws {
        try Self.withStore { store, path in
            let box = MailboxID("me@pop.example")
            let all = ["me", "you"]
            // A reaches me; you defers.
            #expect(
                try !store.recordDelivered(
                    mailbox: box, uid: "p", recipients: ["me"], allRecipients: all, digest: "A", at: Self.now))
            // The UIDL now holds B: the record starts over; nobody got B under it.
            #expect(
                try store.restartMessage(
                    mailbox: box, uid: "p", size: 10, digest: "B", recipients: all, at: Self.now + 60) == .new)
            #expect(try store.contentDeliveries(mailbox: box, uid: "p") == ["A": ["me"]])
            let fresh = try #require(try store.messages(mailbox: box)["p"])
            #expect(fresh.deliveredTo.isEmpty && fresh.digest == nil && fresh.deliveredAt == nil)
            // B reaches both (you in a second try): complete; who got B is kept too.
            #expect(
                try !store.recordDelivered(
                    mailbox: box, uid: "p", recipients: ["me"], allRecipients: all, digest: "B", at: Self.now + 120))
            #expect(
                try store.recordDelivered(
                    mailbox: box, uid: "p", recipients: ["you"], allRecipients: all, digest: "B", at: Self.now + 180))
            #expect(try Self.deliveryRows(path) == 0)
            #expect(try store.contentDeliveries(mailbox: box, uid: "p") == ["A": ["me"], "B": ["me", "you"]])
            // A comes back: me has it (recorded as having it, with A's digest); only you gets it.
            #expect(
                try store.restartMessage(
                    mailbox: box, uid: "p", size: 10, digest: "A", recipients: all, at: Self.now + 240)
                    == .partly(["me"]))
            let back = try #require(try store.messages(mailbox: box)["p"])
            #expect(back.deliveredTo == ["me"] && back.digest == "A" && back.deliveredAt == nil)
            // B comes back: both have it; delivered, with B's digest, sent to none.
            #expect(
                try store.restartMessage(
                    mailbox: box, uid: "p", size: 10, digest: "B", recipients: all, at: Self.now + 300) == .delivered)
            let again = try #require(try store.messages(mailbox: box)["p"])
            #expect(again.deliveredAt == Self.now + 300 && again.digest == "B")
            // A recipient added to the configuration since has not got B: the others' copies do not count for it.
            #expect(
                try store.restartMessage(
                    mailbox: box, uid: "p", size: 10, digest: "B", recipients: all + ["new"], at: Self.now + 360)
                    == .partly(["me", "you"]))
            // Forgetting the key forgets what was delivered under it.
            #expect(try store.forget(mailbox: box, uids: ["p"]) == 1)
            #expect(try store.contentDeliveries(mailbox: box, uid: "p").isEmpty)
        }
    }
}
