import CSystemLinux
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Waiting for a launched child: its exit (on a pidfd where there is one), its time-out, and the tail of its output.
extension ProcessRunner {
    /// pidfd_open(2) (Linux ≥ 5.3): a descriptor that becomes readable when the process exits; -1 without one.
    static func pidfdOpen(_ pid: pid_t) -> Int32 { c_system_pidfd_open(pid) }

    /// The child's output kept at most this large while it runs (older output is dropped; the tail is reported).
    static let outputFileLimit = 1 << 20

    /// Reaps the child, enforcing the time-out, then reads the tail of its output. Waits on a pidfd (woken the moment
    /// the child exits), or where there is none by polling with a growing pause.
    static func wait(pid: pid_t, outputFD: Int32, timeout: Int) -> ProcessOutcome {
        defer { close(outputFD) }
        let deadline = Date().addingTimeInterval(Double(timeout))
        let pidfd = Self.pidfdOpen(pid)
        defer { if pidfd >= 0 { close(pidfd) } }
        var status: Int32 = 0
        var timedOut = false
        var pause: UInt32 = 50
        while true {
            if let ended = Self.reapIfEnded(pid) {
                status = ended
                break
            }
            let remaining = deadline.timeIntervalSinceNow
            if remaining <= 0 && !timedOut {
                timedOut = true
                Self.killGroup(pid)
            }
            Self.capOutputFile(outputFD)
            if pidfd >= 0 {
                var pfd = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
                let ms = timedOut ? 50 : Int32(max(1, min(50, remaining * 1000)))
                _ = poll(&pfd, 1, ms)
            } else {
                usleep(pause)
                pause = min(pause * 2, 10_000)
            }
        }
        return Self.outcome(status: status, outputFD: outputFD, timedOut: timedOut)
    }

    /// The child's wait status if it has ended (reaped now), nil while it runs. A child reaped by someone else (its
    /// status lost) counts as killed, never as an exit 0.
    static func reapIfEnded(_ pid: pid_t) -> Int32? {
        var status: Int32 = 0
        var w: pid_t
        repeat { w = waitpid(pid, &status, WNOHANG) } while w < 0 && errno == EINTR
        if w == 0 { return nil }
        return w < 0 ? SIGKILL : status
    }

    /// Kills the child and its process group (at its time-out).
    static func killGroup(_ pid: pid_t) {
        kill(-pid, SIGKILL)
        kill(pid, SIGKILL)
    }

    /// A child that writes without end must not fill the disk: its output file is kept small (appends go to its
    /// end).
    static func capOutputFile(_ fd: Int32) {
        var st = stat()
        guard fstat(fd, &st) == 0, Int(st.st_size) > Self.outputFileLimit else { return }
        // The tail is what the error message shows: kept, the rest dropped (the file is appended to, so the
        // child's next write goes after it).
        var tail = [UInt8](repeating: 0, count: Self.keptTail)
        let n = tail.withUnsafeMutableBytes {
            pread(fd, $0.baseAddress, $0.count, off_t(Int(st.st_size) - Self.keptTail))
        }
        _ = ftruncate(fd, 0)
        if n > 0 { _ = tail.withUnsafeBytes { write(fd, $0.baseAddress, n) } }
    }

    /// How much of a capped output file's end is kept.
    static let keptTail = 64 * 1024

    /// The outcome of a reaped child: how it ended, and the tail of its output (read from `outputFD`, which the
    /// caller closes).
    static func outcome(status: Int32, outputFD: Int32, timedOut: Bool) -> ProcessOutcome {
        // The child is reaped: whatever it left running writes no more into its output.
        AnonymousFile.sealAgainstWrites(outputFD)
        let termination: ProcessOutcome.Termination
        if status & 0x7f == 0 {
            termination = .exited((status >> 8) & 0xff)
        } else {
            termination = .signaled(status & 0x7f)
        }
        // The tail of what it wrote (the file may still be written by a left-over grandchild: read what is there).
        var output = [UInt8](repeating: 0, count: outputLimit)
        var st = stat()
        let size = fstat(outputFD, &st) == 0 ? Int(st.st_size) : 0
        let start = max(0, size - outputLimit)
        let n = output.withUnsafeMutableBytes { b -> Int in
            guard let base = b.baseAddress else { return 0 }
            return pread(outputFD, base, min(outputLimit, size - start), off_t(start))
        }
        // Most children say nothing: no string work then.
        let text =
            n > 0
            ? String(decoding: output.prefix(n), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : ""
        return ProcessOutcome(termination: termination, output: text, timedOut: timedOut, input: nil)
    }
}
