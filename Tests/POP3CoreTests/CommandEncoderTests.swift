import NIOCore
import Testing

@testable import POP3Core

@Suite("CommandEncoder")
struct CommandEncoderTests {
    struct EncodingFixture: Sendable, CustomTestStringConvertible {
        var command: Command
        var wire: String
        var testDescription: String { escaped(bytes(self.wire)) }
    }

    static let encodings: [EncodingFixture] = [
        .init(command: .capa, wire: "CAPA\r\n"),
        .init(command: .stls, wire: "STLS\r\n"),
        .init(command: .user("alice"), wire: "USER alice\r\n"),
        .init(command: .user("alice@example.org"), wire: "USER alice@example.org\r\n"),
        .init(command: .pass("secret"), wire: "PASS secret\r\n"),
        .init(command: .pass("pass with  spaces "), wire: "PASS pass with  spaces \r\n"),
        .init(command: .pass("p\u{E4}ss\u{2603}"), wire: "PASS p\u{E4}ss\u{2603}\r\n"),
        .init(
            command: .apop(user: "mrose", digest: "c4c9334bac560ecc979e58001b3e22fb"),
            wire: "APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n"),
        .init(command: .auth(mechanism: "PLAIN", initialResponse: nil), wire: "AUTH PLAIN\r\n"),
        .init(
            command: .auth(mechanism: "PLAIN", initialResponse: "AGFsaWNlAHNlY3JldA=="),
            wire: "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"),
        .init(command: .auth(mechanism: "EXTERNAL", initialResponse: ""), wire: "AUTH EXTERNAL =\r\n"),
        .init(command: .saslResponse("dGVzdA=="), wire: "dGVzdA==\r\n"),
        .init(command: .saslResponse("*"), wire: "*\r\n"),
        .init(command: .saslResponse(""), wire: "\r\n"),
        .init(command: .stat, wire: "STAT\r\n"),
        .init(command: .list(nil), wire: "LIST\r\n"),
        .init(command: .list(2), wire: "LIST 2\r\n"),
        .init(command: .uidl(nil), wire: "UIDL\r\n"),
        .init(command: .uidl(3), wire: "UIDL 3\r\n"),
        .init(command: .retr(1), wire: "RETR 1\r\n"),
        .init(command: .retr(123_456), wire: "RETR 123456\r\n"),
        .init(command: .top(1, lines: 10), wire: "TOP 1 10\r\n"),
        .init(command: .top(2, lines: 0), wire: "TOP 2 0\r\n"),
        .init(command: .dele(1), wire: "DELE 1\r\n"),
        .init(command: .rset, wire: "RSET\r\n"),
        .init(command: .noop, wire: "NOOP\r\n"),
        .init(command: .quit, wire: "QUIT\r\n"),
        .init(command: .utf8, wire: "UTF8\r\n"),
    ]

    @Test("every command encodes to its exact bytes ending in CRLF", arguments: encodings)
    func encoding(_ fixture: EncodingFixture) throws {
        let encoded = try fixture.command.encoded()
        #expect(encoded == bytes(fixture.wire), "got \(escaped(encoded))")
        #expect(encoded.suffix(2) == [13, 10])
        #expect(!encoded.dropLast(2).contains(13) && !encoded.dropLast(2).contains(10), "only one line")
    }

    @Test("writeCommand appends the encoded line to a buffer", arguments: encodings)
    func writeCommand(_ fixture: EncodingFixture) throws {
        var buf = buffer("prefix ")
        let written = try buf.writeCommand(fixture.command)
        #expect(written == bytes(fixture.wire).count)
        #expect(buf.readableArray == bytes("prefix ") + bytes(fixture.wire))
    }

    static let forbidden: [(Command, String)] = [
        (.user("alice\r\nDELE 1"), "USER"),
        (.user("a\rb"), "USER"),
        (.user("a\nb"), "USER"),
        (.user("a\0b"), "USER"),
        (.pass("x\r\nQUIT"), "PASS"),
        (.pass("x\0"), "PASS"),
        (.apop(user: "a\nb", digest: "d"), "APOP"),
        (.apop(user: "a", digest: "d\r"), "APOP"),
        (.auth(mechanism: "PLAIN\r\nQUIT", initialResponse: nil), "AUTH"),
        (.auth(mechanism: "PLAIN", initialResponse: "abc\n"), "AUTH"),
        (.saslResponse("abc\r\nQUIT"), "AUTH"),
        (.saslResponse("\0"), "AUTH"),
    ]

