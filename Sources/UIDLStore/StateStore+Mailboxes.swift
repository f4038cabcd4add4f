public import Foundation
import GRDB

/// Flood protection state of one mailbox: whether it was ever listed, and a pause waiting for the user.
public struct MailboxState: Hashable, Sendable {
    /// The first successful listing of this mailbox (nil: popfetch has no record of it: first poll or lost state).
    public var firstListed: Date?
    /// Why polling is paused (nil: not paused).
    public var pausedReason: String?
    /// What the user decided: ``Decision``.
    public var decision: Decision?
    /// Writes to this mailbox's messages and deliveries so far, by any program (counted by triggers).
    public var generation: Int64 = 0
    /// The fingerprint of the last listing that needed nothing done
    /// (``StateStore/recordQuiet(mailbox:listing:until:generation:)``), valid at `quietGeneration` only.
    public var quietListing: [UInt8]?
    /// Until when that listing needs nothing done (a `last_seen` refresh or a `delete_after` falls due then).
    public var quietUntil: Date?
    /// The generation the fingerprint was taken at.
    public var quietGeneration: Int64?

    /// Whether a listing with `fingerprint` at `now` needs nothing done: the last poll's listing, which needed
    /// nothing, with no write to the records since, before a refresh or expiry falls due, and no pause pending.
    public func isQuiet(fingerprint: [UInt8], at now: Date) -> Bool {
        guard let listing = self.quietListing, let until = self.quietUntil, let at = self.quietGeneration else {
            return false
        }
        return listing == fingerprint && at == self.generation && now < until && self.pausedReason == nil
            && self.decision == nil
    }

    public enum Decision: String, Hashable, Sendable {
        /// Record every message now on the server as seen, without delivering it.
        case markSeen = "mark-seen"
        /// Fetch everything on the server.
        case fetchAll = "fetch-all"
    }
}

/// Flood protection: whether a mailbox was ever listed, and a pause waiting for the user's answer.
extension StateStore {
    public func mailboxState(mailbox: MailboxID) throws -> MailboxState {
        try self.read { db in
            guard
                let r = try Row.fetchOne(
                    db,
                    sql: """
                        SELECT first_listed, paused_reason, decision, generation, quiet_listing, quiet_until,
                            quiet_generation
                        FROM mailboxes WHERE account = ?
                        """,
                    arguments: [mailbox.rawValue])
            else { return MailboxState() }
            return MailboxState(
                firstListed: (r[0] as Double?).map(Date.init(timeIntervalSince1970:)), pausedReason: r[1],
                decision: (r[2] as String?).flatMap(MailboxState.Decision.init(rawValue:)),
                generation: r[3] ?? 0, quietListing: (r[4] as Data?).map { [UInt8]($0) },
                quietUntil: (r[5] as Double?).map(Date.init(timeIntervalSince1970:)), quietGeneration: r[6])
        }
    }

    /// Records that `listing` (a fingerprint of the listing and the policy) needed nothing done, until `until`, as
    /// planned from the records at `generation` (read before they were loaded). If anything wrote to them since,
    /// this poll's own writes included, nothing is recorded: the next poll plans again.
    public func recordQuiet(mailbox: MailboxID, listing: [UInt8], until: Date, generation: Int64) throws {
        try self.write { db in
            try db.execute(
                sql: "INSERT OR IGNORE INTO mailboxes (account) VALUES (?)", arguments: [mailbox.rawValue])
            try db.execute(
                sql: """
                    UPDATE mailboxes SET quiet_listing = ?, quiet_until = ?, quiet_generation = generation
                    WHERE account = ? AND generation = ?
                    """,
                arguments: [Data(listing), until.timeIntervalSince1970, mailbox.rawValue, generation])
        }
    }

    /// Pauses the mailbox until the user decides (``decide(mailbox:_:)``), remembering the keys listed now: a
    /// `mark-seen` answer covers only those, never mail that arrived later.
    /// `keys`: the snapshot `mark-seen` acts on; nil keeps the one of the pause already in force (mail that arrived
    /// while the account stayed paused is not the user's to mark seen unasked).
    public func pause(mailbox: MailboxID, reason: String, keys: [String]?, at now: Date) throws {
        try self.write { db in
            try db.execute(
                sql: """
                    INSERT INTO mailboxes (account, paused_reason, paused_at) VALUES (?, ?, ?)
                    ON CONFLICT (account) DO UPDATE SET paused_reason = excluded.paused_reason,
                        paused_at = COALESCE(paused_at, excluded.paused_at), decision = NULL
                    """, arguments: [mailbox.rawValue, reason, now.timeIntervalSince1970])
            guard let keys else { return }
            try db.execute(sql: "DELETE FROM pause_keys WHERE account = ?", arguments: [mailbox.rawValue])
            let insert = try db.makeStatement(sql: "INSERT OR IGNORE INTO pause_keys (account, uidl) VALUES (?, ?)")
            for k in keys { try insert.execute(arguments: [mailbox.rawValue, k]) }
        }
    }

    /// The keys listed when the mailbox was paused.
    public func pausedKeys(mailbox: MailboxID) throws -> Set<String> {
        try self.read { db in
            try String.fetchSet(db, sql: "SELECT uidl FROM pause_keys WHERE account = ?", arguments: [mailbox.rawValue])
        }
    }

    /// The user's answer to a pause; the next poll carries it out. Only a paused mailbox takes an answer.
    public func decide(mailbox: MailboxID, _ decision: MailboxState.Decision) throws {
        let paused = try self.mailboxState(mailbox: mailbox).pausedReason != nil
        guard paused else {
            throw StateError(
                path: self.path,
                message: "\(mailbox) is not paused; mark-seen and fetch-all answer a flood-protection pause only")
        }
        try self.write { db in
            try db.execute(
                sql: "UPDATE mailboxes SET decision = ? WHERE account = ?",
                arguments: [decision.rawValue, mailbox.rawValue])
        }
    }

    /// The decision was carried out: the mailbox is no longer paused.
    public func resolvePause(mailbox: MailboxID) throws {
        try self.write { db in
            try db.execute(
                sql: "UPDATE mailboxes SET paused_reason = NULL, paused_at = NULL, decision = NULL WHERE account = ?",
                arguments: [mailbox.rawValue])
            try db.execute(sql: "DELETE FROM pause_keys WHERE account = ?", arguments: [mailbox.rawValue])
        }
    }
}
