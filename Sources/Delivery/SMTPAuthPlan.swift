import MailTransport
import SASL
import SMTPCore

/// SMTP AUTH to the relay with `smtp_user`/`smtp_password` (RFC 4954): the pure decisions — which SASL mechanism,
/// and what a refusal means — and what the poll has learnt so far.
///
/// The mechanism is the strongest the MTA offers, as POP3's `auth = "auto"` chooses (``LoginPlan`` in Retrieval):
/// SCRAM-SHA-256, SCRAM-SHA-1, CRAM-MD5, then PLAIN, then LOGIN. A server may offer a challenge-response
/// mechanism it cannot complete for this user (its password database keeps a hash the mechanism cannot use), and
/// then it cannot complete the other challenge-response mechanisms either: so a permanent refusal of SCRAM or
/// CRAM-MD5 moves on to PLAIN (else LOGIN), on a new connection (the session is over after a refused AUTH). A
/// refused PLAIN or LOGIN is the password's fault, a `4yz` the server's (try later), and `538` asks for encryption
/// no other mechanism brings: those end authentication for the rest of the poll. A wrong password is thus tried at
/// most twice per poll, not once per message.
struct SMTPAuthPlan: Sendable {
    enum Mechanism: String, CaseIterable, Sendable {
        case scramSHA256 = "SCRAM-SHA-256"
        case scramSHA1 = "SCRAM-SHA-1"
        case cramMD5 = "CRAM-MD5"
        case plain = "PLAIN"
        case login = "LOGIN"

        /// The password never goes over the wire.
        var isChallengeResponse: Bool { self != .plain && self != .login }

        func client(user: String, password: String) -> any SASLMechanism {
            switch self {
            case .scramSHA256: return SCRAMMechanism(hash: .sha256, user: user, password: password)
            case .scramSHA1: return SCRAMMechanism(hash: .sha1, user: user, password: password)
            case .cramMD5: return CramMD5Mechanism(user: user, password: password)
            case .plain: return PlainMechanism(user: user, password: password)
            case .login: return LoginMechanism(user: user, password: password)
            }
        }
    }

    /// Authentication ended on this connection; ``tryNextMechanism`` says whether a new connection may try another.
    struct Refusal: Error, CustomStringConvertible {
        var description: String
        var tryNextMechanism: Bool
    }

    /// Mechanisms refused this poll.
    private(set) var refused: Set<Mechanism> = []
    /// Why authentication cannot succeed this poll; later messages are deferred with it, without another attempt.
    private(set) var failure: String?

    init() {}

    /// The mechanisms of `offered` (an EHLO `AUTH` line's) popfetch can use, strongest first, minus those refused.
    func candidates(offered: [String]) -> [Mechanism] {
        let names = Set(offered.map { $0.uppercased() })
        return Mechanism.allCases.filter { names.contains($0.rawValue) && !self.refused.contains($0) }
    }

    /// `mechanism`, the first of `candidates`, was refused with `reply`.
    mutating func refusal(of mechanism: Mechanism, reply: SMTPReply, candidates: [Mechanism], description: String)
        -> Refusal
    {
        self.refused.insert(mechanism)
        let clearText = candidates.contains { !$0.isChallengeResponse }
        if clearText && mechanism.isChallengeResponse && reply.isPermanent && reply.code != 538 {
            self.refused.formUnion(Mechanism.allCases.filter(\.isChallengeResponse))
            return Refusal(description: description, tryNextMechanism: true)
        }
        return self.fail(description)
    }

    /// Authentication cannot succeed this poll.
    mutating func fail(_ description: String) -> Refusal {
        self.failure = description
        return Refusal(description: description, tryNextMechanism: false)
    }
}

extension SMTPDeliverer {
    /// AUTH on a fresh connection, when `smtp_user` is set: the clear-text rule, the mechanism, the SASL exchange.
    nonisolated func authenticate(_ conn: SMTPConnection, plan: inout SMTPAuthPlan) async throws {
        guard let credentials = self.credentials else { return }
        guard conn.isEncrypted || self.clearTextAuthAllowed else {
            throw plan.fail(
                "refusing to send SMTP credentials in clear text to \(self.endpoint); set smtp_tls")
        }
        let offered = conn.capabilities.keywords["AUTH"] ?? []
        let candidates = plan.candidates(offered: offered)
        guard let mechanism = candidates.first else {
            throw plan.fail(
                "smtp_user is set but \(self.endpoint) offers no AUTH mechanism popfetch can use (offered: "
                    + "\(offered.isEmpty ? "none" : offered.joined(separator: " ")))")
        }
        let who = "SMTP authentication to \(self.endpoint) as \(credentials.user) with \(mechanism.rawValue) failed"
        do {
            try await Self.exchange(conn, mechanism.client(user: credentials.user, password: credentials.password))
        } catch let e as SMTPClientError where e.code == .authenticationFailed {
            throw plan.refusal(
                of: mechanism, reply: e.reply, candidates: candidates, description: "\(who): MTA said \(e.reply)")
        } catch let e as SASLError {
            throw plan.fail("\(who): \(e)")
        }
    }

    /// The SASL exchange: challenges and responses base64 (RFC 4954 §4); a challenge the mechanism cannot answer
    /// cancels it with `*`. After `235`, a mechanism that authenticates the server (SCRAM) checks that it did.
    static func exchange(_ conn: SMTPConnection, _ mechanism: any SASLMechanism) async throws {
        var m = mechanism
        let initial = try m.initialResponse().map(Base64.encode)
        var step = try await conn.authenticate(mechanism: m.name, initialResponse: initial)
        while case .challenge(let text) = step {
            let response: [UInt8]
            do {
                guard let challenge = Base64.decode(text) else {
                    throw SASLError(m.name, "the server's challenge is not base64")
                }
                response = try m.respond(to: challenge)
            } catch {
                _ = try? await conn.answerChallenge("*")
                throw error
            }
            step = try await conn.answerChallenge(Base64.encode(response))
        }
        try m.verifyCompletion()
    }
}
