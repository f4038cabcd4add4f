public import NIOCore

/// Writes an APPEND's literal: exactly the size announced, no more.
public final class IMAPLiteralWriter {
    let connection: IMAPConnection
    let size: Int
    public private(set) var written = 0

    init(connection: IMAPConnection, size: Int) {
        self.connection = connection
        self.size = size
    }

    /// One block of the message. More than announced throws, and the connection is closed.
    public func write(_ block: ByteBuffer) async throws {
        guard self.written + block.readableBytes <= self.size else {
            self.connection.io.close()
            throw IMAPTransportError(
                .connectionClosed, host: self.connection.host, port: self.connection.port,
                phase: self.connection.phase, detail: "the message is longer than the \(self.size) bytes announced")
        }
        self.written += block.readableBytes
        try await self.connection.write(block)
    }
}
