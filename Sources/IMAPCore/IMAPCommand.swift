/// The commands popfetch sends to an IMAP server (RFC 3501 §6, RFC 4959 SASL-IR, RFC 4315 UIDPLUS), and their
/// encoding into the bytes of the wire, literals included.
public enum IMAPCommand: Hashable, Sendable {
    case capability
    case noop
    case logout
    case startTLS
    /// RFC 3501 §6.2.3. Refused by the encoder when the server announced LOGINDISABLED (the caller checks).
    case login(user: String, password: String)
    /// RFC 3501 §6.2.2; with RFC 4959's initial response when `initialResponse` is set: base64, `=` when empty.
    case authenticate(mechanism: String, initialResponse: String?)
    case select(mailbox: String)
    case examine(mailbox: String)
    case create(mailbox: String)
    /// `LIST "" mailbox` (RFC 3501 §6.3.8): whether the mailbox exists.
    case list(mailbox: String)
    /// RFC 3501 §6.3.11, up to and including the literal's announcement; the message's `size` bytes follow, then
    /// CRLF (see ``IMAPEncoder/append(tag:mailbox:flags:date:size:capabilities:)``).
    case append(mailbox: String, flags: [String], date: IMAPDateTime?, size: Int)
    /// `UID SEARCH [UID n:*] HEADER field value` (RFC 3501 §6.4.4, §6.4.8): with `fromUID`, only messages from
    /// that UID on.
    case uidSearchHeader(field: String, value: String, fromUID: UInt32?)

    /// The command's name, for logs and traces.
    public var name: String {
        switch self {
        case .capability: return "CAPABILITY"
        case .noop: return "NOOP"
        case .logout: return "LOGOUT"
        case .startTLS: return "STARTTLS"
        case .login: return "LOGIN"
        case .authenticate: return "AUTHENTICATE"
        case .select: return "SELECT"
        case .examine: return "EXAMINE"
        case .create: return "CREATE"
        case .list: return "LIST"
        case .append: return "APPEND"
        case .uidSearchHeader: return "UID SEARCH"
        }
    }

    /// Whether the command carries a secret (LOGIN's password, AUTHENTICATE's initial response): a trace shows
    /// only its name.
    public var carriesSecret: Bool {
        switch self {
        case .login, .authenticate: return true
        default: return false
        }
    }
}

/// A command as bytes: the first part is written at once; each later part follows a literal's announcement and,
/// when the literal is synchronizing, only after the server's continuation request (`+`).
public struct IMAPEncodedCommand: Hashable, Sendable {
    public struct Part: Hashable, Sendable {
        /// Write this part only after a continuation request.
        public var waitForContinuation: Bool
        public var bytes: [UInt8]
    }

    public var parts: [Part]

    /// For APPEND: the message's literal follows the last part, synchronizing (wait for `+` first) or not.
    public var messageLiteral: (size: Int, synchronizing: Bool)? {
        guard let s = self.messageSize else { return nil }
        return (s, self.messageSynchronizing)
    }

    var messageSize: Int?
    var messageSynchronizing = false

    public static func == (a: Self, b: Self) -> Bool {
        a.parts == b.parts && a.messageSize == b.messageSize && a.messageSynchronizing == b.messageSynchronizing
    }

    public func hash(into h: inout Hasher) {
        h.combine(self.parts)
        h.combine(self.messageSize)
        h.combine(self.messageSynchronizing)
    }
}

/// What the encoder cannot put on the wire.
public struct IMAPEncodingError: Error, Hashable, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Turns commands into bytes (RFC 3501 §4.3, §9): strings as atoms, quoted strings or literals, whichever can carry
/// them; mailbox names in modified UTF-7 (§5.1.3); literals non-synchronizing where the server allows it (RFC 7888
/// LITERAL+, or LITERAL- up to 4,096 octets).
public struct IMAPEncoder: Sendable {
    public var capabilities: IMAPCapabilities

