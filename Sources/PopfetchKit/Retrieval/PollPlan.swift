import Foundation
import POP3Core

/// What to do with each message on the server: a pure decision from the listing, the state and the policy.
public struct PollPlan: Hashable, Sendable {
    public enum Action: Hashable, Sendable {
        /// RETR it and deliver to these recipients (those that do not have it yet).
        case fetch(recipients: [String])
        /// Already delivered everywhere and not kept: DELE it (finishing a poll that was cut short).
        case deleteDelivered
        /// keep = true and delivered longer ago than delete_after.
        case deleteExpired
        /// Larger than max_size with oversize = "delete".
        case deleteOversize
        /// Larger than max_size with oversize = "skip".
        case skipOversize
        /// Marked failed after max_attempts; waits for `popfetch retry`.
        case skipFailed
        /// Beyond fetch_limit for this poll.
        case skipLimit
        /// Already delivered, kept on the server.
        case keep
    }

    public struct Item: Hashable, Sendable {
        public var number: Int
        public var uid: String
        public var size: Int
        public var action: Action
    }

    public var items: [Item]

    public struct Policy: Hashable, Sendable {
        public var keep: Bool
        public var deleteAfter: Int?
        public var maxSize: Int?
        public var deleteOversize: Bool
        public var fetchLimit: Int
        public var recipients: [String]

        public init(
            keep: Bool, deleteAfter: Int?, maxSize: Int?, deleteOversize: Bool, fetchLimit: Int, recipients: [String]
        ) {
            self.keep = keep
            self.deleteAfter = deleteAfter
            self.maxSize = maxSize
            self.deleteOversize = deleteOversize
            self.fetchLimit = fetchLimit
            self.recipients = recipients
        }
    }

    /// - Parameters:
    ///   - listing: (message number, UIDL) in server order.
    ///   - sizes: LIST sizes by message number.
    ///   - known: the state database's records for this mailbox.
    public init(
        listing: [UIDLEntry], sizes: [Int: Int], known: [String: MessageRecord], policy: Policy, now: Date
    ) {
        var items: [Item] = []
        items.reserveCapacity(listing.count)
        var fetches = 0
        var seen = Set<String>()
        for entry in listing {
            let size = sizes[entry.number] ?? 0
            let record = known[entry.uid]
            let action: Action
            // A server listing one UIDL twice is broken; fetch it once.
            if !seen.insert(entry.uid).inserted {
                continue
            }
            if let record, record.deliveredAt != nil
                || policy.recipients.allSatisfy({ record.deliveredTo.contains($0) })
            {
                if !policy.keep {
                    action = .deleteDelivered
                } else if let after = policy.deleteAfter, let at = record.deliveredAt,
                    now.timeIntervalSince(at) >= Double(after)
                {
                    action = .deleteExpired
                } else {
                    action = .keep
                }
            } else if let record, record.failedAt != nil {
                action = .skipFailed
            } else if let max = policy.maxSize, size > max {
                action = policy.deleteOversize ? .deleteOversize : .skipOversize
            } else if policy.fetchLimit > 0 && fetches >= policy.fetchLimit {
                action = .skipLimit
            } else {
                fetches += 1
                let missing = policy.recipients.filter { !(record?.deliveredTo.contains($0) ?? false) }
                action = .fetch(recipients: missing)
            }
            items.append(Item(number: entry.number, uid: entry.uid, size: size, action: action))
        }
        self.items = items
    }

    public var fetchCount: Int {
        self.items.reduce(0) { if case .fetch = $1.action { $0 + 1 } else { $0 } }
    }
}
