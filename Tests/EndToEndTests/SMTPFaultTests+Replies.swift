import Foundation
import MailTestKit
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Replies a real MTA does not give on demand, which the old deliverer got wrong (issue 10).
extension SMTPFaultTests {
    @Test(
        "every pipelined RCPT refused, yet DATA answered 354: a lone dot ends it; the next message follows on the same connection",
        .fault(
            .smtp, "every pipelined RCPT refused (550), yet DATA answered 354",
            expect: "a lone dot ends the empty DATA; next message delivered on the same connection; refused one kept"))
    func allRecipientsRefusedThen354() throws {
        let f = try PopfetchFixture()
        let server = try ScriptedServer.start(.smtp, mode: "refuse-first-transaction", in: f)
        defer { server.stop() }
        let port = server.port
        let out = server.output
        let corpus = [Corpus.message(1, seed: 133, bareCR: false), Corpus.message(2, seed: 133, bareCR: false)]
        try f.user.deliver(corpus)
        // Without the lone dot the second message's commands would be read as message text, and popfetch would wait
        // for their replies until smtp_timeout.
        try f.writeConfig(
            extra: "smtp = \"127.0.0.1:\(port)\"\nrecipient = \"x@mail.test\"\nsmtp_timeout = \"5s\"", mda: "")
        let r = try f.poll()
        #expect(r.stderr.contains("550"), "\(r.stderr)")
        #expect(r.stderr.contains("delivered=1"), "\(r.stderr)")
        let empty = try? String(contentsOfFile: out + "/empty-data", encoding: .utf8)
        #expect(empty == "1", "the DATA without recipients was ended with a lone dot")
        let connections = try String(contentsOfFile: out + "/connections", encoding: .utf8)
        #expect(connections == "1", "one connection carried both messages")
        let saved = try FileManager.default.contentsOfDirectory(atPath: out).filter { $0.hasPrefix("msg.") }
        try #require(saved.count == 1, "\(saved)")
        let got = try PopfetchFixture.stripTraceHeader(
            Array(try Data(contentsOf: URL(fileURLWithPath: out + "/" + saved[0]))))
        let whole = corpus.contains(got)
        #expect(whole, "the accepted message arrived whole, nothing of the refused transaction in it")
        #expect(f.user.messageCount() == 1, "the refused message stays on the server")
    }

    @Test(
        "a 2xx to DATA is a protocol error, not a delivery: deferred, the message stays on the server",
        .fault(
            .smtp, "MTA answers DATA with 250 instead of 354",
            expect: "exit 75 naming DATA; nothing saved by the MTA; message stays on the server"))
    func dataAnsweredWith250() throws {
        let f = try PopfetchFixture()
        let server = try ScriptedServer.start(.smtp, mode: "data-250", in: f)
        defer { server.stop() }
        let port = server.port
        let out = server.output
        try f.user.deliver([Corpus.message(1, seed: 134, bareCR: false)])
        try f.writeConfig(extra: "smtp = \"127.0.0.1:\(port)\"\nrecipient = \"x@mail.test\"", mda: "")
        let r = try f.poll()
        #expect(r.status == 75, "\(r.stderr)")
        #expect(r.stderr.contains("DATA"), "\(r.stderr)")
        #expect(f.user.messageCount() == 1, "kept on the server")
        let saved = try FileManager.default.contentsOfDirectory(atPath: out).filter { $0.hasPrefix("msg.") }
        #expect(saved.isEmpty)
    }

    @Test(
        "552 to RCPT is temporary (RFC 5321 §4.5.3.1.10): deferred and kept, even with on_permanent_failure = delete",
        .fault(
            .smtp, "MTA answers 552 to RCPT, with on_permanent_failure = delete",
            expect: "exit 75 showing 552; message kept; the next poll tries it again (not marked failed)"))
    func rcpt552IsTemporary() throws {
        let f = try PopfetchFixture()
        let server = try ScriptedServer.start(.smtp, mode: "rcpt-552", in: f)
        defer { server.stop() }
        let port = server.port
        try f.user.deliver([Corpus.message(1, seed: 135, bareCR: false)])
        try f.writeConfig(
            extra: "smtp = \"127.0.0.1:\(port)\"\nrecipient = \"x@mail.test\"\non_permanent_failure = \"delete\"",
            mda: "")
        let r = try f.poll()
        #expect(r.status == 75, "\(r.stderr)")
        #expect(r.stderr.contains("552"), "\(r.stderr)")
        #expect(f.user.messageCount() == 1, "a temporary refusal never deletes")
        let again = try f.poll()
        #expect(!again.stderr.contains("skipped=1"), "not marked failed: tried again: \(again.stderr)")
    }
}
