#if canImport(Glibc)
    import Glibc
#endif

/// A file with no name, open read-write and close-on-exec: gone from disk when its last descriptor closes. Used for
/// spool files and for a child's output.
package enum AnonymousFile {
    /// Linux's O_TMPFILE (`__O_TMPFILE | O_DIRECTORY`; Glibc's module leaves it out without _GNU_SOURCE).
    static let tmpfileFlag: Int32 = 0o20000000 | O_DIRECTORY

    /// Creates one in the first of `directories` that allows it: O_TMPFILE (ext4, xfs, btrfs, tmpfs; one call, never
    /// a name), else mkstemp + unlink. `append` opens it O_APPEND. Throws the last directory's error.
    package static func create(in directories: [String], append: Bool = false) throws(AnonymousFileError) -> Int32 {
        var lastError = AnonymousFileError(directory: "", code: ENOENT)
        for dir in directories {
            let fd = open(dir, Self.tmpfileFlag | O_RDWR | O_CLOEXEC | (append ? O_APPEND : 0), 0o600)
            if fd >= 0 { return fd }
            var template = Array((dir + "/popfetch-XXXXXX").utf8CString)
            let made = template.withUnsafeMutableBufferPointer { p -> Int32 in
                guard let base = p.baseAddress else { return -1 }
                let fd = mkstemp(base)
                if fd >= 0 {
                    unlink(base)
                    _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                    if append { _ = fcntl(fd, F_SETFL, O_APPEND) }
                }
                return fd
            }
            if made >= 0 { return made }
            lastError = AnonymousFileError(directory: dir, code: errno)
        }
        throw lastError
    }

    private typealias MemfdCreate = @convention(c) (UnsafePointer<CChar>?, UInt32) -> Int32

    /// glibc ≥ 2.27's `memfd_create` (Linux ≥ 3.17), which Swift's Glibc module does not expose; looked up once.
    private static let memfdCreate: MemfdCreate? = {
        guard let symbol = dlsym(nil, "memfd_create") else { return nil }
        return unsafeBitCast(symbol, to: MemfdCreate.self)
    }()

    /// One in memory (`memfd_create`, close-on-exec): no filesystem, no journal, nothing to free on disk when it
    /// closes. For small files only: its pages are memory for as long as it is open. Nil when the system has none.
    /// `sealable` allows ``sealAgainstWrites(_:)``.
    package static func createInMemory(name: String, sealable: Bool = false) -> Int32? {
        guard let memfdCreate = Self.memfdCreate else { return nil }
        let fd = name.withCString { memfdCreate($0, sealable ? 3 : 1) }  // MFD_CLOEXEC, MFD_ALLOW_SEALING
        return fd >= 0 ? fd : nil
    }

    /// Seals a file made by ``createInMemory(name:sealable:)`` with `sealable`: from now on every write to it, through
    /// any descriptor in any process, fails (F_SEAL_WRITE, F_SEAL_GROW, F_SEAL_SHRINK, F_SEAL_SEAL). Returns false,
    /// changing nothing, for any other file.
    @discardableResult
    package static func sealAgainstWrites(_ fd: Int32) -> Bool {
        // F_ADD_SEALS (F_LINUX_SPECIFIC_BASE + 9); seals SEAL 1, SHRINK 2, GROW 4, WRITE 8. The size first and on
        // its own: F_SEAL_WRITE fails while some process maps the file writable, and the file must not grow even then.
        let sized = fcntl(fd, 1033, Int32(2 | 4)) == 0
        let written = fcntl(fd, 1033, Int32(1 | 8)) == 0
        return sized && written
    }

    /// `preferred` (when given), then $TMPDIR, then /tmp, without repeats.
    package static func directories(preferring preferred: String?) -> [String] {
        var out: [String] = []
        for d in [preferred, getenv("TMPDIR").map { String(cString: $0) }, "/tmp"] {
            if let d, !d.isEmpty, !out.contains(d) { out.append(d) }
        }
        return out
    }
}

package struct AnonymousFileError: Error {
    package var directory: String
    package var code: Int32
    package var message: String {
        "\(self.directory.isEmpty ? "no directory" : self.directory): \(String(cString: strerror(self.code)))"
    }
}
