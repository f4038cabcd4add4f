#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// The daemon's control socket: a unix stream socket in the state directory (mode 0600, the state directory is
/// 0700). One line in, one line out: `wake` or `wake NAME` → `ok` / `error unknown account NAME`.
public final class ControlSocket: Sendable {
    public let path: String
    private let fd: Int32

    public static func path(stateDirectory: String) -> String { stateDirectory + "/daemon.sock" }

    /// Binds the socket (replacing a stale one: the caller holds the daemon lock) and serves it on a thread.
    public init(stateDirectory: String, handler: @escaping @Sendable (String) -> String) throws {
        let path = Self.path(stateDirectory: stateDirectory)
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ControlSocketError(path: path, message: "socket: \(String(cString: strerror(errno)))") }
        var addr = Self.address(path)
        let old = umask(0o177)
        let rc = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        umask(old)
        guard rc == 0, listen(fd, 16) == 0 else {
            let msg = String(cString: strerror(errno))
            Glibc.close(fd)
            throw ControlSocketError(path: path, message: "cannot listen on the control socket: \(msg)")
        }
        chmod(path, 0o600)
        self.path = path
        self.fd = fd
        let listener = fd
        let thread = Thread {
            while true {
                let c = accept(listener, nil, nil)
                if c < 0 {
                    if errno == EINTR { continue }
                    return
                }
                var tv = timeval(tv_sec: 2, tv_usec: 0)
                setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                var buf = [UInt8](repeating: 0, count: 512)
                let n = buf.withUnsafeMutableBytes { read(c, $0.baseAddress, $0.count) }
                if n > 0 {
                    let line = String(decoding: buf[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                    let reply = Array((handler(line) + "\n").utf8)
                    _ = reply.withUnsafeBytes { write(c, $0.baseAddress, $0.count) }
                }
                Glibc.close(c)
            }
        }
        thread.name = "popfetch-control"
        thread.start()
    }

    static func address(_ path: String) -> sockaddr_un {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &addr.sun_path) { p in
            for (i, b) in bytes.prefix(p.count - 1).enumerated() { p[i] = b }
        }
        return addr
    }

    public func close() {
        shutdown(self.fd, Int32(SHUT_RDWR))
        Glibc.close(self.fd)
        unlink(self.path)
    }

    /// Client side: sends one request line and returns the reply, or nil if no daemon listens.
    public static func request(stateDirectory: String, _ line: String) -> String? {
        let path = Self.path(stateDirectory: stateDirectory)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { Glibc.close(fd) }
        var addr = Self.address(path)
        let rc = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard rc == 0 else { return nil }
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        var buf = [UInt8](repeating: 0, count: 512)
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return nil }
        return String(decoding: buf[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// The control socket cannot be created or bound.
public struct ControlSocketError: Error, Hashable, Sendable, CustomStringConvertible {
    public var path: String
    public var message: String
    public var description: String { "control socket \(self.path): \(self.message)" }
}
