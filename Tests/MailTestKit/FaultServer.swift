import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The fault-injecting POP3 mailbox (Support/fault-pop3.py): a scenario file the test rewrites between polls, a log
/// of every line the client sent, and a record of which messages a QUIT really deleted.
package final class FaultServer {
    package struct Message: Sendable {
        package var uid: String
        package var body: String
        /// Distinguishes messages that share a UIDL (default: the UIDL).
        package var id: String?
        package var listSize: Int?
        /// ok, err, drop, drop-before, unstuffed-dot, trickle, silent (no reply at all)
        package var retr = "ok"
        /// Left out of LIST.
        package var listOmit = false
        /// Sent verbatim after the message's terminating dot line.
        package var after: String?
        /// Sent verbatim right before the message's RETR reply.
        package var before: String?

        package init(
            uid: String, body: String, id: String? = nil, listSize: Int? = nil, retr: String = "ok",
            listOmit: Bool = false, after: String? = nil
        ) {
            self.uid = uid
            self.body = body
            self.id = id
            self.listSize = listSize
            self.retr = retr
            self.listOmit = listOmit
            self.after = after
        }
    }

    package let child: Child
    package let port: Int
    package let log: String
    package let scenarioPath: String
    package let statePath: String

    private init(child: Child, port: Int, log: String, scenarioPath: String, statePath: String) {
        self.child = child
        self.port = port
        self.log = log
        self.scenarioPath = scenarioPath
        self.statePath = statePath
    }

    package static func start(_ f: PopfetchFixture, messages: [Message], options: [String: Any] = [:]) throws
        -> FaultServer
    {
        let log = f.directory + "/fault-client.log"
        let scenario = f.directory + "/fault-scenario.json"
        let state = f.directory + "/fault-deleted.json"
        try Self.writeScenario(scenario, state: state, messages: messages, options: options)
        let (child, port) = try spawnListening(
            script: "fault-pop3.py", arguments: [log, scenario], portFile: f.directory + "/fault-port",
            log: f.directory + "/fault.out")
        return FaultServer(child: child, port: port, log: log, scenarioPath: scenario, statePath: state)
    }

    /// Replaces the mailbox for the next session.
    package func set(messages: [Message], options: [String: Any] = [:]) throws {
        try Self.writeScenario(self.scenarioPath, state: self.statePath, messages: messages, options: options)
    }

    /// Forgets which messages were deleted (a fresh mailbox).
    package func resetDeleted() {
        unlink(self.statePath)
    }

    package static func writeScenario(_ path: String, state: String, messages: [Message], options: [String: Any]) throws
    {
        var o = options
        o["state"] = state
        o["messages"] = messages.map { m -> [String: Any] in
            var d: [String: Any] = ["uid": m.uid, "body": m.body, "retr": m.retr]
            if let id = m.id { d["id"] = id }
            if let s = m.listSize { d["list_size"] = s }
            if m.listOmit { d["list_omit"] = true }
            if let a = m.after { d["after"] = a }
            if let b = m.before { d["before"] = b }
            return d
        }
        let data = try JSONSerialization.data(withJSONObject: o)
        try data.write(to: URL(fileURLWithPath: path + ".tmp"))
        rename(path + ".tmp", path)
    }

    /// Ids (or UIDLs) of the messages a QUIT +OK really removed.
    package func deleted() -> Set<String> {
        guard let data = FileManager.default.contents(atPath: self.statePath),
            let list = try? JSONSerialization.jsonObject(with: data) as? [String]
        else { return [] }
        return Set(list)
    }

    /// Every line the client sent, across sessions.
    package func sent() -> String {
        (try? String(contentsOfFile: self.log, encoding: .utf8)) ?? ""
    }

    package func stop() {
        kill(self.child.pid, SIGKILL)
        _ = self.child.wait(timeout: 5)
    }
}

/// A fault server's message body as an MDA receives it (LF line ends).
package func asDelivered(_ body: String) -> [UInt8] {
    Array(body.replacingOccurrences(of: "\r\n", with: "\n").utf8)
}

/// A test message body (CRLF line ends) with a recognisable subject.
package func faultMessage(_ subject: String, lines: Int = 40) -> String {
    var s = "From: sender@example.org\r\nSubject: \(subject)\r\nMessage-ID: <\(subject)@example.org>\r\n\r\n"
    for i in 0..<lines { s += "line \(i) of \(subject): the quick brown fox jumps over the lazy dog\r\n" }
    return s
}
