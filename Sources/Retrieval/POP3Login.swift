import Configuration
import Crypto
import Foundation
import Logging
import MailTransport
import OAuth
import POP3Core
import SASL

/// POP3 authentication (USER/PASS, APOP, RFC 5034 SASL) and the OAuth2 access token, for one account.
extension AccountPoller {
    func login(_ conn: POP3Connection, password: String, capabilities: Capabilities?) async throws {
        let account = self.account
        guard conn.isEncrypted || account.server.isLoopback || account.server.allowInsecureAuth else {
            throw PollError(
                .config,
                "\(account.name): refusing to send credentials in clear text to \(account.server.host); use tls = "
                    + "\"implicit\" or \"starttls\", or set allow_insecure_auth = true")
        }
        // RFC 6856: UTF8 is valid in the AUTHORIZATION state (IANA's POP3 registry), so it goes before the login;
        // it also lets a UTF-8 user name or password through.
        try await self.enableUTF8(conn, capabilities: capabilities)
        let offered = Set(capabilities?.saslMechanisms ?? [])
        var token: String?
        if let command = account.authentication.oauthTokenCommand {
            token = try await SecretResolver.resolve(.command(command), account: account.name)
        } else if let settings = account.authentication.oauth {
            token = try await self.oauthAccessToken(settings)
        }
        let methods: [AuthMethod]
        if account.authentication.method == .auto {
            methods = LoginPlan.candidates(
                offered: offered, hasToken: token != nil, apopTimestamp: conn.apopTimestamp != nil,
                encrypted: conn.isEncrypted, clientCertificate: account.server.clientCertificate != nil)
        } else {
            methods = [account.authentication.method]
        }
        // A server may quote what it refuses: the secrets sent are masked in whatever it says.
        let redactor = SecretRedactor.login(user: account.authentication.user, password: password, token: token)
        if token != nil, let trace = conn.trace { conn.trace = { line in trace(redactor.apply(line)) } }
        do {
            for (index, method) in methods.enumerated() {
                self.logger.debug("authenticating with \(method.rawValue)")
                guard let refusal = try await self.attempt(method, conn, password: password, token: token) else {
                    return
                }
                switch LoginPlan.next(after: refusal, moreToTry: index + 1 < methods.count) {
                case .tryNextMechanism:
                    self.logger.info(
                        "server refused \(method.rawValue) (\(redactor.apply("\(refusal)"))); trying the next mechanism"
                    )
                case .stop(let kind):
                    throw self.loginError(refusal, kind: kind)
                }
            }
        } catch {
            throw redactor.redact(error)
        }
        preconditionFailure("no authentication mechanism to try")
    }

    /// RFC 6856: a server that offers UTF8 may alter messages with 8-bit headers for a client that does not
    /// send it (Courier wraps them in a "Cannot display Unicode content" notice). A refusal changes nothing.
    func enableUTF8(_ conn: POP3Connection, capabilities: Capabilities?) async throws {
        guard capabilities?.supportsUTF8 == true else { return }
        let status = try await conn.execute(.utf8)
        if !status.isOK {
            self.logger.info("server offers UTF8 but refused it: \(status)")
        }
    }

    /// One login with `method`. Returns nil once logged in, or the server's refusal.
    private func attempt(_ method: AuthMethod, _ conn: POP3Connection, password: String, token: String?)
        async throws -> StatusLine?
    {
        let account = self.account
        switch method {
        case .apop:
            guard let ts = conn.apopTimestamp else {
                throw PollError(.protocolError, "\(account.server.host) offers no APOP timestamp in its greeting")
            }
            let digest = Insecure.MD5.hash(data: Array((ts + password).utf8)).map { b -> String in
                let h = String(b, radix: 16)
                return h.count == 1 ? "0" + h : h
            }.joined()
            let status = try await conn.execute(.apop(user: account.authentication.user, digest: digest))
            return status.isOK ? nil : status
        case .user, .auto:
            let u = try await conn.execute(.user(account.authentication.user))
            if !u.isOK { return u }
            let p = try await conn.execute(.pass(password))
            return p.isOK ? nil : p
        case .plain:
            return try await self.sasl(conn, PlainMechanism(user: account.authentication.user, password: password))
        case .login:
            return try await self.sasl(conn, LoginMechanism(user: account.authentication.user, password: password))
        case .cramMD5:
            return try await self.sasl(conn, CramMD5Mechanism(user: account.authentication.user, password: password))
        case .scramSHA1:
            return try await self.sasl(
                conn, SCRAMMechanism(hash: .sha1, user: account.authentication.user, password: password))
        case .scramSHA256:
            return try await self.sasl(
                conn, SCRAMMechanism(hash: .sha256, user: account.authentication.user, password: password))
        case .external:
            guard conn.isEncrypted else {
                throw PollError(.config, "\(account.name): EXTERNAL needs a TLS connection with a client certificate")
            }
            return try await self.sasl(conn, ExternalMechanism())
        case .xoauth2, .oauthbearer:
            guard let token else {
                throw PollError(.config, "\(account.name): \(method.rawValue) needs oauth_token_command")
            }
            if method == .xoauth2 {
                return try await self.sasl(conn, XOAuth2Mechanism(user: account.authentication.user, token: token))
            }
            return try await self.sasl(conn, OAuthBearerMechanism(user: account.authentication.user, token: token))
        }
    }

