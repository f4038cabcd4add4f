import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// What a `PopfetchFixture` needs of a real POP3 server: its ports, the CA of its certificate, and fresh users.
package protocol POP3TestServer: Sendable {
    /// Plain POP3 (STLS offered).
    var pop3Port: Int { get }
    /// POP3 over implicit TLS.
    var pop3sPort: Int { get }
    /// The private CA that signed the server certificate (for "localhost" and 127.0.0.1).
    var caFile: String { get }
    /// A new user with an empty Maildir; its password is "secret-NAME".
    func addUser() throws -> MailUser
}

extension DovecotServer: POP3TestServer {
    package func addUser() throws -> MailUser { try self.addUser(quota: nil) }
}

/// The private Courier POP3 server of this test process (scripts/courier-instance), started once and stopped at
/// exit: courier-pop 1.0 with courier-authlib's userdb, unpacked from the Debian packages (never installed, as they
/// conflict with dovecot-pop3d) and run in a private mount namespace.
package final class CourierServer: POP3TestServer {
    package let directory: String
    package let pop3Port: Int
    package let pop3sPort: Int
    package let caFile: String
    package let mailDirectory: String

    package static let shared: Result<CourierServer, any Error> = Result { try CourierServer() }

    package static func get() throws -> CourierServer { try Self.shared.get() }

    package init() throws {
        let dir = try makeTempDirectory("courier")
        let script = Package.root + "/scripts/courier-instance"
        // The first start on a machine may still download and unpack the packages.
        let r = try runProgram([script, "start", dir], timeout: 180)
        guard r.status == 0 else {
            throw TestFailure("could not start Courier (a missing server is a test failure): \(r.stderr) \(r.stdout)")
        }
        var values: [String: String] = [:]
        for line in r.stdout.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { values[String(parts[0])] = String(parts[1]) }
        }
        guard let p = values["POP3_PORT"].flatMap(Int.init), let ps = values["POP3S_PORT"].flatMap(Int.init),
            let ca = values["CA_FILE"], let mail = values["MAIL_DIR"]
        else { throw TestFailure("courier-instance printed no ports: \(r.stdout)") }
        self.directory = dir
        self.pop3Port = p
        self.pop3sPort = ps
        self.caFile = ca
        self.mailDirectory = mail
        CourierRegistry.register(dir)
    }

    /// Adds a userdb user (password "secret-NAME") with a fresh, empty Maildir; authdaemond sees it at once.
    package func addUser() throws -> MailUser {
        let name = "c" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
        let r = try runProgram(
            [Package.root + "/scripts/courier-instance", "add-user", self.directory, name], timeout: 30)
        guard r.status == 0 else { throw TestFailure("courier-instance add-user failed: \(r.stderr)") }
        return MailUser(name: name, password: "secret-" + name, maildir: self.mailDirectory + "/" + name)
    }

    /// Courier's own log (logins, logouts, TLS errors), for failure messages.
    package var log: String {
        (try? String(contentsOfFile: self.directory + "/run/pop3d.log", encoding: .utf8)) ?? ""
    }
}

/// Stops every Courier this process started, when the process exits: SIGTERM to the launcher (which stops
/// authdaemond and both listeners) and to each of those by its recorded PID.
package enum CourierRegistry {
    nonisolated(unsafe) private static var directories: [String] = []
    private static let lock = NSLock()
    private static let installed: Void = {
        atexit {
            CourierRegistry.lock.lock()
            let dirs = CourierRegistry.directories
            CourierRegistry.lock.unlock()
            for d in dirs {
                for file in ["/run/courier.pid", "/run/pop3d.pid", "/run/pop3s.pid", "/run/authdaemond.pid"] {
                    if let pid = try? String(contentsOfFile: d + file, encoding: .utf8)
                        .trimmingCharacters(in: .whitespacesAndNewlines), let p = Int32(pid), p > 1
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
