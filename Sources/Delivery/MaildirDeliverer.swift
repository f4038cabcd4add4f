import Foundation
public import Spool
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Built-in Maildir delivery (getmail6's safest destination): the message is written to `tmp/`, fsync'd, renamed
/// into `new/`, and the directory fsync'd, so that once `deliver` returns the message survives a crash; a reader
/// never sees a partial file. A write error (a full disk) is a temporary failure: the message stays on the server.
public struct MaildirDeliverer: Deliverer {
    public var directory: String
    private static let counter = Atomic<Int>(0)

    public init(directory: String) {
        self.directory = directory
    }

    public func recipientGroups(_ recipients: [String]) -> [[String]] { [recipients] }

    public var blocksItsThread: Bool { true }

    public func deliver(_ message: SpooledMessage, to recipients: [String]) async throws -> [RecipientOutcome] {
        [RecipientOutcome(recipients: recipients, result: self.store(message))]
    }

    func store(_ message: SpooledMessage) -> DeliveryResult {
        do {
            try self.ensureDirectories()
            let name = Self.uniqueName(size: message.length)
            let tmp = self.directory + "/tmp/" + name
            let fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw MaildirError("cannot create \(tmp): \(Self.errno())") }
            var ok = false
            defer {
                close(fd)
                if !ok { unlink(tmp) }
            }
            try Self.copy(message, to: fd)
            guard fsync(fd) == 0 else { throw MaildirError("fsync \(tmp): \(Self.errno())") }
            let dest = self.directory + "/new/" + name
            guard rename(tmp, dest) == 0 else { throw MaildirError("rename into new/: \(Self.errno())") }
            ok = true
            let dfd = open(self.directory + "/new", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if dfd >= 0 {
                fsync(dfd)
                close(dfd)
            }
            return .delivered
        } catch let e as MaildirError {
            return .temporaryFailure("maildir \(self.directory): \(e.message)")
        } catch {
            return .temporaryFailure("maildir \(self.directory): \(error)")
        }
    }

    private func ensureDirectories() throws {
        for sub in ["", "/tmp", "/new", "/cur"] {
            let path = self.directory + sub
            if mkdir(path, 0o700) != 0 && Glibc.errno != EEXIST {
                throw MaildirError("cannot create \(path): \(Self.errno())")
            }
        }
    }

    /// Copies the whole spool file (trace header and message), exactly its recorded length.
    static func copy(_ message: SpooledMessage, to dst: Int32) throws {
        var reader = message.makeReader(chunkSize: 256 * 1024)
        while try reader.nextChunk({ try Self.writeAll($0, to: dst) }) != nil {}
    }

    private static func writeAll(_ bytes: UnsafeRawBufferPointer, to dst: Int32) throws {
        guard let base = bytes.baseAddress else { return }
        var written = 0
        while written < bytes.count {
            let w = write(dst, base + written, bytes.count - written)
            if w < 0 {
                if Glibc.errno == EINTR { continue }
                throw MaildirError("write: \(Self.errno())")
            }
            written += w
        }
    }

    /// The host name as a Maildir name carries it: `/` and `:` escaped (the convention), found once.
    static let hostPart = TraceHeader.localHostName().replacingOccurrences(of: "/", with: "\\057")
        .replacingOccurrences(of: ":", with: "\\072")

    /// `time.M<usec>P<pid>Q<counter>.<host>,S=<size>` (the Maildir naming convention).
    static func uniqueName(size: Int) -> String {
        var tv = timeval()
        gettimeofday(&tv, nil)
        let n = Self.counter.add(1, ordering: .relaxed).newValue
        let host = Self.hostPart
        return "\(tv.tv_sec).M\(tv.tv_usec)P\(getpid())Q\(n)R\(UInt32.random(in: 0...UInt32.max)).\(host),S=\(size)"
    }

    static func errno() -> String { String(cString: strerror(Glibc.errno)) }
}

struct MaildirError: Error {
    var message: String
    init(_ m: String) { self.message = m }
}
