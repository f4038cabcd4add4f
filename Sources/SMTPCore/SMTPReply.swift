public import struct NIOCore.ByteBuffer

/// Named limits of the SMTP/LMTP client.
public enum SMTPDefaults {
    /// RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets; accept more from real servers, within reason.
    public static let maximumReplyLineLength = 4_096
    /// Most lines in one multi-line reply (EHLO answers are a few dozen).
    public static let maximumReplyLines = 1_000
}

/// One SMTP/LMTP reply, possibly multi-line (`250-...` continuation lines, `250 ...` final line).
public struct SMTPReply: Hashable, Sendable, CustomStringConvertible {
    public var code: Int
    public var lines: [String]

    public init(code: Int, lines: [String]) {
        self.code = code
        self.lines = lines
    }

    public var isPositive: Bool { (200..<300).contains(self.code) }
    public var isIntermediate: Bool { (300..<400).contains(self.code) }
    public var isTransient: Bool { (400..<500).contains(self.code) }
    public var isPermanent: Bool { (500..<600).contains(self.code) }

    public var text: String { self.lines.joined(separator: " / ") }
    public var description: String { "\(self.code) \(self.text)" }
}

public struct SMTPProtocolError: Error, Hashable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ m: String) { self.message = m }
    public var description: String { "SMTP protocol error: \(self.message)" }
}

/// Incremental parser of SMTP replies (RFC 5321 §4.2): `Reply-code [ SP / "-" text ] CRLF`.
public struct SMTPReplyParser: Sendable {
    private var lines: [String] = []
    private var code: Int?

    public init() {}

    /// Returns the next complete reply, or nil when more bytes are needed.
    public mutating func parse(_ buffer: inout ByteBuffer) throws -> SMTPReply? {
        while true {
            guard let lf = buffer.readableBytesView.firstIndex(of: 10) else {
                if buffer.readableBytes > SMTPDefaults.maximumReplyLineLength {
                    throw SMTPProtocolError("reply line longer than \(SMTPDefaults.maximumReplyLineLength) octets")
                }
                return nil
            }
            let length = lf - buffer.readerIndex + 1
            guard length <= SMTPDefaults.maximumReplyLineLength + 2, var bytes = buffer.readBytes(length: length) else {
                throw SMTPProtocolError("reply line longer than \(SMTPDefaults.maximumReplyLineLength) octets")
            }
            bytes.removeLast()
            if bytes.last == 13 { bytes.removeLast() }
            guard bytes.count >= 3, bytes[0...2].allSatisfy({ $0 >= 48 && $0 <= 57 }),
                bytes.count == 3 || bytes[3] == 32 || bytes[3] == 45
            else {
                throw SMTPProtocolError(
                    "invalid reply line \(String(decoding: bytes.prefix(60), as: UTF8.self).debugDescription)")
            }
            let code = Int(bytes[0] - 48) * 100 + Int(bytes[1] - 48) * 10 + Int(bytes[2] - 48)
            if let c = self.code, c != code {
                throw SMTPProtocolError("reply lines with different codes (\(c) and \(code))")
            }
            self.code = code
            self.lines.append(bytes.count > 4 ? String(decoding: bytes[4...], as: UTF8.self) : "")
            if self.lines.count > SMTPDefaults.maximumReplyLines {
                throw SMTPProtocolError("reply with more than \(SMTPDefaults.maximumReplyLines) lines")
            }
            if bytes.count == 3 || bytes[3] == 32 {
                let reply = SMTPReply(code: code, lines: self.lines)
                self.lines = []
                self.code = nil
                return reply
            }
        }
    }
}

/// What an EHLO/LHLO reply announced (RFC 5321 §4.1.1.1).
public struct SMTPCapabilities: Hashable, Sendable {
    public var keywords: [String: [String]] = [:]

    public init() {}

    public init(ehloReply: SMTPReply) {
        for line in ehloReply.lines.dropFirst() {
            let parts = line.split(separator: " ").map(String.init)
            guard let k = parts.first else { continue }
            self.keywords[k.uppercased()] = Array(parts.dropFirst())
        }
    }

    public func has(_ k: String) -> Bool { self.keywords[k.uppercased()] != nil }
    public var pipelining: Bool { self.has("PIPELINING") }
    public var eightBitMIME: Bool { self.has("8BITMIME") }
    public var smtpUTF8: Bool { self.has("SMTPUTF8") }
    public var startTLS: Bool { self.has("STARTTLS") }
    /// RFC 1870: the announced maximum size, 0 or nil for none.
    public var size: Int? {
        guard let p = self.keywords["SIZE"] else { return nil }
        return p.first.flatMap(Int.init) ?? 0
    }
}
