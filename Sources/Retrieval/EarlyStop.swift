import NIOConcurrencyHelpers

/// Whether a stop request (SIGTERM to `popfetch poll`, the daemon shutting down) may end a session at once.
///
/// Between messages a stop waits for the message in hand to be delivered and committed, so it costs no duplicate.
/// Before the first message is fetched (connecting, the TLS handshake, the greeting, login, the listing, the MTA's
/// greeting) nothing is in hand: a stop ends the session there and then, instead of waiting out a stalled server's
/// time-out. The session and the watcher that acts on a stop race for the one change of phase, under a lock.
final class EarlyStop: Sendable {
    private enum Phase {
        case beforeMessages
        case messages
        case stopped
    }

    private let phase = NIOLockedValueBox(Phase.beforeMessages)

    /// The session is about to fetch its first message: from now on a stop waits for the message in hand. False when
    /// a stop has already ended the session (its task is being cancelled).
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

    /// The session has begun its messages: the watcher is no longer needed.
    var isPastBeginning: Bool { self.phase.withLockedValue { $0 == .messages } }

    /// Why the poll ended (exit 75: mail may be waiting).
    static let stoppedMessage = "stopped before any message was fetched (popfetch was asked to stop)"
}
