import Foundation
import MailTestKit
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The heavy tests: they kill processes and move large messages, so they run one at a time.
@Suite("Crash safety and memory", .serialized)
struct CrashSafetyTests {
    @Test(
        "kill -9 at random instants, then a clean poll: nothing lost, nothing truncated, ≤ 1 duplicate per kill",
        .fault(
            .process, "popfetch killed with SIGKILL at 6 random instants while polling 150 messages (MDA)",
            expect: "clean poll then exits 0; none lost or truncated; at most 1 duplicate per kill; no spool left"))
    func killNineAtRandomInstants() throws {
        let f = try PopfetchFixture()
        let corpus = (0..<150).map { i -> [UInt8] in
            var m = Corpus.message(i, seed: 90, bodyLines: 30)
            m += Array(repeating: UInt8(ascii: "k"), count: 2_000 + (i % 7) * 3_000) + [10]
            return m
        }
        try f.user.deliver(corpus)
        try f.writeConfig()
        var rng = SplitMix(seed: 4242)
        var kills = 0
        for _ in 0..<6 {
            let child = try Child.spawn(
                [Package.binary, "--config", f.configPath, "--state", f.statePath, "poll", "-q"],
                stdout: "/dev/null", stderr: "/dev/null")
            let delayMs = 30 + Int(rng.next() % 600)
            usleep(UInt32(delayMs * 1000))
            if child.isRunning {
                kill(child.pid, SIGKILL)
                kills += 1
            }
            _ = child.wait()
            usleep(300_000)  // let an orphaned MDA finish its (complete) message
        }
        f.user.endStaleSessions()
        // Clean polls until one succeeds (the server may briefly report the killed session's lock).
        var last: RunResult?
        for _ in 0..<20 {
            let r = try f.poll()
            last = r
            if r.status == 0 { break }
            usleep(300_000)
        }
        #expect(last?.status == 0, "\(last?.stderr ?? "")")
        let got = try f.delivered()
        let originals = Set(corpus)
        for m in got {
            #expect(originals.contains(m), "a delivered message is not byte-identical to any original (truncated?)")
        }
        let gotSet = Set(got)
        #expect(corpus.allSatisfy { gotSet.contains($0) }, "a message was lost")
        #expect(
            got.count - corpus.count <= kills, "more duplicates (\(got.count - corpus.count)) than kills (\(kills))")
        #expect(f.user.messageCount() == 0, "mailbox must be empty after the clean poll")
        // No spool file is ever left behind: they are unlinked at creation.
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: f.directory + "/state").filter {
            $0.contains("spool")
        }
        #expect(leftovers.isEmpty)
    }

    @Test("a 50 MB message is delivered byte-exact with flat memory (peak RSS bounded)")
    func fiftyMegabyteMessage() throws {
        let f = try PopfetchFixture()
        var big = Array("From: big@example.org\nSubject: fifty megabytes\n\n".utf8)
        let line = Array(repeating: UInt8(ascii: "x"), count: 75) + [10]
        big.reserveCapacity(50 * 1024 * 1024 + 1000)
        while big.count < 50 * 1024 * 1024 { big += line }
        big += Array(".dot line at the end\n".utf8)
        try f.user.deliver([big])
        let out = f.directory + "/big.out"
        let mda = f.directory + "/cat-mda"
        try writeExecutable("#!/bin/sh\nexec cat > \(out)\n", to: mda)
        try f.writeConfig(mda: mda)

        // Baseline: the same binary polling an empty mailbox of another user.
        let g = try PopfetchFixture()
        try g.writeConfig()
        let baseline = try Self.peakRSS(["--config", g.configPath, "--state", g.statePath, "poll", "-q"])

        let peak = try Self.peakRSS(["--config", f.configPath, "--state", f.statePath, "poll", "-q"])
        let delivered = try PopfetchFixture.stripTraceHeader(Array(try Data(contentsOf: URL(fileURLWithPath: out))))
        #expect(delivered.count == big.count)
        let exact = delivered == big
        #expect(exact, "the 50 MB message arrived byte-exact")
        #expect(f.user.messageCount() == 0)
        let growthMB = Double(peak - baseline) / 1024
        // The message is 50 MB; streaming keeps the growth to buffers (a few MB), whatever the message size.
        #expect(growthMB < 16, "peak RSS grew by \(growthMB) MB over an empty poll (\(baseline) KB → \(peak) KB)")
        #expect(peak < 48 * 1024, "peak RSS \(peak) KB is not well under the message size")
    }

    /// Peak RSS in KB of one popfetch run, measured by GNU time.
    static func peakRSS(_ arguments: [String]) throws -> Int {
        let dir = try makeTempDirectory("rss")
        let report = dir + "/time"
        let r = try runProgram(["/usr/bin/time", "-f", "%M", "-o", report, Package.binary] + arguments)
        #expect(r.status == 0, "\(r.stderr)")
        let text = try String(contentsOfFile: report, encoding: .utf8)
        return try #require(Int(text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").last ?? ""))
    }
}
