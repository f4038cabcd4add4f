import Configuration
import POP3Core
import SMTPCore
import SystemSupport

/// The human-readable form of a validated configuration, for `popfetch config check`. Never prints a secret.
enum ConfigurationSummary {
    static func render(_ c: Configuration, statePath: String) -> String {
        var lines: [String] = []
        lines.append("\(c.path): OK, \(c.accounts.count) account\(c.accounts.count == 1 ? "" : "s")")
        lines.append("state: \(statePath)")
        lines.append("max_concurrent_polls = \(c.global.maxConcurrentPolls)")
        for a in c.accounts {
            lines.append("")
            lines.append("[[account]] \(a.name)\(a.enabled ? "" : " (disabled)")  (line \(a.line))")
            lines.append("  mailbox        \(a.stateKey)")
            lines.append("  tls            \(a.server.tls.rawValue)\(a.server.caFile.map { ", ca_file \($0)" } ?? "")")
            if a.server.tls == .none {
                lines.append(
                    "  credentials    "
                        + (a.server.isLoopback
                            ? "sent in clear text (loopback host)"
                            : a.server.allowInsecureAuth
                                ? "sent in clear text (allow_insecure_auth = true)" : "refused"))
            }
            lines.append("  auth           \(a.authentication.method.rawValue)")
            lines.append("  secret         \(a.authentication.password)")
            lines.append(
                "  keep           \(a.retention.keep)\(a.retention.deleteAfter.map { ", delete_after \(Units.formatDuration($0))" } ?? "")"
            )
            lines.append(
                "  max_size       \(a.retention.maxSize.map(Units.formatSize) ?? "none") (oversize = \(a.retention.oversize.rawValue))"
            )
            lines.append("  fetch_limit    \(a.retention.fetchLimit == 0 ? "none" : String(a.retention.fetchLimit))")
            lines.append("  without_uidl   \(a.retention.withoutUIDL.rawValue)")
            lines.append("  timeout        \(Units.formatDuration(a.server.timeout))")
            switch a.delivery.method {
            case .mda(let mda):
                lines.append("  mda            \(mda.arguments.map { $0.debugDescription }.joined(separator: " "))")
                lines.append(
                    "                 runs \(mda.perRecipient ? "once per recipient" : "once per message"), "
                        + "time-out \(Units.formatDuration(a.delivery.mdaTimeout)), max_attempts \(a.retention.maxAttempts)"
                )
            case .maildir(let path):
                lines.append("  maildir        \(path)")
            case .smtp(let t):
                lines.append("  smtp           \(t) (smtp_tls \(a.delivery.relay.tls.rawValue))")
                lines.append("                 on_permanent_failure \(a.delivery.onPermanentFailure.rawValue)")
            case .lmtp(let t):
                lines.append("  lmtp           \(t)")
                lines.append("                 on_permanent_failure \(a.delivery.onPermanentFailure.rawValue)")
            }
            lines.append("  recipient      \(a.delivery.recipients.joined(separator: ", "))")
        }
        return lines.joined(separator: "\n")
    }
}
