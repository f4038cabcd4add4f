import Foundation
import MailTestKit
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Replies that arrive before the command (or body) they claim to answer, and LMTP verdicts cut short (found by the
/// adversarial review of issue 10).
extension SMTPFaultTests {
    @Test(
        "a 250 that arrives with the 354, before any of the body was sent, is not the end-of-data reply",
        .fault(
            .smtp, "MTA sends a premature 250 with its 354, then 554 after the dot",
            expect: "poll fails naming the early reply; that message stays on the server; the other saved once"))
    func premature250IsNotADelivery() throws {
        let f = try PopfetchFixture()
        let server = try ScriptedServer.start(.smtp, mode: "early-250", in: f)
        defer { server.stop() }
        let port = server.port
        let out = server.output
        try f.user.deliver([Corpus.message(1, seed: 141, bareCR: false), Corpus.message(2, seed: 141, bareCR: false)])
        try f.writeConfig(
            extra: "smtp = \"127.0.0.1:\(port)\"\nrecipient = \"x@mail.test\"\nsmtp_timeout = \"5s\"", mda: "")
        let r = try f.poll()
        let saved = try FileManager.default.contentsOfDirectory(atPath: out).filter { $0.hasPrefix("msg.") }
        // The 250 that came with the 354 is no verdict: message 1 is deferred (kept on the server, the poll fails) and
        // the connection closed; message 2 goes over a new connection, which accepts it (the one saved copy).
        #expect(saved.count == 1, "\(saved)")
        #expect(r.status != 0, "\(r.stderr)")
        #expect(f.user.messageCount() == 1, "message 1, which the MTA never accepted, stays: \(r.stderr)")
        #expect(r.stderr.contains("before the end of data") || r.stderr.contains("unexpected reply"), "\(r.stderr)")
        #expect(
            !r.stderr.contains("554 5.7.1 refused after the dot") || !r.stderr.contains("MAIL FROM"),
            "the 554 that answered message 1's dot was blamed on message 2's MAIL FROM: \(r.stderr)")
    }
}

