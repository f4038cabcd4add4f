import Foundation
import MailTestKit
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The end of the grace period: the service group cancels the polls still in flight, and the daemon exits 0 at
/// once, whatever they were waiting for.
@Suite("Daemon shutdown", .serialized)
struct DaemonShutdownTests {
    static func setGrace(_ f: PopfetchFixture, _ grace: String) throws {
        let config = try String(contentsOfFile: f.configPath, encoding: .utf8)
        try ("shutdown_grace = \"\(grace)\"\n" + config).write(toFile: f.configPath, atomically: true, encoding: .utf8)
        chmod(f.configPath, 0o600)
    }

    @Test(
        "grace over while the MDA hangs: exit 0 right after it, the MDA left running, wake refused, nothing lost",
        .fault(
            .process, "daemon sent SIGTERM while the MDA hangs (shutdown_grace = 3s)",
            expect: "wake refused (69); exit 0 after 2.5-9 s, MDA left running; clean poll delivers each once"))
    func hungMDA() throws {
        let f = try PopfetchFixture()
        let corpus = Corpus.messages(3, seed: 76)
        try f.user.deliver(corpus)
        let pidFile = f.directory + "/hung.pid"
        let mda = f.directory + "/hung-mda"
        // The first delivery hangs (and records its pid); the ones after it deliver.
        try writeExecutable(
            """
            #!/bin/sh
            if [ ! -e \(pidFile) ]; then echo $$ > \(pidFile); exec sleep 300; fi
            exec \(f.mdaScript)

            """, to: mda)
        try f.writeConfig(extra: "interval = \"1h\"", mda: mda)
        try Self.setGrace(f, "3s")
        let daemon = try RunningDaemon.start(f)
        // Stopped (and reaped) by the test itself; only a test that failed early leaves it to this.
        var reaped = false
        defer { if !reaped { _ = daemon.stop(timeout: 5) } }

        let socketPath = (f.statePath as NSString).deletingLastPathComponent + "/daemon.sock"
        var st = stat()
        #expect(stat(socketPath, &st) == 0 && st.st_mode & 0o777 == 0o600, "the control socket is 0600")

        var mdaPID: pid_t = 0
        _ = eventually(15) {
            let text = (try? String(contentsOfFile: pidFile, encoding: .utf8)) ?? ""
            mdaPID = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            return mdaPID > 0
        }
        try #require(mdaPID > 0, "the MDA never ran:\n\(daemon.output)")
        defer { kill(mdaPID, SIGKILL) }

        let start = Date()
        daemon.signal(SIGTERM)
        try daemon.waitFor("shutting down", timeout: 5)
        // While polls drain, the control socket answers that the daemon is going away.
        let wake = try popfetch(["--config", f.configPath, "--state", f.statePath, "wake"])
        #expect(wake.status == 69, "\(wake.stdout) \(wake.stderr)")
        #expect(wake.stderr.contains("shutting down"), "\(wake.stderr)")

        let status = daemon.child.wait(timeout: 30)
        reaped = true
        let elapsed = Date().timeIntervalSince(start)
        #expect(status == 0, "\(daemon.output)")
        #expect(elapsed >= 2.5 && elapsed < 9, "exited \(elapsed) s after SIGTERM (grace 3 s)")
        #expect(daemon.output.contains("abandoning polls in flight: test"), "\(daemon.output)")
        #expect(daemon.output.contains("daemon stopped"), "\(daemon.output)")
        #expect(kill(mdaPID, 0) == 0, "the hung MDA is left to finish, not killed half-way through a delivery")
        #expect(!FileManager.default.fileExists(atPath: socketPath), "the control socket is removed")

        // Nothing was committed for the abandoned delivery, and nothing new started after the cancellation: a
        // clean poll delivers each message exactly once.
        let r = try f.poll()
        #expect(r.status == 0, "\(r.stderr)")
        #expect(sameMessages(try f.delivered(), corpus), "every message exactly once")
        #expect(f.user.messageCount() == 0)
    }

    @Test(
        "grace over while the server stalls in the middle of a RETR: exit 0 right after it",
        .fault(
            .process, "daemon sent SIGTERM while the server trickles a RETR (shutdown_grace = 2s)",
            expect: "exit 0 after 1.5-8 s, the poll logged as abandoned; no crash"))
    func stalledServer() throws {
        let f = try PopfetchFixture()
        // One octet a second: the read time-out (60 s) is far off, the poll just hangs.
        let server = try FaultServer.start(
            f, messages: [.init(uid: "s1", body: faultMessage("stalled"), retr: "trickle")])
        defer { server.stop() }
        try f.writeConfig(extra: "interval = \"1h\"", port: server.port, timeout: "60s")
        try Self.setGrace(f, "2s")
        let daemon = try RunningDaemon.start(f)
        // Stopped (and reaped) by the test itself; only a test that failed early leaves it to this.
        var reaped = false
        defer { if !reaped { _ = daemon.stop(timeout: 5) } }
        #expect(eventually(15) { server.sent().contains("RETR 1") }, "\(daemon.output)")

        let start = Date()
        daemon.signal(SIGTERM)
        let status = daemon.child.wait(timeout: 30)
        reaped = true
        let elapsed = Date().timeIntervalSince(start)
        #expect(status == 0, "\(daemon.output)")
        #expect(elapsed >= 1.5 && elapsed < 8, "exited \(elapsed) s after SIGTERM (grace 2 s)")
        #expect(daemon.output.contains("abandoning polls in flight: test"), "\(daemon.output)")
        #expect(daemon.output.contains("abandoned: the daemon's shutdown grace ran out"), "\(daemon.output)")
        #expect(!daemon.output.contains("Fatal error"), "\(daemon.output)")
    }
}
