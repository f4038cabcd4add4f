public import struct NIOCore.ByteBuffer

/// Incremental parser of IMAP server responses (RFC 3501 §7 and the grammar of §9), bytes in, ``IMAPResponse``s
/// out; no I/O. A response is one line, or, when a line ends in a literal's announcement `{n}`, that line, n bytes,
/// and the line that goes on after them. popfetch needs no literal a server sends: their bytes are skipped as they
/// arrive (never kept), and such a response is reported by its keyword only.
///
/// Limits: ``IMAPDefaults/maximumLineLength`` per physical line, ``IMAPDefaults/maximumResponseLiteral`` per literal,
/// ``IMAPDefaults/maximumLiteralsPerResponse``. Anything outside the grammar throws ``IMAPProtocolError``; the
/// parser never traps on any input.
public struct IMAPResponseParser: Sendable {
    /// Where the parser stands inside one response.
    private enum State: Sendable {
        /// Reading a physical line.
        case line
        /// Skipping the bytes of a literal; then the response goes on with another line.
        case literal(remaining: Int)
    }

    private var state = State.line
    /// The first physical line of the response being read (the one that says what it is).
    private var firstLine: [UInt8]?
    private var literals = 0

    public init() {}

    /// The next complete response, or nil when more bytes are needed. Bytes of a response not yet complete are
    /// consumed from `buffer` as far as they can be (a literal's bytes are dropped as they arrive).
    public mutating func parse(_ buffer: inout ByteBuffer) throws -> IMAPResponse? {
        while true {
            switch self.state {
            case .literal(let remaining):
                let n = min(remaining, buffer.readableBytes)
                buffer.moveReaderIndex(forwardBy: n)
                if n < remaining {
                    self.state = .literal(remaining: remaining - n)
                    return nil
                }
                self.state = .line
            case .line:
                guard let line = try Self.readLine(&buffer) else { return nil }
                // A continuation request is one line, whatever it ends with (its text is free, or base64).
                let continuation = self.firstLine == nil && line.first == UInt8(ascii: "+")
                if !continuation, let length = try Self.literalAnnouncement(line) {
                    self.literals += 1
                    guard self.literals <= IMAPDefaults.maximumLiteralsPerResponse else {
                        throw IMAPProtocolError(
                            "more than \(IMAPDefaults.maximumLiteralsPerResponse) literals in one response")
                    }
                    if self.firstLine == nil { self.firstLine = line }
                    self.state = .literal(remaining: length)
                    continue
                }
                let first = self.firstLine ?? line
                let hadLiterals = self.firstLine != nil
                self.firstLine = nil
                self.literals = 0
                return try Self.response(from: first, hadLiterals: hadLiterals)
            }
        }
    }

    // MARK: - Lines

    /// One line without its CRLF (a bare LF is taken as well), or nil when it is not complete.
    static func readLine(_ buffer: inout ByteBuffer) throws -> [UInt8]? {
        let view = buffer.readableBytesView
        guard let lf = view.firstIndex(of: 10) else {
            if view.count > IMAPDefaults.maximumLineLength {
                throw IMAPProtocolError("response line longer than \(IMAPDefaults.maximumLineLength) octets")
            }
            return nil
        }
        let length = lf - view.startIndex + 1
        guard length <= IMAPDefaults.maximumLineLength + 2, var bytes = buffer.readBytes(length: length) else {
            throw IMAPProtocolError("response line longer than \(IMAPDefaults.maximumLineLength) octets")
        }
        bytes.removeLast()
        if bytes.last == 13 { bytes.removeLast() }
        return bytes
    }

    /// The length of the literal a line announces at its end (`{n}`, or `{n+}` as some servers echo it), if any.
    static func literalAnnouncement(_ line: [UInt8]) throws -> Int? {
        guard line.last == UInt8(ascii: "}"), let open = line.lastIndex(of: UInt8(ascii: "{")) else { return nil }
        var digits = line[(open + 1)..<(line.count - 1)]
        if digits.last == UInt8(ascii: "+") { digits = digits.dropLast() }
        guard !digits.isEmpty, digits.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        guard let n = Self.number(digits), n <= IMAPDefaults.maximumResponseLiteral else {
            throw IMAPProtocolError(
                "literal of more than \(IMAPDefaults.maximumResponseLiteral) octets announced in a response")
        }
        return Int(n)
    }

