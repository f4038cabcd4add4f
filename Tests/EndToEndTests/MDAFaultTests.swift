import Foundation
import MailTestKit
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Careless MDAs: not executable, killed by a signal, reading slowly, leaving a child behind that holds its output
/// open, flooding stderr. Each is a real child process (`sh` scripts around the fixture's saving MDA).
@Suite("MDA faults")
struct MDAFaultTests {
    /// An MDA script `name` in the fixture's directory: `body`, then (unless `body` ends the script) the saving MDA.
    static func mda(_ f: PopfetchFixture, _ name: String, _ body: String, mode: mode_t = 0o755) throws -> String {
        let path = f.directory + "/" + name
        try writeExecutable("#!/bin/sh\n\(body)\n", to: path)
        chmod(path, mode)
        return path
    }

    @Test(
        "an MDA still open for writing (being installed: Text file busy) is tried again until it can run",
        .fault(
            .mda, "the MDA file is held open for writing by another process for half a second",
            expect: "exit 0; each message delivered once, after the writer closed it"))
    func textFileBusy() throws {
        let f = try PopfetchFixture()
        let corpus = Corpus.messages(2, seed: 146)
        try f.user.deliver(corpus)
        let path = try Self.mda(f, "mda-busy", "exec \(f.mdaScript)")
        try f.writeConfig(mda: path)
        let writer = try Holder.start(
            "import sys, time\n"
                + "w = open(sys.argv[1], 'ab')\n"
                + "open(sys.argv[2], 'w').close()\n"
                + "time.sleep(0.5)\n"
                + "w.close()\n"
                + "time.sleep(60)\n",
            [path], ready: f.directory + "/writing")
        defer { writer.stop() }
        let r = try f.poll()
        #expect(r.status == 0, "\(r.stderr)")
        let got = try f.delivered()
        #expect(got.count == 2 && sameMessages(got, corpus))
    }

    @Test(
        "an MDA that is not executable: kept on the server, reported; delivered once it is fixed",
        .fault(
            .mda, "the MDA file exists but is not executable (mode 0644)",
            expect: "exit 75 with the MDA's path in the error; nothing deleted; after chmod +x, each message once"))
    func notExecutable() throws {
        let f = try PopfetchFixture()
        let corpus = Corpus.messages(2, seed: 41)
        try f.user.deliver(corpus)
        let path = try Self.mda(f, "mda-644", "exec \(f.mdaScript)", mode: 0o644)
        try f.writeConfig(mda: path)
        let r = try f.poll()
        #expect(r.status == 75 && r.stderr.contains(path), "\(r.stderr)")
        #expect(try f.user.messageCount() == 2 && f.delivered().isEmpty)
        chmod(path, 0o755)
        #expect(try f.poll().status == 0)
        let got = try f.delivered()
        #expect(got.count == 2 && sameMessages(got, corpus))
        #expect(f.user.messageCount() == 0)
    }

    @Test(
        "an MDA killed by a signal after reading everything: not delivered, kept, delivered once it works",
        .fault(
            .mda, "the MDA reads the whole message, then is killed by SIGKILL",
            expect: "exit 75 naming the signal; nothing deleted; once the MDA works, each message exactly once"))
    func killedBySignal() throws {
        let f = try PopfetchFixture()
        let corpus = Corpus.messages(2, seed: 42)
        try f.user.deliver(corpus)
        let path = try Self.mda(f, "mda-killed", "cat >/dev/null\nkill -KILL $$")
        try f.writeConfig(mda: path)
        let r = try f.poll()
        #expect(r.status == 75 && r.stderr.lowercased().contains("signal"), "\(r.stderr)")
        #expect(try f.user.messageCount() == 2 && f.delivered().isEmpty)
        _ = try Self.mda(f, "mda-killed", "exec \(f.mdaScript)")
        #expect(try f.poll().status == 0)
        let got = try f.delivered()
        #expect(got.count == 2 && sameMessages(got, corpus))
    }

    @Test(
        "an MDA reading 4 KB every 20 ms gets every message whole",
        .fault(
            .mda, "the MDA reads slowly: 4 KB every 20 ms",
            expect: "exit 0; every message delivered byte-exact and deleted"))
    func slowReader() throws {
        let f = try PopfetchFixture()
        let corpus = Corpus.messages(3, seed: 43)
        try f.user.deliver(corpus)
        let slow = f.directory + "/slow.py"
        try """
        import os, sys, time
        data = b""
        while True:
            chunk = sys.stdin.buffer.read1(4096)
            if not chunk:
                break
            data += chunk
            time.sleep(0.02)
        tmp = os.path.join(sys.argv[1], ".tmp.%d" % os.getpid())
        with open(tmp, "wb") as out:
            out.write(data)
        os.rename(tmp, os.path.join(sys.argv[1], "msg.%d.%d" % (time.time_ns(), os.getpid())))
        """.write(toFile: slow, atomically: true, encoding: .utf8)
        let path = try Self.mda(f, "mda-slow", "exec python3 \(slow) \(f.outDirectory)")
        try f.writeConfig(mda: path)
        let r = try f.poll()
        #expect(r.status == 0, "\(r.stderr)")
        let got = try f.delivered()
        #expect(got.count == 3 && sameMessages(got, corpus))
        #expect(f.user.messageCount() == 0)
    }

    @Test(
        "an MDA that leaves a child holding its stdout and stderr open: the poll does not wait for that child",
        .fault(
            .mda, "the MDA starts a background child (sleep 60) that keeps its stdout and stderr open, then exits 0",
            expect: "exit 0 within 20 s; every message delivered and deleted"))
    func lingeringChild() throws {
        let f = try PopfetchFixture()
        let corpus = Corpus.messages(2, seed: 44)
        try f.user.deliver(corpus)
        let path = try Self.mda(f, "mda-lingering", "sleep 60 </dev/null &\nexec \(f.mdaScript)")
        try f.writeConfig(mda: path)
        let start = Date()
        let r = try f.poll()
        let elapsed = Date().timeIntervalSince(start)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(elapsed < 20, "the poll took \(elapsed) s")
        let got = try f.delivered()
        #expect(got.count == 2 && sameMessages(got, corpus))
        #expect(f.user.messageCount() == 0)
    }

    @Test(
        "an MDA writing 20 MB to stderr: no deadlock, the message delivered, the log bounded",
        .fault(
            .mda, "the MDA writes 20 MB to stderr before reading its input",
            expect: "exit 0; every message delivered and deleted; popfetch's own output stays under 1 MB"))
    func stderrFlood() throws {
        let f = try PopfetchFixture()
        let corpus = Corpus.messages(2, seed: 45)
        try f.user.deliver(corpus)
        let path = try Self.mda(
            f, "mda-noisy", "head -c 20000000 /dev/zero | tr '\\0' 'e' >&2\nexec \(f.mdaScript)")
        try f.writeConfig(mda: path)
        let r = try f.poll()
        #expect(r.status == 0, "\(r.stderr.prefix(2_000))")
        #expect(r.stderr.utf8.count + r.stdout.utf8.count < 1_000_000, "\(r.stderr.utf8.count) bytes of output")
        let got = try f.delivered()
        #expect(got.count == 2 && sameMessages(got, corpus))
        #expect(f.user.messageCount() == 0)
    }
}
