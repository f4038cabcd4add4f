#if canImport(Glibc)
    import Glibc
#endif

/// The process's limits, as popfetch sets them at start.
public enum ResourceLimits {
    /// The soft limit on open descriptors raised towards the hard one (systemd's default soft limit is 1,024, its
    /// hard limit 524,288): each poll in flight holds a few (socket, spool file, locks, an MDA's pipe), the daemon's
    /// control socket and metrics endpoint more. Never lowered; at most `ceiling`.
    public static func raiseOpenFileLimit(ceiling: UInt64 = 65_536) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
        let wanted = min(limit.rlim_max, rlim_t(ceiling))
        guard limit.rlim_cur < wanted else { return }
        limit.rlim_cur = wanted
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }
}
