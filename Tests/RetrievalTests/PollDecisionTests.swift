import Foundation
import GRDB
import POP3Core
import Testing

@testable import Configuration
@testable import Delivery
@testable import OAuth
@testable import Retrieval
@testable import UIDLStore

/// Table tests of the pure decisions: the plan (and its DELE rule), the flood guard, and the settlement.
@Suite("Poll decisions (pure)")
struct PollDecisionTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)
    static let policy = PollPlan.Policy(
        keep: false, deleteAfter: nil, maxSize: nil, deleteOversize: false, fetchLimit: 0, recipients: ["me"])

    static func record(
        _ key: String, size: Int? = 100, delivered: Bool = true, deleted: Bool = false, failed: Bool = false,
        retrievals: Int = 0
    ) -> MessageRecord {
        MessageRecord(
            uid: key, firstSeen: now, lastSeen: now, size: size, deliveredAt: delivered ? now : nil,
            deletedAt: deleted ? now : nil, retrievalAttempts: retrievals, failedAt: failed ? now : nil,
            deliveredTo: delivered ? ["me"] : [])
    }

    struct PlanCase: Sendable, CustomStringConvertible {
        var description: String
        var listing: [(Int, String)]
        var sizes: ListedSizes
        var known: [MessageRecord]
        var keep = false
        var maxSize: Int? = nil
        var deleteAfter: Int? = nil
        var expected: [String]
    }

    static func withDigest(_ r: MessageRecord, seen: Bool = false) -> MessageRecord {
        var r = r
        r.digest = "d1"
        r.seenOnly = seen
        return r
    }

    static func name(_ a: PollPlan.Action) -> String {
        switch a {
        case .fetch: return "fetch"
        case .deleteDelivered: return "delete"
        case .deleteExpired: return "expire"
        case .deleteOversize: return "delete-oversize"
        case .skipOversize: return "skip-oversize"
        case .skipFailed: return "skip-failed"
        case .skipLimit: return "skip-limit"
        case .keep: return "keep"
        }
    }

    static let planCases: [PlanCase] = [
        PlanCase(
            description: "new message is fetched", listing: [(1, "a")], sizes: [1: 100], known: [],
            expected: ["a:fetch"]),
        PlanCase(
            description: "delivered, same size, listed once: deleted without RETR", listing: [(1, "a")],
            sizes: [1: 100], known: [record("a")], expected: ["a:delete"]),
        PlanCase(
            description: "delivered (digest known), listed once, keep = false: fetched and compared before its DELE",
            listing: [(1, "a")], sizes: [1: 100], known: [withDigest(record("a"))], expected: ["a:fetch!"]),
        PlanCase(
            description: "keep = true, delete_after passed (digest known): fetched and compared before its DELE",
            listing: [(1, "a")], sizes: [1: 100], known: [withDigest(record("a"))], keep: true, deleteAfter: 0,
            expected: ["a:fetch!"]),
        PlanCase(
            description:
                "DELE due, but its comparing fetch failed max_attempts times: marked failed, never deleted unread",
            listing: [(1, "a")], sizes: [1: 100], known: [withDigest(record("a", failed: true))],
            expected: ["a:skip-failed"]),
        PlanCase(
            description: "keep = true, delete_after passed, no digest (an older popfetch's record): deleted unread",
            listing: [(1, "a")], sizes: [1: 100], known: [record("a")], keep: true, deleteAfter: 0,
            expected: ["a:expire"]),
        PlanCase(
            description: "keep = true, delete_after not passed: kept, not fetched", listing: [(1, "a")],
            sizes: [1: 100], known: [withDigest(record("a"))], keep: true, deleteAfter: 86_400, expected: ["a:keep"]),
        PlanCase(
            description: "marked seen (mark-seen), keep = false, delete_after passed: never deleted",
            listing: [(1, "a")], sizes: [1: 100], known: [withDigest(record("a"), seen: true)], deleteAfter: 0,
            expected: ["a:keep"]),
        PlanCase(
            description: "delivered but a different size: a new message, fetched", listing: [(1, "a")],
            sizes: [1: 101], known: [record("a")], expected: ["a:fetch"]),
        PlanCase(
            description: "seen again after popfetch deleted it: a new message, fetched", listing: [(1, "a")],
            sizes: [1: 100], known: [record("a", deleted: true)], expected: ["a:fetch"]),
        PlanCase(
            description: "listed twice: both fetched to be identified by content (keyed by place until then)",
            listing: [(1, "d"), (2, "d")], sizes: [1: 100, 2: 100], known: [record("d")],
            expected: ["d #1:fetch?", "d #2:fetch?"]),
        PlanCase(
            description: "listed twice, delivered before, keep = false: fetched again, never deleted unread",
            listing: [(1, "d"), (2, "d")], sizes: [1: 100, 2: 100], known: [record("d #1"), record("d #2")],
            expected: ["d #1:fetch?", "d #2:fetch?"]),
        PlanCase(
            description: "listed twice, keep = true: fetched again (a place names no message), identified by content",
            listing: [(1, "d"), (2, "d")], sizes: [1: 100, 2: 100], known: [record("d #1"), record("d #2")],
            keep: true, expected: ["d #1:fetch?", "d #2:fetch?"]),
        PlanCase(
            description: "listed once, but listed several times before (records by content): still by content",
            listing: [(1, "d"), (2, "e")], sizes: [1: 100, 2: 100], known: [record("d #=ab"), record("e")],
            keep: true, expected: ["d #1:fetch?", "e:keep"]),
        PlanCase(
            description: "identified by content, retrieval failed at that place before: last, never skipped",
            listing: [(1, "d"), (2, "d"), (3, "e")], sizes: [1: 100, 2: 100, 3: 100],
            known: [record("d #1", delivered: false, failed: true, retrievals: 3)],
            expected: ["d #2:fetch?", "e:fetch", "d #1:fetch?"]),
        PlanCase(
            description: "identified by content, over max_size: skipped by size like any message",
            listing: [(1, "d"), (2, "d")], sizes: [1: 100, 2: 5000], known: [], maxSize: 1000,
            expected: ["d #1:fetch?", "d #2:skip-oversize"]
        ),
        PlanCase(
            description: "delivered with no recorded size: fetched again rather than deleted unread",
            listing: [(1, "a")], sizes: [1: 100], known: [record("a", size: nil)], expected: ["a:fetch"]),
        PlanCase(
            description: "marked failed: skipped", listing: [(1, "a")], sizes: [1: 100],
            known: [record("a", delivered: false, failed: true)], expected: ["a:skip-failed"]),
        PlanCase(
            description: "a message whose retrieval failed before goes last",
            listing: [(1, "p"), (2, "q"), (3, "r")], sizes: [1: 100, 2: 100, 3: 100],
            known: [record("p", delivered: false, retrievals: 1)], expected: ["q:fetch", "r:fetch", "p:fetch"]),
    ]

    @Test("the plan and its DELE rule", arguments: planCases)
    func plan(_ c: PlanCase) {
        var policy = Self.policy
        policy.keep = c.keep
        policy.maxSize = c.maxSize
        policy.deleteAfter = c.deleteAfter
        let plan = PollPlan(
            listing: c.listing.map { UIDLEntry(number: $0.0, uid: $0.1) }, sizes: c.sizes,
            known: Dictionary(uniqueKeysWithValues: c.known.map { ($0.uid, $0) }), policy: policy, now: Self.now)
        #expect(
            plan.items.map {
                "\($0.key):\(Self.name($0.action))\($0.identify ? "?" : "")\($0.deleteIfSame ? "!" : "")"
            } == c.expected)
        // A DELE after a fetch is always a comparison with what was delivered.
        for item in plan.items where item.deleteIfSame { #expect(item.verify == "d1") }
    }

    @Test("keys: a UIDL listed once is its own key; a repeated one's places and contents get keys that cannot collide")
    func keys() {
        let listing = [(1, "a"), (2, "b"), (3, "a"), (4, "c"), (5, "a")].map { UIDLEntry(number: $0.0, uid: $0.1) }
        let plan = PollPlan(
            listing: listing, sizes: [1: 1, 2: 1, 3: 1, 4: 1, 5: 1], known: [:], policy: Self.policy, now: Self.now)
        #expect(plan.items.map(\.key) == ["a #1", "b", "a #2", "c", "a #3"])
        #expect(plan.items.map(\.identify) == [true, false, true, false, true])
        #expect(plan.listed.keys.sorted() == ["a #1", "a #2", "a #3", "b", "c"])
        #expect(PollPlan.contentKey(uid: "a", digest: "ff", copy: 1) == "a #=ff")
        #expect(PollPlan.contentKey(uid: "a", digest: "ff", copy: 2) == "a #=ff/2")
        #expect(PollPlan.sharedUID(ofKey: "a #=ff/2") == "a")
        #expect(PollPlan.sharedUID(ofKey: "a #3") == "a")
        #expect(PollPlan.sharedUID(ofKey: "invalid 20ff") == nil)
        #expect(PollPlan.sharedUID(ofKey: "invalid 2023 #1") == "invalid 2023")
        #expect(PollPlan.sharedUID(ofKey: "a") == nil)
    }

    @Test("dry-run: a message delivered before to some recipients is said to go only to the others")
    func previewPartial() {
        var policy = Self.policy
        policy.recipients = ["me", "you"]
        var partial = Self.record("a", delivered: false)
        partial.deliveredTo = ["me"]
        let plan = PollPlan(
            listing: [UIDLEntry(number: 1, uid: "a"), UIDLEntry(number: 2, uid: "b")], sizes: [1: 100, 2: 100],
            known: ["a": partial], policy: policy, now: Self.now)
        let preview = PlanPreview(plan: plan, keep: false)
        #expect(preview.fetch == 2 && preview.partial == 1)
        #expect(
            preview.lines(delivery: "the MDA").contains(
                "1 of them was delivered before to some of the recipients: only the others would get it"))
    }

    struct IdentifyCase: Sendable, CustomStringConvertible {
        var description: String
        var known: [MessageRecord]
        var keep = false
        var deleteAfter: Int? = nil
        var recipients = ["me"]
        var copy = 1
        var claimed: Set<String> = []
        /// "key:action", with the recipients for a fetch.
        var expected: String
    }

    static func delivered(_ key: String, digest: String = "ab", to: [String] = ["me"], at: Date = now) -> MessageRecord
    {
        var r = record(key)
        r.digest = digest
        r.deliveredAt = at
        r.deliveredTo = Set(to)
        return r
    }

    static let identifyCases: [IdentifyCase] = {
        var partial = record("d #=ab", delivered: false)
        partial.deliveredTo = ["me"]
        var seen = delivered("d #=ab")
        seen.seenOnly = true
        var deleted = delivered("d #=ab")
        deleted.deletedAt = now
        return [
            IdentifyCase(description: "no record of this content: new", known: [], expected: "d #=ab:fetch[me]"),
            IdentifyCase(
                description: "another content's record (the message at its place before): new",
                known: [delivered("d #=cd", digest: "cd"), delivered("d #1", digest: "cd")],
                expected: "d #=ab:fetch[me]"),
            IdentifyCase(
                description: "delivered, keep = false: deleted", known: [delivered("d #=ab")],
                expected: "d #=ab:delete"),
            IdentifyCase(
                description: "delivered, keep = true: kept", known: [delivered("d #=ab")], keep: true,
                expected: "d #=ab:keep"),
            IdentifyCase(
                description: "delivered and deleted before, seen again (server kept it): not delivered twice",
                known: [deleted], keep: true, expected: "d #=ab:keep"),
            IdentifyCase(
                description: "delivered longer ago than delete_after: deleted", known: [delivered("d #=ab")],
                keep: true, deleteAfter: 0, expected: "d #=ab:expire"),
            IdentifyCase(
                description: "delivered to one of two recipients: the other one only",
                known: [partial], recipients: ["me", "you"], expected: "d #=ab:fetch[you]"),
            IdentifyCase(
                description: "marked failed: skipped", known: [record("d #=ab", delivered: false, failed: true)],
                expected: "d #=ab:skip-failed"),
            IdentifyCase(
                description: "marked seen (mark-seen), keep = false: kept, never deleted", known: [seen],
                expected: "d #=ab:keep"),
            IdentifyCase(
                description: "a place's record from an older popfetch with this digest: that record",
                known: [delivered("d #2", digest: "cd"), delivered("d #3")], keep: true, expected: "d #3:keep"),
            IdentifyCase(
                description: "the plain UIDL's record with this digest: that record",
                known: [delivered("d")], keep: true, expected: "d:keep"),
            IdentifyCase(
                description: "an older record already given to an identical copy this poll: new",
                known: [delivered("d #3")], keep: true, copy: 2, claimed: ["d #3"], expected: "d #=ab/2:fetch[me]"),
            IdentifyCase(
                description: "the second identical copy, recorded before: its own record",
                known: [delivered("d #=ab"), delivered("d #=ab/2")], keep: true, copy: 2, expected: "d #=ab/2:keep"),
            IdentifyCase(
                description: "the second identical copy, only the first recorded: new",
                known: [delivered("d #=ab")], keep: true, copy: 2, expected: "d #=ab/2:fetch[me]"),
        ]
    }()

    @Test(
        "a message identified by content: its key and action from the record of that content", arguments: identifyCases)
    func identify(_ c: IdentifyCase) throws {
        var policy = Self.policy
        policy.keep = c.keep
        policy.deleteAfter = c.deleteAfter
        policy.recipients = c.recipients
        let known = Dictionary(uniqueKeysWithValues: c.known.map { ($0.uid, $0) })
        let plan = PollPlan(
            listing: [UIDLEntry(number: 1, uid: "d"), UIDLEntry(number: 2, uid: "d")], sizes: [1: 100, 2: 100],
            known: known, policy: policy, now: Self.now)
        let item = try #require(plan.items.first { $0.number == 1 })
        #expect(item.identify)
        let (key, _, action) = plan.identify(item, digest: "ab", copy: c.copy, known: known, claimed: c.claimed)
        var got = "\(key):\(Self.name(action))"
        if case .fetch(let r) = action { got += "\(r)" }
        #expect(
            got
                == c.expected.replacingOccurrences(of: "[me]", with: "[\"me\"]").replacingOccurrences(
                    of: "[you]", with: "[\"you\"]"))
    }

    struct FloodCase: Sendable, CustomStringConvertible {
        var description: String
        var listed: Int
        var knownPresent: Int
        var stillListed: Int
        var firstListed: Bool
        var keep = true
        var decision: MailboxState.Decision?
        var pauses: Bool
    }

    static let floodCases: [FloodCase] = [
        FloodCase(
            description: "first poll, 20 messages: proceed", listed: 20, knownPresent: 0, stillListed: 0,
            firstListed: false, pauses: false),
        FloodCase(
            description: "first poll, 21 messages: pause", listed: 21, knownPresent: 0, stillListed: 0,
            firstListed: false, pauses: true),
        FloodCase(
            description: "first poll, 500 messages, keep = false: proceed", listed: 500, knownPresent: 0,
            stillListed: 0, firstListed: false, keep: false, pauses: false),
        FloodCase(
            description: "first poll, 500 messages, fetch-all decided: proceed", listed: 500, knownPresent: 0,
            stillListed: 0, firstListed: false, decision: .fetchAll, pauses: false),
        FloodCase(
            description: "UIDL reset: 50 known vanished, 50 unknown appeared: pause", listed: 50,
            knownPresent: 50, stillListed: 0, firstListed: true, pauses: true),
        FloodCase(
            description: "30 new messages on a known mailbox: proceed", listed: 80, knownPresent: 50,
            stillListed: 50, firstListed: true, pauses: false),
        FloodCase(
            description: "a few vanished, many new: proceed", listed: 75, knownPresent: 50, stillListed: 45,
            firstListed: true, pauses: false),
    ]

    @Test("flood guard", arguments: floodCases)
    func flood(_ c: FloodCase) {
        var known: [String: MessageRecord] = [:]
        for i in 0..<c.knownPresent { known["k\(i)"] = Self.record("k\(i)") }
        var listed: [String: Int] = [:]
        for i in 0..<c.stillListed { listed["k\(i)"] = 100 }
        for i in 0..<(c.listed - c.stillListed) { listed["n\(i)"] = 100 }
        let mailbox = MailboxState(firstListed: c.firstListed ? Self.now : nil, pausedReason: nil, decision: c.decision)
        let v = FloodGuard.assess(listed: listed, known: known, mailbox: mailbox, keep: c.keep, limit: 20)
        #expect((v != .proceed) == c.pauses)
    }

    struct SettleCase: Sendable, CustomStringConvertible {
        var description: String
        var outcomes: [DeliveryResult]
        var complete = true
        var keep = false
        var onPermanent: PermanentFailurePolicy = .keep
        var disposition: String
        var count: Settlement.Count
        var delivered: Bool
    }

    static let settleCases: [SettleCase] = [
        SettleCase(
            description: "delivered, keep = false: delete", outcomes: [.delivered], disposition: "delete",
            count: .delivered, delivered: true),
        SettleCase(
            description: "delivered, keep = true: keep", outcomes: [.delivered], keep: true,
            disposition: "keep", count: .delivered, delivered: true),
        SettleCase(
            description: "delivered but the next reply was malformed: nothing committed, kept",
            outcomes: [.delivered], complete: false, disposition: "keep", count: .failed, delivered: false),
        SettleCase(
            description: "no outcome at all: kept", outcomes: [], disposition: "keep", count: .failed,
            delivered: false),
        SettleCase(
            description: "temporary failure: kept, deferred", outcomes: [.temporaryFailure("x")],
            disposition: "keep", count: .deferred, delivered: false),
        SettleCase(
            description: "failure: kept, failed", outcomes: [.failure("x")], disposition: "keep",
            count: .failed, delivered: false),
        SettleCase(
            description: "one recipient accepted, one failed: kept", outcomes: [.delivered, .failure("x")],
            disposition: "keep", count: .failed, delivered: true),
        SettleCase(
            description: "5xx with on_permanent_failure = delete: delete", outcomes: [.permanentFailure("x")],
            onPermanent: .delete, disposition: "delete", count: .failed, delivered: false),
        SettleCase(
            description: "5xx with on_permanent_failure = bounce: bounce", outcomes: [.permanentFailure("x")],
            onPermanent: .bounce, disposition: "bounce", count: .failed, delivered: false),
        SettleCase(
            description: "5xx then 4xx with bounce: kept (a recipient may still take it)",
            outcomes: [.permanentFailure("x"), .temporaryFailure("y")], onPermanent: .bounce,
            disposition: "keep", count: .failed, delivered: false),
    ]

    @Test("settlement: outcome in, writes and DELE out", arguments: settleCases)
    func settle(_ c: SettleCase) {
        let s = Settlement(
            outcomes: c.outcomes.enumerated().map {
                RecipientOutcome(recipients: ["r\($0.offset)"], result: $0.element)
            },
            complete: c.complete, priorAttempts: 0,
            policy: Settlement.Policy(keep: c.keep, onPermanentFailure: c.onPermanent, maxAttempts: 5, accountName: "t")
        )
        let disposition: String
        switch s.disposition {
        case .delete: disposition = "delete"
        case .keepOnServer: disposition = "keep"
        case .bounce: disposition = "bounce"
        }
        #expect(disposition == c.disposition)
        #expect(s.count == c.count)
        let committed = s.writes.contains { if case .delivered = $0 { true } else { false } }
        #expect(committed == c.delivered)
    }

    @Test("verification: a record of an earlier delivered message makes the plan compare digests")
    func verification() {
        var delivered = Self.record("a")
        delivered.digest = "d1"
        delivered.deletedAt = Self.now
        let plan = PollPlan(
            listing: [UIDLEntry(number: 1, uid: "a"), UIDLEntry(number: 2, uid: "b")], sizes: [1: 100, 2: 100],
            known: ["a": delivered, "b": Self.record("b", size: 50, delivered: false)], policy: Self.policy,
            now: Self.now)
        #expect(plan.items[0].verify == "d1", "seen again after deletion: compared with what was delivered")
        #expect(plan.items[1].verify == nil && plan.items[1].restart, "other size, never delivered: starts over")
    }

    @Test("the v4 migration moves user@host:port to user@host only when unambiguous")
    func migration() throws {
        let dir = NSTemporaryDirectory() + "popfetch-migration-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/state.sqlite"
        do {
            let q = try DatabaseQueue(path: path)
            try StateStore.migrator.migrate(q, upTo: "v3: OAuth2 tokens")
            try q.write { db in
                for key in ["alice@h.example:995", "bob@h.example:110", "bob@h.example:995"] {
                    try db.execute(
                        sql:
                            "INSERT INTO messages (account, uidl, first_seen, size, delivered_at) VALUES (?, 'u1', 1, 10, 1)",
                        arguments: [key])
                }
            }
        }
        let store = try StateStore(path: path)
        #expect(try store.messages(mailbox: MailboxID("alice@h.example"))["u1"]?.deliveredAt != nil)
        #expect(
            try store.mailboxState(mailbox: MailboxID("alice@h.example")).firstListed != nil,
            "no flood pause after upgrade")
        #expect(try store.messages(mailbox: MailboxID("bob@h.example")).isEmpty, "two mailboxes are not merged")
        #expect(try store.messages(mailbox: MailboxID("bob@h.example:110"))["u1"] != nil)
        #expect(try store.messages(mailbox: MailboxID("bob@h.example:995"))["u1"] != nil)
    }

    @Test("state keys before v4 (user@host:port) lose their port")
    func portlessKey() {
        #expect(StateStore.portlessKey("alice@pop.example.org:995") == "alice@pop.example.org")
        #expect(StateStore.portlessKey("a:b@::1:110") == "a:b@::1")
        #expect(StateStore.portlessKey("alice@pop.example.org") == "alice@pop.example.org")
        #expect(StateStore.portlessKey("al:ice@host") == "al:ice@host")
    }
}
