import Foundation
import MailTestKit
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// popfetch as its users run it: not as root. (The rest of the suite runs as root, which hid a socket option that
/// only root may set: every connection of an unprivileged popfetch failed with "Permission denied".)
@Suite("Unprivileged: popfetch run as an ordinary user")
struct UnprivilegedTests {
    @Test("as user nobody: a poll over TLS fetches and delivers every message, and the second poll fetches nothing")
    func pollAsNobody() throws {
        try #require(getuid() == 0, "the test drops privileges, so it needs root to start with")
        let f = try PopfetchFixture()
        let corpus = Corpus.messages(3, seed: 401)
        try f.user.deliver(corpus)
        try f.writeConfig(tls: "implicit")
        // A copy of the binary where nobody can reach it (the checkout may sit under a private directory).
        let bin = f.directory + "/popfetch"
        try Self.copyExecutable(Package.binary, to: bin)
        let chown = try runProgram(["/bin/chown", "-R", "nobody:nogroup", f.directory])
        try #require(chown.status == 0, "\(chown.stderr)")
        chmod(f.directory, 0o755)
        let asNobody = ["/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", bin]
        let args = ["--config", f.configPath, "--state", f.statePath, "poll"]
        let r = try Self.run(asNobody + args, home: f.directory)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!r.stderr.contains("Permission denied"), "\(r.stderr)")
        #expect(sameMessages(try f.delivered(), corpus))
        let again = try Self.run(asNobody + args, home: f.directory)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(try f.delivered().count == corpus.count)
    }

    /// Copies the binary through a close-on-exec descriptor: a copy whose write descriptor a concurrently spawned
    /// child inherited could not be executed ("Text file busy").
    static func copyExecutable(_ source: String, to target: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: source))
        let fd = open(target, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o755)
        try #require(fd >= 0, "cannot create \(target)")
        defer { close(fd) }
        try data.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                guard let base = raw.baseAddress else { return }
                let n = write(fd, base + done, raw.count - done)
                try #require(n > 0, "cannot write \(target)")
                done += n
            }
        }
    }

    /// Runs the command, trying again while the kernel still reports the fresh copy busy (a fork elsewhere in the
    /// test process may hold its descriptor for a moment before its exec).
    static func run(_ arguments: [String], home: String) throws -> RunResult {
        var r = try runProgram(arguments, environment: ["HOME": home])
        var tries = 0
        while r.status == 126 && r.stderr.contains("Text file busy") && tries < 50 {
            usleep(100_000)
            tries += 1
            r = try runProgram(arguments, environment: ["HOME": home])
        }
        return r
    }
}
