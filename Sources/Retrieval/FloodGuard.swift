import Foundation
public import UIDLStore

/// Flood protection: a pure verdict on whether a listing may be acted on, or the account pauses for the user.
///
/// Only `keep = true` mailboxes can flood (with keep = false every delivered message is gone from the server).
/// Two listings pause them: one of a mailbox popfetch has no record of (first poll, or a lost state database)
/// holding more than `limit` messages; and a UIDL reset, where at least half of the known messages vanished while
/// more than `limit` unknown ones appeared (a server migration that renumbered every UIDL).
public enum FloodGuard {
    public enum Verdict: Hashable, Sendable {
        case proceed
        case pause(String)
    }

    public static func assess(
        listed: [String: Int], known: [String: MessageRecord], mailbox: MailboxState, keep: Bool, limit: Int
    ) -> Verdict {
        // Unknown keys, and known keys whose record describes another message (another size): both would be
        // fetched as new.
        var unknown = 0
        var changed = 0
        for (key, size) in listed {
            guard let r = known[key] else {
                unknown += 1
                continue
            }
            if PollPlan.countsAsChanged(r, listedSize: size) { changed += 1 }
        }
        return self.assess(
            unknown: unknown, changed: changed, listed: listed, known: known, mailbox: mailbox, keep: keep,
            limit: limit)
    }

    /// The verdict from a plan's ``ListingDiff`` (no second pass over the listing).
    public static func assess(
        plan: PollPlan, known: [String: MessageRecord], mailbox: MailboxState, keep: Bool, limit: Int
    ) -> Verdict {
        self.assess(
            unknown: plan.diff.new.count + plan.diff.unidentified, changed: plan.diff.changed, listed: plan.listed,
            known: known, mailbox: mailbox, keep: keep, limit: limit, shared: plan.sharedRecords)
    }

    /// `shared`: the UIDLs identified by content (``PollPlan/sharedRecords``), whose records count as listed.
    static func assess(
        unknown: Int, changed: Int, listed: [String: Int], known: [String: MessageRecord], mailbox: MailboxState,
        keep: Bool, limit: Int, shared: [String: [String]] = [:]
    ) -> Verdict {
        guard keep, limit > 0, mailbox.decision != .fetchAll else { return .proceed }
        guard unknown + changed > limit else { return .proceed }
        let remedy =
            "run `popfetch mark-seen --account NAME` to record them as seen without delivering them, or "
            + "`popfetch fetch-all --account NAME` to deliver them all"
        if mailbox.firstListed == nil {
            return .pause(
                "popfetch has no record of this mailbox (first poll, or the state database was lost or replaced) and "
                    + "it holds \(unknown + changed) messages; with keep = true they may all have been delivered "
                    + "before, so the account is paused: \(remedy)")
        }
        if changed > limit {
            return .pause(
                "\(changed) known messages changed size under the same UIDLs (a mailbox migration?); the account is "
                    + "paused: \(remedy)")
        }
        let present = known.values.filter { $0.deletedAt == nil }
        let stillListed = present.reduce(0) { n, r in
            let uid = PollPlan.sharedUID(ofKey: r.uid).map(String.init) ?? r.uid
            return listed[r.uid] != nil || shared[uid] != nil ? n + 1 : n
        }
        let vanished = present.count - stillListed
        if unknown > limit && !present.isEmpty && vanished * 2 >= present.count {
            return .pause(
                "the server's UIDLs look reset: \(vanished) of \(present.count) known messages vanished and "
                    + "\(unknown) unknown ones appeared (a mailbox migration?); the account is paused: \(remedy)")
        }
        return .proceed
    }
}
