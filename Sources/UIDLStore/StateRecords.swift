public import Foundation
import GRDB

/// What the state database knows of one message of one mailbox.
public struct MessageRecord: Hashable, Sendable {
    public var uid: String
    public var firstSeen: Date
    /// When a listing last showed it (refreshed at most once a day, so a poll that finds nothing new writes nothing).
    public var lastSeen: Date?
    /// The LIST size when it was first listed (nil in databases from before this was recorded).
    public var size: Int?
    public var deliveredAt: Date?
    /// Deleted on the server by popfetch (DELE acknowledged and QUIT answered +OK).
    public var deletedAt: Date?
    /// Failed delivery attempts that count toward max_attempts.
    public var attempts: Int
    /// Failed retrievals (RETR refused, connection lost mid-message, size short of LIST, malformed reply after it).
    public var retrievalAttempts: Int = 0
    public var lastError: String?
    public var failedAt: Date?
    /// Recipients that already accepted this message.
    public var deliveredTo: Set<String>
    /// SHA-256 (hex) of the message as delivered: a message listed again under this key with the same digest is
    /// the same message, whatever its UIDL or size says.
    public var digest: String?
    /// Recorded as seen without being delivered (`popfetch mark-seen`): never deleted by popfetch.
    public var seenOnly: Bool = false
    /// The server acknowledged a DELE, but popfetch does not know whether the QUIT that commits it took effect (it
    /// was refused, dropped, or popfetch died): the message may be gone, and its UIDL reused.
    public var deletePending: Bool = false
    /// Uncertain because it vanished from a listing (another client may have deleted it), not because of a DELE of
    /// popfetch's own (``deletePending`` is true too): other content under its UIDL is new only once two
    /// comparisons agree, and it may be matched by a renumbered message.
    public var vanished: Bool = false
    /// Delivered, its DELE due, and fetched to compare: the digest of the other content found then (see
    /// ``PollPlan/Item/deleteIfSame``).
    public var otherDigest: String?

    public init(
        uid: String, firstSeen: Date, lastSeen: Date? = nil, size: Int? = nil, deliveredAt: Date? = nil,
        deletedAt: Date? = nil, attempts: Int = 0, retrievalAttempts: Int = 0, lastError: String? = nil,
        failedAt: Date? = nil, deliveredTo: Set<String> = [], digest: String? = nil, seenOnly: Bool = false,
        deletePending: Bool = false
    ) {
        self.deletePending = deletePending
        self.digest = digest
        self.seenOnly = seenOnly
        self.uid = uid
        self.firstSeen = firstSeen
        self.lastSeen = lastSeen
        self.size = size
        self.deliveredAt = deliveredAt
        self.deletedAt = deletedAt
        self.attempts = attempts
        self.retrievalAttempts = retrievalAttempts
        self.lastError = lastError
        self.failedAt = failedAt
        self.deliveredTo = deliveredTo
    }
}

/// Counts and outcome of one poll of one account, as stored in `polls`.
public struct PollRecord: Hashable, Sendable {
    public var id: Int64
    public var mailbox: MailboxID
    public var accountName: String
    public var started: Date
    public var finished: Date?
    public var outcome: String
    public var listed: Int
    public var new: Int
    public var delivered: Int
    public var bytes: Int
    public var deleted: Int
    public var deferred: Int
    public var failed: Int
    public var skipped: Int
    public var error: String?
    public var pending: Int = 0
}

/// What `popfetch status` shows for one account.
public struct AccountStatusRecord: Hashable, Sendable {
    public var lastPoll: PollRecord?
    public var failedMessages: Int
    public var deliveredTotal: Int
    public var consecutiveFailures: Int
    public var nextPoll: Date?
    /// Why the account is paused for the user's decision (flood protection), if it is.
    public var pausedReason: String?
    /// When the last poll with outcome `ok` finished (among the polls the state keeps).
    public var lastSuccess: Date?
    /// Messages left on the server after the last poll that logged in (a failed poll does not know).
    public var lastKnownPending: Int?
    /// The newest poll, when it is still recorded as running: in flight, or its process died.
    public var unfinishedPoll: PollRecord?
    /// Set by `popfetch status` when ``unfinishedPoll``'s process is gone (nobody holds the mailbox's lock).
    public var interrupted = false
}

/// Failure of the state database (the CLI maps it to EX_IOERR).
public struct StateError: Error, Hashable, Sendable, CustomStringConvertible {
    public var path: String
    public var message: String
    /// Another process held the database longer than the busy time-out (SQLITE_BUSY or SQLITE_LOCKED): trying
    /// again later will do.
    public var isBusy = false
    public var description: String { "state database \(self.path): \(self.message)" }

    public init(path: String, message: String, isBusy: Bool = false) {
        self.path = path
        self.message = message
        self.isBusy = isBusy
    }

    /// `error` from SQLite or GRDB, as a StateError of `path`.
    static func wrapping(_ error: any Error, path: String) -> StateError {
        if let e = error as? StateError { return e }
        if let e = error as? DatabaseError, e.resultCode == .SQLITE_BUSY || e.resultCode == .SQLITE_LOCKED {
            return StateError(
                path: path, message: "\(error) (another process held the database for longer than 30 s)", isBusy: true)
        }
        return StateError(path: path, message: "\(error)")
    }
}

/// A POP3 listing against the state database's records, found in one pass over the listing (by the poll
/// plan) and recorded by ``StateStore/recordListing(mailbox:listed:diff:known:at:forgetAfter:)``.
public struct ListingDiff: Hashable, Sendable {
    public struct Entry: Hashable, Sendable {
        public var key: String
        public var size: Int

        public init(key: String, size: Int) {
            self.key = key
            self.size = size
        }
    }
    /// Listed keys with no record.
    public var new: [Entry] = []
    /// Listed keys whose record describes another message (deleted before, or another size), not counting
    /// records deleted by popfetch.
    public var changed = 0
    /// Listed keys with a record.
    public var matched = 0
    /// Listed keys whose `last_seen` is older than the refresh granularity.
    public var stale: [String] = []
    /// Listed keys whose record has no size yet (databases from before sizes were recorded).
    public var unsized: [Entry] = []
    /// Records of UIDLs now listed several times, kept under the plain UIDL and still taken to be on the server:
    /// marked uncertain (`delete_pending`), so a later single listing is fetched and compared, never trusted.
    public var uncertain: [String] = []
    /// Listed messages identified by content that no record of a delivered message still on the server matches
    /// (counted as unknown by the flood guard).
    public var unidentified = 0

    public init() {}
}
