// Strings: basic and literal, one-line and multi-line (TOML 1.0 "String").

extension Parser {
    // MARK: Strings

    /// `"…"` with escapes, on one line.
    mutating func basicString() throws(TOMLSyntaxError) -> String {
        self.i += 1
        var out: [UInt8] = []
        while true {
            guard let b = self.peek else { throw self.error("a string not closed before the end of the file") }
            switch b {
            case quote:
                self.i += 1
                return String(decoding: out, as: UTF8.self)
            case backslash:
                try self.escape(into: &out)
            case lf, cr:
                throw self.error("a string not closed on its line (use \"\"\" for a multi-line string)")
            default:
                if isForbiddenControl(b) { throw self.error("a control character in a string (write it as an escape)") }
                out.append(b)
                self.i += 1
            }
        }
    }

    /// `"""…"""` (`delimiter` a quote: escapes, and a backslash at the end of a line joins it to the next
    /// non-blank character) or `'''…'''` (an apostrophe: as written). Line ends are kept; a newline right after the
    /// opening quotes is dropped.
    mutating func multilineString(_ delimiter: UInt8) throws(TOMLSyntaxError) -> String {
        self.i += 3
        _ = try self.skipNewline()
        var out: [UInt8] = []
        while true {
            guard let b = self.peek else {
                throw self.error("a multi-line string not closed before the end of the file")
            }
            switch b {
            case delimiter:
                if let closing = self.closingQuotes(delimiter) {
                    out.append(contentsOf: repeatElement(delimiter, count: closing - 3))
                    self.i += closing
                    return String(decoding: out, as: UTF8.self)
                }
                out.append(delimiter)
                self.i += 1
            case backslash where delimiter == quote:
                // A line-ending backslash: blanks, then a line end, then every blank and line end after it.
                var j = self.i + 1
                while j < self.bytes.count, self.bytes[j] == space || self.bytes[j] == tab { j += 1 }
                if j < self.bytes.count, self.bytes[j] == lf || self.bytes[j] == cr {
                    self.i = j
                    while true {
                        self.skipBlanks()
                        if try !self.skipNewline() { break }
                    }
                } else {
                    try self.escape(into: &out)
                }
            case lf:
                out.append(lf)
                self.i += 1
            case cr:
                guard self.peek(1) == lf else { throw self.error("a carriage return not followed by a line feed") }
                out.append(contentsOf: [cr, lf])
                self.i += 2
            default:
                if isForbiddenControl(b) {
                    throw self.error(
                        delimiter == quote
                            ? "a control character in a string (write it as an escape)"
                            : "a control character in a string")
                }
                out.append(b)
                self.i += 1
            }
        }
    }

    /// At a quote of a multi-line string: how many quotes close it (3 to 5: up to two belong to the string), or
    /// nil if fewer than three are here.
    func closingQuotes(_ q: UInt8) -> Int? {
        var n = 0
        while self.i + n < self.bytes.count, self.bytes[self.i + n] == q { n += 1 }
        guard n >= 3 else { return nil }
        return min(n, 5)
    }

    mutating func escape(into out: inout [UInt8]) throws(TOMLSyntaxError) {
        let start = self.i
        self.i += 1  // backslash
        guard let e = self.peek else { throw self.error("a string not closed before the end of the file") }
        self.i += 1
        switch e {
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "t"): out.append(tab)
        case UInt8(ascii: "n"): out.append(lf)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "r"): out.append(cr)
        case quote: out.append(quote)
        case backslash: out.append(backslash)
        case UInt8(ascii: "u"), UInt8(ascii: "U"):
            let count = e == UInt8(ascii: "u") ? 4 : 8
            var code: UInt32 = 0
            for _ in 0..<count {
                guard let h = self.peek, isHexDigit(h), let d = UInt32(String(UnicodeScalar(h)), radix: 16) else {
                    throw self.error("\\\(String(UnicodeScalar(e))) needs \(count) hexadecimal digits", at: start)
                }
                code = code << 4 | d
                self.i += 1
            }
            guard let scalar = Unicode.Scalar(code) else {
                throw self.error("\\\(String(UnicodeScalar(e))) names no Unicode scalar value", at: start)
            }
            out.append(contentsOf: String(Character(scalar)).utf8)
        default:
            throw self.error(
                "an unknown escape in a string (\\b \\t \\n \\f \\r \\\" \\\\ \\uXXXX \\UXXXXXXXX)", at: start)
        }
    }

    /// `'…'`: as written, on one line.
    mutating func literalString() throws(TOMLSyntaxError) -> String {
        self.i += 1
        let start = self.i
        while true {
            guard let b = self.peek else { throw self.error("a string not closed before the end of the file") }
            if b == apostrophe {
                let s = String(decoding: self.bytes[start..<self.i], as: UTF8.self)
                self.i += 1
                return s
            }
            if b == lf || b == cr {
                throw self.error("a string not closed on its line (use ''' for a multi-line string)")
            }
            if isForbiddenControl(b) { throw self.error("a control character in a string") }
            self.i += 1
        }
    }
}
