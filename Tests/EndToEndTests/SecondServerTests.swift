import Foundation
import MailTestKit
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The end-to-end corpus against a second real POP3 server, Courier (courier-pop 1.0.16, courier-authlib userdb;
/// scripts/courier-instance), through the real popfetch binary and a real MDA. Courier differs from Dovecot where a
/// client can trip: UIDLs look like "UID<n>-<uidvalidity>", CAPA offers no RESP-CODES, SASL or APOP (logins are
/// USER/PASS), a failed login is a bare "-ERR Login failed.", RETR marks messages seen (new/ to cur/ with ":2,S"),
/// and it advertises UTF8 (RFC 6856).
@Suite("End to end against Courier")
struct SecondServerTests {
    func fixture() throws -> PopfetchFixture {
        try PopfetchFixture(pop3: CourierServer.get())
    }

    @Test(
        "first poll delivers every message byte-exact and empties the mailbox (keep = false); second poll delivers nothing"
    )
    func firstPollDeliversEverythingSecondNothing() throws {
        let f = try self.fixture()
        let corpus = Corpus.messages(20, seed: 201)
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
        // Courier answers QUIT before it has unlinked the deleted messages' files: the mailbox empties just after.
        #expect(eventually(5) { f.user.messageCount() == 0 }, "keep = false must empty the mailbox")
        #expect(r1.stderr.contains("delivered=20"), "\(r1.stderr)")

        try f.clearDelivered()
        let r2 = try f.poll()
        #expect(r2.status == 0, "\(r2.stderr)")
        #expect(try f.delivered().isEmpty)
        #expect(r2.stderr.contains("delivered=0"), "\(r2.stderr)")
    }

    @Test(
        "keep = true leaves the mailbox unchanged and a second poll delivers nothing (USER/PASS in clear, STLS, implicit TLS)",
        arguments: ["none", "starttls", "implicit"])
    func keepLeavesMailbox(tls: String) throws {
        let f = try self.fixture()
        let corpus = Corpus.messages(8, seed: 202)
        try f.user.deliver(corpus)
        try f.writeConfig(tls: tls, extra: "keep = true\nauth = \"user\"")
        let r1 = try f.poll()
        #expect(r1.status == 0, "\(tls): \(r1.stderr)")
        do {
            let same = sameMessages(try f.delivered(), corpus)
            #expect(same, "\(tls): delivered messages differ from the originals")
        }
        #expect(try f.delivered().count == corpus.count)
        #expect(f.user.messageCount() == corpus.count, "keep = true must leave every message on the server")
        try f.clearDelivered()
        let r2 = try f.poll()
        #expect(r2.status == 0, "\(tls): \(r2.stderr)")
        #expect(try f.delivered().isEmpty, "the second poll must recognise every message by its UIDL")
        #expect(r2.stderr.contains("delivered=0"), "\(r2.stderr)")
        #expect(f.user.messageCount() == corpus.count)
    }

    @Test("new mail arriving between polls (keep = true): only it is delivered")
    func onlyNewMailBetweenPolls() throws {
        let f = try self.fixture()
        let first = Corpus.messages(5, seed: 203)
        try f.user.deliver(first)
        try f.writeConfig(extra: "keep = true")
        let r1 = try f.poll()
        #expect(r1.status == 0, "\(r1.stderr)")
        do {
            let same = sameMessages(try f.delivered(), first)
            #expect(same, "delivered messages differ from the originals")
        }
        try f.clearDelivered()
        let second = Corpus.messages(3, seed: 204)
        try f.user.deliver(second)
        let r2 = try f.poll()
        #expect(r2.status == 0, "\(r2.stderr)")
        do {
            let same = sameMessages(try f.delivered(), second)
            #expect(same, "only the new messages are delivered")
        }
        #expect(f.user.messageCount() == first.count + second.count)
    }

    @Test("fetch_limit bounds each poll; later polls fetch the rest")
    func fetchLimit() throws {
        let f = try self.fixture()
        let corpus = Corpus.messages(7, seed: 205)
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
        #expect(eventually(5) { f.user.messageCount() == 0 })
    }

    @Test("max_size (from Courier's LIST sizes): the oversize message stays on the server, the small one arrives")
    func maxSize() throws {
        let small = Corpus.message(1, seed: 206)
        var big = Corpus.message(2, seed: 206)
        big += Array(repeating: UInt8(ascii: "B"), count: 20_000) + [10]
        let f = try self.fixture()
        try f.user.deliver([small, big])
        try f.writeConfig(extra: "max_size = \"10KB\"")
        let r = try f.poll()
        #expect(r.status == 0, "\(r.stderr)")
        do {
            let only = try f.delivered() == [small]
            #expect(only, "only the small message is delivered")
        }
        #expect(f.user.messageCount() == 1, "the oversize message stays on the server")
        #expect(r.stderr.contains("over max_size"), "\(r.stderr)")
    }

    @Test("a wrong password (Courier's bare -ERR Login failed.) is an authentication failure: exit 77, nothing taken")
    func wrongPassword() throws {
        let f = try self.fixture()
        try f.user.deliver(Corpus.messages(2, seed: 207))
        try f.writeConfig(password: "Wrong-Secret-courier")
        let r = try f.poll()
        #expect(r.status == 77, "\(r.stderr)")
        #expect(!r.stderr.contains("Wrong-Secret"))
        #expect(try f.delivered().isEmpty)
        #expect(f.user.messageCount() == 2)
    }

    /// Courier advertises `UTF8` (RFC 6856). To a client that has not sent `UTF8`, it does not hand out a message
    /// with 8-bit (UTF-8) headers: RETR returns a multipart "Cannot display Unicode content" notice from "Mail
    /// Delivery Subsystem" with the original attached as message/global, and the RETR octet count no longer matches
    /// LIST's. After `UTF8`, RETR returns the message as stored; popfetch sends `UTF8` before the login whenever CAPA
    /// offers it (without it, this test fails: the notice would be delivered and the original deleted).
    @Test(
        "8-bit (UTF-8) headers arrive byte-exact: popfetch sends UTF8, so Courier hands out the message, not a notice")
    func eightBitHeaders() throws {
        let f = try self.fixture()
        let message = Array(
            "From: J\u{F6}rg M\u{FC}ller <joerg@example.org>\nTo: r\u{E9}sum\u{E9}@example.net\nSubject: Gr\u{FC}\u{DF}e \u{20AC}\nMessage-ID: <utf8.1@corpus.test>\n\nbody \u{E9}\n"
                .utf8)
        try f.user.deliver([message])
        try f.writeConfig()
        let r = try f.poll()
        #expect(r.status == 0, "\(r.stderr)")
        do {
            let same = try f.delivered() == [message]
            #expect(same, "the message with UTF-8 headers is delivered as stored")
        }
        #expect(eventually(5) { f.user.messageCount() == 0 })
    }
}
