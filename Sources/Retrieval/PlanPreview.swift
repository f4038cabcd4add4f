/// What a poll would do with a mailbox, as `popfetch poll --dry-run` tells it: counted from the poll's plan, with
/// nothing fetched, delivered, deleted or recorded.
public struct PlanPreview: Hashable, Sendable {
    /// Messages that would be fetched and delivered, and their LIST sizes.
    public var fetch = 0
    public var fetchBytes = 0
    /// Whether the fetched messages would then be deleted (keep = false).
    public var deleteAfterDelivery = false
    /// Delivered before and still on the server with keep = false (a poll cut short): deleted now.
    public var deleteDelivered = 0
    /// keep = true, delivered longer ago than delete_after.
    public var deleteExpired = 0
    /// Over max_size with oversize = "delete": deleted unread.
    public var deleteOversize = 0
    /// Over max_size with oversize = "skip".
    public var skipOversize = 0
    /// Beyond fetch_limit: left for later polls.
    public var skipLimit = 0
    /// Marked failed after max_attempts (see `popfetch retry`).
    public var skipFailed = 0
    /// Delivered before and kept on the server.
    public var kept = 0
    /// Listed when the account paused, answered with mark-seen: recorded as seen, not delivered.
    public var markSeen = 0
    /// Of `fetch`, those delivered before to some of the recipients: they go only to the others.
    public var partial = 0
    /// Delivered, their DELE due, and other content found under their UIDL at the last comparison: fetched again;
    /// the same other content is a new message.
    public var recheck = 0
    /// Messages of UIDLs listed several times (or before), fetched to tell by content which are new.
    public var compare = 0
    public var compareBytes = 0

    public init() {}

    /// The preview of `plan`; `keep` is the account's (or `poll --keep`'s) keep.
    public init(plan: PollPlan, keep: Bool) {
        self.deleteAfterDelivery = !keep
        for item in plan.items {
            switch item.action {
            case .fetch where item.deleteIfSame && item.otherDigest != nil:
                self.recheck += 1
            case .fetch where item.deleteIfSame:
                // Fetched to check it is the message delivered, then deleted.
                if keep { self.deleteExpired += 1 } else { self.deleteDelivered += 1 }
            case .fetch where item.identify:
                self.compare += 1
                self.compareBytes += item.size
            case .fetch(let recipients):
                self.fetch += 1
                self.fetchBytes += item.size
                if recipients.count < plan.policy.recipients.count { self.partial += 1 }
            case .deleteDelivered: self.deleteDelivered += 1
            case .deleteExpired: self.deleteExpired += 1
            case .deleteOversize: self.deleteOversize += 1
            case .skipOversize: self.skipOversize += 1
            case .skipLimit: self.skipLimit += 1
            case .skipFailed: self.skipFailed += 1
            case .keep: self.kept += 1
            }
        }
    }

    /// The preview as lines of text, `delivery` naming where the messages would go.
    public func lines(delivery: String) -> [String] {
        var lines: [String] = []
        if self.markSeen > 0 {
            lines.append(
                "would record \(self.markSeen == 1 ? "1 message" : "\(self.markSeen) messages") as seen without "
                    + "delivering \(self.markSeen == 1 ? "it" : "them") (mark-seen)")
        }
        if self.fetch > 0 {
            let what = self.fetch == 1 ? "1 message" : "\(self.fetch) messages"
            lines.append("would fetch \(what) (\(Self.bytes(self.fetchBytes))) and deliver to \(delivery)")
            if self.partial > 0 {
                lines.append(
                    "\(self.partial == 1 ? "1 of them was" : "\(self.partial) of them were") delivered before to some "
                        + "of the recipients: only the others would get \(self.partial == 1 ? "it" : "them")")
            }
            lines.append(
                self.deleteAfterDelivery
                    ? "would then delete \(self.fetch == 1 ? "it" : "them") from the server (keep = false)"
                    : "would leave \(self.fetch == 1 ? "it" : "them") on the server (keep = true)")
        }
        if self.compare > 0 {
            let what = self.compare == 1 ? "1 message" : "\(self.compare) messages"
            lines.append(
                "would fetch \(what) (\(Self.bytes(self.compareBytes))) whose UIDL the server lists several times (or "
                    + "did), to tell by content which are new: those would be delivered to \(delivery)"
                    + (self.deleteAfterDelivery ? " and deleted" : ""))
        }
        if self.recheck > 0 {
            lines.append(
                "would fetch \(self.recheck) delivered before whose UIDL held other content at the last poll: "
                    + "delivered if it holds that content again (a new message under a reused UIDL), else left")
        }
        if self.deleteDelivered > 0 {
            lines.append(
                "would delete \(self.deleteDelivered) delivered by an earlier poll (keep = false), each fetched first "
                    + "to check it is the message delivered")
        }
        if self.deleteExpired > 0 {
            lines.append(
                "would delete \(self.deleteExpired) delivered longer ago than delete_after, each fetched first to "
                    + "check it is the message delivered")
        }
        if self.deleteOversize > 0 {
            lines.append("would delete \(self.deleteOversize) over max_size unread (oversize = \"delete\")")
        }
        if self.skipOversize > 0 { lines.append("would leave \(self.skipOversize) over max_size on the server") }
        if self.skipLimit > 0 { lines.append("would leave \(self.skipLimit) beyond fetch_limit for later polls") }
        if self.skipFailed > 0 {
            lines.append("would skip \(self.skipFailed) marked failed (`popfetch retry` tries them again)")
        }
        if lines.isEmpty { lines.append("nothing to fetch or delete") }
        return lines
    }

    static func bytes(_ n: Int) -> String {
        if n < 1024 { return "\(n) bytes" }
        if n < 1024 * 1024 { return "\((n + 512) / 1024) KB" }
        let tenths = (n * 10 + 512 * 1024) / (1024 * 1024)
        return "\(tenths / 10).\(tenths % 10) MB"
    }
}
