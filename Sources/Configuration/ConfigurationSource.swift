import Foundation
import SystemSupport
import TOML

#if canImport(Glibc)
    import Glibc
#endif

/// Where in the file a value came from: root, `[defaults]`, or the i-th `[[account]]`.
enum Section: Hashable {
    case root
    case defaults
    case account(Int)
}

/// The line of every key and section of the file, as the TOML parser recorded them.
struct LineIndex {
    private var keyLines: [Section: [String: Int]] = [:]
    private var accountLines: [Int] = []
    private var defaultsLine: Int?

    init(table: TOMLTable) {
        self.keyLines[.root] = Self.lines(table)
        if let entry = table.entry("defaults") {
            self.defaultsLine = entry.value.table?.line ?? entry.line
            if let t = entry.value.table { self.keyLines[.defaults] = Self.lines(t) }
        }
        if let entry = table.entry("account"), let array = entry.value.array {
            for (i, item) in array.enumerated() {
                self.accountLines.append(item.table?.line ?? entry.line)
                if let t = item.table { self.keyLines[.account(i)] = Self.lines(t) }
            }
        }
    }

    private static func lines(_ table: TOMLTable) -> [String: Int] {
        var lines: [String: Int] = [:]
        for key in table.keys { lines[key] = table.entry(key)?.line }
        return lines
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

    /// A path from the file: `~` expanded; a relative one is relative to the file's directory.
    func resolve(_ path: String) -> String { Paths.resolve(path, relativeTo: Paths.directory(of: self.path)) }

    func positiveInt(_ v: TOMLValue, section: Section, key: String) throws -> Int {
        guard let n = v.int else { throw self.error(section, key: key, "must be an integer") }
        guard n > 0 else { throw self.error(section, key: key, "must be at least 1") }
        return n
    }

    func duration(_ v: TOMLValue, section: Section, key: String) throws -> Int {
        if let n = v.int {
            guard n >= 0 else { throw self.error(section, key: key, "must not be negative") }
            return n
        }
        guard let s = v.string, let d = Units.parseDuration(s) else {
            throw self.error(
                section, key: key, "must be a duration such as \"30s\", \"5m\", \"2h\", \"30d\" or integer seconds")
        }
        return d
    }

    func size(_ v: TOMLValue, section: Section, key: String) throws -> Int {
        if let n = v.int {
            guard n >= 0 else { throw self.error(section, key: key, "must not be negative") }
            return n
        }
        guard let s = v.string, let d = Units.parseSize(s) else {
            throw self.error(section, key: key, "must be a size such as \"50MB\", \"512KB\", \"1GB\" or integer bytes")
        }
        return d
    }
}