extension SMTPFaultTests {
    @Test(
        "LMTP: the connection drops after the first recipient's 250: nothing proven, both deferred, at most one duplicate",
        .fault(
            .smtp, "LMTP connection dropped after the first of 2 recipients' 250 (before the NOOP behind the dot)",
            expect: "poll fails; the next poll sends to both and exits 0; the first has one duplicate; deleted"))
    func lmtpDropAfterFirstRecipient() throws {
        let f = try PopfetchFixture()
        let server = try ScriptedServer.start(.smtp, mode: "lmtp-drop-after-first", in: f)
        defer { server.stop() }
        let port = server.port
        let out = server.output
        try f.user.deliver([Corpus.message(1, seed: 142, bareCR: false)])
        try f.writeConfig(
            extra:
                "lmtp = \"127.0.0.1:\(port)\"\nrecipient = [\"a@mail.test\", \"b@mail.test\"]\nsmtp_timeout = \"5s\"",
            mda: "")
        let r1 = try f.poll()
        let afterFirst = try FileManager.default.contentsOfDirectory(atPath: out).filter { $0.hasPrefix("msg.") }.count
        let r2 = try f.poll()
        let afterSecond = try FileManager.default.contentsOfDirectory(atPath: out).filter { $0.hasPrefix("msg.") }.count
        #expect(r1.status != 0, "\(r1.stderr)")
        // a@ accepted it on the first connection; b@'s reply never came, nor the NOOP's that would prove a@'s in
        // step. Poll 1 sends it once and keeps it for both.
        #expect(afterFirst == 1, "copies after poll 1: \(afterFirst)\n\(r1.stderr)")
        // Poll 2 sends it to both (the scripted server logs commands upper-cased and saves a copy per transaction):
        // a@ gets its one duplicate, every recipient has it, and it is deleted.
        let rcpts = try String(contentsOfFile: out + "/rcpts", encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(
            rcpts == [
                "RCPT TO:<A@MAIL.TEST>", "RCPT TO:<B@MAIL.TEST>", "RCPT TO:<A@MAIL.TEST>", "RCPT TO:<B@MAIL.TEST>",
            ],
            "\(rcpts)")
        #expect(afterSecond == 2, "copies after poll 2: \(afterSecond)\n\(r2.stderr)")
        #expect(r2.status == 0, "\(r2.stderr)")
        #expect(f.user.messageCount() == 0, "delivered to both recipients: deleted")
    }
}

extension SMTPFaultTests {
    @Test(
        "premature 250 with on_permanent_failure = delete: neither message may be deleted (the MTA saved none)",
        .fault(
            .smtp, "premature 250 with the 354, then 554 after the dot; on_permanent_failure = delete",
            expect: "that message is not deleted; the other delivered once"))
    func premature250WithDelete() throws {
        let f = try PopfetchFixture()
        let server = try ScriptedServer.start(.smtp, mode: "early-250", in: f)
        defer { server.stop() }
        let port = server.port
        let out = server.output
        try f.user.deliver([Corpus.message(1, seed: 145, bareCR: false), Corpus.message(2, seed: 145, bareCR: false)])
        try f.writeConfig(
            extra: "smtp = \"127.0.0.1:\(port)\"\nrecipient = \"x@mail.test\"\nsmtp_timeout = \"5s\"\n"
                + "on_permanent_failure = \"delete\"", mda: "")
        let r = try f.poll()
        let saved = try FileManager.default.contentsOfDirectory(atPath: out).filter { $0.hasPrefix("msg.") }
        // Message 2 is accepted on a new connection; message 1, refused by no verdict of the MTA, is kept: a reply
        // out of turn is never a permanent refusal.
        #expect(saved.count == 1, "\(saved)")
        #expect(f.user.messageCount() == 1, "message 1 was deleted although no verdict refused it: \(r.stderr)")
    }
}

extension SMTPFaultTests {
    @Test(
        "SMTP: a 250 sent in the middle of the body, the real 554 after the dot: not taken for delivered, kept",
        .fault(
            .smtp,
            "the MTA answers 250 after the first body line (all of it in the kernel's buffers), 554 after the dot",
            expect: "the NOOP behind the dot finds the replies out of step: deferred, kept; the next poll delivers it"))
    func early250InBody() throws {
        let f = try PopfetchFixture()
        let server = try ScriptedServer.start(.smtp, mode: "early-250-in-body", in: f)
        defer { server.stop() }
        try f.user.deliver([Corpus.message(1, seed: 151, bareCR: false)])
        try f.writeConfig(
            extra: "smtp = \"127.0.0.1:\(server.port)\"\nrecipient = \"a@mail.test\"\nsmtp_timeout = \"5s\"", mda: "")
        let r1 = try f.poll()
        #expect(r1.status == 75, "\(r1.stderr)")
        #expect(r1.stderr.contains("out of step"), "\(r1.stderr)")
        #expect(f.user.messageCount() == 1, "kept: the MTA refused it")
        let saved = {
            try FileManager.default.contentsOfDirectory(atPath: server.output).filter { $0.hasPrefix("msg.") }
        }
        #expect(try saved().isEmpty)
        let r2 = try f.poll()
        #expect(r2.status == 0, "\(r2.stderr)")
        #expect(try saved().count == 1)
        #expect(f.user.messageCount() == 0)
    }