    public init(capabilities: IMAPCapabilities) { self.capabilities = capabilities }

    public func encode(_ command: IMAPCommand, tag: String) throws -> IMAPEncodedCommand {
        var w = Writer(literalPlus: self.capabilities.literalPlus, literalMinus: self.capabilities.literalMinus)
        w.text(tag + " ")
        switch command {
        case .capability, .noop, .logout:
            w.text(command.name)
        case .startTLS:
            w.text("STARTTLS")
        case .login(let user, let password):
            w.text("LOGIN ")
            w.astring(Array(user.utf8))
            w.text(" ")
            w.astring(Array(password.utf8))
        case .authenticate(let mechanism, let initial):
            guard !mechanism.isEmpty, mechanism.utf8.allSatisfy(IMAPResponseParser.isAtomChar) else {
                throw IMAPEncodingError("SASL mechanism name \"\(mechanism)\" is not an atom")
            }
            w.text("AUTHENTICATE " + mechanism)
            if let initial {
                guard Self.isBase64(initial) else {
                    throw IMAPEncodingError("the SASL initial response is not base64 (or \"=\")")
                }
                w.text(" " + initial)
            }
        case .select(let mailbox), .examine(let mailbox), .create(let mailbox):
            w.text(command.name + " ")
            w.astring(try Self.mailboxBytes(mailbox))
        case .list(let mailbox):
            w.text("LIST \"\" ")
            w.astring(try Self.mailboxBytes(mailbox))
        case .append(let mailbox, let flags, let date, let size):
            guard size >= 0 && size <= IMAPDefaults.maximumAppendSize else {
                throw IMAPEncodingError("a message of \(size) octets cannot be appended (IMAP's limit is 4 GiB)")
            }
            w.text("APPEND ")
            w.astring(try Self.mailboxBytes(mailbox))
            if !flags.isEmpty {
                for flag in flags {
                    let body = flag.hasPrefix("\\") ? flag.utf8.dropFirst() : flag.utf8[...]
                    guard !body.isEmpty, body.allSatisfy(IMAPResponseParser.isAtomChar) else {
                        throw IMAPEncodingError("flag \"\(flag)\" is not an IMAP flag (an atom, or \\ and an atom)")
                    }
                }
                w.text(" (" + flags.joined(separator: " ") + ")")
            }
            if let date { w.text(" \"" + date.imapString + "\"") }
            let sync = !w.canSendNonSynchronizing(size)
            w.text(" {\(size)\(sync ? "" : "+")}\r\n")
            var encoded = w.finish(endLine: false)
            encoded.messageSize = size
            encoded.messageSynchronizing = sync
            return encoded
        case .uidSearchHeader(let field, let value, let from):
            guard !field.isEmpty, field.utf8.allSatisfy({ $0 > 32 && $0 < 127 && $0 != UInt8(ascii: ":") }) else {
                throw IMAPEncodingError("header field name \"\(field)\" is not one")
            }
            w.text("UID SEARCH ")
            if let from {
                guard from > 0 else { throw IMAPEncodingError("UID 0 does not exist") }
                w.text("UID \(from):* ")
            }
            w.text("HEADER ")
            w.astring(Array(field.utf8))
            w.text(" ")
            w.astring(Array(value.utf8))
        }
        return w.finish(endLine: true)
    }

    /// Base64 characters with their padding, or the lone `=` of an empty response (RFC 4959 §3).
    static func isBase64(_ s: String) -> Bool {
        if s == "=" { return true }
        let body = s.utf8.prefix { $0 != UInt8(ascii: "=") }
        let padding = s.utf8.count - body.count
        return !s.isEmpty && s.utf8.count % 4 == 0 && padding <= 2 && s.utf8.suffix(padding).allSatisfy { $0 == 61 }
            && body.allSatisfy {
                ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 43 || $0 == 47
            }
    }

