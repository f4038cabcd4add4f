import Foundation
import MailTestKit
import Retrieval
import Testing

@testable import Daemon
@testable import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// The daemon's waits end on task cancellation: what lets the service group's grace expiry end a stuck poll.
@Suite("Daemon waits end on cancellation", .offThePool)
struct DaemonWaitTests {
    @Test("Waker: a timer ends the sleep; a wake ends it early or is kept for the next; cancellation ends it")
    func waker() async throws {
        // Each bound is far below the hour it guards: a loaded machine (a full CI run took 6.3 s for one wake)
        // must not fail what only asks whether the sleep ended early.
        try await withTaskExecutorPreference(TestExecutor.shared) {
            let waker = Waker()
            var start = Date()
            await waker.sleep(seconds: 0.05)
            #expect(Date().timeIntervalSince(start) < 60)

            waker.wake()
            start = Date()
            await waker.sleep(seconds: 3600)
            #expect(Date().timeIntervalSince(start) < 60, "a wake that came before the sleep is kept")

            start = Date()
            let sleeper = Task(executorPreference: TestExecutor.shared) { await waker.sleep(seconds: 3600) }
            try await Task.sleep(for: .milliseconds(100))
            waker.wake()
            await sleeper.value
            #expect(Date().timeIntervalSince(start) < 60)

            start = Date()
            let cancelled = Task(executorPreference: TestExecutor.shared) { await waker.sleep(seconds: 3600) }
            try await Task.sleep(for: .milliseconds(100))
            cancelled.cancel()
            await cancelled.value
            #expect(Date().timeIntervalSince(start) < 60, "cancellation ends an hour's sleep")

            let early = Task(executorPreference: TestExecutor.shared) {
                withUnsafeCurrentTask { $0?.cancel() }
                await Waker().sleep(seconds: 3600)
            }
            await early.value
        }
    }

    @Test("PollSlots: at most N; a waiter gets a released slot; a cancelled waiter gives up and takes none")
    func slots() async throws {
        try await withTaskExecutorPreference(TestExecutor.shared) {
            let slots = PollSlots(1)
            #expect(await slots.acquire())
            let waiter = Task(executorPreference: TestExecutor.shared) { await slots.acquire() }
            try await Task.sleep(for: .milliseconds(100))
            waiter.cancel()
            #expect(await waiter.value == false, "a cancelled waiter gets no slot")
            let next = Task(executorPreference: TestExecutor.shared) { await slots.acquire() }
            try await Task.sleep(for: .milliseconds(100))
            slots.release()
            #expect(await next.value == true, "the released slot goes to the waiter")
            slots.release()
            #expect(await slots.acquire(), "and comes back free")
            slots.release()
        }
    }

    @Test("ProcessRunner: a cancelled wait for a hung child ends at once; the child is left running")
    func hungChild() async throws {
        try await withTaskExecutorPreference(TestExecutor.shared) {
            let dir = try makeTempDirectory("hung")
            let pidFile = dir + "/pid"
            let devNull = open("/dev/null", O_RDONLY)
            defer { close(devNull) }
            let task = Task(executorPreference: TestExecutor.shared) {
                try await ProcessRunner.run(
                    arguments: ["/bin/sh", "-c", "echo $$ > \(pidFile); exec sleep 60"], stdin: devNull, timeout: 600)
            }
            var pid: pid_t = 0
            for _ in 0..<100 where pid == 0 {
                try await Task.sleep(for: .milliseconds(50))
                let text = (try? String(contentsOfFile: pidFile, encoding: .utf8)) ?? ""
                pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            }
            try #require(pid > 0, "the child never started")
            let start = Date()
            task.cancel()
            await #expect(throws: CancellationError.self) { try await task.value }
            #expect(Date().timeIntervalSince(start) < 2, "the wait ended at the cancellation")
            #expect(kill(pid, 0) == 0, "the child is not killed (an MDA must not die half-way through a delivery)")
            kill(pid, SIGKILL)
        }
    }
}
