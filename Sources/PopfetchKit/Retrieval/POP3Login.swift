import Crypto
import Foundation
import Logging
import MailTransport
import POP3Core
import SASL

/// POP3 authentication (USER/PASS, APOP, RFC 5034 SASL) and the OAuth2 access token, for one account.
extension AccountPoller {
    func login(_ conn: POP3Connection, password: String, capabilities: Capabilities?) async throws {
        let account = self.account
        guard conn.isEncrypted || account.hostIsLoopback || account.allowInsecureAuth else {
            throw PollError(
                .config,
                "\(account.name): refusing to send credentials in clear text to \(account.host); use tls = "
                    + "\"implicit\" or \"starttls\", or set allow_insecure_auth = true")
        }
        let offered = Set(capabilities?.saslMechanisms ?? [])
        var token: String?
        if let command = account.oauthTokenCommand {
            token = try await SecretResolver.resolve(.command(command), account: account.name)
        } else if let settings = account.oauth {
            token = try await self.oauthAccessToken(settings)
        }
        var method = account.auth
        if method == .auto {
            method = Self.strongestMethod(
                offered: offered, hasToken: token != nil, apopTimestamp: conn.apopTimestamp != nil,
                encrypted: conn.isEncrypted)
            if account.tlsClientCertificate != nil && conn.isEncrypted && offered.contains("EXTERNAL") {
                method = .external
            }
        }
        self.logger.debug("authenticating with \(method.rawValue)")
        switch method {
        case .apop:
            guard let ts = conn.apopTimestamp else {
                throw PollError(.protocolError, "\(account.host) offers no APOP timestamp in its greeting")
            }
            let digest = Insecure.MD5.hash(data: Array((ts + password).utf8)).map { b -> String in
                let h = String(b, radix: 16)
                return h.count == 1 ? "0" + h : h
            }.joined()
            let status = try await conn.execute(.apop(user: account.user, digest: digest))
            if !status.isOK { throw self.loginError(status) }
        case .user, .auto:
            let u = try await conn.execute(.user(account.user))
            if !u.isOK { throw self.loginError(u) }
            let p = try await conn.execute(.pass(password))
            if !p.isOK { throw self.loginError(p) }
        case .plain:
            try await self.sasl(conn, PlainMechanism(user: account.user, password: password))
        case .login:
            try await self.sasl(conn, LoginMechanism(user: account.user, password: password))
        case .cramMD5:
            try await self.sasl(conn, CramMD5Mechanism(user: account.user, password: password))
        case .scramSHA1:
            try await self.sasl(conn, SCRAMMechanism(hash: .sha1, user: account.user, password: password))
        case .scramSHA256:
            try await self.sasl(conn, SCRAMMechanism(hash: .sha256, user: account.user, password: password))
        case .external:
            guard conn.isEncrypted else {
                throw PollError(.config, "\(account.name): EXTERNAL needs a TLS connection with a client certificate")
            }
            try await self.sasl(conn, ExternalMechanism())
        case .xoauth2, .oauthbearer:
            guard let token else {
                throw PollError(.config, "\(account.name): \(method.rawValue) needs oauth_token_command")
            }
            if method == .xoauth2 {
                try await self.sasl(conn, XOAuth2Mechanism(user: account.user, token: token))
            } else {
                try await self.sasl(conn, OAuthBearerMechanism(user: account.user, token: token))
            }
        }
    }

    /// The stored access token while it is valid for another minute, else a new one from the refresh token.
    func oauthAccessToken(_ settings: OAuth2.Settings) async throws -> String {
        let store = self.environment.store
        let key = self.account.stateKey
        let stored = try store.oauthTokens(account: key)
        if let access = stored?.accessToken, let expires = stored?.expiresAt, expires.timeIntervalSinceNow > 60 {
            return access
        }
        guard let refresh = stored?.refreshToken else {
            throw PollError(
                .auth,
                "\(self.account.name): no OAuth2 refresh token stored; run `popfetch oauth login --account "
                    + "\(self.account.name)`")
        }
        do {
            let r = try await OAuth2.refresh(settings, refreshToken: refresh, account: self.account.name)
            try store.saveOAuthTokens(
                account: key, refreshToken: r.refreshToken, accessToken: r.accessToken,
                expiresAt: Date().addingTimeInterval(Double(r.expiresIn ?? 3600)))
            self.logger.debug("refreshed the OAuth2 access token")
            return r.accessToken
        } catch let e as OAuth2.OAuthError {
            if e.code == "invalid_grant" {
                throw PollError(
                    .auth,
                    "\(self.account.name): the OAuth2 refresh token was refused (\(e.message)); run `popfetch oauth "
                        + "login --account \(self.account.name)` again")
            }
            throw PollError(.unavailable, "\(self.account.name): \(e.message)")
        }
    }

    /// `auth = "auto"`: the strongest mechanism the server offers that the account can use.
    static func strongestMethod(offered: Set<String>, hasToken: Bool, apopTimestamp: Bool, encrypted: Bool)
        -> AuthMethod
    {
        if hasToken {
            if offered.contains("OAUTHBEARER") { return .oauthbearer }
            if offered.contains("XOAUTH2") { return .xoauth2 }
        }
        if offered.contains("SCRAM-SHA-256") { return .scramSHA256 }
        if offered.contains("SCRAM-SHA-1") { return .scramSHA1 }
        if offered.contains("CRAM-MD5") { return .cramMD5 }
        if !encrypted && apopTimestamp { return .apop }
        if offered.contains("PLAIN") { return .plain }
        return .user
    }

    /// RFC 5034 AUTH: the initial response goes with the command only if the whole line fits in 255 octets (else
    /// it is sent after the server's empty challenge: the Office 365 trap); challenges and responses are base64.
    func sasl(_ conn: POP3Connection, _ mechanism: some SASLMechanism) async throws {
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
                    if self.account.oauth != nil, m.name == "XOAUTH2" || m.name == "OAUTHBEARER" {
                        // The access token may have been revoked early: refresh it at the next poll.
                        try? self.environment.store.saveOAuthTokens(
                            account: self.account.stateKey, refreshToken: nil, accessToken: nil, expiresAt: nil)
                    }
                    throw self.loginError(status)
                }
                do {
                    try m.verifyCompletion()
                } catch {
                    throw PollError(.auth, "authentication of the server failed: \(error)")
                }
                return
            default:
                throw PollError(.protocolError, "unexpected reply during AUTH \(m.name)")
            }
        }
    }

    func loginError(_ status: StatusLine) -> PollError {
        let said = "server said: \(status)"
        switch status.code {
        case .inUse:
            return PollError(.mailboxInUse, "mailbox of \(self.account.stateKey) is locked by another session; \(said)")
        case .loginDelay:
            return PollError(.loginDelay, "logged in too recently for the server's LOGIN-DELAY; \(said)")
        case .sysTemp:
            return PollError(.temporary, "temporary server problem at login; \(said)")
        case .sysPerm:
            return PollError(.protocolError, "permanent server problem at login; \(said)")
        default:
            return PollError(.auth, "authentication failed for \(self.account.stateKey); \(said)")
        }
    }

}
