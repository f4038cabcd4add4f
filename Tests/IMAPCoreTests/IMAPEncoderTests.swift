import Testing

@testable import IMAPCore

@Suite("IMAPEncoder, modified UTF-7, dates")
struct IMAPEncoderTests {
    static func wire(_ e: IMAPEncodedCommand) -> [String] {
        e.parts.map { ($0.waitForContinuation ? "⏸" : "") + String(decoding: $0.bytes, as: UTF8.self) }
    }

    static let plain = IMAPEncoder(capabilities: IMAPCapabilities(["IMAP4rev1"]))
    static let literalPlus = IMAPEncoder(capabilities: IMAPCapabilities(["IMAP4rev1", "LITERAL+"]))
    static let literalMinus = IMAPEncoder(capabilities: IMAPCapabilities(["IMAP4rev1", "LITERAL-"]))

    @Test func simpleCommands() throws {
        #expect(Self.wire(try Self.plain.encode(.capability, tag: "A1")) == ["A1 CAPABILITY\r\n"])
        #expect(Self.wire(try Self.plain.encode(.logout, tag: "A2")) == ["A2 LOGOUT\r\n"])
        #expect(Self.wire(try Self.plain.encode(.startTLS, tag: "A3")) == ["A3 STARTTLS\r\n"])
        #expect(Self.wire(try Self.plain.encode(.noop, tag: "A4")) == ["A4 NOOP\r\n"])
    }

