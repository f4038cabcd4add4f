import Foundation
import GRDB
import POP3Core
import Testing

@testable import Retrieval
@testable import UIDLStore

/// The quiet listing: a poll that lists what the last poll listed, when that needed nothing done and no record of the
/// mailbox changed since, skips the state load and the plan. These tests check when a plan may be called quiet, that
/// the fingerprint covers the listing and the policy, and that any write to the mailbox's records forgets it.
@Suite("Quiet listings")
struct QuietListingTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)
    static let day = StateStore.lastSeenGranularity

    static func policy(keep: Bool = true, deleteAfter: Int? = nil, recipients: [String] = ["me"]) -> PollPlan.Policy {
        PollPlan.Policy(
            keep: keep, deleteAfter: deleteAfter, maxSize: nil, deleteOversize: false, fetchLimit: 0,
            recipients: recipients)
    }

    static func delivered(_ key: String, size: Int? = 100, lastSeen: Date = now, at: Date = now) -> MessageRecord {
        MessageRecord(
            uid: key, firstSeen: at, lastSeen: lastSeen, size: size, deliveredAt: at, deliveredTo: ["me"])
    }

    static func plan(
        _ known: [MessageRecord], listing: [String]? = nil, policy: PollPlan.Policy = policy()
    ) -> PollPlan {
        let uids = listing ?? known.map(\.uid)
        let entries = uids.enumerated().map { UIDLEntry(number: $0.offset + 1, uid: $0.element) }
        var sizes = ListedSizes()
        for e in entries { _ = sizes.insert(100, for: e.number) }
        var byKey: [String: MessageRecord] = [:]
        for r in known { byKey[r.uid] = r }
        return PollPlan(listing: entries, sizes: sizes, known: byKey, policy: policy, now: now)
    }

    @Test("every message kept: quiet until the next last_seen refresh falls due")
    func allKept() {
        #expect(Self.plan([Self.delivered("a"), Self.delivered("b")]).quietUntil == Self.now + Self.day)
        let older = Self.now - 80_000
        #expect(
            Self.plan([Self.delivered("a"), Self.delivered("b", lastSeen: older)]).quietUntil
                == older + Self.day, "b's last_seen is refreshed a day after it was written")
        let stale = Self.now - 2 * Self.day
        #expect(
            Self.plan([Self.delivered("a", lastSeen: stale)]).quietUntil == Self.now + Self.day,
            "a stale last_seen is refreshed by this poll")
        #expect(Self.plan([]).quietUntil == Self.now + Self.day, "an empty mailbox")
    }

    @Test("delete_after: quiet until the first kept message falls due")
    func deleteAfter() {
        let at = Self.now - 600
        let plan = Self.plan([Self.delivered("a", at: at)], policy: Self.policy(deleteAfter: 3_600))
        #expect(plan.quietUntil == at + 3_600)
    }

    @Test(
        "not quiet when anything is to be done or written",
        arguments: [
            ("a new message", [delivered("a")], ["a", "n"], policy()),
            ("a message of another size", [delivered("a", size: 99)], ["a"], policy()),
            ("a record without a size", [delivered("a", size: nil)], ["a"], policy()),
            ("keep = false: delivered messages are deleted", [delivered("a")], ["a"], policy(keep: false)),
            (
                "a recipient still to deliver to",
                [MessageRecord(uid: "a", firstSeen: now, lastSeen: now, size: 100, deliveredTo: ["me"])], ["a"],
                policy(recipients: ["me", "you"])
            ),
            ("expired under delete_after", [delivered("a", at: now - 7_200)], ["a"], policy(deleteAfter: 3_600)),
        ] as [(String, [MessageRecord], [String], PollPlan.Policy)])
    func notQuiet(_ what: String, known: [MessageRecord], listing: [String], policy: PollPlan.Policy) {
        #expect(Self.plan(known, listing: listing, policy: policy).quietUntil == nil, "\(what)")
    }

    @Test("the fingerprint covers every number, UIDL and size of the listing, and the policy")
    func fingerprint() {
        let listing = [UIDLEntry(number: 1, uid: "a"), UIDLEntry(number: 2, uid: "b")]
        let sizes: ListedSizes = [1: 100, 2: 200]
        let base = PollPlan.fingerprint(listing: listing, sizes: sizes, policy: Self.policy())
        #expect(base.count == 32)
        // The format is pinned: SHA-256 of the policy text, then per entry its number, LIST size and UIDL length as
        // little-endian Int64s and the UIDL (computed independently, with Python's hashlib and struct.pack).
        #expect(
            base.map { String(format: "%02x", $0) }.joined()
                == "3150a78cc923fd36d6894fe57ebcc8aa62cd638a4a7d75d6266051e3a8699ab8")
        #expect(PollPlan.fingerprint(listing: listing, sizes: sizes, policy: Self.policy()) == base)
        let variants: [[UInt8]] = [
            PollPlan.fingerprint(listing: [listing[0]], sizes: sizes, policy: Self.policy()),
            PollPlan.fingerprint(
                listing: [listing[0], UIDLEntry(number: 2, uid: "c")], sizes: sizes, policy: Self.policy()),
            PollPlan.fingerprint(listing: listing.reversed(), sizes: sizes, policy: Self.policy()),
            PollPlan.fingerprint(listing: listing, sizes: [1: 100, 2: 201], policy: Self.policy()),
            PollPlan.fingerprint(listing: listing, sizes: sizes, policy: Self.policy(keep: false)),
            PollPlan.fingerprint(listing: listing, sizes: sizes, policy: Self.policy(deleteAfter: 60)),
            PollPlan.fingerprint(listing: listing, sizes: sizes, policy: Self.policy(recipients: ["me", "you"])),
            // UIDL boundaries are in the hash: "ab" + "" is not "a" + "b".
            PollPlan.fingerprint(
                listing: [UIDLEntry(number: 1, uid: "ab"), UIDLEntry(number: 2, uid: "")], sizes: sizes,
                policy: Self.policy()),
        ]
        for (i, v) in variants.enumerated() { #expect(v != base, "variant \(i)") }
    }

    @Test(
        "a UIDL identified by content: its records count as listed (refreshed, not forgotten), its plain record uncertain"
    )
    func sharedRecords() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("shared-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try StateStore(path: dir + "/state.sqlite")
        let box = MailboxID("me@pop.example")
        // Written 40 days ago and not listed since (popfetch did not run): older than forget_after.
        let old = Self.now - 40 * Self.day
        for (key, digest) in [("d", "d0"), ("d #=ab", "ab"), ("e", "e0")] {
            _ = try store.recordDelivered(
                mailbox: box, uid: key, recipients: ["me"], allRecipients: ["me"], digest: digest, at: old)
        }
        _ = try store.recordRetrievalFailure(mailbox: box, uid: "d #1", error: "dropped", maxAttempts: 5, at: old)
        let known = try store.messages(mailbox: box)
        let plan = Self.plan(Array(known.values), listing: ["d", "d"])
        #expect(plan.items.allSatisfy { $0.identify })
        #expect(plan.diff.uncertain == ["d"])
        #expect(plan.diff.unidentified == 0, "two places, two delivered records still on the server")
        #expect(plan.sharedRecords["d"] == ["d", "d #1", "d #=ab"])
        try store.recordListing(mailbox: box, listed: plan.listed, diff: plan.diff, known: known, at: Self.now)
        let after = try store.messages(mailbox: box)
        #expect(after.keys.sorted() == ["d", "d #1", "d #=ab"], "e forgotten; d's records kept")
        #expect(after["d #=ab"]?.lastSeen == Self.now && after["d"]?.lastSeen == Self.now)
        #expect(after["d"]?.deletePending == true, "the plain record no longer trusted to be on the server")
        #expect(after["d #=ab"]?.deletePending == false)
        // Listed once again: still identified by content (records keyed by content exist).
        let single = Self.plan(Array(after.values), listing: ["d"])
        #expect(single.items.map(\.key) == ["d #1"] && single.items.allSatisfy { $0.identify })
        #expect(single.diff.uncertain.isEmpty, "already marked")
    }

    @Test("any write to the mailbox's records, by popfetch or another program, makes its fingerprint stale")
    func generations() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("quiet-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try StateStore(path: dir + "/state.sqlite")
        let box = MailboxID("me@pop.example")
        let other = MailboxID("other@pop.example")
        let fp: [UInt8] = Array(repeating: 7, count: 32)
        let before = Self.now - 60
        /// Records the fingerprint at the mailbox's current generation; whether it then holds.
        func markQuiet(_ m: MailboxID) throws {
            try store.recordQuiet(
                mailbox: m, listing: fp, until: Self.now, generation: try store.mailboxState(mailbox: m).generation)
        }
        func quiet(_ m: MailboxID) throws -> Bool {
            try store.mailboxState(mailbox: m).isQuiet(fingerprint: fp, at: before)
        }

        try markQuiet(box)
        #expect(try quiet(box))
        #expect(try !store.mailboxState(mailbox: box).isQuiet(fingerprint: fp, at: Self.now), "expired at `until`")
        #expect(try !store.mailboxState(mailbox: box).isQuiet(fingerprint: [1], at: before), "another listing")

        // popfetch's own writes.
        let plan = Self.plan([], listing: ["a"])
        try store.recordListing(mailbox: box, listed: plan.listed, diff: plan.diff, known: [:], at: Self.now)
        #expect(try !quiet(box), "a new record")
        try markQuiet(box)
        try markQuiet(other)
        _ = try store.recordDelivered(mailbox: box, uid: "a", recipients: ["me"], allRecipients: ["me"], at: Self.now)
        #expect(try !quiet(box), "a delivery")
        #expect(try quiet(other), "another mailbox keeps its own")

        // A write between the poll's read of the generation and its recording: nothing is recorded.
        let generation = try store.mailboxState(mailbox: box).generation
        _ = try store.recordDelivered(mailbox: box, uid: "b", recipients: ["me"], allRecipients: ["me"], at: Self.now)
        try store.recordQuiet(mailbox: box, listing: fp, until: Self.now, generation: generation)
        #expect(try !quiet(box), "recorded from a state that had changed")

        // A delivery to some of the recipients writes per-recipient rows (the edits below delete one).
        #expect(
            try !store.recordDelivered(
                mailbox: box, uid: "c", recipients: ["me"], allRecipients: ["me", "you"], at: Self.now))

        // Another program's writes (sqlite3, an older popfetch): the triggers are in the database.
        let raw = try DatabaseQueue(path: dir + "/state.sqlite")
        let edits = [
            "UPDATE messages SET delivered_at = NULL WHERE account = 'me@pop.example'",
            "UPDATE messages SET last_seen = 5 WHERE account = 'me@pop.example'",
            "DELETE FROM deliveries WHERE account = 'me@pop.example'",
            "DELETE FROM messages WHERE account = 'me@pop.example'",
            "INSERT INTO messages (account, uidl, first_seen) VALUES ('me@pop.example', 'z', 1)",
        ]
        for sql in edits {
            try markQuiet(box)
            #expect(try quiet(box))
            try raw.write { db in try db.execute(sql: sql) }
            #expect(try !quiet(box), "\(sql)")
        }
        #expect(try quiet(other))
    }
}
