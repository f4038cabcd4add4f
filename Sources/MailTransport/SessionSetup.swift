import NIOConcurrencyHelpers
import NIOCore

/// Lets another task abandon a connection while its session is being set up (connect, TLS handshake, greeting,
/// EHLO, STARTTLS, AUTH), before anything of a message has been sent: ``abandon()`` closes the channel, which ends
/// the wait in progress at once instead of at its time-out. Once the owner has called ``markReady()``, ``abandon()``
/// does nothing: from then on the session is the owner's to end in order. The owner and the abandoning task race
/// for the one change of phase, under a lock.
public final class SessionSetup: Sendable {
    private enum Phase {
        case settingUp
        case ready
        case abandoned
    }

    private struct State {
        var phase = Phase.settingUp
        var channels: [any Channel] = []
    }

    private let state = NIOLockedValueBox(State())

    public init() {}

    /// Called from a channel initializer: the channel is closed if the setup is abandoned. Throws
    /// `CancellationError` when it already was (that connect attempt fails).
    func register(_ channel: any Channel) throws {
        let abandoned = self.state.withLockedValue { s -> Bool in
            if s.phase == .settingUp { s.channels.append(channel) }
            return s.phase == .abandoned
        }
        if abandoned { throw CancellationError() }
    }

    /// The session is set up; false when it was abandoned first (its channel is being closed).
    public func markReady() -> Bool {
        self.state.withLockedValue { s in
            if s.phase == .settingUp {
                s.phase = .ready
                s.channels = []
            }
            return s.phase == .ready
        }
    }

    /// Closes the connection being set up; true when it did, false when the session was ready already.
    @discardableResult
    public func abandon() -> Bool {
        let channels = self.state.withLockedValue { s -> [any Channel]? in
            guard s.phase != .ready else { return nil }
            s.phase = .abandoned
            defer { s.channels = [] }
            return s.channels
        }
        guard let channels else { return false }
        for c in channels { c.close(promise: nil) }
        return true
    }

    /// The setup was abandoned (whatever error the connection then ended with, this is why).
    public var wasAbandoned: Bool { self.state.withLockedValue { $0.phase == .abandoned } }

    /// Neither ready nor abandoned yet.
    public var isSettingUp: Bool { self.state.withLockedValue { $0.phase == .settingUp } }
}

extension SessionSetup {
    /// Runs `body`; while `setup` is setting up, a stop request (looked at every 100 ms) abandons it.
    public static func abandoningOnStop(
        _ setup: SessionSetup, stopRequested: @escaping @Sendable () -> Bool, _ body: () async throws -> Void
    ) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                while setup.isSettingUp {
                    do { try await Task.sleep(for: .milliseconds(100)) } catch { return }
                    if stopRequested() { setup.abandon() }
                }
            }
            do {
                try await body()
            } catch {
                group.cancelAll()
                throw error
            }
            group.cancelAll()
        }
    }
}
