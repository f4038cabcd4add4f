import Testing

@testable import Daemon

/// Table tests of the control protocol: what `popfetch wake` sends and what the daemon answers.
@Suite("Control protocol (pure)")
struct ControlProtocolTests {
    /// A parse or an encoding: the value, or the code of the error it throws.
    enum Expected<T: Sendable>: Sendable {
        case success(T)
        case failure(ControlProtocolError.Code)
    }

    struct RequestCase: Sendable, CustomStringConvertible {
        var description: String { self.line.debugDescription }
        var line: String
        var expected: Expected<ControlRequest>
    }

    static let requests: [RequestCase] = [
        .init(line: "wake", expected: .success(.wake(account: nil))),
        .init(line: "wake\n", expected: .success(.wake(account: nil))),
        .init(line: "wake\r\n", expected: .success(.wake(account: nil))),
        .init(line: "wake work", expected: .success(.wake(account: "work"))),
        .init(line: "wake my account\n", expected: .success(.wake(account: "my account"))),
        .init(line: "wake   ", expected: .success(.wake(account: nil))),
        .init(line: "wake  spaced ", expected: .success(.wake(account: "spaced"))),
        .init(line: "", expected: .failure(.unknownRequest)),
        .init(line: "WAKE", expected: .failure(.unknownRequest)),
        .init(line: "frobnicate", expected: .failure(.unknownRequest)),
        .init(line: "wakeup", expected: .failure(.unknownRequest)),
        .init(line: "wake a\u{0}b", expected: .failure(.malformed)),
        .init(line: "wake a\tb", expected: .failure(.malformed)),
        .init(line: "\u{1B}[2Jwake", expected: .failure(.malformed)),
    ]

    @Test("ControlRequest(parsing:)", arguments: requests)
    func parseRequest(_ c: RequestCase) throws {
        switch c.expected {
        case .success(let request):
            #expect(try ControlRequest(parsing: c.line) == request)
        case .failure(let code):
            #expect(throws: ControlProtocolError(code, line: "", "")) { try ControlRequest(parsing: c.line) }
        }
    }

    struct EncodeCase: Sendable, CustomStringConvertible {
        var description: String
        var request: ControlRequest
        var expected: Expected<String>
    }

    static let encodings: [EncodeCase] = [
        .init(description: "every account", request: .wake(account: nil), expected: .success("wake\n")),
        .init(description: "one account", request: .wake(account: "work"), expected: .success("wake work\n")),
        .init(description: "a name with a space", request: .wake(account: "a b"), expected: .success("wake a b\n")),
        .init(
            description: "a newline cannot go on one line", request: .wake(account: "a\nwake b"),
            expected: .failure(.malformed)),
        .init(description: "an empty name", request: .wake(account: " "), expected: .failure(.malformed)),
        .init(
            description: "too long", request: .wake(account: String(repeating: "x", count: 600)),
            expected: .failure(.tooLong)),
    ]

    @Test("ControlRequest.encoded()", arguments: encodings)
    func encodeRequest(_ c: EncodeCase) throws {
        switch c.expected {
        case .success(let line):
            #expect(try c.request.encoded() == line)
            #expect(try ControlRequest(parsing: c.request.encoded()) == c.request, "round trip")
        case .failure(let code):
            #expect(throws: ControlProtocolError(code, line: "", "")) { try c.request.encoded() }
        }
    }

    struct ReplyCase: Sendable, CustomStringConvertible {
        var description: String { self.line.debugDescription }
        var line: String
        var expected: ControlReply?
    }

    static let replies: [ReplyCase] = [
        .init(line: "ok", expected: .ok),
        .init(line: "ok\n", expected: .ok),
        .init(line: "error unknown-account nope", expected: .unknownAccount("nope")),
        .init(line: "error unknown-account two words\n", expected: .unknownAccount("two words")),
        .init(line: "error disabled-account old", expected: .disabledAccount("old")),
        .init(line: "error bad-request unknown request \"x\"", expected: .badRequest("unknown request \"x\"")),
        .init(line: "error shutting-down", expected: .shuttingDown),
        // What a daemon of an earlier version answered: still an error, shown verbatim.
        .init(line: "error unknown account nope", expected: .failed("unknown account nope")),
        .init(line: "error unknown request", expected: .failed("unknown request")),
        .init(line: "", expected: nil),
        .init(line: "okay", expected: nil),
        .init(line: "+OK", expected: nil),
    ]

    @Test("ControlReply(parsing:)", arguments: replies)
    func parseReply(_ c: ReplyCase) throws {
        if let reply = c.expected {
            #expect(try ControlReply(parsing: c.line) == reply)
        } else {
            #expect(throws: ControlProtocolError(.malformed, line: "", "")) { try ControlReply(parsing: c.line) }
        }
    }

    static let roundTrips: [ControlReply] = [
        .ok, .unknownAccount("work"), .unknownAccount("a b"), .disabledAccount("old"),
        .badRequest("unknown request \"x\""), .shuttingDown,
        .failed("something new"),
    ]

    @Test("ControlReply.encoded round-trips", arguments: roundTrips)
    func replyRoundTrip(_ reply: ControlReply) throws {
        #expect(reply.encoded.hasSuffix("\n"))
        #expect(reply.encoded.dropLast().allSatisfy { !$0.isNewline })
        #expect(try ControlReply(parsing: reply.encoded) == reply)
    }

    @Test("a reply stays one line of bounded length whatever its detail holds")
    func replySanitized() throws {
        let injected = ControlReply.unknownAccount("x\nok")
        #expect(injected.encoded == "error unknown-account x ok\n")
        let long = ControlReply.badRequest(String(repeating: "é", count: 1000))
        #expect(long.encoded.utf8.count <= ControlRequest.maximumLineLength)
        #expect(long.encoded.hasSuffix("\n"))
        guard case .badRequest = try ControlReply(parsing: long.encoded) else {
            Issue.record("a cut reply still parses as what it was")
            return
        }
    }
}
