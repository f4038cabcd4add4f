/// The SMTP/LMTP session cannot go on: the server refused it, closed it (`421`) or broke the protocol.
///
/// Thrown by ``SMTPClientStateMachine/receivedReply(_:)``; the machine is then
/// ``SMTPClientStateMachine/SessionState/failed`` and the connection must be closed. Errors compare by ``code``
/// only (the context is for people).
///
/// If a mail transaction was in flight, ``transactionResults`` says what became of each of its recipients:
/// outcomes the server had already given (a refused RCPT, an LMTP end-of-data reply) are kept, and every recipient
/// still open is a temporary failure, so that nothing delivered is sent twice and nothing undelivered is lost.
public struct SMTPClientError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case serviceClosing, greetingRefused, helloRefused, startTLSNotOffered, startTLSRefused
            case authenticationFailed, unexpectedReply, connectionLost
        }

        private var base: Base
        private init(_ base: Base) { self.base = base }

        /// `421`, in reply to any command or unsolicited: the server is closing the channel (RFC 5321 §3.8, §4.2.3).
        public static let serviceClosing = Code(.serviceClosing)
        /// The greeting was not `220` (RFC 5321 §3.1, §4.3.2: `554` means no SMTP service here).
        public static let greetingRefused = Code(.greetingRefused)
        /// EHLO and then HELO (RFC 5321 §4.1.4), or LHLO (RFC 2033 §4.1, no fallback), or the EHLO after STARTTLS
        /// (RFC 3207 §4.2), was refused.
        public static let helloRefused = Code(.helloRefused)
        /// STARTTLS is required but the EHLO reply did not offer it (RFC 3207 §4: never go on in clear text).
        public static let startTLSNotOffered = Code(.startTLSNotOffered)
        /// STARTTLS was answered with something other than `220` (RFC 3207 §4: `454`, `501`).
        public static let startTLSRefused = Code(.startTLSRefused)
        /// AUTH ended without `235` (RFC 4954 §6: `535`, `534`, `538`, `454`; `501` after `*`).
        public static let authenticationFailed = Code(.authenticationFailed)
        /// A reply nobody waits for, a reply code the command cannot have, or a reply in clear text between the
        /// `220` to STARTTLS and the TLS handshake.
        /// The connection was lost after part of the end-of-data replies (LMTP): see
        /// ``SMTPClientStateMachine/connectionLost(_:)``.
        public static let connectionLost = Code(.connectionLost)
        public static let unexpectedReply = Code(.unexpectedReply)

        public var description: String {
            switch self.base {
            case .serviceClosing: return "service closing"
            case .greetingRefused: return "greeting refused"
            case .helloRefused: return "hello refused"
            case .startTLSNotOffered: return "STARTTLS not offered"
            case .startTLSRefused: return "STARTTLS refused"
            case .authenticationFailed: return "authentication failed"
            case .unexpectedReply: return "unexpected reply"
            case .connectionLost: return "connection lost"
            }
        }
    }

    public var code: Code
    /// The reply that ended the session.
    public var reply: SMTPReply
    /// What the reply answered; nil for a reply nobody waited for.
    public var step: SMTPClientStateMachine.Step?
    public var detail: String
    /// The recipients of the transaction in flight, each with its outcome; empty when there was none.
    public var transactionResults: [SMTPClientStateMachine.RecipientResult]

    public init(
        code: Code, reply: SMTPReply, step: SMTPClientStateMachine.Step?, detail: String,
        transactionResults: [SMTPClientStateMachine.RecipientResult] = []
    ) {
        self.code = code
        self.reply = reply
        self.step = step
        self.detail = detail
        self.transactionResults = transactionResults
    }

    /// Whether trying again later may succeed. Only a `5yz` refusal is permanent; a broken protocol exchange is
    /// temporary (the message stays where it is rather than being bounced because of a server bug).
    public var isTemporary: Bool {
        self.code == .unexpectedReply || !self.reply.isPermanent
    }

    public static func == (lhs: SMTPClientError, rhs: SMTPClientError) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(self.code) }

    public var description: String {
        let answered = self.step.map { " to \($0)" } ?? ""
        return "SMTP \(self.code): \(self.detail) (server replied\(answered): \(self.reply))"
    }
}
