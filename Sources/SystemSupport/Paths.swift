import Foundation

/// XDG locations and path helpers.
public enum Paths {
    /// A Foundation file error in plain words ("No such file or directory", "Permission denied"), not the
    /// NSCocoaErrorDomain dump its description is.
    public static func reason(_ error: any Error) -> String {
        let ns = error as NSError
        if let underlying = (ns.userInfo[NSUnderlyingErrorKey] as? any Error).map({ $0 as NSError }),
            underlying.domain == NSPOSIXErrorDomain
        {
            return String(cString: strerror(Int32(underlying.code)))
        }
        if ns.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(ns.code))) }
        return ns.localizedDescription
    }

    /// `path` with `~` expanded and, when it is relative, taken as relative to `directory` (itself made absolute
    /// against the working directory): a config's relative paths mean the same wherever popfetch is started.
    public static func resolve(_ path: String, relativeTo directory: String) -> String {
        let expanded = Self.expandTilde(path)
        if expanded.isEmpty { return expanded }
        if expanded.hasPrefix("/") { return Self.tidy(expanded) }
        let base = directory.hasPrefix("/") ? directory : FileManager.default.currentDirectoryPath + "/" + directory
        return Self.tidy(base + "/" + expanded)
    }

    /// An absolute path without empty or `.` components (`//tmp/./x/` is `/tmp/x`); `..` is left as it is (with
    /// symbolic links, only the file system knows what it leads to).
    static func tidy(_ absolute: String) -> String {
        let parts = absolute.split(separator: "/").filter { $0 != "." }
        return "/" + parts.joined(separator: "/")
    }

    /// The directory of `file` ("." for a bare file name).
    public static func directory(of file: String) -> String {
        guard let slash = file.lastIndex(of: "/") else { return "." }
        return slash == file.startIndex ? "/" : String(file[..<slash])
    }

    public static func home() -> String {
        ProcessInfo.processInfo.environment["HOME"] ?? NSHomeDirectory()
    }

    /// `path` with its symbolic links and `..` resolved: the file's real path when it exists, else its directory's
    /// real path and its name, else `path` as it is. The state database's path is taken this way, so that every
    /// spelling of one database (a symlink to it, a symlinked directory) names the same locks and control socket.
    public static func canonical(_ path: String) -> String {
        if let real = Self.realPath(path) { return real }
        let name = (path as NSString).lastPathComponent
        let directory = (path as NSString).deletingLastPathComponent
        if !name.isEmpty, let real = Self.realPath(directory.isEmpty ? "." : directory) { return real + "/" + name }
        return path
    }

    private static func realPath(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }

    public static func expandTilde(_ path: String) -> String {
        if path == "~" { return home() }
        if path.hasPrefix("~/") { return home() + String(path.dropFirst(1)) }
        return path
    }

    /// `$XDG_CONFIG_HOME/popfetch/config.toml`, else `~/.config/popfetch/config.toml`.
    public static func defaultConfigFile() -> String {
        let env = ProcessInfo.processInfo.environment
        let base = env["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? home() + "/.config"
        return base + "/popfetch/config.toml"
    }

    /// `$XDG_STATE_HOME/popfetch/state.sqlite`, else `~/.local/state/popfetch/state.sqlite`.
    public static func defaultStateFile() -> String {
        let env = ProcessInfo.processInfo.environment
        let base = env["XDG_STATE_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? home() + "/.local/state"
        return base + "/popfetch/" + LockFile.defaultStateFileName
    }
}
