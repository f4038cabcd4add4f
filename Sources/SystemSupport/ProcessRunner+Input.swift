import CSystemLinux
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// How an MDA's input reaches it whole, whatever happens to popfetch once it has started: a pipe filled before the
/// start (up to ``ProcessRunner/prefillLimit``), else a `cat` of its own reading the spool file. Both keep popfetch's
/// copy of the pipe's read end, to measure what the MDA left unread.
extension ProcessRunner {
    /// The program that copies a spool file into an MDA's stdin pipe: a process of its own, so that if popfetch
    /// dies (kill -9) while the MDA reads, the MDA still gets the whole message, never a truncated one.
    static let feederProgram: String? = ["/bin/cat", "/usr/bin/cat"].first { access($0, X_OK) == 0 }

    /// The largest input copied into the child's pipe before it starts (the pipe is grown to hold it); larger
    /// inputs are fed by a `cat`. 1 MiB is Linux's default `pipe-max-size` for unprivileged users.
    public static let prefillLimit = 1 << 20

    /// Copies the whole regular file behind `fd` into a new pipe large enough to hold it, and closes the pipe's
    /// write end: the child reads a complete input whatever happens to popfetch after it starts, without a process
    /// to feed it. Nil when the file is too large or the pipe cannot be grown (the per-user pipe memory limit):
    /// then a feeder does the job.
    static func prefill(file fd: Int32, program: String) throws -> Prefilled? {
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw ProcessLaunchError.lastError(program: program, "cannot read its input")
        }
        let length = Int(st.st_size)
        guard length <= Self.prefillLimit else { return nil }
        let pipe = try Self.makePipe(program: program)
        var keep = false
        defer {
            close(pipe.write)
            if !keep { close(pipe.read) }
        }
        // F_SETPIPE_SZ and F_GETPIPE_SZ (Linux; Glibc's module leaves them out without _GNU_SOURCE).
        let setPipeSize: Int32 = 1031
        let getPipeSize: Int32 = 1032
        var capacity = Int(fcntl(pipe.write, getPipeSize))
        if capacity < length { capacity = Int(fcntl(pipe.write, setPipeSize, Int32(length))) }
        guard capacity >= length else { return nil }
        // The pipe takes references to the spool file's pages (splice), not a copy: nothing writes that file again,
        // and the pages outlive it (a popfetch killed meanwhile closes it). Where splice cannot read the file, copy.
        // Neither blocks: if the pipe holds less than promised, the feeder takes over.
        var offset = off_t(0)
        while offset < length {
            let n = c_system_splice_to_pipe(fd, &offset, pipe.write, length - Int(offset))
            if n > 0 { continue }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && offset == 0 && (errno == EINVAL || errno == ENOSYS) {
                guard try Self.copy(file: fd, length: length, into: pipe.write, program: program) else { return nil }
                break
            }
            if n == 0 || errno == EAGAIN { return nil }  // the file shrank, or the pipe is full: the feeder takes over
            throw ProcessLaunchError.lastError(program: program, "cannot read its input")
        }
        keep = true
        return Prefilled(pipeRead: pipe.read, length: length)
    }

    /// Copies `length` bytes of the file `fd` from offset 0 into the pipe, without blocking; false when the file
    /// shrank or the pipe holds less than promised.
    private static func copy(file fd: Int32, length: Int, into pipeWrite: Int32, program: String) throws -> Bool {
        guard fcntl(pipeWrite, F_SETFL, fcntl(pipeWrite, F_GETFL) | O_NONBLOCK) == 0 else { return false }
        let chunk = 65536
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        var offset = 0
        while offset < length {
            let n = pread(fd, buffer, min(chunk, length - offset), off_t(offset))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                if n == 0 { return false }
                throw ProcessLaunchError.lastError(program: program, "cannot read its input")
            }
            var written = 0
            while written < n {
                let w = write(pipeWrite, buffer + written, n - written)
                if w < 0 && errno == EINTR { continue }
                guard w > 0 else { return false }
                written += w
            }
            offset += n
        }
        return true
    }

    /// A pipe holding the child's whole input, and popfetch's copy of its read end, kept to measure what the child
    /// left unread.
    struct Prefilled: Sendable {
        let pipeRead: Int32
        let length: Int

        func finish(timedOut: Bool) -> ProcessOutcome.InputAccount {
            defer { close(self.pipeRead) }
            var n: Int32 = 0
            guard !timedOut, ioctl(self.pipeRead, UInt(FIONREAD), &n) == 0 else {
                return ProcessOutcome.InputAccount(length: self.length, consumed: nil)
            }
            return ProcessOutcome.InputAccount(length: self.length, consumed: max(0, self.length - Int(n)))
        }
    }

    /// Starts `cat` copying the whole regular file behind `fd` (from offset 0) into a new pipe; returns the pipe's
    /// read end (the MDA's stdin) and the feeder. popfetch keeps a copy of the read end until the MDA has been
    /// reaped, so that what it left unread can be measured (FIONREAD).
    static func startFeeder(file fd: Int32, program: String) throws -> Feeder {
        var st = stat()
        guard fstat(fd, &st) == 0, lseek(fd, 0, SEEK_SET) == 0 else {
            throw ProcessLaunchError.lastError(program: program, "cannot read its input")
        }
        guard let cat = Self.feederProgram else {
            throw ProcessLaunchError(program: program, message: "cannot feed its input: no /bin/cat")
        }
        let inPipe = try Self.makePipe(program: program)
        let devnull = open("/dev/null", O_WRONLY | O_CLOEXEC)
        defer { if devnull >= 0 { close(devnull) } }
        let pid: pid_t
        do {
            pid = try Self.spawnProcess(
                [cat], stdin: fd, stdout: inPipe.write, stderr: devnull >= 0 ? devnull : inPipe.write,
                environment: ["PATH=/usr/bin:/bin"])
        } catch {
            close(inPipe.read)
            close(inPipe.write)
            throw error
        }
        close(inPipe.write)
        return Feeder(pid: pid, pipeRead: inPipe.read, length: Int(st.st_size))
    }

    /// The `cat` feeding an MDA, and the read end of its pipe kept to measure what the MDA left unread.
    struct Feeder: Sendable {
        let pid: pid_t
        let pipeRead: Int32
        let length: Int

        private func unread() -> Int {
            var n: Int32 = 0
            if ioctl(self.pipeRead, UInt(FIONREAD), &n) != 0 { n = 0 }
            return Int(n)
        }

        /// After the MDA was reaped: it read everything if the feeder copied the whole file (exit 0) and nothing is
        /// left in the pipe. A feeder still running with an empty pipe is about to write more or to exit; give it a
        /// moment to say which.
        func finish() -> ProcessOutcome.InputAccount {
            var status: Int32 = 0
            let deadline = Date().addingTimeInterval(2)
            while true {
                let left = self.unread()
                let w = waitpid(self.pid, &status, WNOHANG)
                if w == self.pid {
                    close(self.pipeRead)
                    let copied = status & 0x7f == 0 && (status >> 8) & 0xff == 0
                    return ProcessOutcome.InputAccount(
                        length: self.length, consumed: copied ? max(0, self.length - left) : nil)
                }
                if left > 0 || Date() > deadline || (w < 0 && errno != EINTR) {
                    _ = self.abandon()
                    return ProcessOutcome.InputAccount(length: self.length, consumed: nil)
                }
                usleep(500)
            }
        }

        /// Stops the feeder (the MDA is gone or was killed) and reaps it.
        @discardableResult
        func abandon() -> ProcessOutcome.InputAccount {
            kill(self.pid, SIGKILL)
            var status: Int32 = 0
            while waitpid(self.pid, &status, 0) < 0 && errno == EINTR {}
            close(self.pipeRead)
            return ProcessOutcome.InputAccount(length: self.length, consumed: nil)
        }
    }
}
