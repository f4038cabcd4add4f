public import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// The one way to read a spooled message back: the deliverers never see the spool file's descriptor.
extension SpooledMessage {
    /// Bytes in the spool file: popfetch's trace header, then the message (LF line ends).
    public var length: Int { self.traceHeaderLength + self.storedSize }

    /// Reads the spool file from `start` (0: the trace header's first byte) to its recorded end, in chunks of at
    /// most `chunkSize` bytes.
    public func makeReader(from start: Int = 0, chunkSize: Int = 64 * 1024) -> SpoolReader {
        SpoolReader(
            descriptor: self.descriptor, start: min(max(0, start), self.length), end: self.length,
            chunkSize: max(1, chunkSize))
    }

    /// The whole spool file (trace header and message) as a child process's standard input (see
    /// ``ProcessInput/file(_:)``); valid while this message value lives.
    public var processInput: ProcessInput { .file(self.descriptor.fd) }

    /// Up to `maximum` bytes of the message itself (after the trace header), for a look at its header section.
    public func prefix(_ maximum: Int) throws -> [UInt8] {
        var reader = self.makeReader(from: self.traceHeaderLength, chunkSize: min(max(0, maximum), self.storedSize))
        return try reader.nextChunk { Array($0) } ?? []
    }
}

/// Reads a spooled message in order, exactly to the length recorded when it was spooled.
///
/// The end is where the spool's record says, never where a read happens to come back short: a short `pread` (FUSE,
/// network filesystems) is read on, and a file that ends early is an error, so no receiver is ever handed a
/// truncated message as if it were whole.
public struct SpoolReader {
    private let descriptor: SpoolDescriptor
    private let end: Int
    private var buffer: [UInt8]
    /// The offset of the next byte to read.
    public private(set) var offset: Int

    init(descriptor: SpoolDescriptor, start: Int, end: Int, chunkSize: Int) {
        self.descriptor = descriptor
        self.offset = start
        self.end = end
        self.buffer = [UInt8](repeating: 0, count: min(chunkSize, max(end - start, 1)))
    }

    /// Whether every byte up to the recorded end has been read.
    public var isAtEnd: Bool { self.offset >= self.end }

    /// Reads the next chunk (full, except the last) and hands it to `body`; nil once the end was reached.
    public mutating func nextChunk<Result>(
        _ body: (UnsafeRawBufferPointer) throws -> Result
    ) throws -> Result? {
        guard !self.isAtEnd else { return nil }
        let want = min(self.buffer.count, self.end - self.offset)
        var filled = 0
        let fd = self.descriptor.fd
        let start = self.offset
        while filled < want {
            let n = self.buffer.withUnsafeMutableBytes { p -> Int in
                guard let base = p.baseAddress else { return -1 }
                return pread(fd, base + filled, want - filled, off_t(start + filled))
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw SpoolError(message: "cannot read the spool: \(String(cString: strerror(errno)))")
            }
            if n == 0 {
                throw SpoolError(message: "the spool file ends after \(start + filled) of its \(self.end) bytes")
            }
            filled += n
        }
        self.offset += filled
        return try self.buffer.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[0..<filled])) }
    }
}
