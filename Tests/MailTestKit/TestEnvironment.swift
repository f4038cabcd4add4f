package import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Paths of the package under test.
package enum Package {
    /// The package root (two levels above this file's folder: Tests/MailTestKit).
    package static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// The popfetch binary: $POPFETCH_BIN, else .build/debug/popfetch (scripts/test builds it first).
    package static var binary: String {
        if let b = ProcessInfo.processInfo.environment["POPFETCH_BIN"], !b.isEmpty { return b }
        return root + "/.build/debug/popfetch"
    }
}

/// A fresh temporary directory per test.
/// Writes an executable (a script a test runs), opened with O_CLOEXEC. Foundation's `write(toFile:)` leaves its
/// descriptor inheritable: a child another test spawns at that moment keeps the file open for writing for its whole
/// life, and every exec of the script then fails with "Text file busy".
package func writeExecutable(_ text: String, to path: String) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o755)
    try #require(fd >= 0, "cannot create \(path): errno \(errno)")
    defer { close(fd) }
    let bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        try #require(n > 0, "cannot write \(path): errno \(errno)")
        offset += n
    }
    fchmod(fd, 0o755)
}

package func makeTempDirectory(_ name: String = "t") throws -> String {
    let base = ProcessInfo.processInfo.environment["POPFETCH_TEST_TMP"] ?? "/tmp"
    var template = Array("\(base)/popfetch-\(name)-XXXXXX".utf8CString)
    let ok = template.withUnsafeMutableBufferPointer { p -> Bool in
        guard let b = p.baseAddress else { return false }
        return mkdtemp(b) != nil
    }
    try #require(ok, "mkdtemp failed")
    let path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    chmod(path, 0o755)
    return path
}

/// The result of running a program.
package struct RunResult: Sendable {
    package var status: Int32
    package var stdout: String
    package var stderr: String
}

/// A child process started with posix_spawn (not Foundation.Process, whose waitUntilExit hangs while a daemon
/// the child started still holds an inherited descriptor).
package struct Child {
    package let pid: pid_t

    /// Starts `arguments` with stdin from /dev/null and stdout/stderr into the given files (which may be one file).
    package static func spawn(
        _ arguments: [String], environment: [String: String] = [:], stdout: String, stderr: String
    )
        throws -> Child
    {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        if stderr == stdout {
            // One file for both: one open file description (one offset), so neither stream overwrites the other.
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        } else {
            posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        }
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigdefault(&attr, &all)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attr, &none)
        // A process group of its own: a server (or anything it starts) that signals its whole group — Courier's
        // authdaemond does kill(0, SIGTERM) — cannot reach the test process.
        posix_spawnattr_setpgroup(&attr, 0)
        posix_spawnattr_setflags(
            &attr, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP))
        var env = ProcessInfo.processInfo.environment
        env["SWIFT_BACKTRACE"] = "enable=no"
        for (k, v) in environment { env[k] = v }
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, arguments[0], &actions, &attr, argv, envp)
        guard rc == 0 else { throw TestFailure("cannot run \(arguments[0]): \(String(cString: strerror(rc)))") }
        return Child(pid: pid)
    }

    /// Waits for the child; kills it after `timeout` seconds. Returns the exit status (128+signal if killed).
    package func wait(timeout: Double = 600) -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        var status: Int32 = 0
        while true {
            let w = waitpid(self.pid, &status, WNOHANG)
            if w == self.pid { break }
            if w < 0 { return -1 }
            if Date() > deadline {
                kill(self.pid, SIGKILL)
                Issue.record("child \(self.pid) ran longer than \(timeout) s and was killed")
                _ = waitpid(self.pid, &status, 0)
                break
            }
            usleep(2_000)
        }
        if status & 0x7f == 0 { return (status >> 8) & 0xff }
        return 128 + (status & 0x7f)
    }

    package var isRunning: Bool {
        var status: Int32 = 0
        return waitpid(self.pid, &status, WNOHANG) == 0
    }
}