    /// The access token for an OAuth2 login (see ``OAuthTokenSource``), its failures as poll errors.
    func oauthAccessToken(_ settings: OAuthSettings) async throws -> String {
        let source = OAuthTokenSource(
            settings: settings, store: self.environment.store, accountName: self.account.name,
            mailbox: self.account.mailbox)
        do {
            let (token, refreshed) = try await source.accessToken()
            if refreshed { self.logger.debug("refreshed the OAuth2 access token") }
            return token
        } catch let e as OAuthTokenSource.Failure {
            throw PollError(e.kind == .loginNeeded ? .auth : .unavailable, e.message)
        }
    }

    /// RFC 5034 AUTH: the initial response goes with the command only if the whole line fits in 255 octets (else
    /// it is sent after the server's empty challenge: the Office 365 trap); challenges and responses are base64.
    /// Returns nil once logged in, or the server's refusal.
    func sasl(_ conn: POP3Connection, _ mechanism: some SASLMechanism) async throws -> StatusLine? {
        var m = mechanism
        var pendingInitial: [UInt8]?
        let initial: [UInt8]?
        do {
            initial = try m.initialResponse()
        } catch {
            throw PollError(.auth, "\(m.name): \(error)")
        }
        var command = Command.auth(mechanism: m.name, initialResponse: nil)
        if let initial {
            let encoded = initial.isEmpty ? "=" : Base64.encode(initial)
            if "AUTH \(m.name) \(encoded)\r\n".utf8.count <= POP3Defaults.maximumCommandLength {
                command = .auth(mechanism: m.name, initialResponse: encoded)
            } else {
                pendingInitial = initial
            }
        }
        try await conn.send(command)
        while true {
            switch try await conn.nextEvent() {
            case .continuation(let text):
                guard let challenge = Base64.decode(text.trimmingCharacters(in: .whitespaces)) else {
                    try await conn.sendSASL("*")
                    throw PollError(.protocolError, "\(m.name): the server's challenge is not base64")
                }
                let response: [UInt8]
                if let p = pendingInitial, challenge.isEmpty {
                    response = p
                    pendingInitial = nil
                } else {
                    do {
                        response = try m.respond(to: challenge)
                    } catch {
                        try await conn.sendSASL("*")
                        _ = try? await conn.nextEvent()
                        throw PollError(.auth, "authentication failed for \(self.account.stateKey): \(error)")
                    }
                }
                try await conn.sendSASL(response.isEmpty ? "" : Base64.encode(response))
            case .response(_, let status):
                guard status.isOK else {
                    if let settings = self.account.authentication.oauth, m.name == "XOAUTH2" || m.name == "OAUTHBEARER"
                    {
                        // The access token may have been revoked early: refresh it at the next poll.
                        try? OAuthTokenSource(
                            settings: settings, store: self.environment.store, accountName: self.account.name,
                            mailbox: self.account.mailbox
                        ).forgetAccessToken()
                    }
                    return status
                }
                do {
                    try m.verifyCompletion()
                } catch {
                    throw PollError(.auth, "authentication of the server failed: \(error)")
                }
                return nil
            default:
                throw PollError(.protocolError, "unexpected reply during AUTH \(m.name)")
            }
        }
    }

    /// The error for a refused login, in the server's words; only `[AUTH]` or no response code blames the
    /// credentials.
    func loginError(_ status: StatusLine, kind: PollError.Kind? = nil) -> PollError {
        let said = "server said: \(status)"
        switch kind ?? LoginPlan.refusalKind(status) {
        case .mailboxInUse:
            return PollError(.mailboxInUse, "mailbox of \(self.account.stateKey) is locked by another session; \(said)")
        case .loginDelay:
            return PollError(.loginDelay, "logged in too recently for the server's LOGIN-DELAY; \(said)")
        case .temporary:
            return PollError(.temporary, "temporary server problem at login; \(said)")
        case .auth:
            return PollError(.auth, "authentication failed for \(self.account.stateKey); \(said)")
        case let other:
            return PollError(other, "the server refused the login for a reason other than the credentials; \(said)")
        }
    }
}
