import MailTransport
import POP3Core
import Testing

@testable import Configuration
@testable import Retrieval
@testable import Spool
@testable import SystemSupport
@testable import UIDLStore

/// Every error a poll can meet, mapped to one class (which decides `poll`'s exit status and the daemon's backoff),
/// with a message that names what failed.
@Suite("Poll error classifier (pure)")
struct PollErrorClassifierTests {
    struct Case: Sendable, CustomStringConvertible {
        var name: String
        var error: any Error & Sendable
        var kind: PollError.Kind
        var description: String { self.name }
    }

    struct Unexpected: Error {}

    static func refused(_ code: ResponseCode?) -> POP3CommandError {
        POP3CommandError(command: "PASS <hidden>", status: StatusLine(indicator: .err, code: code, text: "no"))
    }

    static let cases: [Case] = [
        Case(name: "a poll error stays as it is", error: PollError(.auth, "x"), kind: .auth),
        Case(
            name: "unknown host", error: TransportError(.unknownHost, host: "h", port: 995, phase: "connecting"),
            kind: .unknownHost),
        Case(
            name: "connection refused",
            error: TransportError(.connectionRefused, host: "h", port: 995, phase: "connecting"), kind: .unavailable),
        Case(
            name: "time-out", error: TransportError(.timeout, host: "h", port: 995, phase: "reading"),
            kind: .unavailable),
        Case(
            name: "connection closed", error: TransportError(.connectionClosed, host: "h", port: 995, phase: "RETR"),
            kind: .unavailable),
        Case(
            name: "TLS failure", error: TransportError(.tlsFailed, host: "h", port: 995, phase: "handshake"),
            kind: .protocolError),
        Case(
            name: "STLS not offered", error: TransportError(.stlsNotOffered, host: "h", port: 110, phase: "CAPA"),
            kind: .protocolError),
        Case(
            name: "STLS refused", error: TransportError(.stlsRefused, host: "h", port: 110, phase: "STLS"),
            kind: .protocolError),
        Case(name: "[IN-USE]", error: refused(.inUse), kind: .mailboxInUse),
        Case(name: "[LOGIN-DELAY]", error: refused(.loginDelay), kind: .loginDelay),
        Case(name: "[SYS/TEMP]", error: refused(.sysTemp), kind: .temporary),
        Case(name: "[SYS/PERM]", error: refused(.sysPerm), kind: .protocolError),
        Case(name: "-ERR without a code", error: refused(nil), kind: .protocolError),
        Case(name: "state database", error: StateError(path: "/s", message: "disk full"), kind: .io),
        Case(name: "lock file", error: LockError(path: "/l", message: "EACCES"), kind: .io),
        Case(name: "spool", error: SpoolError(message: "ENOSPC"), kind: .io),
        Case(name: "a secret that cannot be had", error: SecretError("password_file missing"), kind: .config),
        Case(name: "no file for a secret command's output", error: SecretError("no tmp", isIOError: true), kind: .io),
        Case(
            name: "configuration", error: ConfigurationError(file: "c", line: 1, key: "k", message: "bad"),
            kind: .config),
        Case(name: "cancelled (the daemon's grace ran out): temporary", error: CancellationError(), kind: .temporary),
        Case(name: "anything else is internal", error: Unexpected(), kind: .internalError),
    ]

    @Test("error in, class out", arguments: cases)
    func classify(_ c: Case) {
        let e = AccountPoller.classify(c.error)
        #expect(e.kind == c.kind)
        #expect(!e.message.isEmpty)
    }
}
