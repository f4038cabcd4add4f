/// A TOML syntax or structure error, at a line and column (both 1-based; the column counts bytes).
public struct TOMLSyntaxError: Error, Equatable, Sendable, CustomStringConvertible {
    public var line: Int
    public var column: Int
    public var message: String

    public var description: String { "\(self.message) (line \(self.line), column \(self.column))" }
}

/// A TOML 1.0 parser (toml.io/en/v1.0.0): text in, a ``TOMLTable`` out, or a ``TOMLSyntaxError`` naming the line.
///
/// It never traps on any input: every byte is checked against the grammar, integers are range-checked, and nesting
/// (arrays, inline tables, dotted keys and headers together) is bounded by ``maxDepth``. One pass, linear in the
/// text; the line of every key is recorded for errors about its value.
public enum TOMLParser {
    /// Deepest nesting of tables and arrays accepted; deeper is an error, not a stack overflow. Deep enough for any
    /// config, and shallow enough that the deepest document parses on a 512 KB stack (macOS's for secondary threads
    /// and Swift concurrency's, where a SIGHUP reload parses) in a debug build: 100 nested inline tables needed more.
    public static let maxDepth = 32

    public static func parse(_ text: String) throws(TOMLSyntaxError) -> TOMLTable {
        var parser = Parser(bytes: Array(text.utf8))
        return try parser.document()
    }
}

/// A table while it is being built. A class: headers and dotted keys reach into tables defined before them.
private final class TableBuilder {
    enum Kind {
        /// Made on the way to a header's table (`a` of `[a.b]`): a later `[a]`, or dotted keys of its parent's
        /// section, may still define it.
        case implicit
        /// Defined by a `[header]` or `[[header]]` (or the root).
        case header
        /// Made by a dotted key (`a.b = 1` makes `a`): it may be extended by dotted keys of its own section only.
        case dotted
    }

    var kind: Kind
    var line: Int?
    var keys: [String] = []
    var nodes: [String: Node] = [:]
    /// Where it sits in the tree, for the depth limit.
    let depth: Int

    init(kind: Kind, line: Int?, depth: Int) {
        self.kind = kind
        self.line = line
        self.depth = depth
    }

    func insert(_ key: String, _ node: Node) {
        self.keys.append(key)
        self.nodes[key] = node
    }

    func freeze() -> TOMLTable {
        var table = TOMLTable(line: self.kind == .header ? self.line : nil)
        for key in self.keys {
            guard let node = self.nodes[key] else { continue }
            switch node {
            case .value(let v, let line):
                table.append(key, .init(value: v, line: line))
            case .table(let t, let line):
                table.append(key, .init(value: .table(t.freeze()), line: line))
            case .tables(let list, let line):
                table.append(key, .init(value: .array(list.items.map { .table($0.freeze()) }), line: line))
            }
        }
        return table
    }
}

/// The items of an array of tables (`[[a]]`), appended to by each header.
private final class TableList {
    var items: [TableBuilder] = []
}

private enum Node {
    /// A value set by `key = value` (arrays and inline tables included: they are closed once written).
    case value(TOMLValue, line: Int)
    case table(TableBuilder, line: Int)
    case tables(TableList, line: Int)
}

// ASCII bytes the grammar names.
private let tab: UInt8 = 0x09
private let lf: UInt8 = 0x0A
private let cr: UInt8 = 0x0D
private let space: UInt8 = 0x20
private let quote = UInt8(ascii: "\"")
private let apostrophe = UInt8(ascii: "'")
private let backslash = UInt8(ascii: "\\")
private let hash = UInt8(ascii: "#")
private let equals = UInt8(ascii: "=")
private let dot = UInt8(ascii: ".")
private let comma = UInt8(ascii: ",")
private let openBracket = UInt8(ascii: "[")
private let closeBracket = UInt8(ascii: "]")
private let openBrace = UInt8(ascii: "{")
private let closeBrace = UInt8(ascii: "}")

