import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// One of the test kit's scripted servers, for what a real server cannot be made to do on demand, started for one
/// test and stopped by it (`defer { server.stop() }`):
/// - ``Kind/pop3``: `Scripts/scripted-pop3.py`, one behaviour per mode (refused STLS, LOGIN-DELAY, a drop mid-RETR,
///   garbage, over-long lines, huge numbers, 8-bit UIDLs, ...); ``output`` logs every line the client sent.
/// - ``Kind/smtp``: `Scripts/scripted-smtp.py`, SMTP/LMTP faults (a drop mid-DATA, a stalled or early reply, refused
///   recipients, a wedged reader, ...); ``output`` is the directory of the messages it accepted.
/// - ``Kind/imap``: `Scripts/scripted-imap.py`, IMAP faults around APPEND (a drop mid-literal, a drop or a stall
///   after it, garbage); ``output`` is the directory of the messages it stored.
/// Every mode is listed in its script's header. The fault-injecting POP3 mailbox driven by a scenario is
/// ``FaultServer``.
package final class ScriptedServer {
    package enum Kind: String, Sendable {
        case pop3 = "scripted-pop3.py"
        case smtp = "scripted-smtp.py"
        case imap = "scripted-imap.py"
    }

    package let child: Child
    package let port: Int
    /// pop3: the log of the client's lines; smtp: the directory of accepted messages.
    package let output: String

    private init(child: Child, port: Int, output: String) {
        self.child = child
        self.port = port
        self.output = output
    }

    /// Starts the `kind` server in `mode`, in a directory of the fixture's, and waits until it listens.
    package static func start(_ kind: Kind, mode: String, in f: PopfetchFixture) throws -> ScriptedServer {
        let name = kind == .pop3 ? "pop3" : (kind == .smtp ? "smtp" : "imap")
        let output = f.directory + (kind == .pop3 ? "/pop3-client.log" : "/\(name)-out")
        if kind != .pop3 {
            try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        }
        let (child, port) = try spawnListening(
            script: kind.rawValue, arguments: [output, mode], portFile: f.directory + "/\(name)-port",
            log: f.directory + "/\(name).out")
        return ScriptedServer(child: child, port: port, output: output)
    }

    /// What the client sent (pop3), as text.
    package func sent() -> String {
        (try? String(contentsOfFile: self.output, encoding: .utf8)) ?? ""
    }

    package func stop() {
        kill(self.child.pid, SIGKILL)
        _ = self.child.wait(timeout: 5)
    }
}

/// Spawns `Scripts/SCRIPT PORTFILE ARGUMENTS...` with Python (its stdout and stderr to `log`) and waits until it has
/// written the port it listens on to `portFile`; throws if it has not within 10 s.
package func spawnListening(script: String, arguments: [String], portFile: String, log: String) throws -> (Child, Int) {
    // A port file left by an earlier server (one started again in the same directory) would name a dead port.
    unlink(portFile)
    let child = try Child.spawn(
        ["/usr/bin/python3", Package.root + "/Tests/MailTestKit/Scripts/" + script, portFile] + arguments,
        stdout: log, stderr: log)
    _ = eventually(10) { FileManager.default.fileExists(atPath: portFile) }
    let port = Int((try? String(contentsOfFile: portFile, encoding: .utf8)) ?? "") ?? 0
    guard port > 0 else {
        kill(child.pid, SIGKILL)
        _ = child.wait(timeout: 5)
        let said = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        throw TestFailure("\(script) did not start listening within 10 s: \(said)")
    }
    return (child, port)
}
