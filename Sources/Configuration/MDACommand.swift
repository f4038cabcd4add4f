/// An MDA command line split like a shell would split it (quotes honoured), without any expansion.
///
/// `%T` (envelope recipient), `%F` (envelope sender) and `%U` (account user) are substituted inside single
/// arguments after splitting, so a substituted value can never become several arguments. `%F` and `%T` are also
/// sanitised (``sanitized(_:)``): the sender comes from the message, so anyone who sends mail chooses it, and a
/// command such as `sh -c 'procmail -f %F'` hands the argument to a shell. The raw values are in the MDA's
/// environment instead (`POPFETCH_SENDER`, `POPFETCH_RECIPIENT`), for `"$POPFETCH_SENDER"` in double quotes.
public struct MDACommand: Hashable, Sendable, CustomStringConvertible {
    public let raw: String
    public let arguments: [String]
    /// Whether the command runs once per recipient: whether the recipient shows in its expansion (a `%T` that
    /// ``expanded(recipient:sender:user:)`` substitutes; not `%%T`, a literal `%T`). Found once, when the command
    /// is read: it is asked for every message.
    public let perRecipient: Bool

    public struct ParseError: Error, Hashable, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { self.message }
    }

    public init(_ raw: String) throws {
        self.raw = raw
        self.arguments = try Self.split(raw)
        if self.arguments.isEmpty {
            throw ParseError(message: "is empty")
        }
        self.perRecipient =
            Self.expandedVerbatim(self.arguments, recipient: "a", sender: "", user: "")
            != Self.expandedVerbatim(self.arguments, recipient: "b", sender: "", user: "")
    }

    public var description: String { self.raw }

    /// The characters `%F` and `%T` keep (as fetchmail does): ASCII letters and digits and `@ . _ + - =`. None is
    /// special to a shell, in or out of quotes.
    static let safeCharacters: Set<Unicode.Scalar> = Set(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@._+-=".unicodeScalars)

    /// `value` with every character outside ``safeCharacters`` replaced by `_`, and a leading `-` too (so it cannot
    /// become an option of the MDA). Envelope addresses are ASCII in practice and pass unchanged.
    public static func sanitized(_ value: String) -> String {
        var out = String.UnicodeScalarView()
        for scalar in value.unicodeScalars {
            out.append(Self.safeCharacters.contains(scalar) ? scalar : "_")
        }
        if out.first == "-" {
            out.removeFirst()
            out.insert("_", at: out.startIndex)
        }
        return String(out)
    }

    /// The argument vector with `%T`, `%F` (both sanitised), `%U` (and `%%`) substituted.
    public func expanded(recipient rawRecipient: String, sender rawSender: String, user: String) -> [String] {
        let recipient = Self.sanitized(rawRecipient)
        let sender = Self.sanitized(rawSender)
        return Self.expandedVerbatim(self.arguments, recipient: recipient, sender: sender, user: user)
    }

    private static func expandedVerbatim(
        _ arguments: [String], recipient: String, sender: String, user: String
    ) -> [String] {
        arguments.map { arg in
            var out = ""
            var it = arg.makeIterator()
            while let c = it.next() {
                guard c == "%" else {
                    out.append(c)
                    continue
                }
                switch it.next() {
                case "T": out += recipient
                case "F": out += sender
                case "U": out += user
                case "%": out += "%"
                case .some(let other):
                    out.append("%")
                    out.append(other)
                case .none: out.append("%")
                }
            }
            return out
        }
    }

    static func split(_ s: String) throws -> [String] {
        var args: [String] = []
        var current = ""
        var inWord = false
        var it = Array(s).makeIterator()
        while let c = it.next() {
            switch c {
            case " ", "\t", "\n":
                if inWord {
                    args.append(current)
                    current = ""
                    inWord = false
                }
            case "'":
                inWord = true
                var closed = false
                while let d = it.next() {
                    if d == "'" {
                        closed = true
                        break
                    }
                    current.append(d)
                }
                if !closed { throw ParseError(message: "has an unterminated single quote") }
            case "\"":
                inWord = true
                var closed = false
                while let d = it.next() {
                    if d == "\"" {
                        closed = true
                        break
                    }
                    if d == "\\" {
                        guard let e = it.next() else { break }
                        if e == "\"" || e == "\\" {
                            current.append(e)
                        } else {
                            current.append(d)
                            current.append(e)
                        }
                        continue
                    }
                    if d == "$" || d == "`" {
                        throw ParseError(
                            message: "uses shell expansion (\(d)) inside double quotes, which popfetch does not "
                                + "perform; use single quotes, or run it through sh -c '...'")
                    }
                    current.append(d)
                }
                if !closed { throw ParseError(message: "has an unterminated double quote") }
            case "\\":
                inWord = true
                if let e = it.next() { current.append(e) }
            case "|", ">", "<", ";", "&", "$", "`", "(", ")":
                throw ParseError(
                    message: "contains the shell character '\(c)'; popfetch runs the MDA directly, without a "
                        + "shell. Write it as sh -c '...' if you need the shell")
            default:
                inWord = true
                current.append(c)
            }
        }
        if inWord { args.append(current) }
        return args
    }
}
