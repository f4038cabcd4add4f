/// A configuration problem, pointing at the file, line and key. Never contains a secret value.
public struct ConfigurationError: Error, Hashable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int?
    public var key: String?
    public var message: String
    /// The other errors found in the same file, after this one (a configuration is checked through, not stopped at
    /// its first error): each account's unknown keys and wrong values, and the following accounts'.
    public var more: [ConfigurationError] = []

    public init(file: String, line: Int?, key: String?, message: String) {
        self.file = file
        self.line = line
        self.key = key
        self.message = message
    }

    public var description: String {
        var s = self.file
        if let line { s += ":\(line)" }
        s += ": "
        if let key { s += "\(key): " }
        return s + self.message
    }
}
