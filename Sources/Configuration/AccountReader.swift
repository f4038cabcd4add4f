import Foundation
import SystemSupport
import TOML

/// Reads one `[[account]]`'s values: a key set in the account wins over `[defaults]`, and an error points at
/// wherever the value came from (file, line, key).
struct AccountReader {
    let table: TOMLTable
    let defaults: [String: TOMLValue]
    /// Which `[[account]]` of the file (0-based).
    let number: Int
    let context: Context

    init(table: TOMLTable, defaults: [String: TOMLValue], number: Int, context: Context) {
        self.table = table
        self.defaults = defaults
        self.number = number
        self.context = context
    }

    func value(_ key: String) -> (TOMLValue, Section)? {
        if let v = self.table[key] { return (v, .account(self.number)) }
        if let v = self.defaults[key] { return (v, .defaults) }
        return nil
    }

    /// An error about `key`, at the line that set it (or the `[[account]]` header when nothing did, or `at`).
    func error(_ key: String, _ message: String, at section: Section? = nil) -> ConfigurationError {
        self.context.error(section ?? self.value(key)?.1 ?? .account(self.number), key: key, message)
    }

    func required<T>(_ key: String, _ v: T?) throws -> T {
        guard let v else { throw self.context.error(.account(self.number), key: key, "is required but missing") }
        return v
    }

    func string(_ key: String) throws -> String? {
        guard let (v, _) = self.value(key) else { return nil }
        guard let str = v.string else { throw self.error(key, "must be a string, not \(v.typeName)") }
        return str
    }

    /// A path: `~` expanded, a relative one taken as relative to the config file's directory.
    func path(_ key: String) throws -> String? { try self.string(key).map(self.context.resolve) }

    func bool(_ key: String) throws -> Bool? {
        guard let (v, _) = self.value(key) else { return nil }
        guard let b = v.bool else { throw self.error(key, "must be true or false, not \(v.typeName)") }
        return b
    }

    func integer(_ key: String) throws -> Int? {
        guard let (v, _) = self.value(key) else { return nil }
        guard let n = v.int else { throw self.error(key, "must be an integer, not \(v.typeName)") }
        guard n >= 0 else { throw self.error(key, "must not be negative") }
        return n
    }

    func duration(_ key: String) throws -> Int? {
        guard let (v, s) = self.value(key) else { return nil }
        return try self.context.duration(v, section: s, key: key)
    }

    func size(_ key: String) throws -> Int? {
        guard let (v, s) = self.value(key) else { return nil }
        return try self.context.size(v, section: s, key: key)
    }

    func choice<E: RawRepresentable & CaseIterable>(_ key: String, _: E.Type) throws -> E? where E.RawValue == String {
        guard let raw = try self.string(key) else { return nil }
        guard let e = E(rawValue: raw) else {
            let allowed = E.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
            throw self.error(key, "must be one of \(allowed), not \(raw.debugDescription)")
        }
        return e
    }

    /// A secret given by at most one of `keys`: `[x]` (inline), `[x]_command` or `[x]_file`, in that order.
    func secret(_ keys: [String]) throws -> SecretSource? {
        let given = keys.filter { self.value($0) != nil }
        if given.count > 1 {
            throw self.error(given[1], "give only one of \(keys.joined(separator: ", "))", at: .account(self.number))
        }
        guard let key = given.first, let text = try self.string(key) else { return nil }
        if key.hasSuffix("_command") {
            if text.trimmingCharacters(in: .whitespaces).isEmpty { throw self.error(key, "must not be empty") }
            return .command(text)
        }
        if key.hasSuffix("_file") { return .file(self.context.resolve(text)) }
        return .literal(text)
    }
}
