#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A per-account lock file (flock) in the state directory: only one poll of a mailbox at a time, across processes.
/// The kernel releases it when the process dies, so a kill -9 never leaves a stale lock.
public final class AccountLock: Sendable {
    public let path: String
    private let fd: Int32

    private init(path: String, fd: Int32) {
        self.path = path
        self.fd = fd
    }

    public static func lockPath(stateDirectory: String, stateKey: String) -> String {
        let safe = String(stateKey.map { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == "@" ? $0 : "_" })
        return stateDirectory + "/locks/" + safe + ".lock"
    }

    /// Takes the lock, waiting up to `wait` seconds. Returns nil if another process holds it all that time.
    public static func acquire(stateDirectory: String, stateKey: String, wait: Double) async throws -> AccountLock? {
        let dir = stateDirectory + "/locks"
        try FileManager.default.createDirectory(
            atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let path = Self.lockPath(stateDirectory: stateDirectory, stateKey: stateKey)
        let fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw StateError(path: path, message: "cannot open lock file: \(String(cString: strerror(errno)))")
        }
        let deadline = Date().addingTimeInterval(wait)
        while true {
            if flock(fd, LOCK_EX | LOCK_NB) == 0 {
                let pid = "\(getpid())\n"
                _ = ftruncate(fd, 0)
                _ = pid.withCString { pwrite(fd, $0, strlen($0), 0) }
                return AccountLock(path: path, fd: fd)
            }
            if errno != EWOULDBLOCK && errno != EINTR {
                let msg = String(cString: strerror(errno))
                close(fd)
                throw StateError(path: path, message: "cannot lock: \(msg)")
            }
            if Date() >= deadline {
                close(fd)
                return nil
            }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
    }

    public func release() {
        flock(self.fd, LOCK_UN)
        close(self.fd)
    }
}
