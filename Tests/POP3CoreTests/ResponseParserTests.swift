import NIOCore
import Testing

@testable import POP3Core

@Suite("ResponseParser status lines")
struct ResponseParserTests {
    struct StatusFixture: Sendable, CustomTestStringConvertible {
        var line: String
        var indicator: StatusLine.Indicator
        var code: ResponseCode?
        var text: String
        var testDescription: String { escaped(bytes(self.line)) }
    }

    static let statusKinds: [StatusFixture] = [
        .init(line: "+OK 2 messages (320 octets)\r\n", indicator: .ok, text: "2 messages (320 octets)"),
        .init(line: "+OK\r\n", indicator: .ok, text: ""),
        .init(line: "+OK \r\n", indicator: .ok, text: ""),
        .init(
            line: "-ERR no such message, only 2 messages in maildrop\r\n", indicator: .err,
            text: "no such message, only 2 messages in maildrop"),
        .init(line: "-ERR\r\n", indicator: .err, text: ""),
        .init(line: "+ok lower-case indicator\r\n", indicator: .ok, text: "lower-case indicator"),
        .init(line: "+Ok mixed case\r\n", indicator: .ok, text: "mixed case"),
        .init(line: "-err lower-case error\r\n", indicator: .err, text: "lower-case error"),
        .init(line: "+ dGVzdCBjaGFsbGVuZ2U=\r\n", indicator: .continuation, text: "dGVzdCBjaGFsbGVuZ2U="),
        .init(line: "+\r\n", indicator: .continuation, text: ""),
        .init(line: "+ \r\n", indicator: .continuation, text: ""),
        .init(line: "+OK terminated by a bare LF\n", indicator: .ok, text: "terminated by a bare LF"),
        .init(line: "-ERR bare LF\n", indicator: .err, text: "bare LF"),
        .init(
            line: "+OK text with  two  spaces and trailing \r\n", indicator: .ok,
            text: "text with  two  spaces and trailing "),
        .init(line: "+OK caf\u{E9} \u{1F4EC}\r\n", indicator: .ok, text: "caf\u{E9} \u{1F4EC}"),
    ]

    @Test("every status-line kind parses", arguments: statusKinds)
    func statusLineKinds(_ fixture: StatusFixture) throws {
        var parser = ResponseParser()
        var buf = buffer(fixture.line)
        let event = try parser.parse(&buf)
        #expect(event == .status(StatusLine(indicator: fixture.indicator, code: fixture.code, text: fixture.text)))
        #expect(buf.readableBytes == 0, "the whole line is consumed")
        #expect(!parser.isInBlock)
    }

    static let responseCodeLines: [StatusFixture] = [
        .init(
            line: "-ERR [IN-USE] Mailbox locked by another session\r\n", indicator: .err, code: .inUse,
            text: "Mailbox locked by another session"),
        .init(
            line: "-ERR [LOGIN-DELAY] wait 15 minutes\r\n", indicator: .err, code: .loginDelay,
            text: "wait 15 minutes"),
        .init(line: "-ERR [SYS/TEMP] try again later\r\n", indicator: .err, code: .sysTemp, text: "try again later"),
        .init(line: "-ERR [SYS/PERM] account disabled\r\n", indicator: .err, code: .sysPerm, text: "account disabled"),
        .init(line: "-ERR [AUTH] invalid password\r\n", indicator: .err, code: .auth, text: "invalid password"),
        .init(line: "-ERR [FOO/BAR] vendor code\r\n", indicator: .err, code: .other("FOO/BAR"), text: "vendor code"),
        .init(line: "-ERR [in-use] lower-case code\r\n", indicator: .err, code: .inUse, text: "lower-case code"),
        .init(line: "-ERR [SYS/TEMP]\r\n", indicator: .err, code: .sysTemp, text: ""),
        .init(line: "-ERR [AUTH]no space after code\r\n", indicator: .err, code: .auth, text: "no space after code"),
        .init(
            line: "+OK [UTF8] code on a positive reply\r\n", indicator: .ok, code: .other("UTF8"),
            text: "code on a positive reply"),
        // Not codes:
        .init(
            line: "-ERR [IN USE] bracket with a space\r\n", indicator: .err, code: nil,
            text: "[IN USE] bracket with a space"),
        .init(line: "-ERR [] empty brackets\r\n", indicator: .err, code: nil, text: "[] empty brackets"),
        .init(line: "-ERR [UNCLOSED code\r\n", indicator: .err, code: nil, text: "[UNCLOSED code"),
        .init(line: "-ERR text then [IN-USE]\r\n", indicator: .err, code: nil, text: "text then [IN-USE]"),
        // A SASL challenge is base64, never a response code.
        .init(line: "+ [IN-USE]\r\n", indicator: .continuation, code: nil, text: "[IN-USE]"),
    ]

