import NIOPosix

/// The daemon's own event loop, for its control socket and the timers that schedule polls: apart from the loops the
/// polls run on, which a poll holds while it waits for the state database (another process's write, for up to the
/// busy time-out), so that `popfetch wake` and `reload` are answered and polls start on time meanwhile.
enum ControlPlane {
    static let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
}
