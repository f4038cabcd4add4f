#if canImport(Glibc)
import Glibc
#endif
public import Logging
import NIOCore
import NIOPosix
public import ServiceLifecycle

/// The daemon's control socket, a `Service`: a unix stream socket in the state directory (mode 0600; the state
/// directory is 0700), served with SwiftNIO. Each connection carries one ``ControlRequest`` line and gets one
/// ``ControlReply`` line; a request that cannot be parsed gets `error bad-request …`, and a client that has not
/// sent its line within ``requestDeadline`` is disconnected. It stops accepting on graceful shutdown.
public struct ControlSocket: Service {
    public typealias Handler = @Sendable (ControlRequest) -> ControlReply
    typealias Connection = NIOAsyncChannel<ByteBuffer, ByteBuffer>

    /// How long a client has to send its request and read the reply.
    public static let requestDeadline: Duration = .seconds(2)

    public let path: String
    private let server: NIOAsyncChannel<Connection, Never>
    private let handler: Handler
    private let logger: Logger

    public static func path(stateDirectory: String) -> String { stateDirectory + "/daemon.sock" }

    /// Binds the socket, replacing a stale one (the caller holds the daemon lock, so no other daemon uses it).
    /// Requests are answered by `handler` once ``run()`` serves them.
    public static func bind(stateDirectory: String, logger: Logger, handler: @escaping Handler) async throws
        -> ControlSocket
    {
        let path = Self.path(stateDirectory: stateDirectory)
        let server: NIOAsyncChannel<Connection, Never>
        do {
            server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.backlog, value: 16)
                // A client may end its request by shutting down its side (`nc -N`): it still gets the reply.
                .childChannelOption(.allowRemoteHalfClosure, value: true)
                .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true) { channel in
                    channel.eventLoop.makeCompletedFuture { try Connection(wrappingChannelSynchronously: channel) }
                }
        } catch {
            throw ControlSocketError(path: path, message: "cannot listen on the control socket: \(error)")
        }
        // The process umask (077) already made it 0700; the socket needs no execute bit.
        guard chmod(path, 0o600) == 0 else {
            let message = String(cString: strerror(errno))
            try? await server.channel.close()
            throw ControlSocketError(path: path, message: "cannot set the control socket's mode: \(message)")
        }
        return ControlSocket(path: path, server: server, handler: handler, logger: logger)
    }

    /// Serves connections until graceful shutdown or cancellation, then closes and removes the socket. Cancellation
    /// (the group's grace ran out) is a normal end, not an error.
    public func run() async throws {
        defer { unlink(self.path) }
        do {
            try await withThrowingDiscardingTaskGroup { group in
                try await self.server.executeThenClose { connections in
                    for try await connection in connections.cancelOnGracefulShutdown() {
                        group.addTask { await self.serve(connection) }
                    }
                }
            }
        } catch where Task.isCancelled {
            return
        } catch {
            throw ControlSocketError(path: self.path, message: "cannot accept connections any more: \(error)")
        }
    }

    /// One request, one reply, within the deadline; any failure of this connection ends only this connection.
    private func serve(_ connection: Connection) async {
        let channel = connection.channel
        let deadline = channel.eventLoop.scheduleTask(in: TimeAmount(Self.requestDeadline)) { channel.close(promise: nil) }
        defer { deadline.cancel() }
        do {
            try await connection.executeThenClose { inbound, outbound in
                guard let reply = try await self.answer(inbound) else { return }
                try await outbound.write(ByteBuffer(string: reply.encoded))
            }
        } catch {
            self.logger.debug("control socket: a client went away: \(error)")
        }
    }

    /// Reads the request line (LF-terminated, or ended by the client's half-close) and answers it. Nil when the
    /// client sent nothing at all.
    private func answer(_ inbound: NIOAsyncChannelInboundStream<ByteBuffer>) async throws -> ControlReply? {
        var line = ByteBuffer()
        for try await var chunk in inbound {
            line.writeBuffer(&chunk)
            if let end = line.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) {
                line.moveWriterIndex(to: end)
                break
            }
            if line.readableBytes >= ControlRequest.maximumLineLength {
                return .badRequest("the request is longer than \(ControlRequest.maximumLineLength) octets")
            }
        }
        if line.readableBytes == 0 { return nil }
        let text = String(buffer: line)
        do {
            let request = try ControlRequest(parsing: text)
            return self.handler(request)
        } catch {
            self.logger.notice("control socket: refused a request: \(error)")
            return .badRequest(error.message)
        }
    }
}

/// The control socket cannot be created or bound.
public struct ControlSocketError: Error, Hashable, Sendable, CustomStringConvertible {
    public var path: String
    public var message: String
    public var description: String { "control socket \(self.path): \(self.message)" }
}
