public import Logging
public import ServiceLifecycle
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// `metrics_file`: the metrics written for node_exporter's textfile collector (or anything that reads a file).
/// Written whole to a new temporary file in the same directory (`.NAME.RANDOM.tmp`, which the collector's `*.prom`
/// glob does not match) and renamed over the old one, so a reader never sees half a file. Mode 0644: the collector
/// usually runs as another user; the file holds account names and counts, never a secret.
public struct MetricsFile: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    public func write(_ bytes: [UInt8]) throws(MetricsFileError) {
        let directory = Paths.directory(of: self.path)
        let name = self.path.lastIndex(of: "/").map { String(self.path[self.path.index(after: $0)...]) } ?? self.path
        // A new file under a name nobody can guess, never one that is there already: whatever another user put in
        // the directory (a FIFO, which would block the open for ever; a file of theirs, or a link) is not used.
        // Regular files never block, so neither does the write.
        var temporary = ""
        var fd: Int32 = -1
        for _ in 0..<8 {
            temporary = (directory == "/" ? "" : directory) + "/.\(name).\(UInt64.random(in: 0...UInt64.max)).tmp"
            fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0o644)
            if fd >= 0 || errno != EEXIST { break }
        }
        guard fd >= 0 else { throw self.failure("cannot create \(temporary)") }
        var ok = fchmod(fd, 0o644) == 0
        var offset = 0
        while ok && offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress.map { $0 + offset }, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { ok = false } else { offset += n }
        }
        let reason = ok ? nil : String(cString: strerror(errno))
        close(fd)
        guard ok else {
            unlink(temporary)
            throw MetricsFileError(path: self.path, message: "cannot write: \(reason ?? "unknown error")")
        }
        guard rename(temporary, self.path) == 0 else {
            let error = self.failure("cannot rename \(temporary) to it")
            unlink(temporary)
            throw error
        }
    }

    private func failure(_ what: String) -> MetricsFileError {
        MetricsFileError(path: self.path, message: "\(what): \(String(cString: strerror(errno)))")
    }
}

/// The metrics file could not be written.
public struct MetricsFileError: Error, Hashable, Sendable, CustomStringConvertible {
    public var path: String
    public var message: String
    public var description: String { "metrics_file \(self.path): \(self.message)" }
}

/// The daemon's writer of `metrics_file`, a `Service`: writes at start, after polls (``changed()``; at most once a
/// second however many polls end, so 1,000 accounts do not mean 1,000 writes a round), and a last time at
/// shutdown, after the poll scheduler has stopped (it is placed before the scheduler in the service group, and
/// the group shuts services down in reverse order). A failed write is logged, once until a write succeeds again;
/// it does not stop the daemon.
public final class MetricsFileWriter: Service, Sendable {
    private let file: MetricsFile
    private let metrics: PollMetrics
    private let logger: Logger
    private let stream: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation
    /// How long the writer waits after a write before the next, gathering the polls that end meanwhile.
    static let pause: Duration = .seconds(1)

    public init(file: MetricsFile, metrics: PollMetrics, logger: Logger) {
        self.file = file
        self.metrics = metrics
        self.logger = logger
        (self.stream, self.continuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// A poll ended: the file is written again soon.
    public func changed() { self.continuation.yield() }

    public func run() async throws {
        var failing = false
        let write = {
            do {
                try self.file.write(self.metrics.render())
                if failing { self.logger.notice("metrics file \(self.file.path) written again") }
                failing = false
            } catch {
                if !failing { self.logger.error("\(error)") }
                failing = true
            }
        }
        write()
        let continuation = self.continuation
        await withGracefulShutdownHandler {
            for await _ in self.stream {
                write()
                try? await Task.sleep(for: Self.pause)
            }
        } onGracefulShutdown: {
            continuation.finish()
        }
        write()
    }
}
