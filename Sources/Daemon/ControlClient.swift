import NIOCore
import NIOPosix
public import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// The client side of the control socket (`popfetch wake`): sends one ``ControlRequest`` and reads the
/// ``ControlReply``, all within a deadline.
public enum ControlClient {
    /// How long the whole exchange may take.
    public static let deadline: Duration = .seconds(5)

    public static func send(
        _ request: ControlRequest, stateDirectory: String, stateFile: String = LockFile.defaultStateFileName,
        deadline: Duration = Self.deadline
    ) async throws(ControlClientError) -> ControlReply {
        let limit = TimeAmount(deadline)
        let path = ControlSocket.path(stateDirectory: stateDirectory, stateFile: stateFile)
        let line: String
        do {
            line = try request.encoded()
        } catch {
            throw ControlClientError(.badRequest, path: path, error.message)
        }
        let connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            connection = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(limit)
                .connect(unixDomainSocketPath: path) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            let code = (error as? IOError)?.errnoCode
            if code == ENOENT || code == ECONNREFUSED {
                throw ControlClientError(.notRunning, path: path, "no daemon listens on \(path)")
            }
            throw ControlClientError(.notRunning, path: path, "cannot connect to \(path): \(error)")
        }
        let channel = connection.channel
        let timer = channel.eventLoop.scheduleTask(in: limit) { channel.close(promise: nil) }
        defer { timer.cancel() }
        let received: ByteBuffer
        do {
            received = try await connection.executeThenClose { inbound, outbound in
                try await outbound.write(ByteBuffer(string: line))
                var reply = ByteBuffer()
                for try await var chunk in inbound {
                    reply.writeBuffer(&chunk)
                    if reply.readableBytesView.contains(UInt8(ascii: "\n"))
                        || reply.readableBytes >= ControlRequest.maximumLineLength
                    {
                        break
                    }
                }
                return reply
            }
        } catch {
            throw ControlClientError(.noReply, path: path, "the daemon did not answer: \(error)")
        }
        guard received.readableBytes > 0 else {
            throw ControlClientError(.noReply, path: path, "the daemon did not answer within \(deadline)")
        }
        let text = String(buffer: received)
        do {
            return try ControlReply(parsing: text.prefix { $0 != "\n" })
        } catch {
            throw ControlClientError(.badReply, path: path, "the daemon's reply makes no sense: \(error.message)")
        }
    }
}

/// The control request could not be made, or got no usable reply.
public struct ControlClientError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Backing: String, Hashable, Sendable { case notRunning, noReply, badReply, badRequest }
        private let backing: Backing
        /// Nothing listens on the socket: no daemon runs for this state.
        public static let notRunning = Code(backing: .notRunning)
        /// Connected, but no reply came within the deadline.
        public static let noReply = Code(backing: .noReply)
        /// A reply came that is no ``ControlReply``.
        public static let badReply = Code(backing: .badReply)
        /// The request cannot be sent as one line.
        public static let badRequest = Code(backing: .badRequest)
        public var description: String { self.backing.rawValue }
    }

    public var code: Code
    public var path: String
    public var message: String

    public init(_ code: Code, path: String, _ message: String) {
        self.code = code
        self.path = path
        self.message = message
    }

    public var description: String { self.message }
    public static func == (a: Self, b: Self) -> Bool { a.code == b.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(self.code) }
}
