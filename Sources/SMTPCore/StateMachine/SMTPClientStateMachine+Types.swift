/// What goes in and comes out of the machine: its configuration, states, steps, actions and results.
extension SMTPClientStateMachine {

    public struct Configuration: Hashable, Sendable {
        public enum Dialect: Hashable, Sendable {
            /// RFC 5321: EHLO (HELO fallback), one reply after the end of data.
            case smtp
            /// RFC 2033: LHLO (no fallback), one reply per accepted recipient after the end of data.
            case lmtp
        }

        public enum Security: Hashable, Sendable {
            /// Clear text (a loopback MTA or a unix socket).
            case none
            /// RFC 3207 STARTTLS, required: the session fails if the server does not offer it or refuses it.
            case startTLS
            /// TLS from the first byte (RFC 8314); the connection did the handshake before the greeting.
            case implicitTLS
        }

        public var dialect: Dialect
        /// The domain (or address literal) sent with EHLO/HELO/LHLO (RFC 5321 §4.1.1.1).
        public var clientName: String
        public var security: Security

        public init(dialect: Dialect = .smtp, clientName: String, security: Security = .none) {
            self.dialect = dialect
            self.clientName = clientName
            self.security = security
        }
    }

    public enum SessionState: Hashable, Sendable {
        /// Connected; the `220` greeting has not come yet.
        case awaitingGreeting
        /// EHLO, LHLO or the HELO fallback is in flight.
        case awaitingHello
        /// STARTTLS is in flight.
        case awaitingSTARTTLS
        /// The server said `220` to STARTTLS; the connection is doing the TLS handshake (``tlsEstablished()`` next).
        case negotiatingTLS
        /// Idle between transactions: ``authenticate(mechanism:initialResponse:)``,
        /// ``beginTransaction(sender:recipients:size:needsUTF8:eightBit:)`` or ``quit()``.
        case ready
        /// AUTH, or a SASL response, is in flight.
        case authenticating
        /// A `334` challenge was handed out; ``authenticationStep(response:)`` next.
        case awaitingAuthenticationResponse
        /// MAIL/RCPT/DATA or end-of-data replies are awaited.
        case transaction
        /// The connection is writing the message body (or the lone end-of-data line); ``bodySent()`` next.
        case sendingBody
        /// QUIT is in flight.
        case quitting
        case closed
        /// A ``SMTPClientError`` was thrown; the connection must be closed.
        case failed
    }

    /// The command a reply answers.
    public enum Step: Hashable, Sendable, CustomStringConvertible {
        case greeting, hello, helo, startTLS, authentication, rset, mailFrom, rcptTo, data, endOfData, quit
        /// The NOOP sent after the end of data: its reply, in step, proves that the end-of-data replies answered the
        /// end of data (not a reply sent early, before the server had the whole message, nor one too many).
        case noop

        /// How long to wait for this reply at least, in seconds (RFC 5321 §4.5.3.2). §4.5.3.2 names no value for
        /// EHLO, STARTTLS, AUTH, RSET and QUIT; they get the 5 minutes of the other commands. (Writing one block of
        /// the body has its own limit, 3 minutes, §4.5.3.2.5.)
        public var minimumTimeoutSeconds: Int {
            switch self {
            case .data: return 2 * 60  // §4.5.3.2.4 DATA initiation
            case .endOfData: return 10 * 60  // §4.5.3.2.6 DATA termination
            default: return 5 * 60  // §4.5.3.2.1 greeting, .2 MAIL, .3 RCPT
            }
        }

        public var description: String {
            switch self {
            case .greeting: return "greeting"
            case .hello: return "EHLO"
            case .helo: return "HELO"
            case .startTLS: return "STARTTLS"
            case .authentication: return "AUTH"
            case .rset: return "RSET"
            case .mailFrom: return "MAIL FROM"
            case .rcptTo: return "RCPT TO"
            case .data: return "DATA"
            case .endOfData: return "end of data"
            case .quit: return "QUIT"
            case .noop: return "NOOP"
            }
        }
    }

    /// What became of one recipient of a transaction.
    public struct RecipientResult: Hashable, Sendable {
        public enum Status: Hashable, Sendable {
            /// RFC 5321 §4.2.1: `2yz` after the end of data (LMTP: this recipient's own reply, RFC 2033 §4.2).
            case accepted
            /// `4yz`: try again later. Also a `552` to RCPT (RFC 5321 §4.5.3.1.10: "too many recipients"), and every
            /// recipient still open when the session ended.
            case temporaryFailure
            /// `5yz`: do not try again.
            case permanentFailure
        }

        public var recipient: String
        public var status: Status
        /// The reply that decided it.
        public var reply: SMTPReply
        /// The command that reply answered (MAIL FROM refuses every recipient at once; DATA and, for SMTP, the end
        /// of data every accepted one).
        public var step: Step

        public init(recipient: String, status: Status, reply: SMTPReply, step: Step) {
            self.recipient = recipient
            self.status = status
            self.reply = reply
            self.step = step
        }
    }

    public enum Action: Hashable, Sendable {
        /// Write these commands, in one write. Several only when pipelining (RFC 2920 §3.1: RSET, MAIL and RCPT may
        /// be anywhere in a group, DATA only last).
        case send([SMTPCommand])
        /// Write this AUTH command or SASL response (RFC 4954 §4). Never log it.
        case sendAuthentication(SMTPAuthenticationLine)
        /// The server said `220` to STARTTLS (RFC 3207 §4). Throw away every byte received after that `220`, with
        /// the reply parser's state (RFC 3207 §4.2: nothing learnt before TLS counts; bytes read in clear text now
        /// could be injected), then do the TLS handshake and call ``tlsEstablished()``. A reply passed in before that
        /// is an ``SMTPClientError/Code/unexpectedReply``.
        case startTLS
        /// The session is up (after EHLO, or EHLO again after STARTTLS) with these capabilities: authenticate if
        /// wanted, then begin transactions.
        case ready(SMTPCapabilities)
        /// A `334` challenge (its base64 text, RFC 4954 §4): feed it to the SASL mechanism and call
        /// ``authenticationStep(response:)`` with the base64 answer, or `*` to cancel.
        case authenticationChallenge(String)
        /// `235`: authenticated (RFC 4954 §6).
        case authenticated
        /// `354` (RFC 5321 §4.1.1.4): stream the message, CRLF line ends, dot-stuffed, ending with `CRLF.CRLF`
        /// (``DataEncoder``), then call ``bodySent()``.
        case sendBody
        /// `354` although no recipient can take the message (pipelining): write the lone end-of-data line `.CRLF`
        /// and call ``bodySent()``; the server's answer is read and ignored (RFC 2920 §3.1).
        case sendEmptyBody
        /// Nothing to do until the next reply.
        case waitForReply
        /// The transaction is over: one result per recipient, in the order given to
        /// ``beginTransaction(sender:recipients:size:needsUTF8:eightBit:)``. The machine is ``SessionState/ready``
        /// again.
        case transactionComplete([RecipientResult])
        /// Close the connection.
        case close
    }

    /// Thrown when the caller does something the session state does not allow; nothing changes.
    public struct UsageError: Error, Hashable, Sendable, CustomStringConvertible {
        public var event: String
        public var state: SessionState
        public var reason: String
        public var description: String { "\(self.event) is not allowed in state \(self.state): \(self.reason)" }
    }
}
