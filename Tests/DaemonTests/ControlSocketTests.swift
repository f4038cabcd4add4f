import Foundation
import Logging
import MailTestKit
import NIOPosix
import ServiceLifecycleTestKit
import Synchronization
import Testing

@testable import Daemon

#if canImport(Glibc)
    import Glibc
#endif

/// The control socket as a service, in process: real unix sockets, the real client, raw clients that misbehave.
@Suite("Control socket", .offThePool)
struct ControlSocketTests {
    static let logger = Logger(label: "test")

    final class Seen: Sendable {
        let requests = Mutex<[ControlRequest]>([])
    }

    static func bind(_ dir: String, seen: Seen? = nil) async throws -> ControlSocket {
        try await ControlSocket.bind(stateDirectory: dir, logger: Self.logger) { request in
            seen?.requests.withLock { $0.append(request) }
            switch request {
            case .wake(nil), .wake("work"): return .ok
            case .wake(let name?): return .unknownAccount(name)
            }
        }
    }

    static func address(_ path: String) -> sockaddr_un {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { p in
            for (i, b) in Array(path.utf8).prefix(p.count - 1).enumerated() { p[i] = b }
        }
        return addr
    }

    /// Connects to `path`, sends `bytes` (half-closing after them if asked), and reads until the daemon closes:
    /// what came back and how long it took. Blocking, so it runs on NIO's thread pool.
    static func raw(_ path: String, send bytes: String, halfClose: Bool = false) async throws -> (String, Double) {
        try await NIOThreadPool.singleton.runIfActive {
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            defer { close(fd) }
            var addr = Self.address(path)
            let rc = withUnsafePointer(to: &addr) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            guard rc == 0 else { throw TestFailure("connect: \(String(cString: strerror(errno)))") }
            var tv = timeval(tv_sec: 10, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            let start = Date()
            let out = Array(bytes.utf8)
            if !out.isEmpty { _ = out.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } }
            if halfClose { shutdown(fd, Int32(SHUT_WR)) }
            var reply: [UInt8] = []
            var buf = [UInt8](repeating: 0, count: 1024)
            while true {
                let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                reply += buf[0..<n]
            }
            return (String(decoding: reply, as: UTF8.self), Date().timeIntervalSince(start))
        }
    }