    @Test("arguments with CR, LF or NUL are rejected", arguments: forbidden)
    func forbiddenCharacters(command: Command, keyword: String) {
        #expect(throws: CommandEncodingError(keyword: keyword, reason: .forbiddenCharacter)) {
            try command.encoded()
        }
    }

    @Test(
        "empty arguments are rejected",
        arguments: [
            (Command.user(""), "USER"), (.pass(""), "PASS"), (.apop(user: "", digest: "d"), "APOP"),
            (.apop(user: "a", digest: ""), "APOP"), (.auth(mechanism: "", initialResponse: nil), "AUTH"),
        ])
    func emptyArguments(command: Command, keyword: String) {
        #expect(throws: CommandEncodingError(keyword: keyword, reason: .emptyArgument)) { try command.encoded() }
    }

    static let maximum = POP3Defaults.maximumCommandLength

    @Test("a command of exactly 255 octets including CRLF is accepted")
    func atLimit() throws {
        let user = String(repeating: "u", count: Self.maximum - "USER ".utf8.count - 2)
        let encoded = try Command.user(user).encoded()
        #expect(encoded.count == Self.maximum)
    }

    @Test(
        "a command longer than 255 octets is rejected with tooLong",
        arguments: [
            (Command.user(String(repeating: "u", count: 249)), "USER", 256),
            (.pass(String(repeating: "p", count: 300)), "PASS", 307),
            (.apop(user: String(repeating: "a", count: 220), digest: "c4c9334bac560ecc979e58001b3e22fb"), "APOP", 260),
            (.auth(mechanism: "PLAIN", initialResponse: String(repeating: "A", count: 300)), "AUTH", 313),
        ])
    func tooLong(command: Command, keyword: String, length: Int) {
        #expect(throws: CommandEncodingError(keyword: keyword, reason: .tooLong(length: length))) {
            try command.encoded()
        }
    }

    @Test("SASL responses are not bound by the command length limit")
    func longSASLResponse() throws {
        let response = String(repeating: "Q", count: 4_000)
        #expect(try Command.saslResponse(response).encoded() == bytes(response + "\r\n"))
    }

    @Test("encoding errors describe the problem without the argument")
    func encodingErrorDescription() {
        let error = CommandEncodingError(keyword: "PASS", reason: .forbiddenCharacter)
        #expect(error.description.hasPrefix("PASS:"))
        let tooLong = CommandEncodingError(keyword: "USER", reason: .tooLong(length: 300))
        #expect(tooLong.description.contains("300"))
        #expect(tooLong.description.contains("255"))
    }

    // MARK: redaction

    static let secrets: [(Command, String, String)] = [
        (.pass("hunter2"), "hunter2", "PASS ********"),
        (.pass("correct horse battery staple"), "correct horse battery staple", "PASS ********"),
        (
            .apop(user: "mrose", digest: "c4c9334bac560ecc979e58001b3e22fb"), "c4c9334bac560ecc979e58001b3e22fb",
            "APOP mrose ********"
        ),
        (
            .auth(mechanism: "PLAIN", initialResponse: "AGFsaWNlAHNlY3JldA=="), "AGFsaWNlAHNlY3JldA==",
            "AUTH PLAIN ********"
        ),
        (.saslResponse("c2VjcmV0LXBhc3N3b3Jk"), "c2VjcmV0LXBhc3N3b3Jk", "********"),
    ]

    @Test("Command.description redacts secrets", arguments: secrets)
    func redaction(command: Command, secret: String, description: String) {
        #expect(command.description == description)
        #expect(!command.description.contains(secret))
        #expect(!"\(command)".contains(secret))
        #expect(!String(describing: command).contains(secret))
        #expect(!String(reflecting: command).contains(secret))
        #expect(command.carriesSecret)
    }

    @Test(
        "descriptions of commands without secrets are the command line",
        arguments: [
            (Command.capa, "CAPA"), (.stls, "STLS"), (.user("alice"), "USER alice"),
            (.auth(mechanism: "GSSAPI", initialResponse: nil), "AUTH GSSAPI"), (.stat, "STAT"), (.list(nil), "LIST"),
            (.list(4), "LIST 4"), (.uidl(nil), "UIDL"), (.uidl(5), "UIDL 5"), (.retr(1), "RETR 1"),
            (.top(1, lines: 10), "TOP 1 10"), (.dele(2), "DELE 2"), (.rset, "RSET"), (.noop, "NOOP"), (.quit, "QUIT"),
        ])
    func plainDescriptions(command: Command, description: String) {
        #expect(command.description == description)
    }

    @Test(
        "only credential-bearing commands carry secrets",
        arguments: [
            Command.capa, .stls, .user("alice"), .stat, .list(nil), .uidl(1), .retr(1), .top(1, lines: 0),
            .dele(1), .rset, .noop, .quit,
        ])
    func noSecret(command: Command) {
        #expect(!command.carriesSecret)
    }

    @Test(
        "commands that expect a multi-line block on success",
        arguments: [
            (Command.capa, true), (.retr(1), true), (.top(1, lines: 0), true), (.list(nil), true), (.uidl(nil), true),
            (.list(1), false), (.uidl(1), false), (.stat, false), (.dele(1), false), (.user("a"), false),
            (.pass("p"), false), (.quit, false), (.noop, false), (.rset, false), (.stls, false),
            (.auth(mechanism: "PLAIN", initialResponse: nil), false),
        ])
    func multiline(command: Command, expected: Bool) {
        #expect(command.expectsMultilineOnSuccess == expected)
    }
}
