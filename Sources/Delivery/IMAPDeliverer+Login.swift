import Configuration
import IMAPCore
import MailTransport
import SASL

/// Logging in: a SASL mechanism the server offers (or the configured one), else LOGIN; never a password in clear
/// text unless allowed.
extension IMAPDeliverer {
    public struct LoginRefused: Error, CustomStringConvertible {
        public var description: String
    }

    func logIn(_ conn: IMAPConnection) async throws {
        if conn.preauthenticated { return }
        guard conn.isEncrypted || self.clearTextAllowed else {
            throw LoginRefused(
                description: "not sending the IMAP password to \(self.destination.host) without TLS (use imaps://, "
                    + "imap_tls = \"starttls\", or allow_insecure_auth)")
        }
        let offered = conn.capabilities.authenticationMechanisms
        let user = self.login.user
        let secret = self.login.secret
        var mechanism: (any SASLMechanism)?
        switch self.login.method {
        case .auto:
            if offered.contains("SCRAM-SHA-256") {
                mechanism = SCRAMMechanism(hash: .sha256, user: user, password: secret)
            } else if offered.contains("PLAIN") {
                mechanism = PlainMechanism(user: user, password: secret)
            }
        case .plain: mechanism = PlainMechanism(user: user, password: secret)
        case .login: mechanism = LoginMechanism(user: user, password: secret)
        case .scramSHA256: mechanism = SCRAMMechanism(hash: .sha256, user: user, password: secret)
        case .xoauth2: mechanism = XOAuth2Mechanism(user: user, token: secret)
        case .oauthbearer: mechanism = OAuthBearerMechanism(user: user, token: secret)
        }
        let done: IMAPCompletion
        if var m = mechanism {
            let initial = try m.initialResponse().map { $0.isEmpty ? "=" : Base64.encode($0) }
            done = try await conn.authenticate(mechanism: m.name, initialResponse: initial) { challenge in
                guard let bytes = Base64.decode(challenge) else {
                    throw SASLError(m.name, "the server's challenge is not base64")
                }
                return Base64.encode(try m.respond(to: bytes))
            }
            if done.isOK { try m.verifyCompletion() }
        } else {
            guard !conn.capabilities.loginDisabled else {
                throw LoginRefused(
                    description: "the IMAP server offers no login popfetch can use (LOGINDISABLED, no AUTH=PLAIN)")
            }
            done = try await conn.login(user: user, password: secret)
        }
        guard done.isOK else {
            let why = "the IMAP server refused the login of \(user): \(done.status)"
            if done.status.code?.isTransient == true {
                throw IMAPCommandError(command: "login", status: done.status)
            }
            self.login.onRefused?()
            throw LoginRefused(description: why)
        }
    }
}
