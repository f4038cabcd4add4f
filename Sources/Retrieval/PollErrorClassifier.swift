import Configuration
import MailTransport
import POP3Core
import Spool
import SystemSupport
import UIDLStore

/// One error classifier: every error a poll can meet, mapped to its class and a message without secrets.
extension AccountPoller {
    /// Why a poll (or a delivery) that the daemon cancelled ended: its shutdown grace ran out.
    public static let abandoned =
        "abandoned: the daemon's shutdown grace ran out (what was not committed is fetched again)"

    /// Maps any error of a poll to its class and a message without secrets.
    public static func classify(_ error: any Error) -> PollError {
        switch error {
        case let e as PollError:
            return e
        case let e as TransportError:
            switch e.kind {
            case .unknownHost: return PollError(.unknownHost, e.description)
            case .connectionRefused, .timeout, .connectionClosed: return PollError(.unavailable, e.description)
            case .tlsFailed, .stlsNotOffered, .stlsRefused: return PollError(.protocolError, e.description)
            }
        case let e as POP3ProtocolError:
            return PollError(.protocolError, e.description)
        case let e as POP3CommandError:
            switch e.status.code {
            case .inUse: return PollError(.mailboxInUse, e.description)
            case .loginDelay: return PollError(.loginDelay, e.description)
            case .sysTemp: return PollError(.temporary, e.description)
            default: return PollError(.protocolError, e.description)
            }
        case let e as StateError:
            return PollError(e.isBusy ? .temporary : .io, e.description)
        case let e as SecretError:
            return PollError(e.isIOError ? .io : .config, e.description)
        case let e as LockError:
            return PollError(.io, e.description)
        case let e as SpoolError:
            return PollError(.io, e.description)
        case let e as ConfigurationError:
            return PollError(.config, e.description)
        case let e as CommandEncodingError:
            return PollError(.config, e.description)
        case let e as POP3ClientStateMachine.UsageError:
            return PollError(.internalError, e.description)
        case is CancellationError:
            return PollError(.temporary, Self.abandoned)
        default:
            return PollError(.internalError, "\(error)")
        }
    }
}
