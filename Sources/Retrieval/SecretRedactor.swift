import Delivery
import Foundation
import POP3Core
import Spool
import SystemSupport

/// Masks the secrets popfetch sent (a password, an OAuth2 token, and the base64 forms a SASL exchange carries them
/// in) wherever a server's text goes on: a server that quotes the command it refuses ("-ERR you sent PASS ...")
/// would otherwise put the password in the log, the error, the poll history and `status`.
struct SecretRedactor: Sendable {
    static let mask = "********"
    /// Longest first, so a secret inside another (the password inside a SASL payload) never leaves a tail.
    private let secrets: [String]

    /// `values`: the secrets as sent. Values shorter than 4 characters are left alone: masking every occurrence of
    /// a letter or two would garble the text and hide little.
    init(_ values: [String]) {
        var all: Set<String> = []
        for value in values where value.count >= 4 {
            all.insert(value)
            all.insert(Data(value.utf8).base64EncodedString())
            // As errors and logs quote a server's line: escaped for a terminal, as an excerpt of bytes, and inside
            // a quoted string (`"` and `\` escaped).
            let excerpt = String.excerpt(of: value.utf8, limit: Int.max)
            for form in [TerminalSafe.escaped(value), excerpt, value.debugDescription, excerpt.debugDescription] {
                all.insert(form.hasPrefix("\"") && form.hasSuffix("\"") ? String(form.dropFirst().dropLast()) : form)
            }
        }
        self.secrets = all.sorted { $0.count > $1.count }
    }

    /// The secrets of a login as `user` with `password` and, when there is one, an OAuth2 `token`: as sent, and
    /// as USER/PASS, AUTH PLAIN, AUTH LOGIN, XOAUTH2 and OAUTHBEARER carry them.
    static func login(user: String, password: String, token: String? = nil) -> SecretRedactor {
        var values = [password, "\u{0}\(user)\u{0}\(password)"]
        if let token {
            values += [
                token, "user=\(user)\u{1}auth=Bearer \(token)\u{1}\u{1}",
                "n,a=\(user),\u{1}auth=Bearer \(token)\u{1}\u{1}", "n,,\u{1}auth=Bearer \(token)\u{1}\u{1}",
            ]
        }
        return SecretRedactor(values)
    }

    var isEmpty: Bool { self.secrets.isEmpty }

    func apply(_ text: String) -> String {
        var out = text
        for secret in self.secrets where out.contains(secret) {
            out = out.replacingOccurrences(of: secret, with: Self.mask)
        }
        return out
    }

    /// `error` with every secret masked in its message (as a ``PollError`` of the same class), or `error` itself
    /// when it holds none.
    func redact(_ error: any Error) -> any Error {
        guard !self.isEmpty else { return error }
        var classified = AccountPoller.classify(error)
        let masked = self.apply(classified.message)
        guard masked != classified.message else { return error }
        classified.message = masked
        return classified
    }
}

/// A deliverer whose every outcome text, and every reason for stopping, has the relay's secrets masked: an MTA that
/// quotes the SMTP password in a refusal would otherwise put it in the log, the error, the state and `status`.
struct RedactingDeliverer: Deliverer {
    let inner: any Deliverer
    let redactor: SecretRedactor

    func recipientGroups(_ recipients: [String]) -> [[String]] { self.inner.recipientGroups(recipients) }

    func deliver(_ message: SpooledMessage, to recipients: [String]) async throws -> [RecipientOutcome] {
        do {
            return try await self.inner.deliver(message, to: recipients).map { outcome in
                var outcome = outcome
                switch outcome.result {
                case .delivered: break
                case .temporaryFailure(let why): outcome.result = .temporaryFailure(self.redactor.apply(why))
                case .failure(let why): outcome.result = .failure(self.redactor.apply(why))
                case .permanentFailure(let why): outcome.result = .permanentFailure(self.redactor.apply(why))
                }
                return outcome
            }
        } catch {
            throw self.redactor.redact(error)
        }
    }

    func withDeliveries(_ body: () async throws -> Void) async throws {
        do {
            try await self.inner.withDeliveries(body)
        } catch {
            throw self.redactor.redact(error)
        }
    }

    func unavailability() async -> String? { await self.inner.unavailability().map { self.redactor.apply($0) } }

    var blocksItsThread: Bool { self.inner.blocksItsThread }
}
