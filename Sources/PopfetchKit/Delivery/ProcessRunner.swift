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
        try await self.spawn(arguments: arguments, stdin: stdinFD, stdout: nil, timeout: timeout, environment: environment)
    }

    /// Like ``run(arguments:stdin:timeout:environment:)`` but standard output goes to `stdout` (stderr is captured).
    public static func runCapturingStdout(
        arguments: [String], stdin stdinFD: Int32, stdout: Int32, timeout: Int
    ) async throws -> ProcessOutcome {
        try await self.spawn(arguments: arguments, stdin: stdinFD, stdout: stdout, timeout: timeout, environment: nil)
    }

    private static func spawn(
        arguments: [String], stdin stdinFD: Int32, stdout stdoutFD: Int32?, timeout: Int,
        environment: [String: String]?
    ) async throws -> ProcessOutcome {
        guard let program = arguments.first else {
            throw ProcessLaunchError(program: "", message: "empty command")
        }
        var pipeFDs: [Int32] = [-1, -1]
        guard pipe(&pipeFDs) == 0,
            fcntl(pipeFDs[0], F_SETFD, FD_CLOEXEC) == 0, fcntl(pipeFDs[1], F_SETFD, FD_CLOEXEC) == 0
        else {
            throw ProcessLaunchError(program: program, message: String(cString: strerror(errno)))
        }
        let readFD = pipeFDs[0]
        let writeFD = pipeFDs[1]

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdinFD, 0)
        posix_spawn_file_actions_adddup2(&actions, stdoutFD ?? writeFD, 1)
        posix_spawn_file_actions_adddup2(&actions, writeFD, 2)

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

        let envStrings = environment.map { env in env.map { "\($0.key)=\($0.value)" } } ?? Self.inheritedEnvironment
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
            throw ProcessLaunchError(program: program, message: String(cString: strerror(rc)))
        }
        let childPID = pid
        return try await NIOThreadPool.singleton.runIfActive {
            Self.wait(pid: childPID, outputFD: readFD, timeout: timeout)
        }
    }

    /// Reads the child's output until it closes it, reaps the child, and enforces the time-out.
    private static func wait(pid: pid_t, outputFD: Int32, timeout: Int) -> ProcessOutcome {
        defer { close(outputFD) }
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
            }
            if outputOpen {
                var pfd = pollfd(fd: outputFD, events: Int16(POLLIN), revents: 0)
                let ms = timedOut ? 50 : Int32(max(1, min(200, remaining * 1000)))
                let pr = poll(&pfd, 1, ms)
                if pr > 0 {
                    let n = buf.withUnsafeMutableBytes { p -> Int in
                        guard let base = p.baseAddress else { return 0 }
                        return read(outputFD, base, p.count)
                    }
                    if n > 0 {
                        output.append(contentsOf: buf[0..<n])
                        if output.count > outputLimit * 2 { output.removeFirst(output.count - outputLimit) }
                        continue
                    } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
                        outputOpen = false
                    }
                }
            }
            let w = waitpid(pid, &status, WNOHANG)
            if w == pid || (w < 0 && errno != EINTR) {
                reaped = true
            } else if !outputOpen {
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
        return ProcessOutcome(termination: termination, output: text, timedOut: timedOut)
    }

    private static func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
        var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
        pointers.append(nil)
        defer { for p in pointers { free(p) } }
        return body(pointers)
    }
}
