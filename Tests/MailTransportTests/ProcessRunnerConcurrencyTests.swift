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
}