    @Test func loginStrings() throws {
        #expect(
            Self.wire(try Self.plain.encode(.login(user: "joe", password: "pa ss\"w\\d"), tag: "A1"))
                == ["A1 LOGIN joe \"pa ss\\\"w\\\\d\"\r\n"])
        // An empty string is quoted; 8-bit or CR/LF goes as a literal, synchronizing without LITERAL+.
        #expect(
            Self.wire(try Self.plain.encode(.login(user: "", password: "pässword"), tag: "A2"))
                == ["A2 LOGIN \"\" {9}\r\n", "⏸pässword\r\n"])
        #expect(
            Self.wire(try Self.literalPlus.encode(.login(user: "a\r\nb", password: "x"), tag: "A3"))
                == ["A3 LOGIN {4+}\r\n", "a\r\nb x\r\n"])
    }

    @Test func authenticate() throws {
        #expect(
            Self.wire(
                try Self.plain.encode(.authenticate(mechanism: "PLAIN", initialResponse: "AGpvZQBzZWNyZXQ="), tag: "A1")
            )
                == ["A1 AUTHENTICATE PLAIN AGpvZQBzZWNyZXQ=\r\n"])
        #expect(
            Self.wire(try Self.plain.encode(.authenticate(mechanism: "XOAUTH2", initialResponse: "="), tag: "A2"))
                == ["A2 AUTHENTICATE XOAUTH2 =\r\n"])
        #expect(
            Self.wire(try Self.plain.encode(.authenticate(mechanism: "SCRAM-SHA-256", initialResponse: nil), tag: "A3"))
                == ["A3 AUTHENTICATE SCRAM-SHA-256\r\n"])
        #expect(throws: IMAPEncodingError.self) {
            try Self.plain.encode(.authenticate(mechanism: "PLAIN", initialResponse: "not base64!\r\n"), tag: "A4")
        }
        #expect(throws: IMAPEncodingError.self) {
            try Self.plain.encode(.authenticate(mechanism: "PL AIN", initialResponse: nil), tag: "A5")
        }
    }

    @Test func append() throws {
        let date = IMAPDateTime(year: 2026, month: 12, day: 2, hour: 9, minute: 5, second: 7, offsetMinutes: -330)
        let e = try Self.plain.encode(
            .append(mailbox: "INBOX", flags: [], date: date, size: 1234), tag: "A1")
        #expect(Self.wire(e) == ["A1 APPEND INBOX \" 2-Dec-2026 09:05:07 -0530\" {1234}\r\n"])
        #expect(e.messageLiteral?.size == 1234 && e.messageLiteral?.synchronizing == true)
        let f = try Self.literalPlus.encode(
            .append(mailbox: "Archive/2026", flags: ["\\Seen", "$Forwarded"], date: nil, size: 10), tag: "A2")
        #expect(Self.wire(f) == ["A2 APPEND Archive/2026 (\\Seen $Forwarded) {10+}\r\n"])
        #expect(f.messageLiteral?.synchronizing == false)
        // LITERAL-: non-synchronizing only up to 4,096 octets.
        let small = try Self.literalMinus.encode(.append(mailbox: "inbox", flags: [], date: nil, size: 4096), tag: "A3")
        #expect(small.messageLiteral?.synchronizing == false)
        let big = try Self.literalMinus.encode(.append(mailbox: "inbox", flags: [], date: nil, size: 4097), tag: "A4")
        #expect(big.messageLiteral?.synchronizing == true)
        #expect(throws: IMAPEncodingError.self) {
            try Self.plain.encode(.append(mailbox: "INBOX", flags: ["\\Se en"], date: nil, size: 1), tag: "A5")
        }
        #expect(throws: IMAPEncodingError.self) {
            try Self.plain.encode(.append(mailbox: "", flags: [], date: nil, size: 1), tag: "A6")
        }
        #expect(throws: IMAPEncodingError.self) {
            try Self.plain.encode(.append(mailbox: "a\r\nb", flags: [], date: nil, size: 1), tag: "A7")
        }
        #expect(throws: IMAPEncodingError.self) {
            try Self.plain.encode(.append(mailbox: "INBOX", flags: [], date: nil, size: -1), tag: "A8")
        }
    }

    @Test func mailboxNames() throws {
        #expect(
            Self.wire(try Self.plain.encode(.create(mailbox: "Reçus & envoyés"), tag: "A1"))
                == ["A1 CREATE \"Re&AOc-us &- envoy&AOk-s\"\r\n"])
        #expect(ModifiedUTF7.encode("~peter/mail/台北/日本語") == "~peter/mail/&U,BTFw-/&ZeVnLIqe-")
        #expect(ModifiedUTF7.encode("[Gmail]/All Mail") == "[Gmail]/All Mail")
        #expect(Self.wire(try Self.plain.encode(.list(mailbox: "Reçus"), tag: "A3")) == ["A3 LIST \"\" Re&AOc-us\r\n"])
        #expect(ModifiedUTF7.encode("😀") == "&2D3eAA-")
        #expect(
            Self.wire(try Self.plain.encode(.select(mailbox: "[Gmail]/Sent"), tag: "A2")) == [
                "A2 SELECT \"[Gmail]/Sent\"\r\n"
            ])
    }

    @Test func searchHeader() throws {
        #expect(
            Self.wire(
                try Self.plain.encode(
                    .uidSearchHeader(field: "X-Popfetch-ID", value: "abc/0001", fromUID: nil), tag: "A1"))
                == ["A1 UID SEARCH HEADER X-Popfetch-ID abc/0001\r\n"])
        #expect(
            Self.wire(
                try Self.plain.encode(.uidSearchHeader(field: "X-Popfetch-ID", value: "a b", fromUID: 42), tag: "A2"))
                == ["A2 UID SEARCH UID 42:* HEADER X-Popfetch-ID \"a b\"\r\n"])
        #expect(throws: IMAPEncodingError.self) {
            try Self.plain.encode(.uidSearchHeader(field: "X:Y", value: "v", fromUID: nil), tag: "A3")
        }
        #expect(throws: IMAPEncodingError.self) {
            try Self.plain.encode(.uidSearchHeader(field: "X", value: "v", fromUID: 0), tag: "A4")
        }
    }

    @Test func capabilities() {
        let c = IMAPCapabilities(["imap4rev1", "Auth=Plain", "AUTH=XOAUTH2", "APPENDLIMIT=35651584", "uidplus"])
        #expect(c.isIMAP4rev1 && c.uidPlus && !c.literalPlus)
        #expect(c.authenticationMechanisms == ["PLAIN", "XOAUTH2"])
        #expect(c.appendLimit == 35_651_584)
        #expect(IMAPCapabilities(["APPENDLIMIT"]).appendLimit == nil)
        #expect(IMAPCapabilities(["APPENDLIMIT=99999999999"]).appendLimit == nil)
    }

    struct DateCase: Sendable, CustomTestStringConvertible {
        var header: String
        var imap: String?
        var testDescription: String { self.header }
    }

    static let dates: [DateCase] = [
        DateCase(header: "Wed, 2 Dec 2026 10:00:00 +0100", imap: " 2-Dec-2026 10:00:00 +0100"),
        DateCase(header: "2 Dec 2026 10:00 -0800", imap: " 2-Dec-2026 10:00:00 -0800"),
        DateCase(header: "Mon, 29 Feb 2016 23:59:60 GMT", imap: "29-Feb-2016 23:59:59 +0000"),
        DateCase(header: "Fri, 21 Nov 97 09:55:06 EST (Eastern)", imap: "21-Nov-1997 09:55:06 -0500"),
        DateCase(header: "Thu,\r\n 13 Feb 1969 23:32 -0330 (Newfoundland Time)", imap: "13-Feb-1969 23:32:00 -0330"),
        DateCase(header: "Tue, 1 Jul 2003 10:52:37 +0200 (CEST)", imap: " 1-Jul-2003 10:52:37 +0200"),
        DateCase(header: "1 Jan 49 00:00:00 Z", imap: " 1-Jan-2049 00:00:00 +0000"),
        DateCase(header: "Sat, 01 Feb 2020 3:04:05 +0000", imap: " 1-Feb-2020 03:04:05 +0000"),
        DateCase(header: "Sunday, 2 December 2026 10:00:00 +0100", imap: " 2-Dec-2026 10:00:00 +0100"),
        DateCase(header: "29 Feb 2015 10:00:00 +0000", imap: nil),
        DateCase(header: "31 Apr 2020 10:00:00 +0000", imap: nil),
        DateCase(header: "1 Foo 2020 10:00:00 +0000", imap: nil),
        DateCase(header: "1 Jan 2020 24:00:00 +0000", imap: nil),
        DateCase(header: "1 Jan 2020 10:00:00 +0099", imap: nil),
        DateCase(header: "1 Jan 2020 10:00:00 Mars", imap: nil),
        DateCase(header: "yesterday", imap: nil),
        DateCase(header: "", imap: nil),
        DateCase(header: "1 Jan 99999999999999999999 10:00:00 +0000", imap: nil),
    ]

    @Test(arguments: dates)
    func dateHeader(_ c: DateCase) {
        #expect(IMAPDateTime.parseRFC5322(c.header)?.imapString == c.imap)
    }

    @Test func secondsSince1970() {
        #expect(IMAPDateTime(secondsSince1970: 0)?.imapString == " 1-Jan-1970 00:00:00 +0000")
        #expect(IMAPDateTime(secondsSince1970: 1_796_211_045)?.imapString == " 2-Dec-2026 11:30:45 +0000")
        #expect(IMAPDateTime(secondsSince1970: 951_825_600)?.imapString == "29-Feb-2000 12:00:00 +0000")
        #expect(IMAPDateTime(secondsSince1970: Int64.max) == nil)
    }
}
