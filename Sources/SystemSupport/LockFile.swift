public import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// An exclusive lock file (flock): the per-account lock that lets only one poll of a mailbox run at a time, and
/// the daemon's lock that lets one daemon run per state database, are both this.
///
/// The kernel releases the lock when the process dies, so a kill -9 never leaves a stale lock; whether someone
/// holds it is learned by probing the lock, never from a file's contents. The file holds the holder's pid and
/// start time, for messages and `status`.
public final class LockFile: Sendable {
    public let path: String
    private let fd: Int32

    private init(path: String, fd: Int32) {
        self.path = path
        self.fd = fd
    }

    /// Who holds a lock, as written in its file.
    public struct Holder: Hashable, Sendable {
        public var pid: Int32?
        public var started: Date?
    }

    /// The per-account lock's path: `locks/<key>.lock` in the state directory, the key made file-name safe.
    public static func accountLockPath(stateDirectory: String, stateKey: String) -> String {
        let safe = String(stateKey.map { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == "@" ? $0 : "_" })
        return stateDirectory + "/locks/" + safe + ".lock"
    }

    /// The state database's default file name (``Paths/defaultStateFile()``): its daemon's files keep plain names.
    public static let defaultStateFileName = "state.sqlite"

    /// The daemon lock's path: one daemon per state database, even with several databases in one directory.
    public static func daemonLockPath(stateDirectory: String, stateFile: String = defaultStateFileName) -> String {
        stateDirectory + "/" + Self.daemonFileStem(stateFile: stateFile) + ".lock"
    }

    /// The name the daemon's lock and control socket share, before their extensions: `daemon` for the default
    /// database name (`state.sqlite`), `daemon-<16 hex digits of the name's FNV-1a hash>` for any other, so that
    /// daemons of two databases in one directory neither refuse each other nor answer for each other, and a long
    /// name still fits a socket's path (108 bytes).
    public static func daemonFileStem(stateFile: String) -> String {
        if stateFile == Self.defaultStateFileName { return "daemon" }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in stateFile.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        let hex = String(hash, radix: 16)
        return "daemon-" + String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// What trying to take a lock found.
    public enum Attempt: Sendable {
        case acquired(LockFile)
        case heldBy(Holder)
    }

    /// Takes the lock at `path` without waiting, or returns who holds it. Creates the directory (0700) if needed.
    public static func tryAcquire(path: String) throws(LockError) -> Attempt {
        let fd = try Self.open(path)
        if flock(fd, LOCK_EX | LOCK_NB) == 0 { return .acquired(Self.held(path: path, fd: fd)) }
        let code = errno
        close(fd)
        guard code == EWOULDBLOCK || code == EINTR else {
            throw LockError(path: path, message: "cannot lock: \(String(cString: strerror(code)))")
        }
        return .heldBy(Self.readHolder(path: path))
    }

    /// Takes the lock at `path`, trying for up to `wait` seconds. Returns nil if another process held it all that
    /// time, or as soon as `giveUp` says so (popfetch was asked to stop).
    public static func acquire(
        path: String, wait: Double, giveUp: @Sendable () -> Bool = { false }
    ) async throws -> LockFile? {
        let deadline = Date().addingTimeInterval(wait)
        while true {
            if case .acquired(let lock) = try Self.tryAcquire(path: path) { return lock }
            if Date() >= deadline || giveUp() { return nil }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
    }

    /// Whether a process holds the lock now, and which.
    public static func probe(path: String) -> Holder? {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        if flock(fd, LOCK_SH | LOCK_NB) == 0 {
            flock(fd, LOCK_UN)
            return nil
        }
        return Self.readHolder(path: path)
    }

    public func release() {
        flock(self.fd, LOCK_UN)
        close(self.fd)
    }

    private static func open(_ path: String) throws(LockError) -> Int32 {
        let directory = (path as NSString).deletingLastPathComponent
        do {
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw LockError(path: path, message: "cannot create directory \(directory): \(Paths.reason(error))")
        }
        let fd = Glibc.open(path, O_CREAT | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else {
            throw LockError(path: path, message: "cannot open lock file: \(String(cString: strerror(errno)))")
        }
        return fd
    }

    private static func held(path: String, fd: Int32) -> LockFile {
        let text = "\(getpid()) \(Date().timeIntervalSince1970)\n"
        _ = ftruncate(fd, 0)
        _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
        return LockFile(path: path, fd: fd)
    }

    static func readHolder(path: String) -> Holder {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return Holder() }
        let parts = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        let pid = parts.first.flatMap { Int32($0) }
        let started = parts.dropFirst().first.flatMap { Double($0) }.map(Date.init(timeIntervalSince1970:))
        return Holder(pid: pid, started: started)
    }
}

/// A lock file that cannot be created, opened or locked (not: one that another process holds).
public struct LockError: Error, Hashable, Sendable, CustomStringConvertible {
    public var path: String
    public var message: String
    public var description: String { "lock file \(self.path): \(self.message)" }
}
