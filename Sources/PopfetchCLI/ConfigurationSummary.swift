import Configuration
import POP3Core
import SMTPCore
import SystemSupport

/// The human-readable form of a validated configuration, for `popfetch config check`. Never prints a secret.
enum ConfigurationSummary {
    static func render(_ c: Configuration, statePath: String, problems: Int = 0) -> String {
        var lines: [String] = []
        let accounts = "\(c.accounts.count) account\(c.accounts.count == 1 ? "" : "s")"
        lines.append(
            problems == 0
                ? "\(c.path): OK, \(accounts)"
                : "\(c.path): \(accounts), \(problems) problem\(problems == 1 ? "" : "s") a poll would meet (below)")
        lines.append("state: \(statePath)")
        lines.append("max_concurrent_polls = \(c.global.maxConcurrentPolls)")
        lines.append("shutdown_grace = \(c.global.shutdownGrace)s")
        if let address = c.global.metricsListen {
            lines.append("metrics_listen = \(address) (http://\(address)/metrics)")
        }
        if let file = c.global.metricsFile { lines.append("metrics_file = \(file)") }
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
            if let command = a.authentication.oauthTokenCommand {
                lines.append("  oauth_token_command \(command.debugDescription)")
            }
            if let o = a.authentication.oauth {
                lines.append("  oauth          token_url \(o.tokenURL), client_id \(o.clientID.debugDescription)")
                if let d = o.deviceURL { lines.append("                 device_url \(d)") }
                if let s = o.scope { lines.append("                 scope \(s.debugDescription)") }
                if let s = o.clientSecret { lines.append("                 client secret: \(s)") }
            }
            lines.append("  interval       \(Units.formatDuration(a.schedule.interval))")
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
                if let user = a.delivery.relay.user {
                    lines.append(
                        "  smtp_user      \(user.debugDescription), \(a.delivery.relay.password.map { "\($0)" } ?? "no password")"
                    )
                }
                lines.append("                 on_permanent_failure \(a.delivery.onPermanentFailure.rawValue)")
            case .lmtp(let t):
                lines.append("  lmtp           \(t)")
                lines.append("                 on_permanent_failure \(a.delivery.onPermanentFailure.rawValue)")
            case .imap(let d):
                let imap = a.delivery.imap
                let tls = d.implicitTLS ? "TLS" : (imap.tls == .starttls ? "STARTTLS" : "clear text")
                lines.append("  imap           \(d) (\(tls))")
                let login =
                    imap.auth == .xoauth2 || imap.auth == .oauthbearer
                    ? "imap_oauth_token_command" : (imap.password.map { "\($0)" } ?? "no password")
                lines.append(
                    "  imap_user      \((imap.user ?? "").debugDescription), \(login), imap_auth \(imap.auth.rawValue)")
                lines.append(
                    "                 flags \(imap.flags.isEmpty ? "none (unread)" : imap.flags.joined(separator: " ")), "
                        + "create folder \(imap.createFolder ? "yes" : "no"), "
                        + "on_permanent_failure \(a.delivery.onPermanentFailure.rawValue)")
            }
            lines.append("  recipient      \(a.delivery.recipients.joined(separator: ", "))")
        }
        return lines.joined(separator: "\n")
    }
}
