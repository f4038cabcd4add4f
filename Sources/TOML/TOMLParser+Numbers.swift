// Integers, floats, dates and times (TOML 1.0 "Integer", "Float", "Offset Date-Time" ...).

extension Parser {
    // MARK: Numbers, dates and times

    mutating func numberOrDate() throws(TOMLSyntaxError) -> TOMLValue {
        let start = self.i
        func isTokenByte(_ b: UInt8) -> Bool {
            isBareKeyByte(b) || b == UInt8(ascii: "+") || b == UInt8(ascii: ".") || b == UInt8(ascii: ":")
        }
        while let b = self.peek, isTokenByte(b) { self.i += 1 }
        // A date and a time may be separated by a space: `1979-05-27 07:32:00`.
        if self.i - start == 10, self.peek == space, let h1 = self.peek(1), let h2 = self.peek(2),
            isDigit(h1), isDigit(h2), self.peek(3) == UInt8(ascii: ":"),
            DateTimeGrammar.isDate(self.bytes[start..<self.i])
        {
            self.i += 1
            while let b = self.peek, isTokenByte(b) { self.i += 1 }
        }
        let token = self.bytes[start..<self.i]
        if let value = NumberGrammar.value(token) { return value }
        if DateTimeGrammar.isDateTime(token) { return .dateTime(String(decoding: token, as: UTF8.self)) }
        if NumberGrammar.isIntegerShaped(token) {
            throw self.error("an integer out of range (-2^63 to 2^63-1)", at: start)
        }
        throw self.error("'\(String(decoding: token, as: UTF8.self))' is not a number, date or time", at: start)
    }
}

/// TOML integers and floats.
enum NumberGrammar {
    static func value(_ token: ArraySlice<UInt8>) -> TOMLValue? {
        guard let first = token.first else { return nil }
        var body = token
        var sign: UInt8? = nil
        if first == UInt8(ascii: "+") || first == UInt8(ascii: "-") {
            sign = first
            body = token.dropFirst()
        }
        let text = String(decoding: body, as: UTF8.self)
        switch text {
        case "inf": return .float(sign == UInt8(ascii: "-") ? -.infinity : .infinity)
        case "nan": return .float(.nan)
        default: break
        }
        if body.count > 2, body.first == UInt8(ascii: "0"), sign == nil {
            if let radix = Self.radix(body[body.startIndex + 1]) {
                let digits = body.dropFirst(2)
                guard let cleaned = Self.digits(digits, allowed: { Self.isRadixDigit($0, radix: radix) }) else {
                    return nil
                }
                guard let n = Int64(cleaned, radix: radix) else { return nil }
                return .integer(n)
            }
        }
        // Decimal integer: no leading zero (but "0" itself).
        if body.allSatisfy({ isDigit($0) || $0 == UInt8(ascii: "_") }) {
            guard let cleaned = Self.digits(body, allowed: isDigit), !(cleaned.count > 1 && cleaned.hasPrefix("0"))
            else {
                return nil
            }
            guard let n = Int64((sign == UInt8(ascii: "-") ? "-" : "") + cleaned) else { return nil }
            return .integer(n)
        }
        return Self.float(body, negative: sign == UInt8(ascii: "-"))
    }

