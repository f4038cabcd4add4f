import NIOCore
import Testing

@testable import POP3Core

@Suite("ResponseParser multi-line blocks")
struct BlockParsingTests {
    struct BodyFixture: Sendable, CustomTestStringConvertible {
        var name: String
        /// The block content as sent on the wire (dot-stuffed), without the terminating line.
        var wire: [UInt8]
        /// The content after dot-unstuffing.
        var expected: [UInt8]
        /// The terminating line.
        var terminator: [UInt8] = bytes(".\r\n")

        init(_ name: String, wire: [UInt8], expected: [UInt8], terminator: String = ".\r\n") {
            self.name = name
            self.wire = wire
            self.expected = expected
            self.terminator = bytes(terminator)
        }

        init(_ name: String, wire: String, expected: String, terminator: String = ".\r\n") {
            self.init(name, wire: bytes(wire), expected: bytes(expected), terminator: terminator)
        }

        var testDescription: String { "\(self.name): \(escaped(self.wire + self.terminator))" }
    }

    static let longLine = String(repeating: "L", count: 5_000)

    static let bodies: [BodyFixture] = [
        .init("stuffed leading dot", wire: "..foo\r\n", expected: ".foo\r\n"),
        .init("a line that is just a stuffed dot", wire: "..\r\n", expected: ".\r\n"),
        .init("three dots", wire: "...\r\n", expected: "..\r\n"),
        .init("stuffed dot in the middle of a message", wire: "a\r\n..b\r\nc\r\n", expected: "a\r\n.b\r\nc\r\n"),
        .init("dots not at line start untouched", wire: "a.b..c\r\n x.\r\n", expected: "a.b..c\r\n x.\r\n"),
        .init("unstuffed leading dot is dropped (RFC 1939 §3)", wire: ".x\r\n", expected: "x\r\n"),
        .init("bare LF lines kept", wire: "line one\nline two\n", expected: "line one\nline two\n"),
        .init("stuffed dot on a bare LF line", wire: "..\n..x\n", expected: ".\n.x\n"),
        .init("bare CR after a stuffing dot", wire: ".\rX\r\n", expected: "\rX\r\n"),
        .init("bare CR then CRLF after a stuffing dot", wire: ".\r\r\n", expected: "\r\r\n"),
        .init("bare CR mid-line kept", wire: "a\rb\r\n", expected: "a\rb\r\n"),
        .init("dot after a bare CR is not at line start", wire: "a\r.b\r\n", expected: "a\r.b\r\n"),
        .init(
            "line longer than 998 octets", wire: longLine + "\r\n" + "." + longLine + "\r\n",
            expected: longLine + "\r\n" + longLine + "\r\n"),
        .init("a single empty line", wire: "\r\n", expected: "\r\n"),
        .init(
            "CRLF kept exactly", wire: "Subject: x\r\n\r\nbody\r\n\r\n\r\n",
            expected: "Subject: x\r\n\r\nbody\r\n\r\n\r\n"),
        .init(
            "8-bit bytes and NUL kept",
            wire: [0x00, 0xFF, 0x80, 0xC3, 0xA9, 0x0D, 0x0A, 0x2E, 0x2E, 0x00, 0x0D, 0x0A, 0x2E, 0xFE, 0x0A],
            expected: [0x00, 0xFF, 0x80, 0xC3, 0xA9, 0x0D, 0x0A, 0x2E, 0x00, 0x0D, 0x0A, 0xFE, 0x0A]),
        .init("empty body", wire: "", expected: ""),
        .init("bare LF terminator accepted", wire: "abc\n", expected: "abc\n", terminator: ".\n"),
        .init("bare LF terminator after CRLF lines", wire: "a\r\nb\r\n", expected: "a\r\nb\r\n", terminator: ".\n"),
        .init("empty body with bare LF terminator", wire: "", expected: "", terminator: ".\n"),
        .init("terminator-like text inside a line", wire: "x .\r\n", expected: "x .\r\n"),
        .init("two stuffed terminator lookalikes", wire: "..\r\n..\r\n", expected: ".\r\n.\r\n"),
    ]

    @Test("multi-line content is dot-unstuffed and otherwise byte-exact", arguments: bodies)
    func unstuffing(_ fixture: BodyFixture) throws {
        let input = bytes("+OK message follows\r\n") + fixture.wire + fixture.terminator
        let result = try parseMultiline(input)
        #expect(result.status == ok("message follows"))
        #expect(result.body == fixture.expected, "got \(escaped(result.body))")
        #expect(result.remaining.readableBytes == 0)
        #expect(!result.parser.isInBlock)
        #expect(result.slices.allSatisfy { $0.readableBytes > 0 }, "no empty slices")
    }

    @Test("bytes after the terminator stay in the buffer for the next status line", arguments: bodies)
    func bytesAfterTerminatorRemain(_ fixture: BodyFixture) throws {
        let trailer = bytes("+OK next\r\n..not a block\r\n")
        var result = try parseMultiline(bytes("+OK\r\n") + fixture.wire + fixture.terminator + trailer)
        #expect(result.body == fixture.expected)
        #expect(result.remaining.readableArray == trailer)
        #expect(try result.parser.parse(&result.remaining) == .status(ok("next")))
        // The parser is back in status-line mode: the next line is not unstuffed as block content.
        #expect(throws: POP3ProtocolError.self) { try result.parser.parse(&result.remaining) }
    }

