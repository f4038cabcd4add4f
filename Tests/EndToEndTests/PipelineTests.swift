import Foundation
import MailTestKit
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// RETRs sent ahead: with PIPELINING, the next small messages are asked for before the current one is read, so a
/// link's round trip is paid once per window instead of once per message. The fault server logs, at each RETR, how
/// many more RETRs had already arrived ("AHEAD n k").
@Suite("RETRs sent ahead (PIPELINING)")
struct PipelineTests {
    /// The client's lines and the server's AHEAD notes, in order, without line ends.
    func lines(_ server: FaultServer) -> [String] {
        server.sent().split(separator: "\r\n").map(String.init)
    }

    func aheadNotes(_ server: FaultServer) -> [String] {
        self.lines(server).filter { $0.hasPrefix("AHEAD ") }
    }

    func mailbox(_ bodies: [String]) -> [FaultServer.Message] {
        bodies.enumerated().map { .init(uid: "u\($0.offset + 1)", body: $0.element) }
    }

    @Test("with PIPELINING, every RETR of a small mailbox goes out in the first write; each arrives whole, is deleted")
    func windowSentAhead() throws {
        let f = try PopfetchFixture()
        let bodies = (1...6).map { faultMessage("ahead \($0)", lines: 20 + $0) }
        let server = try FaultServer.start(f, messages: self.mailbox(bodies), options: ["peek_ahead": true])
        defer { server.stop() }
        try f.writeConfig(port: server.port, timeout: "5s")
        let r = try f.poll()
        #expect(r.status == 0, "\(r.stderr)")
        let delivered = try f.delivered()
        #expect(delivered.count == 6 && Set(delivered) == Set(bodies.map(asDelivered)))
        #expect(server.deleted() == Set((1...6).map { "u\($0)" }))
        #expect(self.aheadNotes(server) == (1...6).map { "AHEAD \($0) \(6 - $0)" }, "\(server.sent())")
        // The DELEs go out together at the end (no RETR left to ride with), before QUIT.
        let tail = self.lines(server).suffix(7)
        #expect(Array(tail) == (1...6).map { "DELE \($0)" } + ["QUIT"], "\(tail)")
    }

    @Test("the window is bounded by octets: a mailbox over 1 MiB is asked for a window at a time, never all at once")
    func windowBoundedByOctets() throws {
        let f = try PopfetchFixture()
        // 5 messages of about 400 KB: at most 2 fit in the 1 MiB window with the one being read.
        let bodies = (1...5).map { faultMessage("big \($0)", lines: 5000) }
        let server = try FaultServer.start(f, messages: self.mailbox(bodies), options: ["peek_ahead": true])
        defer { server.stop() }
        try f.writeConfig(extra: "keep = true", port: server.port, timeout: "10s")
        let r = try f.poll()
        #expect(r.status == 0, "\(r.stderr)")
        #expect(Set(try f.delivered()) == Set(bodies.map(asDelivered)))
        let ahead = self.aheadNotes(server).compactMap { Int($0.split(separator: " ").last ?? "") }
        #expect(ahead.count == 5 && ahead.allSatisfy { $0 <= 2 } && ahead.first == 2, "\(ahead)")
    }

    @Test(
        "no RETR goes out ahead without PIPELINING, nor with size_tolerance (its NOOP's reply must come next)",
        arguments: ["no-pipelining", "size-tolerance"])
    func noWindow(_ mode: String) throws {
        let f = try PopfetchFixture()
        let bodies = (1...4).map { faultMessage("one at a time \($0)") }
        var options: [String: Any] = ["peek_ahead": true]
        if mode == "no-pipelining" { options["capa"] = ["USER", "UIDL", "RESP-CODES"] }
        let server = try FaultServer.start(f, messages: self.mailbox(bodies), options: options)
        defer { server.stop() }
        try f.writeConfig(
            extra: mode == "size-tolerance" ? "size_tolerance = 1" : "", port: server.port, timeout: "5s")
        let r = try f.poll()
        #expect(r.status == 0, "\(r.stderr)")
        #expect(Set(try f.delivered()) == Set(bodies.map(asDelivered)))
        #expect(server.deleted() == ["u1", "u2", "u3", "u4"])
        #expect(self.aheadNotes(server) == (1...4).map { "AHEAD \($0) 0" }, "\(server.sent())")
    }

