public import struct NIOCore.ByteBuffer

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// An incremental POP3 response parser.
///
/// It is fed whatever bytes arrived and returns one event at a time, or `nil` when it needs more bytes. Status lines
/// are bounded by ``POP3Defaults/maximumStatusLineLength``. After a positive status line to a multi-line command the
/// caller calls ``beginBlock()``; the parser then yields the block's content, dot-unstuffed but otherwise byte for byte
/// (CRLF, bare LF, long lines, 8-bit and NUL bytes pass unchanged), in as few slices as possible, and finally
/// ``Event/blockEnd`` when the terminating `.CRLF` line arrives. Nothing of a block is ever held back beyond the
/// bytes needed to recognise a leading dot.
public struct ResponseParser: Sendable {
    public enum Event: Hashable, Sendable {
        case status(StatusLine)
        /// Content of a multi-line block, already dot-unstuffed.
        case blockBytes(ByteBuffer)
        /// The terminating `.CRLF` of a block was consumed.
        case blockEnd
    }

    private enum BlockState: Sendable {
        case lineStart
        case dot
        case dotCR
        case midLine
    }

    private enum Mode: Sendable {
        case statusLine
        case block(BlockState)
    }

    private var mode: Mode = .statusLine

    public init() {}

    /// Whether the parser is inside a multi-line block.
    public var isInBlock: Bool {
        if case .block = self.mode { return true }
        return false
    }

    /// Tells the parser that a multi-line block follows the status line just returned.
    public mutating func beginBlock() {
        self.mode = .block(.lineStart)
    }

    /// Returns the next event, or `nil` if more bytes are needed. Consumes what it returns from `buffer`.
    public mutating func parse(_ buffer: inout ByteBuffer) throws -> Event? {
        switch self.mode {
        case .statusLine:
            return try self.parseStatusLine(&buffer)
        case .block(let state):
            return self.parseBlock(&buffer, state: state)
        }
    }

    // status-line = ("+OK" / "-ERR" / "+") [SP [resp-code SP] text] CRLF   ; RFC 1939 §3, RFC 2449 §8, RFC 5034 §4
    private mutating func parseStatusLine(_ buffer: inout ByteBuffer) throws -> Event? {
        guard let lfOffset = buffer.readableBytesView.firstIndex(of: 10) else {
            if buffer.readableBytes > POP3Defaults.maximumStatusLineLength {
                throw POP3ProtocolError(.statusLineTooLong(limit: POP3Defaults.maximumStatusLineLength))
            }
            return nil
        }
        let length = lfOffset - buffer.readerIndex + 1
        if length > POP3Defaults.maximumStatusLineLength {
            throw POP3ProtocolError(.statusLineTooLong(limit: POP3Defaults.maximumStatusLineLength))
        }
        guard var bytes = buffer.readBytes(length: length) else { return nil }
        bytes.removeLast()  // LF
        if bytes.last == 13 { bytes.removeLast() }
        return .status(try Self.statusLine(from: bytes))
    }

    static func statusLine(from bytes: [UInt8]) throws -> StatusLine {
        let indicator: StatusLine.Indicator
        let rest: ArraySlice<UInt8>
        func hasPrefix(_ p: String) -> Bool {
            let pb = Array(p.utf8)
            guard bytes.count >= pb.count else { return false }
            for i in 0..<pb.count where Self.upper(bytes[i]) != pb[i] { return false }
            // the indicator must end the line or be followed by a space
            return bytes.count == pb.count || bytes[pb.count] == 32
        }
        if hasPrefix("+OK") {
            indicator = .ok
            rest = bytes.dropFirst(3)
        } else if hasPrefix("-ERR") {
            indicator = .err
            rest = bytes.dropFirst(4)
        } else if hasPrefix("+") {
            indicator = .continuation
            rest = bytes.dropFirst(1)
        } else {
            throw POP3ProtocolError(.invalidStatusLine(excerpt: String.excerpt(of: bytes)))
        }
        var text = String(decoding: rest.first == 32 ? rest.dropFirst() : rest, as: UTF8.self)
        var code: ResponseCode?
        if indicator != .continuation, text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            let raw = String(text[text.index(after: text.startIndex)..<close])
            if !raw.isEmpty && !raw.contains(" ") {
                code = ResponseCode(rawValue: raw)
                text = String(text[text.index(after: close)...])
                if text.hasPrefix(" ") { text.removeFirst() }
            }
        }
        return StatusLine(indicator: indicator, code: code, text: text)
    }

    private static func upper(_ b: UInt8) -> UInt8 { (b >= 97 && b <= 122) ? b - 32 : b }

    // multi-line block: *(dot-stuffed line) "." CRLF   ; RFC 1939 §3
    private mutating func parseBlock(_ buffer: inout ByteBuffer, state initial: BlockState) -> Event? {
        var state = initial
        while buffer.readableBytes > 0 {
            switch state {
            case .lineStart:
                if buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) == UInt8(ascii: ".") {
                    buffer.moveReaderIndex(forwardBy: 1)
                    state = .dot
                } else {
                    state = .midLine
                }
            case .dot:
                let b = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self)
                if b == 13 {
                    buffer.moveReaderIndex(forwardBy: 1)
                    state = .dotCR
                } else if b == 10 {
                    // ".LF": a lenient terminator. A correct server stuffs a lone-dot line, so this is never content.
                    buffer.moveReaderIndex(forwardBy: 1)
                    self.mode = .statusLine
                    return .blockEnd
                } else {
                    // The dot was stuffing: it is dropped, the line goes on.
                    state = .midLine
                }
            case .dotCR:
                if buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) == 10 {
                    buffer.moveReaderIndex(forwardBy: 1)
                    self.mode = .statusLine
                    return .blockEnd
                }
                // ".CR x": stuffing dot followed by a bare CR, which is content.
                self.mode = .block(.midLine)
                var cr = ByteBuffer()
                cr.writeInteger(UInt8(13))
                return .blockBytes(cr)
            case .midLine:
                let (run, endsAtLineStart) = buffer.withUnsafeReadableBytes { Self.scanRun($0) }
                self.mode = .block(endsAtLineStart ? .lineStart : .midLine)
                if let slice = buffer.readSlice(length: run) {
                    return .blockBytes(slice)
                }
                return nil
            }
        }
        self.mode = .block(state)
        return nil
    }

    /// The longest run of content from the start of `bytes` that contains no line starting with a dot: it ends
    /// right after an LF that is followed by a dot, or at the end of the bytes.
    private static func scanRun(_ bytes: UnsafeRawBufferPointer) -> (Int, Bool) {
        guard let base = bytes.baseAddress else { return (0, false) }
        let n = bytes.count
        var pos = 0
        while pos < n {
            guard let found = memchr(base + pos, 10, n - pos) else { return (n, false) }
            let idx = base.distance(to: UnsafeRawPointer(found))
            if idx + 1 == n { return (n, true) }
            if bytes[idx + 1] == UInt8(ascii: ".") { return (idx + 1, true) }
            pos = idx + 1
        }
        return (n, false)
    }
}