    @Test("isInBlock follows beginBlock and the terminator")
    func isInBlock() throws {
        var parser = ResponseParser()
        var buf = buffer("+OK\r\nabc\r\n.\r\n")
        #expect(!parser.isInBlock)
        _ = try parser.parse(&buf)
        #expect(!parser.isInBlock)
        parser.beginBlock()
        #expect(parser.isInBlock)
        #expect(try parser.parse(&buf) == .blockBytes(buffer("abc\r\n")))
        #expect(parser.isInBlock)
        #expect(try parser.parse(&buf) == .blockEnd)
        #expect(!parser.isInBlock)
        #expect(try parser.parse(&buf) == nil)
    }

    @Test("content is handed out as soon as it arrives, holding back only a possible leading dot")
    func nothingHeldBack() throws {
        var parser = ResponseParser()
        parser.beginBlock()
        var buf = buffer("abc")
        #expect(try parser.parse(&buf) == .blockBytes(buffer("abc")))
        #expect(try parser.parse(&buf) == nil)
        buf.writeString("def\r\n")
        #expect(try parser.parse(&buf) == .blockBytes(buffer("def\r\n")))
        buf.writeString("ghi\r\n.")
        #expect(try parser.parse(&buf) == .blockBytes(buffer("ghi\r\n")))
        #expect(try parser.parse(&buf) == nil, "a lone dot at line start may be the terminator")
        #expect(buf.readableBytes == 0, "the dot is consumed and remembered, not left in the buffer")
        buf.writeString("\r")
        #expect(try parser.parse(&buf) == nil)
        buf.writeString("\n")
        #expect(try parser.parse(&buf) == .blockEnd)
    }

    @Test("a long run without leading dots comes out as a single slice")
    func singleSlice() throws {
        var parser = ResponseParser()
        parser.beginBlock()
        let content = String(repeating: "line of text\r\n", count: 1_000)
        var buf = buffer(content + ".\r\n")
        #expect(try parser.parse(&buf) == .blockBytes(buffer(content)))
        #expect(try parser.parse(&buf) == .blockEnd)
    }

    @Test("-ERR status lines carry no block")
    func errorHasNoBlock() throws {
        let result = try ParserDriver.run([bytes("-ERR no such message\r\n+OK\r\n.\r\n")])
        #expect(result.events == [.status(err("no such message")), .status(ok()), .blockEnd])
    }

    // MARK: split at every byte boundary

    /// Several responses with tricky bodies in one stream; the driver starts a block after every `+OK`.
    static let trickyStream: [UInt8] =
        bytes("+OK 1 follows\r\n")
        + bytes("..foo\r\n..\r\n...\r\nbare\nlf\n.\rX\r\n.\r\r\nmid\rcr\r\n") + [0x00, 0xFF, 0x0D, 0x0A]
        + bytes(".\r\n")
        + bytes("-ERR [SYS/TEMP] busy\r\n")
        + bytes("+OK 2 empty\r\n.\r\n")
        + bytes("+OK 3 lf terminator\r\nx\n..\n.\n")
        + bytes("+OK 4 long\r\n") + bytes(String(repeating: "y", count: 1_200)) + bytes("\r\n..z\r\n.\r\n")
        + bytes("-ERR tail")

    static let expectedTrickyEvents: [ResponseParser.Event] = [
        .status(ok("1 follows")),
        .blockBytes(buffer(bytes(".foo\r\n.\r\n..\r\nbare\nlf\n\rX\r\n\r\r\nmid\rcr\r\n") + [0x00, 0xFF, 0x0D, 0x0A])),
        .blockEnd,
        .status(err("busy", code: .sysTemp)),
        .status(ok("2 empty")),
        .blockEnd,
        .status(ok("3 lf terminator")),
        .blockBytes(buffer("x\n.\n")),
        .blockEnd,
        .status(ok("4 long")),
        .blockBytes(buffer(String(repeating: "y", count: 1_200) + "\r\n.z\r\n")),
        .blockEnd,
    ]

    @Test("the unsplit stream gives the expected events")
    func unsplitStream() throws {
        let result = try ParserDriver.run([Self.trickyStream])
        #expect(result.events == Self.expectedTrickyEvents)
        #expect(result.remaining == bytes("-ERR tail"))
    }

    @Test("splitting the stream in two at every position gives the same events")
    func everyTwoWaySplit() throws {
        let reference = try ParserDriver.run([Self.trickyStream])
        for (split, chunks) in twoWaySplits(Self.trickyStream) {
            let result = try ParserDriver.run(chunks)
            #expect(result.events == reference.events, "split at \(split)")
            #expect(result.remaining == reference.remaining, "split at \(split)")
            if result.events != reference.events { break }  // one report is enough
        }
    }

    @Test("feeding the stream one byte at a time gives the same events")
    func byteByByte() throws {
        let reference = try ParserDriver.run([Self.trickyStream])
        let result = try ParserDriver.run(byteAtATime(Self.trickyStream))
        #expect(result.events == reference.events)
        #expect(result.remaining == reference.remaining)
    }

    @Test("every fixture body survives every two-way split", arguments: bodies)
    func fixtureSplits(_ fixture: BodyFixture) throws {
        let input = bytes("+OK\r\n") + fixture.wire + fixture.terminator + bytes("+OK after\r\n")
        let expected: [ResponseParser.Event] =
            [.status(ok())] + (fixture.expected.isEmpty ? [] : [.blockBytes(buffer(fixture.expected))])
            + [.blockEnd, .status(ok("after"))]
        let onlyFirstBlock: (StatusLine) -> Bool = { $0.text.isEmpty }
        for (split, chunks) in twoWaySplits(input) {
            let result = try ParserDriver.run(chunks, expectsBlock: onlyFirstBlock)
            #expect(result.events == expected, "split at \(split)")
            if result.events != expected { break }
        }
        let oneByOne = try ParserDriver.run(byteAtATime(input), expectsBlock: onlyFirstBlock)
        #expect(oneByOne.events == expected, "one byte at a time")
    }
}
