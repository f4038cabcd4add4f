import Foundation
import MailTestKit
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 12: metrics for Prometheus: the daemon's `metrics_listen` endpoint scraped over real HTTP, and
/// `metrics_file` for node_exporter's textfile collector, from the daemon and from a one-shot `poll`.
@Suite("Metrics", .serialized)
struct MetricsTests {
    @Test("daemon: /metrics over HTTP and metrics_file say what the polls did; 404, 405; the file rewritten at exit")
    func daemonEndpointAndFile() throws {
        let f = try PopfetchFixture()
        try f.user.deliver(Corpus.messages(3, seed: 140))
        try f.writeConfig(extra: "interval = \"1h\"")
        let port = try freeLoopbackPort()
        let file = f.directory + "/popfetch.prom"
        try Self.prependRoot(f, "metrics_listen = \"127.0.0.1:\(port)\"\nmetrics_file = \"popfetch.prom\"\n")
        let daemon = try RunningDaemon.start(f)
        defer { _ = daemon.stop() }
        #expect(try eventually(15) { try f.delivered().count == 3 }, "\(daemon.output)")

        // The endpoint: counters from the poll's report, the rest from the state it left.
        var text = ""
        #expect(
            eventually(10) {
                text = (try? httpGet(port: port, path: "/metrics").body) ?? ""
                return text.contains("popfetch_polls_total{account=\"test\",outcome=\"ok\"} 1")
            }, "\(text)\n\(daemon.output)")
        let response = try httpGet(port: port, path: "/metrics")
        #expect(response.status == 200)
        #expect(response.headers.contains("text/plain; version=0.0.4"), "\(response.headers)")
        let body = response.body
        for line in [
            "popfetch_messages_total{account=\"test\",result=\"delivered\"} 3",
            "popfetch_messages_total{account=\"test\",result=\"deleted\"} 3",
            "popfetch_messages_total{account=\"test\",result=\"failed\"} 0",
            "popfetch_polls_total{account=\"test\",outcome=\"error\"} 0",
            "popfetch_delivered_messages_total{account=\"test\"} 3",
            "popfetch_last_poll_outcome{account=\"test\",outcome=\"ok\"} 1",
            "popfetch_last_poll_outcome{account=\"test\",outcome=\"error\"} 0",
            "popfetch_pending_messages{account=\"test\"} 0",
            "popfetch_paused{account=\"test\"} 0",
            "popfetch_poll_duration_seconds_count{account=\"test\"} 1",
            "popfetch_build_info{version=",
            "# HELP popfetch_polls_total ",
            "# TYPE popfetch_poll_duration_seconds histogram",
        ] {
            #expect(body.contains(line), "missing \(line) in:\n\(body)")
        }
        let bytes = try #require(Self.value(body, "popfetch_delivered_bytes_total{account=\"test\"}"))
        #expect(bytes > 0)
        let lastSuccess = try #require(Self.value(body, "popfetch_last_success_timestamp_seconds{account=\"test\"}"))
        #expect(abs(lastSuccess - Date().timeIntervalSince1970) < 120, "\(lastSuccess)")

        // Anything else: 404, 405.
        #expect(try httpGet(port: port, path: "/").status == 404)
        #expect(try httpGet(port: port, path: "/metrics", method: "POST").status == 405)

