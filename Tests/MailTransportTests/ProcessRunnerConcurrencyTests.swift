import Foundation
import MailTestKit
import NIOCore
import SystemSupport
import Testing

/// Children of different polls run side by side: one account's slow MDA (or password command) must not hold up
/// another account's, whatever the number of cores.
@Suite("ProcessRunner concurrency", .offThePool)
struct ProcessRunnerConcurrencyTests {
    @Test("more children than cores run at once, not one pool thread's worth at a time")
    func childrenRunSideBySide() async throws {
        let n = 2 * System.coreCount + 2
        let devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { close(devnull) }
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("starts-\(UUID().uuidString)").path
        defer { unlink(log) }
        // Each child notes when it started, then lives one second. Measured by the children's own clocks, so a
        // busy test process (other suites block the cooperative pool) cannot blur it.
        let outcomes = try await withThrowingTaskGroup(of: ProcessOutcome.self) { group in
            for _ in 0..<n {
                group.addTask {
                    try await ProcessRunner.run(
                        arguments: ["/bin/sh", "-c", "date +%s.%N >> '\(log)'; sleep 1"], stdin: devnull,
                        timeout: 60)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(outcomes.allSatisfy { $0.termination == .exited(0) })
        let starts = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").compactMap { Double($0) }
        #expect(starts.count == n)
        let spread = (starts.max() ?? 0) - (starts.min() ?? 0)
        #expect(spread < 0.9, "\(n) children started over \(spread) s: some waited for others to end")
    }

    @Test("one waiting thread tells each of many children apart: exit status, output, time-out, in any order")
    func manyChildrenEachTheirOwnOutcome() async throws {
        let devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { close(devnull) }
        let n = 40
        let started = ContinuousClock.now
        // Child i sleeps a little (later ones end first), says its number and exits with it; child 0 hangs and
        // must be killed at its 1 s time-out while the others are still being reaped.
        let outcomes = try await withThrowingTaskGroup(of: (Int, ProcessOutcome, Duration).self) { group in
            for i in 0..<n {
                group.addTask {
                    let script =
                        i == 0
                        ? "echo hung; exec sleep 30"
                        : "sleep 0.\(String(format: "%02d", n - i)); echo child \(i); exit \(i)"
                    let outcome = try await ProcessRunner.run(
                        arguments: ["/bin/sh", "-c", script], stdin: devnull, timeout: i == 0 ? 1 : 60)
                    return (i, outcome, ContinuousClock.now - started)
                }
            }
            return try await group.reduce(into: [:]) { $0[$1.0] = ($1.1, $1.2) }
        }
        #expect(outcomes.count == n)
        for i in 1..<n {
            let outcome = try #require(outcomes[i]?.0)
            #expect(outcome.termination == .exited(Int32(i)), "child \(i)")
            #expect(outcome.output == "child \(i)")
            #expect(!outcome.timedOut)
        }
        let hung = try #require(outcomes[0])
        #expect(hung.0.timedOut)
        #expect(hung.0.termination == .signaled(SIGKILL))
        #expect(hung.0.output == "hung")
        #expect(hung.1 < .seconds(10), "the hung child was killed after \(hung.1)")
    }

    @Test("a process a child leaves running can no longer write into the child's output once the child is reaped")
    func leftoverProcessCannotGrowTheOutput() async throws {
        // An MDA that starts a background job holding its stderr, then exits 0: the job used to grow the unlinked
        // output file without end (10 MB/s filled /tmp; review of issue 9, daemon finding 3), as the size cap
        // applies only while the child runs. Now its first write after the reap fails, and it stops.
        let devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { close(devnull) }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("leftover-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script =
            "sh -c 'echo $$ > \"$1/pid\"; while printf x >&2; do sleep 0.01; done; touch \"$1/stopped\"' _ '\(dir)' & "
            + "while [ ! -e '\(dir)/pid' ]; do sleep 0.01; done; echo done"
        let outcome = try await ProcessRunner.run(arguments: ["/bin/sh", "-c", script], stdin: devnull, timeout: 30)
        #expect(outcome.termination == .exited(0))
        let stopped = eventually(10) { FileManager.default.fileExists(atPath: dir + "/stopped") }
        #expect(stopped, "the background job could still write into the output after its parent was reaped")
        if !stopped,
            let pid = Int32(
                (try? String(contentsOfFile: dir + "/pid", encoding: .utf8))?
                    .trimmingCharacters(in: .whitespacesAndNewlines) ?? "")
        {
            kill(pid, SIGKILL)
        }
    }

    @Test("a child's output past the cap keeps its tail, what the error message shows")
    func cappedOutputKeepsTail() async throws {
        // 1.5 MB of noise, then the real error, then a pause longer than the size check's period: the cap used to
        // empty the file, and the error was lost (review of issue 9's fixes, B4).
        let devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { close(devnull) }
        let script =
            "head -c 1500000 /dev/zero | tr '\\0' x >&2; echo 'ERRTAIL: quota exceeded' >&2; sleep 0.5; exit 75"
        let outcome = try await ProcessRunner.run(arguments: ["/bin/sh", "-c", script], stdin: devnull, timeout: 30)
        #expect(outcome.termination == .exited(75))
        #expect(outcome.output.contains("ERRTAIL: quota exceeded"), "\(outcome.output.suffix(200))")
    }
}