    @Test("response codes are recognised only in the leading bracket", arguments: responseCodeLines)
    func responseCodes(_ fixture: StatusFixture) throws {
        var parser = ResponseParser()
        var buf = buffer(fixture.line)
        let event = try #require(try parser.parse(&buf))
        guard case .status(let status) = event else {
            Issue.record("expected a status line, got \(event)")
            return
        }
        #expect(status.indicator == fixture.indicator)
        #expect(status.code == fixture.code)
        #expect(status.text == fixture.text)
    }

    @Test(
        "response code raw values round-trip",
        arguments: [
            ("IN-USE", ResponseCode.inUse), ("LOGIN-DELAY", .loginDelay), ("SYS/TEMP", .sysTemp),
            ("SYS/PERM", .sysPerm), ("AUTH", .auth), ("FOO/BAR", .other("FOO/BAR")),
        ])
    func responseCodeRawValues(raw: String, code: ResponseCode) {
        #expect(ResponseCode(rawValue: raw) == code)
        #expect(code.rawValue == raw)
    }

    @Test(
        "invalid status lines throw POP3ProtocolError.invalidStatusLine",
        arguments: [
            "HELLO\r\n", "+OKAY\r\n", "-ERROR\r\n", "OK\r\n", "\r\n", "\n", " +OK\r\n", "+-\r\n", "+OK\tfoo\r\n",
            "-ER\r\n", "* OK IMAP\r\n", "220 smtp.example.com ESMTP\r\n",
        ])
    func invalidStatusLines(_ line: String) {
        var parser = ResponseParser()
        var buf = buffer(line)
        let error = #expect(throws: POP3ProtocolError.self) { try parser.parse(&buf) }
        if let error {
            guard case .invalidStatusLine = error.reason else {
                Issue.record("wrong reason: \(error.reason)")
                return
            }
        }
    }

    @Test("invalid status line error excerpt is printable")
    func invalidStatusLineExcerpt() {
        var parser = ResponseParser()
        var buf = buffer([0x48, 0x00, 0xFF, 0x49, 13, 10])
        #expect(throws: POP3ProtocolError(.invalidStatusLine(excerpt: "H\\x0\\xffI"))) { try parser.parse(&buf) }
    }

    @Test(
        "incomplete status line returns nil and consumes nothing",
        arguments: [
            ("", "+OK\r\n"), ("+", "OK\r\n"), ("+O", "K\r\n"), ("+OK", "\r\n"), ("+OK partial text", " done\r\n"),
            ("-ERR partial\r", "\n"), ("HELLO", "\r\n"),
        ])
    func incompleteInput(partial: String, rest: String) throws {
        var parser = ResponseParser()
        var buf = buffer(partial)
        let readerIndex = buf.readerIndex
        #expect(try parser.parse(&buf) == nil)
        #expect(buf.readerIndex == readerIndex)
        #expect(buf.readableArray == bytes(partial))
        // The rest of the line completes it, and only then is it judged.
        buf.writeString(rest)
        if partial.hasPrefix("H") {
            #expect(throws: POP3ProtocolError.self) { try parser.parse(&buf) }
        } else {
            let event = try #require(try parser.parse(&buf))
            guard case .status = event else {
                Issue.record("expected a status line, got \(event)")
                return
            }
            #expect(buf.readableBytes == 0)
        }
    }