        // The file: written after the poll, 0644, whole (renamed into place).
        #expect(
            eventually(10) {
                ((try? String(contentsOfFile: file, encoding: .utf8)) ?? "").contains(
                    "popfetch_polls_total{account=\"test\",outcome=\"ok\"} 1")
            })
        var info = stat()
        #expect(stat(file, &info) == 0 && info.st_mode & 0o777 == 0o644)

        // A failing poll: counted as an error of its kind; the file follows.
        try f.writeConfig(extra: "interval = \"1h\"", password: "wrong")
        daemon.signal(SIGHUP)
        try daemon.waitFor("configuration reloaded", timeout: 10)
        let wake = try popfetch(["--config", f.configPath, "--state", f.statePath, "wake"])
        #expect(wake.status == 0, "\(wake.stderr)")
        #expect(
            eventually(15) {
                let t = (try? httpGet(port: port, path: "/metrics").body) ?? ""
                return t.contains("popfetch_poll_errors_total{account=\"test\",kind=\"auth\"} 1")
                    && t.contains("popfetch_last_poll_outcome{account=\"test\",outcome=\"error\"} 1")
                    && t.contains("popfetch_consecutive_failed_polls{account=\"test\"} 1")
            }, "\(daemon.output)")

        // SIGTERM: exit 0, the endpoint closed, the file written a last time (it holds the failed poll).
        #expect(daemon.stop() == 0, "\(daemon.output)")
        #expect((try? httpGet(port: port, path: "/metrics")) == nil, "the endpoint is closed")
        let last = try String(contentsOfFile: file, encoding: .utf8)
        #expect(last.contains("popfetch_poll_errors_total{account=\"test\",kind=\"auth\"} 1"), "\(last)")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: f.directory).filter { $0.hasSuffix(".tmp") }
        #expect(leftovers.isEmpty, "temporary files left: \(leftovers)")
    }

    @Test(
        "while polls wait for the state database (another process writes), the daemon still answers wake and /metrics",
        .fault(
            .state, "another process holds the state database's write lock for 12 s while the daemon's polls start",
            expect: "`popfetch wake` and a /metrics scrape answered within 3 s meanwhile; the mail delivered after"))
    func controlPlaneAnswersWhilePollsWait() throws {
        let f = try PopfetchFixture()
        let others = try (0..<3).map { _ in try PopfetchFixture() }
        try f.writeConfig(extra: "interval = \"1h\"")
        for (i, o) in others.enumerated() {
            try f.writeConfig(
                extra: "interval = \"1h\"", password: o.user.password, name: "other\(i)", append: true,
                user: o.user.name)
        }
        let port = try freeLoopbackPort()
        try Self.prependRoot(f, "metrics_listen = \"127.0.0.1:\(port)\"\n")
        let daemon = try RunningDaemon.start(f)
        defer { _ = daemon.stop() }
        // Every account's first poll over (the mailboxes were empty) before mail arrives.
        #expect(
            Self.firstPollsDone(port: port, accounts: ["test", "other0", "other1", "other2"]), "\(daemon.output)")

        // Another process takes the write lock; woken polls (one per account, over every loop) wait for it.
        try f.user.deliver(Corpus.messages(1, seed: 144))
        for (i, o) in others.enumerated() { try o.user.deliver(Corpus.messages(1, seed: 145 + i)) }
        let locked = f.directory + "/locked"
        let holder = try Child.spawn(
            [
                "/usr/bin/python3", "-c",
                """
                import sqlite3, sys, time
                c = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
                c.execute("BEGIN IMMEDIATE")
                open(sys.argv[2], "w").write("locked")
                time.sleep(12)
                c.execute("COMMIT")
                """, f.statePath, locked,
            ], stdout: "/dev/null", stderr: f.directory + "/holder.err")
        defer { kill(holder.pid, SIGKILL); _ = holder.wait(timeout: 5) }
        #expect(eventually(10) { FileManager.default.fileExists(atPath: locked) }, "the lock was taken")
        let first = try popfetch(["--config", f.configPath, "--state", f.statePath, "wake"])
        #expect(first.status == 0, "\(first.stderr)")
        Thread.sleep(forTimeInterval: 1.5)

        let t0 = Date()
        let wake = try popfetch(["--config", f.configPath, "--state", f.statePath, "wake"])
        let wakeTook = Date().timeIntervalSince(t0)
        #expect(wake.status == 0 && wakeTook < 3, "wake: exit \(wake.status) after \(wakeTook) s: \(wake.stderr)")
        let t1 = Date()
        let scrape = try? httpGet(port: port, path: "/metrics")
        let scrapeTook = Date().timeIntervalSince(t1)
        #expect(
            scrape?.status == 200 && scrapeTook < 3,
            "/metrics: \(String(describing: scrape?.status)) after \(scrapeTook) s")
        #expect(try f.delivered().isEmpty, "nothing delivered while the state cannot be written")

        // Once the lock is released, the woken polls go on and deliver (every account's MDA saves into f's out).
        #expect(holder.wait(timeout: 30) == 0)
        #expect(try eventually(30) { try f.delivered().count == 4 }, "\(daemon.output)")
    }

    @Test("poll writes metrics_file from the state: totals carry across runs, no per-process counters")
    func pollWritesFile() throws {
        let f = try PopfetchFixture()
        try f.user.deliver(Corpus.messages(2, seed: 141))
        try f.writeConfig()
        let file = f.directory + "/metrics/popfetch.prom"
        try FileManager.default.createDirectory(atPath: f.directory + "/metrics", withIntermediateDirectories: true)
        try Self.prependRoot(f, "metrics_file = \"metrics/popfetch.prom\"\n")
        let first = try f.poll()
        #expect(first.status == 0, "\(first.stderr)")
        let one = try String(contentsOfFile: file, encoding: .utf8)
        #expect(one.contains("popfetch_delivered_messages_total{account=\"test\"} 2"), "\(one)")
        #expect(one.contains("popfetch_last_poll_outcome{account=\"test\",outcome=\"ok\"} 1"), "\(one)")
        #expect(!one.contains("popfetch_polls_total"), "a one-shot run exports no per-process counters")

        try f.user.deliver(Corpus.messages(1, seed: 142))
        #expect(try f.poll().status == 0)
        let two = try String(contentsOfFile: file, encoding: .utf8)
        #expect(two.contains("popfetch_delivered_messages_total{account=\"test\"} 3"), "\(two)")

        // A directory that does not exist: the poll still delivers and exits 0; the error is named.
        try f.writeConfig()
        try Self.prependRoot(f, "metrics_file = \"missing/popfetch.prom\"\n")
        try f.user.deliver(Corpus.messages(1, seed: 143))
        let third = try f.poll()
        #expect(third.status == 0)
        #expect(
            third.stderr.contains("metrics_file \(f.directory)/missing/popfetch.prom: cannot create"), "\(third.stderr)"
        )
        #expect(try f.delivered().count == 4)
    }

    @Test("a bad metrics_listen names file, line and key; an address in use stops the daemon with exit 69")
    func badAddress() throws {
        let f = try PopfetchFixture()
        try f.writeConfig()
        try Self.prependRoot(f, "metrics_listen = \"9101\"\n")
        let check = try popfetch(["--config", f.configPath, "config", "check"])
        #expect(check.status == 78)
        #expect(check.stderr.contains("config.toml:1: metrics_listen: must be \"host:port\""), "\(check.stderr)")

        // config check: the summary shows the metrics keys; a metrics_file in a missing directory is a problem.
        try f.writeConfig()
        try Self.prependRoot(f, "metrics_listen = \"[::1]:9101\"\nmetrics_file = \"nowhere/p.prom\"\n")
        let check2 = try popfetch(["--config", f.configPath, "config", "check"])
        #expect(check2.status == 78)
        #expect(check2.stdout.contains("metrics_listen = [::1]:9101 (http://[::1]:9101/metrics)"), "\(check2.stdout)")
        #expect(
            check2.stderr.contains("metrics_file: directory \(f.directory)/nowhere does not exist"), "\(check2.stderr)")

        // Taken by another listener.
        let (holder, port) = try listeningSocket()
        defer { close(holder) }
        try f.writeConfig()
        try Self.prependRoot(f, "metrics_listen = \"127.0.0.1:\(port)\"\n")
        let r = try popfetch(["--config", f.configPath, "--state", f.statePath, "daemon"], timeout: 30)
        #expect(r.status == 69, "\(r.stderr)")
        #expect(
            r.stderr.contains("metrics_listen 127.0.0.1:\(port): cannot listen: Address already in use"), "\(r.stderr)")
    }

    @Test("a failed poll keeps the last known pending count; a reload drops the series of a removed account")
    func gaugesAcrossFailureAndReload() throws {
        let f = try PopfetchFixture()
        try f.user.deliver(Corpus.messages(2, seed: 145))
        let tempfail = f.directory + "/tempfail-mda"
        try writeExecutable("#!/bin/sh\ncat >/dev/null\nexit 75\n", to: tempfail)
        try f.writeConfig(extra: "interval = \"1h\"", mda: tempfail)
        let port = try freeLoopbackPort()
        try Self.prependRoot(f, "metrics_listen = \"127.0.0.1:\(port)\"\n")
        let daemon = try RunningDaemon.start(f)
        defer { _ = daemon.stop() }
        func scrape() -> String { (try? httpGet(port: port, path: "/metrics").body) ?? "" }
        #expect(
            eventually(15) {
                scrape().contains("popfetch_last_poll_outcome{account=\"test\",outcome=\"partial\"} 1")
            }, "\(scrape())\n\(daemon.output)")
        #expect(scrape().contains("popfetch_pending_messages{account=\"test\"} 2"), "\(scrape())")
        #expect(scrape().contains("popfetch_messages_total{account=\"test\",result=\"deferred\"} 2"))

        // The login fails: the outcome says so, but the two messages are still waiting on the server.
        try f.writeConfig(extra: "interval = \"1h\"", mda: tempfail, password: "wrong")
        try Self.prependRoot(f, "metrics_listen = \"127.0.0.1:\(port)\"\n")
        daemon.signal(SIGHUP)
        try daemon.waitFor("configuration reloaded", timeout: 10)
        _ = try popfetch(["--config", f.configPath, "--state", f.statePath, "wake"])
        #expect(
            eventually(15) { scrape().contains("popfetch_last_poll_outcome{account=\"test\",outcome=\"error\"} 1") },
            "\(daemon.output)")
        let failed = scrape()
        #expect(failed.contains("popfetch_pending_messages{account=\"test\"} 2"), "\(failed)")
        #expect(failed.contains("popfetch_consecutive_failed_polls{account=\"test\"} 1"), "\(failed)")

        // Renamed by a reload: the old name's series go (its alerts would fire for ever), the new name's come.
        try f.writeConfig(extra: "interval = \"1h\"", mda: tempfail, name: "renamed")
        try Self.prependRoot(f, "metrics_listen = \"127.0.0.1:\(port)\"\n")
        daemon.signal(SIGHUP)
        try daemon.waitFor("now polling renamed", timeout: 10)
        #expect(eventually(10) { scrape().contains("account=\"renamed\"") }, "\(scrape())")
        let after = scrape()
        #expect(!after.contains("account=\"test\""), "\(after)")
    }

    @Test("the endpoint holds at most 16 connections, each at most 10 s however it trickles; polls go on")
    func endpointBounded() throws {
        let f = try PopfetchFixture()
        try f.writeConfig(extra: "interval = \"1h\"")
        let port = try freeLoopbackPort()
        try Self.prependRoot(f, "metrics_listen = \"127.0.0.1:\(port)\"\n")
        let daemon = try RunningDaemon.start(f)
        defer { _ = daemon.stop() }
        // Counted once the first poll is over: the loops polls run on are made by the first one.
        #expect(Self.firstPollsDone(port: port, accounts: ["test"]), "\(daemon.output)")
        let before = Self.openDescriptors(daemon.child.pid)
        // 60 clients that send a byte now and then and never finish their request.
        var clients: [Int32] = []
        defer { for c in clients { close(c) } }
        for _ in 0..<60 { clients.append(try connectLoopback(port: port)) }
        let partial = "GET /metrics HTTP/1.1\r\nX-Slow: "
        for c in clients { _ = send(c, partial, partial.utf8.count, Int32(MSG_NOSIGNAL)) }
        usleep(500_000)
        let during = Self.openDescriptors(daemon.child.pid)
        #expect(during - before <= 16 + 2, "descriptors: \(before) before, \(during) with 60 clients")
        // Polls and the control socket are unaffected.
        try f.user.deliver(Corpus.messages(1, seed: 144))
        let wake = try popfetch(["--config", f.configPath, "--state", f.statePath, "wake"])
        #expect(wake.status == 0, "\(wake.stderr)")
        #expect(try eventually(10) { try f.delivered().count == 1 }, "\(daemon.output)")
        // Trickling does not keep a connection: each is closed within about 10 s of its start.
        let start = Date()
        var alive = clients
        while !alive.isEmpty && Date().timeIntervalSince(start) < 15 {
            for c in alive { _ = send(c, "a", 1, Int32(MSG_NOSIGNAL)) }
            usleep(1_000_000)
            alive = alive.filter { c in
                var byte: UInt8 = 0
                let n = recv(c, &byte, 1, Int32(MSG_DONTWAIT))
                return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)
            }
        }
        let lasted = Date().timeIntervalSince(start)
        #expect(alive.isEmpty, "\(alive.count) connections still open after \(lasted) s")
        #expect(lasted > 5, "the admitted connections were kept while they trickled (\(lasted) s)")
        #expect(try httpGet(port: port, path: "/metrics").status == 200)
    }

    /// How many descriptors process `pid` has open.
    static func openDescriptors(_ pid: pid_t) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
    }

    /// Whether /metrics shows one poll of each of `accounts` that ended ok, within 15 s.
    static func firstPollsDone(port: Int, accounts: [String]) -> Bool {
        eventually(15) {
            let text = (try? httpGet(port: port, path: "/metrics").body) ?? ""
            return accounts.allSatisfy { text.contains("popfetch_polls_total{account=\"\($0)\",outcome=\"ok\"} 1") }
        }
    }

    static func prependRoot(_ f: PopfetchFixture, _ text: String) throws {
        let body = try String(contentsOfFile: f.configPath, encoding: .utf8)
        try (text + body).write(toFile: f.configPath, atomically: true, encoding: .utf8)
        chmod(f.configPath, 0o600)
    }

    /// The value of the series `name` (with its labels) in Prometheus text.
    static func value(_ text: String, _ name: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(name + " ") {
            return Double(line.dropFirst(name.count + 1))
        }
        return nil
    }
}

