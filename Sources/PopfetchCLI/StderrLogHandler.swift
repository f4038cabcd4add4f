import Foundation
import Logging
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// One line per event on stderr: `2026-11-26T16:10:03Z info popfetch: account=work delivered=3 poll finished`.
/// journald captures stderr under systemd; the level comes first so it is easy to grep.
struct StderrLogHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info
    let label: String

    init(label: String) { self.label = label }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        Self.write(level: event.level, label: self.label, Self.text(of: event, metadata: self.metadata))
    }

    /// An event's `key=value` fields (sorted) and message, as one line: control characters a server sent (ESC
    /// sequences, CR) are shown escaped. Shared with ``SyslogLogHandler``.
    static func text(of event: LogEvent, metadata: Logger.Metadata) -> String {
        var all = metadata
        if let m = event.metadata { all.merge(m) { _, new in new } }
        let fields = all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        return TerminalSafe.escaped((fields.isEmpty ? "" : fields + " ") + "\(event.message)")
    }

    /// The stderr line: timestamp, level, label, then the event's text.
    static func write(level: Logger.Level, label: String, _ text: String) {
        writeStderr("\(Self.timestamp()) \(level) \(label): \(text)\n")
    }

    static func timestamp() -> String { ISO8601.format(Date()) }
}
