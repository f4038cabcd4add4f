import Foundation
import SystemSupport
import TOMLKit

#if canImport(Glibc)
    import Glibc
#endif

/// Where in the file a value came from: root, `[defaults]`, or the i-th `[[account]]`.
enum Section: Hashable {
    case root
    case defaults
    case account(Int)
}

/// Lines of section headers and `key =` assignments, found by scanning the text.
struct LineIndex {
    private var keyLines: [Section: [String: Int]] = [:]
    private var accountLines: [Int] = []
    private var defaultsLine: Int?
    /// The first table header whose name TOMLKit cannot be given (see ``isParsableHeader(_:)``).
    private(set) var unparsableHeaderLine: Int?

    init(text: String) {
        var section = Section.root
        var lineNumber = 0
        var inMultilineString = false
        // Lines end at LF, as TOML's do: split the bytes, since CRLF is one Character and a String split at "\n"
        // would not end a line there.
        for rawLine in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            let line = String(decoding: rawLine, as: UTF8.self).trimmingCharacters(in: .whitespaces)
            let tripleQuotes =
                line.components(separatedBy: "\"\"\"").count - 1
                + line.components(separatedBy: "'''").count - 1
            if inMultilineString {
                if tripleQuotes % 2 == 1 { inMultilineString = false }
                continue
            }
            if line.unicodeScalars.first == "[", self.unparsableHeaderLine == nil, !Self.isParsableHeader(line) {
                self.unparsableHeaderLine = lineNumber
            }
            if line.hasPrefix("[[") {
                let name = line.dropFirst(2).prefix { $0 != "]" }.trimmingCharacters(in: .whitespaces)
                if name == "account" {
                    self.accountLines.append(lineNumber)
                    section = .account(self.accountLines.count - 1)
                } else {
                    section = .root
                }
                continue
            }
            if line.hasPrefix("[") {
                let name = line.dropFirst().prefix { $0 != "]" }.trimmingCharacters(in: .whitespaces)
                section = name == "defaults" ? .defaults : .root
                if name == "defaults" { self.defaultsLine = lineNumber }
                continue
            }
            if let eq = line.firstIndex(of: "="), !line.hasPrefix("#") {
                var key = line[..<eq].trimmingCharacters(in: .whitespaces)
                if key.count >= 2, key.first == "\"" || key.first == "'", key.last == key.first {
                    key = String(key.dropFirst().dropLast())
                }
                if self.keyLines[section, default: [:]][key] == nil {
                    self.keyLines[section, default: [:]][key] = lineNumber
                }
                if tripleQuotes % 2 == 1 { inMultilineString = true }
            }
        }
    }

    /// Whether toml++ (inside TOMLKit) can be given this table header: after `[` or `[[` and blanks it must find a
    /// bare-key character, a quote or `]`. On anything else (`[`, `[.a]`, `[=]`, `[[ [`) it fails an assertion and
    /// aborts the process instead of reporting a syntax error (toml++ 3.4.0, `parser::parse_key`). A nested array
    /// that starts a line of a multi-line array is refused too: no popfetch key takes one. Scalars, not Characters:
    /// `[` and a combining mark after it are one Character, but toml++ sees a `[`.
    static func isParsableHeader(_ line: String) -> Bool {
        let double = line.unicodeScalars.starts(with: "[[".unicodeScalars)
        let afterBrackets = line.unicodeScalars.dropFirst(double ? 2 : 1)
        let name = afterBrackets.drop { $0 == " " || $0 == "\t" }
        guard let first = name.first else { return false }
        if first == "[" {
            // `[ [`: toml++ reports it (brackets must be contiguous); `[[ [` reaches the assertion.
            return !double && name.startIndex != afterBrackets.startIndex
        }
        return first.isASCII
            && (first.properties.isAlphabetic || ("0"..."9").contains(first) || "_-\"']".unicodeScalars.contains(first))
    }

    func line(of key: String, in section: Section) -> Int? {
        if let l = self.keyLines[section]?[key] { return l }
        return self.sectionLine(section)
    }

    func sectionLine(_ section: Section) -> Int? {
        switch section {
        case .root: return nil
        case .defaults: return self.defaultsLine
        case .account(let i): return self.accountLine(i)
        }
    }

    func accountLine(_ i: Int) -> Int? { i < self.accountLines.count ? self.accountLines[i] : nil }
}

/// The file being read: its path and line index, for errors that name file, line and key.
struct Context {
    var path: String
    var index: LineIndex

    func error(_ section: Section, key: String, _ message: String) -> ConfigurationError {
        let prefix: String
        switch section {
        case .root: prefix = ""
        case .defaults: prefix = "defaults."
        case .account: prefix = ""
        }
        return ConfigurationError(
            file: self.path, line: self.index.line(of: key, in: section), key: prefix + key, message: message)
    }

    func positiveInt(_ v: any TOMLValueConvertible, section: Section, key: String) throws -> Int {
        guard v.type == .int, let n = v.int else { throw self.error(section, key: key, "must be an integer") }
        guard n > 0 else { throw self.error(section, key: key, "must be at least 1") }
        return n
    }

    func duration(_ v: any TOMLValueConvertible, section: Section, key: String) throws -> Int {
        if v.type == .int, let n = v.int {
            guard n >= 0 else { throw self.error(section, key: key, "must not be negative") }
            return n
        }
        guard let s = v.string, let d = Units.parseDuration(s) else {
            throw self.error(
                section, key: key, "must be a duration such as \"30s\", \"5m\", \"2h\", \"30d\" or integer seconds")
        }
        return d
    }

    func size(_ v: any TOMLValueConvertible, section: Section, key: String) throws -> Int {
        if v.type == .int, let n = v.int {
            guard n >= 0 else { throw self.error(section, key: key, "must not be negative") }
            return n
        }
        guard let s = v.string, let d = Units.parseSize(s) else {
            throw self.error(section, key: key, "must be a size such as \"50MB\", \"512KB\", \"1GB\" or integer bytes")
        }
        return d
    }
}
