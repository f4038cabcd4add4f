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
        let (server, port, log) = try Self.silentServer(f)
        defer { kill(server.pid, SIGKILL); _ = server.wait(timeout: 5) }
        let started = f.directory + "/mda-started"
        let mda = f.directory + "/slow-mda"
        try writeExecutable("#!/bin/sh\ntouch '\(started)'\nsleep 2\ncat > /dev/null\n", to: mda)
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

    @Test(
        "SIGTERM during a delivery with messages still to fetch: that message finishes, the poll is partial, not ok",
        .fault(
            .process, "`popfetch poll` sent SIGTERM while the MDA delivers the first of 3 messages",
            expect: "exit 75; the account's outcome 'partial' in the log and in status; the next poll delivers the rest"
        ))
    func stopMidPollIsPartial() throws {
        let f = try PopfetchFixture()
        try f.user.deliver((1...3).map { Corpus.message($0, seed: 170, bareCR: false) })
        let (status, stderr) = try Self.stopDuringFirstDelivery(f, extra: "keep = true")
        #expect(status == 75, "messages left for the next poll: EX_TEMPFAIL\n\(stderr)")
        #expect(stderr.contains("outcome=partial") && !stderr.contains("outcome=ok"), "\(stderr)")
        let delivered = try f.delivered().count
        // Only the message in hand: the next one, received while it was delivered, is not started after the signal.
        #expect(delivered == 1, "the message in hand was finished, the rest left: \(delivered)")
        let s = try popfetch(["--config", f.configPath, "--state", f.statePath, "status", "--json"])
        #expect(s.stdout.contains("\"partial\""), "\(s.stdout)")
        try f.writeConfig(extra: "keep = true")
        #expect(try f.poll().status == 0)
        #expect(try f.delivered().count == 3, "each message delivered once over the two polls")
    }

    @Test(
        "a poll killed with SIGKILL shows in status as aborted (exit 1) until the next poll closes it as an error",
        .fault(
            .process, "`popfetch poll` killed with SIGKILL while its MDA runs (as the OOM killer or a crash would)",
            expect: "while it runs, status says the last poll's outcome (exit 0); once it is dead, 'aborted' and "
                + "exit 1; the next poll records it as an error in the history and delivers the message"))
    func killedPollShowsAborted() throws {
        let f = try PopfetchFixture()
        try f.user.deliver([Corpus.message(1, seed: 171, bareCR: false)])
        try f.writeConfig(extra: "keep = true")
        #expect(try f.poll().status == 0)
        try f.user.deliver([Corpus.message(2, seed: 171, bareCR: false)])
        let started = f.directory + "/mda-started"
        let mda = f.directory + "/stuck-mda"
        try writeExecutable(
            "#!/bin/sh\necho $$ > '\(started).tmp'\nmv '\(started).tmp' '\(started)'\nexec sleep 60\n", to: mda)
        try f.writeConfig(extra: "keep = true", mda: mda, timeout: "30s")
        let child = try Child.spawn(
            [Package.binary, "--config", f.configPath, "--state", f.statePath, "poll"],
            stdout: f.directory + "/poll.out", stderr: f.directory + "/poll.err")
        #expect(eventually(30) { FileManager.default.fileExists(atPath: started) }, "the MDA started")
        let status = ["--config", f.configPath, "--state", f.statePath, "status", "--json"]
        let running = try popfetch(status)
        #expect(running.status == 0 && running.stdout.contains("\"ok\""), "a poll in flight is not a failure")
        kill(child.pid, SIGKILL)
        _ = child.wait(timeout: 10)
        if let pid = Int32(
            ((try? String(contentsOfFile: started, encoding: .utf8)) ?? "").trimmingCharacters(
                in: .whitespacesAndNewlines))
        {
            kill(pid, SIGKILL)
        }
        let dead = try popfetch(status)
        #expect(dead.status == 1, "\(dead.stdout)")
        #expect(dead.stdout.contains("\"aborted\"") && dead.stdout.contains("never finished"), "\(dead.stdout)")
        let table = try popfetch(["--config", f.configPath, "--state", f.statePath, "status"])
        #expect(table.status == 1 && table.stdout.contains("aborted"), "\(table.stdout)")
        try f.writeConfig(extra: "keep = true")
        #expect(try f.poll().status == 0)
        #expect(try f.delivered().count == 2, "the message in flight was delivered by the next poll")
        let after = try popfetch(status)
        #expect(after.status == 0 && !after.stdout.contains("aborted"), "\(after.stdout)")
        let history = try popfetch(
            ["--config", f.configPath, "--state", f.statePath, "status", "--account", f.accountName, "--history", "5"])
        #expect(
            history.stdout.contains("never finished"), "the killed poll is an error in the history\n\(history.stdout)")
    }

    /// Runs `popfetch poll` with an MDA that takes a second before saving, and sends SIGTERM as the first MDA starts.
    /// Returns the exit status and stderr.
    static func stopDuringFirstDelivery(_ f: PopfetchFixture, extra: String = "", port: Int? = nil) throws
        -> (Int32?, String)
    {
        let started = f.directory + "/mda-started"
        let mda = f.directory + "/slow-save-mda"
        try writeExecutable("#!/bin/sh\ntouch '\(started)'\nsleep 1\nexec '\(f.mdaScript)'\n", to: mda)
        try f.writeConfig(extra: extra, mda: mda, port: port, timeout: "10s")
        let child = try Child.spawn(
            [Package.binary, "--config", f.configPath, "--state", f.statePath, "poll"],
            stdout: f.directory + "/poll.out", stderr: f.directory + "/poll.err")
        #expect(eventually(30) { FileManager.default.fileExists(atPath: started) }, "the first MDA started")
        kill(child.pid, SIGTERM)
        let status = child.wait(timeout: 30)
        return (status, (try? String(contentsOfFile: f.directory + "/poll.err", encoding: .utf8)) ?? "")
    }

    /// A server that accepts connections and never says a word: a poll of it waits for its whole time-out. Returns
    /// it, its port, and a file with a line per connection accepted.
    static func silentServer(_ f: PopfetchFixture) throws -> (Child, Int, String) {
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
        _ = eventually(10) { FileManager.default.fileExists(atPath: portFile) }
        let port = try #require(Int((try? String(contentsOfFile: portFile, encoding: .utf8)) ?? ""))
        return (server, port, log)
    }

    /// Starts `popfetch poll`, waits until the silent server has a connection, sends SIGTERM; returns the exit
    /// status, the seconds from the signal to the exit, and stderr.
    static func stopWhileConnected(_ f: PopfetchFixture, log: String) throws -> (Int32, Double, String) {
        let child = try Child.spawn(
            [Package.binary, "--config", f.configPath, "--state", f.statePath, "poll"],
            stdout: f.directory + "/poll.out", stderr: f.directory + "/poll.err")
        #expect(eventually(30) { FileManager.default.fileExists(atPath: log) }, "popfetch never connected")
        Thread.sleep(forTimeInterval: 0.5)
        kill(child.pid, SIGTERM)
        let signalled = Date()
        let status = child.wait(timeout: 90)
        let stderr = (try? String(contentsOfFile: f.directory + "/poll.err", encoding: .utf8)) ?? ""
        return (status, Date().timeIntervalSince(signalled), stderr)
    }

    @Test(
        "SIGTERM while the POP3 server has not greeted: popfetch stops at once, not at the time-out",
        .fault(
            .process, "`popfetch poll` sent SIGTERM while connected to a POP3 server that never greets (timeout 60s)",
            expect: "exit 75 within 3 s, saying it stopped before fetching; the poll not recorded as made"))
    func stopBeforeGreeting() throws {
        let f = try PopfetchFixture()
        let (server, port, log) = try Self.silentServer(f)
        defer { kill(server.pid, SIGKILL); _ = server.wait(timeout: 5) }
        try f.writeConfig(port: port, timeout: "60s")
        let (status, elapsed, stderr) = try Self.stopWhileConnected(f, log: log)
        #expect(status == 75, "\(stderr)")
        #expect(elapsed < 3, "popfetch ended \(elapsed) s after SIGTERM\n\(stderr)")
        #expect(stderr.contains("stopped before any message was fetched"), "\(stderr)")
        // A poll stopped before it did anything is not recorded as one: the account has never been polled.
        let s = try popfetch(["--config", f.configPath, "--state", f.statePath, "status", "--json"])
        #expect(s.stdout.contains("never"), "\(s.stdout)")
    }

    @Test(
        "SIGTERM once the listing is in: the session finishes in order (DELEs, QUIT, records), not cut short",
        .fault(
            .process, "`popfetch poll` sent SIGTERM while the server holds its reply to QUIT (only DELEs to send)",
            expect: "exit 0; the deletions recorded; no 'stopped' error; nothing delivered again"))
    func stopAfterListing() throws {
        let f = try PopfetchFixture()
        let msgs = (0..<2).map { FaultServer.Message(uid: "q\($0)", body: faultMessage("quit \($0)")) }
        let server = try FaultServer.start(f, messages: msgs)
        defer { server.stop() }
        try f.writeConfig(extra: "keep = true", port: server.port, timeout: "10s")
        #expect(try f.poll().status == 0)
        try f.writeConfig(extra: "keep = false", port: server.port, timeout: "10s")
        try server.set(messages: msgs, options: ["quit": "slow"])
        let child = try Child.spawn(
            [Package.binary, "--config", f.configPath, "--state", f.statePath, "poll"],
            stdout: f.directory + "/poll.out", stderr: f.directory + "/poll.err")
        // The log holds every session's lines: the second QUIT is this poll's.
        #expect(eventually(30) { server.sent().components(separatedBy: "QUIT").count > 2 }, "the session reached QUIT")
        kill(child.pid, SIGTERM)
        let status = child.wait(timeout: 30)
        let stderr = (try? String(contentsOfFile: f.directory + "/poll.err", encoding: .utf8)) ?? ""
        #expect(status == 0, "\(stderr)")
        #expect(!stderr.contains("stopped before"), "\(stderr)")
        #expect(server.deleted() == ["q0", "q1"])
        #expect(try f.delivered().count == 2, "each delivered once, by the first poll")
        let s = try popfetch(["--config", f.configPath, "--state", f.statePath, "status", "--json"])
        #expect(s.stdout.contains("\"outcome\": \"ok\"") || s.stdout.contains("\"outcome\":\"ok\""), "\(s.stdout)")
    }

    /// Starts `popfetch poll`, waits until the fault server holds back its listing, sends SIGTERM; returns the exit
    /// status, the seconds from the signal to the exit, and stderr.
    static func stopWhileListing(_ f: PopfetchFixture, _ server: FaultServer) throws -> (Int32, Double, String) {
        let child = try Child.spawn(
            [Package.binary, "--config", f.configPath, "--state", f.statePath, "poll"],
            stdout: f.directory + "/poll.out", stderr: f.directory + "/poll.err")
        #expect(eventually(30) { server.sent().contains("(listing held)") }, "the listing was asked for")
        kill(child.pid, SIGTERM)
        let signalled = Date()
        let status = child.wait(timeout: 30)
        let stderr = (try? String(contentsOfFile: f.directory + "/poll.err", encoding: .utf8)) ?? ""
        return (status, Date().timeIntervalSince(signalled), stderr)
    }

    @Test(
        "SIGTERM while the listing comes in: popfetch lets it arrive, QUITs, fetches nothing; the next poll gets all",
        .fault(
            .process, "`popfetch poll` sent SIGTERM while the server sends its UIDL listing (held 2 s)",
            expect:
                "exit 75 once the listing is in, QUIT sent, no RETR or DELE; the next poll delivers each message once"))
    func stopDuringListing() throws {
        let f = try PopfetchFixture()
        let msgs = (0..<3).map { FaultServer.Message(uid: "l\($0)", body: faultMessage("listing \($0)")) }
        let server = try FaultServer.start(f, messages: msgs, options: ["uidl": "slow"])
        defer { server.stop() }
        try f.writeConfig(port: server.port, timeout: "10s")
        let (status, _, stderr) = try Self.stopWhileListing(f, server)
        #expect(status == 75, "\(stderr)")
        #expect(stderr.contains("stopped before any message was fetched"), "\(stderr)")
        let after = server.sent().components(separatedBy: "(listing held)").last ?? ""
        #expect(after.contains("QUIT"), "the session ended with QUIT once the listing was in: \(after)")
        #expect(!after.contains("RETR") && !after.contains("DELE"), "nothing acted on: \(after)")
        #expect(try f.delivered().isEmpty)
        try server.set(messages: msgs)
        #expect(try f.poll().status == 0)
        #expect(try f.delivered().count == 3, "each message once, by the next poll")
    }

    @Test(
        "SIGTERM while the listing stalls: popfetch waits for it only so long, then stops as stopped (75), not as failed",
        .fault(
            .process, "`popfetch poll` sent SIGTERM while the server stalls in its UIDL listing (timeout 3s)",
            expect: "exit 75 within 6 s, 'stopped before any message was fetched'; the poll not recorded as made"))
    func stopDuringStalledListing() throws {
        let f = try PopfetchFixture()
        let msgs = [FaultServer.Message(uid: "s0", body: faultMessage("stalled"))]
        let server = try FaultServer.start(f, messages: msgs, options: ["uidl": "stall"])
        defer { server.stop() }
        try f.writeConfig(port: server.port, timeout: "3s")
        let (status, elapsed, stderr) = try Self.stopWhileListing(f, server)
        #expect(status == 75, "\(stderr)")
        #expect(elapsed < 6, "popfetch ended \(elapsed) s after SIGTERM")
        #expect(stderr.contains("stopped before any message was fetched"), "\(stderr)")
        let s = try popfetch(["--config", f.configPath, "--state", f.statePath, "status", "--json"])
        #expect(s.stdout.contains("never"), "a stopped poll is not recorded as one: \(s.stdout)")
    }

    @Test(
        "poll --dry-run and check, SIGTERM while the listing comes in: the listing arrives, QUIT, exit 75; twice: at once",
        .fault(
            .process, "`popfetch poll --dry-run` and `popfetch check` sent SIGTERM while the server sends its listing",
            expect: "exit 75 once the listing is in, with QUIT; a second SIGTERM ends the command at once"))
    func lookingStopsDuringListing() throws {
        let f = try PopfetchFixture()
        let msgs = (0..<2).map { FaultServer.Message(uid: "d\($0)", body: faultMessage("dry \($0)")) }
        let server = try FaultServer.start(f, messages: msgs, options: ["uidl": "slow"])
        defer { server.stop() }
        try f.writeConfig(port: server.port, timeout: "10s")
        for (i, command) in [["poll", "--dry-run"], ["check"]].enumerated() {
            let before = server.sent().components(separatedBy: "(listing held)").count
            let child = try Child.spawn(
                [Package.binary, "--config", f.configPath, "--state", f.statePath] + command,
                stdout: f.directory + "/look\(i).out", stderr: f.directory + "/look\(i).err")
            #expect(
                eventually(30) { server.sent().components(separatedBy: "(listing held)").count > before },
                "\(command): the listing was asked for")
            kill(child.pid, SIGTERM)
            let status = child.wait(timeout: 30)
            let out = (try? String(contentsOfFile: f.directory + "/look\(i).out", encoding: .utf8)) ?? ""
            #expect(status == 75, "\(command): \(out)")
            #expect(out.contains("stopped before any message was fetched"), "\(command): \(out)")
            let after = server.sent().components(separatedBy: "(listing held)").last ?? ""
            #expect(after.contains("QUIT"), "\(command): QUIT once the listing was in: \(after)")
        }
        // A second signal does not wait for the listing.
        let before = server.sent().components(separatedBy: "(listing held)").count
        let child = try Child.spawn(
            [Package.binary, "--config", f.configPath, "--state", f.statePath, "check"],
            stdout: "/dev/null", stderr: "/dev/null")
        #expect(eventually(30) { server.sent().components(separatedBy: "(listing held)").count > before })
        kill(child.pid, SIGTERM)
        usleep(200_000)
        kill(child.pid, SIGTERM)
        let signalled = Date()
        _ = child.wait(timeout: 30)
        #expect(Date().timeIntervalSince(signalled) < 1.5, "the second SIGTERM ended check at once")
        #expect(try f.delivered().isEmpty)
        #expect(server.deleted().isEmpty)
    }

    @Test(
        "SIGTERM while Dovecot sends a 20,000-entry listing: the mailbox is not left locked for the next session",
        .fault(
            .process, "`popfetch poll` sent SIGTERM right after it asked a real Dovecot for a 20,000-message listing",
            expect: "exit 75 (or 0, had the listing already arrived); the next poll is not refused [IN-USE]"))
    func stopDuringDovecotListing() throws {
        // Dovecot 2.3 keeps a mailbox's POP3 session lock for minutes when the client goes away while it sends a
        // listing (pop3_lock_session): a stop that cut the connection there locked out every client of the mailbox.
        let f = try PopfetchFixture()
        try f.user.deliver((0..<20_000).map { Array("Subject: m\($0)\r\n\r\nbody \($0)\r\n".utf8) })
        // keep = true and no records: a poll that got past its listing would pause the account (flood guard),
        // delivering nothing.
        try f.writeConfig(extra: "keep = true", timeout: "30s")
        let err = f.directory + "/poll.err"
        let child = try Child.spawn(
            [Package.binary, "--config", f.configPath, "--state", f.statePath, "poll", "--log-level", "trace"],
            stdout: f.directory + "/poll.out", stderr: err)
        #expect(
            eventually(30) { ((try? String(contentsOfFile: err, encoding: .utf8)) ?? "").contains("> UIDL") },
            "the listing was asked for")
        kill(child.pid, SIGTERM)
        let status = child.wait(timeout: 60)
        #expect(status == 75, "\(((try? String(contentsOfFile: err, encoding: .utf8)) ?? "").suffix(2000))")
        let next = try f.poll()
        #expect(!next.stderr.contains("locked"), "\(next.stderr)")
        #expect(
            next.stderr.contains("paused"), "the next poll got the listing (and paused the account): \(next.stderr)")
        #expect(try f.delivered().isEmpty)
    }

    @Test(
        "SIGTERM while the MTA withholds its greeting, a message in hand: popfetch stops at once, the mail stays",
        .fault(
            .process,
            "`popfetch poll` sent SIGTERM while the MTA (SMTP) has not greeted, the first message fetched (timeout 60s)",
            expect: "exit 75 within 3 s; nothing delivered or deleted; the next poll delivers each message once"))
    func stopBeforeMTAGreeting() throws {
        let f = try PopfetchFixture()
        let smtp = try ScriptedServer.start(.smtp, mode: "no-greeting", in: f)
        defer { smtp.stop() }
        try f.user.deliver([Corpus.message(1, seed: 171, bareCR: false), Corpus.message(2, seed: 172, bareCR: false)])
        try f.writeConfig(
            extra: "smtp = \"127.0.0.1:\(smtp.port)\"\nrecipient = \"x@mail.test\"", mda: "", timeout: "60s")
        let child = try Child.spawn(
            [Package.binary, "--config", f.configPath, "--state", f.statePath, "poll"],
            stdout: f.directory + "/poll.out", stderr: f.directory + "/poll.err")
        let connections = smtp.output + "/connections"
        #expect(eventually(30) { FileManager.default.fileExists(atPath: connections) }, "never reached the MTA")
        Thread.sleep(forTimeInterval: 0.5)
        kill(child.pid, SIGTERM)
        let signalled = Date()
        let status = child.wait(timeout: 30)
        let elapsed = Date().timeIntervalSince(signalled)
        let stderr = (try? String(contentsOfFile: f.directory + "/poll.err", encoding: .utf8)) ?? ""
        #expect(status == 75, "\(stderr)")
        #expect(elapsed < 3, "popfetch ended \(elapsed) s after SIGTERM\n\(stderr)")
        #expect(stderr.contains("asked to stop while the MTA session was being set up"), "\(stderr)")
        #expect(f.user.messageCount() == 2, "nothing deleted: nothing was delivered\n\(stderr)")
        // The next poll, with an MDA that works, delivers each message once.
        try f.writeConfig(timeout: "10s")
        let r = try f.poll()
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try f.delivered().count == 2)
        #expect(f.user.messageCount() == 0)
    }

    @Test(
        "SIGTERM while the session for a bounce is being set up: the refused message is not marked failed",
        .fault(
            .process,
            "`popfetch poll` sent SIGTERM while the MTA (SMTP) has not greeted the connection that is to carry a "
                + "bounce (on_permanent_failure = bounce; the message refused 554, the connection closed)",
            expect: "exit 75; no bounce; the message kept and not marked failed: the next poll delivers it"))
    func stopBeforeBounceSession() throws {
        let f = try PopfetchFixture()
        let smtp = try ScriptedServer.start(.smtp, mode: "reject-then-no-greeting", in: f)
        defer { smtp.stop() }
        try f.user.deliver([Corpus.message(1, seed: 173, bareCR: false)])
        try f.writeConfig(
            extra: "smtp = \"127.0.0.1:\(smtp.port)\"\nrecipient = \"x@mail.test\"\n"
                + "on_permanent_failure = \"bounce\"\nbounce_to = \"postmaster@mail.test\"",
            mda: "", timeout: "60s")
        let child = try Child.spawn(
            [Package.binary, "--config", f.configPath, "--state", f.statePath, "poll"],
            stdout: f.directory + "/poll.out", stderr: f.directory + "/poll.err")
        let connections = smtp.output + "/connections"
        #expect(
            eventually(30) { (try? String(contentsOfFile: connections, encoding: .utf8)) == "2" },
            "the bounce's connection never came")
        Thread.sleep(forTimeInterval: 0.5)
        kill(child.pid, SIGTERM)
        let status = child.wait(timeout: 30)
        let stderr = (try? String(contentsOfFile: f.directory + "/poll.err", encoding: .utf8)) ?? ""
        #expect(status == 75, "\(stderr)")
        #expect(!stderr.contains("marked failed"), "\(stderr)")
        #expect(f.user.messageCount() == 1, "kept on the server\n\(stderr)")
        // Not marked failed: the next poll (an MDA that takes it) delivers it.
        try f.writeConfig(timeout: "10s")
        let r = try f.poll()
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try f.delivered().count == 1, "\(r.stderr)")
        #expect(f.user.messageCount() == 0)
    }
}
