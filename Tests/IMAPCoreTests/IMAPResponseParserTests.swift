import NIOCore
import Testing

@testable import IMAPCore

/// Parses all of `wire`, fed in chunks of `chunk` bytes, and returns the responses in order.
func parseAll(_ wire: String, chunk: Int = .max) throws -> [IMAPResponse] {
    try parseAll(Array(wire.utf8), chunk: chunk)
}

func parseAll(_ wire: [UInt8], chunk: Int = .max) throws -> [IMAPResponse] {
    var parser = IMAPResponseParser()
    var buffer = ByteBuffer()
    var out: [IMAPResponse] = []
    var i = 0
    repeat {
        let end = min(wire.count, i + max(1, min(chunk, wire.count)))
        buffer.writeBytes(wire[i..<end])
        i = end
        while let r = try parser.parse(&buffer) { out.append(r) }
    } while i < wire.count
    return out
}

@Suite("IMAPResponseParser")
struct IMAPResponseParserTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var wire: String
        var expected: [IMAPResponse]
        var testDescription: String {
            self.wire.split(separator: "\r\n", omittingEmptySubsequences: false).joined(separator: "⏎")
        }
    }

    static let cases: [Case] = [
        Case(
            wire: "* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ AUTH=PLAIN] Dovecot ready.\r\n",
            expected: [
                .untaggedStatus(
                    IMAPStatus(
                        condition: .ok, code: .capability(["IMAP4rev1", "SASL-IR", "LITERAL+", "AUTH=PLAIN"]),
                        text: "Dovecot ready."))
            ]),
        Case(
            wire: "* PREAUTH welcome\r\n",
            expected: [.untaggedStatus(IMAPStatus(condition: .preauth, text: "welcome"))]),
        Case(
            wire: "* BYE\r\n", expected: [.untaggedStatus(IMAPStatus(condition: .bye, text: ""))]),
        Case(
            wire: "* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\nA1 OK done\r\n",
            expected: [
                .capability(["IMAP4rev1", "STARTTLS", "LOGINDISABLED"]),
                .tagged(tag: "A1", status: IMAPStatus(condition: .ok, text: "done")),
            ]),
        Case(
            wire: "A0002 OK [APPENDUID 1733100000 42] Append completed.\r\n",
            expected: [
                .tagged(
                    tag: "A0002",
                    status: IMAPStatus(
                        condition: .ok, code: .appendUID(uidValidity: 1_733_100_000, uid: 42),
                        text: "Append completed."))
            ]),
        Case(
            wire: "a3 no [OVERQUOTA] Quota exceeded (mailbox for user is full)\r\n",
            expected: [
                .tagged(
                    tag: "a3",
                    status: IMAPStatus(
                        condition: .no, code: .overQuota, text: "Quota exceeded (mailbox for user is full)"))
            ]),
        Case(
            wire: "A4 NO [TRYCREATE] Mailbox doesn't exist: Archive\r\n",
            expected: [
                .tagged(
                    tag: "A4",
                    status: IMAPStatus(condition: .no, code: .tryCreate, text: "Mailbox doesn't exist: Archive"))
            ]),
        Case(
            wire: "A5 BAD [x-unknown-code some args] what?\r\n",
            expected: [
                .tagged(
                    tag: "A5",
                    status: IMAPStatus(condition: .bad, code: .other("X-UNKNOWN-CODE", "some args"), text: "what?"))
            ]),
        Case(wire: "A6 OK\r\n", expected: [.tagged(tag: "A6", status: IMAPStatus(condition: .ok, text: ""))]),
        Case(wire: "+ \r\n", expected: [.continuation("")]),
        Case(wire: "+ Ready for literal data\r\n", expected: [.continuation("Ready for literal data")]),
        Case(wire: "+\r\n", expected: [.continuation("")]),
        // A continuation's text is not a literal's announcement, whatever it ends with.
        Case(
            wire: "+ go {5}\r\nA1 OK x\r\n",
            expected: [.continuation("go {5}"), .tagged(tag: "A1", status: IMAPStatus(condition: .ok, text: "x"))]),
        Case(wire: "* SEARCH\r\n", expected: [.search([])]),
        Case(wire: "* SEARCH 4 17 4294967295\r\n", expected: [.search([4, 17, 4_294_967_295])]),
        Case(wire: "* SEARCH 4 (MODSEQ 917162500)\r\n", expected: [.search([4])]),
        Case(wire: "* 0 EXISTS\r\n* 3 RECENT\r\n", expected: [.exists(0), .untaggedOther("RECENT")]),
        // A literal in an untagged response: skipped, reported by keyword.
        Case(
            wire: "* 1 FETCH (BODY[] {11}\r\nhello\r\nworld)\r\nA7 OK [LIMIT] too big\r\n",
            expected: [
                .untaggedOther("FETCH"),
                .tagged(tag: "A7", status: IMAPStatus(condition: .ok, code: .limit, text: "too big")),
            ]),
        Case(
            wire: "* LIST () \"/\" {3}\r\na}b\r\n* OK still here\r\n",
            expected: [.untaggedOther("LIST"), .untaggedStatus(IMAPStatus(condition: .ok, text: "still here"))]),
        // Control characters never reach a log.
        Case(
            wire: "A8 NO bad\u{1B}[31mred\u{7F}\r\n",
            expected: [.tagged(tag: "A8", status: IMAPStatus(condition: .no, text: "bad[31mred"))]),
        // A bare LF ends a line too.
        Case(wire: "A9 OK fine\n", expected: [.tagged(tag: "A9", status: IMAPStatus(condition: .ok, text: "fine"))]),
        Case(
            wire: "* OK [UNAVAILABLE] later\r\n",
            expected: [.untaggedStatus(IMAPStatus(condition: .ok, code: .unavailable, text: "later"))]),
        Case(
            wire: "* OK [UIDVALIDITY 3857529045] UIDs valid\r\n* OK [UIDNEXT 4392] Predicted next UID\r\n",
            expected: [
                .untaggedStatus(IMAPStatus(condition: .ok, code: .uidValidity(3_857_529_045), text: "UIDs valid")),
                .untaggedStatus(IMAPStatus(condition: .ok, code: .uidNext(4392), text: "Predicted next UID")),
            ]),
        Case(
            wire: "* OK [APPENDLIMIT 35651584] limit\r\n",
            expected: [.untaggedStatus(IMAPStatus(condition: .ok, code: .appendLimit(35_651_584), text: "limit"))]),
    ]

    @Test(arguments: cases)
    func parses(_ c: Case) throws {
        #expect(try parseAll(c.wire) == c.expected)
        // Byte by byte, the same.
        #expect(try parseAll(c.wire, chunk: 1) == c.expected)
    }

    static let malformed: [String] = [
        "A1 MAYBE so\r\n",
        "A1 PREAUTH hi\r\n",
        "*OK no space\r\n",
        "* \r\n",
        "(weird\r\n",
        "A1 OKfine\r\n",
        "A1 OK [ALERT unterminated\r\n",
        "A1 OK [APPENDUID 1]\r\n",
        "A1 OK [APPENDUID 0 5]\r\n",
        "A1 OK [APPENDUID 4294967296 5]\r\n",
        "A1 OK [APPENDLIMIT -1]\r\n",
        "* OK [UIDVALIDITY 0]\r\n",
        "* OK [UIDNEXT x]\r\n",
        "* SEARCH 1 x\r\n",
        "* SEARCH 0\r\n",
        "* SEARCH 99999999999\r\n",
        "* 4294967296 EXISTS\r\n",
        "* 12\r\n",
        "* 1 FETCH (BODY[] {67108865}\r\n",
    ]

    @Test(arguments: malformed)
    func refuses(_ wire: String) {
        #expect(throws: IMAPProtocolError.self) { try parseAll(wire) }
    }

    @Test func lineLimit() throws {
        let long = "* OK " + String(repeating: "x", count: IMAPDefaults.maximumLineLength)
        // No end of line yet, and already too long: refused before the rest arrives.
        #expect(throws: IMAPProtocolError.self) { try parseAll(long) }
        // Just inside the limit: taken.
        let fits = "* OK " + String(repeating: "x", count: IMAPDefaults.maximumLineLength - 5) + "\r\n"
        #expect(try parseAll(fits).count == 1)
    }

    @Test func literalsPerResponseLimit() {
        var wire = "* 1 FETCH ("
        for _ in 0...IMAPDefaults.maximumLiteralsPerResponse { wire += "X {1}\r\nx " }
        wire += ")\r\n"
        #expect(throws: IMAPProtocolError.self) { try parseAll(wire) }
    }

    /// A large literal is skipped without being kept: the buffer is drained as the bytes arrive.
    @Test func literalIsSkippedAsItArrives() throws {
        var parser = IMAPResponseParser()
        var buffer = ByteBuffer(string: "* 1 FETCH (BODY[] {1000000}\r\n")
        #expect(try parser.parse(&buffer) == nil)
        for _ in 0..<100 {
            buffer.writeBytes([UInt8](repeating: 65, count: 10_000))
            #expect(try parser.parse(&buffer) == nil)
            #expect(buffer.readableBytes == 0)
        }
        buffer.writeString(")\r\nA1 OK done\r\n")
        #expect(try parser.parse(&buffer) == .untaggedOther("FETCH"))
        #expect(try parser.parse(&buffer) == .tagged(tag: "A1", status: IMAPStatus(condition: .ok, text: "done")))
    }

    @Test func searchResultsAreBounded() throws {
        let numbers = (1...(IMAPDefaults.maximumSearchResults + 50)).map(String.init).joined(separator: " ")
        let r = try parseAll("* SEARCH \(numbers)\r\n")
        guard case .search(let found) = r.first else {
            Issue.record("not a SEARCH response: \(r)")
            return
        }
        #expect(found.count == IMAPDefaults.maximumSearchResults)
    }

    /// Random bytes never trap the parser: they parse or throw.
    @Test func randomInputNeverTraps() {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("* +AOKNBDY[]{}()0123456789 \r\n\"\\".utf8) + [0, 0xFF, 0x80]
        for _ in 0..<3_000 {
            let n = Int.random(in: 0..<80, using: &generator)
            let bytes = (0..<n).map { _ in alphabet.randomElement(using: &generator) ?? 0 }
            _ = try? parseAll(bytes, chunk: Int.random(in: 1...8, using: &generator))
        }
    }
}
