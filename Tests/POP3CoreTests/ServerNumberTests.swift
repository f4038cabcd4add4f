import NIOCore
import Testing

@testable import POP3Core

/// Every number a server sends is range-checked or clamped (issue 8): no digit string, however long, traps.
@Suite("Numbers from the server")
struct ServerNumberTests {
    @Test(
        "DecimalNumber parses plain digits and saturates instead of overflowing",
        arguments: [
            ("0", 0), ("7", 7), ("007", 7), ("123456789", 123_456_789),
            ("9223372036854775807", Int.max), ("9223372036854775808", Int.max),
            ("100000000000000000000000000000000000000", Int.max),
            ("", nil), ("-1", nil), ("+1", nil), ("1.5", nil), ("1e3", nil), (" 1", nil), ("1 ", nil), ("x", nil),
            ("\u{0661}", nil),  // ARABIC-INDIC DIGIT ONE is not an ASCII digit
        ] as [(String, Int?)])
    func decimalNumber(text: String, expected: Int?) {
        #expect(DecimalNumber.parse(Substring(text)) == expected)
    }

    @Test(
        "CAPA LOGIN-DELAY is clamped to a day; anything not a plain number is ignored",
        arguments: [
            ("LOGIN-DELAY 900", 900), ("LOGIN-DELAY 0", 0), ("LOGIN-DELAY 900 USER", 900),
            ("LOGIN-DELAY 86400", 86_400), ("LOGIN-DELAY 86401", POP3Defaults.maximumLoginDelay),
            ("LOGIN-DELAY 100000000000", POP3Defaults.maximumLoginDelay),
            ("LOGIN-DELAY 99999999999999999999999999999", POP3Defaults.maximumLoginDelay),
            ("LOGIN-DELAY -5", nil), ("LOGIN-DELAY +5", nil), ("LOGIN-DELAY 1e9", nil), ("LOGIN-DELAY", nil),
            ("TOP", nil),
        ] as [(String, Int?)])
    func loginDelay(line: String, expected: Int?) throws {
        let cap = try #require(Capability(line: line))
        #expect(Capabilities([cap]).loginDelay == expected)
    }

    @Test(
        "CAPA EXPIRE: NEVER, or days clamped to 100 years",
        arguments: [
            ("EXPIRE NEVER", Capabilities.Expiry.never), ("EXPIRE never", .never), ("EXPIRE 0", .days(0)),
            ("EXPIRE 31 USER", .days(31)), ("EXPIRE 36501", .days(POP3Defaults.maximumExpireDays)),
            ("EXPIRE 100000000000000000000000", .days(POP3Defaults.maximumExpireDays)),
            ("EXPIRE -1", nil), ("EXPIRE soon", nil), ("EXPIRE", nil),
        ] as [(String, Capabilities.Expiry?)])
    func expire(line: String, expected: Capabilities.Expiry?) throws {
        let cap = try #require(Capability(line: line))
        #expect(Capabilities([cap]).expire == expected)
    }

    @Test(
        "STAT: sizes are clamped, a count beyond the message-number limit is refused",
        arguments: [
            ("3 1000", MaildropStatus(count: 3, size: 1000) as MaildropStatus?, false),
            ("3 99999999999999999999999", MaildropStatus(count: 3, size: POP3Defaults.maximumMessageSize), false),
            ("2147483647 5", MaildropStatus(count: Int(Int32.max), size: 5), false),
            ("2147483648 5", nil, true),
            ("99999999999999999999999 5", nil, true),
            ("-3 5", nil, false),
        ])
    func stat(text: String, expected: MaildropStatus?, outOfRange: Bool) throws {
        let status = StatusLine(indicator: .ok, text: text)
        if let expected {
            #expect(try status.maildropStatus() == expected)
        } else if outOfRange {
            #expect(throws: POP3ProtocolError(.numberOutOfRange(field: "message count", excerpt: text))) {
                try status.maildropStatus()
            }
        } else {
            #expect(throws: POP3ProtocolError(.malformedReply(command: "STAT", excerpt: text))) {
                try status.maildropStatus()
            }
        }
    }

    enum LineOutcome: Hashable, Sendable {
        case scan(ScanEntry)
        case invalid
        case outOfRange
    }

    @Test(
        "LIST lines: sizes clamped, message numbers 1...Int32.max, anything else invalid",
        arguments: [
            ("1 120", LineOutcome.scan(ScanEntry(number: 1, size: 120))),
            ("1 1099511627776", .scan(ScanEntry(number: 1, size: POP3Defaults.maximumMessageSize))),
            ("1 1099511627777", .scan(ScanEntry(number: 1, size: POP3Defaults.maximumMessageSize))),
            ("1 4294967296", .scan(ScanEntry(number: 1, size: 4_294_967_296))),
            ("1 9999999999999999999999999999999", .scan(ScanEntry(number: 1, size: POP3Defaults.maximumMessageSize))),
            ("2147483647 1", .scan(ScanEntry(number: Int(Int32.max), size: 1))),
            ("0 120", .outOfRange),
            ("2147483648 1", .outOfRange),
            ("99999999999999999999999999 1", .outOfRange),
            ("1 -120", .invalid), ("-1 120", .invalid), ("1 12x", .invalid), ("1", .invalid),
        ] as [(String, LineOutcome)])
    func scanLine(line: String, expected: LineOutcome) {
        let outcome: LineOutcome
        do {
            outcome = .scan(try POP3ClientStateMachine.parseScanLine(bytes(line)[...]))
        } catch let e as POP3ProtocolError {
            switch e.reason {
            case .numberOutOfRange: outcome = .outOfRange
            case .invalidListingLine: outcome = .invalid
            default: outcome = .invalid
            }
        } catch {
            Issue.record("unexpected error \(error)")
            return
        }
        #expect(outcome == expected, "\(line)")
    }

    @Test("a UIDL listing with a message number out of range fails with numberOutOfRange, not a trap")
    func uidlNumberOutOfRange() throws {
        var session = try Session.inTransaction()
        try session.send(.uidl(nil))
        let error = #expect(throws: POP3ProtocolError.self) {
            try session.receive("+OK\r\n1 a\r\n99999999999999999999999999999 b\r\n.\r\n")
        }
        if let error, case .numberOutOfRange(let field, _) = error.reason {
            #expect(field == "message number")
        } else {
            Issue.record("wrong error: \(String(describing: error))")
        }
    }
}