    @Test(
        "SIGTERM with RETRs sent ahead: those messages are read and dropped, QUIT commits the DELEs, nothing lost",
        .fault(
            .pop3, "SIGTERM during a delivery while the RETRs of 4 more messages are already sent",
            expect: "exit 75, partial; the messages sent ahead are read, not delivered; QUIT deletes only what was "
                + "delivered; the next poll delivers the rest, each once"))
    func stopDrainsWindow() throws {
        let f = try PopfetchFixture()
        let bodies = (1...6).map { faultMessage("stop \($0)", lines: 30) }
        let server = try FaultServer.start(f, messages: self.mailbox(bodies))
        defer { server.stop() }
        let (status, stderr) = try PollStopTests.stopDuringFirstDelivery(f, port: server.port)
        #expect(status == 75, "\(stderr)")
        #expect(stderr.contains("outcome=partial"), "\(stderr)")
        let first = try f.delivered()
        #expect(first.count >= 1 && first.count < 6, "\(first.count) delivered")
        let sent = self.lines(server)
        #expect(sent.filter { $0.hasPrefix("RETR ") }.count == 6, "every RETR had gone out ahead: \(sent)")
        #expect(sent.last == "QUIT", "the session ended in order: \(sent)")
        #expect(server.deleted().count == first.count, "exactly what was delivered is deleted")
        try f.writeConfig(port: server.port, timeout: "10s")
        let r = try f.poll()
        #expect(r.status == 0, "\(r.stderr)")
        let all = try f.delivered()
        #expect(all.count == 6 && Set(all) == Set(bodies.map(asDelivered)), "each message once over the two polls")
        #expect(server.deleted().count == 6)
    }

    @Test(
        "a message whose retrieval failed before is read alone: nothing goes out after its RETR but its NOOP",
        .fault(
            .pop3, "connection dropped mid-RETR with RETRs sent ahead; next poll with the message whole",
            expect: "first poll: the message before it delivered once, nothing of the rest; next poll: the "
                + "failed one's RETR alone, then its NOOP; each message delivered once"))
    func failedBeforeIsConfirmedAlone() throws {
        let f = try PopfetchFixture()
        let bodies = (1...4).map { faultMessage("retry \($0)", lines: 25) }
        var messages = self.mailbox(bodies)
        messages[1].retr = "drop"
        let server = try FaultServer.start(f, messages: messages)
        defer { server.stop() }
        try f.writeConfig(port: server.port, timeout: "5s")
        let first = try f.poll()
        #expect(first.status != 0, "a dropped connection is a failed poll")
        #expect(try f.delivered() == [asDelivered(bodies[0])], "only the first message, whole")
        let before = self.lines(server).count
        messages[1].retr = "ok"
        try server.set(messages: messages, options: ["peek_ahead": true])
        let second = try f.poll()
        #expect(second.status == 0, "\(second.stderr)")
        let all = try f.delivered()
        #expect(all.count == 4 && Set(all) == Set(bodies.map(asDelivered)), "each message once over the two polls")
        let log = Array(self.lines(server).dropFirst(before))
        let retr2 = try #require(log.firstIndex(of: "RETR 2"), "\(log)")
        #expect(Array(log[retr2...].prefix(4)) == ["RETR 2", "AHEAD 2 0", "UIDL 2", "NOOP"], "\(log)")
        #expect(server.deleted() == ["u1", "u2", "u3", "u4"])
    }

