import Crypto
import Foundation
public import NIOCore
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// What was learned about a message while it was spooled.
public struct SpooledMessage: Sendable {
    /// Owns the spool file's descriptor: it stays open while any copy of this message (a delivery in flight)
    /// exists, and no other message can ever be written into it.
    let descriptor: SpoolDescriptor
    /// Bytes of the trace header written before the message.
    public let traceHeaderLength: Int
    /// Bytes of the message as stored (LF line ends), without the trace header.
    public let storedSize: Int
    /// Bytes of the message as received from the server (dot-unstuffed, CRLF line ends).
    public let receivedSize: Int
    /// Whether any byte has the high bit set (needs 8BITMIME over SMTP).
    public let has8Bit: Bool
    /// Whether the message contains NUL bytes.
    public let hasNUL: Bool
    /// Whether the header section has 8-bit bytes (raw UTF-8 headers need SMTPUTF8, RFC 6532).
    public let headerHas8Bit: Bool
    /// The address in the first Return-Path header, if any (without angle brackets; "" for `<>`).
    public let returnPath: String?
    /// The address in the first From header, if any.
    public let fromAddress: String?
    /// The first Date header's value, unfolded (at most ``SpoolFile/dateValueLimit`` bytes kept), if any.
    public let dateHeader: String?
    /// LF bytes in the spool file (trace header and message): what sending it with CRLF line ends adds.
    public let lineFeeds: Int
    /// SHA-256 of the message as received (dot-unstuffed, without popfetch's trace header), lowercase hex: tells
    /// whether a message listed again is one already delivered.
    public let digest: String
    /// What identifies this message (its mailbox, UIDL and contents) to a receiver that can be asked whether it
    /// already has it: IMAP delivery writes it in an `X-Popfetch-ID` header and searches for it after a crash.
    /// Set by the poll; nil for popfetch's own messages (bounces).
    public var deliveryID: String? = nil
    /// The message's UIDL key in the state, set with ``deliveryID``.
    public var deliveryKey: String? = nil

    /// The envelope sender: Return-Path, else the From address, else empty.
    public var envelopeSender: String { self.returnPath ?? self.fromAddress ?? "" }
}

/// An open, unlinked spool file, closed when the last owner lets go of it.
final class SpoolDescriptor: Sendable {
    let fd: Int32
    init(fd: Int32) { self.fd = fd }
    deinit { close(self.fd) }
}

/// An unlinked temporary file one message streams into, in constant memory.
///
/// One spool file holds one message: ``begin(traceHeader:)`` may be called once. A new message gets a new spool
/// file, so a delivery still reading an earlier message can never see its file emptied or overwritten.
///
/// Line ends are converted from the wire's CRLF to LF (the local convention for MDAs); a bare LF, a bare CR, long
/// lines, 8-bit and NUL bytes are kept. The file is unlinked as soon as it is created, so nothing is left behind
/// by a crash, and a receiver only ever gets it after ``finish()``, when the whole message has arrived.
public final class SpoolFile {
    let descriptor: SpoolDescriptor
    private var begun = false
    private var out: [UInt8] = []
    private var pendingCR = false
    private var written = 0
    private var stored = 0
    private var received = 0
    private var traceLength = 0
    private var has8Bit = false
    private var hasNUL = false
    private var header8Bit = false
    // Header scanning (bounded: only the first `headerScanLimit` bytes of the header section are examined).
    private var inHeader = true
    private var headerLine: [UInt8] = []
    private var headerScanned = 0
    /// The message's first line as received (without its line end) once it is in; empty when too long to keep.
    public private(set) var firstLine: [UInt8]?
    private var returnPath: String?
    private var fromAddress: String?
    private var dateValue: [UInt8]?
    /// The Date header is being read: its continuation lines belong to it.
    private var inDate = false
    private var lineFeeds = 0
    private var hasher = SHA256()

    static let flushThreshold = 256 * 1024
    static let headerScanLimit = 256 * 1024
    static let headerLineLimit = 8 * 1024
    /// A Date header longer than this is not a date: the rest of it is not kept.
    static let dateValueLimit = 1024

    /// The largest message (by its LIST size) spooled in memory rather than on disk.
    public static let memoryLimit = 1 << 20

