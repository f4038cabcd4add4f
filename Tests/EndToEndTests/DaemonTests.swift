import Foundation
import GRDB
import MailTestKit
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A running `popfetch daemon` with its log file.
struct RunningDaemon {
    let child: Child
    let log: String

    static func start(_ f: PopfetchFixture) throws -> RunningDaemon {
        let log = f.directory + "/daemon.log"
        let child = try Child.spawn(
            [Package.binary, "--config", f.configPath, "--state", f.statePath, "daemon"], stdout: log + ".out",
            stderr: log)
        let d = RunningDaemon(child: child, log: log)
        try d.waitFor("daemon started", timeout: 15)
        return d
    }

    var output: String { (try? String(contentsOfFile: self.log, encoding: .utf8)) ?? "" }

    func waitFor(_ text: String, timeout: Double) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if self.output.contains(text) { return }
            usleep(50_000)
        }
        throw TestFailure("daemon log never showed \(text.debugDescription):\n\(self.output)")
    }

    func signal(_ sig: Int32) { kill(self.child.pid, sig) }

    /// SIGTERM, then the exit status (nil if it did not exit in time).
    func stop(timeout: Double = 40) -> Int32 {
        self.signal(SIGTERM)
        return self.child.wait(timeout: timeout)
    }
}

func statusJSON(_ f: PopfetchFixture, _ extra: [String] = []) throws -> (Int32, [String: Any]) {
    let r = try popfetch(["--config", f.configPath, "--state", f.statePath, "status", "--json"] + extra)
    let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
    return (r.status, try #require(object, "status --json printed: \(r.stdout) \(r.stderr)"))
}

@Suite("Daemon", .serialized)
struct DaemonTests {
    @Test("delivers mail arriving while it runs; one daemon per state; SIGHUP reload; wake; SIGTERM exits 0")
    func lifecycle() throws {
        let f = try PopfetchFixture()
        try f.writeConfig(extra: "interval = \"1s\"")
        let daemon = try RunningDaemon.start(f)
        defer { _ = daemon.stop() }

        // A second daemon on the same state is refused, clearly.
        let second = try popfetch(["--config", f.configPath, "--state", f.statePath, "daemon"], timeout: 30)
        #expect(second.status == 75)
        #expect(second.stderr.contains("already running"), "\(second.stderr)")

        // status sees the daemon through its lock.
        let (_, s1) = try statusJSON(f)
        let d1 = try #require(s1["daemon"] as? [String: Any])
        #expect(d1["running"] as? Bool == true)
        #expect(d1["pid"] as? Int == Int(daemon.child.pid))

        // Mail arriving while it runs is delivered within an interval or so.
        let first = Corpus.messages(3, seed: 70)
        try f.user.deliver(first)
        #expect(try eventually(10) { try f.delivered().count == 3 }, "\(daemon.output)")

        // SIGHUP with a broken config: logged, the running config kept (mail still flows).
        let good = try String(contentsOfFile: f.configPath, encoding: .utf8)
        try (good + "\nbogus_key = 1\n").write(toFile: f.configPath, atomically: true, encoding: .utf8)
        chmod(f.configPath, 0o600)
        daemon.signal(SIGHUP)
        try daemon.waitFor("keeping the running one", timeout: 10)
        try f.user.deliver(Corpus.messages(2, seed: 71))
        #expect(try eventually(10) { try f.delivered().count == 5 }, "\(daemon.output)")

        // SIGHUP with a good config: applied (a new account is polled; the old one now waits an hour).
        let g = try PopfetchFixture()
        try g.user.deliver(Corpus.messages(2, seed: 72))
        try f.writeConfig(extra: "interval = \"1h\"")
        try f.writeConfig(
            extra: "interval = \"1h\"", password: g.user.password, name: "second", append: true, user: g.user.name)
        daemon.signal(SIGHUP)
        try daemon.waitFor("now polling second", timeout: 10)
        #expect(try eventually(10) { try f.delivered().count == 7 }, "\(daemon.output)")

        // wake polls at once, although the interval is an hour.
        sleep(1)
        try f.user.deliver(Corpus.messages(1, seed: 73))
        let wake = try popfetch(["--config", f.configPath, "--state", f.statePath, "wake", "--account", "test"])
        #expect(wake.status == 0, "\(wake.stderr)")
        #expect(try eventually(10) { try f.delivered().count == 8 }, "\(daemon.output)")
        let unknown = try popfetch(["--config", f.configPath, "--state", f.statePath, "wake", "--account", "nope"])
        #expect(unknown.status != 0)

        // SIGTERM: exit 0, and status knows it stopped.
        #expect(daemon.stop() == 0, "\(daemon.output)")
        let (_, s2) = try statusJSON(f)
        #expect((s2["daemon"] as? [String: Any])?["running"] as? Bool == false)
        let noDaemon = try popfetch(["--config", f.configPath, "--state", f.statePath, "wake"])
        #expect(noDaemon.status == 69)
    }

    @Test("wake for a disabled account says it is disabled (exit 78), not that it was woken")
    func wakeDisabledAccount() throws {
        let f = try PopfetchFixture()
        try f.writeConfig(extra: "interval = \"1h\"")
        try f.writeConfig(extra: "enabled = false", name: "off", append: true, user: "someone-else")
        let daemon = try RunningDaemon.start(f)
        defer { _ = daemon.stop() }
        let r = try popfetch(["--config", f.configPath, "--state", f.statePath, "wake", "--account", "off"])
        #expect(r.status == 78, "\(r.stdout) \(r.stderr)")
        #expect(r.stderr.contains("is disabled"), "\(r.stderr)")
        #expect(!r.stdout.contains("woke"), "\(r.stdout)")
    }

    @Test(
        "its state database removed or replaced while it runs: the daemon says so and exits 74",
        .fault(
            .process, "the state file is renamed away while the daemon runs (its directory cleaned, a backup restored)",
            expect: "within seconds: an error naming the file, exit 74 (systemd restarts it on the file there now)"))
    func stateMovedAway() throws {
        let f = try PopfetchFixture()
        try f.writeConfig(extra: "interval = \"1h\"")
        let daemon = try RunningDaemon.start(f)
        defer { _ = daemon.stop() }
        #expect(rename(f.statePath, f.statePath + ".moved") == 0)
        let status = daemon.child.wait(timeout: 30)
        #expect(status == 74, "\(daemon.output)")
        #expect(daemon.output.contains("was removed or replaced"), "\(daemon.output)")
    }

    @Test("SIGTERM in the middle of a large poll: exit 0 within the grace period, nothing lost, ≤ 1 duplicate")
    func sigtermMidPoll() throws {
        let f = try PopfetchFixture()
        let corpus = Corpus.messages(40, seed: 74)
        try f.user.deliver(corpus)
        let slow = f.directory + "/slow-mda"
        try writeExecutable("#!/bin/sh\nsleep 0.15\nexec \(f.mdaScript)\n", to: slow)
        try f.writeConfig(extra: "interval = \"1h\"", mda: slow)
        let config = try String(contentsOfFile: f.configPath, encoding: .utf8)
        try ("shutdown_grace = \"20s\"\n" + config).write(toFile: f.configPath, atomically: true, encoding: .utf8)
        chmod(f.configPath, 0o600)
        let daemon = try RunningDaemon.start(f)
        #expect(try eventually(15) { try f.delivered().count >= 3 })
        let start = Date()
        let status = daemon.stop()
        #expect(status == 0, "\(daemon.output)")
        #expect(Date().timeIntervalSince(start) < 20)
        let during = try f.delivered().count
        #expect(during < corpus.count, "the shutdown should have cut the poll short")
        #expect(daemon.output.contains("stopping"))
        // A clean poll delivers the rest.
        let r = try f.poll()
        #expect(r.status == 0, "\(r.stderr)")
        let got = try f.delivered()
        let gotSet = Set(got)
        #expect(corpus.allSatisfy { gotSet.contains($0) }, "a message was lost")
        #expect(got.count <= corpus.count + 1)
        #expect(f.user.messageCount() == 0)
    }

    @Test("a failing account backs off (its intervals grow) while a healthy one keeps its interval")
    func backoff() throws {
        let f = try PopfetchFixture()
        let g = try PopfetchFixture()
        try f.writeConfig(extra: "interval = \"1s\"", name: "healthy")
        try f.writeConfig(
            extra: "interval = \"1s\"", password: "wrong", name: "broken", append: true, user: g.user.name)
        let daemon = try RunningDaemon.start(f)
        sleep(12)
        #expect(daemon.stop() == 0)
        let healthy = try popfetch(
            [
                "--config", f.configPath, "--state", f.statePath, "status", "--account", "healthy", "--history", "50",
                "--json",
            ])
        let broken = try popfetch(
            [
                "--config", f.configPath, "--state", f.statePath, "status", "--account", "broken", "--history", "50",
                "--json",
            ])
        func starts(_ text: String) throws -> [Double] {
            let o = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
            let polls = (o?["polls"] as? [[String: Any]]) ?? []
            let f = ISO8601DateFormatter()
            return polls.compactMap { ($0["started"] as? String).flatMap(f.date(from:))?.timeIntervalSince1970 }
                .sorted()
        }
        let h = try starts(healthy.stdout)
        let b = try starts(broken.stdout)
        #expect(h.count >= 4, "healthy account polled \(h.count) times in 12 s")
        #expect(h.count > b.count, "the healthy account keeps its pace while the broken one backs off")
        #expect(b.count >= 2 && b.count <= 4, "broken account polled \(b.count) times in 12 s: no tight loop")
        if b.count >= 3 {
            let gaps = zip(b.dropFirst(), b).map { $0 - $1 }
            #expect(gaps[1] > gaps[0], "backoff intervals must grow: \(gaps)")
        }
        let authLines = daemon.output.components(separatedBy: "authentication failed").count - 1
        #expect(authLines == 1, "the authentication failure is logged once, not every poll:\n\(daemon.output)")
    }
}

@Suite("status and check")
struct StatusTests {
    @Test("status --json after success, partial, failure and never-polled, field by field; exit status")
    func statusFields() throws {
        let f = try PopfetchFixture()
        let p = try PopfetchFixture()
        let e = try PopfetchFixture()
        try f.user.deliver(Corpus.messages(2, seed: 80))
        try p.user.deliver(Corpus.messages(1, seed: 81))
        try f.writeConfig(name: "ok")
        try f.writeConfig(password: p.user.password, name: "partial", append: true, user: p.user.name)
        try f.writeConfig(password: "wrong", name: "error", append: true, user: e.user.name)
        try f.writeConfig(extra: "mailbox_id = \"never-polled\"", name: "never", append: true, user: e.user.name)

        #expect(try f.poll(["--account", "ok"]).status == 0)
        try "1".write(toFile: f.mdaExitFile, atomically: true, encoding: .utf8)
        _ = try f.poll(["--account", "partial"])
        try FileManager.default.removeItem(atPath: f.mdaExitFile)
        #expect(try f.poll(["--account", "error"]).status == 77)
        #expect(try f.poll(["--account", "error"]).status == 77)

        let (status, json) = try statusJSON(f)
        #expect(status == 1, "an error or partial account makes status exit 1")
        let accounts = try #require(json["accounts"] as? [[String: Any]])
        let byName = Dictionary(uniqueKeysWithValues: accounts.map { ($0["account"] as? String ?? "", $0) })
        let keys: Set<String> = [
            "account", "last_poll_started", "last_poll_finished", "outcome", "error", "delivered_last_poll",
            "bytes_last_poll", "pending", "failed", "failed_messages", "paused", "delivered_total",
            "consecutive_failures", "next_poll",
        ]
        for a in accounts { #expect(Set(a.keys) == keys, "every key present, null when unknown") }

        let ok = try #require(byName["ok"])
        #expect(ok["outcome"] as? String == "ok")
        #expect(ok["error"] is NSNull)
        #expect(ok["delivered_last_poll"] as? Int == 2)
        #expect((ok["bytes_last_poll"] as? Int ?? 0) > 0)
        #expect(ok["pending"] as? Int == 0)
        #expect(ok["failed"] as? Int == 0)
        #expect(ok["delivered_total"] as? Int == 2)
        #expect(ok["consecutive_failures"] as? Int == 0)
        #expect(ok["next_poll"] is NSNull)
        #expect((ok["last_poll_started"] as? String)?.hasSuffix("Z") == true)
        #expect((ok["last_poll_finished"] as? String)?.hasSuffix("Z") == true)

        let partial = try #require(byName["partial"])
        #expect(partial["outcome"] as? String == "partial")
        #expect(partial["delivered_last_poll"] as? Int == 0)
        #expect(partial["pending"] as? Int == 1)

        let error = try #require(byName["error"])
        #expect(error["outcome"] as? String == "error")
        #expect((error["error"] as? String)?.contains("authentication failed") == true)
        #expect(error["consecutive_failures"] as? Int == 2)
        #expect(!((error["error"] as? String) ?? "").contains("wrong"), "no secret in status")

        let never = try #require(byName["never"])
        #expect(never["outcome"] as? String == "never")
        #expect(never["last_poll_started"] is NSNull)
        #expect(never["delivered_last_poll"] is NSNull)
        #expect(never["pending"] is NSNull)
        #expect(never["delivered_total"] as? Int == 0)

        let okOnly = try popfetch(["--config", f.configPath, "--state", f.statePath, "status", "--account", "ok"])
        #expect(okOnly.status == 0)
        let table = try popfetch(["--config", f.configPath, "--state", f.statePath, "status"])
        #expect(table.status == 1)
        #expect(table.stdout.split(separator: "\n").allSatisfy { $0.count <= 80 }, "the table fits 80 columns")
        #expect(table.stdout.contains("daemon: not running"))
    }

    @Test("check: 0 with new mail, 1 without, the sysexits code on error; nothing fetched")
    func check() throws {
        let f = try PopfetchFixture()
        try f.writeConfig()
        let none = try popfetch(["--config", f.configPath, "--state", f.statePath, "check"])
        #expect(none.status == 1, "\(none.stderr)")
        try f.user.deliver(Corpus.messages(2, seed: 82))
        let some = try popfetch(["--config", f.configPath, "--state", f.statePath, "check"])
        #expect(some.status == 0, "\(some.stderr)")
        #expect(some.stdout.contains("2 new messages"))
        #expect(try f.delivered().isEmpty)
        #expect(f.user.messageCount() == 2)
        try f.writeConfig(password: "wrong")
        let bad = try popfetch(["--config", f.configPath, "--state", f.statePath, "check"])
        #expect(bad.status == 77)
    }
}

@Suite("Daemon details", .serialized)
struct DaemonDetailTests {
    @Test("sd_notify: READY=1 at start, STOPPING=1 at SIGTERM, through $NOTIFY_SOCKET")
    func systemdNotify() throws {
        let f = try PopfetchFixture()
        try f.writeConfig(extra: "interval = \"1h\"")
        let notify = try NotifySocket(path: f.directory + "/notify.sock")
        let log = f.directory + "/daemon.log"
        let child = try Child.spawn(
            [Package.binary, "--config", f.configPath, "--state", f.statePath, "daemon"],
            environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "400000"], stdout: log, stderr: log)
        let ready = notify.receive(until: "READY=1", timeout: 15)
        #expect(ready.contains("READY=1"))
        #expect(ready.contains("STATUS="))
        let pings = notify.receive(until: "WATCHDOG=1", timeout: 3)
        #expect(pings.contains("WATCHDOG=1"), "watchdog pings when WATCHDOG_USEC is set")
        kill(child.pid, SIGTERM)
        let stopping = notify.receive(until: "STOPPING=1", timeout: 10)
        #expect(stopping.contains("STOPPING=1"))
        #expect(child.wait(timeout: 30) == 0)
    }

    @Test(
        "a reload (SIGHUP) or a wake (SIGUSR1) sent the moment the daemon says READY=1 is handled, never fatal",
        .fault(
            .process, "SIGHUP and SIGUSR1 sent as soon as READY=1 arrives, five daemon starts (as systemd may reload)",
            expect: "each daemon alive, the reload logged, exit 0 at SIGTERM"))
    func signalRightAfterReady() throws {
        let f = try PopfetchFixture()
        try f.writeConfig(extra: "interval = \"1h\"")
        for attempt in 1...5 {
            let notify = try NotifySocket(path: f.directory + "/notify\(attempt).sock")
            let log = f.directory + "/daemon\(attempt).log"
            let child = try Child.spawn(
                [Package.binary, "--config", f.configPath, "--state", f.statePath, "daemon"],
                environment: ["NOTIFY_SOCKET": notify.path], stdout: log, stderr: log)
            #expect(notify.receive(until: "READY=1", timeout: 15).contains("READY=1"))
            kill(child.pid, SIGHUP)
            kill(child.pid, SIGUSR1)
            let reloaded = eventually(10) {
                ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("configuration reloaded")
            }
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            #expect(reloaded && child.isRunning, "start \(attempt): the daemon ended or did not reload\n\(text)")
            kill(child.pid, SIGTERM)
            #expect(child.wait(timeout: 30) == 0, "start \(attempt)\n\(text)")
        }
    }

    @Test("two state databases in one directory: each its own daemon, status and wake (review: one refused the other)")
    func twoDatabasesOneDirectory() throws {
        let f = try PopfetchFixture()
        try f.writeConfig(extra: "interval = \"1h\"")
        let daemon = try RunningDaemon.start(f)
        let other = (f.statePath as NSString).deletingLastPathComponent + "/other.sqlite"
        let args = ["--config", f.configPath, "--state", other]
        let status = try popfetch(args + ["status", "--json"])
        #expect(status.stdout.contains("\"running\": false"), "the other database has no daemon\n\(status.stdout)")
        let wake = try popfetch(args + ["wake"])
        #expect(wake.status == 69, "no daemon runs for the other database: \(wake.stdout) \(wake.stderr)")
        let log = f.directory + "/other-daemon.log"
        let second = try Child.spawn([Package.binary] + args + ["daemon"], stdout: log + ".out", stderr: log)
        let started = eventually(15) {
            ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("daemon started")
        }
        #expect(started && second.isRunning, "\((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        #expect(try popfetch(args + ["wake"]).status == 0)
        // The first database through a symbolic link, or a symlinked directory: the same daemon, refused.
        let directory = (f.statePath as NSString).deletingLastPathComponent
        try FileManager.default.createSymbolicLink(
            atPath: directory + "/alias.sqlite", withDestinationPath: "state.sqlite")
        try FileManager.default.createSymbolicLink(atPath: f.directory + "/linked", withDestinationPath: directory)
        for spelling in [directory + "/alias.sqlite", f.directory + "/linked/state.sqlite"] {
            let again = try popfetch(["--config", f.configPath, "--state", spelling, "daemon"])
            #expect(again.status == 75, "\(spelling): \(again.stderr)")
        }
        let mine = try popfetch(["--config", f.configPath, "--state", f.statePath, "status", "--json"])
        #expect(mine.stdout.contains("\"pid\": \(daemon.child.pid)"), "\(mine.stdout)")
        kill(second.pid, SIGTERM)
        #expect(second.wait(timeout: 30) == 0)
        #expect(daemon.stop() == 0)
    }

    @Test("max_concurrent_polls bounds concurrency; accounts keep their own intervals; SIGUSR1 wakes all")
    func concurrencyAndIntervals() throws {
        let f = try PopfetchFixture()
        let g = try PopfetchFixture()
        let slow = f.directory + "/slow-mda"
        try writeExecutable("#!/bin/sh\nsleep 0.3\nexec \(f.mdaScript)\n", to: slow)
        try f.user.deliver(Corpus.messages(3, seed: 90))
        try g.user.deliver(Corpus.messages(3, seed: 91))
        try f.writeConfig(extra: "interval = \"1s\"", mda: slow, name: "fast")
        try f.writeConfig(
            extra: "interval = \"4s\"", mda: slow, password: g.user.password, name: "slow", append: true,
            user: g.user.name)
        let config = try String(contentsOfFile: f.configPath, encoding: .utf8)
        try ("max_concurrent_polls = 1\n" + config).write(toFile: f.configPath, atomically: true, encoding: .utf8)
        chmod(f.configPath, 0o600)
        let daemon = try RunningDaemon.start(f)
        sleep(9)
        daemon.signal(SIGUSR1)
        try daemon.waitFor("SIGUSR1", timeout: 5)
        sleep(1)
        #expect(daemon.stop() == 0)
        #expect(try f.delivered().count == 6)

        let store = try PopfetchKitStoreReader(path: f.statePath)
        let fast = try store.polls(name: "fast")
        let slowPolls = try store.polls(name: "slow")
        #expect(fast.count >= 5, "fast account (1 s) polled \(fast.count) times")
        #expect(slowPolls.count >= 2 && slowPolls.count <= 5, "slow account (4 s) polled \(slowPolls.count) times")
        #expect(fast.count > slowPolls.count)
        // With max_concurrent_polls = 1 no two polls overlap in time.
        let all = (fast + slowPolls).sorted { $0.start < $1.start }
        for (a, b) in zip(all, all.dropFirst()) {
            #expect(b.start >= a.end - 0.001, "polls overlap: \(a) and \(b)")
        }
    }

    @Test("popfetch poll while the daemon runs waits for the account lock and does no harm")
    func pollDuringDaemon() throws {
        let f = try PopfetchFixture()
        let corpus = Corpus.messages(30, seed: 92)
        try f.user.deliver(corpus)
        let slow = f.directory + "/slow-mda"
        try writeExecutable("#!/bin/sh\nsleep 0.05\nexec \(f.mdaScript)\n", to: slow)
        try f.writeConfig(extra: "interval = \"1s\"", mda: slow)
        let daemon = try RunningDaemon.start(f)
        var statuses: [Int32] = []
        for _ in 0..<3 {
            statuses.append(try f.poll().status)
        }
        #expect(try eventually(20) { try f.delivered().count >= corpus.count })
        #expect(daemon.stop() == 0)
        #expect(statuses.allSatisfy { $0 == 0 || $0 == 75 }, "\(statuses)")
        let got = try f.delivered()
        let same = sameMessages(got, corpus)
        #expect(same, "every message exactly once")
        #expect(f.user.messageCount() == 0)
    }
}

/// Reads poll records straight from the state database.
struct PopfetchKitStoreReader {
    struct Poll: CustomStringConvertible {
        var start: Double
        var end: Double
        var description: String { "[\(start), \(end)]" }
    }
    let queue: DatabaseQueue
    init(path: String) throws { self.queue = try DatabaseQueue(path: path) }
    func polls(name: String) throws -> [Poll] {
        try self.queue.read { db in
            try Row.fetchAll(
                db, sql: "SELECT started, finished FROM polls WHERE account_name = ? AND finished IS NOT NULL",
                arguments: [name]
            ).map { Poll(start: $0[0], end: $0[1]) }
        }
    }
}

/// A datagram socket standing in for systemd's $NOTIFY_SOCKET.
private final class NotifySocket {
    let path: String
    private let fd: Int32

    init(path: String) throws {
        self.path = path
        self.fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { p in
            for (i, b) in Array(path.utf8).enumerated() { p[i] = b }
        }
        let rc = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(self.fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard rc == 0 else {
            close(self.fd)
            throw TestFailure("cannot bind \(path)")
        }
        var tv = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(self.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(self.fd) }

    /// What arrives until a datagram holds `text` or `timeout` seconds pass.
    func receive(until text: String, timeout: Double) -> String {
        var all = ""
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline && !all.contains(text) {
            var buf = [UInt8](repeating: 0, count: 1024)
            let n = buf.withUnsafeMutableBytes { recv(self.fd, $0.baseAddress, $0.count, 0) }
            if n > 0 { all += String(decoding: buf[0..<n], as: UTF8.self) + "\n" }
        }
        return all
    }
}