    /// One poll against `messages` with `fault` applied, then the fault taken away and polls until the mailbox is
    /// empty: the first poll's result, what it delivered, everything delivered in the end, and how many messages the
    /// server deleted.
    func pollWithFaultThenHealed(
        _ f: PopfetchFixture, _ messages: [FaultServer.Message], fault: (inout [FaultServer.Message]) -> Void
    ) throws -> (first: RunResult, early: [[UInt8]], all: [[UInt8]], deleted: Int) {
        var faulty = messages
        fault(&faulty)
        let server = try FaultServer.start(f, messages: faulty)
        defer { server.stop() }
        try f.writeConfig(port: server.port, timeout: "3s")
        let first = try f.poll()
        let early = try f.delivered()
        try server.set(messages: messages)
        _ = try self.pollUntilEmpty(f, server, count: messages.count)
        return (first, early, try f.delivered(), server.deleted().count)
    }

    /// Polls until nothing is left on the server (at most `polls` times); the first poll's result is returned.
    func pollUntilEmpty(_ f: PopfetchFixture, _ server: FaultServer, count: Int, polls: Int = 4) throws -> RunResult {
        let first = try f.poll()
        for _ in 1..<polls where server.deleted().count < count {
            _ = try f.poll()
        }
        return first
    }

    @Test(
        "a server that skips one reply of the window: no message is taken for another, none is lost",
        .fault(
            .pop3, "no reply at all to the 4th of 8 RETRs sent ahead (the replies after it shift by one)",
            expect: "the shift is caught by the UIDL n after each RETR before anything is handed on: exit non-zero; "
                + "the next polls deliver each message once, and only delivered ones are deleted"))
    func skippedReplyIsCaught() throws {
        let f = try PopfetchFixture()
        // Each body a little longer than the one before, so a shifted one passes the size check.
        let bodies = (1...8).map { faultMessage("step \($0)", lines: 20 + $0) }
        let (first, early, all, deleted) = try self.pollWithFaultThenHealed(f, self.mailbox(bodies)) {
            $0[3].retr = "silent"
        }
        #expect(first.status != 0, "\(first.stderr)")
        #expect(first.stderr.contains("in step"), "\(first.stderr)")
        #expect(Set(early) == Set(bodies[0..<3].map(asDelivered)) && early.count == 3, "\(early.count)")
        #expect(all.count == 8 && Set(all) == Set(bodies.map(asDelivered)), "each message once: \(all.count)")
        #expect(deleted == 8)
    }

    @Test(
        "a single-line reply sent twice just before a RETR reply: caught, the message not delivered with a status line on top",
        .fault(
            .pop3,
            "a second '+OK' right before message 3's RETR reply (a DELE's or UIDL n's reply sent twice), RETRs sent ahead",
            expect: "caught before delivery (the first line is a status line, and without it the message is as long as "
                + "LIST said): exit non-zero, message 3 not handed on; the next poll delivers it once, whole"))
    func repeatedReplyBeforeRetrIsCaught() throws {
        let f = try PopfetchFixture()
        let bodies = (1...4).map { faultMessage("twice \($0)", lines: 20 + $0) }
        let (first, early, all, _) = try self.pollWithFaultThenHealed(f, self.mailbox(bodies)) {
            $0[2].before = "+OK\r\n"
        }
        #expect(first.status != 0, "\(first.stderr)")
        #expect(first.stderr.contains("status line"), "\(first.stderr)")
        #expect(Set(early) == Set(bodies[0..<2].map(asDelivered)) && early.count == 2, "\(early.count)")
        #expect(all.count == 4 && Set(all) == Set(bodies.map(asDelivered)), "each message once, whole: \(all.count)")
    }

