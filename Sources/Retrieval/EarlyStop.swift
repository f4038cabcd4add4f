import NIOConcurrencyHelpers

/// Whether a stop request (SIGTERM to `popfetch poll`, the daemon shutting down) may end a session at once.
///
/// Between messages a stop waits for the message in hand to be delivered and committed, so it costs no duplicate.
/// Until login has succeeded (the password command, connecting, the TLS handshake, the greeting, login) nothing is
/// in hand and nothing has been changed: a stop ends the session there and then, instead of waiting out a stalled
/// server's time-out, and the poll counts as not made (outcome `skipped`, its record dropped). While the listing
/// (UIDL and LIST) comes in, a stop lets it arrive, then QUITs without acting on it: Dovecot (2.3) keeps the
/// mailbox's POP3 lock for minutes when a client goes away while it sends a listing, so every client of that
/// mailbox would be refused `[IN-USE]` after a stop. From the listing on, the session finishes in order: the message
/// in hand, its DELEs, QUIT and the state's records. (An MTA that stalls while the first message is being delivered
/// is waited for, as any message in hand is.) The session and the watcher that acts on a stop race for each change
/// of phase, under a lock.
final class EarlyStop: Sendable {
    private enum Phase {
        case beforeLogin
        /// Logged in, the listing on its way.
        case listing
        /// A stop came during the listing: the session ends with QUIT once it is in.
        case stopAfterListing
        /// The session is QUITting after its listing, for a stop.
        case quitting
        case messages
        case stopped
    }

    private let phase = NIOLockedValueBox(Phase.beforeLogin)
    /// Whether a stop was asked for; read at each change of phase, so that a stop the watcher has not seen yet (it
    /// looks every 100 ms) still counts.
    private let stopRequested: @Sendable () -> Bool

    /// How long a stop waits for a listing under way, and then for the answer to QUIT: a server that stalls or
    /// trickles there gets no more before its connection is cut (``AccountPoller``'s watcher). Dovecot took 11.5 s
    /// for the first listing of a 20,000-message mailbox (a cold cache); a second signal stops at once.
    static let listingWait: Duration = .seconds(20)

    init(stopRequested: @escaping @Sendable () -> Bool) {
        self.stopRequested = stopRequested
    }

    /// Logged in: true when the session goes on to ask for the listing (a stop then lets it arrive). False when a
    /// stop came before: the session is being cancelled, or, when ``quitsNow``, it is to QUIT at once and end.
    func loggedIn() -> Bool {
        self.phase.withLockedValue { phase in
            if phase == .beforeLogin { phase = self.stopRequested() ? .quitting : .listing }
            return phase == .listing
        }
    }

    /// The listing has arrived: true when the session goes on to act on it (a stop now waits for the session to
    /// finish in order). False when a stop came before: the session is being cancelled, or, when ``quitsNow``, it
    /// is to QUIT and end.
    func beginMessages() -> Bool {
        self.phase.withLockedValue { phase in
            switch phase {
            case .beforeLogin, .listing: phase = self.stopRequested() ? .quitting : .messages
            case .stopAfterListing: phase = .quitting
            case .quitting, .messages, .stopped: break
            }
            return phase == .messages
        }
    }

    /// The session is to QUIT and end, acting on nothing, for a stop.
    var quitsNow: Bool { self.phase.withLockedValue { $0 == .quitting } }

    /// The watcher saw a stop request: true when the session may be ended now.
    func stopNow() -> Bool {
        self.phase.withLockedValue { phase in
            switch phase {
            case .beforeLogin: phase = .stopped
            case .listing: phase = .stopAfterListing
            case .stopAfterListing, .quitting, .messages, .stopped: break
            }
            return phase == .stopped
        }
    }

    /// The watcher waited ``listingWait`` after a stop for the listing or the answer to QUIT: true when the session
    /// is to be ended now (it had not begun acting on its listing).
    func waitedEnough() -> Bool {
        self.phase.withLockedValue { phase in
            if phase == .stopAfterListing || phase == .quitting { phase = .stopped }
            return phase == .stopped
        }
    }

    /// A stop ended the session, or is ending it, before it acted on its listing: however the session then ends (a
    /// time-out while the listing trickled in, its task cancelled), the poll counts as not made.
    var wasStopped: Bool {
        self.phase.withLockedValue { $0 == .stopped || $0 == .quitting || $0 == .stopAfterListing }
    }

    /// The session acts on its listing: the watcher is no longer needed.
    var isActing: Bool { self.phase.withLockedValue { $0 == .messages } }

    /// Why the poll ended (exit 75: mail may be waiting).
    static let stoppedMessage = "stopped before any message was fetched (popfetch was asked to stop)"

    /// Thrown by the watcher: the poll was stopped before its listing arrived.
    struct Stopped: Error {}
}
