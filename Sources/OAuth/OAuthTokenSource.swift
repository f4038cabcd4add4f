public import Configuration
import Foundation
public import UIDLStore

/// One account's OAuth2 tokens: the access token for a login (the stored one while it is valid for another
/// minute, else a new one from the stored refresh token), and the device flow that obtains the refresh token in the
/// first place. Tokens live in the state database under the mailbox key; they never appear in errors.
public struct OAuthTokenSource: Sendable {
    public var settings: OAuthSettings
    public var store: StateStore
    /// The account's name (for messages) and its mailbox key `user@host:port` (where its tokens are kept).
    public var accountName: String
    public var mailbox: MailboxID

    /// An access token is used only while it has at least this long to live.
    public static let minimumLifetime: Double = 60
    /// When the token endpoint does not say how long an access token lives (RFC 6749 §5.1 makes
    /// `expires_in` optional), it is taken to live this long.
    public static let assumedLifetime = 3600

    public init(settings: OAuthSettings, store: StateStore, accountName: String, mailbox: MailboxID) {
        self.settings = settings
        self.store = store
        self.accountName = accountName
        self.mailbox = mailbox
    }

    /// Why no access token could be had.
    public struct Failure: Error, Hashable, Sendable, CustomStringConvertible {
        public enum Kind: Hashable, Sendable {
            /// No refresh token is stored, or the endpoint refused it (`invalid_grant`): the user must log in.
            case loginNeeded
            /// The endpoint could not be reached or answered otherwise: try again later.
            case unavailable
        }
        public var kind: Kind
        public var message: String
        public var description: String { self.message }
    }

    /// The access token for a login now, and whether it was just refreshed.
    public func accessToken() async throws -> (token: String, refreshed: Bool) {
        let stored = try self.store.oauthTokens(mailbox: self.mailbox)
        if let access = stored?.accessToken, let expires = stored?.expiresAt,
            expires.timeIntervalSinceNow > Self.minimumLifetime
        {
            return (access, false)
        }
        guard let refresh = stored?.refreshToken else {
            throw Failure(
                kind: .loginNeeded,
                message: "\(self.accountName): no OAuth2 refresh token stored; run `popfetch oauth login --account "
                    + "\(self.accountName)`")
        }
        do {
            let response = try await OAuth2.refresh(self.settings, refreshToken: refresh, account: self.accountName)
            try self.save(response)
            return (response.accessToken, true)
        } catch let e as OAuth2.OAuthError {
            if e.code == "invalid_grant" {
                throw Failure(
                    kind: .loginNeeded,
                    message: "\(self.accountName): the OAuth2 refresh token was refused (\(e.message)); run `popfetch "
                        + "oauth login --account \(self.accountName)` again")
            }
            throw Failure(kind: .unavailable, message: "\(self.accountName): \(e.message)")
        }
    }

    /// RFC 8628 device flow: `show` gets the address to open and the code to enter; returns once the user has
    /// approved and the tokens are stored.
    public func login(show: @Sendable (_ verificationURI: String, _ userCode: String) -> Void) async throws {
        let authorization = try await OAuth2.authorizeDevice(self.settings, account: self.accountName)
        show(authorization.verificationURI, authorization.userCode)
        let response = try await OAuth2.waitForDeviceToken(self.settings, authorization, account: self.accountName)
        try self.save(response)
    }

    /// Stores a refresh token obtained elsewhere (the access token is fetched at the next login).
    public func storeRefreshToken(_ token: String) throws {
        try self.store.saveOAuthTokens(mailbox: self.mailbox, refreshToken: token, accessToken: nil, expiresAt: nil)
    }

    /// Drops the stored access token (the server refused it: it may have been revoked early); the refresh token
    /// is kept, and the next login refreshes.
    public func forgetAccessToken() throws {
        try self.store.saveOAuthTokens(mailbox: self.mailbox, refreshToken: nil, accessToken: nil, expiresAt: nil)
    }

    private func save(_ r: OAuth2.TokenResponse) throws {
        let lifetime = r.expiresIn.map { min(max($0, 0), 366 * 86_400) } ?? Self.assumedLifetime
        try self.store.saveOAuthTokens(
            mailbox: self.mailbox, refreshToken: r.refreshToken, accessToken: r.accessToken,
            expiresAt: Date().addingTimeInterval(Double(lifetime)))
    }
}
