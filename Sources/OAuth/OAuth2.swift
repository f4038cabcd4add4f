public import Configuration
import Foundation

/// OAuth2 client side (RFC 6749 refresh grant, RFC 8628 device authorization grant) for XOAUTH2/OAUTHBEARER
/// logins. Secrets (client secret, tokens) never appear in errors.
public enum OAuth2 {
    public struct TokenResponse: Sendable {
        public var accessToken: String
        public var refreshToken: String?
        public var expiresIn: Int?
    }

    public struct DeviceAuthorization: Sendable {
        public var deviceCode: String
        public var userCode: String
        public var verificationURI: String
        public var interval: Int
        public var expiresIn: Int
    }

    public struct OAuthError: Error, Hashable, Sendable, CustomStringConvertible {
        /// The server's `error` code (`invalid_grant`, `authorization_pending`, ...), or nil for transport errors.
        public var code: String?
        public var message: String
        public var description: String { self.message }
    }

    static func post(_ url: String, form: [String: String]) async throws -> (Int, [String: Any]) {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        let body = form.sorted { $0.key < $1.key }.map { k, v in
            "\(k)=\(v.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")"
        }.joined(separator: "&")
        let status: Int
        let data: [UInt8]
        do {
            (status, data) = try await HTTPPost.post(
                url: url, body: Array(body.utf8), contentType: "application/x-www-form-urlencoded")
        } catch {
            throw OAuthError(code: nil, message: "cannot reach the OAuth2 endpoint \(url): \(error)")
        }
        let object = (try? JSONSerialization.jsonObject(with: Data(data))) as? [String: Any] ?? [:]
        return (status, object)
    }

    static func tokenResponse(_ status: Int, _ o: [String: Any], url: String) throws -> TokenResponse {
        if status == 200, let access = o["access_token"] as? String {
            return TokenResponse(
                accessToken: access, refreshToken: o["refresh_token"] as? String,
                expiresIn: (o["expires_in"] as? Int) ?? (o["expires_in"] as? String).flatMap(Int.init))
        }
        let code = o["error"] as? String
        throw OAuthError(code: code, message: "the OAuth2 token endpoint \(url) answered \(status) \(code ?? "")")
    }

    static func clientForm(_ s: OAuthSettings, account: String) async throws -> [String: String] {
        var form = ["client_id": s.clientID]
        if let secret = s.clientSecret {
            form["client_secret"] = try await SecretResolver.resolve(secret, account: account)
        }
        return form
    }

    /// RFC 6749 §6: a new access token from the refresh token.
    public static func refresh(_ s: OAuthSettings, refreshToken: String, account: String) async throws -> TokenResponse
    {
        var form = try await Self.clientForm(s, account: account)
        form["grant_type"] = "refresh_token"
        form["refresh_token"] = refreshToken
        let (status, o) = try await Self.post(s.tokenURL, form: form)
        return try Self.tokenResponse(status, o, url: s.tokenURL)
    }

    /// RFC 8628 §3.1: start the device flow.
    public static func authorizeDevice(_ s: OAuthSettings, account: String) async throws -> DeviceAuthorization {
        guard let url = s.deviceURL else {
            throw OAuthError(code: nil, message: "\(account): oauth_device_url is not set")
        }
        var form = ["client_id": s.clientID]
        if let scope = s.scope { form["scope"] = scope }
        let (status, o) = try await Self.post(url, form: form)
        guard status == 200, let dc = o["device_code"] as? String, let uc = o["user_code"] as? String else {
            throw OAuthError(
                code: o["error"] as? String, message: "the device authorization endpoint answered \(status)")
        }
        return DeviceAuthorization(
            deviceCode: dc, userCode: uc,
            verificationURI: (o["verification_uri_complete"] as? String) ?? (o["verification_uri"] as? String) ?? "",
            interval: (o["interval"] as? Int) ?? 5, expiresIn: (o["expires_in"] as? Int) ?? 600)
    }

    /// RFC 8628 §3.4: poll the token endpoint until the user has approved (or the code expired).
    public static func waitForDeviceToken(_ s: OAuthSettings, _ d: DeviceAuthorization, account: String) async throws
        -> TokenResponse
    {
        // The server's interval is clamped (1 s to 10 min) so that no value can overflow the sleep below.
        var interval = min(max(1, d.interval), 600)
        let deadline = Date().addingTimeInterval(Double(d.expiresIn))
        var form = try await Self.clientForm(s, account: account)
        form["grant_type"] = "urn:ietf:params:oauth:grant-type:device_code"
        form["device_code"] = d.deviceCode
        while Date() < deadline {
            let (status, o) = try await Self.post(s.tokenURL, form: form)
            do {
                return try Self.tokenResponse(status, o, url: s.tokenURL)
            } catch let e as OAuthError where e.code == "authorization_pending" || e.code == "slow_down" {
                if e.code == "slow_down" { interval = min(interval + 5, 600) }
                try await Task.sleep(nanoseconds: UInt64(interval) * 1_000_000_000)
            }
        }
        throw OAuthError(code: "expired_token", message: "the device code expired before it was approved")
    }
}
