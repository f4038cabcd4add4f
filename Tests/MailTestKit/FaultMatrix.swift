import Foundation
package import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The classes of the fault matrix (docs/FAULTS.md), in the order it lists them.
package enum FaultClass: String, Sendable, CaseIterable {
    case pop3 = "POP3 server"
    case smtp = "SMTP/LMTP server"
    case imap = "IMAP server"
    case mda = "MDA"
    case state = "State and disk"
    case process = "Process: kills, signals, second process"
    case config = "Configuration and input"
}

/// A row of the fault matrix: the fault a test injects and the outcome it asserts.
///
/// Put it on a test (`@Test("…", .fault(.pop3, "connection dropped mid-RETR", expect: "…"))`). When the test's body
/// returns, the row is appended, as one JSON line, to the file named by `POPFETCH_FAULT_LOG` (set by scripts/test);
/// `scripts/fault-matrix` turns the lines of a run in which every test passed into docs/FAULTS.md. So the published
/// matrix lists exactly the faults the suite injects, with the outcome each test asserts, and `.ci/run` fails when the
/// committed copy differs from the one the run regenerated.
package struct FaultRow: TestTrait, TestScoping {
    package var faultClass: FaultClass
    package var fault: String
    package var expected: String

    package func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        try await function()
        guard testCase != nil, let path = ProcessInfo.processInfo.environment["POPFETCH_FAULT_LOG"] else { return }
        let row: [String: String] = [
            "class": self.faultClass.rawValue, "fault": self.fault, "expected": self.expected,
            "test": test.displayName ?? test.name,
            "suite": test.id.description.components(separatedBy: "/").first ?? "",
        ]
        guard var line = try? JSONSerialization.data(withJSONObject: row, options: [.sortedKeys]) else { return }
        line.append(10)
        // One write(2) of one line with O_APPEND: lines of concurrent tests never interleave.
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        defer { close(fd) }
        _ = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }
}

extension Trait where Self == FaultRow {
    /// A row of the fault matrix: `fault` injected, `expected` asserted by the test.
    package static func fault(_ faultClass: FaultClass, _ fault: String, expect expected: String) -> Self {
        FaultRow(faultClass: faultClass, fault: fault, expected: expected)
    }
}
