import Foundation
public import UIDLStore

/// Messages of a UIDL listed several times (popa3d gives every message without a Message-ID one UIDL), or that was:
/// neither the UIDL nor a place in the listing names one of them (another client may delete one and a new one of the
/// same size take its place), so each is fetched and known by its content. Its key in the state database is settled
/// once it is received, before any record is written.
extension PollPlan {
    /// The key of a message of a UIDL identified by content: "UIDL #=digest", and for the j-th byte-identical copy
    /// listed in one poll (j > 1) "UIDL #=digest/j". A valid UIDL has no space, and a listing place's key ("UIDL #k")
    /// has only digits after the "#", so these keys collide with neither.
    public static func contentKey(uid: String, digest: String, copy: Int) -> String {
        copy > 1 ? "\(uid) #=\(digest)/\(copy)" : "\(uid) #=\(digest)"
    }

    /// The UIDL of a key of the form "UIDL #…" (a listing place's, or one by content), nil for a plain key.
    public static func sharedUID(ofKey key: String) -> Substring? {
        var previousSpace = false
        var index = key.utf8.startIndex
        for byte in key.utf8 {
            if previousSpace && byte == UInt8(ascii: "#") {
                let end = key.utf8.index(index, offsetBy: -1)
                return Substring(key.utf8[key.utf8.startIndex..<end])
            }
            previousSpace = byte == UInt8(ascii: " ")
            key.utf8.formIndex(after: &index)
        }
        return nil
    }

    /// A message identified by content (``Item/identify``), once fetched whole: its key and what to do with it, from
    /// the record of that content. `copy` counts the byte-identical messages of its UIDL fetched in this poll, this
    /// one included; `claimed` holds the keys already given to messages in this poll.
    ///
    /// The record is the one keyed by this content (and copy); failing that, an older record of the UIDL (its plain
    /// key's, or a listing place's from before) of a message delivered with this digest. With none, the message is
    /// new. A record found is that content's whatever its key says of the server (deleted before, another place):
    /// the same content is the message delivered, never delivered twice. `known` is the plan's own records.
    public func identify(
        _ item: Item, digest: String, copy: Int, known: [String: MessageRecord], claimed: Set<String>
    ) -> (key: String, record: MessageRecord?, action: Action) {
        var key = Self.contentKey(uid: item.uid, digest: digest, copy: copy)
        var record = known[key]
        if record == nil {
            for k in self.sharedDelivered[item.uid]?[digest] ?? [] where !claimed.contains(k) {
                if let r = known[k], r.digest == digest, r.deliveredAt != nil {
                    key = k
                    record = r
                    break
                }
            }
        }
        let policy = self.policy
        guard let record else { return (key, nil, .fetch(recipients: policy.recipients)) }
        if record.seenOnly && record.deliveredAt != nil { return (key, record, .keep) }
        if record.deliveredAt != nil || policy.recipients.allSatisfy(record.deliveredTo.contains) {
            if !policy.keep { return (key, record, .deleteDelivered) }
            if let after = policy.deleteAfter, let at = record.deliveredAt,
                self.now.timeIntervalSince(at) >= Double(after)
            {
                return (key, record, .deleteExpired)
            }
            return (key, record, .keep)
        }
        if record.failedAt != nil { return (key, record, .skipFailed) }
        return (key, record, .fetch(recipients: policy.recipients.filter { !record.deliveredTo.contains($0) }))
    }
}
