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

struct Parser {
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
            if self.peek(1) == quote, self.peek(2) == quote { return .string(try self.multilineString(quote)) }
            return .string(try self.basicString())
        case apostrophe:
            if self.peek(1) == apostrophe, self.peek(2) == apostrophe {
                return .string(try self.multilineString(apostrophe))
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
}
