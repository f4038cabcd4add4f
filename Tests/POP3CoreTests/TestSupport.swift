import NIOCore
import Testing

@testable import POP3Core

// MARK: - Bytes and buffers

/// The UTF-8 bytes of `s`.
func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// A buffer holding the UTF-8 bytes of `s`.
func buffer(_ s: String) -> ByteBuffer { ByteBuffer(string: s) }

/// A buffer holding `b`.
func buffer(_ b: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: b) }

extension ByteBuffer {
    /// The readable bytes, copied.
    var readableArray: [UInt8] { Array(self.readableBytesView) }
}

/// Thrown by test helpers when the input does not drive the code where the test expected it to go.
struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Printable form of raw bytes for fixture names and failure messages (CR, LF, NUL and 8-bit bytes escaped).
func escaped(_ b: [UInt8]) -> String {
    var out = ""
    for byte in b {
        switch byte {
        case 13: out += "\\r"
        case 10: out += "\\n"
        case 0x20..<0x7F: out.unicodeScalars.append(Unicode.Scalar(byte))
        default: out += "\\x" + String(byte, radix: 16, uppercase: true)
        }
    }
    return out
}

/// Every way of cutting `input` into two chunks (including an empty first or last chunk).
func twoWaySplits(_ input: [UInt8]) -> [(split: Int, chunks: [[UInt8]])] {
    (0...input.count).map { i in (i, [Array(input[..<i]), Array(input[i...])]) }
}

/// `input` as one chunk per byte.
func byteAtATime(_ input: [UInt8]) -> [[UInt8]] { input.map { [$0] } }

// MARK: - ResponseParser driver

/// Feeds a `ResponseParser` chunk by chunk, the way a channel handler would: append what arrived, then take events
/// until the parser needs more bytes. After a status line for which `expectsBlock` is true it calls `beginBlock()`.
struct ParserDriver {
    var parser = ResponseParser()
    var buffer = ByteBuffer()
    var events: [ResponseParser.Event] = []
    var expectsBlock: (StatusLine) -> Bool

    init(expectsBlock: @escaping (StatusLine) -> Bool = { $0.isOK }) {
        self.expectsBlock = expectsBlock
    }

    mutating func feed(_ chunk: [UInt8]) throws {
        self.buffer.writeBytes(chunk)
        while let event = try self.parser.parse(&self.buffer) {
            self.events.append(event)
            if case .status(let status) = event, self.expectsBlock(status) {
                self.parser.beginBlock()
            }
        }
    }

    /// Feeds all chunks and returns the events with adjacent block slices merged.
    static func run(
        _ chunks: [[UInt8]], expectsBlock: @escaping (StatusLine) -> Bool = { $0.isOK }
    ) throws -> (events: [ResponseParser.Event], remaining: [UInt8]) {
        var driver = ParserDriver(expectsBlock: expectsBlock)
        for chunk in chunks { try driver.feed(chunk) }
        return (coalesced(driver.events), driver.buffer.readableArray)
    }
}

/// Merges adjacent `.blockBytes` events, so event lists compare equal however the input was sliced.
func coalesced(_ events: [ResponseParser.Event]) -> [ResponseParser.Event] {
    var out: [ResponseParser.Event] = []
    for event in events {
        if case .blockBytes(let next) = event, case .blockBytes(var previous)? = out.last {
            previous.writeImmutableBuffer(next)
            out[out.count - 1] = .blockBytes(previous)
        } else {
            out.append(event)
        }
    }
    return out
}

/// The result of parsing one complete multi-line response.
struct MultilineResult {
    var status: StatusLine
    /// The block content after dot-unstuffing.
    var body: [UInt8]
    /// The block content in the slices the parser returned.
    var slices: [ByteBuffer]
    /// What is left in the buffer after `.blockEnd`.
    var remaining: ByteBuffer
    var parser: ResponseParser
}