/// A python3 script that holds something (a lock, an open database, a socket) while a test runs: started by
/// ``start(_:_:ready:)``, which waits until the script has created its `ready` file (passed as its last
/// argument); killed and reaped by ``stop()``, or at the latest when the holder goes away.
package final class Holder {
    package let child: Child
    private var stopped = false

    private init(child: Child) { self.child = child }

    /// Runs `python3 -c script arguments... ready` and waits (10 s at most) for the script to create `ready`.
    package static func start(_ script: String, _ arguments: [String], ready: String) throws -> Holder {
        let holder = Holder(
            child: try Child.spawn(
                ["/usr/bin/python3", "-c", script] + arguments + [ready], stdout: "/dev/null", stderr: "/dev/null"))
        guard eventually(10, { FileManager.default.fileExists(atPath: ready) }) else {
            holder.stop()
            throw TestFailure("the python helper never became ready (\(ready))")
        }
        return holder
    }

    /// SIGKILL and reap; once.
    package func stop() {
        guard !self.stopped else { return }
        self.stopped = true
        kill(self.child.pid, SIGKILL)
        _ = self.child.wait(timeout: 5)
    }

    deinit { self.stop() }
}

/// Runs a program to completion, its output collected through files (no pipe deadlocks).
package func runProgram(_ arguments: [String], environment: [String: String] = [:], timeout: Double = 600) throws
    -> RunResult
{
    let dir = try makeTempDirectory("run")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let outPath = dir + "/out"
    let errPath = dir + "/err"
    let child = try Child.spawn(arguments, environment: environment, stdout: outPath, stderr: errPath)
    let status = child.wait(timeout: timeout)
    let out = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
    let err = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
    return RunResult(status: status, stdout: out, stderr: err)
}

/// Runs the popfetch binary.
package func popfetch(_ arguments: [String], environment: [String: String] = [:], timeout: Double = 600) throws
    -> RunResult
{
    try runProgram([Package.binary] + arguments, environment: environment, timeout: timeout)
}

/// The private Dovecot instance of this test process, started once (scripts/dovecot-instance) and stopped at exit.
package final class DovecotServer: Sendable {
    package let directory: String
    package let pop3Port: Int
    package let pop3sPort: Int
    package let caFile: String
    package let mailDirectory: String
    package let lmtpPort: Int
    /// IMAP with STARTTLS, and IMAPS (nil when dovecot-imapd is not installed: scripts/install brings it).
    package let imapPort: Int?
    package let imapsPort: Int?

    package static let shared: Result<DovecotServer, any Error> = Result { try DovecotServer(ssl: true) }

    package static func get() throws -> DovecotServer { try Self.shared.get() }

    /// Starts a Dovecot instance. `ssl: false` gives a server that offers no STLS.
    package init(ssl: Bool, expiredCertificate: Bool = false, clientCertificates: Bool = false) throws {
        let dir = try makeTempDirectory(ssl ? "dovecot" : "dovecot-nossl")
        let script = Package.root + "/scripts/dovecot-instance"
        var env: [String: String] = ssl ? [:] : ["DOVECOT_SSL": "no"]
        if expiredCertificate { env["DOVECOT_CERT"] = "expired" }
        if clientCertificates { env["DOVECOT_CLIENT_CERTS"] = "yes" }
        let r = try runProgram([script, "start", dir], environment: env, timeout: 60)
        guard r.status == 0 else {
            throw TestFailure("could not start Dovecot (a missing server is a test failure): \(r.stderr) \(r.stdout)")
        }
        var values: [String: String] = [:]
        for line in r.stdout.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { values[String(parts[0])] = String(parts[1]) }
        }
        guard let p = values["POP3_PORT"].flatMap(Int.init), let ps = values["POP3S_PORT"].flatMap(Int.init),
            let ca = values["CA_FILE"], let mail = values["MAIL_DIR"], let lmtp = values["LMTP_PORT"].flatMap(Int.init)
        else { throw TestFailure("dovecot-instance printed no ports: \(r.stdout)") }
        self.lmtpPort = lmtp
        self.imapPort = values["IMAP_PORT"].flatMap(Int.init)
        self.imapsPort = values["IMAPS_PORT"].flatMap(Int.init)
        self.directory = dir
        self.pop3Port = p
        self.pop3sPort = ps
        self.caFile = ca
        self.mailDirectory = mail
        DovecotRegistry.register(dir)
    }

    /// The port of the local OAuth2 server (token, device and introspection endpoints).
    package var oauthPort: Int {
        Int((try? String(contentsOfFile: self.directory + "/run/oauth.port", encoding: .utf8)) ?? "") ?? 0
    }

    /// Adds a user with a fresh, empty Maildir and returns the name.
    /// (The test Dovecot's static passdb gives every user the password "secret-NAME".)
    package func addUser(quota: String? = nil) throws -> MailUser {
        let name = "u" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
        var args = [Package.root + "/scripts/dovecot-instance", "add-user", self.directory, name]
        if let quota { args += ["secret-" + name, quota] }
        let r = try runProgram(args, timeout: 30)
        guard r.status == 0 else { throw TestFailure("add-user failed: \(r.stderr)") }
        return MailUser(name: name, password: "secret-" + name, maildir: self.mailDirectory + "/" + name)
    }
}

