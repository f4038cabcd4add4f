#if canImport(Glibc)
    import Glibc
#endif
/// SMTP (RFC 5321) and LMTP (RFC 2033) client commands.
public enum SMTPCommand: Hashable, Sendable {
    case ehlo(String)
    case helo(String)
    case lhlo(String)
    /// `MAIL FROM:<address> params` — an empty address is the null sender `<>`.
    case mailFrom(String, parameters: [String])
    case rcptTo(String)
    case data
    case rset
    case noop
    case quit
    case startTLS

    public struct EncodingError: Error, Hashable, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { self.message }
    }

    /// The command line with CRLF. Addresses may not contain CR, LF, NUL, `<`, `>` or spaces (no injection).
    public func encoded() throws -> [UInt8] {
        func checkAddress(_ a: String) throws {
            if a.unicodeScalars.contains(where: {
                $0 == "\r" || $0 == "\n" || $0 == "\0" || $0 == "<" || $0 == ">" || $0 == " "
            }) {
                throw EncodingError(message: "address \(a.debugDescription) contains characters SMTP cannot carry")
            }
        }
        func checkWord(_ a: String) throws {
            if a.isEmpty || a.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7F }) {
                throw EncodingError(message: "invalid SMTP argument \(a.debugDescription)")
            }
        }
        let line: String
        switch self {
        case .ehlo(let d):
            try checkWord(d)
            line = "EHLO \(d)"
        case .helo(let d):
            try checkWord(d)
            line = "HELO \(d)"
        case .lhlo(let d):
            try checkWord(d)
            line = "LHLO \(d)"
        case .mailFrom(let a, let params):
            try checkAddress(a)
            for p in params { try checkWord(p) }
            line = "MAIL FROM:<\(a)>" + params.map { " " + $0 }.joined()
        case .rcptTo(let a):
            try checkAddress(a)
            line = "RCPT TO:<\(a)>"
        case .data: line = "DATA"
        case .rset: line = "RSET"
        case .noop: line = "NOOP"
        case .quit: line = "QUIT"
        case .startTLS: line = "STARTTLS"
        }
        return Array(line.utf8) + [13, 10]
    }
}

/// Turns the spooled message (LF line ends) into the DATA stream: CRLF line ends (a bare LF or bare CR becomes
/// CRLF, so MTAs that reject bare newlines accept it), dot-stuffed (RFC 5321 §4.5.2), ending with `CRLF.CRLF`.
/// Streaming: feed chunks, then call ``finish()``.
public struct DataEncoder: Sendable {
    private var atLineStart = true
    private var pendingCR = false

    public init() {}

    public mutating func encode(_ input: some Collection<UInt8>, into out: inout [UInt8]) {
        if let done: Void = input.withContiguousStorageIfAvailable({
            self.encode(UnsafeRawBufferPointer($0), into: &out)
        }) {
            return done
        }
        let copy = Array(input)
        copy.withUnsafeBytes { self.encode($0, into: &out) }
    }

    /// Encodes contiguous bytes a line at a time: `memchr` finds each LF, whole lines are copied at once, and only a
    /// line holding a CR (rare in a spool, whose line ends are LF) goes byte by byte.
    public mutating func encode(_ input: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        guard let base = input.baseAddress, !input.isEmpty else { return }
        let n = input.count
        out.reserveCapacity(out.count + n + n / 16 + 8)
        var i = 0
        while i < n {
            if self.pendingCR {
                self.pendingCR = false
                out.append(13)
                out.append(10)
                self.atLineStart = true
                if input[i] == 10 {
                    i += 1
                    continue
                }
            }
            let end: Int
            let hasLF: Bool
            if let p = memchr(base + i, 10, n - i) {
                end = base.distance(to: UnsafeRawPointer(p))
                hasLF = true
            } else {
                end = n
                hasLF = false
            }
            let segment = UnsafeRawBufferPointer(start: base + i, count: end - i)
            if !segment.isEmpty, memchr(base + i, 13, end - i) != nil {
                self.encodeBytes(segment, into: &out)
            } else if !segment.isEmpty {
                if self.atLineStart && segment[0] == UInt8(ascii: ".") { out.append(UInt8(ascii: ".")) }
                out.append(contentsOf: segment)
                self.atLineStart = false
            }
            if hasLF {
                if self.pendingCR {
                    // CR LF in the spool: one line end.
                    self.pendingCR = false
                }
                out.append(13)
                out.append(10)
                self.atLineStart = true
                i = end + 1
            } else {
                i = end
            }
        }
    }

    /// The byte-by-byte path, for a segment (no LF) that holds a CR.
    private mutating func encodeBytes(_ input: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        for b in input {
            if self.pendingCR {
                self.pendingCR = false
                out.append(13)
                out.append(10)
                self.atLineStart = true
            }
            if b == 13 {
                self.pendingCR = true
            } else {
                if self.atLineStart && b == UInt8(ascii: ".") { out.append(UInt8(ascii: ".")) }
                out.append(b)
                self.atLineStart = false
            }
        }
    }

    /// The end of the message: a final line end if needed, then the terminating `.CRLF`.
    public mutating func finish(into out: inout [UInt8]) {
        if self.pendingCR {
            self.pendingCR = false
            out += [13, 10]
            self.atLineStart = true
        }
        if !self.atLineStart { out += [13, 10] }
        out += [UInt8(ascii: "."), 13, 10]
        self.atLineStart = true
    }
}
