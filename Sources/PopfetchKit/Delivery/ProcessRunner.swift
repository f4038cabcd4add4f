#if canImport(Glibc)
import Glibc
#endif
import Foundation
import NIOPosix

/// How a child process ended.
public struct ProcessOutcome: Hashable, Sendable {
    public enum Termination: Hashable, Sendable {
        case exited(Int32)
        case signaled(Int32)
    }
    public var termination: Termination
    /// The last bytes the process wrote to stdout and stderr (bounded), for error messages.
    public var output: String
    /// The process ran past its time-out and was killed.
    public var timedOut: Bool
    /// For ``ProcessInput/file(_:)``: how much of the input the process consumed.
    public var input: InputAccount?

    /// How much of a file fed through a pipe the child read.
    public struct InputAccount: Hashable, Sendable {
        /// Bytes of the file.
        public var length: Int
        /// Bytes the child read from the pipe before it exited (written, minus what was still in the pipe).
        public var consumed: Int
        public var readAll: Bool { self.consumed >= self.length }
    }
}

/// What a child gets as its standard input.
public enum ProcessInput: Hashable, Sendable {
    /// This descriptor, shared with the child as it is (for /dev/null).
    case descriptor(Int32)
    /// The whole regular file behind this descriptor, from offset 0, fed through a pipe in constant memory; the
    /// outcome's ``ProcessOutcome/input`` says how much of it the child read before exiting. The descriptor's own
    /// offset is not used, so runs one after another (or a stale offset) cannot skip any of it.
    case file(Int32)
}

public struct ProcessLaunchError: Error, Hashable, Sendable, CustomStringConvertible {
    public var program: String
    public var message: String
    public var description: String { "cannot run \(self.program): \(self.message)" }
}

/// Runs a program directly (no shell) with a file descriptor as its standard input, in its own process group,
/// with default signal dispositions (popfetch ignores SIGPIPE; its children must not inherit that), and kills the
/// whole group when it runs past the time-out. Waiting happens on NIO's thread pool, off the cooperative pool.
public enum ProcessRunner {
    static let outputLimit = 4096

    /// popfetch's own environment, as `KEY=VALUE` strings, computed once.
    static let inheritedEnvironment: [String] = ProcessInfo.processInfo.environment.map { "\($0.key)=\($0.value)" }

    public static func run(
        arguments: [String], stdin stdinFD: Int32, timeout: Int, environment: [String: String]? = nil
    ) async throws -> ProcessOutcome {
        try await self.spawn(
            arguments: arguments, input: .descriptor(stdinFD), stdout: nil, timeout: timeout,
            environment: environment.map { env in env.map { "\($0.key)=\($0.value)" } } ?? Self.inheritedEnvironment)
    }

    /// Runs a program with `input` as its standard input and popfetch's environment plus `extraEnvironment`
    /// (whose keys replace inherited ones).
    public static func run(
        arguments: [String], input: ProcessInput, timeout: Int, extraEnvironment: [String: String]
    ) async throws -> ProcessOutcome {
        let replaced = Set(extraEnvironment.keys.map { $0 + "=" })
        let inherited = Self.inheritedEnvironment.filter { entry in
            guard let eq = entry.firstIndex(of: "=") else { return true }
            return !replaced.contains(String(entry[...eq]))
        }
        let env = inherited + extraEnvironment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        return try await self.spawn(arguments: arguments, input: input, stdout: nil, timeout: timeout, environment: env)
    }

    /// Like ``run(arguments:stdin:timeout:environment:)`` but standard output goes to `stdout` (stderr is captured).
    public static func runCapturingStdout(
        arguments: [String], stdin stdinFD: Int32, stdout: Int32, timeout: Int
    ) async throws -> ProcessOutcome {
        try await self.spawn(
            arguments: arguments, input: .descriptor(stdinFD), stdout: stdout, timeout: timeout,
            environment: Self.inheritedEnvironment)
    }

    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32

