/// A TOML 1.0 value (toml.io/en/v1.0.0).
public enum TOMLValue: Equatable, Sendable {
    case string(String)
    case integer(Int64)
    case float(Double)
    case boolean(Bool)
    /// An offset date-time, local date-time, local date or local time, as written (checked against the grammar and
    /// the calendar; popfetch reads none, so it is not converted).
    case dateTime(String)
    case array([TOMLValue])
    case table(TOMLTable)

    public var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// An integer that fits `Int`.
    public var int: Int? {
        if case .integer(let n) = self { return Int(exactly: n) }
        return nil
    }

    public var bool: Bool? {
        if case .boolean(let b) = self { return b }
        return nil
    }

    public var array: [TOMLValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var table: TOMLTable? {
        if case .table(let t) = self { return t }
        return nil
    }

    /// The type's name in TOML's words, for errors ("must be a string, not integer").
    public var typeName: String {
        switch self {
        case .string: return "string"
        case .integer: return "integer"
        case .float: return "float"
        case .boolean: return "boolean"
        case .dateTime: return "date-time"
        case .array: return "array"
        case .table: return "table"
        }
    }
}

/// A TOML table: its keys in the order the file defined them, each with its value and the line that set it.
public struct TOMLTable: Equatable, Sendable {
    public struct Entry: Equatable, Sendable {
        public var value: TOMLValue
        /// The line (1-based) of the key that set it, or of the header that defined the table or array of tables.
        public var line: Int
    }

    public private(set) var keys: [String] = []
    private var entries: [String: Entry] = [:]
    /// The line of the `[table]` or `[[table]]` header that defined this table; nil for the root, inline tables and
    /// tables made by dotted keys.
    public var line: Int?

    public init(line: Int? = nil) { self.line = line }

    public var isEmpty: Bool { self.keys.isEmpty }

    public subscript(key: String) -> TOMLValue? { self.entries[key]?.value }

    public func entry(_ key: String) -> Entry? { self.entries[key] }

    /// Adds `key`, which must be new (the parser has already refused duplicates).
    mutating func append(_ key: String, _ entry: Entry) {
        if self.entries.updateValue(entry, forKey: key) == nil { self.keys.append(key) }
    }
}