    /// Creates the spool file in `directory` (falls back to $TMPDIR, then /tmp) and unlinks it at once; or, with
    /// `inMemory`, an anonymous file in memory (`memfd_create`), which costs no filesystem work at creation, write
    /// and close. In memory only for a message whose LIST size is at most ``memoryLimit``: the caller stops the
    /// retrieval once it runs past its size cap (at most twice that), so the file stays small.
    public init(directory: String?, inMemory: Bool = false) throws {
        if inMemory, let fd = AnonymousFile.createInMemory(name: "popfetch-spool") {
            self.descriptor = SpoolDescriptor(fd: fd)
            return
        }
        do {
            let fd = try AnonymousFile.create(in: AnonymousFile.directories(preferring: directory))
            self.descriptor = SpoolDescriptor(fd: fd)
        } catch {
            throw SpoolError(message: "cannot create a spool file (\(error.message))")
        }
    }

    /// Message bytes received so far (before ``finish()``).
    public var receivedSoFar: Int { self.received }

    /// Starts the message: writes the trace header. A spool file holds one message only.
    public func begin(traceHeader: [UInt8]) throws {
        guard !self.begun else {
            throw SpoolError(message: "a spool file holds one message; it was already used")
        }
        self.begun = true
        self.out.removeAll(keepingCapacity: true)
        self.pendingCR = false
        self.written = 0
        self.stored = 0
        self.received = 0
        self.has8Bit = false
        self.hasNUL = false
        self.header8Bit = false
        self.inHeader = true
        self.headerLine.removeAll(keepingCapacity: true)
        self.headerScanned = 0
        self.firstLine = nil
        self.returnPath = nil
        self.fromAddress = nil
        self.dateValue = nil
        self.inDate = false
        self.lineFeeds = traceHeader.reduce(0) { $0 + ($1 == 10 ? 1 : 0) }
        self.out.append(contentsOf: traceHeader)
        self.traceLength = traceHeader.count
    }

    /// Appends dot-unstuffed message bytes as they arrive. CRLF becomes LF; every other byte is kept.
    public func append(_ buffer: ByteBuffer) throws {
        self.received += buffer.readableBytes
        buffer.withUnsafeReadableBytes { raw in
            self.hasher.update(bufferPointer: raw)
            guard let base = raw.baseAddress else { return }
            let n = raw.count
            // Checked on the chunk as received: what is stored differs only by CRs, which are neither.
            if !self.hasNUL && memchr(base, 0, n) != nil { self.hasNUL = true }
            if !self.has8Bit && Self.contains8Bit(raw) { self.has8Bit = true }
            // Every LF received is stored (only the CR of a CRLF is dropped).
            var lf = 0
            while lf < n, let found = memchr(base + lf, 10, n - lf) {
                self.lineFeeds += 1
                lf = base.distance(to: UnsafeRawPointer(found)) + 1
            }
            var i = 0
            if self.pendingCR, n > 0 {
                self.pendingCR = false
                if raw[0] != 10 { self.emitCR() }
            }
            while i < n {
                let idx: Int
                if let found = memchr(base + i, 13, n - i) {
                    idx = base.distance(to: UnsafeRawPointer(found))
                } else {
                    idx = n
                }
                if idx > i { self.emit(UnsafeRawBufferPointer(start: base + i, count: idx - i)) }
                if idx >= n { break }
                if idx + 1 < n {
                    // CR LF: the CR is dropped; a bare CR is kept.
                    if raw[idx + 1] != 10 { self.emitCR() }
                } else {
                    self.pendingCR = true
                }
                i = idx + 1
            }
        }
        if self.out.count >= Self.flushThreshold { try self.flush() }
    }

