import Configuration
import Delivery
import Foundation
import Logging
import MailTransport
import NIOCore
import NIOSSL
import OAuth
import UIDLStore

/// Delivery by IMAP APPEND: the deliverer, and `check`'s probe of it.
extension AccountPoller {
    /// `check`: whether the IMAP mailbox the account delivers to takes its login and has its folder; nil for other
    /// delivery methods.
    public func probeIMAPDelivery() async -> Result<String, PollError>? {
        guard case .imap(let destination) = self.account.delivery.method else { return nil }
        do {
            return .success(try await self.makeIMAPDeliverer(destination).probe())
        } catch let e as IMAPDeliverer.LoginRefused {
            return .failure(PollError(.auth, "IMAP delivery: \(e.description)"))
        } catch let e as PollError {
            return .failure(e)
        } catch {
            return .failure(PollError(.unavailable, "IMAP delivery: \(error)"))
        }
    }

    /// IMAP delivery: the login resolved, TLS set up, and the state journal that makes it exactly-once.
    func makeIMAPDeliverer(_ destination: IMAPDestination) async throws -> IMAPDeliverer {
        let account = self.account
        let settings = account.delivery.imap
        var tlsContext: NIOSSLContext?
        if destination.implicitTLS || settings.tls == .starttls {
            do {
                tlsContext = try TLSContextFactory.makeContext(TLSClientOptions(trustRootsFile: settings.caFile))
            } catch {
                throw PollError(
                    .config, "\(account.name): cannot set up TLS for the IMAP server (imap_ca_file): \(error)")
            }
        }
        let secret: String
        var onRefused: (@Sendable () -> Void)?
        switch settings.auth {
        case .xoauth2, .oauthbearer:
            if let oauth = settings.oauth, let key = account.imapTokenKey {
                let source = OAuthTokenSource(
                    settings: oauth, store: self.environment.store, accountName: account.name, mailbox: MailboxID(key))
                do {
                    let (token, refreshed) = try await source.accessToken()
                    if refreshed { self.logger.debug("refreshed the IMAP identity's OAuth2 access token") }
                    secret = token
                } catch let e as OAuthTokenSource.Failure {
                    let message = e.message.replacingOccurrences(
                        of: "oauth login --account \(account.name)",
                        with: "oauth login --account \(account.name) --imap")
                    throw PollError(e.kind == .loginNeeded ? .auth : .unavailable, "IMAP delivery: \(message)")
                }
                // A refused token may have been revoked early: the next poll refreshes it.
                onRefused = { try? source.forgetAccessToken() }
            } else if let command = settings.oauthTokenCommand {
                secret = try await SecretResolver.resolve(.command(command), account: account.name)
            } else {
                throw PollError(
                    .config, "\(account.name): imap_auth = \"\(settings.auth.rawValue)\" needs imap_oauth_token_command"
                )
            }
        default:
            guard let password = settings.password else {
                throw PollError(.config, "\(account.name): imap delivery needs imap_password")
            }
            secret = try await SecretResolver.resolve(password, account: account.name)
        }
        let security: IMAPConnection.Security =
            destination.implicitTLS ? .implicitTLS : (settings.tls == .starttls ? .startTLS : .none)
        let user = settings.user ?? ""
        let journal = IMAPStateJournal(store: self.environment.store, mailbox: account.mailbox)
        return IMAPDeliverer(
            destination: destination, security: security, tlsContext: tlsContext,
            login: IMAPDeliverer.Login(user: user, secret: secret, method: settings.auth, onRefused: onRefused),
            clearTextAllowed: destination.isLoopback || account.server.allowInsecureAuth, flags: settings.flags,
            createFolder: settings.createFolder,
            timeouts: IMAPConnection.Timeouts(
                connect: .seconds(
                    Int64(settings.timeout.map { min($0, account.server.timeout) } ?? account.server.timeout)),
                command: .seconds(Int64(settings.timeout ?? 300))),
            journal: journal, stopRequested: self.environment.stopRequested, trace: self.mtaTrace,
            logger: self.logger)
    }
}