    /// A 32-bit unsigned decimal number (RFC 3501 `number`), or nil if out of range or not digits.
    static func number<C: Collection>(_ digits: C) -> UInt32? where C.Element == UInt8 {
        guard !digits.isEmpty, digits.count <= 10 else { return nil }
        var value: UInt64 = 0
        for d in digits {
            guard d >= 48 && d <= 57 else { return nil }
            value = value * 10 + UInt64(d - 48)
        }
        return value <= UInt64(UInt32.max) ? UInt32(value) : nil
    }

    // MARK: - Responses

    static func response(from line: [UInt8], hadLiterals: Bool) throws -> IMAPResponse {
        var cursor = Cursor(line)
        if cursor.take(UInt8(ascii: "+")) {
            _ = cursor.take(32)
            return .continuation(Self.text(cursor.rest))
        }
        if cursor.take(UInt8(ascii: "*")) {
            guard cursor.take(32) else { throw IMAPProtocolError("untagged response without a space after '*'") }
            return try Self.untagged(&cursor, hadLiterals: hadLiterals)
        }
        let tag = cursor.atom { Self.isTagChar($0) }
        guard !tag.isEmpty, cursor.take(32) else {
            throw IMAPProtocolError("response is neither '+', '*' nor a tagged status: \(Self.excerpt(line))")
        }
        let keyword = cursor.atom { Self.isAtomChar($0) }.uppercased()
        guard let condition = IMAPCondition(rawValue: keyword), [.ok, .no, .bad].contains(condition) else {
            throw IMAPProtocolError(
                "tagged response with \(Self.excerpt(Array(keyword.utf8))) instead of OK, NO or BAD")
        }
        return .tagged(tag: tag, status: try Self.status(condition, &cursor))
    }

    private static func untagged(_ cursor: inout Cursor, hadLiterals: Bool) throws -> IMAPResponse {
        if let first = cursor.peek, first >= 48 && first <= 57 {
            // `* n EXISTS`, `* n EXPUNGE`, `* n FETCH ...`.
            let digits = cursor.atom { $0 >= 48 && $0 <= 57 }
            guard let n = Self.number(Array(digits.utf8)) else {
                throw IMAPProtocolError("untagged number \(Self.excerpt(Array(digits.utf8))) out of range")
            }
            guard cursor.take(32) else { throw IMAPProtocolError("number without a keyword in an untagged response") }
            let keyword = cursor.atom { Self.isAtomChar($0) }.uppercased()
            guard !keyword.isEmpty else { throw IMAPProtocolError("number without a keyword in an untagged response") }
            return keyword == "EXISTS" && !hadLiterals ? .exists(n) : .untaggedOther(keyword)
        }
        let keyword = cursor.atom { Self.isAtomChar($0) }.uppercased()
        guard !keyword.isEmpty else { throw IMAPProtocolError("untagged response without a keyword") }
        if hadLiterals { return .untaggedOther(keyword) }
        if let condition = IMAPCondition(rawValue: keyword) {
            return .untaggedStatus(try Self.status(condition, &cursor))
        }
        switch keyword {
        case "CAPABILITY":
            return .capability(Self.words(cursor.rest))
        case "SEARCH":
            var results: [UInt32] = []
            for word in cursor.rest.split(separator: 32) {
                // RFC 7162's `(MODSEQ n)` may follow the numbers; it is not ours to read.
                if word.first == UInt8(ascii: "(") { break }
                guard let n = Self.number(word), n > 0 else {
                    throw IMAPProtocolError("SEARCH result that is not a number from 1 to 4294967295")
                }
                if results.count < IMAPDefaults.maximumSearchResults { results.append(n) }
            }
            return .search(results)
        default:
            return .untaggedOther(keyword)
        }
    }

    /// `resp-text` after a condition: `[ "[" code "]" SP ] text`. Servers leave out the text, and the space before
    /// it, often enough that both are optional here.
    private static func status(_ condition: IMAPCondition, _ cursor: inout Cursor) throws -> IMAPStatus {
        if cursor.atEnd { return IMAPStatus(condition: condition, text: "") }
        guard cursor.take(32) else { throw IMAPProtocolError("status \(condition.rawValue) not followed by a space") }
        var code: IMAPResponseCode?
        if cursor.take(UInt8(ascii: "[")) {
            let inside = cursor.upTo(UInt8(ascii: "]"))
            guard cursor.take(UInt8(ascii: "]")) else { throw IMAPProtocolError("response code without ']'") }
            code = try Self.code(inside)
            _ = cursor.take(32)
        }
        return IMAPStatus(condition: condition, code: code, text: Self.text(cursor.rest))
    }