    /// Whether any byte has the high bit set, eight bytes at a time.
    static func contains8Bit(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var i = 0
        let n = bytes.count
        while i + 8 <= n {
            if bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self) & 0x8080_8080_8080_8080 != 0 { return true }
            i += 8
        }
        while i < n {
            if bytes[i] >= 0x80 { return true }
            i += 1
        }
        return false
    }

    private func emitCR() {
        withUnsafeBytes(of: UInt8(13)) { self.emit($0) }
    }

    private func emit(_ bytes: UnsafeRawBufferPointer) {
        self.out.append(contentsOf: bytes)
        self.stored += bytes.count
        if self.inHeader {
            for b in bytes {
                self.scanHeader(b)
                if !self.inHeader { break }
            }
        }
    }

    private func scanHeader(_ b: UInt8) {
        if b >= 0x80 { self.header8Bit = true }
        self.headerScanned += 1
        if self.headerScanned > Self.headerScanLimit {
            self.inHeader = false
            return
        }
        if b != 10 {
            if self.headerLine.count < Self.headerLineLimit { self.headerLine.append(b) }
            return
        }
        let line = self.headerLine
        self.headerLine.removeAll(keepingCapacity: true)
        if self.firstLine == nil { self.firstLine = line.count < Self.headerLineLimit ? line : [] }
        if line.isEmpty {
            self.inHeader = false
            return
        }
        if line.first == 32 || line.first == 9 {
            // Continuation lines are needed only for the Date header (RFC 5322 lets it fold).
            if self.inDate, var v = self.dateValue, v.count < Self.dateValueLimit {
                v += line.prefix(Self.dateValueLimit - v.count)
                self.dateValue = v
            }
            return
        }
        self.inDate = false
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { return }
        let name = String(decoding: line[..<colon], as: UTF8.self).lowercased()
        let value = String(decoding: line[(colon + 1)...], as: UTF8.self)
        if name == "return-path" && self.returnPath == nil {
            self.returnPath = Self.extractAddress(value) ?? ""
        } else if name == "from" && self.fromAddress == nil {
            self.fromAddress = Self.extractAddress(value)
        } else if name == "date" && self.dateValue == nil {
            self.dateValue = Array(line[(colon + 1)...].prefix(Self.dateValueLimit))
            self.inDate = true
        }
    }

    /// The address in `<...>`, else the first token containing `@`. (Byte by byte, in the standard library only:
    /// Foundation's `contains` and `trimmingCharacters` on a substring go through NSString for every message.)
    static func extractAddress(_ value: String) -> String? {
        let bytes = Array(value.utf8)
        // The header line still ends in its CR.
        func isBlank(_ b: UInt8) -> Bool { b == 32 || b == 9 || b == 13 }
        if let open = bytes.firstIndex(of: UInt8(ascii: "<")),
            let close = bytes[open...].firstIndex(of: UInt8(ascii: ">"))
        {
            var inner = bytes[(open + 1)..<close]
            while let b = inner.first, isBlank(b) { inner.removeFirst() }
            while let b = inner.last, isBlank(b) { inner.removeLast() }
            return String(decoding: inner, as: UTF8.self)
        }
        for token in bytes.split(whereSeparator: { isBlank($0) || $0 == UInt8(ascii: ",") })
        where token.contains(UInt8(ascii: "@")) {
            return String(decoding: token, as: UTF8.self)
        }
        return nil
    }

    private func flush() throws {
        var offset = 0
        let count = self.out.count
        while offset < count {
            let n = self.out.withUnsafeBytes { p -> Int in
                guard let base = p.baseAddress else { return 0 }
                return write(self.descriptor.fd, base + offset, count - offset)
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw SpoolError(message: "cannot write the spool file: \(String(cString: strerror(errno)))")
            }
            offset += n
        }
        self.written += count
        self.out.removeAll(keepingCapacity: true)
    }

    /// The terminating dot line arrived: flushes and returns the complete message.
    public func finish() throws -> SpooledMessage {
        if self.pendingCR {
            self.pendingCR = false
            self.emitCR()
        }
        try self.flush()
        return SpooledMessage(
            descriptor: self.descriptor, traceHeaderLength: self.traceLength, storedSize: self.stored,
            receivedSize: self.received, has8Bit: self.has8Bit, hasNUL: self.hasNUL, headerHas8Bit: self.header8Bit,
            returnPath: self.returnPath, fromAddress: self.fromAddress,
            dateHeader: self.dateValue.map { String(decoding: $0, as: UTF8.self) }, lineFeeds: self.lineFeeds,
            digest: Self.hex(self.hasher.finalize()))
    }
}

extension SpoolFile {
    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

public struct SpoolError: Error, Hashable, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { "spool: \(self.message)" }

    public init(message: String) { self.message = message }
}
