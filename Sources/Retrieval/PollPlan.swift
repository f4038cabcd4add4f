import Crypto
public import Foundation
public import POP3Core
public import UIDLStore

/// What to do with each message on the server: a pure decision from the listing, the state and the policy.
///
/// The DELE rule lives here and in ``Settlement``: a message is deleted on the server only if, in this mailbox,
/// popfetch received it completely (terminating dot line, at least its LIST size less `size_tolerance`, and the next
/// reply well-formed), delivered it, and committed that. A message delivered in an earlier poll whose DELE falls due
/// later (keep = false after a poll cut short, delete_after) is fetched again and compared with the digest of the copy
/// delivered (``Item/deleteIfSame``): a server may give its UIDL to another message once it is deleted elsewhere.
/// Only a record without a digest (an older popfetch's) is deleted unread, and only when certainly the same message:
/// its key listed once, not deleted before, the LIST size recorded. Anything else (a UIDL seen again after its
/// message was deleted, a different size) is fetched and compared; a UIDL listed several times is identified by
/// content (``Item/identify``).
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
        /// The UIDL as the server listed it (escaped by the parser if it was not valid RFC 1939).
        public var uid: String
        /// The message's key in the state database: the UIDL; for a UIDL identified by content (``identify``), its
        /// place in the listing ("UIDL #k") until the fetch settles the key.
        public var key: String
        public var size: Int
        public var action: Action
        /// The key's record describes a message delivered before (then deleted, or of another size): fetch this one
        /// and compare digests. The same content is that message, not delivered again; other content is new.
        public var verify: String? = nil
        /// The key's record describes an earlier message: start the record over before delivering this one.
        public var restart = false
        /// Its retrieval failed before: the next reply must prove it whole before any receiver sees it (so a server
        /// that sends a stray line after it costs one duplicate at most, not one per poll).
        public var confirmFirst = false
        /// Its UIDL is listed several times now, or was (records keyed by content exist for it): which message this
        /// is shows only in its content. `key` is then its place in the listing ("UIDL #k"), used for retrieval
        /// failures alone; after the fetch, ``PollPlan/identify(_:digest:copy:known:claimed:)`` gives the message's
        /// key (``PollPlan/contentKey(uid:digest:copy:)``) and what to do with it.
        public var identify = false
        /// Delivered, and its DELE is due (keep = false after a poll cut short, or delete_after passed): fetched and
        /// compared with ``verify`` first. The same content is deleted; other content is a new message.
        public var deleteIfSame = false
        /// For ``deleteIfSame``: the other content found at the last comparison, if any. The same other content
        /// again is a new message under a reused UIDL; yet another content is noted in its place (a server that
        /// rewrites the message at every RETR, or yet another message): never deleted unread.
        public var otherDigest: String? = nil
        /// Delivered to some of the recipients already, as this content: the others get the message only if it
        /// still is (its UIDL may name a new message by now); other content is compared again as for
        /// ``deleteIfSame``, and when found new goes to every recipient.
        public var partialDigest: String? = nil
        /// A delivered message that vanished from a listing and is listed again (its record uncertain): other content
        /// is a new message only once two comparisons agree (``otherDigest``), so that a server that rewrites
        /// messages at every RETR does not have each of them delivered again after a listing that dropped them.
        public var confirmOther = false
    }

    public var items: [Item]
    /// Every listed key with its LIST size, for the state database.
    public var listed: [String: Int]
    /// How the listing compares with the records, found in the same pass (so a poll that finds nothing new costs
    /// one dictionary lookup per listed message, not one per step that needs to know).
    public var diff: ListingDiff
    /// Set when nothing is to be done (every message kept, none new, none changed): until when the same listing
    /// would still need nothing done, with the records as they are after this poll's writes. A `last_seen` refresh
    /// or a `delete_after` falls due then.
    public var quietUntil: Date?
    /// The policy and time the plan was made with (``identify(_:digest:copy:known:claimed:)`` decides with them).
    public var policy: Policy
    public var now: Date
    /// For each UIDL identified by content (``Item/identify``): the keys of its records (the plain UIDL's, those of
    /// its listing places, those keyed by content), sorted.
    public var sharedRecords: [String: [String]] = [:]
    /// Of those, the delivered ones under a UIDL's plain key or a listing place's (not under a content key), by
    /// digest: what ``identify(_:digest:copy:known:claimed:)`` looks up for each message fetched, so that N messages
    /// sharing one UIDL cost N lookups, not N² (review of issue 9, finding 4: 8,000 took 7 s of CPU).
    var sharedDelivered: [String: [String: [String]]] = [:]
    /// Delivered messages no longer listed under their UIDL, by digest: a new UIDL whose message has one of these
    /// digests is that message renumbered (a server that reassigned some UIDLs), not delivered again.
    public var vanishedByDigest: [String: String] = [:]

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

    /// Whether `record` describes the message now listed with `size`, rather than an earlier one under the same
    /// key: it was not deleted by popfetch (nor possibly deleted: a DELE acknowledged before an uncertain QUIT), and
    /// its recorded LIST size (when known) is the same.
    public static func isSameMessage(_ record: MessageRecord, listedSize: Int?) -> Bool {
        if record.deletedAt != nil || record.deletePending { return false }
        if let was = record.size, let now = listedSize, was != now { return false }
        return true
    }

    /// Whether the flood guard counts `record` as a message changed under its key (fetched as new): one that does
    /// not describe the listed message for certain, except one that vanished from a listing and is back with its
    /// size, with a digest: that one is fetched and compared, and delivered only if two comparisons find the same
    /// other content.
    public static func countsAsChanged(_ record: MessageRecord, listedSize: Int?) -> Bool {
        guard record.deletedAt == nil, !Self.isSameMessage(record, listedSize: listedSize) else { return false }
        if record.vanished, record.digest != nil, record.deliveredAt != nil,
            record.size == nil || listedSize == nil || record.size == listedSize
        {
            return false
        }
        return true
    }

    /// - Parameters:
    ///   - listing: (message number, UIDL) in server order.
    ///   - sizes: LIST sizes by message number.
    ///   - known: the state database's records for this mailbox, by key.
    public init(
        listing: [UIDLEntry], sizes: ListedSizes, known: [String: MessageRecord], policy: Policy, now: Date
    ) {
        self.policy = policy
        self.now = now
        var listed: [String: Int] = [:]
        listed.reserveCapacity(listing.count)
        for entry in listing { listed[entry.uid] = sizes[entry.number] ?? 0 }
        // UIDLs identified by content: those listed several times (popa3d hashes headers, so messages without
        // Message-ID share one), and those that were (their records are keyed "UIDL #…"). A listing place names
        // no message for them: another client may delete one and a new one of the same size take its place.
        var records: [String: [String]] = [:]
        for key in known.keys {
            if let uid = Self.sharedUID(ofKey: key) { records[String(uid), default: []].append(key) }
        }
        var byContent: [String: Int] = [:]
        if listed.count != listing.count || !records.isEmpty {
            for entry in listing where records[entry.uid] != nil { byContent[entry.uid] = 0 }
            if listed.count != listing.count {
                var count: [String: Int] = [:]
                for e in listing { count[e.uid, default: 0] += 1 }
                for (uid, n) in count where n > 1 { byContent[uid] = 0 }
            }
            for uid in byContent.keys { listed[uid] = nil }
        }
        var diff = ListingDiff()
        let staleBefore = now.timeIntervalSince1970 - StateStore.lastSeenGranularity
        var items: [Item] = []
        items.reserveCapacity(listing.count)
        // Messages whose retrieval failed before go last, so one that always breaks the connection cannot keep the
        // messages behind it from being fetched.
        var retried: [Item] = []
        var fetches = 0
        var allKept = true
        let granularity = StateStore.lastSeenGranularity
        var quietUntil = now.timeIntervalSince1970 + granularity
        for entry in listing {
            let listedSize = sizes[entry.number]
            let size = listedSize ?? 0
            if let place = byContent[entry.uid] {
                // Fetched at every poll and identified by its content (``identify``); its place in the listing is
                // its key only for failed retrievals. Not counted toward fetch_limit: only a new one is.
                byContent[entry.uid] = place + 1
                let key = "\(entry.uid) #\(place + 1)"
                listed[key] = size
                allKept = false
                if let max = policy.maxSize, size > max {
                    let action: Action = policy.deleteOversize ? .deleteOversize : .skipOversize
                    items.append(Item(number: entry.number, uid: entry.uid, key: key, size: size, action: action))
                    continue
                }
                var item = Item(
                    number: entry.number, uid: entry.uid, key: key, size: size,
                    action: .fetch(recipients: policy.recipients))
                item.identify = true
                if (known[key]?.retrievalAttempts ?? 0) > 0 {
                    item.confirmFirst = true
                    retried.append(item)
                } else {
                    items.append(item)
                }
                continue
            }
            let key = entry.uid
            let raw = known[key]
            let same = raw.map { Self.isSameMessage($0, listedSize: listedSize) } ?? true
            if let raw {
                diff.matched += 1
                if !same && Self.countsAsChanged(raw, listedSize: listedSize) { diff.changed += 1 }
                let lastSeen = raw.lastSeen?.timeIntervalSince1970 ?? 0
                if lastSeen < staleBefore {
                    diff.stale.append(key)  // refreshed to now by this poll
                } else {
                    quietUntil = min(quietUntil, lastSeen + granularity)
                }
                if raw.size == nil && raw.deletedAt == nil { diff.unsized.append(.init(key: key, size: size)) }
            } else {
                diff.new.append(.init(key: key, size: size))
            }
            let record = same ? raw : nil
            let deliveredEverywhere =
                record.map { r in r.deliveredAt != nil || policy.recipients.allSatisfy { r.deliveredTo.contains($0) } }
                ?? false
            // Deleting without fetching needs certainty that this is the message that was delivered.
            let certain = record?.size != nil && listedSize != nil
            // Its DELE is due: delivered, and keep = false (a poll cut short), or kept longer than delete_after.
            var expired = false
            if policy.keep, let record, let after = policy.deleteAfter, let at = record.deliveredAt, !record.seenOnly {
                expired = now.timeIntervalSince(at) >= Double(after)
            }
            let deleteDue = deliveredEverywhere && (!policy.keep || expired) && !(record?.seenOnly ?? false)
            // A DELE that is due: the message is fetched again and compared with what was delivered (a UIDL may be
            // given to another message once its own is deleted, by another client: popa3d reuses them). Without a
            // digest (a record from an older popfetch) only a certain one is deleted unread, and with keep = true
            // an uncertain one is kept rather than delivered again.
            // Its comparing fetch failed max_attempts times (the failures are recorded on the delivered record): it
            // stays on the server, marked failed, until `popfetch retry` (never deleted unread: its UIDL may name
            // another message by now).
            let unfetchable = record?.failedAt != nil && record?.deliveredAt != nil && record?.digest != nil
            let refetch = deleteDue && !unfetchable && (record?.digest != nil || (!policy.keep && !certain))
            let action: Action
            if let record, record.seenOnly, record.deliveredAt != nil {
                // Marked seen without delivery (mark-seen): popfetch never deletes what it did not deliver.
                action = .keep
            } else if deleteDue && unfetchable {
                action = .skipFailed
            } else if deliveredEverywhere, !refetch, let record {
                if !policy.keep {
                    action = certain ? .deleteDelivered : .keep
                } else if let after = policy.deleteAfter, let at = record.deliveredAt, !record.seenOnly,
                    now.timeIntervalSince(at) >= Double(after)
                {
                    action = certain ? .deleteExpired : .keep
                } else {
                    if let after = policy.deleteAfter, let at = record.deliveredAt, !record.seenOnly {
                        quietUntil = min(quietUntil, at.timeIntervalSince1970 + Double(after))
                    }
                    action = .keep
                }
            } else if let record, record.failedAt != nil {
                action = .skipFailed
            } else if let max = policy.maxSize, size > max {
                action = policy.deleteOversize ? .deleteOversize : .skipOversize
            } else {
                let missing =
                    refetch || !same
                    ? policy.recipients : policy.recipients.filter { !(record?.deliveredTo.contains($0) ?? false) }
                var item = Item(
                    number: entry.number, uid: entry.uid, key: key, size: size, action: .fetch(recipients: missing))
                item.deleteIfSame = refetch && record?.digest != nil
                if !refetch, let record, !record.deliveredTo.isEmpty, record.deliveredAt == nil,
                    let digest = record.digest
                {
                    // Delivered to some of the recipients: the rest get it only if it is still that content.
                    item.partialDigest = digest
                    item.otherDigest = record.otherDigest
                }
                if item.deleteIfSame, let other = record?.otherDigest {
                    // Other content was found at the last comparison: if it is found again, it is a new message
                    // (the flood guard counts it, as a message changed under its UIDL).
                    item.otherDigest = other
                    diff.changed += 1
                }
                // A record of an earlier message under this key: compare contents if it was delivered, else start
                // the record over.
                let earlier = refetch ? record : (same ? nil : raw)
                if !refetch, let raw, raw.vanished, raw.deletedAt == nil, raw.deliveredAt != nil,
                    raw.digest != nil, raw.size == nil || listedSize == nil || raw.size == listedSize
                {
                    item.confirmOther = true
                    item.otherDigest = raw.otherDigest
                }
                if let earlier {
                    if earlier.deliveredAt != nil, let digest = earlier.digest {
                        item.verify = digest
                    } else {
                        item.restart = true
                    }
                }
                allKept = false
                if ((record ?? raw)?.retrievalAttempts ?? 0) > 0 {
                    item.confirmFirst = true
                    retried.append(item)
                } else if item.deleteIfSame {
                    // A deletion, not a delivery: not counted toward fetch_limit.
                    items.append(item)
                } else if policy.fetchLimit > 0 && fetches >= policy.fetchLimit {
                    item.action = .skipLimit
                    items.append(item)
                } else {
                    fetches += 1
                    items.append(item)
                }
                continue
            }
            if action != .keep { allKept = false }
            items.append(Item(number: entry.number, uid: entry.uid, key: key, size: size, action: action))
        }
        for var item in retried {
            if item.identify || item.deleteIfSame {
                items.append(item)
                continue
            }
            if policy.fetchLimit > 0 && fetches >= policy.fetchLimit {
                item.action = .skipLimit
            } else {
                fetches += 1
            }
            items.append(item)
        }
        // The records of each UIDL identified by content: all count as listed (refreshed, not forgotten), and the
        // flood guard counts as unknown the places not matched by a delivered message still on the server.
        for (uid, places) in byContent {
            var keys = records[uid] ?? []
            if let plain = known[uid] {
                keys.append(uid)
                // The plain UIDL's record: once the UIDL is listed several times, no later single listing can be
                // trusted to be that message (another client may have deleted it as one of the several): it is
                // fetched and compared then, never deleted unread.
                if plain.deletedAt == nil && !plain.deletePending { diff.uncertain.append(uid) }
            }
            keys.sort()
            var present = 0
            for key in keys {
                guard let r = known[key] else { continue }
                diff.matched += 1
                if (r.lastSeen?.timeIntervalSince1970 ?? 0) < staleBefore { diff.stale.append(key) }
                if r.deliveredAt != nil && r.deletedAt == nil { present += 1 }
            }
            diff.unidentified += max(0, places - present)
            self.sharedRecords[uid] = keys
            var delivered: [String: [String]] = [:]
            for key in keys where !key.contains(" #=") {
                if let r = known[key], r.deliveredAt != nil, let digest = r.digest {
                    delivered[digest, default: []].append(key)
                }
            }
            if !delivered.isEmpty { self.sharedDelivered[uid] = delivered }
        }
        self.items = items
        self.listed = listed
        self.diff = diff
        if diff.matched < known.count {
            // Only when some record matched nothing listed: the quiet poll does not walk the records.
            for (key, r) in known
            where listed[key] == nil && r.deletedAt == nil && r.deliveredAt != nil && !r.seenOnly
                && (!r.deletePending || r.vanished) && Self.sharedUID(ofKey: key) == nil
            {
                if let digest = r.digest { self.vanishedByDigest[digest] = key }
            }
        }
        let quiet = allKept && diff.new.isEmpty && diff.changed == 0 && diff.unsized.isEmpty
        self.quietUntil = quiet ? Date(timeIntervalSince1970: quietUntil) : nil
    }

    /// SHA-256 of a listing (numbers, UIDLs, sizes) and of the policy that planned it: two polls with the same
    /// fingerprint and the same records make the same plan.
    public static func fingerprint(listing: [UIDLEntry], sizes: ListedSizes, policy: Policy) -> [UInt8] {
        var hash = SHA256()
        var policyText =
            "keep=\(policy.keep) delete_after=\(policy.deleteAfter ?? -1) max_size=\(policy.maxSize ?? -1) "
        policyText += "delete_oversize=\(policy.deleteOversize) fetch_limit=\(policy.fetchLimit) recipients="
        for r in policy.recipients { policyText += "\(r.utf8.count):\(r)," }
        hash.update(data: Array(policyText.utf8))
        var buffer: [UInt8] = []
        buffer.reserveCapacity(64 * 1024)
        for entry in listing {
            // Number, LIST size and UIDL length as three little-endian Int64s, then the UIDL's bytes.
            let fields = (
                Int64(entry.number).littleEndian, Int64(sizes[entry.number] ?? -1).littleEndian,
                Int64(entry.uid.utf8.count).littleEndian
            )
            withUnsafeBytes(of: fields) { buffer.append(contentsOf: $0) }
            buffer.append(contentsOf: entry.uid.utf8)
            if buffer.count >= 60 * 1024 {
                hash.update(data: buffer)
                buffer.removeAll(keepingCapacity: true)
            }
        }
        hash.update(data: buffer)
        return Array(hash.finalize())
    }

    /// Messages to fetch and deliver: new ones, and those to be delivered again. Not those identified by content,
    /// which are fetched to be compared (``compareCount``): which of them are new is known only once fetched.
    public var fetchCount: Int {
        self.items.reduce(0) { if case .fetch = $1.action, !$1.identify, !$1.deleteIfSame { $0 + 1 } else { $0 } }
    }

    /// Delivered messages whose DELE is due and whose UIDL held other content at the last comparison: new if they
    /// hold it again.
    public var recheckCount: Int {
        self.items.reduce(0) { $1.deleteIfSame && $1.otherDigest != nil ? $0 + 1 : $0 }
    }

    /// Messages of UIDLs identified by content, fetched to tell by their content which are new.
    public var compareCount: Int {
        self.items.reduce(0) { if case .fetch = $1.action, $1.identify { $0 + 1 } else { $0 } }
    }
}
