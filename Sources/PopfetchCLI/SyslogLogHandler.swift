import Logging
import NIOConcurrencyHelpers
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Logs to the system log (`--syslog`, for cron users without a journal), facility mail: one RFC 3164 datagram per
/// event on the local syslog socket, `<PRI>popfetch[PID]: account=work delivered=3 poll finished`, as syslog(3)
/// sends it. The socket is `/dev/log`, or `$POPFETCH_SYSLOG_SOCKET`. When it cannot be reached the event goes to
/// stderr instead, so nothing is lost silently.
struct SyslogLogHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info
    let label: String
    let socket: SyslogSocket

    init(label: String, socket: SyslogSocket) {
        self.label = label
        self.socket = socket
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let text = StderrLogHandler.text(of: event, metadata: self.metadata)
        if !self.socket.send(severity: Self.severity(event.level), "\(self.label)[\(getpid())]: \(text)") {
            StderrLogHandler.write(level: event.level, label: self.label, text)
        }
    }

    /// RFC 5424 §6.2.1 severities.
    static func severity(_ level: Logger.Level) -> Int32 {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }
}

/// The local syslog socket (a unix datagram socket), opened once and shared by every logger of the process.
final class SyslogSocket: Sendable {
    let path: String
    private let fd = NIOLockedValueBox<Int32>(-1)

    init(path: String) { self.path = path }

    /// Sends one message with facility mail (2); false when the socket cannot be reached.
    func send(severity: Int32, _ message: String) -> Bool {
        let datagram = Self.datagram("<\(2 * 8 + severity)>\(message)", limit: 8192)
        return self.fd.withLockedValue { fd in
            for attempt in 0..<2 {
                if fd < 0 { fd = Self.connect(self.path) }
                if fd < 0 { return false }
                // Never blocks: a syslog daemon that stopped reading must not stall a poll (the event goes to stderr).
                let n = datagram.withUnsafeBytes {
                    Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
                }
                if n == datagram.count { return true }
                if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return false }
                // The syslog daemon restarted: connect again, once.
                close(fd)
                fd = -1
                if attempt == 1 { return false }
            }
            return false
        }
    }

    /// `text` as UTF-8, cut to at most `limit` bytes at a character boundary, with "..." when cut.
    static func datagram(_ text: String, limit: Int) -> [UInt8] {
        guard text.utf8.count > limit else { return Array(text.utf8) }
        var out: [UInt8] = []
        out.reserveCapacity(limit)
        for scalar in text.unicodeScalars {
            let bytes = Array(String(scalar).utf8)
            if out.count + bytes.count > limit - 3 { break }
            out += bytes
        }
        return out + Array("...".utf8)
    }

    private static func connect(_ path: String) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return -1 }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            return -1
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let ok = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if ok != 0 {
            close(fd)
            return -1
        }
        return fd
    }
}
