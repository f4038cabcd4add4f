import SMTPCore

#if canImport(Glibc)
    import Glibc
#endif

/// What `popfetch config check` can tell about an account beyond its syntax: the files, programs and policies a poll
/// would otherwise refuse, or fail on, only when it runs. Looks at the file system; changes nothing.
public enum Preflight {
    public struct Problem: Hashable, Sendable, CustomStringConvertible {
        public var account: String
        public var key: String
        public var message: String
        public var description: String {
            self.account.isEmpty
                ? "\(self.key): \(self.message)" : "\(self.key) (account \(self.account)): \(self.message)"
        }
    }

    /// Problems with the root keys (account ""): a `metrics_file` whose directory is missing or not writable.
    public static func globalProblems(_ config: Configuration) -> [Problem] {
        guard let file = config.global.metricsFile else { return [] }
        var st = stat()
        if stat(file, &st) == 0 && st.st_mode & S_IFMT == S_IFDIR {
            return [Problem(account: "", key: "metrics_file", message: "\(file) is a directory")]
        }
        let directory = file.lastIndex(of: "/").map { String(file[..<$0]) }.map { $0.isEmpty ? "/" : $0 } ?? "."
        guard stat(directory, &st) == 0, st.st_mode & S_IFMT == S_IFDIR else {
            return [Problem(account: "", key: "metrics_file", message: "directory \(directory) does not exist")]
        }
        guard access(directory, W_OK | X_OK) == 0 else {
            return [Problem(account: "", key: "metrics_file", message: "directory \(directory) is not writable")]
        }
        return []
    }

    /// Every problem found with `account`, in the order of its keys.
    public static func problems(_ account: AccountConfiguration, environment: [String: String]) -> [Problem] {
        var found: [Problem] = []
        func add(_ key: String, _ message: String) {
            found.append(Problem(account: account.name, key: key, message: message))
        }
        if case .file(let path) = account.authentication.password, let why = Self.secretFileProblem(path) {
            add("password_file", why)
        }
        if case .file(let path)? = account.delivery.relay.password, let why = Self.secretFileProblem(path) {
            add("smtp_password_file", why)
        }
        if case .file(let path)? = account.delivery.imap.password, let why = Self.secretFileProblem(path) {
            add("imap_password_file", why)
        }
        for (key, path) in [
            ("ca_file", account.server.caFile), ("tls_client_cert", account.server.clientCertificate),
            ("tls_client_key", account.server.clientKey), ("smtp_ca_file", account.delivery.relay.caFile),
            ("imap_ca_file", account.delivery.imap.caFile),
        ] {
            if let path, access(path, R_OK) != 0 { add(key, "\(path) cannot be read: \(Self.errnoText())") }
        }
        switch account.delivery.method {
        case .mda(let mda):
            if let program = mda.arguments.first, let why = Self.programProblem(program, path: environment["PATH"]) {
                add("mda", why)
            }
        case .maildir(let path):
            if let why = Self.maildirProblem(path) { add("maildir", why) }
        case .smtp(let endpoint), .lmtp(let endpoint):
            if account.delivery.relay.user != nil, account.delivery.relay.tls == .none,
                case .tcp(let host, _) = endpoint, !AccountConfiguration.Server.isLoopback(host)
            {
                add(
                    "smtp_user",
                    "the SMTP password would go in clear text to \(endpoint), which popfetch refuses: "
                        + "set smtp_tls = \"starttls\" or \"implicit\"")
            }
        case .imap:
            break
        }
        return found
    }

    /// Why a secret file cannot serve (missing, unreadable, empty, or readable by others), or nil.
    public static func secretFileProblem(_ path: String) -> String? {
        var st = stat()
        guard stat(path, &st) == 0 else { return "\(path): \(Self.errnoText())" }
        guard st.st_mode & S_IFMT == S_IFREG else { return "\(path) is not a regular file" }
        if st.st_mode & 0o077 != 0 {
            return "\(path) can be read by others (mode \(String(st.st_mode & 0o777, radix: 8))): chmod 600 \(path)"
        }
        guard access(path, R_OK) == 0 else { return "\(path) cannot be read: \(Self.errnoText())" }
        if st.st_size == 0 { return "\(path) is empty" }
        return nil
    }

    /// Why `program` cannot be run (as posix_spawnp would look for it), or nil.
    static func programProblem(_ program: String, path: String?) -> String? {
        if program.contains("/") {
            var st = stat()
            guard stat(program, &st) == 0 else { return "\(program): \(Self.errnoText())" }
            if st.st_mode & S_IFMT == S_IFDIR { return "\(program) is a directory" }
            return access(program, X_OK) == 0 ? nil : "\(program) is not executable"
        }
        let directories = (path ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":").map(String.init)
        for dir in directories where !dir.isEmpty && access(dir + "/" + program, X_OK) == 0 { return nil }
        return "\(program) is not found in PATH (\(directories.joined(separator: ":")))"
    }

    /// Why messages could not be written into the Maildir `path` (or the directory it would be made in), or nil.
    static func maildirProblem(_ path: String) -> String? {
        var st = stat()
        if stat(path, &st) == 0 {
            guard st.st_mode & S_IFMT == S_IFDIR else { return "\(path) is not a directory" }
            for sub in ["", "/tmp", "/new"] {
                let dir = path + sub
                if stat(dir, &st) == 0 && access(dir, W_OK | X_OK) != 0 { return "\(dir) is not writable" }
            }
            return nil
        }
        var parent = path
        while parent.count > 1 && parent.hasSuffix("/") { parent.removeLast() }
        parent = parent.lastIndex(of: "/").map { String(parent[..<$0]) } ?? "."
        if parent.isEmpty { parent = "/" }
        guard stat(parent, &st) == 0 else { return "\(path) does not exist, nor does \(parent)" }
        return access(parent, W_OK | X_OK) == 0 ? nil : "\(path) does not exist, and \(parent) is not writable"
    }

    static func errnoText() -> String { String(cString: strerror(errno)) }
}
