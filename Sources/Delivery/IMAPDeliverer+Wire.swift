import IMAPCore
import MailTransport
import NIOCore
import Spool

#if canImport(Glibc)
    import Glibc
#endif

/// The message on the wire: the spool file streamed with CRLF line ends, its size as sent, its internal date.
extension IMAPDeliverer {
    /// Bytes of the spool file as sent: every LF becomes CRLF.
    static func wireSize(_ message: SpooledMessage) throws -> Int {
        var reader = message.makeReader(chunkSize: 256 * 1024)
        var lineFeeds = 0
        while let n = try reader.nextChunk({ raw -> Int in
            var count = 0
            guard let base = raw.baseAddress else { return 0 }
            var i = 0
            while i < raw.count, let found = memchr(base + i, 10, raw.count - i) {
                count += 1
                i = base.distance(to: UnsafeRawPointer(found)) + 1
            }
            return count
        }) {
            lineFeeds += n
        }
        return message.length + lineFeeds
    }

    /// Streams the header line and the spool file (trace header, then message) with CRLF line ends.
    static func writeMessage(_ message: SpooledMessage, header: [UInt8], to writer: IMAPLiteralWriter) async throws {
        if !header.isEmpty { try await writer.write(ByteBuffer(bytes: header)) }
        var reader = message.makeReader(chunkSize: 64 * 1024)
        var out = ByteBuffer()
        while true {
            out.clear()
            let more = try reader.nextChunk { raw -> Bool in
                guard let base = raw.baseAddress else { return true }
                var i = 0
                while i < raw.count {
                    guard let found = memchr(base + i, 10, raw.count - i) else {
                        out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[i...]))
                        break
                    }
                    let lf = base.distance(to: UnsafeRawPointer(found))
                    out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[i..<lf]))
                    out.writeBytes([13, 10])
                    i = lf + 1
                }
                return true
            }
            guard more != nil else { return }
            try await writer.write(out)
        }
    }

    /// The message's Date header as APPEND's internal date; the time it is delivered when it has none that
    /// parses.
    static func internalDate(of message: SpooledMessage) -> IMAPDateTime? {
        // Zones beyond ±14 hours exist on no clock: a server may refuse them, so such a date is not used.
        if let header = try? message.prefix(64 * 1024), let value = Self.headerValue("date", in: header),
            let date = IMAPDateTime.parseRFC5322(value), abs(date.offsetMinutes) <= 14 * 60
        {
            return date
        }
        return IMAPDateTime(secondsSince1970: Int64(time(nil)))
    }

    /// The first `name:` field of a header section (LF line ends), unfolded.
    static func headerValue(_ name: String, in bytes: [UInt8]) -> String? {
        var value: [UInt8]?
        var lineStart = 0
        while lineStart < bytes.count {
            let end = bytes[lineStart...].firstIndex(of: 10) ?? bytes.count
            let line = bytes[lineStart..<end]
            if line.isEmpty || line == [13] { break }
            if var v = value {
                guard line.first == 32 || line.first == 9 else { break }
                v += line
                value = v
            } else if let colon = line.firstIndex(of: UInt8(ascii: ":")),
                String(decoding: line[..<colon], as: UTF8.self).lowercased() == name
            {
                value = Array(line[(colon + 1)...])
            }
            lineStart = end + 1
        }
        return value.map { String(decoding: $0, as: UTF8.self) }
    }
}