private func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
private func isHexDigit(_ b: UInt8) -> Bool {
    isDigit(b) || (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "f"))
        || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "F"))
}
private func isBareKeyByte(_ b: UInt8) -> Bool {
    isDigit(b) || (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z"))
        || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
        || b == UInt8(ascii: "_") || b == UInt8(ascii: "-")
}
/// A control character TOML allows in no string or comment (tab is allowed; line ends are handled apart).
private func isForbiddenControl(_ b: UInt8) -> Bool { (b < 0x20 && b != tab) || b == 0x7F }

private struct Parser {
    let bytes: [UInt8]
    var i = 0
    /// The line of `lineOffset`: lines are counted forward as the parse moves on (amortized linear).
    var lineOffset = 0
    var lineAtOffset = 1

    init(bytes: [UInt8]) {
        self.bytes = bytes
        // A UTF-8 byte order mark is not part of the document.
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { self.i = 3 }
    }

    // MARK: Positions and errors

    var atEnd: Bool { self.i >= self.bytes.count }
    var peek: UInt8? { self.i < self.bytes.count ? self.bytes[self.i] : nil }
    func peek(_ ahead: Int) -> UInt8? {
        let j = self.i + ahead
        return j < self.bytes.count ? self.bytes[j] : nil
    }

    mutating func line(at offset: Int) -> Int {
        if offset < self.lineOffset {
            self.lineOffset = 0
            self.lineAtOffset = 1
        }
        var j = self.lineOffset
        let end = min(offset, self.bytes.count)
        while j < end {
            if self.bytes[j] == lf { self.lineAtOffset += 1 }
            j += 1
        }
        self.lineOffset = end
        return self.lineAtOffset
    }

    mutating func error(_ message: String, at offset: Int? = nil) -> TOMLSyntaxError {
        let at = min(offset ?? self.i, self.bytes.count)
        let line = self.line(at: at)
        var start = at
        // Columns of the first line count from after a byte order mark.
        let first = self.bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0
        while start > first && self.bytes[start - 1] != lf { start -= 1 }
        return TOMLSyntaxError(line: line, column: at - start + 1, message: message)
    }

    /// What is at the cursor, for "expected …, saw …".
    var seen: String {
        guard let b = self.peek else { return "the end of the file" }
        switch b {
        case lf: return "the end of the line"
        case cr: return "a carriage return"
        case tab: return "a tab"
        case space: return "a space"
        case 0x21...0x7E: return "'\(String(UnicodeScalar(b)))'"
        default:
            if b < 0x20 || b == 0x7F { return "the control character 0x" + String(b, radix: 16, uppercase: true) }
            return "a non-ASCII character"
        }
    }

    // MARK: Whitespace, comments, line ends

    mutating func skipBlanks() {
        while let b = self.peek, b == space || b == tab { self.i += 1 }
    }

    /// A comment, if one starts here, up to (not including) its line end.
    mutating func skipComment() throws(TOMLSyntaxError) {
        guard self.peek == hash else { return }
        self.i += 1
        while let b = self.peek, b != lf {
            if b == cr, self.peek(1) == lf { return }
            if isForbiddenControl(b) { throw self.error("a control character in a comment") }
            self.i += 1
        }
    }

    /// A line end (LF or CR LF) if one is here.
    mutating func skipNewline() throws(TOMLSyntaxError) -> Bool {
        if self.peek == lf {
            self.i += 1
            return true
        }
        if self.peek == cr {
            guard self.peek(1) == lf else { throw self.error("a carriage return not followed by a line feed") }
            self.i += 2
            return true
        }
        return false
    }

    /// Blanks, comments and line ends, as between the values of an array.
    mutating func skipBlanksCommentsAndNewlines() throws(TOMLSyntaxError) {
        while true {
            self.skipBlanks()
            try self.skipComment()
            if try !self.skipNewline() { return }
        }
    }

    /// Blanks and a comment, then the end of the line or of the file.
    mutating func expectLineEnd(after what: String) throws(TOMLSyntaxError) {
        self.skipBlanks()
        try self.skipComment()
        if self.atEnd { return }
        if try !self.skipNewline() { throw self.error("expected the end of the line after \(what), saw \(self.seen)") }
    }

    // MARK: Document

    mutating func document() throws(TOMLSyntaxError) -> TOMLTable {
        let root = TableBuilder(kind: .header, line: nil, depth: 0)
        var current = root
        while true {
            try self.skipBlanksCommentsAndNewlines()
            guard let b = self.peek else { break }
            if b == openBracket {
                current = try self.header(root: root)
            } else {
                try self.keyValue(into: current)
                try self.expectLineEnd(after: "a value")
            }
        }
        return root.freeze()
    }

    /// `[a.b]` or `[[a.b]]`: the table that the keys after it go into.
    mutating func header(root: TableBuilder) throws(TOMLSyntaxError) -> TableBuilder {
        let start = self.i
        let line = self.line(at: start)
        let isArray = self.peek(1) == openBracket
        self.i += isArray ? 2 : 1
        self.skipBlanks()
        let keys = try self.key()
        self.skipBlanks()
        if isArray {
            guard self.peek == closeBracket, self.peek(1) == closeBracket else {
                throw self.error("expected ']]' to close the array-of-tables header, saw \(self.seen)")
            }
            self.i += 2
        } else {
            guard self.peek == closeBracket else {
                throw self.error("expected ']' to close the table header, saw \(self.seen)")
            }
            self.i += 1
        }
        try self.expectLineEnd(after: "a table header")

        var table = root
        for (n, key) in keys.dropLast().enumerated() {
            switch table.nodes[key] {
            case nil:
                let next = try self.makeTable(.implicit, line: line, under: table, at: start)
                table.insert(key, .table(next, line: line))
                table = next
            case .table(let next, _):
                table = next
            case .tables(let list, _):
                guard let last = list.items.last else {
                    throw self.error("'\(Self.path(keys, upTo: n))' is an empty array", at: start)
                }
                table = last
            case .value(let v, let l):
                throw self.error(
                    "'\(Self.path(keys, upTo: n))' is already a \(v.typeName) (line \(l)), not a table", at: start)
            }
        }
        let path = keys.joined(separator: ".")
        guard let last = keys.last else { throw self.error("a table header needs a name", at: start) }
        if isArray {
            switch table.nodes[last] {
            case nil:
                let list = TableList()
                table.insert(last, .tables(list, line: line))
                let item = try self.makeTable(.header, line: line, under: table, at: start)
                list.items.append(item)
                return item
            case .tables(let list, _):
                let item = try self.makeTable(.header, line: line, under: table, at: start)
                list.items.append(item)
                return item
            case .table(_, let l):
                throw self.error("'\(path)' is already a table (line \(l)), not an array of tables", at: start)
            case .value(let v, let l):
                throw self.error(
                    "'\(path)' is already a \(v.typeName) (line \(l)); [[\(path)]] cannot add to it", at: start)
            }
        }
        switch table.nodes[last] {
        case nil:
            let next = try self.makeTable(.header, line: line, under: table, at: start)
            table.insert(last, .table(next, line: line))
            return next
        case .table(let next, let l):
            guard next.kind == .implicit else {
                throw self.error("the table '\(path)' is defined twice (first on line \(l))", at: start)
            }
            next.kind = .header
            next.line = line
            return next
        case .tables(_, let l):
            throw self.error("'\(path)' is already an array of tables (line \(l))", at: start)
        case .value(let v, let l):
            throw self.error("'\(path)' is already a \(v.typeName) (line \(l)), not a table", at: start)
        }
    }

    /// The first `n + 1` parts of a dotted key, for an error (built only then: joining it for every part of every key
    /// would be quadratic in the key's length).
    static func path(_ keys: [String], upTo n: Int) -> String { keys.prefix(n + 1).joined(separator: ".") }

    mutating func makeTable(
        _ kind: TableBuilder.Kind, line: Int?, under parent: TableBuilder, at offset: Int
    ) throws(TOMLSyntaxError) -> TableBuilder {
        guard parent.depth < TOMLParser.maxDepth else {
            throw self.error("tables nested deeper than \(TOMLParser.maxDepth)", at: offset)
        }
        return TableBuilder(kind: kind, line: line, depth: parent.depth + 1)
    }

    /// `key = value` (the key may be dotted) into `table`, at `depth` for values nested in it.
    mutating func keyValue(into table: TableBuilder) throws(TOMLSyntaxError) {
        let start = self.i
        let line = self.line(at: start)
        let keys = try self.key()
        self.skipBlanks()
        guard self.peek == equals else { throw self.error("expected '=' after the key, saw \(self.seen)") }
        self.i += 1
        self.skipBlanks()
        var target = table
        for (n, key) in keys.dropLast().enumerated() {
            switch target.nodes[key] {
            case nil:
                let next = try self.makeTable(.dotted, line: nil, under: target, at: start)
                target.insert(key, .table(next, line: line))
                target = next
            case .table(let next, let l):
                switch next.kind {
                case .dotted: break
                case .implicit:
                    // Made on the way to a header's table (`[a.b.c]` then `[a]` and `b.d = 1`): not defined yet, so
                    // dotted keys may add to it, and then define it (a later `[a.b]` is a second definition).
                    next.kind = .dotted
                case .header:
                    throw self.error(
                        "the table '\(Self.path(keys, upTo: n))' was defined on line \(l); dotted keys cannot add to it",
                        at: start)
                }
                target = next
            case .tables(_, let l):
                throw self.error(
                    "'\(Self.path(keys, upTo: n))' is an array of tables (line \(l)); dotted keys cannot add to it",
                    at: start)
            case .value(let v, let l):
                throw self.error(
                    "'\(Self.path(keys, upTo: n))' is already a \(v.typeName) (line \(l)), not a table", at: start)
            }
        }
        guard let last = keys.last else { throw self.error("expected a key", at: start) }
        if target.nodes[last] != nil {
            let l: Int
            switch target.nodes[last] {
            case .value(_, let n), .table(_, let n), .tables(_, let n): l = n
            case nil: l = line
            }
            throw self.error("the key '\(keys.joined(separator: "."))' is set twice (first on line \(l))", at: start)
        }
        let value = try self.value(depth: target.depth + 1)
        target.insert(last, .value(value, line: line))
    }

    // MARK: Keys

    /// A key: simple keys joined by dots, blanks allowed around the dots.
    mutating func key() throws(TOMLSyntaxError) -> [String] {
        var parts = [try self.simpleKey()]
        while true {
            let save = self.i
            self.skipBlanks()
            guard self.peek == dot else {
                self.i = save
                return parts
            }
            self.i += 1
            self.skipBlanks()
            guard parts.count < TOMLParser.maxDepth else { throw self.error("a key with too many parts") }
            parts.append(try self.simpleKey())
        }
    }

    mutating func simpleKey() throws(TOMLSyntaxError) -> String {
        guard let b = self.peek else { throw self.error("expected a key, saw the end of the file") }
        if b == quote {
            if self.peek(1) == quote, self.peek(2) == quote {
                throw self.error("a multi-line string cannot be a key")
            }
            return try self.basicString()
        }
        if b == apostrophe {
            if self.peek(1) == apostrophe, self.peek(2) == apostrophe {
                throw self.error("a multi-line string cannot be a key")
            }
            return try self.literalString()
        }
        let start = self.i
        while let c = self.peek, isBareKeyByte(c) { self.i += 1 }
        guard self.i > start else { throw self.error("expected a key, saw \(self.seen)") }
        return String(decoding: self.bytes[start..<self.i], as: UTF8.self)
    }

    // MARK: Values

    mutating func value(depth: Int) throws(TOMLSyntaxError) -> TOMLValue {
        guard let b = self.peek else { throw self.error("expected a value, saw the end of the file") }
        switch b {
        case quote:
            if self.peek(1) == quote, self.peek(2) == quote { return .string(try self.multilineBasicString()) }
            return .string(try self.basicString())
        case apostrophe:
            if self.peek(1) == apostrophe, self.peek(2) == apostrophe {
                return .string(try self.multilineLiteralString())
            }
            return .string(try self.literalString())
        case openBracket:
            return try self.array(depth: depth)
        case openBrace:
            return try self.inlineTable(depth: depth)
        case UInt8(ascii: "t"):
            return try self.keyword("true", .boolean(true))
        case UInt8(ascii: "f"):
            return try self.keyword("false", .boolean(false))
        case UInt8(ascii: "i"), UInt8(ascii: "n"), UInt8(ascii: "+"), UInt8(ascii: "-"), 0x30...0x39:
            return try self.numberOrDate()
        default:
            throw self.error("expected a value, saw \(self.seen)")
        }
    }

    mutating func keyword(_ word: String, _ value: TOMLValue) throws(TOMLSyntaxError) -> TOMLValue {
        let count = word.utf8.count
        guard self.i + count <= self.bytes.count, self.bytes[self.i..<self.i + count].elementsEqual(word.utf8) else {
            throw self.error("expected a value, saw \(self.seen)")
        }
        self.i += count
        return value
    }

    mutating func array(depth: Int) throws(TOMLSyntaxError) -> TOMLValue {
        guard depth <= TOMLParser.maxDepth else { throw self.error("values nested deeper than \(TOMLParser.maxDepth)") }
        self.i += 1  // [
        var items: [TOMLValue] = []
        while true {
            try self.skipBlanksCommentsAndNewlines()
            if self.peek == closeBracket {
                self.i += 1
                return .array(items)
            }
            items.append(try self.value(depth: depth + 1))
            try self.skipBlanksCommentsAndNewlines()
            if self.peek == comma {
                self.i += 1
            } else if self.peek == closeBracket {
                self.i += 1
                return .array(items)
            } else {
                throw self.error("expected ',' or ']' in the array, saw \(self.seen)")
            }
        }
    }

    /// `{ a = 1, b.c = 2 }`: on one line, no trailing comma; closed once written.
    mutating func inlineTable(depth: Int) throws(TOMLSyntaxError) -> TOMLValue {
        guard depth <= TOMLParser.maxDepth else { throw self.error("values nested deeper than \(TOMLParser.maxDepth)") }
        self.i += 1  // {
        let table = TableBuilder(kind: .dotted, line: nil, depth: depth)
        self.skipBlanks()
        if self.peek == closeBrace {
            self.i += 1
            return .table(table.freeze())
        }
        while true {
            self.skipBlanks()
            try self.keyValue(into: table)
            self.skipBlanks()
            if self.peek == comma {
                self.i += 1
            } else if self.peek == closeBrace {
                self.i += 1
                return .table(table.freeze())
            } else {
                throw self.error("expected ',' or '}' in the inline table (which stays on one line), saw \(self.seen)")
            }
        }
    }

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

    /// `"""…"""`: escapes, line ends kept, a newline right after the opening quotes dropped, a backslash at the end of
    /// a line joining it to the next non-blank character.
    mutating func multilineBasicString() throws(TOMLSyntaxError) -> String {
        self.i += 3
        _ = try self.skipNewline()
        var out: [UInt8] = []
        while true {
            guard let b = self.peek else {
                throw self.error("a multi-line string not closed before the end of the file")
            }
            switch b {
            case quote:
                if let closing = self.closingQuotes(quote) {
                    out.append(contentsOf: repeatElement(quote, count: closing - 3))
                    self.i += closing
                    return String(decoding: out, as: UTF8.self)
                }
                out.append(quote)
                self.i += 1
            case backslash:
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
                if isForbiddenControl(b) { throw self.error("a control character in a string (write it as an escape)") }
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

    /// `'''…'''`: as written, line ends kept, a newline right after the opening quotes dropped.
    mutating func multilineLiteralString() throws(TOMLSyntaxError) -> String {
        self.i += 3
        _ = try self.skipNewline()
        var out: [UInt8] = []
        while true {
            guard let b = self.peek else {
                throw self.error("a multi-line string not closed before the end of the file")
            }
            switch b {
            case apostrophe:
                if let closing = self.closingQuotes(apostrophe) {
                    out.append(contentsOf: repeatElement(apostrophe, count: closing - 3))
                    self.i += closing
                    return String(decoding: out, as: UTF8.self)
                }
                out.append(apostrophe)
                self.i += 1
            case cr:
                guard self.peek(1) == lf else { throw self.error("a carriage return not followed by a line feed") }
                out.append(contentsOf: [cr, lf])
                self.i += 2
            default:
                if b != lf && isForbiddenControl(b) { throw self.error("a control character in a string") }
                out.append(b)
                self.i += 1
            }
        }
    }

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
private enum NumberGrammar {
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
            let radixByte = body[body.startIndex + 1]
            let radix: Int? =
                radixByte == UInt8(ascii: "x")
                ? 16 : radixByte == UInt8(ascii: "o") ? 8 : radixByte == UInt8(ascii: "b") ? 2 : nil
            if let radix {
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
    static func isIntegerShaped(_ token: ArraySlice<UInt8>) -> Bool {
        var body = token
        if let f = body.first, f == UInt8(ascii: "+") || f == UInt8(ascii: "-") { body = body.dropFirst() }
        return !body.isEmpty && body.allSatisfy { isDigit($0) || $0 == UInt8(ascii: "_") }
            && Self.digits(body, allowed: isDigit).map { !($0.count > 1 && $0.hasPrefix("0")) } == true
    }
}

/// RFC 3339 dates and times as TOML 1.0 takes them: offset or local date-time, local date, local time.
private enum DateTimeGrammar {
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
