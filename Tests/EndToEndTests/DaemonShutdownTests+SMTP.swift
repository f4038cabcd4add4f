import Foundation
import MailTestKit
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Adversarial review of issue 10: the grace running out while SMTP is in flight.
extension DaemonShutdownTests {

    @Test(
        "grace over while the MTA has not answered the final dot: prompt exit, the message stays on the server",
        .fault(
            .process, "daemon sent SIGTERM while the MTA withholds its reply to the dot (shutdown_grace = 2s)",
            expect: "exit 0 within 8 s; message stays on the server"))
    func graceOverAfterDot() throws {
        let f = try PopfetchFixture()
        let smtp = try ScriptedServer.start(.smtp, mode: "stall-after-dot-long", in: f)
        defer { smtp.stop() }
        let port = smtp.port
        try f.user.deliver([Corpus.message(1, seed: 143, bareCR: false)])
        try f.writeConfig(
            extra: "interval = \"1h\"\nsmtp = \"127.0.0.1:\(port)\"\nrecipient = \"x@mail.test\"", mda: "")
        try Self.setGrace(f, "2s")
        let daemon = try RunningDaemon.start(f)
        var reaped = false
        defer { if !reaped { _ = daemon.stop(timeout: 5) } }
        Thread.sleep(forTimeInterval: 3)  // connected, the body sent, waiting for the 250
        let start = Date()
        daemon.signal(SIGTERM)
        let status = daemon.child.wait(timeout: 30)
        reaped = true
        let elapsed = Date().timeIntervalSince(start)
        #expect(status == 0, "\(daemon.output)")
        #expect(elapsed < 8, "exited \(elapsed) s after SIGTERM (grace 2 s)\n\(daemon.output)")
        #expect(f.user.messageCount() == 1, "not deleted without a 250:\n\(daemon.output)")
    }

    @Test(
        "grace over while the MTA stops reading mid-DATA (the write blocks): prompt exit, the message stays",
        .fault(
            .process, "daemon sent SIGTERM while the MTA stops reading mid-DATA (shutdown_grace = 2s)",
            expect: "exit 0 within 8 s; message stays on the server"))
    func graceOverBlockedWrite() throws {
        let f = try PopfetchFixture()
        let smtp = try ScriptedServer.start(.smtp, mode: "stop-reading", in: f)
        defer { smtp.stop() }
        let port = smtp.port
        var m = Corpus.message(1, seed: 144, bareCR: false)
        for _ in 0..<200_000 { m += Array("a line of a message that the MTA will never read\n".utf8) }
        try f.user.deliver([m])
        try f.writeConfig(
            extra: "interval = \"1h\"\nsmtp = \"127.0.0.1:\(port)\"\nrecipient = \"x@mail.test\"", mda: "",
            timeout: "60s")
        try Self.setGrace(f, "2s")
        let daemon = try RunningDaemon.start(f)
        var reaped = false
        defer { if !reaped { _ = daemon.stop(timeout: 5) } }
        Thread.sleep(forTimeInterval: 5)  // fetched, DATA started, the write blocked
        let start = Date()
        daemon.signal(SIGTERM)
        let status = daemon.child.wait(timeout: 60)
        reaped = true
        let elapsed = Date().timeIntervalSince(start)
        #expect(status == 0, "\(daemon.output)")
        #expect(elapsed < 8, "exited \(elapsed) s after SIGTERM (grace 2 s)\n\(daemon.output)")
        #expect(f.user.messageCount() == 1, "\(daemon.output)")
    }
}
