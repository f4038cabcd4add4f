import CSystemLinux
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

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
        /// Bytes the child read before it exited, when known (nil: it left part of the file unread, amount unknown).
        public var consumed: Int?
        public var readAll: Bool { (self.consumed ?? -1) >= self.length }
    }
}

/// What a child gets as its standard input.
public enum ProcessInput: Hashable, Sendable {
    /// This descriptor, shared with the child as it is (for /dev/null).
    case descriptor(Int32)
    /// The whole regular file behind this descriptor, from offset 0, through a pipe that is full before the child
    /// starts (a file up to ``ProcessRunner/prefillLimit``), or else fed by a `cat` of its own: either way a popfetch
    /// killed meanwhile cannot cut the child's input short. The outcome's ``ProcessOutcome/input`` says whether the
    /// child read all of it before exiting.
    case file(Int32)

    var fd: Int32 {
        switch self {
        case .descriptor(let fd), .file(let fd): return fd
        }
    }
}

public struct ProcessLaunchError: Error, Hashable, Sendable, CustomStringConvertible {
    public var program: String
    public var message: String
    /// The system's error number, when a system call failed.
    public var code: Int32? = nil
    public var description: String { "cannot run \(self.program): \(self.message)" }
    /// The system ran short of processes, descriptors, pipes or memory: a passing condition, so the message waits
    /// for the next poll rather than counting toward `max_attempts`.
    public var isTemporary: Bool {
        guard let code = self.code else { return false }
        return [EMFILE, ENFILE, EAGAIN, ENOMEM, ENOBUFS].contains(code)
    }

    /// The failure of the system call that just set `errno`, with its code (read before anything else can change
    /// it), after `what` failed if given.
    static func lastError(program: String, _ what: String? = nil) -> ProcessLaunchError {
        let code = errno
        let text = String(cString: strerror(code))
        return ProcessLaunchError(program: program, message: what.map { "\($0): \(text)" } ?? text, code: code)
    }
}

/// Runs a program directly (no shell) with a file descriptor as its standard input, in its own process group,
/// with default signal dispositions (popfetch ignores SIGPIPE; its children must not inherit that), and kills the
/// whole group when it runs past the time-out. The child is started on the caller's thread (nothing in that blocks);
/// one long-lived thread waits for all of them (``ChildWaiter``), or, where it cannot, a thread of its own per child.
public enum ProcessRunner {
    static let outputLimit = 4096

    /// popfetch's own environment, as `KEY=VALUE` strings, computed once.
    static let inheritedEnvironment: [String] = ProcessInfo.processInfo.environment.map { "\($0.key)=\($0.value)" }
    /// The same, with each variable's name beside it (read per MDA run, to leave out the ones it sets).
    static let inheritedEnvironmentByName: [(name: String, entry: String)] = ProcessInfo.processInfo.environment.map {
        (name: $0.key, entry: "\($0.key)=\($0.value)")
    }

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
        let inherited = Self.inheritedEnvironmentByName.lazy.filter { extraEnvironment[$0.name] == nil }.map(\.entry)
        let env = Array(inherited) + extraEnvironment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
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

