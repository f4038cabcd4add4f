#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

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
        try FileManager.default.copyItem(atPath: Package.binary, toPath: bin)
        let chown = try runProgram(["/bin/chown", "-R", "nobody:nogroup", f.directory])
        try #require(chown.status == 0, "\(chown.stderr)")
        chmod(f.directory, 0o755)
        let asNobody = ["/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", bin]
        let args = ["--config", f.configPath, "--state", f.statePath, "poll"]
        let r = try runProgram(asNobody + args, environment: ["HOME": f.directory])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!r.stderr.contains("Permission denied"), "\(r.stderr)")
        #expect(sameMessages(try f.delivered(), corpus))
        let again = try runProgram(asNobody + args, environment: ["HOME": f.directory])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(try f.delivered().count == corpus.count)
    }
}