    @Test(
        "a server that adds a reply (another message's copy after a message): caught, nothing delivered twice",
        .fault(
            .pop3, "an unsolicited copy of message 3 sent right after message 2's dot line, RETRs sent ahead",
            expect: "the UIDL n check fails at message 2, which is not handed on; exit non-zero; the next poll "
                + "delivers the rest; each message once"))
    func extraReplyIsCaught() throws {
        let f = try PopfetchFixture()
        let bodies = (1...5).map { faultMessage("extra \($0)", lines: 20 + $0) }
        let stuffed = bodies[2].split(separator: "\r\n", omittingEmptySubsequences: false)
            .map { $0.hasPrefix(".") ? "." + $0 : String($0) }.joined(separator: "\r\n")
        let (first, early, all, _) = try self.pollWithFaultThenHealed(f, self.mailbox(bodies)) {
            $0[1].after = "+OK\r\n" + stuffed + ".\r\n"
        }
        #expect(first.status != 0, "\(first.stderr)")
        #expect(early == [asDelivered(bodies[0])], "only the message before the extra reply")
        #expect(all.count == 5 && Set(all) == Set(bodies.map(asDelivered)), "each message once: \(all.count)")
    }

    @Test(
        "a server slow to start each reply: every reply of the window has its own time-out, not one for the batch",
        .fault(
            .pop3, "0.2 s before each reply, 12 RETRs sent ahead, timeout = 2s",
            expect: "exit 0; all 12 delivered once (a time-out shared by the window's 24 replies would end it)"))
    func slowRepliesEachTheirOwnDeadline() throws {
        let f = try PopfetchFixture()
        let bodies = (1...12).map { faultMessage("slow \($0)", lines: 10) }
        let server = try FaultServer.start(f, messages: self.mailbox(bodies), options: ["delay": 0.2])
        defer { server.stop() }
        try f.writeConfig(port: server.port, timeout: "2s")
        let r = try f.poll()
        #expect(r.status == 0, "\(r.stderr)")
        let all = try f.delivered()
        #expect(all.count == 12 && Set(all) == Set(bodies.map(asDelivered)))
    }

    @Test(
        "servers the window must not be used with: no `UIDL n`, or no UIDL at all (fetch-and-delete)",
        arguments: ["uidl-n-refused", "no-uidl"])
    func noWindowWithoutUIDLN(_ mode: String) throws {
        let f = try PopfetchFixture()
        let bodies = (1...4).map { faultMessage("plain \($0)") }
        var options: [String: Any] = ["peek_ahead": true, "uidl_n": "err"]
        var extra = ""
        if mode == "no-uidl" {
            options["capa"] = ["USER", "RESP-CODES", "PIPELINING"]
            options["uidl"] = "err"
            extra = "without_uidl = \"fetch-and-delete\""
        }
        let server = try FaultServer.start(f, messages: self.mailbox(bodies), options: options)
        defer { server.stop() }
        try f.writeConfig(extra: extra, port: server.port, timeout: "5s")
        let r = try f.poll()
        #expect(r.status == 0, "\(r.stderr)")
        let all = try f.delivered()
        #expect(all.count == 4 && Set(all) == Set(bodies.map(asDelivered)))
        #expect(server.deleted() == ["u1", "u2", "u3", "u4"])
        #expect(self.aheadNotes(server) == (1...4).map { "AHEAD \($0) 0" }, "\(server.sent())")
    }

    @Test("a RETR refused in the window, its `UIDL n` refused too: counted refused, the rest delivered, QUIT")
    func refusedRetrAndUIDL() throws {
        let f = try PopfetchFixture()
        let bodies = (1...4).map { faultMessage("refused \($0)") }
        var messages = self.mailbox(bodies)
        messages[1].retr = "err"
        let server = try FaultServer.start(f, messages: messages, options: ["uidl_n": "err-refused"])
        defer { server.stop() }
        try f.writeConfig(port: server.port, timeout: "5s")
        let r = try f.poll()
        #expect(r.status == 75, "\(r.stderr)")
        let all = try f.delivered()
        #expect(all.count == 3 && Set(all) == Set([0, 2, 3].map { asDelivered(bodies[$0]) }))
        #expect(server.deleted() == ["u1", "u3", "u4"])
        #expect(self.lines(server).last == "QUIT")
    }
}
