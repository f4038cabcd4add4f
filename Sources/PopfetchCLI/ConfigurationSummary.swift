import Configuration
import SystemSupport
import POP3Core
import SMTPCore

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
            lines.append("  tls            \(a.tls.rawValue)\(a.caFile.map { ", ca_file \($0)" } ?? "")")
            if a.tls == .none {
                lines.append(
                    "  credentials    "
                        + (a.hostIsLoopback
                            ? "sent in clear text (loopback host)"
                            : a.allowInsecureAuth ? "sent in clear text (allow_insecure_auth = true)" : "refused"))
            }
            lines.append("  auth           \(a.auth.rawValue)")
            lines.append("  secret         \(a.password)")
            lines.append("  keep           \(a.keep)\(a.deleteAfter.map { ", delete_after \(Units.formatDuration($0))" } ?? "")")
            lines.append(
                "  max_size       \(a.maxSize.map(Units.formatSize) ?? "none") (oversize = \(a.oversize.rawValue))")
            lines.append("  fetch_limit    \(a.fetchLimit == 0 ? "none" : String(a.fetchLimit))")
            lines.append("  without_uidl   \(a.withoutUIDL.rawValue)")
            lines.append("  timeout        \(Units.formatDuration(a.timeout))")
            switch a.delivery {
            case .mda(let mda):
                lines.append("  mda            \(mda.arguments.map { $0.debugDescription }.joined(separator: " "))")
                lines.append(
                    "                 runs \(mda.perRecipient ? "once per recipient" : "once per message"), "
                        + "time-out \(Units.formatDuration(a.mdaTimeout)), max_attempts \(a.maxAttempts)")
            case .maildir(let path):
                lines.append("  maildir        \(path)")
            case .smtp(let t):
                lines.append("  smtp           \(t) (smtp_tls \(a.smtpTLS.rawValue))")
                lines.append("                 on_permanent_failure \(a.onPermanentFailure.rawValue)")
            case .lmtp(let t):
                lines.append("  lmtp           \(t)")
                lines.append("                 on_permanent_failure \(a.onPermanentFailure.rawValue)")
            }
            lines.append("  recipient      \(a.recipients.joined(separator: ", "))")
        }
        return lines.joined(separator: "\n")
    }
}
