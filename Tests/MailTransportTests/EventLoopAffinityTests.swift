import NIOCore
import NIOPosix
import SystemSupport
import Testing

/// A poll runs on one event loop: its task, its child tasks and its connections share a thread (fewer wake-ups per
/// message; see EventLoopAffinity).
@Suite("Event loop affinity")
struct EventLoopAffinityTests {
    @Test("inside run, the task and its child tasks run on the loop new connections get; outside, no loop is held")
    func runsOnTheLoop() async throws {
        let (task, children, sameLoop) = await EventLoopAffinity.run {
            let loop = EventLoopAffinity.loopForNewWork
            let task = loop.inEventLoop
            let children = await withTaskGroup(of: Bool.self) { group in
                for _ in 0..<4 { group.addTask { EventLoopAffinity.loopForNewWork.inEventLoop } }
                return await group.reduce(true) { $0 && $1 }
            }
            // Every connection and wait of the run is given the same loop.
            let sameLoop = EventLoopAffinity.loopForNewWork === loop
            return (task, children, sameLoop)
        }
        #expect(task, "the body runs on the chosen event loop")
        #expect(children, "child tasks inherit the loop")
        #expect(sameLoop)
        // Outside a run, each call may hand out another loop of the group, and the caller is not on it.
        #expect(!EventLoopAffinity.loopForNewWork.inEventLoop)
    }

    @Test("a channel's replies resume the run on its own thread: no hop to another thread between read and reply")
    func channelOnTheSameThread() async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeSucceededVoidFuture()
            }
            .bind(host: "127.0.0.1", port: 0).get()
        defer { server.close(promise: nil) }
        let port = try #require(server.localAddress?.port)
        let onLoop = try await EventLoopAffinity.run {
            let loop = EventLoopAffinity.loopForNewWork
            let channel = try await ClientBootstrap(group: loop).connect(host: "127.0.0.1", port: port).get()
            defer { channel.close(promise: nil) }
            return channel.eventLoop === loop && loop.inEventLoop
        }
        #expect(onLoop, "after awaiting the connect, the run is back on the channel's loop")
    }
}