    /// glibc ≥ 2.34's `posix_spawn_file_actions_addclosefrom_np`, which Swift's Glibc module does not expose
    /// (it sits behind `_GNU_SOURCE`); looked up once by name.
    private static let closeFrom: AddCloseFrom? = {
        guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: AddCloseFrom.self)
    }()

    /// Adds "close every descriptor from 3 up" to `actions`: one action with glibc ≥ 2.34, else one close action
    /// per descriptor open now (glibc ignores a close action for a descriptor that is closed by then).
    private static func addCloseFrom3(_ actions: inout posix_spawn_file_actions_t) {
        if let closeFrom = Self.closeFrom, closeFrom(&actions, 3) == 0 { return }
        let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        for fd in open.compactMap({ Int32($0) }) where fd > 2 {
            posix_spawn_file_actions_addclose(&actions, fd)
        }
    }

    /// Creates a pipe whose two ends are close-on-exec.
    private static func makePipe(program: String) throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else {
            throw ProcessLaunchError(program: program, message: String(cString: strerror(errno)))
        }
        guard fcntl(fds[0], F_SETFD, FD_CLOEXEC) == 0, fcntl(fds[1], F_SETFD, FD_CLOEXEC) == 0 else {
            let message = String(cString: strerror(errno))
            close(fds[0])
            close(fds[1])
            throw ProcessLaunchError(program: program, message: message)
        }
        return (fds[0], fds[1])
    }

    private static func spawn(
        arguments: [String], input: ProcessInput, stdout stdoutFD: Int32?, timeout: Int, environment envStrings: [String]
    ) async throws -> ProcessOutcome {
        guard let program = arguments.first else {
            throw ProcessLaunchError(program: "", message: "empty command")
        }
        let (readFD, writeFD) = try Self.makePipe(program: program)
        var feeder: InputFeeder?
        let stdinFD: Int32
        switch input {
        case .descriptor(let fd):
            stdinFD = fd
        case .file(let fd):
            var st = stat()
            guard fstat(fd, &st) == 0 else {
                let message = String(cString: strerror(errno))
                close(readFD)
                close(writeFD)
                throw ProcessLaunchError(program: program, message: "cannot read its input: \(message)")
            }
            let inPipe: (read: Int32, write: Int32)
            do {
                inPipe = try Self.makePipe(program: program)
            } catch {
                close(readFD)
                close(writeFD)
                throw error
            }
            _ = fcntl(inPipe.write, F_SETFL, fcntl(inPipe.write, F_GETFL) | O_NONBLOCK)
            feeder = InputFeeder(source: fd, length: Int(st.st_size), pipeRead: inPipe.read, pipeWrite: inPipe.write)
            stdinFD = inPipe.read
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdinFD, 0)
        posix_spawn_file_actions_adddup2(&actions, stdoutFD ?? writeFD, 1)
        posix_spawn_file_actions_adddup2(&actions, writeFD, 2)
        // The child gets fds 0-2 and nothing else: not the POP3 socket, not NIO's epoll and eventfd descriptors,
        // not another account's spool, whether or not they were opened close-on-exec.
        Self.addCloseFrom3(&actions)

        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        // Handled signals reset to default on exec by themselves; only ignored ones (SIGPIPE: popfetch ignores it)
        // would be inherited. Resetting just those saves dozens of system calls per child.
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        sigaddset(&defaults, SIGHUP)
        sigaddset(&defaults, SIGINT)
        sigaddset(&defaults, SIGTERM)
        sigaddset(&defaults, SIGUSR1)
        sigaddset(&defaults, SIGUSR2)
        sigaddset(&defaults, SIGCHLD)
        posix_spawnattr_setsigdefault(&attr, &defaults)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attr, &empty)
        posix_spawnattr_setpgroup(&attr, 0)
        posix_spawnattr_setflags(
            &attr, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP))

        var pid: pid_t = 0
        var rc: Int32 = 0
        // ETXTBSY: the program file is still open for writing somewhere (being installed, or a descriptor
        // inherited by another fork for an instant); it clears within milliseconds, so try again briefly.
        for attempt in 0..<20 {
            rc = withCStrings(arguments) { argv in
                withCStrings(envStrings) { envp in
                    posix_spawnp(&pid, program, &actions, &attr, argv, envp)
                }
            }
            if rc != ETXTBSY || attempt == 19 { break }
            usleep(10_000)
        }
        close(writeFD)
        guard rc == 0 else {
            close(readFD)
            feeder?.closeAll()
            throw ProcessLaunchError(program: program, message: String(cString: strerror(rc)))
        }
        let childPID = pid
        let childFeeder = feeder
        return try await NIOThreadPool.singleton.runIfActive {
            Self.wait(pid: childPID, outputFD: readFD, feeder: childFeeder, timeout: timeout)
        }
    }

    /// Reads the child's output until it closes it, feeds its input, reaps the child, and enforces the time-out.
    private static func wait(pid: pid_t, outputFD: Int32, feeder initialFeeder: InputFeeder?, timeout: Int)
        -> ProcessOutcome
    {
        defer { close(outputFD) }
        var feeder = initialFeeder
        defer { feeder?.closeAll() }
        let deadline = Date().addingTimeInterval(Double(timeout))
        var output: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        var status: Int32 = 0
        var reaped = false
        var timedOut = false
        var outputOpen = true
        // Once the child closed its output it is normally exiting: poll for its end with a short, growing pause.
        var pause: UInt32 = 20
        while !reaped {
            let remaining = deadline.timeIntervalSinceNow
            if remaining <= 0 && !timedOut {
                timedOut = true
                kill(-pid, SIGKILL)
                kill(pid, SIGKILL)
                feeder?.stopFeeding()
            }
            var fds: [pollfd] = []
            if outputOpen { fds.append(pollfd(fd: outputFD, events: Int16(POLLIN), revents: 0)) }
            if let f = feeder, f.isFeeding { fds.append(pollfd(fd: f.pipeWrite, events: Int16(POLLOUT), revents: 0)) }
            if !fds.isEmpty {
                let ms = timedOut ? 50 : Int32(max(1, min(200, remaining * 1000)))
                var progressed = false
                if poll(&fds, nfds_t(fds.count), ms) > 0 {
                    for p in fds where p.revents != 0 {
                        if p.fd == outputFD {
                            let n = buf.withUnsafeMutableBytes { b -> Int in
                                guard let base = b.baseAddress else { return 0 }
                                return read(outputFD, base, b.count)
                            }
                            if n > 0 {
                                output.append(contentsOf: buf[0..<n])
                                if output.count > outputLimit * 2 { output.removeFirst(output.count - outputLimit) }
                                progressed = true
                            } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
                                outputOpen = false
                            }
                        } else if feeder?.pump() == true {
                            progressed = true
                        }
                    }
                }
                if progressed { continue }
            }
            let w = waitpid(pid, &status, WNOHANG)
            if w == pid || (w < 0 && errno != EINTR) {
                reaped = true
            } else if fds.isEmpty {
                usleep(pause)
                pause = min(pause * 2, timedOut ? 10_000 : 5_000)
            }
        }
        let termination: ProcessOutcome.Termination
        if status & 0x7f == 0 {
            termination = .exited((status >> 8) & 0xff)
        } else {
            termination = .signaled(status & 0x7f)
        }
        if output.count > outputLimit { output.removeFirst(output.count - outputLimit) }
        let text = String(decoding: output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return ProcessOutcome(
            termination: termination, output: text, timedOut: timedOut, input: feeder?.account())
    }

    /// Copies a file into the child's stdin pipe, 64 KiB at a time, never blocking (the write end is non-blocking).
    ///
    /// popfetch keeps the pipe's read end open until the child has been reaped, so that what the child left unread
    /// can be measured (FIONREAD); a child that exits early therefore never causes EPIPE, and one that stops
    /// reading simply stops the copy (the time-out still applies).
    private struct InputFeeder {
        let source: Int32
        let length: Int
        let pipeRead: Int32
        private(set) var pipeWrite: Int32
        private var offset = 0
        private var chunk: [UInt8] = []
        private var chunkStart = 0
        private var written = 0

        init(source: Int32, length: Int, pipeRead: Int32, pipeWrite: Int32) {
            self.source = source
            self.length = length
            self.pipeRead = pipeRead
            self.pipeWrite = pipeWrite
        }

        var isFeeding: Bool { self.pipeWrite >= 0 }

        /// Writes what the pipe takes now. Returns whether any byte moved. Closes the write end (EOF for the
        /// child) once the whole file is in the pipe.
        mutating func pump() -> Bool {
            var moved = false
            while self.pipeWrite >= 0 {
                if self.chunkStart == self.chunk.count {
                    if self.offset >= self.length {
                        self.stopFeeding()
                        break
                    }
                    self.chunk = [UInt8](repeating: 0, count: min(65_536, self.length - self.offset))
                    let want = self.chunk.count
                    let source = self.source
                    let at = off_t(self.offset)
                    let n = self.chunk.withUnsafeMutableBytes { b -> Int in
                        guard let base = b.baseAddress else { return 0 }
                        return pread(source, base, want, at)
                    }
                    if n <= 0 {
                        if n < 0 && errno == EINTR { continue }
                        // The file is shorter than it was, or unreadable: the child gets EOF early, and the
                        // account shows less than the length.
                        self.chunk = []
                        self.chunkStart = 0
                        self.stopFeeding()
                        break
                    }
                    if n < want { self.chunk.removeLast(want - n) }
                    self.chunkStart = 0
                    self.offset += n
                }
                let fd = self.pipeWrite
                let start = self.chunkStart
                let n = self.chunk.withUnsafeBytes { b -> Int in
                    guard let base = b.baseAddress else { return 0 }
                    return write(fd, base + start, b.count - start)
                }
                if n > 0 {
                    self.chunkStart += n
                    self.written += n
                    moved = true
                } else if n < 0 && errno == EINTR {
                    continue
                } else {
                    if n < 0 && errno != EAGAIN { self.stopFeeding() }
                    break
                }
            }
            return moved
        }

        /// Closes the write end: the child sees EOF after what is already in the pipe.
        mutating func stopFeeding() {
            if self.pipeWrite >= 0 {
                close(self.pipeWrite)
                self.pipeWrite = -1
            }
        }

        /// What the child consumed: bytes written minus bytes still in the pipe. Call after the child was reaped.
        func account() -> ProcessOutcome.InputAccount {
            var unread: Int32 = 0
            if ioctl(self.pipeRead, UInt(FIONREAD), &unread) != 0 { unread = 0 }
            let consumed = max(0, self.written - Int(unread))
            return ProcessOutcome.InputAccount(length: self.length, consumed: consumed)
        }

        func closeAll() {
            if self.pipeWrite >= 0 { close(self.pipeWrite) }
            close(self.pipeRead)
        }
    }

    private static func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
        var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
        pointers.append(nil)
        defer { for p in pointers { free(p) } }
        return body(pointers)
    }
}