/// Stops every Dovecot this process started, when the process exits.
package enum DovecotRegistry {
    nonisolated(unsafe) private static var directories: [String] = []
    private static let lock = NSLock()
    private static let installed: Void = {
        atexit {
            DovecotRegistry.lock.lock()
            let dirs = DovecotRegistry.directories
            DovecotRegistry.lock.unlock()
            for d in dirs {
                for file in ["/run/dovecot.pid", "/run/oauth.pid"] {
                    if let pid = try? String(contentsOfFile: d + file, encoding: .utf8)
                        .trimmingCharacters(in: .whitespacesAndNewlines), let p = Int32(pid)
                    {
                        kill(p, SIGTERM)
                    }
                }
            }
        }
    }()

    package static func register(_ dir: String) {
        _ = Self.installed
        self.lock.lock()
        self.directories.append(dir)
        self.lock.unlock()
    }
}

package struct TestFailure: Error, CustomStringConvertible {
    package var description: String
    package init(_ d: String) { self.description = d }
}

/// A mailbox user of the test Dovecot.
package struct MailUser: Sendable {
    package var name: String
    package var password: String
    package var maildir: String

    package init(name: String, password: String, maildir: String) {
        self.name = name
        self.password = password
        self.maildir = maildir
    }

    /// Puts messages into the Maildir as a local delivery agent would (new/, owned by the mail uid).
    package func deliver(_ messages: [[UInt8]]) throws {
        guard let pw = getpwnam("nobody") else { throw TestFailure("no user nobody") }
        let uid = pw.pointee.pw_uid
        let gid = pw.pointee.pw_gid
        for m in messages {
            let name = "\(Int(Date().timeIntervalSince1970)).\(UUID().uuidString).test"
            let tmp = self.maildir + "/tmp/" + name
            let dst = self.maildir + "/new/" + name
            guard FileManager.default.createFile(atPath: tmp, contents: Data(m)) else {
                throw TestFailure("cannot write \(tmp)")
            }
            chown(tmp, uid, gid)
            guard rename(tmp, dst) == 0 else { throw TestFailure("rename failed") }
        }
    }

    /// Ends the Dovecot POP3 sessions that have this mailbox open, by PID (the test's own server's processes,
    /// found by their open files; no other process is touched). Dovecot 2.3 can keep a session whose client was
    /// killed at the instant it logged in (the client's descriptor was being handed from pop3-login to the pop3
    /// process): it sits idle holding the POP3 session lock (`pop3_lock_session`) until its 10-minute autologout,
    /// and every poll meanwhile is refused with "Couldn't lock POP3 session". The tests that kill popfetch at random
    /// instants end such sessions as that time-out would, sooner. Returns how many it ended.
    @discardableResult
    package func endStaleSessions() -> Int {
        let fm = FileManager.default
        var ended = 0
        for entry in (try? fm.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), pid > 1,
                let cmdline = try? String(contentsOfFile: "/proc/\(entry)/cmdline", encoding: .utf8),
                cmdline.hasPrefix("dovecot-popfetch-test-"), cmdline.contains("/pop3")
            else { continue }
            let fds = (try? fm.contentsOfDirectory(atPath: "/proc/\(entry)/fd")) ?? []
            let holds = fds.contains { fd in
                ((try? fm.destinationOfSymbolicLink(atPath: "/proc/\(entry)/fd/\(fd)")) ?? "").hasPrefix(
                    self.maildir + "/")
            }
            if holds && kill(pid, SIGKILL) == 0 { ended += 1 }
        }
        return ended
    }

    /// Number of messages in the mailbox (new/ and cur/).
    package func messageCount() -> Int {
        let fm = FileManager.default
        let n = (try? fm.contentsOfDirectory(atPath: self.maildir + "/new"))?.count ?? 0
        let c = (try? fm.contentsOfDirectory(atPath: self.maildir + "/cur"))?.count ?? 0
        return n + c
    }
}

/// Waits until `condition` holds, up to `timeout` seconds.
package func eventually(_ timeout: Double, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return true }
        usleep(100_000)
    }
    return try condition()
}
