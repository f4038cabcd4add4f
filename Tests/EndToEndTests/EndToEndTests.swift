import Foundation
import GRDB
import MailTestKit
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// popfetch against a real Dovecot POP3 server, through the real binary, with a real MDA.
@Suite("End to end against Dovecot")
struct EndToEndTests {
    @Test("first poll delivers every message byte-exact; second poll delivers nothing; mailbox emptied")
    func firstPollDeliversEverythingSecondNothing() throws {
        let f = try PopfetchFixture()
        let corpus = Corpus.messages(25)
        try f.user.deliver(corpus)
        try f.writeConfig()
        let r1 = try f.poll()
        #expect(r1.status == 0, "\(r1.stderr)")
        let got = try f.delivered()
        #expect(got.count == corpus.count)
        do {
            let same = sameMessages(got, corpus)
            #expect(same, "delivered messages differ from the originals")
        }
        #expect(f.user.messageCount() == 0, "keep = false must empty the mailbox")
        #expect(r1.stderr.contains("delivered=25"))

        try f.clearDelivered()
        let r2 = try f.poll()
        #expect(r2.status == 0, "\(r2.stderr)")
        #expect(try f.delivered().isEmpty)
        #expect(r2.stderr.contains("delivered=0"))
    }

    @Test(
        "keep = true leaves the mailbox unchanged and a second poll fetches nothing",
        arguments: ["none", "starttls", "implicit"])
    func keepLeavesMailbox(tls: String) throws {
        let f = try PopfetchFixture()
        let corpus = Corpus.messages(8, seed: 2)
        try f.user.deliver(corpus)
        try f.writeConfig(tls: tls, extra: "keep = true")
        let r1 = try f.poll()
        #expect(r1.status == 0, "\(r1.stderr)")
        do {
            let same = sameMessages(try f.delivered(), corpus)
            #expect(same, "delivered messages differ from the originals")
        }
        #expect(f.user.messageCount() == corpus.count)
        try f.clearDelivered()
        let r2 = try f.poll()
        #expect(r2.status == 0, "\(r2.stderr)")
        #expect(try f.delivered().isEmpty)
        #expect(f.user.messageCount() == corpus.count)
    }

    @Test("new mail arriving between polls: only it is delivered")
    func onlyNewMailBetweenPolls() throws {
        let f = try PopfetchFixture()
        let first = Corpus.messages(5, seed: 3)
        try f.user.deliver(first)
        try f.writeConfig(extra: "keep = true")
        #expect(try f.poll().status == 0)
        do {
            let same = sameMessages(try f.delivered(), first)
            #expect(same, "delivered messages differ from the originals")
        }
        try f.clearDelivered()
        let second = Corpus.messages(3, seed: 4)
        try f.user.deliver(second)
        let r = try f.poll()
        #expect(r.status == 0, "\(r.stderr)")
        do {
            let same = sameMessages(try f.delivered(), second)
            #expect(same, "delivered messages differ from the originals")
        }
    }

    @Test("a poll listing what the last one listed skips the state load, and never hides new mail or a changed record")
    func quietListing() throws {
        let f = try PopfetchFixture()
        try f.user.deliver(Corpus.messages(4, seed: 21))
        try f.writeConfig(extra: "keep = true")
        #expect(try f.poll().status == 0)
        #expect(try f.delivered().count == 4)
        let quietLine = "nothing new: the listing is the last poll's"
        // The second poll plans (nothing to do) and records the listing as quiet; the third skips the plan.
        let r2 = try f.poll(["--log-level", "debug"])
        #expect(r2.status == 0 && !r2.stderr.contains(quietLine), "\(r2.stderr)")
        let r3 = try f.poll(["--log-level", "debug"])
        #expect(r3.status == 0 && r3.stderr.contains(quietLine), "\(r3.stderr)")
        #expect(try f.delivered().count == 4)

        // New mail changes the listing.
        let extra = Corpus.messages(1, seed: 22)
        try f.user.deliver(extra)
        let r4 = try f.poll(["--log-level", "debug"])
        #expect(r4.status == 0 && !r4.stderr.contains(quietLine), "\(r4.stderr)")
        #expect(try f.delivered().count == 5)
        _ = try f.poll()
        #expect(try f.poll(["--log-level", "debug"]).stderr.contains(quietLine))

        // Another program forgets a record: the listing is the same, but the next poll plans again and the message
        // is new to it (delivered again, as a forgotten message is).
        let db = try DatabaseQueue(path: f.statePath)
        try db.write { db in
            try db.execute(sql: "DELETE FROM messages WHERE uidl = (SELECT min(uidl) FROM messages)")
        }
        let r5 = try f.poll(["--log-level", "debug"])
        #expect(r5.status == 0 && !r5.stderr.contains(quietLine), "\(r5.stderr)")
        #expect(try f.delivered().count == 6)
    }