/// Parses a status line, calls `beginBlock()` after `+OK`, and collects `.blockBytes` until `.blockEnd`.
/// Throws when the input ends before the block does.
func parseMultiline(_ input: [UInt8]) throws -> MultilineResult {
    var parser = ResponseParser()
    var buf = buffer(input)
    guard case .status(let status)? = try parser.parse(&buf) else {
        throw TestFailure("no status line in \(escaped(input))")
    }
    guard status.isOK else { throw TestFailure("status line is not +OK: \(status)") }
    parser.beginBlock()
    var body: [UInt8] = []
    var slices: [ByteBuffer] = []
    while true {
        guard let event = try parser.parse(&buf) else {
            throw TestFailure("block did not end; body so far: \(escaped(body))")
        }
        switch event {
        case .blockBytes(let slice):
            slices.append(slice)
            body += slice.readableArray
        case .blockEnd:
            return MultilineResult(status: status, body: body, slices: slices, remaining: buf, parser: parser)
        case .status(let s):
            throw TestFailure("status line \(s) inside a block")
        }
    }
}

// MARK: - State machine driver

/// A client state machine plus its inbound buffer.
struct Session {
    typealias Event = POP3ClientStateMachine.Event

    var machine = POP3ClientStateMachine()
    var inbound = ByteBuffer()

    var state: POP3ClientStateMachine.SessionState { self.machine.state }

    @discardableResult
    mutating func send(_ command: Command) throws -> [UInt8] {
        try self.machine.send(command)
    }

    /// Appends `chunk` to the inbound buffer and returns every event that is complete.
    mutating func receive(_ chunk: [UInt8]) throws -> [Event] {
        self.inbound.writeBytes(chunk)
        var events: [Event] = []
        while let event = try self.machine.receive(&self.inbound) {
            events.append(event)
        }
        return events
    }

    mutating func receive(_ text: String) throws -> [Event] {
        try self.receive(bytes(text))
    }

    /// A session that has received a positive greeting (AUTHORIZATION state).
    static func greeted(_ greeting: String = "+OK POP3 server ready\r\n") throws -> Session {
        var session = Session()
        let events = try session.receive(greeting)
        guard events.count == 1, case .greeting(let status, _) = events[0], status.isOK else {
            throw TestFailure("greeting not accepted: \(events)")
        }
        return session
    }

    /// A session that logged in with USER/PASS (TRANSACTION state).
    static func inTransaction() throws -> Session {
        var session = try Session.greeted()
        try session.send(.user("alice"))
        _ = try session.receive("+OK alice is known\r\n")
        try session.send(.pass("secret"))
        _ = try session.receive("+OK maildrop locked and ready\r\n")
        guard session.state == .transaction else { throw TestFailure("login failed: \(session.state)") }
        return session
    }
}

/// Merges adjacent `.messageBytes` events, so event lists compare equal however the input was sliced.
func coalesced(_ events: [POP3ClientStateMachine.Event]) -> [POP3ClientStateMachine.Event] {
    var out: [POP3ClientStateMachine.Event] = []
    for event in events {
        if case .messageBytes(let next) = event, case .messageBytes(var previous)? = out.last {
            previous.writeImmutableBuffer(next)
            out[out.count - 1] = .messageBytes(previous)
        } else {
            out.append(event)
        }
    }
    return out
}

/// The concatenated `.messageBytes` of `events`.
func messageBody(_ events: [POP3ClientStateMachine.Event]) -> [UInt8] {
    var body: [UInt8] = []
    for case .messageBytes(let b) in events { body += b.readableArray }
    return body
}

func ok(_ text: String = "", code: ResponseCode? = nil) -> StatusLine {
    StatusLine(indicator: .ok, code: code, text: text)
}

func err(_ text: String = "", code: ResponseCode? = nil) -> StatusLine {
    StatusLine(indicator: .err, code: code, text: text)
}