    /// Creates a pipe whose two ends are close-on-exec (one system call).
    static func makePipe(program: String) throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        guard c_system_pipe_cloexec(&fds) == 0 else {
            throw ProcessLaunchError.lastError(program: program)
        }
        return (fds[0], fds[1])
    }

    private static func spawn(
        arguments: [String], input: ProcessInput, stdout stdoutFD: Int32?, timeout: Int,
        environment envStrings: [String]
    ) async throws -> ProcessOutcome {
        guard let program = arguments.first else {
            throw ProcessLaunchError(program: "", message: "empty command")
        }
        // A cancelled task (the daemon's shutdown grace ran out) starts no child.
        try Task.checkCancellation()
        // The child is started here: nothing in that blocks (its input pipe is filled without blocking, and
        // posix_spawn returns once the child has exec'd), so it starts without waiting for a thread to be created
        // and scheduled, which on a busy machine took longer than the spawn. Waiting for it blocks, so that happens
        // on another thread (the ``ChildWaiter``'s) while the poll's task goes on receiving the next message. A
        // cancelled task stops waiting at once, but the child is not killed: an MDA killed half-way through writing a mailbox could leave
        // a truncated copy there, while one left alone delivers the whole message (the input is all in its pipe, or
        // fed by its own `cat`). Uncommitted, that message is fetched again at the next poll: at most one duplicate,
        // never a loss. The waiting thread goes on meanwhile (reaping the child and closing its files), and ends
        // with the process. It may run after a cancelled caller has stopped waiting and closed its descriptors: it
        // works on copies of them, and closes those.
        let ownInput: ProcessInput
        let ownStdout: Int32?
        switch input {
        case .descriptor(let fd): ownInput = .descriptor(try Self.duplicate(fd, program: program))
        case .file(let fd): ownInput = .file(try Self.duplicate(fd, program: program))
        }
        do {
            ownStdout = try stdoutFD.map { try Self.duplicate($0, program: program) }
        } catch {
            close(ownInput.fd)
            throw error
        }
        let closeOwn: @Sendable () -> Void = {
            close(ownInput.fd)
            if let ownStdout { close(ownStdout) }
        }
        let child: Launched?
        do {
            child = try Self.launch(
                program: program, arguments: arguments, input: ownInput, stdout: ownStdout, environment: envStrings,
                busyRetries: false)
        } catch let error as ProcessLaunchError where error.code == ETXTBSY {
            // The program file is open for writing (being installed): the waiting thread tries again for a while,
            // so that this task's thread does not sleep.
            child = nil
        } catch {
            closeOwn()
            throw error
        }
        let result = OneResult<Result<ProcessOutcome, ProcessLaunchError>>()
        // Usually one long-lived thread waits for every child (``ChildWaiter``). Not a child fed by a `cat` of its
        // own: accounting for its input waits for that `cat` too.
        if let child, child.feeder == nil, let waiter = ChildWaiter.shared,
            waiter.watch(
                pid: child.pid, outputFD: child.outputFD, timeout: timeout,
                completion: { status, timedOut in
                    let outcome = Self.outcome(status: status, outputFD: child.outputFD, timedOut: timedOut)
                    result.deliver(.success(Self.accountInput(of: child, outcome)))
                    // The caller goes on (it commits the delivery and starts the next MDA) while this thread closes
                    // the child's files and makes the next child's output file: neither is on that path.
                    close(child.outputFD)
                    closeOwn()
                    Self.prepareSpareOutputFile()
                })
        {
            return try await result.value().get()
        }
        let job: @Sendable () -> Void = {
            defer { closeOwn() }
            if let child {
                result.deliver(.success(Self.waitFor(child, timeout: timeout)))
                return
            }
            do {
                let late = try Self.launch(
                    program: program, arguments: arguments, input: ownInput, stdout: ownStdout,
                    environment: envStrings, busyRetries: true)
                result.deliver(.success(Self.waitFor(late, timeout: timeout)))
            } catch let error as ProcessLaunchError {
                result.deliver(.failure(error))
            } catch {
                result.deliver(.failure(ProcessLaunchError(program: program, message: "\(error)")))
            }
        }
        // A thread of its own, not NIO's thread pool: the pool has one thread per core, and a job holds its thread
        // for the child's whole run, so with more children than cores (one MDA per account polled at once, password
        // commands) each would wait, without a time-out, for another account's MDA to end. If no thread can be
        // made (the process is out of threads or memory), the child is running all the same and must be waited
        // for: then on a thread of Swift's pool, held until it ends (not this one: it may be the poll's event loop,
        // which other accounts' connections share).
        if Self.startDetachedThread(job) != nil {
            Task.detached(executorPreference: globalConcurrentExecutor) { job() }
        }
        return try await result.value().get()
    }

    /// Runs `body` on a new detached thread; returns the error number when the thread cannot be created (then
    /// `body` does not run).
    static func startDetachedThread(_ body: @escaping @Sendable () -> Void) -> Int32? {
        final class Box: @unchecked Sendable {
            let body: @Sendable () -> Void
            init(_ body: @escaping @Sendable () -> Void) { self.body = body }
        }
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        defer { pthread_attr_destroy(&attr) }
        pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
        let box = Unmanaged.passRetained(Box(body))
        var thread = pthread_t()
        let rc = pthread_create(
            &thread, &attr,
            { raw in
                guard let raw else { return nil }
                Unmanaged<Box>.fromOpaque(raw).takeRetainedValue().body()
                return nil
            }, box.toOpaque())
        guard rc == 0 else {
            box.release()
            return rc
        }
        return nil
    }

    /// A close-on-exec copy of `fd` (numbered 3 or above).
    private static func duplicate(_ fd: Int32, program: String) throws -> Int32 {
        let copy = fcntl(fd, F_DUPFD_CLOEXEC, 3)
        guard copy >= 0 else {
            throw ProcessLaunchError.lastError(program: program)
        }
        return copy
    }

    /// A started child, with what waiting for it needs.
    struct Launched: Sendable {
        let pid: pid_t
        let outputFD: Int32
        let feeder: Feeder?
        let prefilled: Prefilled?
    }

    /// Creates the child's output file and its input (a filled pipe, or a feeder for a large file) and starts it.
    /// Nothing here blocks.
    private static func launch(
        program: String, arguments: [String], input: ProcessInput, stdout stdoutFD: Int32?,
        environment envStrings: [String], busyRetries: Bool
    ) throws -> Launched {
        // The child's output goes to an unlinked file, not a pipe: if popfetch dies, an MDA that writes to stderr in
        // the middle of a delivery must not be killed by SIGPIPE half-way through it.
        let outputFD = try Self.makeOutputFile(program: program)
        var feeder: Feeder?
        var prefilled: Prefilled?
        let stdinFD: Int32
        switch input {
        case .descriptor(let fd):
            stdinFD = fd
        case .file(let fd):
            do {
                if let p = try Self.prefill(file: fd, program: program) {
                    prefilled = p
                    stdinFD = p.pipeRead
                } else {
                    let f = try Self.startFeeder(file: fd, program: program)
                    feeder = f
                    stdinFD = f.pipeRead
                }
            } catch {
                close(outputFD)
                throw error
            }
        }
        do {
            let pid = try Self.spawnProcess(
                arguments, stdin: stdinFD, stdout: stdoutFD ?? outputFD, stderr: outputFD, environment: envStrings,
                busyRetries: busyRetries)
            return Launched(pid: pid, outputFD: outputFD, feeder: feeder, prefilled: prefilled)
        } catch {
            close(outputFD)
            feeder?.abandon()
            if let prefilled { close(prefilled.pipeRead) }
            throw error
        }
    }

    /// Waits for a launched child (blocking), then accounts for its input.
    private static func waitFor(_ child: Launched, timeout: Int) -> ProcessOutcome {
        Self.accountInput(of: child, Self.wait(pid: child.pid, outputFD: child.outputFD, timeout: timeout))
    }

    /// `outcome` with how much of its input the child read (a file fed through a filled pipe or a feeder).
    private static func accountInput(of child: Launched, _ outcome: ProcessOutcome) -> ProcessOutcome {
        var outcome = outcome
        if let f = child.feeder {
            outcome.input = outcome.timedOut ? f.abandon() : f.finish()
        } else if let p = child.prefilled {
            outcome.input = p.finish(timedOut: outcome.timedOut)
        }
        return outcome
    }

    /// posix_spawnp with `stdin`, `stdout` and `stderr` as fds 0-2 and nothing else open, in a process group of its
    /// own, with default signal dispositions.
    static func spawnProcess(
        _ arguments: [String], stdin: Int32, stdout: Int32, stderr: Int32, environment envStrings: [String],
        busyRetries: Bool = true
    ) throws -> pid_t {
        let program = arguments.first ?? ""
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdin, 0)
        posix_spawn_file_actions_adddup2(&actions, stdout, 1)
        posix_spawn_file_actions_adddup2(&actions, stderr, 2)
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
        // inherited by another process's fork until its exec); it clears within milliseconds, or a little longer
        // on a loaded machine, so try again for up to about two seconds (unless the caller cannot wait).
        var pause: UInt32 = 5_000
        for attempt in 0..<(busyRetries ? 30 : 1) {
            rc = withCStrings(arguments) { argv in
                withCStrings(envStrings) { envp in
                    posix_spawnp(&pid, program, &actions, &attr, argv, envp)
                }
            }
            if rc != ETXTBSY || !busyRetries || attempt == 29 { break }
            usleep(pause)
            pause = min(pause * 2, 100_000)
        }
        guard rc == 0 else {
            throw ProcessLaunchError(program: program, message: String(cString: strerror(rc)), code: rc)
        }
        return pid
    }

    /// An output file made ahead for the next child, off the path between one MDA's exit and the next one's start
    /// (creating an unlinked file on disk costs a journal transaction). Taken by ``makeOutputFile(program:)``.
    private static let spareOutputFile = Mutex<Int32?>(nil)

    /// Makes the spare output file if there is none (after a child was reaped, on the waiting thread). A failure
    /// leaves none: the next child's file is then made when it starts, and that error is reported.
    static func prepareSpareOutputFile() {
        guard Self.spareOutputFile.withLock({ $0 == nil }) else { return }
        guard let fd = try? Self.newOutputFile() else { return }
        let unused = Self.spareOutputFile.withLock { spare -> Int32? in
            guard spare == nil else { return fd }
            spare = fd
            return nil
        }
        if let unused { close(unused) }
    }

    /// A file with no name opened for appending, for a child's stdout and stderr: in memory and sealable where the
    /// system allows, so that once the child is reaped no process it left behind (a background job holding its
    /// stderr) can grow it (the size cap applies only while the child runs); else on disk.
    private static func newOutputFile() throws(AnonymousFileError) -> Int32 {
        if let fd = AnonymousFile.createInMemory(name: "popfetch-child-output", sealable: true) {
            _ = fcntl(fd, F_SETFL, O_APPEND)
            return fd
        }
        return try AnonymousFile.create(in: AnonymousFile.directories(preferring: nil), append: true)
    }

    /// The output file for the next child: the spare one made ahead, or a new one.
    private static func makeOutputFile(program: String) throws -> Int32 {
        if let spare = Self.spareOutputFile.withLock({ $0.take() }) { return spare }
        do {
            return try Self.newOutputFile()
        } catch {
            throw ProcessLaunchError(
                program: program, message: "cannot create a file for its output: \(error.message)", code: error.code)
        }
    }

    private static func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
        var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
        pointers.append(nil)
        defer { for p in pointers { free(p) } }
        return body(pointers)
    }
}
