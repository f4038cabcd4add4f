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

    public static func home() -> String {
        ProcessInfo.processInfo.environment["HOME"] ?? NSHomeDirectory()
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
        return base + "/popfetch/state.sqlite"
    }
}