    @Test("one status line at a time; the following bytes stay in the buffer")
    func oneLineAtATime() throws {
        var parser = ResponseParser()
        var buf = buffer("+OK first\r\n-ERR second\r\n+OK thi")
        #expect(try parser.parse(&buf) == .status(ok("first")))
        #expect(buf.readableArray == bytes("-ERR second\r\n+OK thi"))
        #expect(try parser.parse(&buf) == .status(err("second")))
        #expect(try parser.parse(&buf) == nil)
        #expect(buf.readableArray == bytes("+OK thi"))
        buf.writeString("rd\r\n")
        #expect(try parser.parse(&buf) == .status(ok("third")))
    }

    @Test("status line parsing works from a non-zero reader index")
    func nonZeroReaderIndex() throws {
        var parser = ResponseParser()
        var buf = ByteBuffer()
        buf.writeString("garbage-already-consumed")
        buf.moveReaderIndex(forwardBy: buf.readableBytes)
        buf.writeString("+OK after offset\r\n")
        #expect(try parser.parse(&buf) == .status(ok("after offset")))
    }

    // MARK: length limit

    static let limit = POP3Defaults.maximumStatusLineLength

    @Test("more than the maximum status-line length without LF throws statusLineTooLong")
    func overLongWithoutLF() {
        var parser = ResponseParser()
        var buf = buffer("+OK " + String(repeating: "x", count: Self.limit - 3))  // limit + 1 bytes
        #expect(buf.readableBytes == Self.limit + 1)
        #expect(throws: POP3ProtocolError(.statusLineTooLong(limit: Self.limit))) { try parser.parse(&buf) }
    }

    @Test("exactly the maximum length without LF still waits for more")
    func atLimitWithoutLFWaits() throws {
        var parser = ResponseParser()
        var buf = buffer("+OK " + String(repeating: "x", count: Self.limit - 4))
        #expect(buf.readableBytes == Self.limit)
        #expect(try parser.parse(&buf) == nil)
        // One more content byte crosses the limit.
        buf.writeString("y")
        #expect(throws: POP3ProtocolError(.statusLineTooLong(limit: Self.limit))) { try parser.parse(&buf) }
    }

    @Test("a complete status line longer than the limit throws")
    func overLongWithLF() {
        var parser = ResponseParser()
        var buf = buffer("-ERR " + String(repeating: "x", count: Self.limit - 6) + "\r\n")  // limit + 1 bytes
        #expect(buf.readableBytes == Self.limit + 1)
        #expect(throws: POP3ProtocolError(.statusLineTooLong(limit: Self.limit))) { try parser.parse(&buf) }
    }

    @Test("a status line at the limit including CRLF parses")
    func atLimitParses() throws {
        var parser = ResponseParser()
        let text = String(repeating: "x", count: Self.limit - 6)
        var buf = buffer("+OK " + text + "\r\n")
        #expect(buf.readableBytes == Self.limit)
        #expect(try parser.parse(&buf) == .status(ok(text)))
    }

    @Test("a status line just under the limit parses when it arrives in pieces")
    func justUnderLimitInPieces() throws {
        var parser = ResponseParser()
        let text = String(repeating: "y", count: Self.limit - 10)
        var buf = buffer("-ERR ")
        #expect(try parser.parse(&buf) == nil)
        buf.writeString(text)
        #expect(try parser.parse(&buf) == nil)
        buf.writeString("\r\n")
        #expect(try parser.parse(&buf) == .status(err(text)))
    }

    @Test("a long block after a short status line is not mistaken for a long status line")
    func longBlockAfterStatusLine() throws {
        var parser = ResponseParser()
        var buf = buffer("+OK\r\n" + String(repeating: "z", count: Self.limit * 2))
        #expect(try parser.parse(&buf) == .status(ok()))
        parser.beginBlock()
        let event = try #require(try parser.parse(&buf))
        #expect(event == .blockBytes(buffer(String(repeating: "z", count: Self.limit * 2))))
    }

    @Test("StatusLine.description renders indicator, code and text")
    func statusLineDescription() {
        #expect(ok("hi").description == "+OK hi")
        #expect(ok().description == "+OK")
        #expect(err("locked", code: .inUse).description == "-ERR [IN-USE] locked")
        #expect(StatusLine(indicator: .continuation, text: "abc=").description == "+ abc=")
    }
}
