#if canImport(Glibc)
    import Glibc
#endif

/// glibc's `malloc_trim`, which Swift's Glibc module does not expose (it sits in malloc.h); looked up once by name.
/// Returns freed heap memory to the system: used when the daemon goes idle.
package enum MemoryTrim {
    private typealias Trim = @convention(c) (Int) -> Int32

    private static let trim: Trim? = {
        guard let symbol = dlsym(nil, "malloc_trim") else { return nil }
        return unsafeBitCast(symbol, to: Trim.self)
    }()

    package static func releaseFreedMemory() {
        _ = Self.trim?(0)
    }
}
