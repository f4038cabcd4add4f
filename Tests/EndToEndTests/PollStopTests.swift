import Foundation
import MailTestKit
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("popfetch poll stopped by SIGTERM")
struct PollStopTests {
    @Test("accounts still waiting for a slot when SIGTERM comes are not polled, and count as left (exit 75)")
    func queuedAccountsNotStarted() throws {
        let f = try PopfetchFixture()
        try f.user.deliver([Corpus.message(1, seed: 151, bareCR: false)])
        // A server that accepts and never greets: a poll of it would wait for its whole time-out.
        let portFile = f.directory + "/silent-port"
        let log = f.directory + "/silent-connections"
        let server = try Child.spawn(
            [
                "/usr/bin/python3", "-c",
                """
                import socket, sys, os, time
                s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(16); s.settimeout(60)
                open(sys.argv[1] + ".tmp", "w").write(str(s.getsockname()[1])); os.rename(sys.argv[1] + ".tmp", sys.argv[1])
                held = []
                while True:
                    c, _ = s.accept(); held.append(c)
                    open(sys.argv[2], "a").write("%f\\n" % time.time())
                """, portFile, log,
            ], stdout: "/dev/null", stderr: "/dev/null")
        defer { kill(server.pid, SIGKILL); _ = server.wait(timeout: 5) }
        _ = eventually(10) { FileManager.default.fileExists(atPath: portFile) }
        let port = try #require(Int((try? String(contentsOfFile: portFile, encoding: .utf8)) ?? ""))
        let started = f.directory + "/mda-started"
        let mda = f.directory + "/slow-mda"
        try "#!/bin/sh\ntouch '\(started)'\nsleep 2\ncat > /dev/null\n".write(
            toFile: mda, atomically: true, encoding: .utf8)
        chmod(mda, 0o755)
        try "max_concurrent_polls = 1\n".write(toFile: f.configPath, atomically: true, encoding: .utf8)
        try f.writeConfig(mda: mda, append: true)
        for n in 1...3 {
            try f.writeConfig(port: port, timeout: "6s", name: "silent\(n)", append: true, user: "silent\(n)")
        }
        let child = try Child.spawn(
            [Package.binary, "--config", f.configPath, "--state", f.statePath, "poll"],
            stdout: f.directory + "/poll.out", stderr: f.directory + "/poll.err")
        #expect(eventually(30) { FileManager.default.fileExists(atPath: started) })
        let before = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").count
        kill(child.pid, SIGTERM)
        let signalled = Date()
        let status = child.wait(timeout: 60)
        let elapsed = Date().timeIntervalSince(signalled)
        let after = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").count
        let stderr = (try? String(contentsOfFile: f.directory + "/poll.err", encoding: .utf8)) ?? ""
        #expect(after == before, "\(after - before) accounts were still connected to after SIGTERM\n\(stderr)")
        #expect(elapsed < 5, "popfetch ended \(elapsed) s after SIGTERM\n\(stderr)")
        if before == 0 {
            #expect(status == 75, "accounts left unpolled: EX_TEMPFAIL\n\(stderr)")
        } else {
            // Under load the silent accounts may get their slots first: each polled before the stop timed out.
            #expect(status == 69, "a silent account polled before the stop: EX_UNAVAILABLE\n\(stderr)")
        }
    }
}