    @Test("answers wake requests through ControlClient; the socket is 0600; graceful shutdown removes it")
    func serves() async throws {
        try await withTaskExecutorPreference(TestExecutor.shared) {
            let dir = try makeTempDirectory("control")
            chmod(dir, 0o700)
            let seen = Seen()
            let control = try await Self.bind(dir, seen: seen)
            var st = stat()
            #expect(stat(control.path, &st) == 0)
            #expect(st.st_mode & 0o7777 == 0o600, "mode \(String(st.st_mode & 0o7777, radix: 8))")
            try await testGracefulShutdown { trigger in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await control.run() }
                    #expect(try await ControlClient.send(.wake(account: nil), stateDirectory: dir) == .ok)
                    #expect(try await ControlClient.send(.wake(account: "work"), stateDirectory: dir) == .ok)
                    let unknown = try await ControlClient.send(.wake(account: "nope"), stateDirectory: dir)
                    #expect(unknown == .unknownAccount("nope"))
                    trigger.triggerGracefulShutdown()
                    try await group.waitForAll()
                }
            }
            let requests = seen.requests.withLock { $0 }
            #expect(requests == [.wake(account: nil), .wake(account: "work"), .wake(account: "nope")])
            #expect(!FileManager.default.fileExists(atPath: control.path), "the socket is removed at shutdown")
            await #expect(throws: ControlClientError(.notRunning, path: "", "")) {
                try await ControlClient.send(.wake(account: nil), stateDirectory: dir)
            }
        }
    }

    @Test("a bad request gets an error reply, an over-long one too, and the server keeps serving")
    func badRequests() async throws {
        try await withTaskExecutorPreference(TestExecutor.shared) {
            let dir = try makeTempDirectory("control")
            let control = try await Self.bind(dir)
            let task = Task(executorPreference: TestExecutor.shared) { try await control.run() }
            defer { task.cancel() }
            let (garbage, _) = try await Self.raw(control.path, send: "frobnicate\n")
            #expect(garbage == "error bad-request unknown request \"frobnicate\"\n")
            let (binary, _) = try await Self.raw(control.path, send: "wake \u{1}\u{2}\n")
            #expect(binary.hasPrefix("error bad-request "), "\(binary)")
            let (long, _) = try await Self.raw(control.path, send: String(repeating: "w", count: 4000))
            #expect(long == "error bad-request the request is longer than 512 octets\n")
            // No line end, but the client half-closed: the request is what it sent.
            let (unterminated, _) = try await Self.raw(control.path, send: "wake", halfClose: true)
            #expect(unterminated == "ok\n")
            #expect(try await ControlClient.send(.wake(account: nil), stateDirectory: dir) == .ok)
        }
    }

    @Test("a client that sends nothing is disconnected at the deadline, without a reply")
    func slowClient() async throws {
        try await withTaskExecutorPreference(TestExecutor.shared) {
            let dir = try makeTempDirectory("control")
            let control = try await Self.bind(dir)
            let task = Task(executorPreference: TestExecutor.shared) { try await control.run() }
            defer { task.cancel() }
            let (reply, seconds) = try await Self.raw(control.path, send: "")
            #expect(reply.isEmpty)
            #expect(seconds >= 1.5 && seconds < 6, "disconnected after \(seconds) s (deadline 2 s)")
            #expect(try await ControlClient.send(.wake(account: nil), stateDirectory: dir) == .ok)
        }
    }

    @Test("cancellation ends run() without an error and removes the socket")
    func cancelled() async throws {
        try await withTaskExecutorPreference(TestExecutor.shared) {
            let dir = try makeTempDirectory("control")
            let control = try await Self.bind(dir)
            let task = Task(executorPreference: TestExecutor.shared) { try await control.run() }
            #expect(try await ControlClient.send(.wake(account: nil), stateDirectory: dir) == .ok)
            task.cancel()
            try await task.value
            #expect(!FileManager.default.fileExists(atPath: control.path))
        }
    }

    @Test("bind replaces a stale socket and refuses a path that is not a socket")
    func stale() async throws {
        try await withTaskExecutorPreference(TestExecutor.shared) {
            let dir = try makeTempDirectory("control")
            let path = ControlSocket.path(stateDirectory: dir)
            // A socket left by a daemon that was killed: bound, never unlinked.
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var addr = Self.address(path)
            let rc = withUnsafePointer(to: &addr) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            close(fd)
            try #require(rc == 0)
            let control = try await Self.bind(dir)
            let task = Task(executorPreference: TestExecutor.shared) { try await control.run() }
            #expect(try await ControlClient.send(.wake(account: nil), stateDirectory: dir) == .ok)
            task.cancel()
            try await task.value

            try "not a socket".write(toFile: path, atomically: true, encoding: .utf8)
            await #expect(throws: ControlSocketError.self) { try await Self.bind(dir) }
            #expect(FileManager.default.fileExists(atPath: path), "a file that is not a socket is left alone")
        }
    }

    @Test("the client gives up at its deadline when nothing answers")
    func clientDeadline() async throws {
        try await withTaskExecutorPreference(TestExecutor.shared) {
            let dir = try makeTempDirectory("control")
            let path = ControlSocket.path(stateDirectory: dir)
            // Listens, never accepts: the kernel completes the connection, nobody answers.
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            defer { close(fd) }
            var addr = Self.address(path)
            let rc = withUnsafePointer(to: &addr) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            try #require(rc == 0 && listen(fd, 4) == 0)
            let start = Date()
            await #expect(throws: ControlClientError(.noReply, path: "", "")) {
                try await ControlClient.send(.wake(account: nil), stateDirectory: dir, deadline: .milliseconds(500))
            }
            #expect(Date().timeIntervalSince(start) < 3)
        }
    }
}
