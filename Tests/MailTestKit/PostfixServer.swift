import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The private Postfix of this test process (scripts/postfix-instance), started once and stopped at exit.
package final class PostfixServer: Sendable {
    package let directory: String
    package let smtpPort: Int
    package let vmail: String
    package let caFile: String

    package static let shared: Result<PostfixServer, any Error> = Result { try PostfixServer() }
    package static func get() throws -> PostfixServer { try Self.shared.get() }

    package init() throws {
        let dir = try makeTempDirectory("postfix")
        // SMTP AUTH is checked against the test Dovecot's users.
        let dovecot = try DovecotServer.get()
        let r = try runProgram(
            [Package.root + "/scripts/postfix-instance", "start", dir],
            environment: ["DOVECOT_AUTH_SOCKET": dovecot.directory + "/run/base/auth-postfix"], timeout: 60)
        guard r.status == 0 else {
            throw TestFailure("could not start Postfix (a missing server is a test failure): \(r.stderr) \(r.stdout)")
        }
        var values: [String: String] = [:]
        for line in r.stdout.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { values[String(parts[0])] = String(parts[1]) }
        }
        guard let port = values["SMTP_PORT"].flatMap(Int.init), let vmail = values["VMAIL_DIR"],
            let ca = values["CA_FILE"]
        else {
            throw TestFailure("postfix-instance printed no port: \(r.stdout)")
        }
        self.caFile = ca
        self.directory = dir
        self.smtpPort = port
        self.vmail = vmail
        PostfixRegistry.register(dir)
    }

    package var log: String { (try? String(contentsOfFile: self.directory + "/postfix.log", encoding: .utf8)) ?? "" }

    /// A fresh recipient address at the test domain.
    package func newRecipient() -> String {
        "r" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased() + "@mail.test"
    }

    /// Messages delivered to `address`, each with the MTA's and popfetch's trace headers removed.
    package func delivered(to address: String) throws -> [[UInt8]] {
        let local = String(address.prefix { $0 != "@" })
        let dir = self.vmail + "/" + local + "/new"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return [] }
        return try names.map { name in
            var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/" + name)))
            bytes = try Self.stripFirstHeader(bytes, prefix: "Received: from ")  // Postfix's
            return try PopfetchFixture.stripTraceHeader(bytes)  // popfetch's
        }
    }

    package func count(_ address: String) -> Int {
        let local = String(address.prefix { $0 != "@" })
        return (try? FileManager.default.contentsOfDirectory(atPath: self.vmail + "/" + local + "/new"))?.count ?? 0
    }

    package static func stripFirstHeader(_ bytes: [UInt8], prefix: String) throws -> [UInt8] {
        try #require(bytes.starts(with: Array(prefix.utf8)), "expected a \(prefix) header")
        var i = 0
        while i < bytes.count && bytes[i] != 10 { i += 1 }
        i += 1
        while i < bytes.count && (bytes[i] == 9 || bytes[i] == 32) {
            while i < bytes.count && bytes[i] != 10 { i += 1 }
            i += 1
        }
        return Array(bytes[min(i, bytes.count)...])
    }
}

package enum PostfixRegistry {
    nonisolated(unsafe) private static var directories: [String] = []
    private static let lock = NSLock()
    private static let installed: Void = {
        atexit {
            PostfixRegistry.lock.lock()
            let dirs = PostfixRegistry.directories
            PostfixRegistry.lock.unlock()
            for d in dirs {
                if let text = try? String(contentsOfFile: d + "/queue/pid/master.pid", encoding: .utf8),
                    let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
                {
                    kill(pid, SIGTERM)
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
