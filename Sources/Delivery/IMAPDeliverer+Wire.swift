import IMAPCore
import MailTransport
import NIOCore
import Spool

#if canImport(Glibc)
    import Glibc
#endif

/// The message on the wire: the spool file streamed with CRLF line ends, its size as sent, its internal date.
extension IMAPDeliverer {
    /// Bytes of the spool file as sent: every LF becomes CRLF (the spool counted them as it was written).
    static func wireSize(_ message: SpooledMessage) -> Int {
        message.length + message.lineFeeds
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

    /// The message's Date header (as the spool found it) as APPEND's internal date; the time it is delivered when
    /// it has none that parses.
    static func internalDate(of message: SpooledMessage) -> IMAPDateTime? {
        // Zones beyond ±14 hours exist on no clock: a server may refuse them, so such a date is not used.
        if let value = message.dateHeader, let date = IMAPDateTime.parseRFC5322(value),
            abs(date.offsetMinutes) <= 14 * 60
        {
            return date
        }
        return IMAPDateTime(secondsSince1970: Int64(time(nil)))
    }
}