/// A unique-id outside RFC 1939's grammar affects only its own message (issue 8).
@Suite("UIDL entries outside the grammar")
struct InvalidUIDLTests {
    enum Expected: Hashable, Sendable {
        case uid(String)
        case invalid
    }

    static let fixtures: [(String, [UInt8], Expected)] = [
        ("printable", bytes("1 abc"), .uid("abc")),
        ("70 characters", bytes("1 " + String(repeating: "u", count: 70)), .uid(String(repeating: "u", count: 70))),
        (
            "280 printable characters are still verbatim (keys of existing state)",
            bytes("1 " + String(repeating: "v", count: 280)), .uid(String(repeating: "v", count: 280))
        ),
        (
            "281 printable characters", bytes("1 " + String(repeating: "w", count: 281)),
            .uid("invalid " + String(repeating: "77", count: 281))
        ),
        ("8-bit (Latin-1 e acute)", bytes("1 caf") + [0xE9], .uid("invalid 636166e9")),
        ("8-bit (UTF-8 e acute)", bytes("1 caf\u{E9}"), .uid("invalid 636166c3a9")),
        ("invalid UTF-8", bytes("2 ") + [0xFF, 0xFE, 0x41], .uid("invalid fffe41")),
        ("inner space", bytes("1 a b"), .uid("invalid 612062")),
        ("inner tab", bytes("1 a\tb"), .uid("invalid 610962")),
        ("DEL", bytes("1 a") + [0x7F] + bytes("b"), .uid("invalid 617f62")),
        ("NUL", bytes("1 a") + [0x00], .uid("invalid 6100")),
        ("ESC sequence", bytes("1 \u{1B}[2J"), .uid("invalid 1b5b324a")),
        ("trailing blanks are not part of it", bytes("1 caf\u{E9} \t"), .uid("invalid 636166c3a9")),
        ("several spaces after the number", bytes("1   abc"), .uid("abc")),
        ("no unique-id", bytes("1 "), .invalid),
        ("no space", bytes("1\tabc"), .invalid),
        ("no number", bytes("abc def"), .invalid),
    ]

    @Test("parseUIDLLine: valid ids verbatim, others under \"invalid \" + hex of the raw bytes", arguments: fixtures)
    func parse(name: String, line: [UInt8], expected: Expected) {
        let got: Expected
        do {
            got = .uid(try POP3ClientStateMachine.parseUIDLLine(line[...]).uid)
        } catch {
            got = .invalid
        }
        #expect(got == expected, "\(name)")
    }

    @Test("an 8-bit unique-id up to the line limit is kept under its escaped key")
    func longEightBit() throws {
        let raw = [UInt8](repeating: 0xC3, count: POP3Defaults.maximumListingLineLength - 4)
        let entry = try POP3ClientStateMachine.parseUIDLLine((bytes("12 ") + raw)[...])
        #expect(entry.number == 12)
        #expect(entry.uid == "invalid " + String(repeating: "c3", count: raw.count))
        #expect(entry.isEscaped)
    }

    @Test("escaped keys cannot collide with a valid unique-id or with each other")
    func collisionFree() throws {
        let raws: [[UInt8]] = [
            [0xE9], [0xC3, 0xA9], bytes("a b"), bytes("a  b"), bytes("a\tb"), [0x00], [0x00, 0x00],
        ]
        let keys = raws.map { UIDLEntry.escapedKey(for: $0) }
        #expect(Set(keys).count == raws.count, "distinct raw bytes, distinct keys")
        for key in keys {
            #expect(key.hasPrefix("invalid "))
            #expect(key.utf8.contains(32), "a space, which no valid unique-id contains")
        }
        #expect(!UIDLEntry(number: 1, uid: "abc").isEscaped)
    }

    @Test("one 8-bit unique-id in a listing leaves the other entries intact")
    func listingKeepsOthers() throws {
        var session = try Session.inTransaction()
        try session.send(.uidl(nil))
        let body = bytes("+OK\r\n1 first\r\n2 caf") + [0xE9] + bytes("\r\n3 third\r\n.\r\n")
        let events = try session.receive(body)
        #expect(
            events == [
                .uidlListing([
                    UIDLEntry(number: 1, uid: "first"), UIDLEntry(number: 2, uid: "invalid 636166e9"),
                    UIDLEntry(number: 3, uid: "third"),
                ])
            ])
        #expect(session.state == .transaction)
    }

    @Test("UIDL n with an 8-bit unique-id parses to the escaped key")
    func singleLine() throws {
        var session = try Session.inTransaction()
        try session.send(.uidl(2))
        let events = try session.receive(bytes("+OK 2 caf") + [0xE9] + bytes("\r\n"))
        guard case .response(_, let status)? = events.first else {
            Issue.record("no response: \(events)")
            return
        }
        // The status line text is decoded as UTF-8 (the lone 0xE9 becomes U+FFFD): the key is of what remains.
        #expect(try status.uidlEntry().isEscaped)
    }
}
