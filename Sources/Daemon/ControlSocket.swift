public import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
public import ServiceLifecycle
public import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// The daemon's control socket, a `Service`: a unix stream socket in the state directory (mode 0600; the state
/// directory is 0700), served by SwiftNIO. Each connection carries one ``ControlRequest`` line and gets one
/// ``ControlReply`` line (``ControlConnectionHandler``); a client that has not sent its line within
/// ``requestDeadline`` is disconnected. On graceful shutdown or cancellation the socket is closed and removed.
public struct ControlSocket: Service {
    public typealias Handler = @Sendable (ControlRequest) -> ControlReply

    /// How long a client has to send its request and read the reply.
    public static let requestDeadline: Duration = .seconds(2)
    /// Connections waiting to be accepted.
    static let backlog: Int32 = 16

    public let path: String
    private let server: any Channel
    /// Set when the service itself closes the socket; a close without it is a failure.
    private let closing: NIOLockedValueBox<Bool>

    /// The socket of the daemon of the state database `stateFile` in `stateDirectory`.
    public static func path(stateDirectory: String, stateFile: String = LockFile.defaultStateFileName) -> String {
        stateDirectory + "/" + LockFile.daemonFileStem(stateFile: stateFile) + ".sock"
    }

    /// Binds the socket, replacing a stale one (the caller holds the daemon lock, so no other daemon uses it), and
    /// accepts connections at once; `handler` answers each request, on the connection's event loop.
    public static func bind(
        stateDirectory: String, stateFile: String = LockFile.defaultStateFileName, logger: Logger,
        handler: @escaping Handler
    ) async throws -> ControlSocket {
        let path = Self.path(stateDirectory: stateDirectory, stateFile: stateFile)
        let deadline = TimeAmount(Self.requestDeadline)
        let server: any Channel
        do {
            server = try await ServerBootstrap(group: ControlPlane.group)
                .serverChannelOption(.backlog, value: Self.backlog)
                // A client may end its request by shutting down its side (`nc -N`): it still gets the reply.
                .childChannelOption(.allowRemoteHalfClosure, value: true)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            ControlConnectionHandler(handler: handler, logger: logger, deadline: deadline))
                    }
                }
                .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
        } catch {
            throw ControlSocketError(path: path, message: "cannot listen on the control socket: \(error)")
        }
        // The process umask (077) already made it 0700; the socket needs no execute bit.
        guard chmod(path, 0o600) == 0 else {
            let message = String(cString: strerror(errno))
            server.close(promise: nil)
            unlink(path)
            throw ControlSocketError(path: path, message: "cannot set the control socket's mode: \(message)")
        }
        return ControlSocket(path: path, server: server, closing: NIOLockedValueBox(false))
    }

    /// Serves until graceful shutdown or cancellation (a normal end: the group's grace ran out), then closes and
    /// removes the socket. Throws if the socket closed by itself.
    public func run() async throws {
        defer { unlink(self.path) }
        let (server, closing) = (self.server, self.closing)
        let close: @Sendable () -> Void = {
            closing.withLockedValue { $0 = true }
            server.close(promise: nil)
        }
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                // The close future never fails; it completes when the socket closes, whoever closed it.
                try? await server.closeFuture.get()
            } onGracefulShutdown: {
                close()
            }
        } onCancel: {
            close()
        }
        guard closing.withLockedValue({ $0 }) else {
            throw ControlSocketError(path: self.path, message: "the control socket closed unexpectedly")
        }
    }
}

/// The control socket cannot be created or bound, or it failed.
public struct ControlSocketError: Error, Hashable, Sendable, CustomStringConvertible {
    public var path: String
    public var message: String
    public var description: String { "control socket \(self.path): \(self.message)" }
}