    /// Digits with single underscores between them (none first or last), underscores removed; nil if malformed.
    static func digits(_ s: ArraySlice<UInt8>, allowed: (UInt8) -> Bool) -> String? {
        guard let f = s.first, let l = s.last, allowed(f), allowed(l) else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(s.count)
        var previousUnderscore = false
        for b in s {
            if b == UInt8(ascii: "_") {
                if previousUnderscore { return nil }
                previousUnderscore = true
                continue
            }
            guard allowed(b) else { return nil }
            previousUnderscore = false
            out.append(b)
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func isRadixDigit(_ b: UInt8, radix: Int) -> Bool {
        switch radix {
        case 16: return isHexDigit(b)
        case 8: return b >= 0x30 && b <= 0x37
        default: return b == 0x30 || b == 0x31
        }
    }

    /// `1.5`, `1e6`, `6.626e-34`: an integer part (no leading zero), then a fraction, an exponent or both.
    static func float(_ body: ArraySlice<UInt8>, negative: Bool) -> TOMLValue? {
        var intPart = body
        var fraction: ArraySlice<UInt8>? = nil
        var exponent: ArraySlice<UInt8>? = nil
        if let e = body.firstIndex(where: { $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }) {
            exponent = body[(e + 1)...]
            intPart = body[..<e]
        }
        if let d = intPart.firstIndex(of: UInt8(ascii: ".")) {
            fraction = intPart[(d + 1)...]
            intPart = intPart[..<d]
        }
        guard fraction != nil || exponent != nil else { return nil }
        guard let whole = Self.digits(intPart, allowed: isDigit), !(whole.count > 1 && whole.hasPrefix("0")) else {
            return nil
        }
        var text = (negative ? "-" : "") + whole
        if let fraction {
            guard let f = Self.digits(fraction, allowed: isDigit) else { return nil }
            text += "." + f
        }
        if var exponent {
            var expSign = ""
            if let s = exponent.first, s == UInt8(ascii: "+") || s == UInt8(ascii: "-") {
                expSign = s == UInt8(ascii: "-") ? "-" : "+"
                exponent = exponent.dropFirst()
            }
            guard let e = Self.digits(exponent, allowed: isDigit) else { return nil }
            text += "e" + expSign + e
        }
        guard let d = Double(text) else { return nil }
        return .float(d)
    }

    /// Shaped like a decimal integer (so a failure is its range, not its form).
    /// The radix a prefix's second byte names: 0x, 0o, 0b.
    static func radix(_ b: UInt8) -> Int? {
        switch b {
        case UInt8(ascii: "x"): return 16
        case UInt8(ascii: "o"): return 8
        case UInt8(ascii: "b"): return 2
        default: return nil
        }
    }

    static func isIntegerShaped(_ token: ArraySlice<UInt8>) -> Bool {
        // 0x, 0o, 0b: well-formed digits of the radix (no sign).
        if token.count > 2, token.first == UInt8(ascii: "0") {
            if let radix = Self.radix(token[token.startIndex + 1]) {
                return Self.digits(token.dropFirst(2), allowed: { Self.isRadixDigit($0, radix: radix) }) != nil
            }
        }
        var body = token
        if let f = body.first, f == UInt8(ascii: "+") || f == UInt8(ascii: "-") { body = body.dropFirst() }
        return !body.isEmpty && body.allSatisfy { isDigit($0) || $0 == UInt8(ascii: "_") }
            && Self.digits(body, allowed: isDigit).map { !($0.count > 1 && $0.hasPrefix("0")) } == true
    }
}

/// RFC 3339 dates and times as TOML 1.0 takes them: offset or local date-time, local date, local time.
enum DateTimeGrammar {
    static func isDateTime(_ token: ArraySlice<UInt8>) -> Bool {
        let t = Array(token)
        if t.count >= 8, t[2] == UInt8(ascii: ":") { return isTime(t[...]) }
        if t.count == 10 { return isDate(token) }
        guard t.count > 11, isDate(token.prefix(10)) else { return false }
        let separator = t[10]
        guard separator == UInt8(ascii: "T") || separator == UInt8(ascii: "t") || separator == space else {
            return false
        }
        var rest = t[11...]
        // An offset: Z, or ±HH:MM.
        if let last = rest.last, last == UInt8(ascii: "Z") || last == UInt8(ascii: "z") {
            rest = rest.dropLast()
        } else if rest.count > 6 {
            let offset = rest.suffix(6)
            let o = Array(offset)
            if o[0] == UInt8(ascii: "+") || o[0] == UInt8(ascii: "-") {
                guard let hh = number(o[1...2]), let mm = number(o[4...5]), o[3] == UInt8(ascii: ":"), hh < 24, mm < 60
                else { return false }
                rest = rest.dropLast(6)
            }
        }
        return isTime(rest)
    }

    /// `YYYY-MM-DD`, a real day of the calendar.
    static func isDate(_ token: ArraySlice<UInt8>) -> Bool {
        let t = Array(token)
        guard t.count == 10, t[4] == UInt8(ascii: "-"), t[7] == UInt8(ascii: "-"),
            let year = number(t[0...3]), let month = number(t[5...6]), let day = number(t[8...9])
        else { return false }
        guard (1...12).contains(month), day >= 1 else { return false }
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        return day <= days[month - 1]
    }

    /// `HH:MM:SS` with an optional fraction of a second.
    static func isTime(_ t: ArraySlice<UInt8>) -> Bool {
        let a = Array(t)
        guard a.count >= 8, a[2] == UInt8(ascii: ":"), a[5] == UInt8(ascii: ":"),
            let h = number(a[0...1]), let m = number(a[3...4]), let s = number(a[6...7]),
            h < 24, m < 60, s <= 60
        else { return false }
        if a.count == 8 { return true }
        return a[8] == dot && a.count > 9 && a[9...].allSatisfy(isDigit)
    }

    /// The value of a run of ASCII digits, or nil if any byte is not one.
    static func number(_ digits: ArraySlice<UInt8>) -> Int? {
        guard !digits.isEmpty, digits.allSatisfy(isDigit) else { return nil }
        return digits.reduce(0) { $0 * 10 + Int($1 - 0x30) }
    }
}