    @Test(
        "SMTP: an extra reply after a message's 250 is not blamed on the next message; nothing is deleted unsaved",
        .fault(
            .smtp, "the MTA saves each message and answers 250, then an extra 554; on_permanent_failure = delete",
            expect: "no message refused or deleted for the extra reply; every one deleted was saved by the MTA"))
    func extraReplyAfterMessage() throws {
        let f = try PopfetchFixture()
        let server = try ScriptedServer.start(.smtp, mode: "extra-reply", in: f)
        defer { server.stop() }
        try f.user.deliver((1...3).map { Corpus.message($0, seed: 152, bareCR: false) })
        try f.writeConfig(
            extra:
                "smtp = \"127.0.0.1:\(server.port)\"\nrecipient = \"a@mail.test\"\nsmtp_timeout = \"5s\"\n"
                + "on_permanent_failure = \"delete\"",
            mda: "")
        let r = try f.poll()
        #expect(r.status == 75, "out of step: deferred, said so: \(r.stderr)")
        #expect(!r.stderr.contains("rejected permanently"), "\(r.stderr)")
        let saved = try FileManager.default.contentsOfDirectory(atPath: server.output).filter { $0.hasPrefix("msg.") }
        #expect(3 - f.user.messageCount() <= saved.count, "every message deleted was saved")
        #expect(f.user.messageCount() == 3, "none stands proven: all kept")
    }
}

extension SMTPFaultTests {
    @Test(
        "SMTP: an MTA that stores each message and then drops the connection: copies bounded by max_attempts",
        .fault(
            .smtp, "the MTA saves the message after the dot and drops the connection without a reply; max_attempts = 2",
            expect: "one resend per poll; marked failed after 2 polls (status says so); a third poll sends nothing"))
    func storeThenDropIsBounded() throws {
        let f = try PopfetchFixture()
        let server = try ScriptedServer.start(.smtp, mode: "store-then-drop", in: f)
        defer { server.stop() }
        try f.user.deliver([Corpus.message(1, seed: 153, bareCR: false)])
        try f.writeConfig(
            extra:
                "smtp = \"127.0.0.1:\(server.port)\"\nrecipient = \"a@mail.test\"\nsmtp_timeout = \"5s\"\n"
                + "max_attempts = 2",
            mda: "")
        let saved = {
            try FileManager.default.contentsOfDirectory(atPath: server.output).filter { $0.hasPrefix("msg.") }
        }
        for n in 0..<2 { #expect(try f.poll().status != 0, "poll \(n)") }
        let afterTwo = try saved().count
        #expect(afterTwo <= 4, "two copies a poll at most: \(afterTwo)")
        _ = try f.poll()
        #expect(try saved().count == afterTwo, "marked failed: not sent again")
        let s = try popfetch(["--config", f.configPath, "--state", f.statePath, "status"])
        #expect(s.stdout.contains("marked failed"), "\(s.stdout)")
        #expect(f.user.messageCount() == 1, "kept on the server")
    }
}

extension SMTPFaultTests {
    @Test(
        "SMTP: one reply too many in the stream does not turn the next message's RCPT refusal into a DATA refusal",
        .fault(
            .smtp,
            "an early 250 in the first message's body (then accepted); 2 recipients, the second always refused 550; "
                + "on_permanent_failure = delete",
            expect: "no message deleted that the MTA did not store for the accepted recipient; no DATA refusal"))
    func leftoverReplyDoesNotShiftTheNext() throws {
        let f = try PopfetchFixture()
        let server = try ScriptedServer.start(.smtp, mode: "early-250-then-accept", in: f)
        defer { server.stop() }
        try f.user.deliver((1...2).map { Corpus.message($0, seed: 154, bareCR: false) })
        try f.writeConfig(
            extra:
                "smtp = \"127.0.0.1:\(server.port)\"\nrecipient = [\"a@mail.test\", \"refuse@mail.test\"]\n"
                + "smtp_timeout = \"5s\"\non_permanent_failure = \"delete\"",
            mda: "")
        let r = try f.poll()
        #expect(!r.stderr.contains("DATA: MTA said 550"), "\(r.stderr)")
        let saved = try FileManager.default.contentsOfDirectory(atPath: server.output).filter { $0.hasPrefix("msg.") }
        #expect(2 - f.user.messageCount() <= saved.count, "every message deleted was stored: \(r.stderr)")
    }
}
