import NIOConcurrencyHelpers

/// Whether a stop request (SIGTERM to `popfetch poll`, the daemon shutting down) may end a session at once.
///
/// Between messages a stop waits for the message in hand to be delivered and committed, so it costs no duplicate.
/// Until the listing has arrived (the password command, connecting, the TLS handshake, the greeting, login, UIDL and
/// LIST) nothing is in hand and nothing has been changed: a stop ends the session there and then, instead of waiting
/// out a stalled server's time-out, and the poll counts as not made (outcome `skipped`, its record dropped). From
/// the listing on, the session finishes in order: the message in hand, its DELEs, QUIT and the state's records. (An
/// MTA that stalls while the first message is being delivered is waited for, as any message in hand is.) The session
/// and the watcher that acts on a stop race for the one change of phase, under a lock.
final class EarlyStop: Sendable {
    private enum Phase {
        case beforeMessages
        case messages
        case stopped
    }

    private let phase = NIOLockedValueBox(Phase.beforeMessages)

    /// The listing has arrived: from now on a stop waits for the session to finish in order. False when a stop has
    /// already ended the session (its task is being cancelled).
    func beginMessages() -> Bool {
        self.phase.withLockedValue { phase in
            if phase == .beforeMessages { phase = .messages }
            return phase == .messages
        }
    }

    /// The watcher saw a stop request: true when the session may be ended now.
    func stopNow() -> Bool {
        self.phase.withLockedValue { phase in
            if phase == .beforeMessages { phase = .stopped }
            return phase == .stopped
        }
    }

    /// A stop ended the session before its listing arrived.
    var wasStopped: Bool { self.phase.withLockedValue { $0 == .stopped } }

    /// The session is past its listing: the watcher is no longer needed.
    var isPastBeginning: Bool { self.phase.withLockedValue { $0 == .messages } }

    /// Why the poll ended (exit 75: mail may be waiting).
    static let stoppedMessage = "stopped before any message was fetched (popfetch was asked to stop)"

    /// Thrown by the watcher: the poll was stopped before its listing arrived.
    struct Stopped: Error {}
}
