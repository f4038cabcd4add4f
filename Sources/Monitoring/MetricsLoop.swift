import NIOPosix

/// The metrics endpoint's own event loop: apart from the loops the polls run on, which a poll holds while it waits
/// for the state database, so that a scrape is answered meanwhile.
enum MetricsLoop {
    static let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
}