    /// A mailbox name on the wire: INBOX as such (any case), others in modified UTF-7.
    static func mailboxBytes(_ name: String) throws -> [UInt8] {
        guard !name.isEmpty else { throw IMAPEncodingError("the mailbox name is empty") }
        guard !name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            throw IMAPEncodingError("the mailbox name contains a control character")
        }
        if name.uppercased() == "INBOX" { return Array("INBOX".utf8) }
        return Array(ModifiedUTF7.encode(name).utf8)
    }

    /// Builds the parts of one command.
    struct Writer {
        let literalPlus: Bool
        let literalMinus: Bool
        var parts: [IMAPEncodedCommand.Part] = []
        var current: [UInt8] = []
        var waitBeforeCurrent = false

        init(literalPlus: Bool, literalMinus: Bool) {
            self.literalPlus = literalPlus
            self.literalMinus = literalMinus
        }

        func canSendNonSynchronizing(_ size: Int) -> Bool {
            self.literalPlus || (self.literalMinus && size <= IMAPDefaults.literalMinusLimit)
        }

        mutating func text(_ s: String) { self.current += Array(s.utf8) }

        /// An atom when it can be one, a quoted string when it can be one, else a literal.
        mutating func astring(_ bytes: [UInt8]) {
            if !bytes.isEmpty && bytes.allSatisfy(IMAPResponseParser.isAtomChar) {
                self.current += bytes
            } else if bytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) {
                self.current.append(UInt8(ascii: "\""))
                for b in bytes {
                    if b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") { self.current.append(UInt8(ascii: "\\")) }
                    self.current.append(b)
                }
                self.current.append(UInt8(ascii: "\""))
            } else {
                let sync = !self.canSendNonSynchronizing(bytes.count)
                self.current += Array("{\(bytes.count)\(sync ? "" : "+")}\r\n".utf8)
                self.parts.append(.init(waitForContinuation: self.waitBeforeCurrent, bytes: self.current))
                self.current = bytes
                self.waitBeforeCurrent = sync
            }
        }

        mutating func finish(endLine: Bool) -> IMAPEncodedCommand {
            if endLine { self.current += [13, 10] }
            self.parts.append(.init(waitForContinuation: self.waitBeforeCurrent, bytes: self.current))
            return IMAPEncodedCommand(parts: self.parts)
        }
    }
}

/// What a server announced (CAPABILITY response or code), with the questions popfetch asks of it.
public struct IMAPCapabilities: Hashable, Sendable {
    /// Upper-cased names.
    public private(set) var names: Set<String>

    public init(_ names: [String] = []) { self.names = Set(names.map { $0.uppercased() }) }

    public func has(_ name: String) -> Bool { self.names.contains(name.uppercased()) }

    public var isIMAP4rev1: Bool { self.has("IMAP4rev1") || self.has("IMAP4rev2") }
    public var startTLS: Bool { self.has("STARTTLS") }
    public var loginDisabled: Bool { self.has("LOGINDISABLED") }
    /// RFC 4959.
    public var saslInitialResponse: Bool { self.has("SASL-IR") }
    /// RFC 7888.
    public var literalPlus: Bool { self.has("LITERAL+") }
    public var literalMinus: Bool { self.has("LITERAL-") }
    /// RFC 4315.
    public var uidPlus: Bool { self.has("UIDPLUS") }
    /// RFC 7889: the server-wide limit, when announced with a number.
    public var appendLimit: Int? {
        for name in self.names where name.hasPrefix("APPENDLIMIT=") {
            if let n = IMAPResponseParser.number(Array(name.utf8.dropFirst("APPENDLIMIT=".utf8.count))) {
                return Int(n)
            }
        }
        return nil
    }

    /// The SASL mechanisms offered (`AUTH=...`), upper case, in no particular order.
    public var authenticationMechanisms: Set<String> {
        Set(self.names.filter { $0.hasPrefix("AUTH=") }.map { String($0.dropFirst(5)) })
    }
}
