#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// The daemon's lock file in the state directory: one daemon per state database.
///
/// Whether a daemon runs is learned by probing the lock (the kernel drops it when the process dies), never from
/// a row a kill -9 would leave stale. The file holds the daemon's pid and start time for `status`.
public final class DaemonLock: Sendable {
    public let path: String
    private let fd: Int32

    private init(path: String, fd: Int32) {
        self.path = path
        self.fd = fd
    }

    public static func path(stateDirectory: String) -> String { stateDirectory + "/daemon.lock" }

    public struct Holder: Hashable, Sendable {
        public var pid: Int32?
        public var started: Date?
    }

    /// Takes the lock, or returns who holds it.
    public static func acquire(stateDirectory: String) throws -> Result<DaemonLock, HolderError> {
        try FileManager.default.createDirectory(
            atPath: stateDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let path = Self.path(stateDirectory: stateDirectory)
        let fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw StateError(path: path, message: "cannot open the daemon lock: \(String(cString: strerror(errno)))")
        }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            close(fd)
            return .failure(HolderError(holder: Self.readHolder(path: path)))
        }
        let text = "\(getpid()) \(Date().timeIntervalSince1970)\n"
        _ = ftruncate(fd, 0)
        _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
        return .success(DaemonLock(path: path, fd: fd))
    }

    public struct HolderError: Error, Sendable {
        public var holder: Holder
    }

    /// Whether a daemon holds the lock now, and which.
    public static func probe(stateDirectory: String) -> Holder? {
        let path = Self.path(stateDirectory: stateDirectory)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        if flock(fd, LOCK_SH | LOCK_NB) == 0 {
            flock(fd, LOCK_UN)
            return nil
        }
        return Self.readHolder(path: path)
    }

    static func readHolder(path: String) -> Holder {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return Holder() }
        let parts = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        let pid = parts.first.flatMap { Int32($0) }
        let started = parts.dropFirst().first.flatMap { Double($0) }.map(Date.init(timeIntervalSince1970:))
        return Holder(pid: pid, started: started)
    }

    public func release() {
        flock(self.fd, LOCK_UN)
        close(self.fd)
    }
}