/// A TCP socket listening on 127.0.0.1 at a port the kernel chose.
func listeningSocket() throws -> (fd: Int32, port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestFailure("socket: \(errno)") }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p -> Bool in
            bind(fd, p, length) == 0 && listen(fd, 4) == 0 && getsockname(fd, p, &length) == 0
        }
    }
    guard bound else {
        close(fd)
        throw TestFailure("bind: \(errno)")
    }
    return (fd, Int(UInt16(bigEndian: address.sin_port)))
}

/// A loopback port free a moment ago.
func freeLoopbackPort() throws -> Int {
    let (fd, port) = try listeningSocket()
    close(fd)
    return port
}

/// A TCP connection to 127.0.0.1:`port`.
func connectLoopback(port: Int) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestFailure("socket: \(errno)") }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(port).bigEndian
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
        }
    }
    guard connected else {
        close(fd)
        throw TestFailure("connect to port \(port): \(errno)")
    }
    return fd
}

/// One HTTP/1.1 request to 127.0.0.1:`port`, read to the end (the server closes); nil-free: throws when the
/// connection cannot be made.
func httpGet(port: Int, path: String, method: String = "GET") throws -> (status: Int, headers: String, body: String) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestFailure("socket: \(errno)") }
    defer { close(fd) }
    var timeout = timeval(tv_sec: 10, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(port).bigEndian
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
        }
    }
    guard connected else { throw TestFailure("connect to port \(port): \(errno)") }
    let request = Array("\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n".utf8)
    guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == request.count else {
        throw TestFailure("send: \(errno)")
    }
    var received: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { break }
        received += chunk[0..<n]
    }
    let text = String(decoding: received, as: UTF8.self)
    guard let split = text.range(of: "\r\n\r\n") else { throw TestFailure("no HTTP response: \(text)") }
    let head = String(text[..<split.lowerBound])
    let status = Int(head.split(separator: " ").dropFirst().first ?? "") ?? 0
    return (status, head, String(text[split.upperBound...]))
}