    @Test("fetch_limit bounds each poll; later polls fetch the rest")
    func fetchLimit() throws {
        let f = try PopfetchFixture()
        let corpus = Corpus.messages(7, seed: 5)
        try f.user.deliver(corpus)
        try f.writeConfig(extra: "fetch_limit = 3")
        #expect(try f.poll().status == 0)
        #expect(try f.delivered().count == 3)
        #expect(f.user.messageCount() == 4)
        #expect(try f.poll().status == 0)
        #expect(try f.delivered().count == 6)
        #expect(try f.poll().status == 0)
        do {
            let same = sameMessages(try f.delivered(), corpus)
            #expect(same, "delivered messages differ from the originals")
        }
        #expect(f.user.messageCount() == 0)
    }

    @Test("max_size: oversize messages are skipped (left on the server) or deleted unread")
    func maxSize() throws {
        let small = Corpus.message(1, seed: 6)
        var big = Corpus.message(2, seed: 6)
        big += Array(repeating: UInt8(ascii: "B"), count: 20_000) + [10]

        let f = try PopfetchFixture()
        try f.user.deliver([small, big])
        try f.writeConfig(extra: "max_size = \"10KB\"")
        let r = try f.poll()
        #expect(r.status == 0, "\(r.stderr)")
        do {
            let only = try f.delivered() == [small]
            #expect(only, "only the small message is delivered")
        }
        #expect(f.user.messageCount() == 1, "the oversize message stays on the server")
        #expect(r.stderr.contains("over max_size"))

        let g = try PopfetchFixture()
        try g.user.deliver([small, big])
        try g.writeConfig(extra: "max_size = \"10KB\"\noversize = \"delete\"")
        #expect(try g.poll().status == 0)
        #expect(try g.delivered().count == 1)
        #expect(g.user.messageCount() == 0, "oversize = delete removes it unread")
    }

    @Test("delete_after with keep = true deletes messages delivered long enough ago")
    func deleteAfter() throws {
        let f = try PopfetchFixture()
        let corpus = Corpus.messages(3, seed: 7)
        try f.user.deliver(corpus)
        try f.writeConfig(extra: "keep = true\ndelete_after = \"1s\"")
        #expect(try f.poll().status == 0)
        #expect(f.user.messageCount() == 3)
        sleep(2)
        let r = try f.poll()
        #expect(r.status == 0, "\(r.stderr)")
        #expect(f.user.messageCount() == 0, "delivered more than 1 s ago: deleted")
        #expect(try f.delivered().count == 3, "nothing delivered twice")
    }

    @Test("enabled = false: the account is skipped by a plain poll")
    func disabledAccount() throws {
        let f = try PopfetchFixture()
        try f.user.deliver(Corpus.messages(2, seed: 8))
        try f.writeConfig(extra: "enabled = false")
        let r = try f.poll()
        #expect(r.status == 0)
        #expect(try f.delivered().isEmpty)
        #expect(f.user.messageCount() == 2)
    }
}

@Suite("Built-in Maildir delivery")
struct MaildirDeliveryTests {
    @Test("every message lands byte-exact in new/ (via tmp/), once; nothing left in tmp/")
    func maildir() throws {
        let f = try PopfetchFixture()
        let corpus = Corpus.messages(12, seed: 100)
        try f.user.deliver(corpus)
        let maildir = f.directory + "/Maildir"
        try f.writeConfig(extra: "maildir = \"\(maildir)\"", mda: "")
        let r1 = try f.poll()
        #expect(r1.status == 0, "\(r1.stderr)")
        let names = try FileManager.default.contentsOfDirectory(atPath: maildir + "/new")
        let got = try names.map {
            try PopfetchFixture.stripTraceHeader(
                Array(try Data(contentsOf: URL(fileURLWithPath: maildir + "/new/" + $0))))
        }
        let same = sameMessages(got, corpus)
        #expect(same, "Maildir messages differ from the originals")
        #expect(try FileManager.default.contentsOfDirectory(atPath: maildir + "/tmp").isEmpty)
        #expect(names.allSatisfy { $0.contains(",S=") })
        #expect(f.user.messageCount() == 0)
        let r2 = try f.poll()
        #expect(r2.status == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: maildir + "/new").count == 12)
    }
}
