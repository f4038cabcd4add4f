import Foundation
import MailTestKit
import Testing

/// Issue 12: a safe first run. `poll --keep` deletes nothing, `poll --dry-run` changes nothing, and `forget` brings
/// messages back for the next poll. Against the test Dovecot, with the fixture's MDA.
@Suite("A safe first run: poll --keep, poll --dry-run, forget")
struct FirstRunTests {
    @Test("poll --keep delivers and deletes nothing on the server, though the account says keep = false")
    func pollKeep() throws {
        let f = try PopfetchFixture()
        let mail = Corpus.messages(3, seed: 121)
        try f.user.deliver(mail)
        try f.writeConfig(extra: "keep = false")
        let r = try f.poll(["--keep"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(sameMessages(try f.delivered(), mail))
        #expect(f.user.messageCount() == 3, "nothing deleted with --keep")
        // Without --keep, the next poll deletes what was delivered, and delivers nothing again.
        let later = try f.poll()
        #expect(later.status == 0, "\(later.stderr)")
        #expect(try f.delivered().count == 3)
        #expect(f.user.messageCount() == 0)
    }

    @Test("poll --dry-run says what a poll would do, and does none of it: nothing delivered, deleted or recorded")
    func dryRun() throws {
        let f = try PopfetchFixture()
        let mail = Corpus.messages(3, seed: 122)
        try f.user.deliver(mail)
        try f.writeConfig(extra: "keep = false")
        let r = try f.poll(["--dry-run"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("test: 3 on the server, 3 new"), "\(r.stdout)")
        #expect(r.stdout.contains("would fetch 3 messages"), "\(r.stdout)")
        #expect(r.stdout.contains("and deliver to the MDA"), "\(r.stdout)")
        #expect(r.stdout.contains("would then delete them from the server (keep = false)"), "\(r.stdout)")
        #expect(r.stdout.contains("dry run: nothing was fetched, delivered, deleted or recorded"), "\(r.stdout)")
        #expect(try f.delivered().isEmpty)
        #expect(f.user.messageCount() == 3)
        // Looking before the first poll creates no state: dry run, check and serverinfo leave no database behind.
        #expect(!FileManager.default.fileExists(atPath: f.statePath), "the dry run created \(f.statePath)")
        let check = try popfetch(["--config", f.configPath, "--state", f.statePath, "check"])
        #expect(check.stdout.contains("test: 3 new messages"), "\(check.stdout) \(check.stderr)")
        let info = try popfetch(["--config", f.configPath, "--state", f.statePath, "serverinfo"])
        #expect(info.status == 0, "\(info.stdout) \(info.stderr)")
        #expect(!FileManager.default.fileExists(atPath: f.statePath), "check or serverinfo created \(f.statePath)")
        let s = try popfetch(["--config", f.configPath, "--state", f.statePath, "status", "--json"])
        #expect(
            s.stdout.contains("\"outcome\": \"never\"") || s.stdout.contains("\"outcome\":\"never\""), "\(s.stdout)")
        // With --keep the preview says the messages stay; then a real poll delivers all three: none was recorded.
        let kept = try f.poll(["--dry-run", "--keep"])
        #expect(kept.stdout.contains("would leave them on the server (keep = true)"), "\(kept.stdout)")
        #expect(try f.poll().status == 0)
        #expect(sameMessages(try f.delivered(), mail))
        let after = try f.poll(["-n"])
        #expect(after.stdout.contains("test: 0 on the server, 0 new"), "\(after.stdout)")
        #expect(after.stdout.contains("nothing to fetch or delete"), "\(after.stdout)")
    }

    @Test("a look without state, interrupted (a server that never answers), leaves no temporary state behind")
    func interruptedLookLeavesNothing() throws {
        let f = try PopfetchFixture()
        let (silent, port) = try listeningSocket()
        defer { close(silent) }
        try f.writeConfig(port: port, timeout: "30s")
        let tmp = f.directory + "/tmp"
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        for command in [["check"], ["serverinfo"], ["poll", "--dry-run"]] {
            let child = try Child.spawn(
                [Package.binary, "--config", f.configPath, "--state", f.statePath] + command,
                environment: ["TMPDIR": tmp], stdout: f.directory + "/look.out", stderr: f.directory + "/look.err")
            #expect(
                eventually(10) {
                    ((try? FileManager.default.contentsOfDirectory(atPath: tmp)) ?? []).contains {
                        $0.hasPrefix("popfetch-look.")
                    }
                }, "\(command): no temporary directory appeared")
            kill(child.pid, SIGTERM)
            // check and poll --dry-run stop as a poll does (exit 75); serverinfo, which logs in nowhere, dies by it.
            let expected = command == ["serverinfo"] ? 128 + SIGTERM : 75
            #expect(child.wait(timeout: 10) == expected, "\(command)")
            let left = try FileManager.default.contentsOfDirectory(atPath: tmp)
            #expect(left.isEmpty, "\(command) left \(left)")
        }
        #expect(!FileManager.default.fileExists(atPath: f.statePath))
    }

    @Test("forget --uid: the next poll fetches that message again; forget: every message, behind the flood guard")
    func forget() throws {
        let f = try PopfetchFixture()
        let mail = Corpus.messages(3, seed: 123)
        try f.user.deliver(mail)
        try f.writeConfig(extra: "keep = true\nflood_limit = 2")
        #expect(try f.poll().status == 75, "the first poll of 3 with keep = true pauses")
        _ = try popfetch(["--config", f.configPath, "--state", f.statePath, "fetch-all", "--account", "test"])
        #expect(try f.poll().status == 0)
        #expect(try f.delivered().count == 3)
        // mark-seen on an account that is not paused: a usage error, said as such (it was exit 74, an I/O error).
        let notPaused = try popfetch([
            "--config", f.configPath, "--state", f.statePath, "mark-seen", "--account", "test",
        ])
        #expect(notPaused.status == 64 && notPaused.stderr.contains("test is not paused"), "\(notPaused.stderr)")
        let uids = try runProgram([
            "/usr/bin/python3", "-c",
            "import sqlite3, sys\nfor (u,) in sqlite3.connect(sys.argv[1]).execute('SELECT uidl FROM messages ORDER BY uidl'): print(u)",
            f.statePath,
        ]).stdout.split(separator: "\n").map(String.init)
        #expect(uids.count == 3)
        let one = try popfetch([
            "--config", f.configPath, "--state", f.statePath, "forget", "--account", "test", "--uid", uids[0],
        ])
        #expect(one.status == 0, "\(one.stderr)")
        #expect(one.stdout.contains("forgot 1 message"), "\(one.stdout)")
        try f.clearDelivered()
        #expect(try f.poll().status == 0)
        #expect(try f.delivered().count == 1, "the forgotten message, once more")
        // An unknown UIDL: said, and not success.
        let unknown = try popfetch([
            "--config", f.configPath, "--state", f.statePath, "forget", "--account", "test", "--uid", "no-such-uidl",
        ])
        #expect(unknown.status == 75)
        #expect(unknown.stderr.contains("have no record"), "\(unknown.stderr)")
        // Forgetting everything makes the next poll a first one: with keep = true and 3 > flood_limit, it pauses.
        let all = try popfetch(["--config", f.configPath, "--state", f.statePath, "forget", "--account", "test"])
        #expect(all.status == 0, "\(all.stderr)")
        #expect(all.stdout.contains("forgot 3 messages"), "\(all.stdout)")
        try f.clearDelivered()
        let paused = try f.poll()
        #expect(paused.status == 75, "\(paused.stderr)")
        #expect(try f.delivered().isEmpty, "no flood after forgetting")
        _ = try popfetch(["--config", f.configPath, "--state", f.statePath, "fetch-all", "--account", "test"])
        #expect(try f.poll().status == 0)
        #expect(sameMessages(try f.delivered(), mail))
    }
}