    static func code(_ bytes: ArraySlice<UInt8>) throws -> IMAPResponseCode {
        let space = bytes.firstIndex(of: 32)
        let name = String(decoding: bytes[..<(space ?? bytes.endIndex)], as: UTF8.self).uppercased()
        let rest = space.map { bytes[($0 + 1)...] } ?? []
        let words = rest.split(separator: 32)
        switch name {
        case "ALERT": return .alert
        case "CAPABILITY": return .capability(Self.words(rest))
        case "APPENDUID":
            guard words.count == 2, let validity = Self.number(words[0]), let uid = Self.number(words[1]),
                validity > 0, uid > 0
            else {
                // RFC 4315 allows a set of UIDs (MULTIAPPEND); one message is appended at a time here.
                throw IMAPProtocolError("APPENDUID without two numbers from 1 to 4294967295")
            }
            return .appendUID(uidValidity: validity, uid: uid)
        case "APPENDLIMIT":
            guard words.count == 1, let n = Self.number(words[0]) else {
                throw IMAPProtocolError("APPENDLIMIT without a number from 0 to 4294967295")
            }
            return .appendLimit(n)
        case "UIDVALIDITY", "UIDNEXT":
            guard words.count == 1, let n = Self.number(words[0]), n > 0 else {
                throw IMAPProtocolError("\(name) without a number from 1 to 4294967295")
            }
            return name == "UIDNEXT" ? .uidNext(n) : .uidValidity(n)
        case "TRYCREATE": return .tryCreate
        case "OVERQUOTA": return .overQuota
        case "LIMIT": return .limit
        case "AUTHENTICATIONFAILED": return .authenticationFailed
        case "AUTHORIZATIONFAILED": return .authorizationFailed
        case "EXPIRED": return .expired
        case "UNAVAILABLE": return .unavailable
        case "SERVERBUG": return .serverBug
        case "INUSE": return .inUse
        case "NONEXISTENT": return .nonExistent
        case "ALREADYEXISTS": return .alreadyExists
        case "CANNOT": return .cannot
        default: return .other(Self.text(ArraySlice(Array(name.utf8))), Self.text(rest))
        }
    }

    // MARK: - Characters

    /// RFC 3501 `ATOM-CHAR`: any CHAR except `(){ %*"\]` and controls.
    static func isAtomChar(_ c: UInt8) -> Bool {
        guard c > 0x20 && c < 0x7F else { return false }
        switch c {
        case UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "{"), UInt8(ascii: "%"), UInt8(ascii: "*"),
            UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "]"):
            return false
        default: return true
        }
    }

    /// RFC 3501 `tag`: `ASTRING-CHAR` (an atom char, or `]`) except `+`.
    static func isTagChar(_ c: UInt8) -> Bool {
        (Self.isAtomChar(c) || c == UInt8(ascii: "]")) && c != UInt8(ascii: "+")
    }

    static func words(_ bytes: ArraySlice<UInt8>) -> [String] {
        bytes.split(separator: 32).map { Self.text($0) }
    }

    /// Text as UTF-8 (invalid sequences replaced), control characters removed: a server's words go into logs and
    /// `status`, never raw.
    static func text(_ bytes: ArraySlice<UInt8>) -> String {
        let string = String(decoding: bytes, as: UTF8.self)
        guard string.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else { return string }
        return String(String.UnicodeScalarView(string.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F }))
    }

    static func excerpt(_ bytes: [UInt8]) -> String {
        let t = Self.text(ArraySlice(bytes.prefix(60)))
        return "\"\(t)\(bytes.count > 60 ? "..." : "")\""
    }
}

/// A read position in one line.
struct Cursor {
    let bytes: [UInt8]
    var index = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var atEnd: Bool { self.index >= self.bytes.count }
    var peek: UInt8? { self.atEnd ? nil : self.bytes[self.index] }
    var rest: ArraySlice<UInt8> { self.bytes[min(self.index, self.bytes.count)...] }

    mutating func take(_ c: UInt8) -> Bool {
        guard self.peek == c else { return false }
        self.index += 1
        return true
    }

    /// The longest run of bytes for which `accept` holds, as text.
    mutating func atom(_ accept: (UInt8) -> Bool) -> String {
        let start = self.index
        while let c = self.peek, accept(c) { self.index += 1 }
        return String(decoding: self.bytes[start..<self.index], as: UTF8.self)
    }

    mutating func upTo(_ c: UInt8) -> ArraySlice<UInt8> {
        let start = self.index
        while let b = self.peek, b != c { self.index += 1 }
        return self.bytes[start..<self.index]
    }
}
